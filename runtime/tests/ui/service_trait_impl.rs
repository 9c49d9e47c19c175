use tipc_runtime::tipc_service;

struct Svc;

#[tipc_service(type = 1000, instance = 1)]
impl Default for Svc {
    fn default() -> Self {
        Svc
    }
}

fn main() {}
