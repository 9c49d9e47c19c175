//! A deterministic, seeded simulation of whole TIPC clusters on a virtual clock
//! (ARCHITECTURE.md "Tests" item 4).
//!
//! Each [`SimNode`] runs the node's sans-IO cores through the same functions the actors call
//! (`node`: discovery, peers, the name service, the receive dispatch of
//! `tipc_actors::socket::rcv`, the connection sockets' glue; kernel `bearer.c`, `discover.c`,
//! `node.c`, `name_distr.c`, `socket.c`; spec §3.3, §4.1, §7, §9). Bearer `b` of every node is
//! attached to segment `b`; node `i` has the media address `MediaAddr::Mem(i + 1)` on every
//! segment, and a broadcast reaches every other node of the segment.
//!
//! [`Sim`] owns N nodes, an event queue ordered by (virtual time, sequence number), a virtual
//! clock that jumps to the next deadline (a frame arrival or the earliest `poll_timeout` of any
//! core), one seeded RNG ([`ChaCha8Rng`]) from which everything random is drawn (delays, losses,
//! node signatures, link sessions; with [`SimConfig::crypto`] the keys and each crypto core's
//! random numbers, on streams of their own derived from the seed), per-direction [`FaultRule`]s, partitions, crashes and
//! restarts, and a traffic model (numbered `DIRECT_MSG` messages per (src, dst) flow, sent while
//! the link is not congested, as a socket would).
//!
//! # Invariants (checked after every step)
//!
//! A violation panics with `sim seed=N step=K t=T: ...`; rerun with `SIM_SEED=N` (see
//! [`seeds`]), adding `SIM_TRACE=1` to print every fault action and link/node event.
//!
//! 1. **Exactly once, in order**, per (src, dst): a delivered message was sent, is intact (header
//!    and payload name the right nodes), and its number is larger than every number delivered
//!    before on that flow. A number may be skipped only if its message came back to the
//!    sender's traffic socket (the link dropped it when it went down: [`PeerEvent::Returned`],
//!    routed by the dispatch), or if the sender crashed after sending it. (One link per pair
//!    is used at a time, so this is also the per-link-session order.)
//! 2. **Bounded queues**: for every link, transmit + backlog + deferred ≤ [`Sim::queue_bound`]
//!    (`2 × max_win + 3 × min_win + 16`: the window, the LOW backlog limit `2 × min_win` with its
//!    50 % oversubscription, a peer's window of deferred packets, and slack for protocol
//!    messages).
//! 3. **Loss detected in time**: when a peer crashes or is cut off at time T, every link to it
//!    that was up is declared down by T + [`Sim::down_bound`] (tolerance + one tick margin, a
//!    tick being `min(tolerance / 4, 500 ms)`). And a link never goes down without a cause: a
//!    `LinkDown` is accepted only if, within the last `10 × tolerance + down_bound`, a frame
//!    between the two nodes was lost or corrupted, they were cut apart, or one of them crashed
//!    or restarted.
//! 4. **Recovery in time**: after the cluster starts, after [`Sim::heal`] and after
//!    [`Sim::restart`], every pair of live, connected nodes has all its links up (at both ends)
//!    within [`Sim::up_bound`] (`16 ticks + DISC_FAST + 2 ticks + 2 × max delay`: a link in
//!    RESET sends a RESET on ticks 1–5 and then every 16th tick, discovery repeats within
//!    `DISC_FAST`). The check is disarmed by a new partition or crash.
//! 5. **Bindings** (with [`SimConfig::names`], the name glue below): (a) at a node-down, the node keeps no binding of the
//!    lost peer; (b) on a *quiet* direction — publisher and viewer have each other up and the
//!    publisher's links to the viewer hold nothing unacknowledged (transmit queue and backlog
//!    empty) — the viewer's bindings of the publisher equal the publisher's own cluster-scope
//!    bindings (every update sent was acknowledged, so it was delivered and applied); (c)
//!    **convergence in time**: after the cluster starts, after [`Sim::heal`] and after
//!    [`Sim::restart`], if no binding changes after that, every pair of live nodes that are
//!    up to each other has converged, and no node holds bindings of a node it has no working
//!    link to, within [`Sim::converge_bound`] (`up_bound + 10 × tolerance`). Disarmed by a new
//!    partition, crash, publish or withdraw.
//! 6. **Publish before data**: a binding-reference message ([`Sim::send_ref`]: a data message
//!    naming one of its sender's bindings, sent after the binding was published) is delivered
//!    at most once, in order per (src, dst), intact, and only when the receiving node's table
//!    already holds that binding — checked at every delivery.
//! 7. **Connections** (with [`SimConfig::conns`], the connection glue below), on every
//!    connection: (a) bytes (stream) and messages (seqpacket) are read exactly once, in order
//!    and intact (a pattern keyed by connection, direction and offset; seqpacket messages carry
//!    their number and length), never more than was written; (b) flow control: a sender's
//!    `snt_unacked` stays within its window plus one message, and never below the blocks it
//!    wrote that the peer's application has not read yet (acks only count what was read); a
//!    socket's queued memory stays within [`Sim::conn_rx_bound`] (the window plus one message
//!    at the worst truesize per block) and below the receive buffer (no OVERLOAD); (c) a
//!    connection ends only by an orderly shutdown (the peer read everything, then `Ok`), or
//!    with an error when its peer node was really cut off, crashed or restarted after it was
//!    opened; (d) when that happens to an established connection at time T, its live ends are
//!    ended by T + [`Sim::down_bound`] (a heal before then cancels this for a partition).
//!
//! 8. **Groups** (with [`SimConfig::groups`], the group glue below): member sockets read
//!    every sender's messages in send order, at most once, only where the mode addresses them,
//!    after the sender's MEMBER_UP; nothing is dropped silently and a member's unread queue
//!    stays within the windows ([`Sim::group_queue_bound`]); at the end, everything sent
//!    between members that stayed in contact was read ([`Sim::group_check_complete`]). Details
//!    in `groups.rs`.
//!
//! 9. **Encryption** (with [`SimConfig::crypto`], the crypto glue of `node.rs`: every node
//!    holds keys from its start, and seals and opens through the actors' `NodeCrypto`): (a)
//!    no frame goes on the wire in clear from a node that holds a key — discovery included,
//!    since the kernel seals it too once keyed (a clear frame from a keyed node is accepted
//!    only for discovery while the node does not seal yet); (b) nothing is refused on the
//!    send side (no TX key, revoked, bad packet); (c) every crypto drop on a node instance
//!    is explained by what the wire did to the frames it received: replayed and too-old
//!    envelopes by the copies the injector duplicated or delayed extra, and by envelopes of
//!    a restarted peer received before this node's node-down or node-up for it (its replay
//!    windows still hold the previous instance's numbers); authentication failures (decrypt
//!    failed, no key, bad header, bad inner packet, inconsistent, plaintext refused) by the
//!    envelopes the injector corrupted or garbled, plus the probe and grace copies received
//!    (sealed before their frame with a key the receiver may not hold yet; the simulation
//!    marks them as the crypto hands them out, [`OutFrame::probe`]), and the envelopes sealed
//!    with a session key the receiver had not activated in that slot for their sender when
//!    they arrived (a restarted node's peers seal for its previous instance; a pending key
//!    never used is replaced by a rekeyed one while its sender still seals with it; the
//!    first envelopes under a new key). Failures of master-sealed envelopes, or of
//!    envelopes under a key active at the receiver in their slot, are never explained.
//!    Envelopes from a node not (or no longer) known are dropped like
//!    [`NodeStats::rx_unknown_peer`] and not bounded. Under crypto any flip of
//!    an envelope is caught by its tag, so [`FaultRule::corrupt`] flips a byte of the
//!    ciphertext or tag (a decrypt failure) and [`FaultRule::garble`] runs with invariant 1
//!    on.
//!
//! # Applications
//!
//! The simulation's applications sit on the nodes' ports: each node `i` has a harness socket
//! for the traffic (port `1000 + i`: numbered `DIRECT_MSG` messages per (src, dst) flow) and
//! one for binding references (port `2000 + i`, with [`SimConfig::names`]); what the dispatch
//! delivers to them, or returns to them with an error code, is checked by invariants 1 and 6.
//! With [`SimConfig::conns`], connection sockets run applications ([`Sim::conn_listen`],
//! [`Sim::conn_open`], [`ConnSpec`]): writers that write while the connection's window and
//! the link allow, readers at a [`ReadPace`] (slow ones make the window hold the writer back),
//! and an orderly `shutdown` by one side once everything went both ways. With
//! [`SimConfig::groups`], group members ([`Sim::group_join`]: a `GroupSock` per member, the
//! same sans-IO socket the actors' driver runs, fed its binding events from the node's table
//! and its messages by the dispatch, its transmits routed by `route_transmit`) send numbered
//! messages in the four modes ([`Sim::group_send`]) and read at a [`ReadPace`].
//!
//! # Corruption
//!
//! TIPC has no checksum of its own: the media (UDP checksum, Ethernet FCS) drop damaged frames.
//! A corrupted frame in the simulation therefore has one byte flipped where the header
//! validation must notice it (the version bits of byte 0, or bit 16 of the message size), so
//! it must be counted and dropped, never delivered and never a panic.
//! [`FaultRule::garble`] instead flips a random byte anywhere: TIPC cannot detect that, so it
//! is for robustness runs only (never panic), with invariant 1 turned off
//! ([`SimConfig::check_delivery`]).

mod conns;
mod groups;
mod names;
mod node;
mod traffic;

pub use conns::{ConnEnd, ConnSpec, ReadPace, SimConn, SimListener};
pub use groups::SimMember;
pub use names::{NameCmdError, RefMsg, RefState};
pub use node::{
    Accepted, ConnGlueStats, CryptoGlueStats, GroupGlueStats, NameStats, SimNode, Upcall,
};
pub use tipc_actors::sock::conn::ConnKind;
pub use traffic::Flow;

use bytes::{Bytes, BytesMut};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::time::{Duration, Instant};

/// The wall-clock time (µs since the Unix epoch) at virtual time 0: nodes started later are
/// given it plus the virtual time elapsed ([`SimNode::new`]).
const SIM_EPOCH_US: u64 = 1_790_000_000_000_000;
use tipc_transport::crypto::{
    is_envelope, CryptoDrop, CryptoStats, Ehdr, Key, KeySetting, KeyTarget, EHDR_CFG_SIZE,
};
use tipc_transport::discovery::DISC_FAST;
use tipc_transport::link::DownReason;
use tipc_transport::media::Dest;
use tipc_transport::peer::PeerEvent;
use tipc_transport::wire::{Header, MediaAddr, BASIC_H_SIZE};
use tipc_transport::{BearerId, NodeAddr, NodeId};

/// `TIPC_DIRECT_MSG`: the message type of our traffic.
const DIRECT_MSG: u8 = 3;
/// Bytes of the (src, dst, seq) record at the start of a traffic payload.
const RECORD_LEN: usize = 16;
/// The network id every simulated node uses.
const NET_ID: u32 = 4711;
/// First payload word of a binding-reference message ("REFS").
const REF_MAGIC: u32 = 0x5245_4653;
/// Payload bytes of a binding-reference message: magic, src, dst, id, type, lower, upper, port,
/// key.
const REF_LEN: usize = 40;
/// Node `i`'s traffic socket is at port `TRAFFIC_PORT_BASE + i`.
const TRAFFIC_PORT_BASE: u32 = 1000;
/// Node `i`'s reference socket is at port `REF_PORT_BASE + i`.
const REF_PORT_BASE: u32 = 2000;
/// The largest unit a connection writer sends (stream chunk or seqpacket message).
const MAX_UNIT: usize = 3000;
/// Bytes of the record at the start of a seqpacket message: id, direction, number, length,
/// and 4 spare bytes.
const SEQ_REC: usize = 24;

/// The seeds to run: `SIM_SEED=N` in the environment replaces `default` by `[N]`.
pub fn seeds(default: impl IntoIterator<Item = u64>) -> Vec<u64> {
    match std::env::var("SIM_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(s) => vec![s],
        None => default.into_iter().collect(),
    }
}

/// Faults applied to frames going one way between two nodes (all probabilities in 0.0..=1.0).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// Probability a frame is lost.
    pub loss: f64,
    /// Probability a frame is delivered twice (each copy with its own delay).
    pub dup: f64,
    /// Probability a copy gets an extra random delay in `0..reorder_max` (reordering).
    pub reorder: f64,
    /// The largest extra delay of a reordered copy.
    pub reorder_max: Duration,
    /// Smallest propagation delay.
    pub delay_min: Duration,
    /// Largest propagation delay (uniform between min and max).
    pub delay_max: Duration,
    /// Probability a copy has one byte flipped where header validation must catch it.
    pub corrupt: f64,
    /// Probability a copy has a random byte flipped anywhere (undetectable by TIPC; only for
    /// robustness runs with [`SimConfig::check_delivery`] off).
    pub garble: f64,
}

impl Default for FaultRule {
    fn default() -> Self {
        FaultRule {
            loss: 0.0,
            dup: 0.0,
            reorder: 0.0,
            reorder_max: Duration::from_millis(2),
            delay_min: Duration::from_micros(50),
            delay_max: Duration::from_micros(150),
            corrupt: 0.0,
            garble: 0.0,
        }
    }
}

impl FaultRule {
    /// A rule with loss, duplication and reordering, default delays.
    pub fn lossy(loss: f64, dup: f64, reorder: f64) -> Self {
        FaultRule {
            loss,
            dup,
            reorder,
            ..FaultRule::default()
        }
    }

    /// Does this rule make links fail legitimately (frames lost or damaged)?
    fn is_destructive(&self) -> bool {
        self.loss > 0.0 || self.corrupt > 0.0 || self.garble > 0.0
    }
}

/// Which keys the nodes of a keyed simulation hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimKeys {
    /// One cluster key on every node (`tipc node set key KEY`).
    Cluster,
    /// A master key on every node plus a session key of its own (`set key M master`, then
    /// `set key Ki`): the session keys are exchanged in KEY_DISTR messages over the links.
    Master,
}

/// Encryption of a simulated cluster: the keys, drawn from the seed, are set on every node
/// at its start (and again at a restart, as a node's configuration would).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimCrypto {
    /// The keys.
    pub keys: SimKeys,
    /// Automatic rekeying interval (virtual time); `None`: off.
    pub rekeying: Option<Duration>,
}

/// Cluster parameters.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Number of nodes.
    pub nodes: usize,
    /// Bearers per node (segments), 1..=[`tipc_transport::MAX_BEARERS`].
    pub bearers: usize,
    /// Link tolerance.
    pub tolerance: Duration,
    /// Bearer MTU.
    pub mtu: usize,
    /// MTU of bearer 0 when it differs from the others' `mtu` (links of unequal MTU: what
    /// fails over from the larger one goes in tunnel fragments).
    pub first_mtu: Option<usize>,
    /// Minimum link window.
    pub min_win: u16,
    /// Maximum link window.
    pub max_win: u16,
    /// Payload bytes of a traffic message (at least 16, below the link MSS).
    pub msg_size: usize,
    /// Check invariant 1 (exactly once, in order, intact). Off only for runs with
    /// [`FaultRule::garble`].
    pub check_delivery: bool,
    /// Run the name glue (bulks, single updates, purges) and check invariants 5 and 6. Off by
    /// default so that runs without it keep their frame sequence (and seeds) unchanged.
    pub names: bool,
    /// Run the connection glue (ConnCore sockets fed by the peers, [`Sim::conn_listen`],
    /// [`Sim::conn_open`]) and check invariant 7. Off by default, like `names`.
    pub conns: bool,
    /// Run the group applications ([`Sim::group_join`], [`Sim::group_send`]) and check
    /// invariant 8 (needs `names`: members find each other through bindings).
    pub groups: bool,
    /// Encrypt (invariant 9): every node seals and opens through the actors' crypto glue.
    /// `None` by default.
    pub crypto: Option<SimCrypto>,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            nodes: 3,
            bearers: 1,
            tolerance: Duration::from_millis(1500),
            mtu: 1500,
            first_mtu: None,
            min_win: 50,
            max_win: 200,
            msg_size: 64,
            check_delivery: true,
            names: false,
            conns: false,
            groups: false,
            crypto: None,
        }
    }
}

/// Crypto counters summed over node instances (live and crashed ones).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CryptoTotals {
    /// Envelopes sealed by the cores (probe and grace copies included).
    pub tx_ok: u64,
    /// Probe copies sealed with a pending key.
    pub tx_probes: u64,
    /// Grace copies sealed with the master key.
    pub tx_grace: u64,
    /// Envelopes opened and accepted.
    pub rx_ok: u64,
    /// Plaintext frames accepted.
    pub rx_clear: u64,
    /// KEY_DISTR messages queued by the cores.
    pub keys_sent: u64,
    /// KEY_DISTR messages accepted.
    pub keys_received: u64,
    /// KEY_DISTR messages refused.
    pub keys_refused: u64,
    /// Key activations.
    pub switches: u64,
    /// Drops by reason (index [`CryptoDrop::index`]).
    pub drops: [u64; CryptoDrop::ALL.len()],
    /// The glue's counters.
    pub glue: CryptoGlueStats,
}

impl CryptoTotals {
    /// Drops for `reason`.
    pub fn dropped(&self, reason: CryptoDrop) -> u64 {
        self.drops[reason.index()]
    }
    fn add(&mut self, s: &CryptoStats, g: &CryptoGlueStats) {
        self.tx_ok += s.tx_ok;
        self.tx_probes += s.tx_probes;
        self.tx_grace += s.tx_grace;
        self.rx_ok += s.rx_ok;
        self.rx_clear += s.rx_clear;
        self.keys_sent += s.keys_sent;
        self.keys_received += s.keys_received;
        self.keys_refused += s.keys_refused;
        self.switches += s.switches;
        for r in CryptoDrop::ALL {
            self.drops[r.index()] += s.dropped(r);
        }
        let t = &mut self.glue;
        t.sealed_sent += g.sealed_sent;
        t.clear_sent += g.clear_sent;
        t.envelopes_rx += g.envelopes_rx;
        t.opened += g.opened;
        t.keys_sent_unicast += g.keys_sent_unicast;
        t.keys_sent_bcast += g.keys_sent_bcast;
        t.keys_send_failed += g.keys_send_failed;
        t.wire_dups += g.wire_dups;
        t.wire_reordered += g.wire_reordered;
        t.wire_tampered += g.wire_tampered;
        t.wire_probes += g.wire_probes;
        t.wire_after_restart += g.wire_after_restart;
        t.wire_not_active += g.wire_not_active;
    }
}

/// Drops that only a damaged (or not yet decryptable) envelope explains.
const AUTH_DROPS: [CryptoDrop; 6] = [
    CryptoDrop::DecryptFailed,
    CryptoDrop::NoKey,
    CryptoDrop::BadHeader,
    CryptoDrop::BadInner,
    CryptoDrop::Inconsistent,
    CryptoDrop::PlaintextRefused,
];
/// Drops of the send side.
const TX_DROPS: [CryptoDrop; 3] = [
    CryptoDrop::NoTxKey,
    CryptoDrop::KeyRevoked,
    CryptoDrop::BadOutgoing,
];

/// Receive-side counters of a simulated node (the bearer actor's, summed over bearers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Frames received.
    pub rx_frames: u64,
    /// Frames dropped by [`tipc_transport::peer::classify`] as malformed.
    pub rx_malformed: u64,
    /// Frames dropped by [`tipc_transport::peer::classify`] for another destination or a bad previous node.
    pub rx_misrouted: u64,
    /// Unicast or broadcast frames from a node we have no peer for.
    pub rx_unknown_peer: u64,
}

/// A frame a node wants sent.
#[derive(Debug, Clone)]
pub struct OutFrame {
    /// Out of which bearer (= segment).
    pub bearer: BearerId,
    /// To whom.
    pub dest: Dest,
    /// The frame.
    pub data: Bytes,
    /// A probe or grace copy the crypto sealed before its frame (with a key its receiver may
    /// not hold yet).
    pub probe: bool,
}

/// A frame on the simulated wire.
#[derive(Debug)]
struct InFlight {
    at: Instant,
    seq: u64,
    from: usize,
    to: usize,
    bearer: BearerId,
    data: Bytes,
    corrupted: bool,
    /// What the wire did to this copy (for invariant 9): the second copy of a duplicate,
    /// delayed extra, corrupted or garbled.
    dup: bool,
    reordered: bool,
    tampered: bool,
    probe: bool,
}

impl PartialEq for InFlight {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for InFlight {
    /// Reversed: `BinaryHeap` pops the earliest (time, sequence) first.
    fn cmp(&self, o: &Self) -> Ordering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

/// What happened, for tests (`Sim::log`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogKind {
    /// A link came up at `node` towards `peer`.
    LinkUp(BearerId),
    /// A link went down.
    LinkDown(BearerId, DownReason),
    /// `peer` became reachable.
    NodeUp,
    /// `peer` was lost.
    NodeDown,
}

/// A log entry: at `t` (since start), node `node` saw `kind` about node `peer` (indexes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Virtual time since the start.
    pub t: Duration,
    /// The node that saw it.
    pub node: usize,
    /// The peer it is about.
    pub peer: usize,
    /// What.
    pub kind: LogKind,
}

/// A deterministic cluster simulation.
#[derive(Debug)]
pub struct Sim {
    cfg: SimConfig,
    seed: u64,
    rng: ChaCha8Rng,
    start: Instant,
    now: Instant,
    step: u64,
    frame_seq: u64,
    queue: BinaryHeap<InFlight>,
    ids: Vec<NodeId>,
    addrs: Vec<NodeAddr>,
    index_of: HashMap<NodeAddr, usize>,
    nodes: Vec<Option<SimNode>>,
    default_rule: FaultRule,
    rules: HashMap<(usize, usize), FaultRule>,
    cut: BTreeSet<(usize, usize)>,
    /// Bearer segments that carry nothing (every node's bearer of that id).
    cut_segments: BTreeSet<BearerId>,
    flows: BTreeMap<(usize, usize), Flow>,
    /// (node, peer, bearer) -> deadline by which the link must be declared down, and whether
    /// the cause is a partition (a heal before the deadline cancels it).
    must_go_down: BTreeMap<(usize, usize, BearerId), (Instant, bool)>,
    /// Unordered pair -> last time a fault touched it.
    last_fault: HashMap<(usize, usize), Instant>,
    /// All links must be up by then.
    up_deadline: Option<Instant>,
    log: Vec<LogEntry>,
    max_queue_seen: usize,
    frames_sent: u64,
    corrupted_delivered: u64,
    trace: bool,
    /// Binding-reference messages, by id.
    refs: Vec<RefMsg>,
    /// (src, dst) -> id of the last reference message delivered on that flow.
    ref_last: BTreeMap<(usize, usize), u64>,
    /// Bindings must have converged by then (invariant 5c).
    names_deadline: Option<Instant>,
    /// (publisher, viewer) -> the names versions last verified equal (invariant 5b).
    names_verified: HashMap<(usize, usize), (u64, u64)>,
    /// Simulated connections (invariant 7).
    conns: Vec<SimConn>,
    /// (node, port) -> (connection, end).
    conn_at: HashMap<(usize, u32), (usize, usize)>,
    /// Unordered pair -> last time it was cut apart, or one of them crashed or restarted.
    severed: HashMap<(usize, usize), Instant>,
    /// The applications' RNG (chunk sizes), apart from the wire's.
    conn_rng: ChaCha8Rng,
    max_conn_rx_mem: usize,
    /// Group member applications (invariant 8).
    members: Vec<SimMember>,
    /// (sender id, seq) of every anycast read.
    anycasts_read: BTreeSet<(usize, u64)>,
    /// When the first group traffic was asked for.
    traffic_start: Option<Instant>,
    max_group_queue: usize,
    /// Every node's keys (index = node), with [`SimConfig::crypto`].
    keys: Vec<Vec<KeySetting>>,
    /// (receiver, restarted peer): envelopes from the peer's new instance may meet the
    /// receiver's replay windows of the old one (until the receiver's node-up or node-down).
    restart_exposed: BTreeSet<(usize, usize)>,
    /// Crypto counters of crashed node instances.
    crypto_gone: CryptoTotals,
}

pub(crate) fn pair(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

impl Sim {
    /// A cluster of `cfg.nodes` fresh nodes at virtual time 0, all traffic-free and fault-free.
    pub fn new(cfg: SimConfig, seed: u64) -> Sim {
        let start = Instant::now();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let ids: Vec<NodeId> = (0..cfg.nodes)
            .map(|i| NodeId::from_str_id(&format!("sim{i}")).expect("short identity"))
            .collect();
        let addrs: Vec<NodeAddr> = ids.iter().map(|id| id.hash()).collect();
        let index_of: HashMap<NodeAddr, usize> =
            addrs.iter().enumerate().map(|(i, a)| (*a, i)).collect();
        assert_eq!(index_of.len(), cfg.nodes, "node addresses must be unique");
        assert!(
            cfg.msg_size >= RECORD_LEN && BASIC_H_SIZE + cfg.msg_size + 40 <= cfg.mtu,
            "msg_size must hold the record and stay below the MSS"
        );
        let nodes = (0..cfg.nodes)
            .map(|i| {
                let sig = rng.next_u32() as u16;
                Some(SimNode::new(
                    &cfg,
                    i,
                    ids[i],
                    sig,
                    rng.next_u64(),
                    start,
                    SIM_EPOCH_US,
                ))
            })
            .collect();
        let keys = cfg
            .crypto
            .map(|c| sim_keys(c, cfg.nodes, seed))
            .unwrap_or_default();
        let mut sim = Sim {
            cfg,
            seed,
            rng,
            start,
            now: start,
            step: 0,
            frame_seq: 0,
            queue: BinaryHeap::new(),
            ids,
            addrs,
            index_of,
            nodes,
            default_rule: FaultRule::default(),
            rules: HashMap::new(),
            cut: BTreeSet::new(),
            cut_segments: BTreeSet::new(),
            flows: BTreeMap::new(),
            must_go_down: BTreeMap::new(),
            last_fault: HashMap::new(),
            up_deadline: None,
            log: Vec::new(),
            max_queue_seen: 0,
            frames_sent: 0,
            corrupted_delivered: 0,
            trace: std::env::var_os("SIM_TRACE").is_some(),
            refs: Vec::new(),
            ref_last: BTreeMap::new(),
            names_deadline: None,
            names_verified: HashMap::new(),
            conns: Vec::new(),
            conn_at: HashMap::new(),
            severed: HashMap::new(),
            conn_rng: ChaCha8Rng::seed_from_u64(seed ^ 0x636f_6e6e),
            max_conn_rx_mem: 0,
            members: Vec::new(),
            anycasts_read: BTreeSet::new(),
            traffic_start: None,
            max_group_queue: 0,
            keys,
            restart_exposed: BTreeSet::new(),
            crypto_gone: CryptoTotals::default(),
        };
        for i in 0..sim.cfg.nodes {
            sim.set_keys(i);
        }
        sim.up_deadline = Some(start + sim.up_bound());
        sim.names_deadline = Some(start + sim.converge_bound());
        sim
    }

    // ------------------------------------------------------------------ accessors and bounds

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }
    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }
    /// Steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }
    /// The configuration.
    pub fn config(&self) -> &SimConfig {
        &self.cfg
    }
    /// Node `i`, if it is not crashed.
    pub fn node(&self, i: usize) -> Option<&SimNode> {
        self.nodes.get(i).and_then(|n| n.as_ref())
    }
    /// Node `i`'s address (stable across restarts).
    pub fn addr(&self, i: usize) -> NodeAddr {
        self.addrs[i]
    }
    /// The log of link and node events.
    pub fn log(&self) -> &[LogEntry] {
        &self.log
    }
    /// A flow's state.
    pub fn flow(&self, src: usize, dst: usize) -> Flow {
        self.flows.get(&(src, dst)).cloned().unwrap_or_default()
    }
    /// The largest transmit + backlog + deferred of any link seen so far.
    pub fn max_queue_seen(&self) -> usize {
        self.max_queue_seen
    }
    /// Frames put on the wire (before faults).
    pub fn frames_sent(&self) -> u64 {
        self.frames_sent
    }
    /// Frames with a detectable corruption ([`FaultRule::corrupt`]) handed to a live node.
    pub fn corrupted_delivered(&self) -> u64 {
        self.corrupted_delivered
    }
    /// The link tick: `min(tolerance / 4, 500 ms)`.
    pub fn tick(&self) -> Duration {
        (self.cfg.tolerance / 4).min(Duration::from_millis(500))
    }
    /// Invariant 2's bound on transmit + backlog + deferred of one link.
    pub fn queue_bound(&self) -> usize {
        2 * self.cfg.max_win as usize + 3 * self.cfg.min_win as usize + 16
    }
    /// Invariant 3's bound: tolerance + one tick.
    pub fn down_bound(&self) -> Duration {
        self.cfg.tolerance + self.tick()
    }
    /// Invariant 4's bound: 16 ticks + `DISC_FAST` + 2 ticks + twice the largest delay.
    pub fn up_bound(&self) -> Duration {
        let max_delay = std::iter::once(&self.default_rule)
            .chain(self.rules.values())
            .map(|r| r.delay_max + r.reorder_max)
            .max()
            .unwrap_or_default();
        self.tick() * 18 + DISC_FAST + max_delay * 2
    }

    /// Invariant 5c's bound: after the cluster starts, after [`Sim::heal`] and after
    /// [`Sim::restart`], with no publish or withdraw after that, every pair of live, connected
    /// nodes has converged within [`Sim::up_bound`] + 10 × tolerance. Once the links are up,
    /// the bulks and single updates are on reliable links, and a link fails when a packet is
    /// not through within 10 × tolerance of its first retransmission
    /// (`DownReason::RetransmitFailure`), which invariants 3 and 4 account for. Loss recovery
    /// on a quiet link is paced by the link tick (one gap per STATE exchange, no gap-ack
    /// blocks yet), so at 30 % loss a few hundred queued messages take several seconds.
    pub fn converge_bound(&self) -> Duration {
        self.up_bound() + self.cfg.tolerance * 10
    }

    /// Is every link between `a` and `b` up at both ends (one per bearer)?
    pub fn pair_up(&self, a: usize, b: usize) -> bool {
        let up = |x: usize, y: usize| {
            self.node(x)
                .and_then(|n| n.peer(self.addrs[y]))
                .is_some_and(|p| (0..self.cfg.bearers).all(|k| p.link_up(k as BearerId)))
        };
        up(a, b) && up(b, a)
    }
    /// Is every pair of live nodes that is not cut apart fully linked?
    pub fn all_up(&self) -> bool {
        let n = self.cfg.nodes;
        (0..n).all(|a| {
            (a + 1..n).all(|b| {
                self.node(a).is_none()
                    || self.node(b).is_none()
                    || self.cut.contains(&(a, b))
                    || self.pair_up(a, b)
            })
        })
    }
    /// Has node `a`'s peer object for `b` got a working link?
    pub fn peer_up(&self, a: usize, b: usize) -> bool {
        self.node(a)
            .and_then(|n| n.peer(self.addrs[b]))
            .is_some_and(|p| p.is_up())
    }

    // ------------------------------------------------------------------ faults

    /// The rule for every direction without its own rule.
    pub fn set_default_rule(&mut self, r: FaultRule) {
        self.default_rule = r;
        self.refresh_up_deadline();
    }
    /// The rule for frames from `from` to `to`.
    pub fn set_rule(&mut self, from: usize, to: usize, r: FaultRule) {
        self.rules.insert((from, to), r);
        self.refresh_up_deadline();
    }
    /// Remove every per-direction rule and reset the default to fault-free.
    pub fn clear_rules(&mut self) {
        self.rules.clear();
        self.default_rule = FaultRule::default();
    }
    fn rule(&self, from: usize, to: usize) -> &FaultRule {
        self.rules.get(&(from, to)).unwrap_or(&self.default_rule)
    }
    fn refresh_up_deadline(&mut self) {
        if self.up_deadline.is_some() {
            self.up_deadline = Some(self.now + self.up_bound());
        }
    }

    /// Cut `a` from `b` (both directions, every segment). Frames already on the wire between
    /// them are lost too.
    pub fn partition(&mut self, a: usize, b: usize) {
        if a == b || !self.cut.insert(pair(a, b)) {
            return;
        }
        self.trace(format_args!("partition {a} | {b}"));
        self.up_deadline = None;
        self.names_deadline = None;
        self.fault(a, b);
        let deadline = self.now + self.down_bound();
        for (x, y) in [(a, b), (b, a)] {
            self.expect_down(x, y, deadline, true);
        }
        self.sever(a, b, true);
    }
    /// Cut bearer segment `bearer` (every node's bearer of that id: a failed switch). Frames
    /// already on it are lost too. With another segment the nodes stay up: the links on this
    /// one go down and fail over. [`Sim::heal_segments`] (or [`Sim::heal`]) restores it.
    pub fn cut_segment(&mut self, bearer: BearerId) {
        if !self.cut_segments.insert(bearer) {
            return;
        }
        self.trace(format_args!("cut segment {bearer}"));
        self.up_deadline = None;
        self.names_deadline = None;
        for a in 0..self.cfg.nodes {
            for b in a + 1..self.cfg.nodes {
                self.fault(a, b);
            }
        }
    }
    /// Restore every cut segment, leaving pair cuts. Unlike [`Sim::heal`] this arms no bound
    /// on the links' return: a segment's links come back once their failover has ended, which
    /// takes as long as the tunnelled queue needs to cross the other segment's loss.
    pub fn heal_segments(&mut self) {
        if std::mem::take(&mut self.cut_segments).is_empty() {
            return;
        }
        self.trace(format_args!("heal segments"));
        for a in 0..self.cfg.nodes {
            for b in a + 1..self.cfg.nodes {
                self.fault(a, b);
            }
        }
    }
    /// Cut node `n` from every other node.
    pub fn isolate(&mut self, n: usize) {
        for o in 0..self.cfg.nodes {
            self.partition(n, o);
        }
    }
    /// Remove every cut; invariant 4 then expects all links up within [`Sim::up_bound`].
    pub fn heal(&mut self) {
        self.trace(format_args!("heal"));
        // A cut shorter than the tolerance need not take a link down.
        self.must_go_down.retain(|_, (_, partition)| !*partition);
        for e in self.conns.iter_mut().flat_map(|c| c.ends.iter_mut()) {
            if e.abort_by.is_some_and(|(_, partition)| partition) {
                e.abort_by = None;
            }
        }
        let cut: Vec<_> = std::mem::take(&mut self.cut).into_iter().collect();
        for (a, b) in cut {
            self.fault(a, b);
        }
        self.heal_segments();
        self.up_deadline = Some(self.now + self.up_bound());
        self.names_deadline = Some(self.now + self.converge_bound());
    }

    /// Node `n` disappears with all its state; frames to it are lost. Messages it had sent
    /// may be missing at their destinations.
    pub fn crash(&mut self, n: usize) {
        let Some(gone) = self.nodes[n].take() else {
            return;
        };
        if let Some(s) = gone.crypto_stats() {
            self.crypto_gone.add(&s, &gone.crypto_glue());
        }
        self.restart_exposed.retain(|&(o, _)| o != n);
        self.trace(format_args!("crash {n}"));
        self.up_deadline = None;
        self.names_deadline = None;
        for o in 0..self.cfg.nodes {
            if o != n {
                self.fault(n, o);
            }
        }
        self.must_go_down.retain(|k, _| k.0 != n);
        let deadline = self.now + self.down_bound();
        for o in 0..self.cfg.nodes {
            if o != n {
                self.expect_down(o, n, deadline, false);
            }
        }
        for ((src, _), f) in self.flows.iter_mut() {
            if *src == n {
                f.lost_below = f.next;
            }
        }
        for r in self.refs.iter_mut() {
            if r.src == n && r.state == RefState::Sent {
                r.state = RefState::Lost;
            }
        }
        self.names_verified.retain(|k, _| k.0 != n && k.1 != n);
        self.conns_crash(n);
        for m in self.members.iter_mut().filter(|m| m.node == n) {
            m.gone = true;
        }
    }

    /// Start node `n` again: same identity and address, new signature, new link sessions.
    pub fn restart(&mut self, n: usize) {
        if self.nodes[n].is_some() {
            return;
        }
        self.trace(format_args!("restart {n}"));
        let sig = self.rng.next_u32() as u16;
        let seed = self.rng.next_u64();
        let wall = SIM_EPOCH_US + u64::try_from((self.now - self.start).as_micros()).unwrap_or(0);
        self.nodes[n] = Some(SimNode::new(
            &self.cfg,
            n,
            self.ids[n],
            sig,
            seed,
            self.now,
            wall,
        ));
        self.set_keys(n);
        if self.cfg.crypto.is_some() {
            for o in (0..self.cfg.nodes).filter(|&o| o != n) {
                self.restart_exposed.insert((o, n));
            }
        }
        for o in 0..self.cfg.nodes {
            if o != n {
                self.fault(n, o);
            }
        }
        self.up_deadline = Some(self.now + self.up_bound());
        self.names_deadline = Some(self.now + self.converge_bound());
        self.names_verified.retain(|k, _| k.0 != n && k.1 != n);
        for o in (0..self.cfg.nodes).filter(|&o| o != n) {
            self.severed.insert(pair(n, o), self.now);
        }
        self.pump(n);
    }

    /// Set node `n`'s keys, as its configuration would at its start.
    fn set_keys(&mut self, n: usize) {
        let now = self.now;
        let Some(keys) = self.keys.get(n).cloned() else {
            return;
        };
        if let Some(node) = self.nodes[n].as_mut() {
            for k in keys {
                node.set_key(now, k);
            }
        }
    }

    /// Crypto counters summed over every node instance, live and crashed (with
    /// [`SimConfig::crypto`]).
    pub fn crypto_totals(&self) -> CryptoTotals {
        let mut t = self.crypto_gone.clone();
        for n in self.nodes.iter().flatten() {
            if let Some(s) = n.crypto_stats() {
                t.add(&s, &n.crypto_glue());
            }
        }
        t
    }

    fn trace(&self, what: std::fmt::Arguments<'_>) {
        if self.trace {
            eprintln!("[sim {:>12?} step {}] {what}", self.elapsed(), self.step);
        }
    }

    fn fault(&mut self, a: usize, b: usize) {
        self.last_fault.insert(pair(a, b), self.now);
    }

    /// Every up link of `x` towards `y` must go down by `deadline`.
    fn expect_down(&mut self, x: usize, y: usize, deadline: Instant, partition: bool) {
        let ya = self.addrs[y];
        let Some(p) = self.node(x).and_then(|n| n.peer(ya)) else {
            return;
        };
        let ups: Vec<BearerId> = (0..self.cfg.bearers as BearerId)
            .filter(|&k| p.link_up(k))
            .collect();
        for k in ups {
            self.must_go_down
                .entry((x, y, k))
                .or_insert((deadline, partition));
        }
    }

    /// Feed node `n` one frame directly (as if it came from the wire on `bearer`).
    pub fn inject(&mut self, n: usize, bearer: BearerId, frame: Bytes) {
        let now = self.now;
        if let Some(node) = self.nodes[n].as_mut() {
            node.handle_frame(now, bearer, frame);
        }
        self.pump(n);
    }

    // ------------------------------------------------------------------ the loop

    /// The next deadline: a frame arrival or a core's timer.
    fn next_deadline(&self) -> Option<Instant> {
        let f = self.queue.peek().map(|f| f.at);
        let r = self
            .conns
            .iter()
            .flat_map(|c| c.ends.iter())
            .filter_map(|e| {
                let port = e.port.filter(|_| !e.gone && e.end.is_none())?;
                let readable = self.node(e.node)?.conn(port)?.readable();
                (readable && e.next_read > self.now).then_some(e.next_read)
            });
        let g = self.group_next_read();
        let t = self
            .nodes
            .iter()
            .flatten()
            .filter_map(|n| n.poll_timeout())
            .chain(r)
            .chain(g)
            .min();
        match (f, t) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Advance to the next deadline, but not beyond `limit`; process everything due, run the
    /// traffic and check the invariants. Returns false if nothing was due before `limit`.
    pub fn step_until(&mut self, limit: Instant) -> bool {
        let Some(next) = self.next_deadline().filter(|&t| t <= limit) else {
            self.now = self.now.max(limit);
            self.check_invariants();
            return false;
        };
        self.now = self.now.max(next);
        let now = self.now;
        self.step += 1;
        while self.queue.peek().is_some_and(|f| f.at <= now) {
            let Some(f) = self.queue.pop() else { break };
            if self.cut.contains(&pair(f.from, f.to)) || self.cut_segments.contains(&f.bearer) {
                continue;
            }
            if let Some(node) = self.nodes[f.to].as_mut() {
                self.corrupted_delivered += f.corrupted as u64;
                if is_envelope(&f.data) || f.tampered {
                    let g = &mut node.crypto_glue;
                    g.wire_dups += f.dup as u64;
                    g.wire_reordered += f.reordered as u64;
                    g.wire_tampered += f.tampered as u64;
                    g.wire_probes += f.probe as u64;
                    g.wire_after_restart += self.restart_exposed.contains(&(f.to, f.from)) as u64;
                    // Sealed with a session key the receiver has not activated in that slot
                    // (not master-sealed, slot 0, which every node holds).
                    let slot = Ehdr::new_checked(&f.data[..]).map_or(0, |e| e.tx_key());
                    if slot != 0 {
                        let from = self.addrs[f.from];
                        let rx = node.crypto().and_then(|c| c.with(|c| c.rx_state(from)));
                        if rx.is_none_or(|k| k.active != slot) {
                            node.crypto_glue.wire_not_active += 1;
                        }
                    }
                }
                node.handle_frame(now, f.bearer, f.data);
                self.pump(f.to);
            }
        }
        for i in 0..self.nodes.len() {
            let due = self.nodes[i]
                .as_ref()
                .and_then(|n| n.poll_timeout())
                .is_some_and(|t| t <= now);
            if due {
                if let Some(n) = self.nodes[i].as_mut() {
                    n.handle_timeout(now);
                }
                self.pump(i);
            }
        }
        self.run_traffic();
        if self.cfg.conns {
            self.run_conns();
        }
        if self.cfg.groups {
            self.run_groups();
        }
        self.check_invariants();
        true
    }

    /// Run for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        let limit = self.now + d;
        while self.now < limit {
            self.step_until(limit);
        }
    }

    /// Run until `cond` holds or `d` of virtual time passed; returns whether `cond` holds.
    pub fn run_until(&mut self, d: Duration, mut cond: impl FnMut(&Sim) -> bool) -> bool {
        let limit = self.now + d;
        loop {
            if cond(self) {
                return true;
            }
            if self.now >= limit {
                return false;
            }
            self.step_until(limit);
        }
    }

    /// Drain node `i`'s cores: put its frames on the wire, check and record its events.
    /// The name glue may send while handling events (bulks at node-up), so this drains again
    /// until the node is quiet (bounded: a round sends only what the previous one's events
    /// asked for).
    fn pump(&mut self, i: usize) {
        let now = self.now;
        for _ in 0..8 {
            let Some(node) = self.nodes[i].as_mut() else {
                return;
            };
            let (frames, events) = node.drain(now);
            if frames.is_empty() && events.is_empty() {
                return;
            }
            for f in frames {
                self.transmit(i, f);
            }
            for (peer_addr, ev) in events {
                self.on_event(i, peer_addr, ev);
            }
        }
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    fn uniform(&mut self, lo: Duration, hi: Duration) -> Duration {
        if hi <= lo {
            return lo;
        }
        let span = (hi - lo).as_nanos() as u64;
        lo + Duration::from_nanos(self.rng.next_u64() % (span + 1))
    }

    fn transmit(&mut self, from: usize, f: OutFrame) {
        self.frames_sent += 1;
        if self.cfg.crypto.is_some() && !is_envelope(&f.data) {
            // 9a: nothing in clear from a keyed node.
            let discovery = Header::new_checked(&f.data[..])
                .is_ok_and(|h| h.user() == tipc_transport::wire::user::LINK_CONFIG);
            let sealing = self.node(from).is_some_and(|n| n.is_sealing());
            if sealing || !discovery {
                self.violation(&format!(
                    "node {from} sent a frame in clear ({} bytes, discovery: {discovery}, \
                     sealing: {sealing})",
                    f.data.len()
                ));
            }
        }
        let targets: Vec<usize> = match f.dest {
            Dest::Broadcast => (0..self.cfg.nodes).filter(|&j| j != from).collect(),
            Dest::Unicast(MediaAddr::Mem(id)) => {
                let j = id as usize;
                if j >= 1 && j <= self.cfg.nodes && j - 1 != from {
                    vec![j - 1]
                } else {
                    vec![]
                }
            }
            Dest::Unicast(_) => vec![],
        };
        for to in targets {
            if self.cut.contains(&pair(from, to)) {
                continue;
            }
            let rule = self.rule(from, to).clone();
            if self.chance(rule.loss) {
                self.fault(from, to);
                continue;
            }
            let copies = if self.chance(rule.dup) { 2 } else { 1 };
            for copy in 0..copies {
                let mut delay = self.uniform(rule.delay_min, rule.delay_max);
                let reordered = self.chance(rule.reorder);
                if reordered {
                    delay += self.uniform(Duration::ZERO, rule.reorder_max);
                }
                let mut data = f.data.clone();
                let mut corrupted = false;
                let mut tampered = false;
                if self.chance(rule.corrupt) {
                    self.fault(from, to);
                    data = self.corrupt_detectably(&data);
                    corrupted = true;
                    tampered = true;
                } else if self.chance(rule.garble) {
                    self.fault(from, to);
                    data = self.garble(&data);
                    tampered = true;
                }
                self.frame_seq += 1;
                self.queue.push(InFlight {
                    at: self.now + delay.max(Duration::from_nanos(1)),
                    seq: self.frame_seq,
                    from,
                    to,
                    bearer: f.bearer,
                    data,
                    corrupted,
                    dup: copy == 1,
                    reordered,
                    tampered,
                    probe: f.probe,
                });
            }
        }
    }

    /// Flip one byte so that header validation must reject the frame: the version bits of
    /// byte 0, or bit 16 of the message size (the size then exceeds the frame).
    ///
    /// An envelope instead gets one byte of its ciphertext or tag flipped (past the longest
    /// encryption header): its tag must fail, a decrypt failure.
    fn corrupt_detectably(&mut self, data: &Bytes) -> Bytes {
        let mut b = BytesMut::from(&data[..]);
        if is_envelope(data) && b.len() > EHDR_CFG_SIZE {
            let i = EHDR_CFG_SIZE + self.rng.next_u32() as usize % (b.len() - EHDR_CFG_SIZE);
            b[i] ^= (self.rng.next_u32() % 255 + 1) as u8;
            return b.freeze();
        }
        if b.len() < 2 {
            return data.clone();
        }
        if self.rng.next_u32().is_multiple_of(2) {
            let mask =
                ((self.rng.next_u32() % 7 + 1) << 5) as u8 | (self.rng.next_u32() as u8 & 0x1F);
            b[0] ^= mask;
        } else {
            b[1] ^= 0x01;
        }
        b.freeze()
    }

    fn garble(&mut self, data: &Bytes) -> Bytes {
        let mut b = BytesMut::from(&data[..]);
        if b.is_empty() {
            return data.clone();
        }
        let i = self.rng.next_u32() as usize % b.len();
        b[i] ^= (self.rng.next_u32() % 255 + 1) as u8;
        b.freeze()
    }

    // ------------------------------------------------------------------ invariants

    fn violation(&self, msg: &str) -> ! {
        panic!(
            "sim seed={} step={} t={:?}: {msg}",
            self.seed,
            self.step,
            self.elapsed()
        );
    }

    /// An event of node `node`'s peer object for `peer_addr`: logged and checked (link and
    /// node invariants), then carried out by the node's upper half; what that hands up to the
    /// applications is checked next.
    fn on_event(&mut self, node: usize, peer_addr: NodeAddr, ev: PeerEvent) {
        let Some(&peer) = self.index_of.get(&peer_addr) else {
            self.violation(&format!(
                "node {node}: event about unknown node {peer_addr:#x}"
            ));
        };
        let t = self.elapsed();
        if !matches!(
            ev,
            PeerEvent::Deliver(_)
                | PeerEvent::DeliverMcast(_)
                | PeerEvent::NameDistr(_)
                | PeerEvent::Returned(_)
                | PeerEvent::Unblocked(_)
                | PeerEvent::BcastAck { gap: 0, .. }
        ) {
            self.trace(format_args!("node {node} about {peer}: {ev:?}"));
        }
        let mut log = |kind| {
            self.log.push(LogEntry {
                t,
                node,
                peer,
                kind,
            })
        };
        match &ev {
            PeerEvent::LinkUp { bearer, .. } => log(LogKind::LinkUp(*bearer)),
            PeerEvent::NodeUp => {
                log(LogKind::NodeUp);
                self.restart_exposed.remove(&(node, peer));
            }
            PeerEvent::NodeDown => {
                log(LogKind::NodeDown);
                self.restart_exposed.remove(&(node, peer));
            }
            PeerEvent::LinkDown { bearer, reason, .. } => {
                let (bearer, reason) = (*bearer, *reason);
                log(LogKind::LinkDown(bearer, reason));
                self.must_go_down.remove(&(node, peer, bearer));
                let window = self.cfg.tolerance * 10 + self.down_bound();
                let caused = self
                    .last_fault
                    .get(&pair(node, peer))
                    .is_some_and(|&f| self.now.duration_since(f) <= window)
                    || self.rule(node, peer).is_destructive()
                    || self.rule(peer, node).is_destructive();
                if !caused {
                    self.violation(&format!(
                        "link {node}->{peer} bearer {bearer} went down ({reason:?}) without a cause"
                    ));
                }
            }
            PeerEvent::NameDistr(_) if !self.cfg.names => {
                self.violation(&format!(
                    "node {node} got a name-distribution message from {peer} with names off"
                ));
            }
            _ => {}
        }
        let now = self.now;
        let Some(n) = self.nodes[node].as_mut() else {
            return;
        };
        n.handle_peer_event(now, peer_addr, &ev);
        let upcalls = n.take_upcalls();
        if matches!(ev, PeerEvent::NodeDown) && self.cfg.names {
            let left = self
                .node(node)
                .map_or(0, |n| n.table().bindings_of_node(peer_addr).len());
            if left > 0 {
                self.violation(&format!(
                    "node {node} kept {left} bindings of {peer} after its node-down"
                ));
            }
        }
        for u in upcalls {
            match u {
                Upcall::Sink(_, m) => self.on_sink(node, peer, &m),
                Upcall::Accepted(a) => self.on_accepted(node, a),
            }
        }
    }

    /// A message for node `node`'s harness socket, delivered by (or returned from) `peer`:
    /// traffic and references to invariants 1 and 6; returned ones mark their number as
    /// given back.
    fn on_sink(&mut self, node: usize, peer: usize, m: &Bytes) {
        let Ok(h) = Header::new_checked(&m[..]) else {
            return;
        };
        if h.errcode() != 0 {
            self.on_returned(node, peer, m);
        } else if h.user() == tipc_transport::wire::user::MEDIUM
            && self.cfg.names
            && self.cfg.check_delivery
        {
            self.on_ref_deliver(node, peer, m);
        } else {
            self.on_deliver(node, peer, m);
        }
    }

    /// Invariant 9 (b, c) on every live node instance.
    fn check_crypto(&self) {
        for (i, n) in self.nodes.iter().enumerate() {
            let Some(n) = n else { continue };
            let Some(s) = n.crypto_stats() else { continue };
            let g = n.crypto_glue();
            let tx: u64 = TX_DROPS.iter().map(|&r| s.dropped(r)).sum();
            if tx > 0 {
                self.violation(&format!(
                    "node {i}: {tx} frames refused by the sealing: {s:?}"
                ));
            }
            let replay = s.dropped(CryptoDrop::Replayed) + s.dropped(CryptoDrop::TooOld);
            let explained = g.wire_dups + g.wire_reordered + g.wire_after_restart;
            if replay > explained {
                self.violation(&format!(
                    "node {i}: {replay} envelopes dropped as replayed or too old, only \
                     {explained} duplicated, delayed or from a restarted peer: {s:?} {g:?}"
                ));
            }
            let auth: u64 = AUTH_DROPS.iter().map(|&r| s.dropped(r)).sum();
            let explained = g.wire_tampered + g.wire_probes + g.wire_not_active;
            if auth > explained {
                self.violation(&format!(
                    "node {i}: {auth} envelopes failed authentication, only {explained} \
                     tampered, probe or grace copies, or sealed with a key not active here: \
                     {s:?} {g:?}"
                ));
            }
        }
    }

    fn check_invariants(&mut self) {
        let now = self.now;
        // 2: bounded queues.
        let bound = self.queue_bound();
        for (i, n) in self.nodes.iter().enumerate() {
            let Some(n) = n else { continue };
            for p in n.peers.values() {
                for (b, s) in p.links() {
                    let q = s.transmq_len + s.backlog_len + s.deferred_len;
                    self.max_queue_seen = self.max_queue_seen.max(q);
                    if q > bound {
                        self.violation(&format!(
                            "node {i} link {} bearer {b}: queue {q} (transmit {} backlog {} deferred {}) above bound {bound}",
                            s.name, s.transmq_len, s.backlog_len, s.deferred_len
                        ));
                    }
                }
            }
        }
        // 3: lost peers detected in time.
        if let Some(((x, y, k), (d, _))) = self.must_go_down.iter().find(|(_, d)| now > d.0) {
            self.violation(&format!(
                "link {x}->{y} bearer {k} still up {:?} after its deadline (bound {:?})",
                now - *d,
                self.down_bound()
            ));
        }
        // 5b: quiet links carry converged views; 5c: convergence in time.
        if self.cfg.check_delivery && self.cfg.names {
            self.check_quiet_names();
            if let Some(d) = self.names_deadline {
                if self.up_deadline.is_none() && self.names_converged() {
                    self.names_deadline = None;
                } else if now > d {
                    let why = self
                        .names_divergence()
                        .unwrap_or_else(|| "links not up".into());
                    self.violation(&format!(
                        "bindings not converged within {:?}: {why}",
                        self.converge_bound()
                    ));
                }
            }
        }
        // 7: connections.
        if self.cfg.conns {
            self.check_conns();
        }
        // 8: groups.
        if self.cfg.groups {
            self.check_groups();
        }
        // 9: encryption.
        if self.cfg.crypto.is_some() {
            self.check_crypto();
        }
        // 4: recovery in time.
        if let Some(d) = self.up_deadline {
            if self.all_up() {
                self.up_deadline = None;
            } else if now > d {
                let n = self.cfg.nodes;
                let missing: Vec<(usize, usize)> = (0..n)
                    .flat_map(|a| (a + 1..n).map(move |b| (a, b)))
                    .filter(|&(a, b)| {
                        self.node(a).is_some()
                            && self.node(b).is_some()
                            && !self.cut.contains(&(a, b))
                            && !self.pair_up(a, b)
                    })
                    .collect();
                self.violation(&format!(
                    "links {missing:?} not up within {:?}",
                    self.up_bound()
                ));
            }
        }
    }
}

/// Every node's keys for `c`, drawn from `seed` on a stream of their own (the wire's RNG
/// keeps its sequence): the cluster key, or the master key and a session key per node.
fn sim_keys(c: SimCrypto, nodes: usize, seed: u64) -> Vec<Vec<KeySetting>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6b65_7973);
    let mut key = || Key::random(&mut rng, 36).expect("valid key length");
    let setting = |key: Key, target| KeySetting {
        key: Some(key),
        target,
        rekeying: None,
    };
    match c.keys {
        SimKeys::Cluster => {
            let k = key();
            (0..nodes)
                .map(|_| vec![setting(k.clone(), KeyTarget::Cluster)])
                .collect()
        }
        SimKeys::Master => {
            let m = key();
            (0..nodes)
                .map(|_| {
                    vec![
                        setting(m.clone(), KeyTarget::Master),
                        setting(key(), KeyTarget::Cluster),
                    ]
                })
                .collect()
        }
    }
}
