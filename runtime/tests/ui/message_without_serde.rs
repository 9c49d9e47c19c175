use tipc_runtime::TipcMessage;

#[derive(TipcMessage)]
#[tipc(id = 1)]
struct Ping {
    seq: u64,
}

fn main() {}
