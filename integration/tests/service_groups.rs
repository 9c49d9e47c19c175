//! Group services (issue 13): `#[tipc_service(group = ..)]` members on three in-process
//! nodes get each sender's broadcasts and unicasts in send order, with member events ordered
//! around the messages; a slow member in another process holds its sender back (the group's
//! windows), loses nothing, and stays within a memory bound.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tipc_integration::cluster::{free_udp_ports, udp_cluster, udp_node};
use tipc_integration::services::{GroupProbe, Hang, Num, Square, GROUP_PROBE_TYPE};
use tipc_runtime::service::{AskError, Binding, ServiceHandle};
use tipc_runtime::{Node, ServiceRange};

type Log = Arc<Mutex<Vec<String>>>;

async fn member(node: &Node, instance: u32) -> (ServiceHandle<GroupProbe>, Log) {
    let log: Log = Default::default();
    let mut at = Binding::of::<GroupProbe>();
    at.range = ServiceRange::single(GROUP_PROBE_TYPE, instance);
    let probe = GroupProbe {
        log: log.clone(),
        slow: Duration::ZERO,
        echo: false,
        held: Vec::new(),
    };
    (node.serve_at(probe, at).await.expect("join"), log)
}

fn lines(log: &Log) -> Vec<String> {
    log.lock().expect("log").clone()
}

/// `(n, mode)` of the messages from `instance`, in arrival order.
fn from(log: &[String], instance: u32) -> Vec<(u64, String)> {
    let p = format!("MSG {instance} ");
    log.iter()
        .filter_map(|l| l.strip_prefix(&p))
        .filter_map(|r| {
            let (n, mode) = r.split_once(' ')?;
            Some((n.parse().ok()?, mode.to_string()))
        })
        .collect()
}

async fn wait(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..4_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("{what} within 20 s");
}

#[test]
fn group_service_members_get_broadcasts_and_unicasts_in_send_order_between_join_and_leave() {
    actix_rt::System::new().block_on(async {
        let nodes: Vec<Node> = udp_cluster("gsv", 3)
            .await
            .into_iter()
            .map(Node::from_transport)
            .collect();
        let (r1, log1) = member(&nodes[1], 1).await;
        let (r2, log2) = member(&nodes[2], 2).await;
        let (s, _log0) = member(&nodes[0], 9).await;
        let g = s.group().expect("group");
        let (g1, g2) = (r1.group().expect("group"), r2.group().expect("group"));
        wait("members up", || {
            g.members_up() == 2 && g1.members_up() == 2 && g2.members_up() == 2
        })
        .await;
        for n in 0..2_000u64 {
            if n % 10 == 0 {
                g.unicast(r1.socket(), &Num { n }).await.expect("unicast");
            } else {
                g.broadcast(&Num { n }).await.expect("broadcast");
            }
        }
        wait("every message", || {
            from(&lines(&log1), 9).len() == 2_000 && from(&lines(&log2), 9).len() == 1_800
        })
        .await;
        s.stop().await;
        wait("the sender's leave", || {
            lines(&log1).contains(&"LEAVE 9".to_string())
                && lines(&log2).contains(&"LEAVE 9".to_string())
        })
        .await;
        for (log, want) in [(lines(&log1), 2_000), (lines(&log2), 1_800)] {
            let got = from(&log, 9);
            assert_eq!(got.len(), want);
            assert!(got.windows(2).all(|w| w[0].0 < w[1].0), "out of send order");
            for (n, mode) in &got {
                let expect = if n % 10 == 0 { "ucast" } else { "bcast" };
                assert_eq!(mode, expect, "message {n}");
            }
            let join = log.iter().position(|l| l == "JOIN 9").expect("join event");
            let first = log
                .iter()
                .position(|l| l.starts_with("MSG 9 "))
                .expect("msg");
            let last = log
                .iter()
                .rposition(|l| l.starts_with("MSG 9 "))
                .expect("msg");
            let leave = log
                .iter()
                .position(|l| l == "LEAVE 9")
                .expect("leave event");
            assert!(
                join < first && last < leave,
                "events out of order: {join} {first} {last} {leave}"
            );
        }
    });
}

/// Peak resident memory of process `pid` in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[test]
fn group_slow_member_in_another_process_holds_the_sender_back_without_loss() {
    const COUNT: u64 = 1_500;
    let ports = free_udp_ports(2);
    let (pa, pb) = (ports[0], ports[1]);
    // The member sleeps 1 ms per message: it reads at most ~1,000 a second.
    let mut child = Command::new(env!("CARGO_BIN_EXE_svc-host"))
        .args(["group", &pb.to_string(), &pa.to_string(), "5", "1000"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start svc-host");
    let pid = child.id();
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(20)).ok().as_deref(),
        Some("READY")
    );
    let sent_in = actix_rt::System::new().block_on(async move {
        let a = Node::from_transport(udp_node("gslow", pa, &[pb]));
        let (s, _log) = member(&a, 9).await;
        let g = s.group().expect("group");
        wait("the slow member up", || g.members_up() == 1).await;
        let start = Instant::now();
        for n in 0..COUNT {
            g.broadcast(&Num { n }).await.expect("broadcast");
        }
        let took = start.elapsed();
        // Stay a member until the slow one has read everything (its leave comes after).
        tokio::time::sleep(Duration::from_millis(100)).await;
        took
    });
    let mut got = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    while (got.len() as u64) < COUNT && Instant::now() < end {
        match rx.recv_timeout(Duration::from_secs(5)) {
            Ok(l) => {
                if let Some(r) = l.strip_prefix("MSG 9 ") {
                    got.push(r.split(' ').next().and_then(|n| n.parse::<u64>().ok()));
                }
            }
            Err(_) => break,
        }
    }
    let rss = peak_rss_kib(pid);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(got.len() as u64, COUNT, "the slow member lost messages");
    assert!(
        got.iter().enumerate().all(|(i, n)| *n == Some(i as u64)),
        "out of order"
    );
    // Unheld, 1,500 broadcasts leave in a few milliseconds; held by the member's window
    // (under ~800 messages of 1 block each), the sender waits for it to read the rest.
    assert!(
        sent_in >= Duration::from_millis(500),
        "sender was not held back: {sent_in:?}"
    );
    assert!(rss < 64 * 1024, "slow member's peak RSS {rss} KiB");
    eprintln!("sender held {sent_in:?}; slow member's peak RSS {rss} KiB");
}

/// Asks inside a group: a member asks another by its socket and by instance (anycast) and
/// gets the typed reply; an ask the other member holds fails with "service gone" as soon as
/// that member leaves (its service stopped), long before the timeout; nothing stays pending.
#[test]
fn group_member_asks_are_answered_and_fail_at_once_when_the_member_leaves() {
    actix_rt::System::new().block_on(async {
        let nodes: Vec<Node> = udp_cluster("gask", 2)
            .await
            .into_iter()
            .map(Node::from_transport)
            .collect();
        let (a, _la) = member(&nodes[0], 1).await;
        let (b, _lb) = member(&nodes[1], 2).await;
        let (ga, gb) = (a.group().expect("group"), b.group().expect("group"));
        wait("members up", || {
            ga.members_up() == 1 && gb.members_up() == 1
        })
        .await;
        assert_eq!(ga.ask_unicast(b.socket(), &Square(12)).await, Ok(144));
        assert_eq!(gb.ask_anycast(1, &Square(7)).await, Ok(49));
        for n in 0..100u64 {
            assert_eq!(ga.ask_anycast(2, &Square(n)).await, Ok(n * n));
        }
        assert!(matches!(
            ga.ask_anycast(5, &Square(1)).await,
            Err(AskError::NoService)
        ));
        // b holds this one; stopping b makes it leave the group.
        let held = {
            let ga = ga.clone();
            let to = b.socket();
            tokio::spawn(async move {
                let t0 = Instant::now();
                let r = ga
                    .ask_unicast_timeout(to, &Hang, Duration::from_secs(10))
                    .await;
                (r, t0.elapsed())
            })
        };
        wait("the held ask", || ga.pending_asks() == 1).await;
        b.stop().await;
        let (r, took) = held.await.expect("ask task");
        assert!(
            matches!(r, Err(AskError::ServiceGone)),
            "held ask ended with {r:?}"
        );
        assert!(took < Duration::from_secs(2), "failed only after {took:?}");
        assert_eq!(ga.pending_asks(), 0);
    });
}
