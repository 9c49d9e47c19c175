use serde::{Deserialize, Serialize};
use tipc_runtime::{tipc_service, TipcMessage};

#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 1)]
struct Ping;

struct Svc;

#[tipc_service(type = 1000, instance = 1)]
impl Svc {
    #[handle]
    fn ping(&mut self, _m: Ping, reply: tipc_runtime::ReplyTo<()>) -> u32 {
        reply.send(());
        1
    }
}

fn main() {}
