use serde::{Deserialize, Serialize};
use tipc_runtime::{tipc_service, TipcMessage};

#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 1, reply = u32)]
struct Count;

struct Svc;

#[tipc_service(type = 1000, instance = 1)]
impl Svc {
    #[handle]
    fn count(&mut self, _m: Count) {}
}

fn main() {}
