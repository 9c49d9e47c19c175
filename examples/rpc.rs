//! `rpc` (`cargo run -p tipc-examples --bin rpc`): two server processes (this program as
//! `rpc serve`) bind service {2000, 1}; this node asks them in turn (anycast), then SIGKILLs
//! one while an ask waits there: the ask fails with "node down" within the link tolerance,
//! not at its timeout, and the next ask goes to the survivor.

use serde::{Deserialize, Serialize};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tipc_runtime::{free_loopback_ports, tipc_service, AskError, Ctx, Node, ReplyTo};
use tipc_runtime::{ServiceRange, SocketAddr, System, TipcMessage};

/// Square a number; the reply names the server and its socket.
#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 1, reply = (String, SocketAddr, u64))]
struct Square(u64);

/// Answer after this many seconds.
#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 2, reply = u64)]
struct Slow(u64);

struct Calc(String);

#[tipc_service(type = 2000, instance = 1)]
impl Calc {
    #[handle]
    fn square(&mut self, m: Square, cx: &mut Ctx<Self>) -> (String, SocketAddr, u64) {
        (self.0.clone(), cx.socket(), m.0 * m.0)
    }

    #[handle]
    fn slow(&mut self, m: Slow, cx: &mut Ctx<Self>, reply: ReplyTo<u64>) {
        cx.spawn(async move {
            tokio::time::sleep(Duration::from_secs(m.0)).await;
            reply.send(m.0);
        });
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 5 && args[1] == "serve" {
        let port = |i: usize| args[i].parse::<u16>().expect("port");
        return System::new().block_on(async {
            let node = Node::loopback(&args[2], port(3), &[port(4)]).expect("node");
            let _svc = node.serve(Calc(args[2].clone())).await.expect("serve");
            std::future::pending::<()>().await
        });
    }
    let ports = free_loopback_ports(3).expect("free ports");
    let mut servers: Vec<Child> = (1..=2).map(|i| server(i, ports[i], ports[0])).collect();
    System::new().block_on(async move {
        let node = Node::loopback("client", ports[0], &ports[1..]).expect("client node");
        let up = node.wait_bound(ServiceRange::single(2000, 1), 2, Duration::from_secs(20));
        assert!(up.await, "servers not up");
        let svc = node.service(2000, 1);
        let mut last = None;
        for n in 1..=4 {
            let (by, sock, sq) = svc.ask(&Square(n)).await.expect("ask");
            println!("square({n}) = {sq:<3} answered by {by}");
            last = Some((by, sock));
        }
        // A slow ask pinned to the last server's socket, then that server is killed.
        let (victim, sock) = last.expect("an answer");
        let pinned = node.socket_ref(sock).with_timeout(Duration::from_secs(30));
        let slow = actix_rt::spawn(async move { pinned.ask(&Slow(60)).await });
        tokio::time::sleep(Duration::from_millis(300)).await;
        let killed = Instant::now();
        let _ = servers[usize::from(victim == "server-2")].kill();
        let r = slow.await.expect("task").map_err(|e| e.to_string());
        let after = killed.elapsed().as_secs_f64();
        println!(
            "{victim} SIGKILLed; its pending ask (timeout 30 s) ended after {after:.2} s: {r:?}"
        );
        // The binding goes with the node; an ask that still met it is retried once.
        let r = match svc.ask(&Square(5)).await {
            Err(AskError::NodeDown) => svc.ask(&Square(5)).await,
            r => r,
        };
        let (by, _, sq) = r.expect("ask after the kill");
        println!("square(5) = {sq} answered by {by}");
        for s in &mut servers {
            let _ = s.kill();
            let _ = s.wait();
        }
    });
}

/// Start `server-i` (this program with `serve`) on `port`, discovering the client's port.
fn server(i: usize, port: u16, client: u16) -> Child {
    let args = [format!("server-{i}"), port.to_string(), client.to_string()];
    let mut cmd = Command::new(std::env::current_exe().expect("exe"));
    cmd.arg("serve").args(args).stdout(Stdio::null());
    cmd.spawn().expect("start server")
}
