use serde::{Deserialize, Serialize};
use tipc_runtime::tipc_service;

#[derive(Serialize, Deserialize)]
struct Plain;

struct Svc;

#[tipc_service(type = 1000, instance = 1)]
impl Svc {
    #[handle]
    fn plain(&mut self, _m: Plain) {}
}

fn main() {}
