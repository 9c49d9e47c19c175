use serde::{Deserialize, Serialize};
use tipc_runtime::TipcMessage;

#[derive(Serialize, Deserialize, TipcMessage)]
struct Ping;

fn main() {}
