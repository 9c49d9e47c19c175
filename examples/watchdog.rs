//! `watchdog` (`cargo run -p tipc-examples --bin watchdog`): three worker processes (this
//! program as `watchdog work`) each bind a service in {2100, 0..=99}; this node watches the
//! range (TIPC's topology service), sees each come up, SIGKILLs one worker and reports when
//! its service went down (its node lost: within the link tolerance), then stops the others.

use serde::{Deserialize, Serialize};
use std::process::{Child, Command, Stdio};
use std::time::Instant;
use tipc_runtime::service::ServiceEvent;
use tipc_runtime::{free_loopback_ports, tipc_service, Node, ServiceRange, System, TipcMessage};

/// Ask a worker its name.
#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 1, reply = String)]
struct Name;

struct Worker(String);

#[tipc_service(type = 2100, range = 0..=99)]
impl Worker {
    #[handle]
    fn name(&mut self, _m: Name) -> String {
        self.0.clone()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() == 6 && args[1] == "work" {
        let num = |i: usize| args[i].parse::<u16>().expect("number");
        return System::new().block_on(async {
            let node = Node::loopback(&args[2], num(3), &[num(4)]).expect("node");
            let mut at = tipc_runtime::service::Binding::of::<Worker>();
            at.range = ServiceRange::single(2100, num(5).into());
            let _svc = node
                .serve_at(Worker(args[2].clone()), at)
                .await
                .expect("serve");
            std::future::pending::<()>().await
        });
    }
    let ports = free_loopback_ports(4).expect("free ports");
    let mut workers: Vec<Child> = (1..=3).map(|i| worker(i, ports[i], ports[0])).collect();
    System::new().block_on(async move {
        let node = Node::loopback("watchdog", ports[0], &ports[1..]).expect("node");
        let mut watch = node
            .watch(ServiceRange::new(2100, 0, 99).expect("range"))
            .await;
        let watch = watch.as_mut().expect("watch");
        let mut up = Vec::new();
        while up.len() < 3 {
            if let Some(ServiceEvent::Up { range, socket }) = watch.next().await {
                let name = node.socket_ref(socket).ask(&Name).await.expect("name");
                println!(
                    "up:   {name} at {{2100, {}}} on node {:08x}",
                    range.lower(),
                    socket.node
                );
                up.push((name, socket));
            }
        }
        let (victim, sock) = up.iter().find(|(n, _)| n == "worker-2").expect("worker-2");
        let killed = Instant::now();
        let _ = workers[1].kill();
        println!("SIGKILL {victim}");
        while let Some(ev) = watch.next().await {
            if let ServiceEvent::Down { socket, .. } = ev {
                let after = killed.elapsed().as_secs_f64();
                println!("down: {victim}'s service, {after:.2} s after the kill");
                assert_eq!(socket, *sock, "another service went down");
                break;
            }
        }
        for w in &mut workers {
            let _ = w.kill();
            let _ = w.wait();
        }
    });
}

/// Start `worker-i` (this program as `work`) on `port`, discovering the watchdog's port.
fn worker(i: usize, port: u16, watchdog: u16) -> Child {
    let args = [
        format!("worker-{i}"),
        port.to_string(),
        watchdog.to_string(),
        i.to_string(),
    ];
    let mut cmd = Command::new(std::env::current_exe().expect("exe"));
    cmd.arg("work").args(args).stdout(Stdio::null());
    cmd.spawn().expect("start worker")
}
