use serde::{Deserialize, Serialize};
use tipc_runtime::TipcMessage;

#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 1, reply = Pong)]
struct Ping;

struct Pong;

fn main() {}
