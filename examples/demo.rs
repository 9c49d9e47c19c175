//! `demo` (`cargo run --release -p tipc-examples --bin demo`): the README's main command. Three
//! node processes on 127.0.0.1 (this one, `alpha`, starts `beta` and `gamma`: this program as
//! `demo node ...`) run typed actor services over TIPC and tell the story of what they see:
//!
//! 1. the nodes find each other and bring links up;
//! 2. alpha watches service type 4000 and sees beta's and gamma's services come up;
//! 3. alpha asks `{4000, 1}` (anycast): the answers alternate between beta and gamma;
//! 4. every node is a member of group 4100; alpha broadcasts a greeting, the others answer it
//!    with a group unicast;
//! 5. gamma is SIGKILLed while alpha waits on an ask pinned to it: the ask fails with "node
//!    down", the watch reports gamma's service down and the group reports gamma leaving, all
//!    within the link tolerance (1.5 s), long before the ask's 30 s timeout;
//! 6. the next ask goes to beta.

use serde::{Deserialize, Serialize};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tipc_runtime::service::{Binding, Member, ServiceEvent};
use tipc_runtime::{free_loopback_ports, tipc_service, Ctx, Node, ReplyTo, ServiceRange};
use tipc_runtime::{SocketAddr, System, TipcMessage};

/// Ask: who answers (name and socket).
#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 1, reply = (String, SocketAddr))]
struct WhoAreYou;

/// Ask: answered after this many seconds.
#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 2, reply = String)]
struct Sleep(u64);

/// A group greeting (broadcast), and the answer to it (unicast).
#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 3)]
struct Greeting {
    from: String,
    text: String,
    answer: bool,
}

/// The service each of beta and gamma runs at `{4000, 1}`.
struct Host(String);

#[tipc_service(type = 4000, instance = 1)]
impl Host {
    #[handle]
    fn who(&mut self, _m: WhoAreYou, cx: &mut Ctx<Self>) -> (String, SocketAddr) {
        (self.0.clone(), cx.socket())
    }

    #[handle]
    fn sleep(&mut self, m: Sleep, cx: &mut Ctx<Self>, reply: ReplyTo<String>) {
        let name = self.0.clone();
        cx.spawn(async move {
            tokio::time::sleep(Duration::from_secs(m.0)).await;
            reply.send(format!("{name} slept {} s", m.0));
        });
    }
}

/// Every node's member of group 4100.
struct Room {
    name: String,
    start: f64,
    heard: Arc<AtomicUsize>,
}

#[tipc_service(group = 4100, instance = 1)]
impl Room {
    #[handle]
    fn greeting(&mut self, m: Greeting, cx: &mut Ctx<Self>) {
        say(
            self.start,
            &self.name,
            &format!("heard {}: \"{}\"", m.from, m.text),
        );
        self.heard.fetch_add(1, Ordering::SeqCst);
        if !m.answer {
            let (to, g) = (cx.from(), cx.group());
            let hi = Greeting {
                from: self.name.clone(),
                text: format!("hi {}, {} here", m.from, self.name),
                answer: true,
            };
            cx.spawn(async move {
                if let Some(g) = g {
                    let _ = g.unicast(to, &hi).await;
                }
            });
        }
    }

    #[on_leave]
    fn left(&mut self, m: Member) {
        let who = if m.instance == 3 { "gamma" } else { "beta" };
        say(self.start, &self.name, &format!("group: {who} left"));
    }
}

/// Milliseconds since the Unix epoch (the processes share alpha's start as their zero).
fn unix_ms() -> f64 {
    let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    t.map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

fn say(start: f64, who: &str, what: &str) {
    println!("{:>8.1} ms  {who:<5}  {what}", unix_ms() - start);
}

/// Join group 4100 as member `instance`.
async fn join_room(
    node: &Node,
    name: &str,
    instance: u32,
    start: f64,
) -> (Arc<AtomicUsize>, tipc_runtime::ServiceHandle<Room>) {
    let heard = Arc::new(AtomicUsize::new(0));
    let mut at = Binding::of::<Room>();
    at.range = ServiceRange::single(4100, instance);
    let room = Room {
        name: name.into(),
        start,
        heard: heard.clone(),
    };
    (heard, node.serve_at(room, at).await.expect("join the room"))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 7 && args[1] == "node" {
        let num = |i: usize| args[i].parse::<u16>().expect("number");
        let start: f64 = args[6].parse().expect("start");
        let (port, alpha, inst) = (num(3), num(4), num(5));
        return System::new().block_on(async move {
            let node = Node::loopback(&args[2], port, &[alpha]).expect("node");
            let _svc = node.serve(Host(args[2].clone())).await.expect("serve");
            let _room = join_room(&node, &args[2], inst.into(), start).await;
            std::future::pending::<()>().await
        });
    }
    let ports = free_loopback_ports(3).expect("free ports");
    let start = unix_ms();
    let mut others: Vec<Child> = [("beta", 2), ("gamma", 3)]
        .iter()
        .enumerate()
        .map(|(i, (name, inst))| {
            let (port, alpha) = (ports[i + 1].to_string(), ports[0].to_string());
            let a = [
                name.to_string(),
                port,
                alpha,
                inst.to_string(),
                start.to_string(),
            ];
            let mut cmd = Command::new(std::env::current_exe().expect("exe"));
            cmd.arg("node").args(a).stdout(Stdio::inherit());
            cmd.spawn().expect("start a node process")
        })
        .collect();
    System::new().block_on(async move {
        let node = Node::loopback("alpha", ports[0], &ports[1..]).expect("node");
        say(
            start,
            "alpha",
            "started; beta and gamma are starting in their own processes",
        );
        assert!(
            node.wait_peers(2, Duration::from_secs(20)).await,
            "peers not up"
        );
        say(start, "alpha", "links up to beta and gamma");
        let mut watch = node
            .watch(ServiceRange::new(4000, 0, 99).expect("range"))
            .await
            .expect("watch");
        let mut up = 0;
        while up < 2 {
            if let Some(ServiceEvent::Up { socket, .. }) = watch.next().await {
                let name = node
                    .socket_ref(socket)
                    .ask(&WhoAreYou)
                    .await
                    .expect("ask")
                    .0;
                say(
                    start,
                    "alpha",
                    &format!("watch: {name}'s service {{4000, 1}} is up"),
                );
                up += 1;
            }
        }
        let svc = node.service(4000, 1);
        let mut last = None;
        for _ in 0..4 {
            let t = Instant::now();
            let (name, sock) = svc.ask(&WhoAreYou).await.expect("ask");
            let us = t.elapsed().as_secs_f64() * 1e6;
            say(
                start,
                "alpha",
                &format!("ask {{4000, 1}}: answered by {name} in {us:.0} us"),
            );
            last = Some((name, sock));
        }
        let (heard, room) = join_room(&node, "alpha", 1, start).await;
        let g = room.group().expect("group");
        while g.members_up() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let hello = Greeting {
            from: "alpha".into(),
            text: "hello, everyone".into(),
            answer: false,
        };
        say(start, "alpha", "group 4100: broadcast \"hello, everyone\"");
        g.broadcast(&hello).await.expect("broadcast");
        while heard.load(Ordering::SeqCst) < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // An ask pinned to gamma's socket, then gamma is killed.
        let gamma = match last {
            Some((n, s)) if n == "gamma" => s,
            _ => svc.ask(&WhoAreYou).await.expect("ask").1,
        };
        let pinned = node.socket_ref(gamma).with_timeout(Duration::from_secs(30));
        let pending = actix_rt::spawn(async move { pinned.ask(&Sleep(60)).await });
        tokio::time::sleep(Duration::from_millis(200)).await;
        say(
            start,
            "alpha",
            "an ask waits on gamma (timeout 30 s); SIGKILL gamma",
        );
        let killed = Instant::now();
        let _ = others[1].kill();
        let r = pending.await.expect("task");
        say(
            start,
            "alpha",
            &format!(
                "the ask on gamma failed after {:.2} s: {}",
                killed.elapsed().as_secs_f64(),
                r.unwrap_or_else(|e| e.to_string())
            ),
        );
        while let Some(ev) = watch.next().await {
            if let ServiceEvent::Down { socket, .. } = ev {
                if socket == gamma {
                    say(
                        start,
                        "alpha",
                        &format!(
                            "watch: gamma's service is down ({:.2} s after the kill)",
                            killed.elapsed().as_secs_f64()
                        ),
                    );
                    break;
                }
            }
        }
        let (name, _) = svc.ask(&WhoAreYou).await.expect("ask after the kill");
        say(
            start,
            "alpha",
            &format!("ask {{4000, 1}}: answered by {name}"),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        for o in &mut others {
            let _ = o.kill();
            let _ = o.wait();
        }
        say(start, "alpha", "done");
    });
}
