// A plain service: one instance, node scope, a handler with the context and one without.
use serde::{Deserialize, Serialize};
use tipc_runtime::service::{Binding, Service};
use tipc_runtime::{tipc_service, Ctx, Scope, ServiceRange, TipcMessage};

#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 1, reply = u32)]
struct Get;

#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 2)]
struct Set(u32);

struct Counter {
    value: u32,
}

#[tipc_service(type = 1000, instance = 7, scope = node)]
impl Counter {
    #[handle]
    fn get(&self, _m: Get) -> u32 {
        self.value
    }

    #[handle]
    fn set(&mut self, m: Set, cx: &mut Ctx<Self>) {
        let _ = cx;
        self.value = m.0;
    }
}

fn main() {
    let b = Binding::of::<Counter>();
    assert_eq!(b.range, ServiceRange::single(1000, 7));
    assert_eq!(b.scope, Scope::Node);
    assert_eq!(b.group, None);
    assert_eq!(Counter::message_ids(), &[1, 2]);
    let _ = Counter { value: 0 }.value;
}
