use serde::{Deserialize, Serialize};
use tipc_runtime::TipcMessage;

#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 1, id = 2)]
struct Ping;

fn main() {}
