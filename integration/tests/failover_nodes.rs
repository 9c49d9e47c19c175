//! Link failover between two real `tipc-node` processes joined by two Ethernet bearers (two
//! veth pairs between network namespaces this test creates; needs root): a stream connection
//! keeps going, intact, while first one pair and then the other loses every frame (nftables
//! drop at ingress on both ends). Each failed link times out, what it had not got
//! acknowledged goes over the other link in FAILOVER messages, the node never goes down and
//! the connection never breaks; the first link comes back once its failover has ended, so the
//! second cut fails over the link that carries the stream.
//!
//! Ignored by default (`#[ignore = "needs root, network namespaces and nft"]`); scripts/test
//! runs it with `--include-ignored` as root, and without root or nft it fails saying so.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tipc_integration::ctl_proc::CtlProc;
use tipc_integration::netns::{require_netns, require_nft, DropHook, DropMatch, NetNs, RandomDrop};
use tipc_integration::node_proc::NodeProc;
use tipc_integration::pattern::{block, fnv, FNV0};

/// Every frame arriving on `dev` in `ns` is dropped.
fn cut(ns: &NetNs, dev: &str) {
    ns.add_random_drop(&RandomDrop {
        percent: 100,
        matcher: DropMatch::All,
        hook: DropHook::NetdevIngress(dev.to_string()),
    })
    .expect("nft drop");
}

/// Cut pair `i` at both ends and wait until both nodes reported their `n`-th link down;
/// returns how long that took.
fn cut_pair(a: &NetNs, b: &NetNs, i: usize, nodes: [&mut NodeProc; 2], n: usize) -> Duration {
    let t = Instant::now();
    cut(a, &format!("fa{i}"));
    cut(b, &format!("fb{i}"));
    let [na, nb] = nodes;
    assert!(
        wait_lines(na, "link down", n, Duration::from_secs(5))
            && wait_lines(nb, "link down", n, Duration::from_secs(5)),
        "link {i} never failed: {:?} / {:?}",
        na.seen,
        nb.seen
    );
    t.elapsed()
}

/// Undo [`cut`].
fn uncut(ns: &NetNs, dev: &str) {
    ns.exec(
        "nft",
        &["delete", "table", "netdev", &format!("tipctest_i_{dev}")],
    )
    .expect("nft delete");
}

/// Wait (bounded) for `n` lines starting with `prefix` among the node's event lines.
fn wait_lines(node: &mut NodeProc, prefix: &str, n: usize, timeout: Duration) -> bool {
    let end = Instant::now() + timeout;
    loop {
        node.drain();
        if node.seen.iter().filter(|l| l.starts_with(prefix)).count() >= n {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        node.wait_line(prefix, Duration::from_millis(50));
        if node.seen.iter().filter(|l| l.starts_with(prefix)).count() >= n {
            return true;
        }
    }
}

#[test]
#[ignore = "needs root, network namespaces and nft"]
fn stream_survives_each_of_two_links_failing_in_turn() {
    require_netns();
    require_nft();
    let a = NetNs::create_unique("tfoa").expect("netns a");
    let b = NetNs::create_unique("tfob").expect("netns b");
    for i in 0..2 {
        a.add_veth(&format!("fa{i}"), &b, &format!("fb{i}"))
            .expect("veth");
        a.link_up(&format!("fa{i}")).expect("up");
        b.link_up(&format!("fb{i}")).expect("up");
    }
    let mut na = NodeProc::start(
        "foa",
        &["--id", "foa", "--eth", "fa0", "--eth", "fa1"],
        Some(a.name()),
    );
    let mut nb = NodeProc::start(
        "fob",
        &["--id", "fob", "--eth", "fb0", "--eth", "fb1"],
        Some(b.name()),
    );
    assert!(
        wait_lines(&mut na, "link up", 2, Duration::from_secs(10))
            && wait_lines(&mut nb, "link up", 2, Duration::from_secs(10)),
        "two links never came up: {:?} / {:?}",
        na.seen,
        nb.seen
    );
    let (mut server, mut client) = CtlProc::stream_pair(&na, &nb, "7300:1");
    // The writer writes until told to stop, then ends the input (the client then closes).
    let stop = Arc::new(AtomicBool::new(false));
    let mut stdin = client.child.stdin.take().expect("stdin");
    let writer = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 16 * 1024];
            let (mut h, mut n) = (FNV0, 0u64);
            // Bounded: at most 4 GiB.
            for i in 0..(1u64 << 18) {
                if stop.load(Ordering::Acquire) {
                    break;
                }
                block(i, &mut buf);
                if stdin.write_all(&buf).is_err() {
                    break;
                }
                h = fnv(h, &buf);
                n += buf.len() as u64;
            }
            (n, h)
        })
    };
    let mut out = server.child.stdout.take().expect("server stdout");
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let (mut h, mut n) = (FNV0, 0u64);
        let mut stamps = Vec::new();
        loop {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => {
                    h = fnv(h, &buf[..k]);
                    n += k as u64;
                    stamps.push((Instant::now(), n));
                }
            }
        }
        (n, h, stamps)
    });
    // Cut pair 0, wait for its link to fail on both nodes; then the stream runs on link 1 only.
    std::thread::sleep(Duration::from_millis(500));
    let down0 = cut_pair(&a, &b, 0, [&mut na, &mut nb], 1);
    std::thread::sleep(Duration::from_millis(500));
    // Pair 0 back: its link comes up again once both failovers have ended.
    uncut(&a, "fa0");
    uncut(&b, "fb0");
    assert!(
        wait_lines(&mut na, "link up", 3, Duration::from_secs(10))
            && wait_lines(&mut nb, "link up", 3, Duration::from_secs(10)),
        "link 0 never came back: {:?} / {:?}",
        na.seen,
        nb.seen
    );
    std::thread::sleep(Duration::from_millis(500));
    // Cut pair 1: the link that carries the stream now fails over to link 0.
    let down1 = cut_pair(&a, &b, 1, [&mut na, &mut nb], 2);
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::Release);
    let (sent, h_sent) = writer.join().expect("writer");
    let (got, h_got, stamps) = reader.join().expect("reader");
    let (status, lines) = client.finish(Duration::from_secs(10));
    assert_eq!(status, Some(true), "client did not end cleanly: {lines:?}");
    let (_, lines) = server.finish(Duration::from_secs(10));
    assert!(
        lines.iter().any(|l| l.contains("reason=eof")),
        "server saw no orderly end: {lines:?}"
    );
    na.drain();
    nb.drain();
    assert!(
        !na.seen
            .iter()
            .chain(&nb.seen)
            .any(|l| l.starts_with("node down")),
        "the node went down: {:?} / {:?}",
        na.seen,
        nb.seen
    );
    assert_eq!(got, sent, "bytes received");
    assert_eq!(h_got, h_sent, "stream damaged");
    // The longest pause of the reader (the failed link's tolerance, then the failover).
    let gap = stamps
        .windows(2)
        .map(|w| w[1].0 - w[0].0)
        .max()
        .unwrap_or_default();
    println!(
        "failover stream: {} MiB intact; links down {:?} and {:?} after the cuts; longest pause {:?}",
        got >> 20,
        down0,
        down1,
        gap
    );
    assert!(sent > 8 << 20, "only {sent} bytes went through");
}
