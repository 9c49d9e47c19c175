//! Connection sockets (SOCK_SEQPACKET / SOCK_STREAM) between in-process nodes over UDP on
//! 127.0.0.1: 0-RTT and connect-style request/reply, a flow-controlled bulk stream with a slow
//! reader, shutdown and close, node loss, and refused or unroutable connection requests.

use bytes::Bytes;
use std::time::{Duration, Instant};
use tipc_actors::addr::{Scope, ServiceAddr, ServiceRange, SocketAddr};
use tipc_actors::sock::conn::{
    ConnDest, ConnError, ConnKind, ConnectOptions, Connection, Listener,
};
use tipc_actors::TransportNode;
use tipc_integration::cluster::udp_cluster;
use tipc_transport::wire::ErrorCode;

fn svc(type_: u32) -> ServiceAddr {
    ServiceAddr { type_, instance: 1 }
}

fn range(type_: u32) -> ServiceRange {
    ServiceRange::single(type_, 1)
}

/// Wait until `node` sees a binding of `type_`.
async fn settle(node: &TransportNode, type_: u32) {
    for _ in 0..200 {
        if node
            .nametable()
            .await
            .iter()
            .any(|p| p.range.type_() == type_)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("binding of type {type_} never arrived");
}

async fn listener(node: &TransportNode, kind: ConnKind, type_: u32) -> Listener {
    let l = node.conn_listener(kind);
    l.bind(range(type_), Scope::Cluster).await.unwrap();
    l
}

/// An echo server: every accepted connection answers each message with `reply(msg)`.
fn serve_echo(l: Listener) {
    actix_rt::spawn(async move {
        while let Ok(c) = l.accept().await {
            actix_rt::spawn(async move {
                while let Ok(Some(m)) = c.recv().await {
                    let mut r = b"re:".to_vec();
                    r.extend_from_slice(&m);
                    if c.send(Bytes::from(r)).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
}

async fn t<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("timed out")
}

async fn request_replies(kind: ConnKind, zero_rtt: bool, type_: u32, n: usize) {
    let nodes = udp_cluster(&format!("c{type_}-"), 2).await;
    serve_echo(listener(&nodes[1], kind, type_).await);
    settle(&nodes[0], type_).await;
    for i in 0..n {
        let req = Bytes::from(format!("req {i}"));
        let c = if zero_rtt {
            t(nodes[0].connect_with(ConnDest::Service(svc(type_)), kind, req.clone()))
                .await
                .unwrap()
        } else {
            let c = t(nodes[0].connect(ConnDest::Service(svc(type_)), kind))
                .await
                .unwrap();
            c.send(req.clone()).await.unwrap();
            c
        };
        assert_eq!(c.kind(), kind);
        assert_eq!(c.peer().node, nodes[1].addr());
        let rep = t(c.recv()).await.unwrap().unwrap();
        assert_eq!(&rep[..], format!("re:req {i}").as_bytes());
        c.close().await;
    }
}

#[actix_rt::test]
async fn seqpacket_zero_rtt_request_reply_answers_every_request() {
    request_replies(ConnKind::Seqpacket, true, 7001, 10_000).await;
}

#[actix_rt::test]
async fn seqpacket_connect_request_reply_answers_every_request() {
    request_replies(ConnKind::Seqpacket, false, 7002, 10_000).await;
}

#[actix_rt::test]
async fn stream_zero_rtt_request_reply_answers_every_request() {
    request_replies(ConnKind::Stream, true, 7003, 10_000).await;
}

#[actix_rt::test]
async fn stream_connect_request_reply_answers_every_request() {
    request_replies(ConnKind::Stream, false, 7004, 10_000).await;
}

fn fnv(h: &mut u64, data: &[u8]) {
    for b in data {
        *h ^= *b as u64;
        *h = h.wrapping_mul(0x100_0000_01b3);
    }
}

#[actix_rt::test]
async fn stream_bulk_transfer_with_slow_reader_arrives_intact_within_window() {
    const TOTAL: usize = 64 << 20;
    let nodes = udp_cluster("cbulk", 2).await;
    let l = listener(&nodes[1], ConnKind::Stream, 7010).await;
    settle(&nodes[0], 7010).await;
    let reader = actix_rt::spawn(async move {
        let c = l.accept().await.unwrap();
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        let mut got = 0usize;
        let mut chunks = 0u64;
        while let Some(b) = c.recv().await.unwrap() {
            fnv(&mut h, &b);
            got += b.len();
            chunks += 1;
            // Slow reader: a pause every 64 chunks for the first 8 MiB.
            if got < (8 << 20) && chunks.is_multiple_of(64) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        (got, h)
    });
    let c = t(nodes[0].connect(ConnDest::Service(svc(7010)), ConnKind::Stream))
        .await
        .unwrap();
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut max_unacked = 0u32;
    let mut sent = 0usize;
    let mut seed = 1u32;
    while sent < TOTAL {
        let len = (256 << 10).min(TOTAL - sent);
        let buf: Vec<u8> = (0..len)
            .map(|_| {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
                (seed >> 16) as u8
            })
            .collect();
        fnv(&mut h, &buf);
        tokio::time::timeout(Duration::from_secs(30), c.send(Bytes::from(buf)))
            .await
            .expect("send stalled")
            .unwrap_or_else(|e| panic!("send failed after {sent} bytes: {e}"));
        sent += len;
        let info = c.info();
        max_unacked = max_unacked.max(info.snt_unacked);
        // The window (512 blocks) plus one message of at most 66000 bytes (65 blocks).
        assert!(
            info.snt_unacked <= info.snd_win + 65,
            "sender queued {} blocks with a window of {}",
            info.snt_unacked,
            info.snd_win
        );
    }
    c.shutdown().await.unwrap();
    let (got, rh) = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("reader finished")
        .unwrap();
    assert_eq!(got, TOTAL);
    assert_eq!(rh, h, "checksum mismatch");
    assert!(
        max_unacked > 128,
        "window never opened beyond the initial 128 blocks"
    );
    assert!(max_unacked <= 512 + 65);
}

async fn pair(nodes: &[TransportNode], kind: ConnKind, type_: u32) -> (Connection, Connection) {
    let l = listener(&nodes[1], kind, type_).await;
    settle(&nodes[0], type_).await;
    let (a, b) = tokio::join!(
        nodes[0].connect(ConnDest::Service(svc(type_)), kind),
        l.accept()
    );
    (a.unwrap(), b.unwrap())
}

#[actix_rt::test]
async fn recv_returns_orderly_end_when_peer_shuts_down() {
    let nodes = udp_cluster("cshut", 2).await;
    let (client, server) = pair(&nodes, ConnKind::Seqpacket, 7020).await;
    server.send(Bytes::from_static(b"last")).await.unwrap();
    server.shutdown().await.unwrap();
    assert_eq!(&t(client.recv()).await.unwrap().unwrap()[..], b"last");
    assert_eq!(t(client.recv()).await.unwrap(), None);
    assert_eq!(t(client.recv()).await.unwrap(), None, "the end is sticky");
    assert_eq!(
        client.send(Bytes::from_static(b"x")).await,
        Err(ConnError::PeerShutdown)
    );
}

#[actix_rt::test]
async fn recv_fails_with_reset_when_peer_closes() {
    let nodes = udp_cluster("cclose", 2).await;
    let (client, server) = pair(&nodes, ConnKind::Stream, 7021).await;
    server.close().await;
    assert_eq!(t(client.recv()).await, Err(ConnError::Reset));
    // A dropped (not closed) connection does the same.
    let (client, server) = pair(&nodes, ConnKind::Stream, 7022).await;
    drop(server);
    assert_eq!(t(client.recv()).await, Err(ConnError::Reset));
}

#[actix_rt::test]
async fn pending_recv_and_blocked_send_fail_with_no_node_when_peer_node_stops() {
    let nodes = udp_cluster("cnode", 2).await;
    let (client, server) = pair(&nodes, ConnKind::Seqpacket, 7030).await;
    let (client2, _server2) = pair(&nodes, ConnKind::Seqpacket, 7031).await;
    // Block the second client's sender: the server never reads, so the window fills.
    let blocked = actix_rt::spawn(async move {
        let chunk = Bytes::from(vec![7u8; 60_000]);
        loop {
            if let Err(e) = client2.send(chunk.clone()).await {
                return e;
            }
        }
    });
    let pending = actix_rt::spawn(async move { client.recv().await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !blocked.is_finished(),
        "the sender should be blocked by the window"
    );
    assert!(!pending.is_finished());
    let t0 = Instant::now();
    nodes[1].shutdown().await;
    drop(server);
    let tol = Duration::from_millis(1500) + Duration::from_secs(1);
    let r = tokio::time::timeout(tol, pending)
        .await
        .expect("recv failed in time");
    assert_eq!(r.unwrap(), Err(ConnError::NoNode));
    let e = tokio::time::timeout(tol, blocked)
        .await
        .expect("send failed in time");
    assert_eq!(e.unwrap(), ConnError::NoNode);
    assert!(t0.elapsed() < tol);
}

#[actix_rt::test]
async fn connect_to_unbound_service_fails_with_no_destination() {
    let nodes = udp_cluster("cunb", 2).await;
    let r = nodes[0]
        .connect(ConnDest::Service(svc(7040)), ConnKind::Seqpacket)
        .await;
    assert_eq!(r.err(), Some(ConnError::NoDestination));
}

#[actix_rt::test]
async fn connect_to_closed_port_is_refused_with_no_port() {
    let nodes = udp_cluster("cref", 2).await;
    let l = nodes[1].conn_listener(ConnKind::Seqpacket);
    let addr = l.local();
    l.close().await;
    drop(l);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = t(nodes[0].connect(ConnDest::Socket(addr), ConnKind::Seqpacket)).await;
    assert_eq!(r.err(), Some(ConnError::Refused(ErrorCode::NoPort)));
    // A port that never existed: the same.
    let r = t(nodes[0].connect(
        ConnDest::Socket(SocketAddr {
            node: nodes[1].addr(),
            port: 12345,
        }),
        ConnKind::Stream,
    ))
    .await;
    assert_eq!(r.err(), Some(ConnError::Refused(ErrorCode::NoPort)));
}

#[actix_rt::test]
async fn zero_rtt_data_is_first_recv_of_accepted_connection() {
    let nodes = udp_cluster("c0rtt", 2).await;
    let l = listener(&nodes[1], ConnKind::Seqpacket, 7050).await;
    settle(&nodes[0], 7050).await;
    let (c, s) = tokio::join!(
        nodes[0].connect_with(
            ConnDest::Service(svc(7050)),
            ConnKind::Seqpacket,
            Bytes::from_static(b"hello")
        ),
        l.accept()
    );
    let (c, s) = (c.unwrap(), s.unwrap());
    assert_eq!(s.peer(), c.local());
    assert_eq!(c.peer(), s.local());
    assert_eq!(
        s.dest_name(),
        Some(svc(7050)),
        "the service the client asked for"
    );
    assert_eq!(c.dest_name(), None);
    assert_eq!(&t(s.recv()).await.unwrap().unwrap()[..], b"hello");
    // Seqpacket keeps boundaries and refuses oversized messages.
    assert_eq!(
        c.send(Bytes::from(vec![0u8; 66_001])).await,
        Err(ConnError::TooLarge(66_001))
    );
    c.send(Bytes::from_static(b"a")).await.unwrap();
    c.send(Bytes::from_static(b"bc")).await.unwrap();
    assert_eq!(&t(s.recv()).await.unwrap().unwrap()[..], b"a");
    assert_eq!(&t(s.recv()).await.unwrap().unwrap()[..], b"bc");
}

#[actix_rt::test]
async fn connect_options_set_importance_on_both_ends_and_bound_the_wait_for_accept() {
    let nodes = udp_cluster("copts", 2).await;
    let l = listener(&nodes[1], ConnKind::Seqpacket, 7055).await;
    settle(&nodes[0], 7055).await;
    let opts = ConnectOptions {
        importance: 2,
        ..ConnectOptions::default()
    };
    let (c, s) = tokio::join!(
        nodes[0].connect_opts(
            ConnDest::Service(svc(7055)),
            ConnKind::Seqpacket,
            Bytes::new(),
            opts
        ),
        l.accept()
    );
    let (c, s) = (c.unwrap(), s.unwrap());
    assert_eq!(c.importance(), 2);
    assert_eq!(
        s.importance(),
        2,
        "the accepted socket takes the SYN's importance"
    );
    assert_eq!(c.set_importance(4), Err(ConnError::BadImportance(4)));
    c.set_importance(3).unwrap();
    c.send(Bytes::from_static(b"x")).await.unwrap();
    assert_eq!(&t(s.recv()).await.unwrap().unwrap()[..], b"x");
    let bad = ConnectOptions {
        importance: 9,
        ..ConnectOptions::default()
    };
    let r = nodes[0]
        .connect_opts(
            ConnDest::Socket(l.local()),
            ConnKind::Seqpacket,
            Bytes::new(),
            bad,
        )
        .await;
    assert_eq!(r.err(), Some(ConnError::BadImportance(9)));
    // Nobody accepts: the SYN waits in the listener's backlog (no ACK before accept, as the
    // kernel's), and the connect ends after the timeout set, not the default 8 s.
    let short = ConnectOptions {
        timeout: Duration::from_millis(300),
        ..ConnectOptions::default()
    };
    let start = Instant::now();
    let r = t(nodes[0].connect_opts(
        ConnDest::Socket(l.local()),
        ConnKind::Seqpacket,
        Bytes::new(),
        short,
    ))
    .await;
    let took = start.elapsed();
    assert_eq!(r.err(), Some(ConnError::Timeout));
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

/// Write `n` small chunks (1..=20 bytes of a pattern) on `w`, read them all on `r`
/// concurrently: every byte arrives once and in order. Returns the writer's counters.
async fn small_writes(
    w: Connection,
    r: Connection,
    n: usize,
) -> tipc_actors::sock::conn::ConnStats {
    let pattern = |i: usize| -> Vec<u8> { (0..1 + i % 20).map(|k| (i * 31 + k) as u8).collect() };
    let want: Vec<u8> = (0..n).flat_map(pattern).collect();
    let reader = actix_rt::spawn(async move {
        let mut got = Vec::new();
        while let Ok(Some(m)) = t(r.recv()).await {
            got.extend_from_slice(&m);
        }
        got
    });
    for i in 0..n {
        w.send(Bytes::from(pattern(i))).await.unwrap();
    }
    let stats = w.info().stats;
    w.shutdown().await.unwrap();
    let got = t(reader).await.unwrap();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "stream damaged");
    stats
}

#[actix_rt::test]
async fn small_stream_writes_are_nagled_unless_nodelay_and_arrive_intact() {
    let nodes = udp_cluster("cnagle", 2).await;
    let n = 20_000;
    // Between nodes: Nagle on (both advertise TIPC_NAGLE), buffers of the link's mss.
    let (c, s) = pair(&nodes, ConnKind::Stream, 7065).await;
    let st = small_writes(c, s, n).await;
    assert!(st.nagled > 0 && st.tx_msgs < (n / 4) as u64, "{st:?}");
    // TIPC_NODELAY: one message per write.
    let (c, s) = pair(&nodes, ConnKind::Stream, 7066).await;
    c.set_nodelay(true);
    let st = small_writes(c, s, n).await;
    assert_eq!((st.nagled, st.tx_msgs), (0, n as u64), "{st:?}");
    // Seqpacket never delays.
    let (c, s) = pair(&nodes, ConnKind::Seqpacket, 7067).await;
    let st = small_writes(c, s, 2_000).await;
    assert_eq!((st.nagled, st.tx_msgs), (0, 2_000), "{st:?}");
    // Within one node a message is delivered, and its nagle ack comes back, before the write
    // returns: nothing is ever held when the ack arrives, so every round is judged useless
    // and Nagle backs off (the start doubles to 1024 writes: one nagled write per 1025).
    let l = listener(&nodes[0], ConnKind::Stream, 7068).await;
    let (c, s) = tokio::join!(
        nodes[0].connect(ConnDest::Socket(l.local()), ConnKind::Stream),
        l.accept()
    );
    let st = small_writes(c.unwrap(), s.unwrap(), n).await;
    assert!(st.nagled > 0 && st.nagled < 40, "{st:?}");
}

#[actix_rt::test]
async fn connection_works_between_sockets_of_one_node() {
    let nodes = udp_cluster("clocal", 2).await;
    let l = listener(&nodes[0], ConnKind::Seqpacket, 7060).await;
    let (c, s) = tokio::join!(
        nodes[0].connect(ConnDest::Socket(l.local()), ConnKind::Seqpacket),
        l.accept()
    );
    let (c, s) = (c.unwrap(), s.unwrap());
    assert_eq!(s.dest_name(), None, "connected by socket address");
    c.send(Bytes::from_static(b"ping")).await.unwrap();
    assert_eq!(&t(s.recv()).await.unwrap().unwrap()[..], b"ping");
    s.send(Bytes::from_static(b"pong")).await.unwrap();
    assert_eq!(&t(c.recv()).await.unwrap().unwrap()[..], b"pong");
}

#[actix_rt::test]
async fn conn_stream_reads_and_writes_bytes() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let nodes = udp_cluster("cio", 2).await;
    let (c, s) = pair(&nodes, ConnKind::Stream, 7070).await;
    let mut cs = c.into_stream();
    let mut ss = s.into_stream();
    let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let w = data.clone();
    let writer = actix_rt::spawn(async move {
        cs.write_all(&w).await.unwrap();
        cs.shutdown().await.unwrap();
        cs
    });
    let mut got = Vec::new();
    t(ss.read_to_end(&mut got)).await.unwrap();
    assert_eq!(got, data);
    let _ = writer.await;
}

// ---------------------------------------------------------------------------------------------
// With a real Linux 6.1 kernel node (../shared/tipc-peer): the test boots the VM in its own
// namespace and runs itself again (this binary, the same test) inside that namespace with
// `KCONN_VM` set, where it plays our node's half, reaching the VM over the UDP bearer. Ignored
// by default (`#[ignore = "needs the kernel peer VM"]`); scripts/test runs it with
// `--include-ignored` as root, and it fails if the harness cannot boot the VM.

const KCONN_NS: &str = "tpconn";
/// The test's name, for its re-run inside the namespace.
const KCONN_TEST: &str = "kernel_connections_over_udp_both_directions_and_node_loss";
/// Set (to the VM's `IP:PORT`) in the re-run: it plays our node's half.
const KCONN_VM: &str = "KCONN_VM";
/// Small one-way writes of the kernel's stream client in the Nagle step.
const KNAGLE_WRITES: usize = 200;

fn kernel_outer_line(rx: &std::sync::mpsc::Receiver<String>, want: &str, secs: u64) -> bool {
    let end = Instant::now() + Duration::from_secs(secs);
    while let Ok(l) = rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
        eprintln!("inner: {l}");
        if l.contains(want) {
            return true;
        }
    }
    false
}

#[test]
#[ignore = "needs the kernel peer VM"]
fn kernel_connections_over_udp_both_directions_and_node_loss() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    use tipc_integration::kernel_peer::{
        require_kernel_peer, Bearer, KernelPeer, PeerNetns, UpOptions,
    };
    if let Ok(vm) = std::env::var(KCONN_VM) {
        // The re-run inside the namespace: our node's half.
        actix_rt::System::new().block_on(kernel_inner_connections(&vm));
        return;
    }
    require_kernel_peer();
    let _guard = PeerNetns::new(KCONN_NS);
    let mut k = KernelPeer::up(
        "k",
        &UpOptions {
            bearer: Bearer::Udp,
            remote: Some("host".into()),
            netns: Some(KCONN_NS.into()),
            id: None,
        },
    )
    .expect("kernel VM up");
    let vm_ip = k.info("ip").expect("vm ip").to_string();
    for cmd in [
        "tipc-helper seq-server 2000:1 >/tmp/seq.log 2>&1 &",
        "tipc-helper stream-server 2001:1 >/tmp/st.log 2>&1 &",
    ] {
        let (rc, out) = k.exec(cmd).unwrap();
        assert_eq!(rc, 0, "{out}");
    }
    let exe = std::env::current_exe().unwrap();
    let mut child = Command::new("ip")
        .args(["netns", "exec", KCONN_NS])
        .arg(&exe)
        .args([KCONN_TEST, "--exact", "--include-ignored", "--nocapture"])
        .env(KCONN_VM, format!("{vm_ip}:6118"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("inner test");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let result = (|| {
        if !kernel_outer_line(&rx, "KCONN LISTENING", 60) {
            return Err("inner never listened".to_string());
        }
        // The kernel connects to us: implicit (0-RTT) and explicit seqpacket, and a stream.
        for cmd in [
            "tipc-helper seq-client 3000:1 first second --implicit",
            "tipc-helper seq-client 3000:1 a b c",
            "tipc-helper stream-client 3001:1 big --size 20000",
        ] {
            let (rc, out) = k.exec(cmd).map_err(|e| e.to_string())?;
            if rc != 0 || !out.contains("DONE") {
                return Err(format!("{cmd}: rc {rc}\n{out}"));
            }
            eprintln!("kernel: {out}");
        }
        // The kernel's stream socket writes 200 small messages one way: with TIPC_NAGLE
        // advertised by us, its Nagle packs them into far fewer messages (our listener
        // answers each `ack_required` with a nagle ack).
        let words: Vec<String> = (0..KNAGLE_WRITES).map(|i| format!("n{i:03}")).collect();
        let cmd = format!(
            "tipc-helper stream-client 3002:1 {} --no-echo",
            words.join(" ")
        );
        let (rc, out) = k.exec(&cmd).map_err(|e| e.to_string())?;
        if rc != 0 || !out.contains("DONE") {
            return Err(format!("nagle client: rc {rc}\n{out}"));
        }
        let mut nagle = None;
        let end = Instant::now() + Duration::from_secs(30);
        while let Ok(l) = rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
            eprintln!("inner: {l}");
            if let Some(rest) = l.strip_prefix("KCONN NAGLE ") {
                nagle = Some(rest.to_string());
                break;
            }
        }
        let nagle = nagle.ok_or("inner never reported the nagled stream")?;
        let field = |k: &str| {
            nagle
                .split_whitespace()
                .find_map(|w| w.strip_prefix(k))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(usize::MAX)
        };
        let (msgs, bytes) = (field("msgs="), field("bytes="));
        if bytes != KNAGLE_WRITES * 4 || msgs >= KNAGLE_WRITES / 2 {
            return Err(format!(
                "kernel's small writes: {bytes} bytes in {msgs} messages for {KNAGLE_WRITES} writes"
            ));
        }
        eprintln!("kernel's {KNAGLE_WRITES} writes arrived as {msgs} messages");
        if !kernel_outer_line(&rx, "KCONN HOLDING", 60) {
            return Err("inner never reached the node-loss step".to_string());
        }
        k.down().map_err(|e| e.to_string())?;
        if !kernel_outer_line(&rx, "KCONN DONE", 30) {
            return Err("inner did not finish".to_string());
        }
        Ok(())
    })();
    let status = child.wait().expect("inner status");
    let logs = k
        .exec("cat /tmp/seq.log /tmp/st.log")
        .map(|(_, o)| o)
        .unwrap_or_default();
    let _ = k.down();
    if let Err(e) = result {
        panic!("{e}\nkernel logs:\n{logs}");
    }
    assert!(status.success(), "inner test failed");
}

/// Send `chunks` on `c` while reading the echo until as many bytes came back; what came back.
async fn echoed(c: &Connection, chunks: Vec<Bytes>) -> Vec<u8> {
    let total: usize = chunks.iter().map(Bytes::len).sum();
    let ((), got) = tokio::join!(
        async {
            for ch in chunks {
                c.send(ch).await.unwrap();
            }
        },
        async {
            let mut got = Vec::new();
            while got.len() < total {
                got.extend_from_slice(&t(c.recv()).await.unwrap().unwrap());
            }
            got
        }
    );
    got
}

/// Our node's half of [`kernel_connections_over_udp_both_directions_and_node_loss`], run inside
/// the VM's namespace (the test re-runs itself there); `vm` is the VM's UDP bearer address.
async fn kernel_inner_connections(vm: &str) {
    use tipc_actors::TransportConfig;
    use tipc_transport::media::{UdpConfig, UdpMedia, UdpRemote};
    use tipc_transport::NodeId;
    let vm: std::net::SocketAddr = vm.parse().expect("KCONN_VM is the VM's IP:PORT");
    let udp = UdpMedia::bind(UdpConfig {
        local: "10.99.0.1:6118".parse().unwrap(),
        remote: UdpRemote::Replicast(vec![vm]),
        mtu: None,
        name: "udp0".into(),
    })
    .expect("bind UDP bearer");
    let node = TransportNode::new(TransportConfig::new(NodeId::from_str_id("host").unwrap()));
    let mut ev = node.events();
    node.enable_bearer(udp, "udp0", 50).unwrap();
    tokio::time::timeout(Duration::from_secs(30), async {
        while !matches!(ev.recv().await, Ok(tipc_actors::NodeEvent::NodeUp(_))) {}
    })
    .await
    .expect("kernel node up");
    settle(&node, 2000).await;
    settle(&node, 2001).await;

    // 0-RTT seqpacket to the kernel's echo server.
    let c = t(node.connect_with(
        ConnDest::Service(svc(2000)),
        ConnKind::Seqpacket,
        Bytes::from_static(b"hello"),
    ))
    .await
    .unwrap();
    assert_eq!(&t(c.recv()).await.unwrap().unwrap()[..], b"hello");
    c.shutdown().await.unwrap();
    // Connect-style, then messages up to 66000 bytes (fragmented both ways), enough to need
    // several CONN_ACKs from the kernel.
    let c = t(node.connect(ConnDest::Service(svc(2000)), ConnKind::Seqpacket))
        .await
        .unwrap();
    for i in 0..40usize {
        let len = [1, 1000, 20000, 66000][i % 4];
        let m = Bytes::from(vec![i as u8; len]);
        c.send(m.clone()).await.unwrap();
        assert_eq!(t(c.recv()).await.unwrap().unwrap(), m);
    }
    assert!(c.info().stats.acks_rcvd > 0, "the kernel never acked");
    assert!(c.info().stats.acks_sent > 0, "we never acked");
    c.shutdown().await.unwrap();
    // A 1 MB stream echoed back.
    let c = t(node.connect(ConnDest::Service(svc(2001)), ConnKind::Stream))
        .await
        .unwrap();
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let got = echoed(
        &c,
        data.chunks(100_000).map(Bytes::copy_from_slice).collect(),
    )
    .await;
    assert_eq!(got, data);
    c.close().await;
    // Small writes: our Nagle packs them (the kernel has TIPC_NAGLE and answers each
    // `ack_required` with a nagle ack); the echo comes back intact.
    let c = t(node.connect(ConnDest::Service(svc(2001)), ConnKind::Stream))
        .await
        .unwrap();
    let pattern = |i: usize| -> Vec<u8> { (0..1 + i % 20).map(|k| (i * 7 + k) as u8).collect() };
    let want: Vec<u8> = (0..3000).flat_map(pattern).collect();
    let got = echoed(&c, (0..3000).map(|i| Bytes::from(pattern(i))).collect()).await;
    assert!(
        got == want,
        "small-write stream altered by the kernel's echo"
    );
    let st = c.info().stats;
    println!(
        "KCONN our 3000 small writes left as {} messages",
        st.tx_msgs
    );
    assert!(st.nagled > 0 && st.tx_msgs < 3000 / 4, "{st:?}");
    c.shutdown().await.unwrap();

    // The kernel connects to us.
    let seq = listener(&node, ConnKind::Seqpacket, 3000).await;
    let st = listener(&node, ConnKind::Stream, 3001).await;
    let ng = listener(&node, ConnKind::Stream, 3002).await;
    println!("KCONN LISTENING");
    for (l, n) in [(&seq, 2), (&st, 1)] {
        for _ in 0..n {
            let c = tokio::time::timeout(Duration::from_secs(60), l.accept())
                .await
                .expect("kernel connected")
                .unwrap();
            while let Some(m) = t(c.recv()).await.unwrap() {
                c.send(m).await.unwrap();
            }
        }
    }
    // The kernel's nagled one-way stream: read to the end, report bytes and messages.
    let c = tokio::time::timeout(Duration::from_secs(60), ng.accept())
        .await
        .expect("kernel connected for the nagle step")
        .unwrap();
    let mut bytes = 0;
    while let Some(m) = t(c.recv()).await.unwrap() {
        bytes += m.len();
    }
    println!("KCONN NAGLE msgs={} bytes={bytes}", c.info().stats.rx_msgs);

    // Node loss: a pending recv fails with NoNode once the VM is gone.
    let c = t(node.connect(ConnDest::Service(svc(2000)), ConnKind::Seqpacket))
        .await
        .unwrap();
    println!("KCONN HOLDING");
    let r = tokio::time::timeout(Duration::from_secs(20), c.recv())
        .await
        .expect("recv ended");
    assert_eq!(r, Err(ConnError::NoNode));
    println!("KCONN DONE");
}

/// A 0-RTT connect by service name to a listener that holds the request without accepting it
/// (the link delivered and acknowledged the SYN): when that node then dies silently, the connect
/// fails with NoNode once the link gives up (a SYN with data has no connect timeout, so only the
/// node loss can end it).
#[actix_rt::test]
async fn named_zero_rtt_connect_to_a_node_that_dies_silently_fails_with_no_node() {
    use tipc_integration::cluster::{free_udp_ports, udp_node};
    let ports = free_udp_ports(2);
    let a = udp_node("za", ports[0], &[ports[1]]);
    // Node b lives on its own arbiter (thread) so that it can die without a word.
    let arb = actix_rt::Arbiter::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (pb, pa) = (ports[1], ports[0]);
    arb.spawn(async move {
        let b = udp_node("zb", pb, &[pa]);
        let l = b.conn_listener(ConnKind::Seqpacket);
        l.bind(range(7400), Scope::Cluster).await.unwrap();
        // Never accepts. Leaked: stopping the arbiter must not run their drop (which would
        // close the listener and reject the request: a clean exit, not a silent death).
        std::mem::forget((b, l));
        let _ = tx.send(());
    });
    rx.await.unwrap();
    settle(&a, 7400).await;
    let a2 = a.clone();
    let connect = actix_rt::spawn(async move {
        a2.connect_with(
            ConnDest::Service(svc(7400)),
            ConnKind::Seqpacket,
            Bytes::from_static(b"hello?"),
        )
        .await
        .map(|c| c.peer())
    });
    // The SYN reaches b's listener and waits there; within a second the link has acknowledged
    // it (acks ride on the next STATE at the latest), so it is no longer in a's send queue.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(!connect.is_finished(), "nobody accepted: still connecting");
    let t0 = Instant::now();
    arb.stop();
    let r = tokio::time::timeout(Duration::from_secs(5), connect)
        .await
        .expect("the connect must end when the node is lost")
        .unwrap();
    assert!(matches!(r, Err(ConnError::NoNode)), "{r:?}");
    assert!(
        t0.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t0.elapsed()
    );
}
