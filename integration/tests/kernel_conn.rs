//! Connections with a real Linux 6.1 kernel node (../shared/tipc-peer) over UDP and Ethernet:
//! the kernel's client connects to our listener and we connect to the kernel's, stream and
//! seqpacket, connect-style and implicit (data in the SYN); 20,000 bytes each way intact; close
//! seen on both sides; our node killed -> the kernel's connection is aborted, and the kernel
//! node gone -> ours is. Runs when TIPC_KERNEL_TESTS=1 (CI sets it).

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use tipc_integration::kernel_peer::{
    kernel_tests_enabled, Bearer, KernelPeer, PeerNetns, UpOptions,
};
use tipc_integration::node_proc::{bin_path, NodeProc};

/// A `tipcctl` child: stdout collected raw, stderr event lines collected.
struct Ctl {
    child: Child,
    events: mpsc::Receiver<String>,
    out: mpsc::Receiver<Vec<u8>>,
    seen: Vec<String>,
    data: Vec<u8>,
}

impl Ctl {
    fn spawn(node: &NodeProc, args: &[&str]) -> Ctl {
        let mut child = Command::new(bin_path("tipcctl"))
            .arg("--node")
            .arg(&node.control)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tipcctl");
        let err = child.stderr.take().expect("stderr");
        let mut stdout = child.stdout.take().expect("stdout");
        let (tx, events) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let (tx, out) = mpsc::channel();
        std::thread::spawn(move || {
            let mut b = vec![0u8; 65536];
            while let Ok(n) = stdout.read(&mut b) {
                if n == 0 || tx.send(b[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Ctl {
            child,
            events,
            out,
            seen: Vec::new(),
            data: Vec::new(),
        }
    }

    fn wait(&mut self, pred: impl Fn(&str) -> bool, timeout: Duration) -> Option<String> {
        let end = Instant::now() + timeout;
        if let Some(l) = self.seen.iter().find(|l| pred(l)) {
            return Some(l.clone());
        }
        while let Ok(l) = self
            .events
            .recv_timeout(end.saturating_duration_since(Instant::now()))
        {
            self.seen.push(l.clone());
            if pred(&l) {
                return Some(l);
            }
        }
        None
    }

    /// Wait until `n` bytes of output have arrived.
    fn read(&mut self, n: usize, timeout: Duration) -> &[u8] {
        let end = Instant::now() + timeout;
        while self.data.len() < n {
            match self
                .out
                .recv_timeout(end.saturating_duration_since(Instant::now()))
            {
                Ok(d) => self.data.extend_from_slice(&d),
                Err(_) => break,
            }
        }
        &self.data
    }

    fn write(&mut self, d: &[u8]) {
        self.child
            .stdin
            .as_mut()
            .expect("stdin")
            .write_all(d)
            .expect("write tipcctl stdin");
    }

    fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Wait for the process to exit; its status and every event line.
    fn finish(&mut self, timeout: Duration) -> (Option<bool>, Vec<String>) {
        let end = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break Some(s.success());
            }
            if Instant::now() > end {
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        std::thread::sleep(Duration::from_millis(50));
        while let Ok(l) = self.events.try_recv() {
            self.seen.push(l);
        }
        (status, self.seen.clone())
    }
}

impl Drop for Ctl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
    if !kernel_tests_enabled() {
        eprintln!("skipped: set TIPC_KERNEL_TESTS=1 to run kernel interop tests");
        return;
    }
    let _guard = PeerNetns::new(ns);
    let mut k = KernelPeer::up(
        "k",
        &UpOptions {
            bearer,
            remote: None,
            netns: Some(ns.into()),
            id: None,
        },
    )
    .expect("kernel VM up");
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
    let mut lseq = Ctl::spawn(&node, &["listen", "seqpacket", "7000:1", "--echo"]);
    let mut lstr = Ctl::spawn(&node, &["listen", "stream", "7001:1", "--echo"]);
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
        let mut c = Ctl::spawn(&node, &args);
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
        }
        let mut c = Ctl::spawn(&node, &args);
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
            let line = l
                .wait(|x| x.starts_with(&closed), Duration::from_secs(3))
                .unwrap_or_else(|| panic!("{:?}", l.seen));
            assert!(line.contains(bytes), "{line}");
        }
    }

    // --- Our node killed: the kernel's connection is aborted. ---
    let mut silent = Ctl::spawn(&node, &["listen", "stream", "7002:1"]);
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
    let t = Instant::now();
    node.kill();
    let aborted = loop {
        let (_, log) = k.exec("cat /tmp/hold.log").unwrap();
        if log.contains("ERROR op=recv") {
            break log;
        }
        assert!(
            t.elapsed() < Duration::from_secs(6),
            "kernel connection not aborted 6 s after our node died:\n{log}"
        );
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
    let deadline = Instant::now() + Duration::from_secs(5);
    while !node
        .ctl(&["nametable", "show"])
        .1
        .lines()
        .any(|l| l.starts_with("6001 "))
    {
        assert!(Instant::now() < deadline, "kernel binding not seen again");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut c = Ctl::spawn(&node, &["connect", "--service", "6001:1", "--stream"]);
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
fn kernel_connections_over_udp() {
    scenario("tpc-udp", Bearer::Udp, &["--udp", "10.99.0.1"]);
}

#[test]
fn kernel_connections_over_ethernet() {
    scenario("tpc-eth", Bearer::Eth, &["--eth", "tpbr0"]);
}
