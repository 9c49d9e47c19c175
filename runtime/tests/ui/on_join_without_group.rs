use serde::{Deserialize, Serialize};
use tipc_runtime::{tipc_service, TipcMessage};

#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 1)]
struct Ping;

struct Svc;

#[tipc_service(type = 1000, instance = 1)]
impl Svc {
    #[handle]
    fn ping(&mut self, _m: Ping) {}

    #[on_join]
    fn joined(&mut self, _m: tipc_runtime::service::Member) {}
}

fn main() {}
