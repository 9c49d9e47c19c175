// A message with a custom reply type, answered directly and through `ReplyTo` without a
// context.
use serde::{Deserialize, Serialize};
use tipc_runtime::service::Service;
use tipc_runtime::{tipc_service, ReplyTo, TipcMessage};

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Stats {
    count: u64,
    names: Vec<String>,
}

#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 7, reply = Stats)]
struct GetStats;

#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 8, reply = Option<Stats>)]
struct Later;

struct Keeper;

#[tipc_service(type = 4242, instance = 1)]
impl Keeper {
    #[handle]
    fn stats(&mut self, _m: GetStats) -> Stats {
        Stats {
            count: 1,
            names: vec!["a".into()],
        }
    }

    #[handle]
    fn later(&self, _: Later, reply: ReplyTo<Option<Stats>>) {
        reply.send(None);
    }
}

fn main() {
    assert_eq!(Keeper::message_ids(), &[7, 8]);
}
