//! `chat` (`cargo run -p tipc-examples --bin chat`): a chat room over a TIPC communication
//! group. Three nodes each run a member of group 3000 (member instances 1..=3). Members see
//! each other join (`#[on_join]`); every line said is broadcast to the others, who read each
//! speaker's lines in the order said; when one member stops, the others see it leave
//! (`#[on_leave]`) after its last line.

use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tipc_runtime::service::{Binding, Member};
use tipc_runtime::{free_loopback_ports, tipc_service, Node, ServiceRange, System, TipcMessage};

/// A line said in the room.
#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 1)]
struct Say {
    who: String,
    text: String,
}

struct Chatter {
    name: String,
    heard: Arc<AtomicUsize>,
}

#[tipc_service(group = 3000, instance = 1)]
impl Chatter {
    #[handle]
    fn say(&mut self, m: Say) {
        println!("[{}] {}: {}", self.name, m.who, m.text);
        self.heard.fetch_add(1, Ordering::SeqCst);
    }

    #[on_join]
    fn joined(&mut self, m: Member) {
        println!("[{}] member {} joined", self.name, m.instance);
    }

    #[on_leave]
    fn left(&mut self, m: Member) {
        println!("[{}] member {} left", self.name, m.instance);
    }
}

fn main() {
    let ports = free_loopback_ports(3).expect("free ports");
    System::new().block_on(async move {
        let heard = Arc::new(AtomicUsize::new(0));
        let mut members = Vec::new();
        for (i, name) in ["alice", "bob", "carol"].into_iter().enumerate() {
            let peers: Vec<u16> = ports.iter().copied().filter(|p| *p != ports[i]).collect();
            let node = Node::loopback(name, ports[i], &peers).expect("node");
            let mut at = Binding::of::<Chatter>();
            at.range = ServiceRange::single(3000, i as u32 + 1);
            let c = Chatter {
                name: name.into(),
                heard: heard.clone(),
            };
            members.push((name, node.serve_at(c, at).await.expect("join"), node));
        }
        let groups: Vec<_> = members
            .iter()
            .map(|m| m.1.group().expect("group"))
            .collect();
        for _ in 0..2_000 {
            if groups.iter().all(|g| g.members_up() == 2) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for (i, g) in groups.iter().enumerate() {
            for text in ["hello", "how are you?"] {
                let say = Say {
                    who: members[i].0.into(),
                    text: text.into(),
                };
                g.broadcast(&say).await.expect("broadcast");
            }
        }
        for _ in 0..2_000 {
            if heard.load(Ordering::SeqCst) == 12 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        println!("-- carol stops");
        members[2].1.stop().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        println!("-- {} lines heard in all", heard.load(Ordering::SeqCst));
    });
}
