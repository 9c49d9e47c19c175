//! Connections with a real Linux 6.1 kernel node (../shared/tipc-peer) over UDP and Ethernet:
//! the kernel's client connects to our listener and we connect to the kernel's, stream and
//! seqpacket, connect-style and implicit (data in the SYN); 20,000 bytes each way intact; close
//! seen on both sides; our node killed -> the kernel's connection is aborted, and the kernel
//! node gone -> ours is.
//!
//! Ignored by default (`#[ignore = "needs the kernel peer VM"]`); scripts/test runs it with
//! `--include-ignored` as root, and it fails if the harness cannot boot the VM.

use std::time::{Duration, Instant};
use tipc_integration::ctl_proc::{CtlProc, Lines};
use tipc_integration::kernel_peer::{scenario_vm, Bearer};
use tipc_integration::node_proc::NodeProc;

/// `n` bytes of a recognisable pattern.
fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| b'a' + ((i / 7 + seed as usize) % 26) as u8)
        .collect()
}

fn start_node(ns: &str, node_args: &[&str]) -> NodeProc {
    let mut args = vec!["--id", "host"];
    args.extend_from_slice(node_args);
    let mut node = NodeProc::start(ns, &args, Some(ns));
    node.wait_line("link up", Duration::from_secs(20))
        .expect("link up");
    node
}

fn scenario(ns: &str, bearer: Bearer, node_args: &[&str]) {
    let (_guard, mut k) = scenario_vm(ns, bearer, None);
    let mut node = start_node(ns, node_args);
    assert!(k.wait_link_up("host", Duration::from_secs(10)).unwrap());
    let kaddr = format!("{:08x}", k.node_addr().expect("kernel node address"));

    // Kernel listeners (echo): seqpacket 6000:1, stream 6001:1.
    for cmd in [
        "tipc-helper seq-server 6000:1 >/tmp/seq.log 2>&1 &",
        "tipc-helper stream-server 6001:1 >/tmp/stream.log 2>&1 &",
    ] {
        let (rc, out) = k.exec(cmd).unwrap();
        assert_eq!(rc, 0, "{out}");
    }
    // Our listeners (echo): seqpacket 7000:1, stream 7001:1.
    let mut lseq = CtlProc::spawn(
        &node,
        &["listen", "seqpacket", "7000:1", "--echo"],
        Lines::Stderr,
    );
    let mut lstr = CtlProc::spawn(
        &node,
        &["listen", "stream", "7001:1", "--echo"],
        Lines::Stderr,
    );
    for l in [&mut lseq, &mut lstr] {
        assert!(l
            .wait(
                |l| l.starts_with("READY sock=sock:0x686f7374:"),
                Duration::from_secs(5)
            )
            .is_some());
    }
    // Both tables must know the other side's listeners before anyone connects.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, ours, _) = node.ctl(&["nametable", "show"]);
        let (_, theirs) = k.exec("tipc nametable show").unwrap();
        if ours.lines().any(|l| l.starts_with("6001 "))
            && theirs.lines().any(|l| l.starts_with("7001 "))
        {
            break;
        }
        assert!(Instant::now() < deadline, "tables:\n{ours}\n{theirs}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // --- We connect to the kernel. ---
    // Seqpacket, connect-style and implicit: each line is one message, echoed back.
    for implicit in [false, true] {
        let mut args = vec![
            "connect",
            "--service",
            "6000:1",
            "--seqpacket",
            "--expect",
            "13",
        ];
        if implicit {
            args.push("--implicit");
        }
        let mut c = CtlProc::spawn(&node, &args, Lines::Stderr);
        c.write(b"first\nsecond\n");
        c.close_stdin();
        let got = c.read(13, Duration::from_secs(5)).to_vec();
        let (ok, seen) = c.finish(Duration::from_secs(5));
        assert_eq!(got, b"first\nsecond\n", "{seen:?}");
        assert_eq!(ok, Some(true), "{seen:?}");
        assert!(
            seen.iter()
                .any(|l| l.starts_with("CONNECTED sock=sock:0x686f7374:")
                    && l.contains(&format!("peer=sock:0x{kaddr}:"))
                    && l.contains("kind=seqpacket")
                    && (l.contains("implicit=1") == implicit)),
            "{seen:?}"
        );
    }
    // Stream, 20,000 bytes each way, connect-style and implicit.
    for implicit in [false, true] {
        let data = pattern(20_000, implicit as u8);
        let mut args = vec![
            "connect",
            "--service",
            "6001:1",
            "--stream",
            "--expect",
            "20000",
        ];
        if implicit {
            args.push("--implicit");
        } else {
            // TIPC_NODELAY on this one (no Nagle on our writes).
            args.push("--nodelay");
        }
        let mut c = CtlProc::spawn(&node, &args, Lines::Stderr);
        c.write(&data);
        c.close_stdin();
        let got = c.read(20_000, Duration::from_secs(10)).to_vec();
        let (ok, seen) = c.finish(Duration::from_secs(5));
        assert!(
            got == data,
            "stream echo altered ({} bytes back) {seen:?}",
            got.len()
        );
        assert_eq!(ok, Some(true), "{seen:?}");
    }
    // The kernel's servers saw our connections close orderly.
    std::thread::sleep(Duration::from_millis(300));
    let (_, seq_log) = k.exec("cat /tmp/seq.log").unwrap();
    let (_, stream_log) = k.exec("cat /tmp/stream.log").unwrap();
    assert_eq!(
        seq_log.matches("reason=eof").count(),
        2,
        "kernel seq-server log:\n{seq_log}"
    );
    assert_eq!(
        stream_log.matches("reason=eof").count(),
        2,
        "kernel stream-server log:\n{stream_log}"
    );
    assert_eq!(
        stream_log
            .lines()
            .filter(|l| l.starts_with("RECV conn="))
            .map(|l| l
                .split_whitespace()
                .find_map(|w| w.strip_prefix("len="))
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(0))
            .sum::<usize>(),
        40_000,
        "the kernel received 20,000 bytes per stream connection:\n{stream_log}"
    );

    // --- The kernel connects to us. ---
    for (cmd, done) in [
        (
            "tipc-helper seq-client 7000:1 first second",
            "DONE echoed=2 sent=2",
        ),
        (
            "tipc-helper seq-client 7000:1 first second --implicit",
            "DONE echoed=2 sent=2",
        ),
        (
            "tipc-helper stream-client 7001:1 x --size 20000",
            "DONE echoed=1 sent=1",
        ),
        (
            "tipc-helper stream-client 7001:1 y --size 20000 --implicit",
            "DONE echoed=1 sent=1",
        ),
    ] {
        let (rc, out) = k.exec(cmd).unwrap();
        assert_eq!(rc, 0, "{cmd}: {out}");
        assert!(
            out.contains("CONNECTED sock=") && out.contains("peer=sock:0x686f7374:"),
            "{cmd}: {out}"
        );
        assert!(out.contains(done) && !out.contains("ERROR"), "{cmd}: {out}");
    }
    // Our listeners saw each connection accepted from the kernel and closed orderly (eof).
    for (l, n, bytes) in [
        (&mut lseq, 2, "received=11"),
        (&mut lstr, 2, "received=20000"),
    ] {
        for i in 1..=n {
            let accept = format!("ACCEPT conn={i} peer=sock:0x{kaddr}:");
            assert!(
                l.wait(|x| x.starts_with(&accept), Duration::from_secs(3))
                    .is_some(),
                "{:?}",
                l.seen
            );
            let closed = format!("CLOSED conn={i} reason=eof");
            let (_, line) = l
                .wait(|x| x.starts_with(&closed), Duration::from_secs(3))
                .unwrap_or_else(|| panic!("{:?}", l.seen));
            assert!(line.contains(bytes), "{line}");
        }
    }

    // --- Our node killed: the kernel's connection is aborted. ---
    let mut silent = CtlProc::spawn(&node, &["listen", "stream", "7002:1"], Lines::Stderr);
    assert!(silent
        .wait(|l| l.starts_with("READY"), Duration::from_secs(5))
        .is_some());
    std::thread::sleep(Duration::from_millis(300));
    let (rc, out) = k
        .exec("tipc-helper stream-client 7002:1 hold --timeout 20000 >/tmp/hold.log 2>&1 &")
        .unwrap();
    assert_eq!(rc, 0, "{out}");
    assert!(silent
        .wait(|l| l.starts_with("ACCEPT conn=1"), Duration::from_secs(5))
        .is_some());
    // The kernel's side is established once its first data arrived (a socket still
    // connecting is not aborted by node loss, it waits for its connect timeout; our ACK may
    // still be on its way when ACCEPT is printed).
    assert_eq!(silent.read(4, Duration::from_secs(5)), b"hold");
    let t = Instant::now();
    node.kill();
    let aborted = loop {
        let (_, log) = k.exec("cat /tmp/hold.log").unwrap();
        if log.contains("ERROR op=recv") {
            break log;
        }
        if t.elapsed() > Duration::from_secs(6) {
            let (_, links) = k.exec("tipc link list; tipc node list").unwrap_or_default();
            panic!("kernel connection not aborted 6 s after our node died:\n{log}\n{links}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!(
        "kernel connection aborted within {:?} of SIGKILL: {}",
        t.elapsed(),
        aborted.trim()
    );
    assert!(!aborted.contains("timeout"), "{aborted}");
    drop((lseq, lstr, silent));
    drop(node);

    // --- The kernel node gone: our connection is aborted. ---
    let node = start_node(ns, node_args);
    assert!(k.wait_link_up("host", Duration::from_secs(10)).unwrap());
    assert!(
        node.wait_binding(6001, Duration::from_secs(5)),
        "kernel binding not seen again"
    );
    let mut c = CtlProc::spawn(
        &node,
        &["connect", "--service", "6001:1", "--stream"],
        Lines::Stderr,
    );
    c.write(b"still here");
    assert_eq!(c.read(10, Duration::from_secs(5)), b"still here");
    let t = Instant::now();
    k.down().unwrap();
    let (ok, seen) = c.finish(Duration::from_secs(6));
    let took = t.elapsed();
    eprintln!("our connection broke {took:?} after the kernel VM was stopped: {seen:?}");
    assert_eq!(ok, Some(false), "{seen:?}");
    assert!(
        seen.iter().any(|l| l.contains("connection broken")),
        "{seen:?}"
    );
    drop(node);
}

#[test]
#[ignore = "needs the kernel peer VM"]
fn kernel_connections_over_udp() {
    scenario("tpc-udp", Bearer::Udp, &["--udp", "10.99.0.1"]);
}

#[test]
#[ignore = "needs the kernel peer VM"]
fn kernel_connections_over_ethernet() {
    scenario("tpc-eth", Bearer::Eth, &["--eth", "tpbr0"]);
}
