use tipc_runtime::TipcMessage;

#[derive(TipcMessage)]
#[tipc(id = 1)]
union Ping {
    a: u32,
    b: f32,
}

fn main() {}
