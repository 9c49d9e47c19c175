// A service bound to a range of instances, cluster scope by default.
use serde::{Deserialize, Serialize};
use tipc_runtime::service::Binding;
use tipc_runtime::{tipc_service, Scope, ServiceRange, TipcMessage};

#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 10, reply = String)]
enum Shard {
    Name,
    Echo(String),
}

struct Shards;

#[tipc_service(type = 64, range = 0..=15)]
impl Shards {
    #[handle]
    fn shard(&mut self, m: Shard) -> String {
        match m {
            Shard::Name => "shards".into(),
            Shard::Echo(s) => s,
        }
    }
}

fn main() {
    let b = Binding::of::<Shards>();
    assert_eq!(b.range, ServiceRange::new(64, 0, 15).unwrap());
    assert_eq!(b.scope, Scope::Cluster);
}
