//! OpenTelemetry metrics of the node and its services, as observable instruments read from
//! the counters the node keeps anyway: nothing is counted on a message's path for them, and
//! without an installed meter provider nothing is read at all.
//!
//! Every node ([`crate::Node`]) and every service registers itself here when it starts (a
//! weak reference, once); a collection reads:
//!
//! - the service layer: per service (`tipc.service` = `type:instance`) the tells, asks,
//!   replies and errors by kind it counted, its socket's queue; per node the client side's
//!   tells, asks, returned tells, late replies and failed asks by kind;
//! - the transport, per link (`tipc.link`): packets sent and received, retransmissions,
//!   NACKs, duplicates, deferred packets, congestions, messages returned at a reset, its queues
//!   and window; per peer node (`tipc.peer`): up, failovers, restarts, messages lost unreturned;
//!   per node: what it dropped by cause, its sockets, the broadcast link's counters.
//!
//! Every data point carries `tipc.node`, the node's address (as spans do). The link and peer
//! figures live in the node's actors: a collection asks them (on the node's runtime) and waits
//! at most [`TRANSPORT_WAIT`]; if they cannot answer in time (the collection runs on the
//! node's own thread, or the node stopped) the figures read last time are exported. A node or
//! service that stopped is exported once more with its last figures, then forgotten.

use opentelemetry::metrics::{AsyncInstrument, Meter};
use opentelemetry::KeyValue;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tipc_actors::msg::PeerSnapshot;
use tipc_actors::socket::rcv::RcvStats;
use tipc_actors::{NetDrops, TransportNode};
use tipc_transport::bcast::BcastStats;
use tipc_transport::link::LinkState;

/// How long a collection waits for a node's actors to report its links and peers.
pub const TRANSPORT_WAIT: Duration = Duration::from_millis(250);

/// Figures younger than this are reused: one collection reads the node once, not once per
/// instrument.
const FRESH: Duration = Duration::from_millis(100);

/// A service socket's receive queue at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueLook {
    /// Messages waiting (unknown for a group member, which counts bytes).
    pub len: Option<u64>,
    /// Bytes waiting.
    pub bytes: u64,
    /// Messages refused because the queue was full (returned to their senders).
    pub refused: u64,
}

/// Reads a service's queue, or None once its socket is gone.
pub(crate) type QueueProbe = Box<dyn Fn() -> Option<QueueLook> + Send + Sync>;

/// Adds the data points of one node's client side or one service (its last figures once it
/// is gone); false once it is gone. Registered by the service layer, which names its points.
pub(crate) type Reader = Box<dyn Fn(&mut Points) -> bool + Send + Sync>;

/// The transport of a node, while it runs.
pub(crate) type TransportOf = Box<dyn Fn() -> Option<TransportNode> + Send + Sync>;

/// What the transport of one node reported.
#[derive(Clone)]
struct TransportLook {
    peers: Vec<PeerSnapshot>,
    drops: NetDrops,
    rcv: RcvStats,
    bcast: BcastStats,
    sockets: usize,
}

struct NodeEntry {
    addr: u32,
    transport_of: TransportOf,
    read: Reader,
    rt: Option<tokio::runtime::Handle>,
    transport: Option<TransportLook>,
    /// Found stopped by a collection, which exported its last figures.
    gone: bool,
}

struct ServiceEntry {
    read: Reader,
    /// Found stopped by a collection, which exported its last figures.
    gone: bool,
}

#[derive(Default)]
struct Registry {
    nodes: Vec<NodeEntry>,
    services: Vec<ServiceEntry>,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    nodes: Vec::new(),
    services: Vec::new(),
});

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// Register node `addr` at its start (on its runtime): `transport_of` reaches its transport
/// while it runs, `read` adds its client side's points.
pub(crate) fn register_node(addr: u32, transport_of: TransportOf, read: Reader) {
    let mut r = registry();
    // Stopped nodes are kept until a collection exported them once (if one may come).
    let keep_gone = installed();
    r.nodes.retain(|n| {
        let alive = (n.transport_of)().is_some();
        alive || (keep_gone && !n.gone)
    });
    r.nodes.push(NodeEntry {
        addr,
        transport_of,
        read,
        rt: tokio::runtime::Handle::try_current().ok(),
        transport: None,
        gone: false,
    });
}

/// Register a service at its start: `read` adds its points.
pub(crate) fn register_service(read: Reader) {
    let mut r = registry();
    let keep_gone = installed();
    if !keep_gone {
        // Nothing will export them: forget the stopped ones now.
        r.services.retain_mut(|s| (s.read)(&mut Points::default()));
    } else {
        r.services.retain(|s| !s.gone);
    }
    r.services.push(ServiceEntry { read, gone: false });
}

/// One collection's data points, by metric name.
#[derive(Default)]
pub(crate) struct Points {
    at: Option<Instant>,
    by_name: HashMap<&'static str, Vec<(u64, Vec<KeyValue>)>>,
}

impl Points {
    /// One data point of metric `name`.
    pub(crate) fn add(&mut self, name: &'static str, value: u64, attrs: Vec<KeyValue>) {
        self.by_name.entry(name).or_default().push((value, attrs));
    }
}

static LAST: Mutex<Option<Arc<Points>>> = Mutex::new(None);

/// The data points of the current collection (read now, or less than [`FRESH`] ago).
fn points() -> Arc<Points> {
    let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = last.as_ref() {
        if p.at.is_some_and(|t| t.elapsed() < FRESH) {
            return p.clone();
        }
    }
    let p = Arc::new(collect());
    *last = Some(p.clone());
    p
}

/// Ask every live node's transport for its figures (on the node's runtime), wait for them
/// (bounded), then read every counter.
fn collect() -> Points {
    // Ask first, without holding the registry (a node may start meanwhile).
    let (tx, rx) = std::sync::mpsc::channel::<(u32, TransportLook)>();
    let mut asked = 0;
    {
        let r = registry();
        for n in &r.nodes {
            let (Some(node), Some(rt)) = ((n.transport_of)(), n.rt.as_ref()) else {
                continue;
            };
            let (tx, addr) = (tx.clone(), n.addr);
            rt.spawn(async move {
                let look = read_transport(&node).await;
                let _ = tx.send((addr, look));
            });
            asked += 1;
        }
    }
    drop(tx);
    let mut looks = HashMap::new();
    let deadline = Instant::now() + TRANSPORT_WAIT;
    while looks.len() < asked {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok((addr, look)) => {
                looks.insert(addr, look);
            }
            Err(_) => break,
        }
    }
    let mut r = registry();
    // Those found gone last time were exported once with their last figures: forget them.
    r.nodes.retain(|n| !n.gone);
    r.services.retain(|s| !s.gone);
    let mut p = Points {
        at: Some(Instant::now()),
        ..Points::default()
    };
    for n in &mut r.nodes {
        if let Some(look) = looks.remove(&n.addr) {
            n.transport = Some(look);
        }
        n.gone = !(n.read)(&mut p);
        transport_points(&mut p, n);
    }
    for s in &mut r.services {
        s.gone = !(s.read)(&mut p);
    }
    p
}

async fn read_transport(node: &TransportNode) -> TransportLook {
    TransportLook {
        peers: node.peers().await,
        drops: node.net_drops().await,
        rcv: node.rcv_stats(),
        bcast: node.bcast_stats().0,
        sockets: node.sockets().len(),
    }
}

/// A string or integer attribute.
pub(crate) fn kv(key: &'static str, value: impl Into<opentelemetry::Value>) -> KeyValue {
    KeyValue::new(key, value)
}

fn transport_points(p: &mut Points, n: &NodeEntry) {
    let node = || kv("tipc.node", n.addr as i64);
    let Some(t) = &n.transport else { return };
    for peer in &t.peers {
        let pa = || vec![node(), kv("tipc.peer", peer.addr.to_string())];
        let s = &peer.stats;
        p.add("tipc.peer.up", u64::from(peer.up), pa());
        p.add("tipc.peer.failovers", s.failovers, pa());
        p.add("tipc.peer.restarts", s.restarts, pa());
        p.add("tipc.peer.unreturned", s.unreturned, pa());
        p.add("tipc.peer.bcast.received", s.bcast_rx, pa());
        for (_, l) in &peer.links {
            let la = |extra: Option<(&'static str, &'static str)>| {
                let mut v = vec![node(), kv("tipc.link", l.name.clone())];
                if let Some((k, val)) = extra {
                    v.push(kv(k, val));
                }
                v
            };
            let s = &l.stats;
            let dir = |d| Some(("direction", d));
            p.add("tipc.link.packets", s.tx_packets, la(dir("tx")));
            p.add("tipc.link.packets", s.rx_packets, la(dir("rx")));
            p.add("tipc.link.bundled", s.tx_bundled, la(dir("tx")));
            p.add("tipc.link.bundled", s.rx_bundled, la(dir("rx")));
            p.add("tipc.link.retransmitted", s.retransmitted, la(None));
            p.add("tipc.link.nacks", s.tx_nacks, la(dir("tx")));
            p.add("tipc.link.nacks", s.rx_nacks, la(dir("rx")));
            p.add("tipc.link.duplicates", s.duplicates, la(None));
            p.add("tipc.link.deferred", s.deferred, la(None));
            p.add("tipc.link.congestions", s.link_congs, la(None));
            p.add("tipc.link.returned", s.purged, la(None));
            let q = |name| Some(("queue", name));
            p.add("tipc.link.queue", l.transmq_len as u64, la(q("transmit")));
            p.add("tipc.link.queue", l.backlog_len as u64, la(q("backlog")));
            p.add("tipc.link.queue", l.deferred_len as u64, la(q("deferred")));
            p.add("tipc.link.window", u64::from(l.window), la(None));
            p.add(
                "tipc.link.up",
                u64::from(l.state == LinkState::Established),
                la(None),
            );
        }
    }
    let d = &t.drops;
    let r = &t.rcv;
    for (cause, v) in [
        ("malformed", d.malformed + r.malformed),
        ("misrouted", d.misrouted),
        ("unknown_peer", d.unknown_peer),
        ("wrong_network", d.wrong_network),
        ("duplicate_address", d.duplicate_address),
        ("spoofed_source", d.spoofed_source),
        ("peer_limit", d.peer_limit),
        ("stranger_limited", d.stranger_limited),
        ("foreign_names", d.foreign_names),
        ("not_for_sockets", r.not_for_sockets),
        ("not_returnable", r.not_returnable),
        ("sender_gone", r.sender_gone),
    ] {
        p.add("tipc.node.dropped", v, vec![node(), kv("cause", cause)]);
    }
    p.add("tipc.node.sockets", t.sockets as u64, vec![node()]);
    let b = &t.bcast;
    p.add("tipc.bcast.packets", b.tx_packets, vec![node()]);
    p.add("tipc.bcast.retransmitted", b.retransmitted, vec![node()]);
    p.add("tipc.bcast.queue", b.queued as u64, vec![node()]);
}

/// How an instrument reports.
#[derive(Clone, Copy)]
enum Kind {
    /// A monotonic count since the node (or service) started.
    Counter,
    /// A value now.
    Gauge,
}

/// Every instrument: name, kind, unit, description.
const INSTRUMENTS: &[(&str, Kind, &str, &str)] = &[
    (
        "tipc.service.tells",
        Kind::Counter,
        "{message}",
        "Tells a service handled",
    ),
    (
        "tipc.service.asks",
        Kind::Counter,
        "{message}",
        "Asks a service handled (answered or deferred)",
    ),
    (
        "tipc.service.replies",
        Kind::Counter,
        "{message}",
        "Replies a service sent",
    ),
    (
        "tipc.service.errors",
        Kind::Counter,
        "{message}",
        "Bad input and failures at a service, by kind (tipc.error)",
    ),
    (
        "tipc.service.queue",
        Kind::Gauge,
        "{message}",
        "Messages waiting in a service's socket queue",
    ),
    (
        "tipc.service.queue.bytes",
        Kind::Gauge,
        "By",
        "Bytes waiting in a service's socket queue",
    ),
    (
        "tipc.service.queue.refused",
        Kind::Counter,
        "{message}",
        "Messages a service's full queue refused (returned to their senders)",
    ),
    (
        "tipc.client.tells",
        Kind::Counter,
        "{message}",
        "Tells this node's clients sent",
    ),
    (
        "tipc.client.asks",
        Kind::Counter,
        "{message}",
        "Asks this node's clients sent",
    ),
    (
        "tipc.client.tells.returned",
        Kind::Counter,
        "{message}",
        "Tells that came back undelivered",
    ),
    (
        "tipc.client.tells.failed",
        Kind::Counter,
        "{message}",
        "Tells that failed at once",
    ),
    (
        "tipc.client.late_replies",
        Kind::Counter,
        "{message}",
        "Replies that came after their ask ended",
    ),
    (
        "tipc.client.malformed",
        Kind::Counter,
        "{message}",
        "Unreadable messages at the client socket",
    ),
    (
        "tipc.client.asks.pending",
        Kind::Gauge,
        "{message}",
        "Asks waiting for a reply",
    ),
    (
        "tipc.client.ask.errors",
        Kind::Counter,
        "{message}",
        "Failed asks, by kind (tipc.error)",
    ),
    (
        "tipc.link.packets",
        Kind::Counter,
        "{packet}",
        "Sequenced packets a link sent or received (direction)",
    ),
    (
        "tipc.link.bundled",
        Kind::Counter,
        "{message}",
        "Messages a link sent or received in bundles (direction)",
    ),
    (
        "tipc.link.retransmitted",
        Kind::Counter,
        "{packet}",
        "Packets a link retransmitted",
    ),
    (
        "tipc.link.nacks",
        Kind::Counter,
        "{message}",
        "NACKs a link sent or received (direction)",
    ),
    (
        "tipc.link.duplicates",
        Kind::Counter,
        "{packet}",
        "Duplicate packets a link dropped",
    ),
    (
        "tipc.link.deferred",
        Kind::Counter,
        "{packet}",
        "Packets a link held for a gap",
    ),
    (
        "tipc.link.congestions",
        Kind::Counter,
        "{event}",
        "Times a link's backlog became congested",
    ),
    (
        "tipc.link.returned",
        Kind::Counter,
        "{message}",
        "Messages a link returned to their senders at a reset",
    ),
    (
        "tipc.link.queue",
        Kind::Gauge,
        "{packet}",
        "Packets in a link's transmit, backlog and deferred queues (queue)",
    ),
    (
        "tipc.link.window",
        Kind::Gauge,
        "{packet}",
        "A link's send window",
    ),
    (
        "tipc.link.up",
        Kind::Gauge,
        "1",
        "1 while a link is established",
    ),
    (
        "tipc.peer.up",
        Kind::Gauge,
        "1",
        "1 while a peer node is up",
    ),
    (
        "tipc.peer.failovers",
        Kind::Counter,
        "{event}",
        "Failovers to a peer's other link",
    ),
    (
        "tipc.peer.restarts",
        Kind::Counter,
        "{event}",
        "Restarts of a peer node seen",
    ),
    (
        "tipc.peer.unreturned",
        Kind::Counter,
        "{message}",
        "Messages a failed link dropped without returning them",
    ),
    (
        "tipc.peer.bcast.received",
        Kind::Counter,
        "{packet}",
        "Broadcast-link packets received from a peer",
    ),
    (
        "tipc.node.dropped",
        Kind::Counter,
        "{message}",
        "What the node dropped, by cause",
    ),
    ("tipc.node.sockets", Kind::Gauge, "{socket}", "Open sockets"),
    (
        "tipc.bcast.packets",
        Kind::Counter,
        "{packet}",
        "Packets the broadcast link sent",
    ),
    (
        "tipc.bcast.retransmitted",
        Kind::Counter,
        "{packet}",
        "Packets the broadcast link retransmitted",
    ),
    (
        "tipc.bcast.queue",
        Kind::Gauge,
        "{packet}",
        "Packets the broadcast link holds",
    ),
];

fn observe(name: &'static str, obs: &dyn AsyncInstrument<u64>) {
    let p = points();
    for (v, attrs) in p.by_name.get(name).into_iter().flatten() {
        obs.observe(*v, attrs);
    }
}

/// The names of the instruments [`register`] makes.
pub fn instrument_names() -> impl Iterator<Item = &'static str> {
    INSTRUMENTS.iter().map(|i| i.0)
}

/// Make the observable instruments on `meter` (once per meter provider).
pub(crate) fn register(meter: &Meter) {
    for &(name, kind, unit, description) in INSTRUMENTS {
        match kind {
            Kind::Counter => {
                meter
                    .u64_observable_counter(name)
                    .with_unit(unit)
                    .with_description(description)
                    .with_callback(move |obs| observe(name, obs))
                    .build();
            }
            Kind::Gauge => {
                meter
                    .u64_observable_gauge(name)
                    .with_unit(unit)
                    .with_description(description)
                    .with_callback(move |obs| observe(name, obs))
                    .build();
            }
        }
    }
}

/// Whether a meter provider with these instruments is installed.
static INSTALLED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub(crate) fn set_installed(on: bool) {
    INSTALLED.store(on, std::sync::atomic::Ordering::Release);
    if !on {
        *LAST.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

fn installed() -> bool {
    INSTALLED.load(std::sync::atomic::Ordering::Acquire)
}
