use serde::{Deserialize, Serialize};
use tipc_runtime::TipcMessage;

#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 1)]
struct Ping<T> {
    body: T,
}

fn main() {}
