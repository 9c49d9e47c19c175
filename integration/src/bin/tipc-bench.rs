//! `tipc-bench`: two processes on 127.0.0.1, measured in one invocation against tokio TCP
//! (length-prefixed framing) and raw UDP, with the ratios printed.
//!
//! * one-way throughput of N messages of 64 B and 1 KiB (TIPC over a UDP bearer: a link with
//!   window, acks and bundling; TCP: a stream of u32-length-prefixed frames; UDP: one datagram
//!   per message, counting what arrives);
//! * request/reply latency (p50, p99) of a 64-byte ping-pong.
//!
//! The TIPC side uses the datagram socket API: an RDM socket bound to a service on the server,
//! the client sending to it (throughput: to its socket address; latency: anycast to the service).
//!
//! Connection sockets (issue 4 item 6), against tokio TCP with `TCP_NODELAY`:
//! * `conn-rr`: a fresh connection per 64-byte request: TIPC "0-RTT" (`connect_with`, the SYN
//!   carries the request; the server accepts, reads, replies and shuts down) vs TCP connect +
//!   request + reply + close; p50/p99 and operations per second;
//! * `stream`: one-way bulk transfer (256 MiB in 64 KiB writes by default) on a stream
//!   connection; the receiver counts the bytes and sums them, and confirms both at the end;
//! * `conn-lat`: 64-byte ping-pong on an open seqpacket connection vs length-prefixed TCP.
//!
//! Groups (issue 12 item 7, `group.rs`), on three node processes: a broadcast to 8 members
//! against 8 RDM unicasts of the same messages, and 16 senders to one member against 16 RDM
//! senders to one socket (rates, losses and ratios); the broadcast again with each node in a
//! network namespace of its own, over UDP multicast against replicast (root only).
//!
//! ```text
//! cargo run --release -p tipc-integration --bin tipc-bench -- --count 200000
//! ```

#[path = "tipc-bench/group.rs"]
mod group;
#[path = "tipc-bench/service.rs"]
mod service;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tipc_actors::addr::{Scope, ServiceAddr, ServiceRange};
use tipc_actors::TransportNode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const USAGE: &str = "usage: tipc-bench [--count N] [--rtts N] [--conns N] [--stream-mib N] \
     [--only tput|lat|tipc-tput|tipc-lat|udp-lat|conn|conn-rr|stream|conn-lat|tipc-conn-rr|tipc-stream|tipc-conn-lat|group|group-mcast|service|service-tell|service-traced|service-raw]   \
     (internal: --serve KIND PORT PEER, --only group-mcast-in --method multicast|replicast)";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve") {
        let kind = args.get(2).cloned().unwrap_or_default();
        if kind == "group-rx" || kind == "rdm-rx" {
            group::serve(&kind, &args[3..]);
            return;
        }
        if kind == "svc" {
            let num = |i: usize| args.get(i).and_then(|p| p.parse().ok()).unwrap_or(0);
            service::serve(num(3), num(4));
            return;
        }
        let port: u16 = args.get(3).and_then(|p| p.parse().ok()).unwrap_or(0);
        let peer: u16 = args.get(4).and_then(|p| p.parse().ok()).unwrap_or(0);
        serve(&kind, port, peer);
        return;
    }
    let mut count = 200_000u64;
    let mut rtts = 5_000usize;
    let mut only = String::new();
    let mut method = String::new();
    let mut cfg = ConnCfg {
        conns: 5_000,
        stream_bytes: 256 << 20,
        rtts: 0,
    };
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--count" => {
                count = args
                    .get(i + 1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(count)
            }
            "--rtts" => rtts = args.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or(rtts),
            "--only" => only = args.get(i + 1).cloned().unwrap_or_default(),
            "--method" => method = args.get(i + 1).cloned().unwrap_or_default(),
            "--conns" => {
                cfg.conns = args
                    .get(i + 1)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(cfg.conns)
            }
            "--stream-mib" => {
                cfg.stream_bytes = args
                    .get(i + 1)
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(|m| m << 20)
                    .unwrap_or(cfg.stream_bytes)
            }
            _ => {
                eprintln!("{USAGE}");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    cfg.rtts = rtts;
    match only.as_str() {
        "" => {
            run_all(count, rtts);
            run_conn(&cfg);
            group::run(count);
            service::run(count, rtts);
        }
        "group" => group::run(count),
        "service" => service::run(count, rtts),
        "group-mcast" => group::run_mcast(count),
        // Inside the namespace of node A (started by `group-mcast`).
        "group-mcast-in" => group::mcast_inner(count, &method),
        // Profiling aids: one side of a group comparison.
        "tipc-group-bcast" => group::run_part("group-bcast", count),
        "tipc-group-m2o" => group::run_part("group-m2o", count),
        "rdm-m2o" => group::run_part("rdm-m2o", count),
        // Profiling aids: one phase of the service comparison, three times.
        "service-tell" | "service-traced" | "service-raw" => service::run_part(&only, count),
        "conn" => run_conn(&cfg),
        "conn-rr" => print_conn_rr(&conn_rr_tipc(cfg.conns), &conn_rr_tcp(cfg.conns)),
        "stream" => {
            let (t, c) = stream_pair(cfg.stream_bytes);
            print_stream(cfg.stream_bytes, &t, &c);
        }
        "conn-lat" => print_conn_lat(&conn_lat_tipc(rtts), &tcp_latency(rtts)),
        "tipc-conn-rr" => {
            let r = conn_rr_tipc(cfg.conns);
            println!(
                "tipc 0-RTT p50 {:.1} us p99 {:.1} us {:.0} ops/s",
                r.lat.p50_us, r.lat.p99_us, r.ops_per_s
            );
        }
        "tipc-stream" => {
            let r = stream_tipc(cfg.stream_bytes);
            println!("tipc stream {:.1} MB/s", r.mbytes_per_s);
        }
        "tipc-conn-lat" => {
            let l = conn_lat_tipc(rtts);
            println!("tipc conn p50 {:.1} us p99 {:.1} us", l.p50_us, l.p99_us);
        }
        // Profiling aids: one part of the comparison only.
        "tipc-tput" => {
            for size in [64usize, 1024] {
                let t = tipc_throughput(count, size);
                println!("{size:>5} B  tipc  {:>12.0} msgs/s", t.msgs_per_s);
            }
        }
        "tipc-lat" => {
            let l = tipc_latency(rtts);
            println!("tipc p50 {:.1} us p99 {:.1} us", l.p50_us, l.p99_us);
        }
        "udp-lat" => {
            let l = udp_latency(rtts);
            println!("udp p50 {:.1} us p99 {:.1} us", l.p50_us, l.p99_us);
        }
        "lat" => {
            let (t, u) = (tipc_latency(rtts), udp_latency(rtts));
            println!(
                "p50 tipc {:.1} us udp {:.1} us: {:.2}x",
                t.p50_us,
                u.p50_us,
                t.p50_us / u.p50_us
            );
        }
        "tput" => {
            for size in [64usize, 1024] {
                let t = tipc_throughput(count, size);
                let c = tcp_throughput(count, size, false);
                println!(
                    "{size:>5} B  tipc {:>10.0} tcp {:>10.0} msgs/s: {:.2}x",
                    t.msgs_per_s,
                    c.msgs_per_s,
                    t.msgs_per_s / c.msgs_per_s
                );
            }
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}

/// A server child process, killed on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_server(kind: &str, port: u16, peer: u16) -> Server {
    let exe = std::env::current_exe().expect("current_exe");
    let child = Command::new(exe)
        .args(["--serve", kind, &port.to_string(), &peer.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn server");
    // Give it time to bind.
    std::thread::sleep(Duration::from_millis(300));
    Server(child)
}

/// A port free for both UDP and TCP (retried: after thousands of TCP connections an
/// ephemeral UDP port is often taken on the TCP side).
fn free_port() -> u16 {
    for _ in 0..100 {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let a = s.local_addr().expect("addr");
        if let Ok(t) = std::net::TcpListener::bind(a) {
            drop((s, t));
            return a.port();
        }
    }
    panic!("no port free for both UDP and TCP");
}

#[derive(Debug, Clone, Copy, Default)]
struct Result1 {
    msgs_per_s: f64,
    mbytes_per_s: f64,
}

impl Result1 {
    /// `msgs` messages of `size` bytes in `secs` seconds.
    fn of(msgs: u64, size: usize, secs: f64) -> Result1 {
        Result1 {
            msgs_per_s: msgs as f64 / secs,
            mbytes_per_s: (msgs as f64 * size as f64) / secs / 1e6,
        }
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Lat {
    p50_us: f64,
    p99_us: f64,
}

fn run_all(count: u64, rtts: usize) {
    println!(
        "tipc-bench: {count} messages one way, {rtts} round trips, two processes on 127.0.0.1"
    );
    let mut rows = Vec::new();
    for size in [64usize, 1024] {
        let t = tipc_throughput(count, size);
        let c = tcp_throughput(count, size, false);
        let cb = tcp_throughput(count, size, true);
        let u = udp_throughput(count, size);
        rows.push((size, t, c, cb, u));
    }
    let lt = tipc_latency(rtts);
    let lc = tcp_latency(rtts);
    let lu = udp_latency(rtts);
    println!();
    println!("one-way throughput          msgs/s        MB/s   tipc vs this");
    for (size, t, c, cb, u) in &rows {
        println!(
            "{size:>5} B  tipc        {:>12.0} {:>10.1}",
            t.msgs_per_s, t.mbytes_per_s
        );
        for (name, r) in [("tcp", c), ("tcp-bufd", cb), ("udp-recvd", u)] {
            println!(
                "{size:>5} B  {name:<10}  {:>12.0} {:>10.1}   {:>6.2}x",
                r.msgs_per_s,
                r.mbytes_per_s,
                t.msgs_per_s / r.msgs_per_s
            );
        }
    }
    println!("(tcp: one write per frame; tcp-bufd: 256 KiB userspace buffer; udp-recvd: datagrams that arrived)");
    println!();
    println!("64 B request/reply     p50 us    p99 us   p50 vs UDP   p50 vs TCP");
    println!(
        "tipc               {:>9.1} {:>9.1}   {:>9.2}x   {:>9.2}x",
        lt.p50_us,
        lt.p99_us,
        lt.p50_us / lu.p50_us,
        lt.p50_us / lc.p50_us
    );
    println!("tcp                {:>9.1} {:>9.1}", lc.p50_us, lc.p99_us);
    println!("udp                {:>9.1} {:>9.1}", lu.p50_us, lu.p99_us);
}

fn percentiles(mut v: Vec<Duration>) -> Lat {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1e6;
    Lat {
        p50_us: at(0.50),
        p99_us: at(0.99),
    }
}

// ------------------------------------------------------------------------------------ TIPC

fn tipc_node(id: &str, port: u16, peer: u16) -> TransportNode {
    tipc_integration::cluster::udp_node(id, port, &[peer])
}

/// The benchmark service: the sink/echo socket binds `{BENCH_TYPE, 1}`.
const BENCH_TYPE: u32 = 77_777;

async fn wait_node_up(n: &TransportNode) -> u32 {
    let mut ev = n.events();
    loop {
        if let Ok(tipc_actors::NodeEvent::NodeUp(a)) = ev.recv().await {
            return a;
        }
    }
}

/// Wait until the benchmark service is in our table (bound on the other node).
async fn wait_service(n: &TransportNode) {
    for _ in 0..500 {
        if n.nametable()
            .await
            .iter()
            .any(|p| p.range.type_() == BENCH_TYPE)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("benchmark service never appeared");
}

/// Server side for TIPC: an RDM socket bound to `{BENCH_TYPE, 1}` that counts messages (and
/// reports the count to the sender when an 8-byte `u64::MAX` marker arrives) or echoes each.
fn serve_tipc(port: u16, peer: u16, echo: bool) {
    let sys = actix_rt::System::new();
    // A spawned task, as the client's loop (see `tipc_latency`).
    let task = async move {
        let n = tipc_node("bsrv", port, peer);
        let mut s = n.dgram_socket();
        s.bind(ServiceRange::single(BENCH_TYPE, 1), Scope::Cluster)
            .await
            .expect("bind");
        // RDM has no end-to-end flow control: a receiver slower than the link drops (or returns)
        // what overflows its queue. The sink takes the largest buffer (16 MiB; the client sends
        // CRITICAL, limit 16 x rcvbuf) and drains in batches.
        s.set_rcvbuf(16 << 20).await.expect("rcvbuf");
        let mut count = 0u64;
        loop {
            let batch = s.recv_batch(1024).await;
            if batch.is_empty() {
                break;
            }
            for m in batch {
                if echo {
                    let _ = s.send_to_socket(m.from, &m.data).await;
                    continue;
                }
                if m.data.len() == 8 && m.data[..] == u64::MAX.to_be_bytes() {
                    let _ = s.send_to_socket(m.from, &count.to_be_bytes()).await;
                    count = 0;
                } else {
                    count += 1;
                }
            }
        }
    };
    sys.block_on(async move {
        let _ = actix_rt::spawn(task).await;
    });
}

fn tipc_throughput(count: u64, size: usize) -> Result1 {
    let (p1, p2) = (free_port(), free_port());
    let _srv = spawn_server("tipc-sink", p2, p1);
    let sys = actix_rt::System::new();
    sys.block_on(async move {
        let n = tipc_node("bcli", p1, p2);
        tokio::time::timeout(Duration::from_secs(10), wait_node_up(&n))
            .await
            .expect("TIPC link up");
        wait_service(&n).await;
        let mut s = n.dgram_socket();
        s.set_importance(3).expect("importance");
        let name = ServiceAddr {
            type_: BENCH_TYPE,
            instance: 1,
        };
        // Resolve once, then send directly to the socket (as a client would after a reply).
        s.send_to_service(name, &[1u8; 4]).await.expect("send");
        let payload = vec![7u8; size];
        let start = Instant::now();
        let mut dest = None;
        for _ in 0..count {
            match dest {
                Some(d) => s.send_to_socket(d, &payload).await.expect("send"),
                None => s.send_to_service(name, &payload).await.expect("send"),
            }
            if dest.is_none() {
                // Learn the server's socket from the table on the first send.
                dest = n
                    .nametable()
                    .await
                    .iter()
                    .find(|p| p.range.type_() == BENCH_TYPE)
                    .map(|p| p.socket());
            }
        }
        s.send_to_service(name, &u64::MAX.to_be_bytes())
            .await
            .expect("send");
        let m = tokio::time::timeout(Duration::from_secs(60), s.recv())
            .await
            .expect("sink report")
            .expect("socket");
        let el = start.elapsed().as_secs_f64();
        let got = u64::from_be_bytes(m.data[..8].try_into().unwrap_or([0; 8]));
        assert_eq!(got, count + 1, "TIPC sink received {got} of {}", count + 1);
        n.shutdown().await;
        Result1::of(count, size, el)
    })
}

fn tipc_latency(rtts: usize) -> Lat {
    let (p1, p2) = (free_port(), free_port());
    let _srv = spawn_server("tipc-echo", p2, p1);
    let sys = actix_rt::System::new();
    sys.block_on(async move {
        let n = tipc_node("bcli", p1, p2);
        tokio::time::timeout(Duration::from_secs(10), wait_node_up(&n))
            .await
            .expect("TIPC link up");
        wait_service(&n).await;
        let s = n.dgram_socket();
        let name = ServiceAddr {
            type_: BENCH_TYPE,
            instance: 1,
        };
        let payload = [7u8; 64];
        // The loop runs as a spawned task: woken from inside actix's LocalSet (the socket
        // inbox's Notify), a `block_on` future costs tokio one extra non-blocking
        // `epoll_wait` before it is polled, on every request and reply. The raw UDP side
        // (`udp_latency`, `serve_udp`) keeps `block_on`, the faster style for it (about
        // 0.2 us below a spawned task): each side runs in its best style.
        let v = actix_rt::spawn(async move {
            let mut v = Vec::with_capacity(rtts);
            for i in 0..rtts + 100 {
                let t = Instant::now();
                s.send_to_service(name, &payload).await.expect("send");
                s.recv().await.expect("echo");
                if i >= 100 {
                    v.push(t.elapsed());
                }
            }
            v
        })
        .await
        .expect("latency task");
        n.shutdown().await;
        percentiles(v)
    })
}

// ------------------------------------------------------------------------------------ TCP

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn serve_tcp(port: u16, echo: bool) {
    rt().block_on(async move {
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("listen");
        loop {
            let Ok((s, _)) = l.accept().await else { return };
            let _ = s.set_nodelay(true);
            let (r, mut w) = s.into_split();
            let mut r = tokio::io::BufReader::with_capacity(256 * 1024, r);
            let mut count = 0u64;
            let mut buf = vec![0u8; 70_000];
            while let Ok(len) = r.read_u32().await {
                let len = len as usize;
                if len > buf.len() || r.read_exact(&mut buf[..len]).await.is_err() {
                    break;
                }
                if echo {
                    let _ = w.write_u32(len as u32).await;
                    let _ = w.write_all(&buf[..len]).await;
                    continue;
                }
                count += 1;
                if len == 8 && buf[..8] == u64::MAX.to_be_bytes() {
                    let _ = w.write_all(&count.to_be_bytes()).await;
                    count = 0;
                }
            }
        }
    });
}

/// `buffered`: frames go through a 256 KiB `BufWriter` (userspace batching, like a framed codec
/// fed without flushing); otherwise one `write_all` (one syscall) per frame.
fn tcp_throughput(count: u64, size: usize, buffered: bool) -> Result1 {
    let port = free_port();
    let _srv = spawn_server("tcp-sink", port, 0);
    rt().block_on(async move {
        let s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let (mut r, w) = s.into_split();
        let cap = if buffered { 256 * 1024 } else { 0 };
        let mut w = tokio::io::BufWriter::with_capacity(cap, w);
        let mut frame = Vec::with_capacity(4 + size);
        frame.extend_from_slice(&(size as u32).to_be_bytes());
        frame.extend_from_slice(&vec![7u8; size]);
        let start = Instant::now();
        for _ in 0..count {
            w.write_all(&frame).await.expect("write");
        }
        w.write_u32(8).await.expect("write");
        w.write_all(&u64::MAX.to_be_bytes()).await.expect("write");
        w.flush().await.expect("flush");
        let got = r.read_u64().await.expect("report");
        let el = start.elapsed().as_secs_f64();
        assert_eq!(got, count + 1);
        Result1::of(count, size, el)
    })
}

fn tcp_latency(rtts: usize) -> Lat {
    let port = free_port();
    let _srv = spawn_server("tcp-echo", port, 0);
    rt().block_on(async move {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let _ = s.set_nodelay(true);
        let payload = vec![7u8; 64];
        let mut buf = vec![0u8; 64];
        let mut v = Vec::with_capacity(rtts);
        for i in 0..rtts + 100 {
            let t = Instant::now();
            let mut frame = Vec::with_capacity(68);
            frame.extend_from_slice(&64u32.to_be_bytes());
            frame.extend_from_slice(&payload);
            s.write_all(&frame).await.expect("write");
            let _ = s.read_u32().await.expect("read");
            s.read_exact(&mut buf).await.expect("read");
            if i >= 100 {
                v.push(t.elapsed());
            }
        }
        percentiles(v)
    })
}

// ------------------------------------------------------------------------------------ UDP

fn serve_udp(port: u16, echo: bool) {
    rt().block_on(async move {
        let s = tokio::net::UdpSocket::bind(("127.0.0.1", port))
            .await
            .expect("bind");
        let mut buf = vec![0u8; 65536];
        let mut count = 0u64;
        loop {
            let Ok((n, from)) = s.recv_from(&mut buf).await else {
                return;
            };
            if echo {
                let _ = s.send_to(&buf[..n], from).await;
                continue;
            }
            if n == 8 && buf[..8] == u64::MAX.to_be_bytes() {
                let _ = s.send_to(&count.to_be_bytes(), from).await;
                count = 0;
            } else {
                count += 1;
            }
        }
    });
}

fn udp_throughput(count: u64, size: usize) -> Result1 {
    let port = free_port();
    let _srv = spawn_server("udp-sink", port, 0);
    rt().block_on(async move {
        let s = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        s.connect(("127.0.0.1", port)).await.expect("connect");
        let payload = vec![7u8; size];
        let start = Instant::now();
        for _ in 0..count {
            s.send(&payload).await.expect("send");
        }
        let mut buf = [0u8; 8];
        // The end marker may be lost too: retry a few times.
        let mut got = 0;
        for _ in 0..20 {
            s.send(&u64::MAX.to_be_bytes()).await.expect("send");
            if let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_millis(200), s.recv(&mut buf)).await
            {
                got = u64::from_be_bytes(buf);
                break;
            }
        }
        let el = start.elapsed().as_secs_f64();
        Result1::of(got, size, el)
    })
}

fn udp_latency(rtts: usize) -> Lat {
    let port = free_port();
    let _srv = spawn_server("udp-echo", port, 0);
    rt().block_on(async move {
        let s = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind");
        s.connect(("127.0.0.1", port)).await.expect("connect");
        let payload = vec![7u8; 64];
        let mut buf = vec![0u8; 64];
        let mut v = Vec::with_capacity(rtts);
        let mut i = 0;
        while v.len() < rtts {
            let t = Instant::now();
            s.send(&payload).await.expect("send");
            if tokio::time::timeout(Duration::from_millis(100), s.recv(&mut buf))
                .await
                .is_err()
            {
                continue;
            }
            if i >= 100 {
                v.push(t.elapsed());
            }
            i += 1;
        }
        percentiles(v)
    })
}

fn serve(kind: &str, port: u16, peer: u16) {
    match kind {
        "tipc-sink" => serve_tipc(port, peer, false),
        "tipc-echo" => serve_tipc(port, peer, true),
        "tcp-sink" => serve_tcp(port, false),
        "tcp-echo" => serve_tcp(port, true),
        "udp-sink" => serve_udp(port, false),
        "udp-echo" => serve_udp(port, true),
        "tipc-conn-rr" => serve_tipc_conn(port, peer, ConnServe::OneShot),
        "tipc-stream" => serve_tipc_conn(port, peer, ConnServe::Sink),
        "tipc-conn-echo" => serve_tipc_conn(port, peer, ConnServe::Echo),
        "tcp-conn-rr" => serve_tcp_conn_rr(port),
        "tcp-stream" => serve_tcp_stream(port),
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}

// ------------------------------------------------------------------------------ connections

/// Sizes and counts of the connection benchmarks.
struct ConnCfg {
    /// Fresh connections (one request each) in `conn-rr`.
    conns: usize,
    /// Bytes sent one way in `stream`.
    stream_bytes: u64,
    /// Round trips in `conn-lat`.
    rtts: usize,
}

/// Fresh-connection request/reply figures.
#[derive(Debug, Clone, Copy, Default)]
struct ConnRr {
    lat: Lat,
    ops_per_s: f64,
}

/// Bulk stream figures.
#[derive(Debug, Clone, Copy, Default)]
struct Bulk {
    mbytes_per_s: f64,
}

/// Size of one stream write.
const WRITE_SIZE: usize = 64 * 1024;
/// Warm-up operations not counted.
const WARMUP: usize = 100;

fn run_conn(cfg: &ConnCfg) {
    println!();
    println!(
        "connections: {} fresh connections, {} MiB stream in {} KiB writes, {} round trips",
        cfg.conns,
        cfg.stream_bytes >> 20,
        WRITE_SIZE / 1024,
        cfg.rtts
    );
    let rr = (conn_rr_tipc(cfg.conns), conn_rr_tcp(cfg.conns));
    let st = stream_pair(cfg.stream_bytes);
    let lat = (conn_lat_tipc(cfg.rtts), tcp_latency(cfg.rtts));
    print_conn_rr(&rr.0, &rr.1);
    print_stream(cfg.stream_bytes, &st.0, &st.1);
    print_conn_lat(&lat.0, &lat.1);
}

fn print_conn_rr(t: &ConnRr, c: &ConnRr) {
    println!();
    println!("fresh connection per 64 B request     p50 us    p99 us      ops/s   p50 tipc vs tcp");
    println!(
        "tipc 0-RTT (SYN carries the request) {:>7.1} {:>9.1} {:>10.0}   {:>9.2}x",
        t.lat.p50_us,
        t.lat.p99_us,
        t.ops_per_s,
        t.lat.p50_us / c.lat.p50_us
    );
    println!(
        "tcp connect+request+reply+close      {:>7.1} {:>9.1} {:>10.0}",
        c.lat.p50_us, c.lat.p99_us, c.ops_per_s
    );
}

fn print_stream(bytes: u64, t: &Bulk, c: &Bulk) {
    println!();
    println!(
        "stream, {} MiB one way (median of {STREAM_ROUNDS})   MB/s   tipc vs tcp",
        bytes >> 20
    );
    println!(
        "tipc                           {:>10.1}   {:>9.2}x",
        t.mbytes_per_s,
        t.mbytes_per_s / c.mbytes_per_s
    );
    println!("tcp                            {:>10.1}", c.mbytes_per_s);
}

fn print_conn_lat(t: &Lat, c: &Lat) {
    println!();
    println!("64 B round trip on an open connection   p50 us    p99 us   p50 tipc vs tcp");
    println!(
        "tipc seqpacket                       {:>9.1} {:>9.1}   {:>9.2}x",
        t.p50_us,
        t.p99_us,
        t.p50_us / c.p50_us
    );
    println!(
        "tcp (length-prefixed)                {:>9.1} {:>9.1}",
        c.p50_us, c.p99_us
    );
}

/// The 64-byte request number `i`.
fn request(i: usize) -> [u8; 64] {
    let mut r = [0u8; 64];
    for (k, b) in r.iter_mut().enumerate() {
        *b = (i as u8).wrapping_add(k as u8);
    }
    r[..8].copy_from_slice(&(i as u64).to_be_bytes());
    r
}

/// The reply to a request: every byte inverted.
fn reply_to(req: &[u8]) -> Vec<u8> {
    req.iter().map(|b| !b).collect()
}

/// The stream benchmark's payload: one 64 KiB write, a byte pattern that is not constant.
fn stream_chunk() -> Vec<u8> {
    (0..WRITE_SIZE).map(|i| (i * 7 % 251) as u8).collect()
}

/// The sum of the bytes (u32 lanes per 64 KiB piece, which the compiler vectorizes: the check
/// must not be what limits either receiver).
fn byte_sum(b: &[u8]) -> u64 {
    // 32 independent u32 lanes (vectorized by the compiler) over blocks of at most 2^24 bytes
    // each, so no lane can overflow: a lane sums at most 2^19 bytes of at most 255.
    let mut total = 0u64;
    for block in b.chunks(1 << 24) {
        let mut lanes = [0u32; 32];
        let mut it = block.chunks_exact(32);
        for c in &mut it {
            for (l, &x) in lanes.iter_mut().zip(c) {
                *l += u32::from(x);
            }
        }
        total += lanes.iter().map(|&l| u64::from(l)).sum::<u64>();
        total += it.remainder().iter().map(|&x| u64::from(x)).sum::<u64>();
    }
    total
}

/// The receiver's state: an 8-byte length (big endian) first, then that many bytes.
#[derive(Default)]
struct StreamCount {
    hdr: Vec<u8>,
    want: Option<u64>,
    got: u64,
    sum: u64,
}

impl StreamCount {
    /// Account for a received chunk; true once everything announced has arrived.
    fn feed(&mut self, mut b: &[u8]) -> bool {
        if self.want.is_none() {
            let n = (8 - self.hdr.len()).min(b.len());
            self.hdr.extend_from_slice(&b[..n]);
            b = &b[n..];
            if self.hdr.len() == 8 {
                let mut h = [0u8; 8];
                h.copy_from_slice(&self.hdr);
                self.want = Some(u64::from_be_bytes(h));
            }
        }
        self.got += b.len() as u64;
        self.sum = self.sum.wrapping_add(byte_sum(b));
        matches!(self.want, Some(w) if self.got >= w)
    }

    /// The confirmation: bytes received and their sum.
    fn report(&self) -> [u8; 16] {
        let mut r = [0u8; 16];
        r[..8].copy_from_slice(&self.got.to_be_bytes());
        r[8..].copy_from_slice(&self.sum.to_be_bytes());
        r
    }
}

/// What a sender expects back from the receiver after `total` bytes.
fn expected_report(total: u64) -> [u8; 16] {
    let chunk = stream_chunk();
    let full = total / WRITE_SIZE as u64;
    let rest = (total % WRITE_SIZE as u64) as usize;
    let sum = byte_sum(&chunk)
        .wrapping_mul(full)
        .wrapping_add(byte_sum(&chunk[..rest]));
    let mut r = [0u8; 16];
    r[..8].copy_from_slice(&total.to_be_bytes());
    r[8..].copy_from_slice(&sum.to_be_bytes());
    r
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ConnServe {
    /// Seqpacket: read one request, reply, shut down.
    OneShot,
    /// Stream: count the bytes, confirm at the end.
    Sink,
    /// Seqpacket: echo every message.
    Echo,
}

fn serve_tipc_conn(port: u16, peer: u16, mode: ConnServe) {
    use tipc_actors::sock::conn::ConnKind;
    let sys = actix_rt::System::new();
    sys.block_on(async move {
        let n = tipc_node("bsrv", port, peer);
        let kind = if mode == ConnServe::Sink {
            ConnKind::Stream
        } else {
            ConnKind::Seqpacket
        };
        let l = n.conn_listener(kind);
        l.bind(ServiceRange::single(BENCH_TYPE, 1), Scope::Cluster)
            .await
            .expect("bind");
        while let Ok(c) = l.accept().await {
            match mode {
                ConnServe::OneShot => {
                    if let Ok(Some(req)) = c.recv().await {
                        let _ = c.send(bytes::Bytes::from(reply_to(&req))).await;
                    }
                    let _ = c.shutdown().await;
                }
                ConnServe::Echo => {
                    while let Ok(Some(m)) = c.recv().await {
                        if c.send(m).await.is_err() {
                            break;
                        }
                    }
                }
                ConnServe::Sink => {
                    let mut st = StreamCount::default();
                    while let Ok(Some(m)) = c.recv().await {
                        if st.feed(&m) {
                            let _ = c.send(bytes::Bytes::copy_from_slice(&st.report())).await;
                            st = StreamCount::default();
                        }
                    }
                }
            }
        }
    });
}

/// With `TIPC_BENCH_VERBOSE` set: the client's link (and connection) counters on stderr.
async fn eprint_counters(n: &TransportNode, c: Option<&tipc_actors::sock::conn::Connection>) {
    if std::env::var_os("TIPC_BENCH_VERBOSE").is_none() {
        return;
    }
    if let Some(c) = c {
        eprintln!("connection: {:?}", c.info());
    }
    for l in n.links().await {
        let s = &l.link.stats;
        eprintln!(
            "link {}: window {} tx packets {} bundles {} acks {} states {} rx packets {} \
             retransmitted {} nacks rx {} tx {} congested {} max queue {} fragments {} \
             deferred {} duplicates {}",
            l.link.name,
            l.link.window,
            s.tx_packets,
            s.tx_bundles,
            s.tx_acks,
            s.tx_states,
            s.rx_packets,
            s.retransmitted,
            s.rx_nacks,
            s.tx_nacks,
            s.link_congs,
            s.max_queue,
            s.tx_fragments,
            s.deferred,
            s.duplicates
        );
    }
}

/// A client node with the link up and the benchmark service in its table.
async fn tipc_client(p1: u16, p2: u16) -> TransportNode {
    let n = tipc_node("bcli", p1, p2);
    tokio::time::timeout(Duration::from_secs(10), wait_node_up(&n))
        .await
        .expect("TIPC link up");
    wait_service(&n).await;
    n
}

const BENCH_SERVICE: ServiceAddr = ServiceAddr {
    type_: BENCH_TYPE,
    instance: 1,
};

fn conn_rr_tipc(conns: usize) -> ConnRr {
    use tipc_actors::sock::conn::{ConnDest, ConnKind};
    let (p1, p2) = (free_port(), free_port());
    let _srv = spawn_server("tipc-conn-rr", p2, p1);
    let sys = actix_rt::System::new();
    sys.block_on(async move {
        let n = tipc_client(p1, p2).await;
        let mut v = Vec::with_capacity(conns);
        let mut start = Instant::now();
        for i in 0..conns + WARMUP {
            if i == WARMUP {
                start = Instant::now();
            }
            let req = request(i);
            let t = Instant::now();
            let c = n
                .connect_with(
                    ConnDest::Service(BENCH_SERVICE),
                    ConnKind::Seqpacket,
                    bytes::Bytes::copy_from_slice(&req),
                )
                .await
                .expect("connect_with");
            let rep = c.recv().await.expect("reply").expect("reply, not end");
            assert_eq!(&rep[..], &reply_to(&req)[..], "reply {i}");
            drop(c);
            if i >= WARMUP {
                v.push(t.elapsed());
            }
        }
        let el = start.elapsed().as_secs_f64();
        eprint_counters(&n, None).await;
        n.shutdown().await;
        ConnRr {
            lat: percentiles(v),
            ops_per_s: conns as f64 / el,
        }
    })
}

fn conn_rr_tcp(conns: usize) -> ConnRr {
    let port = free_port();
    let _srv = spawn_server("tcp-conn-rr", port, 0);
    rt().block_on(async move {
        let mut v = Vec::with_capacity(conns);
        let mut start = Instant::now();
        let mut buf = [0u8; 64];
        for i in 0..conns + WARMUP {
            if i == WARMUP {
                start = Instant::now();
            }
            let req = request(i);
            let t = Instant::now();
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("connect");
            s.set_nodelay(true).expect("nodelay");
            s.write_all(&req).await.expect("write");
            s.read_exact(&mut buf).await.expect("reply");
            assert_eq!(&buf[..], &reply_to(&req)[..], "reply {i}");
            drop(s);
            if i >= WARMUP {
                v.push(t.elapsed());
            }
        }
        let el = start.elapsed().as_secs_f64();
        ConnRr {
            lat: percentiles(v),
            ops_per_s: conns as f64 / el,
        }
    })
}

fn serve_tcp_conn_rr(port: u16) {
    rt().block_on(async move {
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("listen");
        let mut buf = [0u8; 64];
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let _ = s.set_nodelay(true);
            if s.read_exact(&mut buf).await.is_ok() {
                let _ = s.write_all(&reply_to(&buf)).await;
            }
            drop(s);
        }
    });
}

/// Rounds of the stream comparison (TIPC and TCP alternate; medians reported): one transfer
/// takes a fraction of a second, so a burst of load from elsewhere on the machine would
/// otherwise decide the ratio.
const STREAM_ROUNDS: usize = 3;

fn stream_pair(total: u64) -> (Bulk, Bulk) {
    let (mut t, mut c) = (Vec::new(), Vec::new());
    for _ in 0..STREAM_ROUNDS {
        t.push(stream_tipc(total).mbytes_per_s);
        c.push(stream_tcp(total).mbytes_per_s);
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        Bulk {
            mbytes_per_s: v[v.len() / 2],
        }
    };
    (median(t), median(c))
}

fn stream_tipc(total: u64) -> Bulk {
    use tipc_actors::sock::conn::{ConnDest, ConnKind};
    let (p1, p2) = (free_port(), free_port());
    let _srv = spawn_server("tipc-stream", p2, p1);
    let sys = actix_rt::System::new();
    sys.block_on(async move {
        let n = tipc_client(p1, p2).await;
        let c = n
            .connect(ConnDest::Service(BENCH_SERVICE), ConnKind::Stream)
            .await
            .expect("connect");
        let chunk = bytes::Bytes::from(stream_chunk());
        let start = Instant::now();
        c.send(bytes::Bytes::copy_from_slice(&total.to_be_bytes()))
            .await
            .expect("send");
        let mut left = total;
        while left > 0 {
            let k = left.min(WRITE_SIZE as u64) as usize;
            c.send(chunk.slice(..k)).await.expect("send");
            left -= k as u64;
        }
        let mut rep = Vec::new();
        while rep.len() < 16 {
            let m = tokio::time::timeout(Duration::from_secs(60), c.recv())
                .await
                .expect("confirmation in time")
                .expect("confirmation")
                .expect("confirmation, not end");
            rep.extend_from_slice(&m);
        }
        let el = start.elapsed().as_secs_f64();
        assert_eq!(
            rep[..],
            expected_report(total),
            "TIPC stream receiver's count"
        );
        eprint_counters(&n, Some(&c)).await;
        drop(c);
        n.shutdown().await;
        Bulk {
            mbytes_per_s: total as f64 / el / 1e6,
        }
    })
}

fn stream_tcp(total: u64) -> Bulk {
    let port = free_port();
    let _srv = spawn_server("tcp-stream", port, 0);
    rt().block_on(async move {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect");
        let chunk = stream_chunk();
        let start = Instant::now();
        s.write_all(&total.to_be_bytes()).await.expect("write");
        let mut left = total;
        while left > 0 {
            let k = left.min(WRITE_SIZE as u64) as usize;
            s.write_all(&chunk[..k]).await.expect("write");
            left -= k as u64;
        }
        let mut rep = [0u8; 16];
        s.read_exact(&mut rep).await.expect("confirmation");
        let el = start.elapsed().as_secs_f64();
        assert_eq!(rep, expected_report(total), "TCP stream receiver's count");
        Bulk {
            mbytes_per_s: total as f64 / el / 1e6,
        }
    })
}

fn serve_tcp_stream(port: u16) {
    rt().block_on(async move {
        let l = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("listen");
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let mut st = StreamCount::default();
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(k) => {
                        if st.feed(&buf[..k]) {
                            let _ = s.write_all(&st.report()).await;
                            st = StreamCount::default();
                        }
                    }
                }
            }
        }
    });
}

fn conn_lat_tipc(rtts: usize) -> Lat {
    use tipc_actors::sock::conn::{ConnDest, ConnKind};
    let (p1, p2) = (free_port(), free_port());
    let _srv = spawn_server("tipc-conn-echo", p2, p1);
    let sys = actix_rt::System::new();
    sys.block_on(async move {
        let n = tipc_client(p1, p2).await;
        let c = n
            .connect(ConnDest::Service(BENCH_SERVICE), ConnKind::Seqpacket)
            .await
            .expect("connect");
        let mut v = Vec::with_capacity(rtts);
        for i in 0..rtts + WARMUP {
            let req = bytes::Bytes::copy_from_slice(&request(i));
            let t = Instant::now();
            c.send(req.clone()).await.expect("send");
            let rep = c.recv().await.expect("echo").expect("echo, not end");
            if i >= WARMUP {
                v.push(t.elapsed());
            }
            assert_eq!(rep, req, "echo {i}");
        }
        drop(c);
        n.shutdown().await;
        percentiles(v)
    })
}
