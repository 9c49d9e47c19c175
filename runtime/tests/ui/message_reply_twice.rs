use serde::{Deserialize, Serialize};
use tipc_runtime::TipcMessage;

#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 1, reply = u32, reply = u64)]
struct Ping;

fn main() {}
