use serde::{Deserialize, Serialize};
use tipc_runtime::{tipc_service, TipcMessage};

#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 1)]
struct Start;

#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 2)]
struct Stop;

#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 1)]
struct Pause;

struct Svc;

#[tipc_service(type = 1000, instance = 1)]
impl Svc {
    #[handle]
    fn start(&mut self, _m: Start) {}

    #[handle]
    fn stop(&mut self, _m: Stop) {}

    #[handle]
    fn pause(&mut self, _m: Pause) {}
}

fn main() {}
