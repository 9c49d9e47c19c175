// A deferred reply: the handler takes `ReplyTo` and answers later from a spawned task.
use serde::{Deserialize, Serialize};
use tipc_runtime::service::Service;
use tipc_runtime::{tipc_service, Ctx, ReplyTo, TipcMessage};

#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 5, reply = u64)]
struct Slow {
    value: u64,
}

struct Worker;

#[tipc_service(type = 2000, instance = 0)]
impl Worker {
    #[handle]
    fn slow(&mut self, m: Slow, cx: &mut Ctx<Self>, reply: ReplyTo<u64>) {
        cx.spawn(async move { reply.send(m.value) });
    }
}

fn main() {
    assert_eq!(Worker::message_ids(), &[5]);
}
