//! Group benchmarks (issue 12 item 7), on three node processes over UDP on 127.0.0.1:
//!
//! * `group-bcast`: one member broadcasts N messages of 64 B to 8 receiving members (2 in
//!   its own process, 3 in each of two other processes), against an RDM socket sending each
//!   message to 8 RDM sockets placed the same way. Rate = N / time until all 8 report their
//!   counts. Aim: group ≥ 0.8× RDM. The group run is repeated with the node forced to
//!   replicast (`link set broadcast REPLICAST`): the broadcast link against replicast. (The
//!   bearers here are UDP in replicast mode on one host, so the broadcast link's packets are
//!   copied per peer by the bearer; UDP multicast needs a host, or a namespace, per node.)
//! * `group-mcast`: the same broadcast with each node process in a network namespace of its
//!   own, on one bridge, with UDP bearers in multicast mode (`10.98.0.N:6118`, the group the
//!   network id gives): the broadcast link sends each packet once to the multicast group,
//!   against replicast (`link set broadcast REPLICAST`: a copy per node on its unicast link).
//!   Needs root and `ip`; without them it says so and is skipped.
//! * `group-m2o`: 16 members send 10×N messages in all, by unicast, to one member in another
//!   process (the coordinated multipoint-to-point window), against 16 RDM sockets sending to
//!   one RDM socket (default receive buffer: what overflows is dropped). Rate = messages
//!   received / time; the loss is printed. Aim: group ≥ 0.7× RDM with zero loss.
//!
//! Receivers report their counts once every sender's `END` marker came; RDM senders repeat
//! their `END` (an overflowing RDM receiver may drop it) until the report arrives.

use super::{free_port, Server};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tipc_actors::addr::{Scope, ServiceRange, SocketAddr};
use tipc_actors::group::Method;
use tipc_actors::sock::group::{GroupMember, GroupRecv, GroupSpec};
use tipc_actors::TransportNode;

/// Group type of the receiving members (instances 0..) and senders (instances 100..).
const GTYPE: u32 = 77_800;
/// RDM service type of the receiving sockets (instances 0..).
const RTYPE: u32 = 77_801;
const END: &[u8] = b"END";

fn node(id: &str, port: u16, peers: &[u16]) -> TransportNode {
    tipc_integration::cluster::udp_node(id, port, peers)
}

/// Port of the multicast-mode bearers (every node uses the same one, in its own namespace).
const MCAST_PORT: u16 = 6118;

/// A node with a UDP bearer in multicast mode on `ip:6118`, joined to the network id's group.
fn mcast_node(id: &str, ip: std::net::Ipv4Addr) -> TransportNode {
    use tipc_actors::TransportConfig;
    use tipc_transport::media::udp::multicast_group;
    use tipc_transport::media::{UdpConfig, UdpMedia, UdpRemote};
    use tipc_transport::NodeId;
    let cfg = TransportConfig::new(NodeId::from_str_id(id).expect("node identity"));
    let group = std::net::SocketAddr::new(multicast_group(cfg.net_id, false), MCAST_PORT);
    let udp = UdpMedia::bind(UdpConfig {
        local: std::net::SocketAddr::from((ip, MCAST_PORT)),
        remote: UdpRemote::Multicast(group),
        mtu: None,
        name: "udp0".into(),
    })
    .expect("bind UDP multicast bearer");
    let n = TransportNode::new(cfg);
    n.enable_bearer(udp, "udp0", 50).expect("enable bearer");
    n
}

/// The node of a `--serve` process: `AT` is a loopback port (replicast to `peers`) or
/// `mcast:IP` (multicast mode, in the namespace the process was started in).
fn node_at(at: &str, peers: &[u16]) -> TransportNode {
    match at.strip_prefix("mcast:") {
        Some(ip) => mcast_node(
            &format!("g{}", ip.replace('.', "-")),
            ip.parse().expect("IPv4 address"),
        ),
        None => {
            let port: u16 = at.parse().expect("port");
            node(&format!("g{port}"), port, peers)
        }
    }
}

/// `--serve group-rx|rdm-rx AT PEERS FIRST COUNT SENDERS`: COUNT receivers with instances
/// FIRST.., each reporting after SENDERS `END`s (none: the node only stays up). `AT` as in
/// [`node_at`].
pub(crate) fn serve(kind: &str, args: &[String]) {
    let at = args[0].clone();
    let peers: Vec<u16> = args[1].split(',').filter_map(|p| p.parse().ok()).collect();
    let first: u32 = args[2].parse().expect("first");
    let count: u32 = args[3].parse().expect("count");
    let senders: usize = args[4].parse().expect("senders");
    let group = kind == "group-rx";
    let sys = actix_rt::System::new();
    sys.block_on(async move {
        let n = node_at(&at, &peers);
        let mut tasks = Vec::new();
        for i in first..first + count {
            if group {
                let m = n.join(GroupSpec::new(GTYPE, i)).await.expect("join");
                tasks.push(actix_rt::spawn(group_rx(m, senders)));
            } else {
                let mut s = n.dgram_socket();
                s.bind(ServiceRange::single(RTYPE, i), Scope::Cluster)
                    .await
                    .expect("bind");
                tasks.push(actix_rt::spawn(rdm_rx(s, senders)));
            }
        }
        if tasks.is_empty() {
            // A node without receivers: it stays until the benchmark ends it.
            std::future::pending::<()>().await;
        }
        for t in tasks {
            let _ = t.await;
        }
        // Let the reports leave before the node goes.
        tokio::time::sleep(Duration::from_secs(1)).await;
    });
}

/// Count data until `senders` distinct `END`s came, then report the count to each of them.
async fn group_rx(m: GroupMember, senders: usize) {
    let mut count = 0u64;
    let mut ends: Vec<SocketAddr> = Vec::new();
    while ends.len() < senders {
        let batch = m.recv_batch(1024).await;
        if batch.is_empty() {
            return;
        }
        for r in batch {
            if let GroupRecv::Message { from, data, .. } = r {
                if &data[..] == END {
                    if !ends.contains(&from) {
                        ends.push(from);
                    }
                } else {
                    count += 1;
                }
            }
        }
    }
    for e in ends {
        let _ = m.unicast(e, count.to_be_bytes().to_vec()).await;
    }
    // Stay a member until the reports are read.
    tokio::time::sleep(Duration::from_secs(2)).await;
}

async fn rdm_rx(s: tipc_actors::sock::dgram::DgramSocket, senders: usize) {
    let mut count = 0u64;
    let mut ends: Vec<SocketAddr> = Vec::new();
    while ends.len() < senders {
        let batch = s.recv_batch(1024).await;
        if batch.is_empty() {
            return;
        }
        for m in batch {
            if &m.data[..] == END {
                if !ends.contains(&m.from) {
                    ends.push(m.from);
                }
            } else {
                count += 1;
            }
        }
    }
    for e in ends {
        let _ = s.send_to_socket(e, &count.to_be_bytes()).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
}

fn spawn(kind: &str, port: u16, peers: &[u16], first: u32, count: u32, senders: usize) -> Server {
    let exe = std::env::current_exe().expect("current_exe");
    spawn_in(
        Command::new(exe),
        kind,
        &port.to_string(),
        peers,
        first,
        count,
        senders,
    )
}

/// Starts `cmd` (this program, maybe under `ip netns exec`) as a `--serve` process.
fn spawn_in(
    mut cmd: Command,
    kind: &str,
    at: &str,
    peers: &[u16],
    first: u32,
    count: u32,
    senders: usize,
) -> Server {
    let peers: Vec<String> = peers.iter().map(u16::to_string).collect();
    let child = cmd
        .args([
            "--serve",
            kind,
            at,
            &peers.join(","),
            &first.to_string(),
            &count.to_string(),
            &senders.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn server");
    Server(child)
}

async fn wait_nodes(n: &TransportNode, count: usize) {
    for _ in 0..1000 {
        if n.nodes().await.iter().filter(|x| x.up).count() >= count {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("nodes never came up");
}

async fn wait_bindings(n: &TransportNode, type_: u32, count: usize) {
    for _ in 0..1000 {
        if n.nametable()
            .await
            .iter()
            .filter(|p| p.range.type_() == type_)
            .count()
            >= count
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("bindings of {type_} never appeared");
}

/// Three processes: this one (node A, `local` receivers) and B, C (`remote[0]` and
/// `remote[1]` receivers).
struct Cluster {
    n: TransportNode,
    _b: Server,
    _c: Server,
}

async fn cluster(kind: &str, local: u32, remote: [u32; 2], senders: usize) -> Cluster {
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let b = spawn(kind, pb, &[pa, pc], local, remote[0], senders);
    let c = spawn(kind, pc, &[pa, pb], local + remote[0], remote[1], senders);
    let n = node("ga", pa, &[pb, pc]);
    wait_nodes(&n, 2).await;
    Cluster { n, _b: b, _c: c }
}

/// Rate and per-receiver counts of one run.
struct Run {
    msgs_per_s: f64,
    counts: Vec<u64>,
}

async fn collect_group(m: &GroupMember, want: usize) -> Vec<u64> {
    let mut v = Vec::new();
    while v.len() < want {
        match tokio::time::timeout(Duration::from_secs(60), m.recv()).await {
            Ok(Some(GroupRecv::Message { data, .. })) if data.len() == 8 => {
                v.push(u64::from_be_bytes(data[..8].try_into().expect("8 bytes")))
            }
            Ok(Some(_)) => {}
            _ => panic!("{} of {want} reports", v.len()),
        }
    }
    v
}

fn group_bcast(count: u64, mode: Option<Method>) -> Run {
    actix_rt::System::new().block_on(async move {
        let c = cluster("group-rx", 2, [3, 3], 1).await;
        bcast_run(c, count, mode).await
    })
}

/// The broadcast run of [`group_bcast`] on a cluster whose B and C hold 3 receivers each.
async fn bcast_run(c: Cluster, count: u64, mode: Option<Method>) -> Run {
    {
        c.n.set_bcast_mode(mode);
        let mut locals = Vec::new();
        for i in 0..2 {
            let m = c.n.join(GroupSpec::new(GTYPE, i)).await.expect("join");
            locals.push(actix_rt::spawn(group_rx(m, 1)));
        }
        let s = c.n.join(GroupSpec::new(GTYPE, 100)).await.expect("join");
        while s.members_up() < 8 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let payload = bytes::Bytes::from(vec![7u8; 64]);
        let start = Instant::now();
        for _ in 0..count {
            s.broadcast(payload.clone()).await.expect("broadcast");
        }
        s.broadcast(END).await.expect("broadcast");
        let counts = collect_group(&s, 8).await;
        let secs = start.elapsed().as_secs_f64();
        Run {
            msgs_per_s: count as f64 / secs,
            counts,
        }
    }
}

async fn rdm_reports(s: &tipc_actors::sock::dgram::DgramSocket, dests: &[SocketAddr]) -> Vec<u64> {
    let mut v = Vec::new();
    while v.len() < dests.len() {
        for d in dests {
            let _ = s.send_to_socket(*d, END).await;
        }
        let until = tokio::time::Instant::now() + Duration::from_millis(200);
        while v.len() < dests.len() {
            let Ok(Some(m)) = tokio::time::timeout_at(until, s.recv()).await else {
                break;
            };
            if m.returned.is_none() && m.data.len() == 8 {
                v.push(u64::from_be_bytes(m.data[..8].try_into().expect("8 bytes")));
            }
        }
    }
    v
}

async fn rdm_dests(n: &TransportNode, count: usize) -> Vec<SocketAddr> {
    wait_bindings(n, RTYPE, count).await;
    let mut v: Vec<(u32, SocketAddr)> = n
        .nametable()
        .await
        .iter()
        .filter(|p| p.range.type_() == RTYPE)
        .map(|p| (p.range.lower(), p.socket()))
        .collect();
    v.sort();
    v.into_iter().map(|(_, s)| s).collect()
}

fn rdm_fanout(count: u64) -> Run {
    actix_rt::System::new().block_on(async move {
        let c = cluster("rdm-rx", 2, [3, 3], 1).await;
        let mut locals = Vec::new();
        for i in 0..2 {
            let mut s = c.n.dgram_socket();
            s.bind(ServiceRange::single(RTYPE, i), Scope::Cluster)
                .await
                .expect("bind");
            locals.push(actix_rt::spawn(rdm_rx(s, 1)));
        }
        let dests = rdm_dests(&c.n, 8).await;
        let s = c.n.dgram_socket();
        let payload = [7u8; 64];
        let start = Instant::now();
        for _ in 0..count {
            for d in &dests {
                s.send_to_socket(*d, &payload).await.expect("send");
            }
        }
        let counts = rdm_reports(&s, &dests).await;
        let secs = start.elapsed().as_secs_f64();
        Run {
            msgs_per_s: count as f64 / secs,
            counts,
        }
    })
}

fn group_m2o(count: u64) -> Run {
    actix_rt::System::new().block_on(async move {
        let c = cluster("group-rx", 0, [1, 0], 16).await;
        let mut senders = Vec::new();
        for i in 0..16 {
            senders.push(
                c.n.join(GroupSpec::new(GTYPE, 100 + i))
                    .await
                    .expect("join"),
            );
        }
        let rx = loop {
            let m = senders[0].members();
            if let Some(r) = m.iter().find(|m| m.instance == 0 && m.state.is_receiver()) {
                if senders.iter().all(|s| s.members_up() >= 16) {
                    break r.addr;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        let per = count / 16;
        let payload = bytes::Bytes::from(vec![7u8; 64]);
        let start = Instant::now();
        let sends = senders.iter().map(|s| {
            let p = payload.clone();
            async move {
                for _ in 0..per {
                    s.unicast(rx, p.clone()).await.expect("unicast");
                }
                s.unicast(rx, END).await.expect("unicast");
            }
        });
        futures_join_all(sends).await;
        let counts = collect_group(&senders[0], 1).await;
        let secs = start.elapsed().as_secs_f64();
        Run {
            msgs_per_s: counts[0] as f64 / secs,
            counts,
        }
    })
}

fn rdm_m2o(count: u64) -> Run {
    actix_rt::System::new().block_on(async move {
        let c = cluster("rdm-rx", 0, [1, 0], 16).await;
        let dests = rdm_dests(&c.n, 1).await;
        let rx = dests[0];
        let senders: Vec<_> = (0..16).map(|_| c.n.dgram_socket()).collect();
        let per = count / 16;
        let payload = [7u8; 64];
        let start = Instant::now();
        let sends = senders.iter().map(|s| async move {
            for _ in 0..per {
                s.send_to_socket(rx, &payload).await.expect("send");
            }
        });
        futures_join_all(sends).await;
        // Every sender's END; the report goes to each.
        let mut counts = Vec::new();
        let reports = senders.iter().map(|s| rdm_reports(s, &dests));
        for r in futures_collect(reports).await {
            counts.extend(r);
        }
        let secs = start.elapsed().as_secs_f64();
        Run {
            msgs_per_s: counts[0] as f64 / secs,
            counts,
        }
    })
}

/// Run futures concurrently on this task (no extra crate).
async fn futures_join_all<F: std::future::Future<Output = ()>>(fs: impl Iterator<Item = F>) {
    futures_collect(fs).await;
}

async fn futures_collect<T, F: std::future::Future<Output = T>>(
    fs: impl Iterator<Item = F>,
) -> Vec<T> {
    let mut futs: Vec<std::pin::Pin<Box<F>>> = fs.map(Box::pin).collect();
    let mut out: Vec<Option<T>> = (0..futs.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in futs.iter_mut().enumerate() {
            if out[i].is_some() {
                continue;
            }
            match f.as_mut().poll(cx) {
                std::task::Poll::Ready(v) => out[i] = Some(v),
                std::task::Poll::Pending => pending = true,
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(|v| v.expect("done")).collect()
}

/// `--only group`: both comparisons, ratios printed.
pub(crate) fn run(count: u64) {
    println!("tipc-bench group: three node processes on 127.0.0.1, 64 B messages");
    let g = group_bcast(count, None);
    let gr = group_bcast(count, Some(Method::Replicast));
    let r = rdm_fanout(count);
    println!(
        "broadcast to 8 members ({count} msgs): group {:>10.0} msgs/s  rdm x8 {:>10.0} msgs/s  {:.2}x (aim >= 0.8)",
        g.msgs_per_s,
        r.msgs_per_s,
        g.msgs_per_s / r.msgs_per_s
    );
    println!(
        "  the same by replicast (link set broadcast REPLICAST): {:>10.0} msgs/s; broadcast link vs replicast {:.2}x",
        gr.msgs_per_s,
        g.msgs_per_s / gr.msgs_per_s
    );
    println!(
        "  delivered per receiver: group {:?}  replicast {:?}  rdm {:?}",
        g.counts, gr.counts, r.counts
    );
    // Ten times the messages: at 3-5 M msgs/s, `count` alone is a run of tens of
    // milliseconds, mostly window ramp-up and the END round trip.
    let m2o = count * 10;
    let g = group_m2o(m2o);
    let r = rdm_m2o(m2o);
    let per = m2o / 16 * 16;
    run_mcast(count);
    println!(
        "16 senders to one ({per} msgs): group {:>10.0} msgs/s lost {}  rdm {:>10.0} msgs/s lost {}  {:.2}x (aim >= 0.7)",
        g.msgs_per_s,
        per - g.counts[0],
        r.msgs_per_s,
        per.saturating_sub(r.counts[0]),
        g.msgs_per_s / r.msgs_per_s
    );
}

/// Namespaces of the multicast comparison: a hub with the bridge, and one per node process.
const MCAST_HUB: &str = "tbg-hub";
const MCAST_NODES: [(&str, &str); 3] = [
    ("tbg-a", "10.98.0.1"),
    ("tbg-b", "10.98.0.2"),
    ("tbg-c", "10.98.0.3"),
];

/// The bridge and three namespaces, each with `eth0` on the bridge and a multicast route;
/// deleted when dropped.
fn mcast_topology() -> std::io::Result<Vec<tipc_integration::netns::NetNs>> {
    use tipc_integration::netns::NetNs;
    for (ns, _) in MCAST_NODES.iter().chain([(MCAST_HUB, "")].iter()) {
        if tipc_integration::netns::netns_exists(ns) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
    let hub = NetNs::create(MCAST_HUB)?;
    hub.ip(&["link", "add", "br0", "type", "bridge"])?;
    hub.link_up("br0")?;
    let mut all = Vec::new();
    for (name, ip) in MCAST_NODES {
        let ns = NetNs::create(name)?;
        ns.add_veth("eth0", &hub, name)?;
        hub.ip(&["link", "set", name, "master", "br0"])?;
        ns.addr_add("eth0", &format!("{ip}/24"))?;
        ns.ip(&["route", "add", "224.0.0.0/4", "dev", "eth0"])?;
        all.push(ns);
    }
    all.push(hub);
    Ok(all)
}

/// `--only group-mcast-in --method multicast|replicast`, run inside `tbg-a`: node A here (2 receivers
/// and the sender), B and C in `tbg-b` and `tbg-c`; prints `RUN rate=R counts=C1,C2,..`.
pub(crate) fn mcast_inner(count: u64, method: &str) {
    let mode = match method {
        "replicast" => Some(Method::Replicast),
        _ => None,
    };
    let exe = std::env::current_exe().expect("current_exe");
    let r = actix_rt::System::new().block_on(async move {
        let mut servers = Vec::new();
        let mut first = 2;
        for (ns, ip) in &MCAST_NODES[1..] {
            let mut cmd = Command::new("ip");
            cmd.args(["netns", "exec", ns]).arg(&exe);
            servers.push(spawn_in(
                cmd,
                "group-rx",
                &format!("mcast:{ip}"),
                &[],
                first,
                3,
                1,
            ));
            first += 3;
        }
        let n = mcast_node("ga", MCAST_NODES[0].1.parse().expect("IPv4 address"));
        wait_nodes(&n, 2).await;
        let c = Cluster {
            n,
            _b: servers.remove(0),
            _c: servers.remove(0),
        };
        let n = c.n.clone();
        let r = bcast_run(c, count, mode).await;
        (r, n.bcast_stats().0.tx_packets)
    });
    let (r, bcast_packets) = r;
    let counts: Vec<String> = r.counts.iter().map(u64::to_string).collect();
    println!(
        "RUN rate={:.0} counts={} bcast_packets={bcast_packets}",
        r.msgs_per_s,
        counts.join(",")
    );
}

/// One `mcast_inner` run in `tbg-a`: its rate and counts line.
fn mcast_run(count: u64, method: &str) -> Option<(f64, String)> {
    let exe = std::env::current_exe().expect("current_exe");
    let out = Command::new("ip")
        .args(["netns", "exec", MCAST_NODES[0].0])
        .arg(exe)
        .args(["--count", &count.to_string(), "--only", "group-mcast-in"])
        .args(["--method", method])
        .stdin(Stdio::null())
        .output()
        .expect("run ip netns exec");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.starts_with("RUN "))?;
    let rate = line
        .split("rate=")
        .nth(1)?
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    let counts = line.split("counts=").nth(1)?.split(' ').next()?;
    let packets = line.split("bcast_packets=").nth(1)?;
    Some((rate, format!("{counts} ({packets} broadcast-link packets)")))
}

/// `--only group-mcast`: broadcast to 8 members with each node in its own namespace, the
/// broadcast link over UDP multicast against replicast, two rounds alternated.
pub(crate) fn run_mcast(count: u64) {
    if !tipc_integration::netns::netns_supported() {
        println!(
            "broadcast over UDP multicast: skipped (needs root and the ip tool for namespaces)"
        );
        return;
    }
    let _topology = match mcast_topology() {
        Ok(t) => t,
        Err(e) => {
            println!("broadcast over UDP multicast: skipped (namespaces: {e})");
            return;
        }
    };
    println!(
        "broadcast to 8 members, three node processes in three namespaces on one bridge, UDP \
         bearers in multicast mode ({count} msgs of 64 B):"
    );
    for round in 1..=2 {
        let m = mcast_run(count, "multicast");
        let r = mcast_run(count, "replicast");
        match (m, r) {
            (Some((m, mc)), Some((r, rc))) => println!(
                "  round {round}: broadcast link over UDP multicast {m:>10.0} msgs/s  replicast \
                 {r:>10.0} msgs/s  {:.2}x   (delivered per receiver: {mc} / {rc})",
                m / r
            ),
            (m, r) => println!("  round {round}: a run failed (multicast {m:?}, replicast {r:?})"),
        }
    }
}

/// One side of a comparison (profiling): `group-bcast` or `group-m2o`.
pub(crate) fn run_part(part: &str, count: u64) {
    let r = match part {
        "group-bcast" => group_bcast(count, None),
        "rdm-m2o" => rdm_m2o(count),
        _ => group_m2o(count),
    };
    println!("{part}: {:.0} msgs/s {:?}", r.msgs_per_s, r.counts);
}
