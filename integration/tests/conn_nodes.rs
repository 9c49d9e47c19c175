//! Connections between real `tipc-node` processes on 127.0.0.1, driven through `tipcctl connect`
//! and `tipcctl listen stream|seqpacket`: a 1 GiB stream to a deliberately slow reader (intact,
//! memory bounded on every process), end-of-stream when the server shuts down, and a clear
//! error within the link tolerance when the server's node is SIGKILLed.

use std::io::{Read, Write};
use std::time::{Duration, Instant};
use tipc_integration::ctl_proc::{CtlProc, Lines};
use tipc_integration::node_proc::NodeProc;
use tipc_integration::pattern::{block, fnv, FNV0};

/// Resident set size and its peak of a process, in KiB (`/proc/PID/status`).
fn rss_kib(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Bound on each process's peak resident memory during the transfer.
const RSS_BOUND_KIB: u64 = 64 * 1024;

#[test]
fn one_gib_stream_to_a_slow_reader_arrives_intact_with_bounded_memory() {
    const TOTAL: u64 = 1 << 30;
    const BLK: usize = 64 * 1024;
    let (na, nb) = NodeProc::loopback_pair("ga", "gb");
    let (mut server, mut client) = CtlProc::stream_pair(&na, &nb, "7100:1");
    let mut stdin = client.child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || {
        let mut buf = vec![0u8; BLK];
        let mut h = FNV0;
        for i in 0..TOTAL / BLK as u64 {
            block(i, &mut buf);
            h = fnv(h, &buf);
            if stdin.write_all(&buf).is_err() {
                break;
            }
        }
        h
    });
    let mut out = server.child.stdout.take().expect("server stdout");
    let pids = [na.child.id(), nb.child.id()];
    let ctl_pids = [client.child.id(), server.child.id()];
    let mut got = 0u64;
    let mut h = FNV0;
    let mut buf = vec![0u8; BLK];
    let t0 = Instant::now();
    // The slow reader: first it does not read at all for 3 s (the writer must be held back,
    // not buffered), then it reads at most 256 KiB per 2 ms (~128 MiB/s).
    std::thread::sleep(Duration::from_secs(3));
    let (stalled_a, _) = rss_kib(pids[0]);
    let (stalled_b, _) = rss_kib(pids[1]);
    let mut budget = 0usize;
    // Peak resident memory of the nodes and the two tipcctl processes, sampled as we go (the
    // tipcctl processes exit at the end).
    let mut peaks = [0u64; 4];
    let all = [pids[0], pids[1], ctl_pids[0], ctl_pids[1]];
    let sample = |peaks: &mut [u64; 4]| {
        for (p, pid) in peaks.iter_mut().zip(all) {
            *p = (*p).max(rss_kib(pid).1);
        }
    };
    sample(&mut peaks);
    while got < TOTAL {
        let n = out.read(&mut buf).expect("read listener stdout");
        assert!(n > 0, "listener output ended after {got} bytes");
        h = fnv(h, &buf[..n]);
        got += n as u64;
        budget += n;
        if budget >= 256 * 1024 {
            budget = 0;
            std::thread::sleep(Duration::from_millis(2));
            if got % (16 << 20) < 256 * 1024 {
                sample(&mut peaks);
            }
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "1 GiB not through after 300 s ({got} bytes)"
        );
    }
    let elapsed = t0.elapsed();
    let sent_hash = writer.join().expect("writer");
    assert_eq!(h, sent_hash, "1 GiB arrived altered");
    for (p, pid) in peaks.iter_mut().zip(pids) {
        *p = (*p).max(rss_kib(pid).1);
    }
    eprintln!(
        "1 GiB in {:.1} s ({:.0} MiB/s incl. a 3 s stall); RSS while stalled: a {stalled_a} KiB, \
         b {stalled_b} KiB; peak RSS node a, node b, tipcctl connect, tipcctl listen: {peaks:?} KiB",
        elapsed.as_secs_f64(),
        1024.0 / elapsed.as_secs_f64()
    );
    assert!(peaks.iter().all(|p| *p > 0), "RSS not sampled: {peaks:?}");
    for p in &peaks {
        assert!(
            *p < RSS_BOUND_KIB,
            "a process grew to {p} KiB (bound {RSS_BOUND_KIB} KiB): {peaks:?}"
        );
    }
    assert!(
        server
            .wait_prefix("CLOSED conn=1 reason=eof", Duration::from_secs(10))
            .is_some(),
        "{:?}",
        server.seen
    );
    let status = client.child.wait().expect("client exit");
    assert!(status.success(), "client: {:?}", client.seen);
}

#[test]
fn server_shutdown_is_end_of_stream_and_sigkill_of_its_node_breaks_the_client() {
    let (na, mut nb) = NodeProc::loopback_pair("ka", "kb");
    // An echo server: the client's line comes back.
    let mut server = CtlProc::spawn(
        &nb,
        &["listen", "seqpacket", "7200:1", "--echo"],
        Lines::Stderr,
    );
    server
        .wait_prefix("READY ", Duration::from_secs(5))
        .expect("ready");
    // The client's node must know the binding before it connects by name.
    assert!(
        na.wait_binding(7200, Duration::from_secs(5)),
        "binding not distributed"
    );
    let mut client = CtlProc::spawn(
        &na,
        &[
            "connect",
            "--service",
            "7200:1",
            "--seqpacket",
            "--implicit",
        ],
        Lines::Stderr,
    );
    let mut stdin = client.child.stdin.take().expect("stdin");
    stdin.write_all(b"ping\n").unwrap();
    client
        .wait_prefix("CONNECTED ", Duration::from_secs(10))
        .expect("connected");
    let mut line = [0u8; 5];
    client
        .child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut line)
        .unwrap();
    assert_eq!(&line, b"ping\n");
    // The server ends the connection: the listening tipcctl goes away, its node shuts the
    // connection down, and the client sees end-of-stream at once and exits 0.
    let t = Instant::now();
    let _ = server.child.kill();
    let status = client.child.wait().unwrap();
    let took = t.elapsed();
    assert!(status.success(), "{:?}", client.seen);
    assert!(
        took < Duration::from_millis(500),
        "end-of-stream after {took:?}"
    );
    drop(stdin);

    // SIGKILL of the server's node: the client's pending read fails within the tolerance.
    let mut server = CtlProc::spawn(&nb, &["listen", "stream", "7201:1"], Lines::Stderr);
    server
        .wait_prefix("READY ", Duration::from_secs(5))
        .expect("ready");
    assert!(
        na.wait_binding(7201, Duration::from_secs(5)),
        "binding not distributed"
    );
    let mut client = CtlProc::spawn(
        &na,
        &["connect", "--service", "7201:1", "--stream"],
        Lines::Stderr,
    );
    let _stdin = client.child.stdin.take().expect("stdin");
    client
        .wait_prefix("CONNECTED ", Duration::from_secs(10))
        .expect("connected");
    server
        .wait_prefix("ACCEPT conn=1", Duration::from_secs(5))
        .expect("accepted");
    let t = Instant::now();
    nb.kill();
    let end = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = client.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < end,
            "client still connected 5 s after SIGKILL"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    let took = t.elapsed();
    std::thread::sleep(Duration::from_millis(50));
    let events = client.events();
    eprintln!("client broke {took:?} after SIGKILL: {events:?}");
    assert!(!status.success());
    assert!(
        events.iter().any(|l| l.contains("connection broken")),
        "{events:?}"
    );
    // Link tolerance 1.5 s (+ one supervision tick).
    assert!(took < Duration::from_millis(2500), "{took:?}");
    drop(na);
}
