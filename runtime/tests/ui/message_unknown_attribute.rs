use serde::{Deserialize, Serialize};
use tipc_runtime::TipcMessage;

#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 1, name = "ping")]
struct Ping;

fn main() {}
