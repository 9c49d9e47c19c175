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
//! ```text
//! cargo run --release -p tipc-integration --bin tipc-bench -- --count 200000
//! ```

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tipc_actors::addr::{Scope, ServiceAddr, ServiceRange};
use tipc_actors::TransportNode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const USAGE: &str =
    "usage: tipc-bench [--count N] [--rtts N] [--only tput|lat|tipc-tput|tipc-lat|udp-lat]   (internal: --serve KIND PORT PEER)";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--serve") {
        let kind = args.get(2).cloned().unwrap_or_default();
        let port: u16 = args.get(3).and_then(|p| p.parse().ok()).unwrap_or(0);
        let peer: u16 = args.get(4).and_then(|p| p.parse().ok()).unwrap_or(0);
        serve(&kind, port, peer);
        return;
    }
    let mut count = 200_000u64;
    let mut rtts = 5_000usize;
    let mut only = String::new();
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
            _ => {
                eprintln!("{USAGE}");
                std::process::exit(2);
            }
        }
        i += 2;
    }
    match only.as_str() {
        "" => run_all(count, rtts),
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

fn free_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let t = std::net::TcpListener::bind(s.local_addr().expect("addr")).expect("tcp bind");
    let p = s.local_addr().expect("addr").port();
    drop((s, t));
    p
}

#[derive(Debug, Clone, Copy, Default)]
struct Result1 {
    msgs_per_s: f64,
    mbytes_per_s: f64,
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
            .any(|p| p.range.type_ == BENCH_TYPE)
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
        s.bind(
            ServiceRange {
                type_: BENCH_TYPE,
                lower: 1,
                upper: 1,
            },
            Scope::Cluster,
        )
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
                    .find(|p| p.range.type_ == BENCH_TYPE)
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
        Result1 {
            msgs_per_s: count as f64 / el,
            mbytes_per_s: (count as f64 * size as f64) / el / 1e6,
        }
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
        Result1 {
            msgs_per_s: count as f64 / el,
            mbytes_per_s: (count as f64 * size as f64) / el / 1e6,
        }
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
        Result1 {
            msgs_per_s: got as f64 / el,
            mbytes_per_s: (got as f64 * size as f64) / el / 1e6,
        }
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
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}
