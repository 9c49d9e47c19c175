// A group member with member events (one taking the context) and loopback.
use serde::{Deserialize, Serialize};
use tipc_runtime::service::{Binding, GroupOpts, Member};
use tipc_runtime::{tipc_service, Ctx, ServiceRange, TipcMessage};

#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 1)]
struct Say(String);

struct Room {
    members: Vec<u32>,
}

#[tipc_service(group = 3000, instance = 2, loopback)]
impl Room {
    #[handle]
    fn say(&mut self, m: Say) {
        let _ = m.0;
    }

    #[on_join]
    fn joined(&mut self, m: Member) {
        self.members.push(m.instance);
    }

    #[on_leave]
    fn left(&mut self, m: Member, cx: &mut Ctx<Self>) {
        let _ = cx;
        self.members.retain(|i| *i != m.instance);
    }
}

fn main() {
    let b = Binding::of::<Room>();
    assert_eq!(b.range, ServiceRange::single(3000, 2));
    assert_eq!(
        b.group,
        Some(GroupOpts {
            events: true,
            loopback: true
        })
    );
    let _ = Room { members: vec![] }.members;
}
