//! Service-layer benchmarks (issue 13 item 10): the actor layer against the raw RDM layer under
//! it, alternated in one run between two node processes over UDP on 127.0.0.1, ratios printed.
//!
//! * `tell`: N one-way 64-byte messages: typed tells to a `#[tipc_service]` (each waits only
//!   for the link or the service's tell window) against raw RDM datagrams to a socket (the
//!   raw receiver counts what arrives: RDM drops what overflows). Aim ≥ 0.6×.
//! * `ask`: request/reply of 64 bytes, p50 of sequential asks against raw RDM ping-pong.
//!   Aim ≤ 1.25×.
//! * `group`: a group service broadcasting 64-byte tells to 3 members in the other process
//!   against raw range multicast to 3 RDM sockets there. Aim ≥ 0.5×.
//! * `traced tell`: the `tell` run with OpenTelemetry installed in both processes and the
//!   sampler off (`ParentBased(AlwaysOff)`: nothing recorded or exported), so each tell makes
//!   an unsampled span whose 26-byte trace context travels in the envelope, and the service
//!   makes its own (unsampled) span under it. Aim ≥ 0.5× raw RDM.

use super::{free_port, Server};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tipc_actors::addr::{Scope, ServiceAddr, ServiceRange};
use tipc_runtime::service::Binding;
use tipc_runtime::telemetry::{self, Sampler, Telemetry};
use tipc_runtime::{tipc_service, Node, TipcMessage};

const SVC_TYPE: u32 = 78_000;
const RAW_TYPE: u32 = 78_001;
const GRP_TYPE: u32 = 78_002;
const RAW_MCAST_TYPE: u32 = 78_003;

/// A 64-byte payload, one way.
#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 1)]
struct Blob {
    data: Bytes,
}

/// A 64-byte request answered with its payload.
#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 2, reply = Bytes)]
struct Echo {
    data: Bytes,
}

/// How many `Blob`s arrived (ordered after them on the link).
#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 3, reply = u64)]
struct Count;

/// Telemetry on (sampler off) or off in the serving process; answered when done.
#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 6, reply = bool)]
struct Tracing(bool);

/// OpenTelemetry installed with the sampler off: spans are made (not recorded) and trace
/// contexts propagate; nothing is exported.
fn tracing_sampler_off() -> Telemetry {
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOff)))
        .build();
    telemetry::install(provider)
}

struct Sink(u64, Option<Telemetry>);

#[tipc_service(type = 78000, instance = 1)]
impl Sink {
    #[handle]
    fn blob(&mut self, _m: Blob) {
        self.0 += 1;
    }

    #[handle]
    fn echo(&mut self, m: Echo) -> Bytes {
        m.data
    }

    #[handle]
    fn count(&mut self, _m: Count) -> u64 {
        std::mem::take(&mut self.0)
    }

    #[handle]
    fn tracing(&mut self, m: Tracing) -> bool {
        // Dropping the previous one uninstalls it.
        self.1 = None;
        self.1 = m.0.then(tracing_sampler_off);
        telemetry::enabled()
    }
}

/// A group member counting broadcasts; it reports its count to `Count`'s sender by unicast,
/// and the sender adds up the reports (`reports`: how many, `total`: their sum).
#[derive(Default)]
struct Member {
    count: u64,
    reports: Arc<AtomicU64>,
    total: Arc<AtomicU64>,
}

#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 4)]
struct Report(u64);

/// Asks a group member to report its count.
#[derive(Serialize, Deserialize, TipcMessage)]
#[tipc(id = 5)]
struct GroupCount;

#[tipc_service(group = 78002, instance = 0)]
impl Member {
    #[handle]
    fn blob(&mut self, _m: Blob) {
        self.count += 1;
    }

    #[handle]
    fn count(&mut self, _m: GroupCount, cx: &mut tipc_runtime::Ctx<Self>) {
        let (to, n, g) = (cx.from(), std::mem::take(&mut self.count), cx.group());
        cx.spawn(async move {
            if let Some(g) = g {
                let _ = g.unicast(to, &Report(n)).await;
            }
        });
    }

    #[handle]
    fn report(&mut self, m: Report) {
        self.total.fetch_add(m.0, Ordering::SeqCst);
        self.reports.fetch_add(1, Ordering::SeqCst);
    }
}

/// `--serve svc PORT PEER`: the sink service, 3 group members, and raw RDM sockets (a
/// counting/echoing one at `{RAW_TYPE, 1}`, three counting ones at `{RAW_MCAST_TYPE, 0..3}`).
pub(crate) fn serve(port: u16, peer: u16) {
    actix_rt::System::new().block_on(async move {
        let node = Node::from_transport(tipc_integration::cluster::udp_node("ssrv", port, &[peer]));
        let _svc = node.serve(Sink(0, None)).await.expect("serve");
        let mut members = Vec::new();
        for i in 0..3 {
            let mut at = Binding::of::<Member>();
            at.range = ServiceRange::single(GRP_TYPE, i);
            members.push(node.serve_at(Member::default(), at).await.expect("join"));
        }
        let mut tasks = Vec::new();
        for (ty, inst) in [
            (RAW_TYPE, 1),
            (RAW_MCAST_TYPE, 0),
            (RAW_MCAST_TYPE, 1),
            (RAW_MCAST_TYPE, 2),
        ] {
            let mut s = node.transport().dgram_socket();
            s.bind(ServiceRange::single(ty, inst), Scope::Cluster)
                .await
                .expect("bind");
            s.set_rcvbuf(16 << 20).await.expect("rcvbuf");
            tasks.push(actix_rt::spawn(raw_sink(s)));
        }
        std::future::pending::<()>().await
    });
}

/// Counts datagrams; a 1-byte `?` gets the count back; anything of 64 bytes with first byte
/// `E` is echoed.
async fn raw_sink(s: tipc_actors::sock::dgram::DgramSocket) {
    let mut count = 0u64;
    loop {
        let batch = s.recv_batch(1024).await;
        if batch.is_empty() {
            return;
        }
        for m in batch {
            if &m.data[..] == b"?" {
                let _ = s.send_to_socket(m.from, &count.to_be_bytes()).await;
                count = 0;
            } else if m.data.first() == Some(&b'E') {
                let _ = s.send_to_socket(m.from, &m.data).await;
            } else {
                count += 1;
            }
        }
    }
}

struct Pair {
    node: Node,
    _srv: Server,
}

async fn pair() -> Pair {
    let (p1, p2) = (free_port(), free_port());
    let exe = std::env::current_exe().expect("current_exe");
    let child = Command::new(exe)
        .args(["--serve", "svc", &p2.to_string(), &p1.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn server");
    let srv = Server(child);
    let node = Node::from_transport(tipc_integration::cluster::udp_node("scli", p1, &[p2]));
    let all = |t| ServiceRange::new(t, 0, 9).expect("range");
    for (t, n) in [
        (SVC_TYPE, 1),
        (RAW_TYPE, 1),
        (RAW_MCAST_TYPE, 3),
        (GRP_TYPE, 3),
    ] {
        assert!(
            node.wait_bound(all(t), n, Duration::from_secs(20)).await,
            "server not up"
        );
    }
    Pair { node, _srv: srv }
}

fn blob() -> Bytes {
    Bytes::from(vec![7u8; 64])
}

/// [`tell_rate`] with OpenTelemetry installed here and in the serving process, sampler off.
async fn traced_tell_rate(p: &Pair, count: u64) -> f64 {
    let svc = p.node.service(SVC_TYPE, 1);
    let on = svc.ask(&Tracing(true)).await.expect("tracing on");
    assert!(on, "the server did not install telemetry");
    let mut t = tracing_sampler_off();
    let rate = tell_rate(p, count).await;
    t.shutdown();
    let on = svc.ask(&Tracing(false)).await.expect("tracing off");
    assert!(!on, "the server did not uninstall telemetry");
    rate
}

async fn tell_rate(p: &Pair, count: u64) -> f64 {
    let svc = p.node.service(SVC_TYPE, 1);
    let b = Blob { data: blob() };
    let start = Instant::now();
    for _ in 0..count {
        svc.tell(&b).await.expect("tell");
    }
    let got = svc
        .ask_timeout(&Count, Duration::from_secs(60))
        .await
        .expect("count");
    assert_eq!(got, count, "the service lost tells");
    count as f64 / start.elapsed().as_secs_f64()
}

async fn raw_rate(p: &Pair, count: u64) -> f64 {
    let s = p.node.transport().dgram_socket();
    let name = ServiceAddr {
        type_: RAW_TYPE,
        instance: 1,
    };
    let payload = [7u8; 64];
    let start = Instant::now();
    for _ in 0..count {
        s.send_to_service(name, &payload).await.expect("send");
    }
    s.send_to_service(name, b"?").await.expect("send");
    let m = tokio::time::timeout(Duration::from_secs(60), s.recv())
        .await
        .expect("report");
    let got = u64::from_be_bytes(m.expect("socket").data[..8].try_into().unwrap_or([0; 8]));
    got as f64 / start.elapsed().as_secs_f64()
}

fn p50(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e6
}

async fn ask_p50(p: &Pair, rtts: usize) -> f64 {
    let svc = p.node.service(SVC_TYPE, 1);
    let e = Echo { data: blob() };
    let mut v = Vec::with_capacity(rtts);
    for i in 0..rtts + 100 {
        let t = Instant::now();
        svc.ask(&e).await.expect("ask");
        if i >= 100 {
            v.push(t.elapsed());
        }
    }
    p50(v)
}

async fn raw_rr_p50(p: &Pair, rtts: usize) -> f64 {
    let s = p.node.transport().dgram_socket();
    let name = ServiceAddr {
        type_: RAW_TYPE,
        instance: 1,
    };
    let mut payload = [7u8; 64];
    payload[0] = b'E';
    let mut v = Vec::with_capacity(rtts);
    for i in 0..rtts + 100 {
        let t = Instant::now();
        s.send_to_service(name, &payload).await.expect("send");
        s.recv().await.expect("echo");
        if i >= 100 {
            v.push(t.elapsed());
        }
    }
    p50(v)
}

async fn group_rate(p: &Pair, count: u64) -> f64 {
    let mut at = Binding::of::<Member>();
    at.range = ServiceRange::single(GRP_TYPE, 9);
    let (reports, total) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let m = Member {
        count: 0,
        reports: reports.clone(),
        total: total.clone(),
    };
    let me = p.node.serve_at(m, at).await.expect("join");
    let g = me.group().expect("group");
    while g.members_up() < 3 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let b = Blob { data: blob() };
    let start = Instant::now();
    for _ in 0..count {
        g.broadcast(&b).await.expect("broadcast");
    }
    // Each member reports its count by unicast, after every broadcast before it.
    g.broadcast(&GroupCount).await.expect("broadcast");
    for _ in 0..60_000 {
        if reports.load(Ordering::SeqCst) >= 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let el = start.elapsed().as_secs_f64();
    assert_eq!(reports.load(Ordering::SeqCst), 3, "member reports missing");
    assert_eq!(
        total.load(Ordering::SeqCst),
        3 * count,
        "members lost broadcasts"
    );
    me.stop().await;
    count as f64 / el
}

async fn raw_mcast_rate(p: &Pair, count: u64) -> f64 {
    let s = p.node.transport().dgram_socket();
    let range = ServiceRange::new(RAW_MCAST_TYPE, 0, 2).expect("range");
    let payload = [7u8; 64];
    let start = Instant::now();
    for _ in 0..count {
        s.send_to_range(range, &payload).await.expect("send");
    }
    s.send_to_range(range, b"?").await.expect("send");
    let mut got = Vec::new();
    while got.len() < 3 {
        let m = tokio::time::timeout(Duration::from_secs(60), s.recv())
            .await
            .expect("report");
        got.push(u64::from_be_bytes(
            m.expect("socket").data[..8].try_into().unwrap_or([0; 8]),
        ));
    }
    let el = start.elapsed().as_secs_f64();
    // Rate of what every receiver got (RDM drops what overflows).
    *got.iter().min().unwrap_or(&0) as f64 / el
}

/// `--only service`: the comparisons, two rounds alternated, ratios printed.
pub(crate) fn run(count: u64, rtts: usize) {
    println!("tipc-bench service: two node processes on 127.0.0.1, 64 B messages");
    actix_rt::System::new().block_on(async move {
        let p = pair().await;
        for round in 1..=2 {
            let raw = raw_rate(&p, count).await;
            let tell = tell_rate(&p, count).await;
            println!(
                "round {round}: tell {tell:>10.0} msgs/s  raw RDM {raw:>10.0} msgs/s  {:.2}x (aim >= 0.6)",
                tell / raw
            );
            let traced = traced_tell_rate(&p, count).await;
            let raw = raw_rate(&p, count).await;
            println!(
                "round {round}: traced tell (sampler off) {traced:>10.0} msgs/s  raw RDM {raw:>10.0} msgs/s  {:.2}x (aim >= 0.5)",
                traced / raw
            );
            let rr = raw_rr_p50(&p, rtts).await;
            let ask = ask_p50(&p, rtts).await;
            println!(
                "round {round}: ask p50 {ask:>6.1} us  raw RDM request/reply p50 {rr:>6.1} us  {:.2}x (aim <= 1.25)",
                ask / rr
            );
            let rm = raw_mcast_rate(&p, count / 4).await;
            let gb = group_rate(&p, count / 4).await;
            println!(
                "round {round}: group broadcast to 3 {gb:>10.0} msgs/s  raw range multicast to 3 {rm:>10.0} msgs/s  {:.2}x (aim >= 0.5)",
                gb / rm
            );
        }
    });
}

/// `--only service-tell|service-traced|service-raw`: one phase of [`run`] three times on one
/// pair of processes (for a profiler).
pub(crate) fn run_part(part: &str, count: u64) {
    actix_rt::System::new().block_on(async move {
        let p = pair().await;
        for round in 1..=3 {
            let rate = match part {
                "service-tell" => tell_rate(&p, count).await,
                "service-traced" => traced_tell_rate(&p, count).await,
                _ => raw_rate(&p, count).await,
            };
            println!("round {round}: {part} {rate:>10.0} msgs/s");
        }
    });
}
