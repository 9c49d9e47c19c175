//! A deterministic, seeded simulation of whole TIPC clusters on a virtual clock
//! (ARCHITECTURE.md "Tests" item 4).
//!
//! Each [`SimNode`] glues the sans-IO cores exactly as the actors do (`actors/src/bearer.rs`,
//! `actors/src/peer.rs`; kernel `bearer.c`/`discover.c`/`node.c`, spec §3.3, §4.1): one
//! [`Discoverer`] per bearer, one [`Peer`] per remote node, frames [`classify`]d to discovery or
//! to the peer, discovered neighbours passed to [`Peer::handle_discovery`] (answered with a
//! `DSC_RESP` when it says so), link up/down counted per bearer into
//! [`Discoverer::set_up_links`]. Bearer `b` of every node is attached to segment `b`; node `i`
//! has the media address `MediaAddr::Mem(i + 1)` on every segment, and a broadcast reaches every
//! other node of the segment.
//!
//! [`Sim`] owns N nodes, an event queue ordered by (virtual time, sequence number), a virtual
//! clock that jumps to the next deadline (a frame arrival or the earliest `poll_timeout` of any
//! core), one seeded RNG ([`ChaCha8Rng`]) from which everything random is drawn (delays, losses,
//! node signatures, link sessions), per-direction [`FaultRule`]s, partitions, crashes and
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
//!    before on that flow. A number may be skipped only if the sender's link reported it
//!    [`PeerEvent::Purged`], or if the sender crashed after sending it. (One link per pair is
//!    used at a time, so this is also the per-link-session order.)
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
//! # Name glue
//!
//! With [`SimConfig::names`] on, each node also has a [`BindingTable`] and a [`NameDistributor`] glued as
//! `actors/src/names.rs` (kernel `name_distr.c`, spec §7): the node-state binding at start;
//! the bulk of its cluster-scope bindings to a peer at that peer's `NodeUp`; purge and
//! [`NameDistributor::node_down`] at `NodeDown`; NAME_DISTRIBUTOR messages applied in delivery
//! order, before any later message of the same peer; a node-scope link-state binding per
//! working link; [`Sim::publish`] / [`Sim::withdraw`] as single updates to every up peer.
//!
//! # Connection glue
//!
//! With [`SimConfig::conns`] on, each node also holds [`ConnCore`] sockets (listeners and
//! connections) glued as `actors/src/conn.rs` does (kernel `socket.c`, `node.c:
//! node_lost_contact`; spec §9.4–9.7): delivered messages that are CONN_MANAGER or addressed
//! to a glue port go to their socket (or back with NO_PORT); a listener accepts every request
//! at once; `NodeDown` calls [`ConnCore::handle_node_lost`] on every socket; their outputs go over
//! the node's links (a named SYN after an anycast lookup in the node's table); their timers run
//! on the virtual clock. The applications ([`Sim::conn_listen`], [`Sim::conn_open`],
//! [`ConnSpec`]): writers that write while the connection's window and the link allow,
//! readers at a [`ReadPace`] (slow ones make the window hold the writer back), and an orderly
//! `shutdown` by one side once everything went both ways. Connections inside one node are not
//! modelled.
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

use bytes::{Bytes, BytesMut};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::time::{Duration, Instant};
use tipc_actors::addr::{Scope, ServiceAddr, ServiceRange, SocketAddr};
use tipc_actors::binding::{AnycastResult, BindingError, BindingTable, Publication};
pub use tipc_actors::conn::ConnKind;
use tipc_actors::name_distr::{stamp_destnode, NameDistrStats, NameDistributor, Update};
use tipc_actors::socket::conn::{
    ConnCore, ConnError, ConnState, Output as ConnOutput, Read, SynDest, ADV_WIN, MAX_PKT_DEFAULT,
    NAGLE_MAX_BACKLOG,
};
use tipc_actors::socket::{reverse, RCVBUF_DEFAULT};
use tipc_transport::discovery::{Discoverer, DiscoveryConfig, DISC_FAST};
use tipc_transport::link::{DownReason, SendError, SendStatus};
use tipc_transport::media::Dest;
use tipc_transport::peer::{
    classify, BearerParams, DropReason, NeighborSighting, Peer, PeerEvent, Route,
};
use tipc_transport::wire::{
    extract, field, user, ErrorCode, Header, MediaAddr, BASIC_H_SIZE, SHORT_H_SIZE,
};
use tipc_transport::{BearerId, NodeAddr, NodeId, MAX_BEARERS, OWN_CAPABILITIES};

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
/// First port of the connection glue's sockets (traffic uses 1000 + i, references 2000 + i).
const CONN_PORT_BASE: u32 = 100_000;
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

/// Cluster parameters.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Number of nodes.
    pub nodes: usize,
    /// Bearers per node (segments), 1..=[`MAX_BEARERS`].
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
        }
    }
}

/// Receive-side counters of a simulated node (the bearer actor's, summed over bearers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeStats {
    /// Frames received.
    pub rx_frames: u64,
    /// Frames dropped by [`classify`] as malformed.
    pub rx_malformed: u64,
    /// Frames dropped by [`classify`] for another destination or a bad previous node.
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
}

#[derive(Debug)]
struct SimBearer {
    params: BearerParams,
    disc: Discoverer,
    up_links: usize,
}

/// One simulated node: the actors' glue of discovery, classification and peers, without actix.
#[derive(Debug)]
pub struct SimNode {
    id: NodeId,
    addr: NodeAddr,
    signature: u16,
    bearers: Vec<SimBearer>,
    peers: BTreeMap<NodeAddr, Peer>,
    link_up: BTreeSet<(NodeAddr, BearerId)>,
    rng: ChaCha8Rng,
    out: BytesMut,
    stats: NodeStats,
    table: BindingTable,
    distr: NameDistributor,
    /// Peers whose `NodeUp` the name glue has seen (and sent the bulk to).
    up_peers: BTreeSet<NodeAddr>,
    /// Link ids of the link-state publications, by (peer, bearer).
    link_ids: BTreeMap<(NodeAddr, BearerId), u32>,
    next_key: u32,
    /// Bumped on every change of the binding table.
    names_version: u64,
    name_stats: NameStats,
    /// Connection sockets (listeners and connections) by port.
    conns: BTreeMap<u32, ConnCore>,
    /// Flow-control blocks of the data messages each connection socket sent (a Nagle
    /// buffer is one message), by port.
    conn_sent: BTreeMap<u32, u64>,
    next_conn_port: u32,
    conn_stats: ConnGlueStats,
}

/// Counters of a simulated node's connection glue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnGlueStats {
    /// Connection-layer messages handed to a socket.
    pub delivered: u64,
    /// Messages for a port without a socket, rejected with NO_PORT.
    pub no_port: u64,
    /// Messages a socket produced that the peer refused (node unknown, link not up, congested).
    pub send_failed: u64,
    /// Named SYNs whose service had no binding.
    pub lookup_failed: u64,
}

/// A connection request accepted by a listener of a simulated node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// The listener's port.
    pub listener: u32,
    /// The new connection socket's port.
    pub port: u32,
    /// The requesting socket.
    pub peer: SocketAddr,
}

/// Counters of a simulated node's name glue (as `names::NameTableStats`, plus send failures).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NameStats {
    /// NAME_DISTRIBUTOR messages received.
    pub distr_rx: u64,
    /// Updates applied to the table.
    pub applied: u64,
    /// Updates the table refused (duplicate, invalid, unknown withdrawal).
    pub refused: u64,
    /// Bindings removed by purges at node-down.
    pub purged: u64,
    /// NAME_DISTRIBUTOR messages the peer refused to send (link not up or overflowing).
    pub send_failed: u64,
}

impl SimNode {
    /// A fresh node instance: node `index` of the cluster, with its own signature and a seeded
    /// RNG for link sessions. Its discoverers send their first request at `now`.
    pub fn new(
        cfg: &SimConfig,
        index: usize,
        id: NodeId,
        signature: u16,
        rng_seed: u64,
        now: Instant,
    ) -> SimNode {
        let addr = id.hash();
        let bearers = (0..cfg.bearers.clamp(1, MAX_BEARERS))
            .map(|b| {
                let params = BearerParams {
                    id: b as BearerId,
                    if_name: format!("mem{b}"),
                    mtu: cfg.first_mtu.filter(|_| b == 0).unwrap_or(cfg.mtu),
                    encap_hlen: 0,
                    tolerance: cfg.tolerance,
                    priority: 10,
                    min_win: cfg.min_win,
                    max_win: cfg.max_win,
                };
                let disc = Discoverer::new(
                    DiscoveryConfig {
                        net_id: NET_ID,
                        own_addr: addr,
                        own_id: id,
                        caps: OWN_CAPABILITIES,
                        signature,
                        bearer_id: b as BearerId,
                        media_addr: MediaAddr::Mem(index as u32 + 1),
                        domain: 0,
                        net_hash: 0,
                    },
                    now,
                );
                SimBearer {
                    params,
                    disc,
                    up_links: 0,
                }
            })
            .collect();
        // The node-state binding, published when the address is set (as `names::NameTable`).
        let mut table = BindingTable::new(addr);
        let _ = table.publish(Publication::node_state(addr));
        // As actors/src/names.rs: `NameDistributor::new` already spent the node state's seqno.
        let distr = NameDistributor::new(addr);
        let mut node = SimNode {
            id,
            addr,
            signature,
            bearers,
            peers: BTreeMap::new(),
            link_up: BTreeSet::new(),
            rng: ChaCha8Rng::seed_from_u64(rng_seed),
            out: BytesMut::with_capacity(64 * 1024),
            stats: NodeStats::default(),
            table,
            distr,
            up_peers: BTreeSet::new(),
            link_ids: BTreeMap::new(),
            next_key: 1,
            names_version: 0,
            name_stats: NameStats::default(),
            conns: BTreeMap::new(),
            next_conn_port: CONN_PORT_BASE,
            conn_stats: ConnGlueStats::default(),
            conn_sent: BTreeMap::new(),
        };
        node.table_changed();
        node
    }

    // ------------------------------------------------------------------ name glue

    /// The binding table.
    pub fn table(&self) -> &BindingTable {
        &self.table
    }
    /// The name distributor (its drop counters, pending queues).
    pub fn distributor(&self) -> &NameDistributor {
        &self.distr
    }
    /// Name-distributor drop counters.
    pub fn distr_stats(&self) -> NameDistrStats {
        self.distr.stats()
    }
    /// Counters of the name glue.
    pub fn name_stats(&self) -> NameStats {
        self.name_stats
    }
    /// Changes of the binding table so far (a version number).
    pub fn names_version(&self) -> u64 {
        self.names_version
    }
    /// This node's own cluster-scope bindings, sorted.
    pub fn own_cluster_bindings(&self) -> Vec<Publication> {
        let mut v: Vec<Publication> = self
            .table
            .bindings_of_node(self.addr)
            .into_iter()
            .filter(|p| p.scope == Scope::Cluster)
            .collect();
        v.sort();
        v
    }
    /// The bindings of node `node` in this node's table, sorted.
    pub fn view_of(&self, node: NodeAddr) -> Vec<Publication> {
        let mut v = self.table.bindings_of_node(node);
        v.sort();
        v
    }

    /// The table changed: drain its events (no service tracking here) and bump the version.
    fn table_changed(&mut self) {
        while self.table.poll_event().is_some() {}
        self.names_version += 1;
    }

    /// Send a name-distribution message to `peer` over its links.
    fn send_names(&mut self, now: Instant, peer: NodeAddr, msg: BytesMut) {
        let sent = self
            .peers
            .get_mut(&peer)
            .is_some_and(|p| p.send(now, msg, 0).is_ok());
        if !sent {
            self.name_stats.send_failed += 1;
        }
    }

    /// A single update to every up peer (`names.rs` Publish/Withdraw handlers).
    fn distribute(&mut self, now: Instant, msg: Option<BytesMut>) {
        let Some(msg) = msg else { return };
        let peers: Vec<NodeAddr> = self.up_peers.iter().copied().collect();
        for peer in peers {
            let mut copy = msg.clone();
            stamp_destnode(&mut copy, peer);
            self.send_names(now, peer, copy);
        }
    }

    /// Publish a binding of a local socket (key = a fresh per-instance number) and send it to
    /// every up peer if it has cluster scope.
    pub fn publish(
        &mut self,
        now: Instant,
        range: ServiceRange,
        port: u32,
        scope: Scope,
    ) -> Result<Publication, BindingError> {
        let p = Publication {
            range,
            scope,
            node: self.addr,
            port,
            key: self.next_key,
        };
        self.table.publish(p)?;
        self.next_key = self.next_key.wrapping_add(1).max(1);
        self.table_changed();
        let msg = self.distr.publish(&p).map(|(_, m)| m);
        self.distribute(now, msg);
        Ok(p)
    }

    /// Withdraw the local binding of `port` with exactly this range (the most recent one if
    /// there are several) and send the withdrawal to every up peer.
    pub fn withdraw(
        &mut self,
        now: Instant,
        range: ServiceRange,
        port: u32,
    ) -> Option<Publication> {
        let own = self.addr;
        let key = self
            .table
            .iter()
            .find(|p| p.node == own && p.range == range && p.port == port)?
            .key;
        let p = self.table.withdraw(range, own, port, key)?;
        self.table_changed();
        let msg = self.distr.withdraw(&p).map(|(_, m)| m);
        self.distribute(now, msg);
        Some(p)
    }

    /// A peer came up: send it our cluster-scope bindings (the bulk).
    fn names_node_up(&mut self, now: Instant, peer: NodeAddr) {
        self.up_peers.insert(peer);
        let own = self.own_cluster_bindings_in_table_order();
        let mss = self.peers.get(&peer).map_or(0, |p| p.mss());
        let mss = if mss == 0 {
            self.bearers[0].params.mtu.saturating_sub(80)
        } else {
            mss
        };
        for msg in self.distr.bulk(peer, own.iter(), mss) {
            self.send_names(now, peer, msg);
        }
    }

    fn own_cluster_bindings_in_table_order(&self) -> Vec<Publication> {
        self.table
            .bindings_of_node(self.addr)
            .into_iter()
            .filter(|p| p.scope == Scope::Cluster)
            .collect()
    }

    /// A peer was lost: forget its distribution state and purge its bindings.
    fn names_node_down(&mut self, peer: NodeAddr) {
        self.up_peers.remove(&peer);
        self.distr.node_down(peer);
        let gone = self.table.purge_node(peer);
        self.name_stats.purged += gone.len() as u64;
        self.table_changed();
    }

    /// A link came up: the node-scope link-state binding `{2, peer, peer}`.
    fn names_link_up(&mut self, peer: NodeAddr, bearer: BearerId) {
        let peer_bearer = self
            .peers
            .get(&peer)
            .and_then(|p| p.links().into_iter().find(|(b, _)| *b == bearer))
            .map_or(0, |(_, s)| s.peer_bearer_id);
        let id = ((peer_bearer as u32) << 16) | bearer as u32;
        self.link_ids.insert((peer, bearer), id);
        let _ = self
            .table
            .publish(Publication::link_state(self.addr, peer, id));
        self.table_changed();
    }

    fn names_link_down(&mut self, peer: NodeAddr, bearer: BearerId) {
        if let Some(id) = self.link_ids.remove(&(peer, bearer)) {
            let p = Publication::link_state(self.addr, peer, id);
            let _ = self.table.withdraw(p.range, p.node, p.port, p.key);
            self.table_changed();
        }
    }

    /// A NAME_DISTRIBUTOR message delivered by `from`'s link: apply what is applicable now.
    fn names_receive(&mut self, from: NodeAddr, msg: &[u8]) {
        self.name_stats.distr_rx += 1;
        for u in self.distr.receive(from, msg) {
            let ok = match u {
                Update::Publish(p) => self.table.publish(p).is_ok(),
                Update::Withdraw {
                    range,
                    node,
                    port,
                    key,
                } => self.table.withdraw(range, node, port, key).is_some(),
            };
            if ok {
                self.name_stats.applied += 1;
            } else {
                self.name_stats.refused += 1;
            }
        }
        self.table_changed();
    }

    // ------------------------------------------------------------------ connection glue

    /// A fresh connection socket (OPEN) on a new port; returns the port.
    pub fn conn_socket(&mut self) -> u32 {
        let port = self.next_conn_port;
        self.next_conn_port += 1;
        let own = SocketAddr {
            node: self.addr,
            port,
        };
        self.conns.insert(port, ConnCore::new(own));
        port
    }
    /// The connection socket at `port`.
    pub fn conn(&self, port: u32) -> Option<&ConnCore> {
        self.conns.get(&port)
    }
    /// The connection socket at `port`, mutably (the application side; call
    /// [`SimNode::conn_flush`] after anything that may produce output).
    pub fn conn_mut(&mut self, port: u32) -> Option<&mut ConnCore> {
        self.conns.get_mut(&port)
    }
    /// Counters of the connection glue.
    pub fn conn_stats(&self) -> ConnGlueStats {
        self.conn_stats
    }

    /// The capabilities of `node` as this node knows them (ours for ourselves).
    fn caps_of(&self, node: NodeAddr) -> u16 {
        if node == self.addr || node == 0 {
            return OWN_CAPABILITIES;
        }
        self.peers.get(&node).map_or(OWN_CAPABILITIES, |p| p.caps())
    }

    /// Hand a message to a peer's links (as `TransportNode::post` / `enqueue_to_peer`). Returns
    /// whether the link accepted it. Connections inside one node are not modelled.
    fn conn_post(&mut self, now: Instant, to: NodeAddr, msg: BytesMut, selector: u32) -> bool {
        let ok = self
            .peers
            .get_mut(&to)
            .is_some_and(|p| p.send(now, msg, selector).is_ok());
        if !ok {
            self.conn_stats.send_failed += 1;
        }
        ok
    }

    /// Send everything socket `port` produced (`flush_now` of `actors/src/conn.rs`): messages
    /// to their node, named SYNs after an anycast lookup in this node's table (a lookup that
    /// finds nothing fails the connect with [`ConnError::NoDestination`]).
    pub fn conn_flush(&mut self, now: Instant, port: u32) {
        // Bounded: a core queues a handful of messages per call.
        for _ in 0..4096 {
            let Some(o) = self.conns.get_mut(&port).and_then(|c| c.poll_output()) else {
                return;
            };
            match o {
                ConnOutput::ToNode(to, msg) => {
                    let blocks = Self::data_blocks(&msg);
                    // A SYN that cannot be sent fails the connect (`Connection::open`).
                    if self.conn_post(now, to, msg, port) {
                        *self.conn_sent.entry(port).or_default() += blocks;
                    } else {
                        if let Some(c) = self.conns.get_mut(&port) {
                            c.connect_failed(ConnError::NoNode);
                        }
                    }
                }
                ConnOutput::Lookup(name, mut msg) => {
                    let dest = match self.table.lookup_anycast(name, 0) {
                        AnycastResult::Found(sock) => Some(sock),
                        AnycastResult::Deferred(node) => Some(SocketAddr { node, port: 0 }),
                        AnycastResult::NotFound => None,
                    };
                    let sent = dest.is_some_and(|d| {
                        let mut h = Header::new_unchecked(&mut msg[..]);
                        h.set(field::DESTNODE, d.node);
                        h.set(field::DESTPORT, d.port);
                        if let Some(c) = self.conns.get_mut(&port) {
                            c.syn_sent_to(d.node);
                        }
                        let blocks = Self::data_blocks(&msg);
                        let ok = self.conn_post(now, d.node, msg, port);
                        if ok {
                            *self.conn_sent.entry(port).or_default() += blocks;
                        }
                        ok
                    });
                    if !sent {
                        let why = if dest.is_none() {
                            self.conn_stats.lookup_failed += 1;
                            ConnError::NoDestination
                        } else {
                            ConnError::NoNode
                        };
                        if let Some(c) = self.conns.get_mut(&port) {
                            c.connect_failed(why);
                        }
                    }
                }
            }
        }
    }

    /// Flow-control blocks of `msg` if it carries connection data (data user, no error code,
    /// a payload), else 0.
    fn data_blocks(msg: &[u8]) -> u64 {
        match Header::new_checked(msg) {
            Ok(h) if h.user() <= user::CRITICAL && h.errcode() == 0 && !h.payload().is_empty() => {
                (h.size() / 1024) as u64 + 1
            }
            _ => 0,
        }
    }

    /// Blocks of the data messages connection socket `port` sent so far.
    pub fn conn_blocks_sent(&self, port: u32) -> u64 {
        self.conn_sent.get(&port).copied().unwrap_or(0)
    }

    /// The largest message to `node` that goes unfragmented over its link (the socket's
    /// `max_pkt`).
    fn conn_mss(&self, node: NodeAddr) -> usize {
        match self.peers.get(&node).map_or(0, |p| p.mss()) {
            0 => MAX_PKT_DEFAULT,
            m => m,
        }
    }

    /// A connection-layer message delivered by a peer's link (`deliver_local` for connection
    /// sockets, `conn::deliver`): to its socket, or back with NO_PORT if there is none. A
    /// listener accepts every request at once (each accepted socket sends its ACK).
    fn conn_receive(&mut self, now: Instant, msg: Bytes) -> Vec<Accepted> {
        let Ok(h) = Header::new_checked(&msg[..]) else {
            return Vec::new();
        };
        let (port, sender) = (h.destport(), h.orignode());
        let caps = self.caps_of(sender);
        let Some(core) = self.conns.get_mut(&port) else {
            self.conn_stats.no_port += 1;
            if let Some(ret) = reverse(&msg, ErrorCode::NoPort, self.addr) {
                let to = Header::new_unchecked(&ret[..]).destnode();
                self.conn_post(now, to, ret, port);
            }
            return Vec::new();
        };
        self.conn_stats.delivered += 1;
        let connecting = core.state() == ConnState::Connecting;
        core.handle_message(msg, caps, now);
        if connecting && core.state() == ConnState::Established {
            let peer = core.peer().node;
            let mss = self.conn_mss(peer);
            if let Some(c) = self.conns.get_mut(&port) {
                c.set_max_pkt(mss);
            }
        }
        let Some(core) = self.conns.get(&port) else {
            return Vec::new();
        };
        let listening = core.state() == ConnState::Listen;
        self.conn_flush(now, port);
        let mut accepted = Vec::new();
        if listening {
            while let Some(peer) = self.conns.get(&port).and_then(|c| c.peek_request()) {
                let caps = self.caps_of(peer.node);
                let new_port = self.next_conn_port;
                let own = SocketAddr {
                    node: self.addr,
                    port: new_port,
                };
                let Some(mut core) = self
                    .conns
                    .get_mut(&port)
                    .and_then(|l| l.accept(own, caps, now))
                else {
                    break;
                };
                core.set_max_pkt(self.conn_mss(peer.node));
                self.next_conn_port += 1;
                self.conns.insert(new_port, core);
                self.conn_flush(now, new_port);
                accepted.push(Accepted {
                    listener: port,
                    port: new_port,
                    peer,
                });
            }
        }
        accepted
    }

    /// The last link to `peer` failed (`conn::node_down`): connections to it end with NO_NODE.
    fn conn_node_lost(&mut self, now: Instant, peer: NodeAddr) {
        let ports: Vec<u32> = self.conns.keys().copied().collect();
        for port in ports {
            if let Some(c) = self.conns.get_mut(&port) {
                if c.handle_node_lost(peer, now) {
                    self.conn_flush(now, port);
                }
            }
        }
    }

    /// Node identity.
    pub fn id(&self) -> NodeId {
        self.id
    }
    /// Node address.
    pub fn addr(&self) -> NodeAddr {
        self.addr
    }
    /// This instance's discovery signature.
    pub fn signature(&self) -> u16 {
        self.signature
    }
    /// Receive counters.
    pub fn stats(&self) -> NodeStats {
        self.stats
    }
    /// The peer object for a node address.
    pub fn peer(&self, addr: NodeAddr) -> Option<&Peer> {
        self.peers.get(&addr)
    }
    /// The peer object for a node address, mutably (to send).
    pub fn peer_mut(&mut self, addr: NodeAddr) -> Option<&mut Peer> {
        self.peers.get_mut(&addr)
    }
    /// The discoverer of a bearer.
    pub fn discoverer(&self, bearer: BearerId) -> Option<&Discoverer> {
        self.bearers.get(bearer as usize).map(|b| &b.disc)
    }
    /// Sum of every discoverer's drop counters.
    pub fn discovery_drops(&self) -> u64 {
        self.bearers
            .iter()
            .map(|b| b.disc.stats().total_dropped())
            .sum()
    }

    /// A frame arrived on `bearer` (the bearer actor's receive path).
    pub fn handle_frame(&mut self, now: Instant, bearer: BearerId, frame: Bytes) {
        self.stats.rx_frames += 1;
        let b = bearer as usize;
        if b >= self.bearers.len() {
            return;
        }
        match classify(self.addr, &frame) {
            Ok(Route::Discovery) => {
                let Some(n) = self.bearers[b].disc.handle_frame(now, &frame) else {
                    return;
                };
                let (own, own_id) = (self.addr, self.id);
                let peer = self
                    .peers
                    .entry(n.addr)
                    .or_insert_with(|| Peer::new(own, own_id, n.addr, n.id, n.caps));
                let sighting = NeighborSighting {
                    media_addr: n.media_addr,
                    id: n.id,
                    caps: n.caps,
                    signature: n.signature,
                };
                let session = self.rng.next_u32() as u16;
                let out = peer.handle_discovery(now, &self.bearers[b].params, &sighting, session);
                if out.respond && n.is_request {
                    self.bearers[b].disc.respond(&n);
                }
            }
            Ok(Route::Unicast(from)) => match self.peers.get_mut(&from) {
                Some(p) => p.handle_packet(now, bearer, frame),
                None => self.stats.rx_unknown_peer += 1,
            },
            Ok(Route::Broadcast(from)) => match self.peers.get_mut(&from) {
                Some(p) => p.handle_broadcast(now, frame),
                None => self.stats.rx_unknown_peer += 1,
            },
            Err(DropReason::Malformed(_)) => self.stats.rx_malformed += 1,
            Err(_) => self.stats.rx_misrouted += 1,
        }
    }

    /// The earliest deadline of any core of this node.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let d = self.bearers.iter().filter_map(|b| b.disc.poll_timeout());
        let p = self.peers.values().filter_map(|p| p.poll_timeout());
        let c = self.conns.values().filter_map(|c| c.poll_timeout());
        d.chain(p).chain(c).min()
    }

    /// Run every timer that is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        for b in self.bearers.iter_mut() {
            if b.disc.poll_timeout().is_some_and(|t| t <= now) {
                b.disc.handle_timeout(now);
            }
        }
        for p in self.peers.values_mut() {
            if p.poll_timeout().is_some_and(|t| t <= now) {
                p.handle_timeout(now);
            }
        }
        let due: Vec<u32> = self
            .conns
            .iter()
            .filter(|(_, c)| c.poll_timeout().is_some_and(|t| t <= now))
            .map(|(&p, _)| p)
            .collect();
        for port in due {
            if let Some(c) = self.conns.get_mut(&port) {
                c.handle_timeout(now);
            }
            self.conn_flush(now, port);
        }
    }

    /// Drain the cores: frames to send and node events (by peer address). Link up/down events
    /// update the bearers' discoverers, as the peer actor does.
    pub fn drain(&mut self, now: Instant) -> (Vec<OutFrame>, Vec<(NodeAddr, PeerEvent)>) {
        let mut events = Vec::new();
        for (&addr, p) in self.peers.iter_mut() {
            while let Some(ev) = p.poll_event() {
                match &ev {
                    PeerEvent::LinkUp { bearer, .. } if self.link_up.insert((addr, *bearer)) => {
                        if let Some(b) = self.bearers.get_mut(*bearer as usize) {
                            b.up_links += 1;
                            b.disc.set_up_links(now, b.up_links);
                        }
                    }
                    PeerEvent::LinkDown { bearer, .. } if self.link_up.remove(&(addr, *bearer)) => {
                        if let Some(b) = self.bearers.get_mut(*bearer as usize) {
                            b.up_links = b.up_links.saturating_sub(1);
                            b.disc.set_up_links(now, b.up_links);
                        }
                    }
                    _ => {}
                }
                events.push((addr, ev));
            }
        }
        let mut frames = Vec::new();
        for p in self.peers.values_mut() {
            while let Some(t) = p.poll_transmit(&mut self.out) {
                frames.push(OutFrame {
                    bearer: t.bearer,
                    dest: Dest::Unicast(t.dest),
                    data: self.out.split_to(t.len).freeze(),
                });
            }
        }
        for (i, b) in self.bearers.iter_mut().enumerate() {
            while let Some((dest, data)) = b.disc.poll_transmit() {
                frames.push(OutFrame {
                    bearer: i as BearerId,
                    dest,
                    data,
                });
            }
        }
        (frames, events)
    }
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

/// One traffic flow (src -> dst) and what the invariants know about it.
#[derive(Debug, Clone, Default)]
pub struct Flow {
    /// Messages the application wants sent in total.
    pub target: u64,
    /// Next message number to send (= messages accepted by the link so far).
    pub next: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Highest number delivered.
    pub last: Option<u64>,
    /// Numbers the sender's link reported purged.
    pub purged: BTreeSet<u64>,
    /// Numbers below this may be missing: the sender crashed after sending them.
    pub lost_below: u64,
    /// Times a send was refused as congested.
    pub refused: u64,
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

/// How fast an application reads a connection: at most `units` reads (messages) every
/// `interval`; [`ReadPace::EAGER`] reads everything as soon as it is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPace {
    /// Time between two bursts of reads (zero: at every step).
    pub interval: Duration,
    /// Reads per burst.
    pub units: usize,
}

impl ReadPace {
    /// Read everything at once.
    pub const EAGER: ReadPace = ReadPace {
        interval: Duration::ZERO,
        units: usize::MAX,
    };
    /// A slow reader: `units` reads every `interval`.
    pub fn slow(interval: Duration, units: usize) -> ReadPace {
        ReadPace {
            interval,
            units: units.max(1),
        }
    }
}

/// A listening connection socket of the simulation ([`Sim::conn_listen`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimListener {
    /// Its node.
    pub node: usize,
    /// Its port.
    pub port: u32,
    /// Stream or seqpacket.
    pub kind: ConnKind,
    /// The service address it is bound to (with [`SimConfig::names`]).
    pub name: Option<ServiceAddr>,
}

/// What a simulated connection does ([`Sim::conn_open`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnSpec {
    /// The connecting node.
    pub client: usize,
    /// The listener it connects to.
    pub listener: SimListener,
    /// Connect by the listener's service address (a NAMED SYN), else by its socket address.
    pub by_name: bool,
    /// "0-RTT": the SYN carries the client's first data, else an empty SYN (`connect()`).
    pub zero_rtt: bool,
    /// Client to server: bytes (stream) or messages (seqpacket).
    pub up: u64,
    /// Server to client: bytes (stream) or messages (seqpacket).
    pub down: u64,
    /// The server shuts the connection down (after it sent and received everything), else the
    /// client does.
    pub server_closes: bool,
    /// The client's reader.
    pub client_pace: ReadPace,
    /// The server's reader.
    pub server_pace: ReadPace,
}

/// One end of a simulated connection: its socket and what its application did.
#[derive(Debug, Clone)]
pub struct ConnEnd {
    /// Its node.
    pub node: usize,
    /// Its socket (the server's once the request was accepted).
    pub port: Option<u32>,
    /// Units (bytes or messages) to write.
    pub tx_target: u64,
    /// Units written.
    pub tx: u64,
    /// Units to read.
    pub rx_target: u64,
    /// Units read (each checked in order and intact).
    pub rx: u64,
    /// This end shut the connection down (orderly, after all its data went both ways).
    pub shut: bool,
    /// The end its application read: `Ok` after the peer's shutdown, else why.
    pub end: Option<Result<(), ConnError>>,
    /// The core's end reason, once invariant 7 judged it.
    pub core_end: Option<Result<(), ConnError>>,
    /// When (virtual time since the start) the core ended.
    pub ended_at: Option<Duration>,
    /// Its node crashed: the socket vanished.
    pub gone: bool,
    /// Steps at which the writer had data but the connection window was full (end-to-end
    /// flow control holding it back).
    pub window_stalls: u64,
    /// Flow-control blocks of the data messages written (`len / 1024 + 1` of each message with
    /// its header), counted by the simulation.
    pub blocks_tx: u64,
    /// Flow-control blocks of the data messages read.
    pub blocks_rx: u64,
    pace: ReadPace,
    next_read: Instant,
    /// The core must have ended by then (its peer node was lost); true if a partition
    /// caused it (a heal before the deadline cancels it).
    abort_by: Option<(Instant, bool)>,
}

/// A simulated connection and its two ends (index 0: client, 1: server).
#[derive(Debug, Clone)]
pub struct SimConn {
    /// What it does.
    pub spec: ConnSpec,
    /// When it was opened.
    pub started: Instant,
    /// Client and server.
    pub ends: [ConnEnd; 2],
}

impl SimConn {
    /// The end that shuts the connection down.
    pub fn closer(&self) -> usize {
        self.spec.server_closes as usize
    }
    /// Everything went both ways and the orderly close was seen by both sides (the closer shut
    /// down, the other read the end as `Ok`).
    pub fn completed(&self) -> bool {
        let c = self.closer();
        self.ends
            .iter()
            .all(|e| e.rx >= e.rx_target && e.tx >= e.tx_target)
            && self.ends[c].shut
            && self.ends[1 - c].end == Some(Ok(()))
    }
    /// It ended with an error: every end whose node is still there (and whose socket exists)
    /// read an error end, and at least one did or is gone.
    pub fn aborted(&self) -> bool {
        self.ends
            .iter()
            .all(|e| e.gone || e.port.is_none() || matches!(e.end, Some(Err(_))))
            && self
                .ends
                .iter()
                .any(|e| e.gone || matches!(e.end, Some(Err(_))))
    }
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
}

/// The (range, port, key) a reference message names.
type RefBinding = (ServiceRange, u32, u32);

/// What became of a binding-reference message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefState {
    /// Accepted by the sender's link, not yet delivered.
    Sent,
    /// Delivered (once).
    Delivered,
    /// Reported purged by the sender's link (a purged message may still be delivered once).
    Purged,
    /// Its sender crashed before it was delivered.
    Lost,
}

/// A data message that names one of its sender's bindings (publish-before-data traffic).
#[derive(Debug, Clone, Copy)]
pub struct RefMsg {
    /// Sending node.
    pub src: usize,
    /// Receiving node.
    pub dst: usize,
    /// The binding it refers to (published at `src` before it was sent).
    pub publ: Publication,
    /// Its fate so far.
    pub state: RefState,
}

/// Why a name command failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameCmdError {
    /// The node is crashed.
    NodeDown,
    /// [`SimConfig::names`] is off.
    Disabled,
    /// The binding table refused.
    Binding(BindingError),
}

fn pair(a: usize, b: usize) -> (usize, usize) {
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
                Some(SimNode::new(&cfg, i, ids[i], sig, rng.next_u64(), start))
            })
            .collect();
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
        };
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
        if self.nodes[n].take().is_none() {
            return;
        }
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
    }

    /// Start node `n` again: same identity and address, new signature, new link sessions.
    pub fn restart(&mut self, n: usize) {
        if self.nodes[n].is_some() {
            return;
        }
        self.trace(format_args!("restart {n}"));
        let sig = self.rng.next_u32() as u16;
        let seed = self.rng.next_u64();
        self.nodes[n] = Some(SimNode::new(&self.cfg, n, self.ids[n], sig, seed, self.now));
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

    // ------------------------------------------------------------------ traffic

    /// Ask node `src` to send `count` more numbered messages to node `dst`.
    pub fn send_stream(&mut self, src: usize, dst: usize, count: u64) {
        self.flows.entry((src, dst)).or_default().target += count;
    }
    /// Streams of `count` messages between every ordered pair of nodes.
    pub fn send_all_pairs(&mut self, count: u64) {
        for a in 0..self.cfg.nodes {
            for b in 0..self.cfg.nodes {
                if a != b {
                    self.send_stream(a, b, count);
                }
            }
        }
    }
    /// Has every flow delivered its target?
    pub fn traffic_done(&self) -> bool {
        self.flows.values().all(|f| f.delivered >= f.target)
    }

    fn data_msg(&self, src: usize, dst: usize, seq: u64) -> BytesMut {
        let len = BASIC_H_SIZE + self.cfg.msg_size;
        let mut b = BytesMut::zeroed(len);
        let (sa, da) = (self.addrs[src], self.addrs[dst]);
        {
            let mut h = Header::new_unchecked(&mut b[..]);
            h.init(user::LOW, DIRECT_MSG, BASIC_H_SIZE, len, sa);
            h.set(field::ORIGNODE, sa);
            h.set(field::DESTNODE, da);
            h.set(field::ORIGPORT, 1000 + src as u32);
            h.set(field::DESTPORT, 1000 + dst as u32);
        }
        let p = &mut b[BASIC_H_SIZE..];
        p[0..4].copy_from_slice(&(src as u32).to_be_bytes());
        p[4..8].copy_from_slice(&(dst as u32).to_be_bytes());
        p[8..16].copy_from_slice(&seq.to_be_bytes());
        for (i, x) in p[RECORD_LEN..].iter_mut().enumerate() {
            *x = (seq as usize + i) as u8;
        }
        b
    }

    /// Send what the flows want, while the link is up and not congested (like a socket).
    fn run_traffic(&mut self) {
        let keys: Vec<(usize, usize)> = self.flows.keys().copied().collect();
        let now = self.now;
        for (src, dst) in keys {
            let mut sent_any = false;
            while let Some(f) = self.flows.get(&(src, dst)) {
                if f.next >= f.target {
                    break;
                }
                let seq = f.next;
                let dst_addr = self.addrs[dst];
                let selector = 1000 + src as u32;
                let msg = self.data_msg(src, dst, seq);
                let Some(peer) = self.nodes[src].as_mut().and_then(|n| n.peer_mut(dst_addr)) else {
                    break;
                };
                if !peer.is_up() || peer.is_congested(user::LOW, selector) {
                    break;
                }
                let r = peer.send(now, msg, selector);
                let f = self.flows.entry((src, dst)).or_default();
                match r {
                    Ok(SendStatus::Accepted) => {
                        f.next += 1;
                        sent_any = true;
                    }
                    Ok(SendStatus::Congested) => {
                        f.next += 1;
                        sent_any = true;
                        break;
                    }
                    Err(SendError::Congested(_)) => {
                        f.refused += 1;
                        break;
                    }
                    Err(SendError::NotUp(_)) => break,
                    Err(e) => self.violation(&format!("send {src}->{dst} #{seq} refused: {e}")),
                }
            }
            if sent_any {
                self.pump(src);
            }
        }
    }

    // ------------------------------------------------------------------ connections

    /// Node `node` opens a listening socket of `kind`; with [`SimConfig::names`] and a `range`
    /// it also binds it (cluster scope), and [`ConnSpec::by_name`] then connects to
    /// `{range.type_, range.lower}`. `None` if the node is crashed or conns are off.
    pub fn conn_listen(
        &mut self,
        node: usize,
        kind: ConnKind,
        range: Option<ServiceRange>,
    ) -> Option<SimListener> {
        if !self.cfg.conns {
            return None;
        }
        let n = self.nodes[node].as_mut()?;
        let port = n.conn_socket();
        let core = n.conn_mut(port)?;
        core.listen().ok()?;
        core.set_stream(kind == ConnKind::Stream);
        let mut name = None;
        if let Some(range) = range.filter(|_| self.cfg.names) {
            self.publish(node, range, port).ok()?;
            name = Some(ServiceAddr {
                type_: range.type_,
                instance: range.lower,
            });
        }
        Some(SimListener {
            node,
            port,
            kind,
            name,
        })
    }

    /// Open a connection as `spec` says: the client's socket sends its SYN now (with its first
    /// unit of data if 0-RTT); the listener accepts when the SYN arrives. Writers, readers and
    /// the orderly close then run by themselves at every step. Returns the connection's index.
    pub fn conn_open(&mut self, spec: ConnSpec) -> Option<usize> {
        if !self.cfg.conns || spec.client == spec.listener.node {
            return None;
        }
        let dest = if spec.by_name {
            SynDest::Service(spec.listener.name?)
        } else {
            SynDest::Socket(SocketAddr {
                node: self.addrs[spec.listener.node],
                port: spec.listener.port,
            })
        };
        let now = self.now;
        let id = self.conns.len();
        let port = self.nodes[spec.client].as_mut()?.conn_socket();
        let end = |node, port, tx_target, rx_target, pace| ConnEnd {
            node,
            port,
            tx_target,
            tx: 0,
            rx_target,
            rx: 0,
            shut: false,
            end: None,
            core_end: None,
            ended_at: None,
            gone: false,
            window_stalls: 0,
            blocks_tx: 0,
            blocks_rx: 0,
            pace,
            next_read: now,
            abort_by: None,
        };
        self.conns.push(SimConn {
            spec,
            started: now,
            ends: [
                end(
                    spec.client,
                    Some(port),
                    spec.up,
                    spec.down,
                    spec.client_pace,
                ),
                end(
                    spec.listener.node,
                    None,
                    spec.down,
                    spec.up,
                    spec.server_pace,
                ),
            ],
        });
        self.conn_at.insert((spec.client, port), (id, 0));
        let (first, units) = if spec.zero_rtt && spec.up > 0 {
            self.conn_unit(id, 0)
        } else {
            (Vec::new(), 0)
        };
        let n = self.nodes[spec.client].as_mut()?;
        let core = n.conn_mut(port)?;
        core.set_stream(spec.listener.kind == ConnKind::Stream);
        if let Err(e) = core.connect(dest, &first, now) {
            self.violation(&format!("connection {id}: connect refused: {e}"));
        }
        n.conn_flush(now, port);
        self.conns[id].ends[0].tx += units;
        self.trace(format_args!("connection {id} opens: {spec:?}"));
        self.pump(spec.client);
        Some(id)
    }

    /// Is connection `id` set up at both ends (the server accepted, the client got the ACK)?
    pub fn conn_established(&self, id: usize) -> bool {
        let Some(c) = self.conns.get(id) else {
            return false;
        };
        let client = c.ends[0]
            .port
            .and_then(|p| self.node(c.ends[0].node)?.conn(p))
            .is_some_and(|core| core.state() != ConnState::Connecting);
        client && c.ends[1].port.is_some()
    }

    /// Every connection opened so far.
    pub fn conns(&self) -> &[SimConn] {
        &self.conns
    }

    /// Has every connection completed or aborted?
    pub fn conns_settled(&self) -> bool {
        self.conns.iter().all(|c| c.completed() || c.aborted())
    }

    /// The largest receive-queue memory (truesize) of any connection socket seen so far.
    pub fn max_conn_rx_mem(&self) -> usize {
        self.max_conn_rx_mem
    }

    /// Invariant 7's bound on a connection socket's queued memory: the advertised window plus
    /// what a sender may overshoot it by (one message of our largest size and 64 blocks of
    /// held Nagle data), in blocks, at 1600 bytes of truesize per block (the
    /// most any message size costs: a 1023-byte message is one block of 1024 + 576 bytes).
    pub fn conn_rx_bound(&self) -> usize {
        (ADV_WIN as usize + NAGLE_MAX_BACKLOG as usize + MAX_UNIT / 1024 + 2) * 1600
    }

    /// Flow-control blocks of a message of `len` bytes (`tsk_inc` with block flow control).
    fn blocks(len: usize) -> u64 {
        (len / 1024) as u64 + 1
    }

    /// How far a sender may go past the window: the kernel checks the window before each
    /// write, so by one message of our largest unit, and by up to 64 blocks of held Nagle
    /// data pushed out with it or at the peer's ack (`__tipc_sendstream`).
    fn overshoot(core: &ConnCore) -> u32 {
        let nagle = if core.max_nagle() > 0 {
            NAGLE_MAX_BACKLOG
        } else {
            0
        };
        core.inc(MAX_UNIT + SHORT_H_SIZE) + nagle
    }

    /// The header size of connection `id`'s SYN if it carried data, else of a data message.
    fn syn_hdr(&self, id: usize) -> usize {
        let spec = &self.conns[id].spec;
        match (spec.zero_rtt, spec.by_name) {
            (false, _) => SHORT_H_SIZE,
            (true, true) => 40,
            (true, false) => BASIC_H_SIZE,
        }
    }

    /// The byte at `offset` of direction `dir` (0: client to server) of connection `id`.
    fn conn_byte(id: usize, dir: usize, offset: u64) -> u8 {
        let x = (offset ^ ((id as u64) << 40) ^ ((dir as u64) << 39))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (x >> 56) as u8
    }

    /// The next unit end `e` of connection `id` writes: a stream chunk (1..=3000 bytes of the
    /// pattern, at most what is left) or a seqpacket message (a 24-byte record: id, direction,
    /// number, length; then the pattern). Returns the data and the units it counts.
    fn conn_unit(&mut self, id: usize, e: usize) -> (Vec<u8>, u64) {
        let c = &self.conns[id];
        let (kind, at, left) = (
            c.spec.listener.kind,
            c.ends[e].tx,
            c.ends[e].tx_target - c.ends[e].tx,
        );
        let r = self.conn_rng.next_u32() as usize;
        match kind {
            ConnKind::Stream => {
                let len = (1 + r % MAX_UNIT).min(left as usize);
                let v = (0..len as u64)
                    .map(|i| Self::conn_byte(id, e, at + i))
                    .collect();
                (v, len as u64)
            }
            ConnKind::Seqpacket => {
                let len = SEQ_REC + r % (MAX_UNIT - SEQ_REC);
                let mut v = vec![0u8; len];
                v[0..4].copy_from_slice(&(id as u32).to_be_bytes());
                v[4..8].copy_from_slice(&(e as u32).to_be_bytes());
                v[8..16].copy_from_slice(&at.to_be_bytes());
                v[16..20].copy_from_slice(&(len as u32).to_be_bytes());
                for (i, b) in v[SEQ_REC..].iter_mut().enumerate() {
                    *b = Self::conn_byte(id, e, (at << 16) + i as u64);
                }
                (v, 1)
            }
        }
    }

    /// A connection-layer message delivered to `node`: to the socket glue; accepted requests
    /// are matched to their connection.
    fn on_conn_deliver(&mut self, node: usize, m: Bytes) {
        let now = self.now;
        let Some(n) = self.nodes[node].as_mut() else {
            return;
        };
        for a in n.conn_receive(now, m) {
            let client = self.index_of.get(&a.peer.node).copied();
            let found = client.and_then(|c| self.conn_at.get(&(c, a.peer.port)).copied());
            let Some((id, 0)) = found else {
                self.violation(&format!(
                    "node {node} listener {} accepted an unknown request from {}",
                    a.listener, a.peer
                ));
            };
            let srv = &mut self.conns[id].ends[1];
            if srv.node != node || srv.port.is_some() {
                self.violation(&format!(
                    "connection {id}: request accepted twice or at the wrong node {node}"
                ));
            }
            srv.port = Some(a.port);
            srv.next_read = now;
            self.conn_at.insert((node, a.port), (id, 1));
            self.trace(format_args!(
                "connection {id} accepted at node {node} port {}",
                a.port
            ));
        }
    }

    /// Node `node`'s link to `peer` purged a packet: connection messages in it go back to their
    /// socket with NO_NODE, in the name of the unreachable node (`peer.rs: reject_purged`).
    fn conn_purged(&mut self, node: usize, peer: NodeAddr, m: &Bytes) {
        let Ok(h) = Header::new_checked(&m[..]) else {
            return;
        };
        let msgs: Vec<Bytes> = if h.user() == user::MSG_BUNDLER {
            extract(m).flatten().collect()
        } else {
            vec![m.clone()]
        };
        for msg in msgs {
            let ours = Header::new_checked(&msg[..])
                .is_ok_and(|h| h.user() <= user::CRITICAL && h.destport() >= CONN_PORT_BASE);
            if !ours {
                continue;
            }
            if let Some(ret) = reverse(&msg, ErrorCode::NoNode, peer) {
                self.on_conn_deliver(node, ret.freeze());
            }
        }
    }

    /// The applications: writers, readers and the orderly close of every connection.
    fn run_conns(&mut self) {
        for id in 0..self.conns.len() {
            for e in 0..2 {
                let node = self.conns[id].ends[e].node;
                let acted = self.conn_write(id, e) | self.conn_read(id, e) | self.conn_close(id, e);
                if acted {
                    self.pump(node);
                }
            }
        }
    }

    /// The socket of end `e`, if it exists and is not gone.
    fn conn_port(&self, id: usize, e: usize) -> Option<(usize, u32)> {
        let end = &self.conns[id].ends[e];
        let port = end.port.filter(|_| !end.gone)?;
        self.node(end.node)?.conn(port)?;
        Some((end.node, port))
    }

    /// Write while the connection's window and the link allow (`Connection::send`).
    fn conn_write(&mut self, id: usize, e: usize) -> bool {
        let Some((node, port)) = self.conn_port(id, e) else {
            return false;
        };
        let peer_addr = self.addrs[self.conns[id].ends[1 - e].node];
        let now = self.now;
        let mut acted = false;
        for _ in 0..10_000 {
            let end = &self.conns[id].ends[e];
            if end.shut || end.tx >= end.tx_target {
                break;
            }
            let Some(n) = self.node(node) else { break };
            let Some(core) = n.conn(port) else { break };
            if core.can_send() != Ok(true) {
                if core.state() == ConnState::Established && core.congested() {
                    self.conns[id].ends[e].window_stalls += 1;
                }
                break;
            }
            let imp = core.importance();
            if !n
                .peer(peer_addr)
                .is_some_and(|p| p.is_up() && !p.is_congested(imp, port))
            {
                break;
            }
            let (data, units) = self.conn_unit(id, e);
            let Some(n) = self.nodes[node].as_mut() else {
                break;
            };
            let Some(core) = n.conn_mut(port) else { break };
            if let Err(err) = core.write(&data) {
                self.violation(&format!("connection {id} end {e}: send refused: {err}"))
            }
            let (unacked, win, max) = (core.snt_unacked(), core.snd_win(), Self::overshoot(core));
            if unacked > win + max {
                self.violation(&format!(
                    "connection {id} end {e}: {unacked} blocks unacknowledged, window {win} + {max} (one message and what Nagle held)"
                ));
            }
            let failed = n.conn_stats.send_failed;
            n.conn_flush(now, port);
            if n.conn_stats.send_failed != failed {
                self.violation(&format!(
                    "connection {id} end {e}: the link refused a data message it said it takes"
                ));
            }
            self.conns[id].ends[e].tx += units;
            acted = true;
        }
        acted
    }

    /// Read at the end's pace (`Connection::recv`), checking every unit: in order, intact,
    /// never beyond what was written; the end only after everything (orderly) or for a cause.
    fn conn_read(&mut self, id: usize, e: usize) -> bool {
        let Some((node, port)) = self.conn_port(id, e) else {
            return false;
        };
        let now = self.now;
        let pace = self.conns[id].ends[e].pace;
        if now < self.conns[id].ends[e].next_read || self.conns[id].ends[e].end.is_some() {
            return false;
        }
        let kind = self.conns[id].spec.listener.kind;
        let dir = 1 - e;
        let mut reads = 0;
        while reads < pace.units {
            let Some(r) = self.nodes[node]
                .as_mut()
                .and_then(|n| n.conn_mut(port))
                .and_then(|c| c.read())
            else {
                break;
            };
            reads += 1;
            match r {
                Read::Data(d) => {
                    self.conn_check_data(id, e, kind, dir, &d);
                    let hdr = if self.conns[id].ends[e].blocks_rx == 0 && e == 1 {
                        // The first read of the server may be the SYN's data.
                        self.syn_hdr(id)
                    } else {
                        SHORT_H_SIZE
                    };
                    self.conns[id].ends[e].blocks_rx += Self::blocks(hdr + d.len());
                }
                Read::End(why) => {
                    self.conn_check_end(id, e, why, true);
                    self.conns[id].ends[e].end = Some(why);
                    break;
                }
            }
        }
        if reads == 0 {
            return false;
        }
        if let Some(n) = self.nodes[node].as_mut() {
            n.conn_flush(now, port);
        }
        self.conns[id].ends[e].next_read = now + pace.interval;
        true
    }

    fn conn_check_data(&mut self, id: usize, e: usize, kind: ConnKind, dir: usize, d: &[u8]) {
        let end = &self.conns[id].ends[e];
        let at = end.rx;
        let (units, ok) = match kind {
            ConnKind::Stream => {
                let bad = d
                    .iter()
                    .enumerate()
                    .find(|(i, &b)| b != Self::conn_byte(id, dir, at + *i as u64));
                if let Some((i, _)) = bad {
                    self.violation(&format!(
                        "connection {id} end {e}: stream byte {} damaged, lost or out of order",
                        at + i as u64
                    ));
                }
                (d.len() as u64, !d.is_empty())
            }
            ConnKind::Seqpacket => {
                let word = |k: usize| {
                    d.get(k..k + 4)
                        .and_then(|w| w.try_into().ok())
                        .map(u32::from_be_bytes)
                };
                let seq = d
                    .get(8..16)
                    .and_then(|w| w.try_into().ok())
                    .map(u64::from_be_bytes);
                let ok = word(0) == Some(id as u32)
                    && word(4) == Some(dir as u32)
                    && word(16) == Some(d.len() as u32)
                    && d[SEQ_REC.min(d.len())..]
                        .iter()
                        .enumerate()
                        .all(|(i, &b)| b == Self::conn_byte(id, dir, (at << 16) + i as u64));
                if seq != Some(at) {
                    self.violation(&format!(
                        "connection {id} end {e}: message {seq:?} read, expected #{at}: lost, duplicated or reordered"
                    ));
                }
                (1, ok)
            }
        };
        if !ok {
            self.violation(&format!(
                "connection {id} end {e}: unit at {at} damaged or empty"
            ));
        }
        let end = &mut self.conns[id].ends[e];
        end.rx += units;
        let (rx, target) = (end.rx, end.rx_target);
        if rx > target {
            self.violation(&format!(
                "connection {id} end {e}: read {rx} units, only {target} were written"
            ));
        }
    }

    /// Is an end with this reason legitimate for end `e` of connection `id`? An orderly end
    /// only after the peer shut down and everything was read (`read`: the application saw it;
    /// else the core ended before the queue was drained); an error only when its peer node
    /// was really cut off, crashed or restarted since the connection was opened.
    fn conn_check_end(&mut self, id: usize, e: usize, why: Result<(), ConnError>, read: bool) {
        let c = &self.conns[id];
        let (me, other) = (&c.ends[e], &c.ends[1 - e]);
        match why {
            Ok(()) => {
                if !other.shut {
                    self.violation(&format!(
                        "connection {id} end {e}: orderly end but the peer never shut down"
                    ));
                }
                if read && me.rx != me.rx_target {
                    self.violation(&format!(
                        "connection {id} end {e}: orderly end after {} of {} units",
                        me.rx, me.rx_target
                    ));
                }
            }
            Err(ConnError::Closed) if me.shut => {}
            Err(err) => {
                let cut = self
                    .severed
                    .get(&pair(me.node, other.node))
                    .is_some_and(|&t| t >= c.started);
                if !cut {
                    self.violation(&format!(
                        "connection {id} end {e} ended ({err}) but its peer node was never lost"
                    ));
                }
            }
        }
    }

    /// The closer shuts down once it wrote and read everything (`Connection::shutdown`).
    fn conn_close(&mut self, id: usize, e: usize) -> bool {
        let c = &self.conns[id];
        let end = &c.ends[e];
        if c.closer() != e || end.shut || end.tx < end.tx_target || end.rx < end.rx_target {
            return false;
        }
        let Some((node, port)) = self.conn_port(id, e) else {
            return false;
        };
        let now = self.now;
        let Some(n) = self.nodes[node].as_mut() else {
            return false;
        };
        let Some(core) = n.conn_mut(port) else {
            return false;
        };
        if core.state() != ConnState::Established {
            return false;
        }
        core.shutdown(ErrorCode::ConnShutdown);
        n.conn_flush(now, port);
        self.trace(format_args!("connection {id} end {e} shuts down"));
        self.conns[id].ends[e].shut = true;
        true
    }

    /// The pair `a`, `b` lost contact now (crash, restart, partition): live connection ends
    /// between them must be ended by their core within [`Sim::down_bound`].
    fn sever(&mut self, a: usize, b: usize, partition: bool) {
        self.severed.insert(pair(a, b), self.now);
        let deadline = self.now + self.down_bound();
        for c in self.conns.iter_mut() {
            let nodes = (c.ends[0].node, c.ends[1].node);
            if pair(nodes.0, nodes.1) != pair(a, b) {
                continue;
            }
            let established = c.ends.iter().all(|e| e.port.is_some());
            for e in c.ends.iter_mut() {
                if established && !e.gone && e.core_end.is_none() && e.abort_by.is_none() {
                    e.abort_by = Some((deadline, partition));
                }
            }
        }
    }

    /// Node `n` crashed: its connection ends vanish.
    fn conns_crash(&mut self, n: usize) {
        for c in self.conns.iter_mut() {
            for e in c.ends.iter_mut().filter(|e| e.node == n) {
                e.gone = true;
                e.abort_by = None;
            }
        }
        for o in 0..self.cfg.nodes {
            if o != n {
                self.sever(n, o, false);
            }
        }
    }

    /// Invariant 7, every step: flow-control bounds on every socket; every end the core
    /// reports is legitimate; connections whose peer node was lost end in time.
    fn check_conns(&mut self) {
        let now = self.now;
        let bound = self.conn_rx_bound();
        for id in 0..self.conns.len() {
            for e in 0..2 {
                let Some((node, port)) = self.conn_port(id, e) else {
                    continue;
                };
                let Some(core) = self.node(node).and_then(|n| n.conn(port)) else {
                    continue;
                };
                let (mem, end, state) = (core.rx_mem(), core.end(), core.state());
                let (unacked, win) = (core.snt_unacked(), core.snd_win());
                let max = Self::overshoot(core);
                let sent = self.node(node).map_or(0, |n| n.conn_blocks_sent(port));
                self.conns[id].ends[e].blocks_tx = sent;
                self.max_conn_rx_mem = self.max_conn_rx_mem.max(mem);
                if mem > bound || mem >= RCVBUF_DEFAULT {
                    self.violation(&format!(
                        "connection {id} end {e}: {mem} bytes queued, bound {bound}"
                    ));
                }
                if state == ConnState::Established && unacked > win + max {
                    self.violation(&format!(
                        "connection {id} end {e}: {unacked} blocks unacknowledged, window {win}"
                    ));
                }
                // Acks only count what the peer's application read: what was written and not
                // yet read is unacknowledged.
                let c = &self.conns[id];
                let unread = c.ends[e].blocks_tx.saturating_sub(c.ends[1 - e].blocks_rx);
                if state == ConnState::Established && (unacked as u64) < unread {
                    self.violation(&format!(
                        "connection {id} end {e}: {unacked} blocks unacknowledged but {unread} written and not yet read by the peer"
                    ));
                }
                let ce = &self.conns[id].ends[e];
                if let (Some(why), None) = (end, ce.core_end) {
                    self.conn_check_end(id, e, why, false);
                    let t = self.elapsed();
                    let ce = &mut self.conns[id].ends[e];
                    ce.core_end = Some(why);
                    ce.ended_at = Some(t);
                    ce.abort_by = None;
                } else if let Some((d, _)) = ce.abort_by.filter(|(d, _)| now > *d) {
                    self.violation(&format!(
                        "connection {id} end {e} still {state:?} {:?} after its peer node was lost (bound {:?})",
                        now - d,
                        self.down_bound()
                    ));
                }
            }
        }
    }

    // ------------------------------------------------------------------ names

    /// Node `node` binds `port` to `range` with cluster scope; the binding goes to every up
    /// peer as a single update (and to later peers in their bulk). The key is a fresh number
    /// of this node instance.
    pub fn publish(
        &mut self,
        node: usize,
        range: ServiceRange,
        port: u32,
    ) -> Result<Publication, NameCmdError> {
        self.publish_scoped(node, range, port, Scope::Cluster)
    }

    /// [`Sim::publish`] with a chosen scope (node-scope bindings stay local).
    pub fn publish_scoped(
        &mut self,
        node: usize,
        range: ServiceRange,
        port: u32,
        scope: Scope,
    ) -> Result<Publication, NameCmdError> {
        let now = self.now;
        if !self.cfg.names {
            return Err(NameCmdError::Disabled);
        }
        let n = self.nodes[node].as_mut().ok_or(NameCmdError::NodeDown)?;
        let p = n
            .publish(now, range, port, scope)
            .map_err(NameCmdError::Binding)?;
        self.trace(format_args!("node {node} publishes {p:?}"));
        // Bindings change again: convergence is no longer expected by a deadline.
        self.names_deadline = None;
        self.pump(node);
        Ok(p)
    }

    /// Node `node` withdraws its binding of `port` to exactly `range` (the newest if several);
    /// the withdrawal goes to every up peer.
    pub fn withdraw(&mut self, node: usize, range: ServiceRange, port: u32) -> Option<Publication> {
        let now = self.now;
        if !self.cfg.names {
            return None;
        }
        let p = self.nodes[node].as_mut()?.withdraw(now, range, port)?;
        self.trace(format_args!("node {node} withdraws {p:?}"));
        self.names_deadline = None;
        self.pump(node);
        Some(p)
    }

    /// A data message from `src` to `dst` naming `src`'s binding `publ` (which must be in
    /// `src`'s table), sent at once at MEDIUM importance if the link is up and that level is
    /// not congested. Returns the message id, or `None` if it was not sent. Invariant 6 checks
    /// its delivery.
    pub fn send_ref(&mut self, src: usize, dst: usize, publ: &Publication) -> Option<u64> {
        let now = self.now;
        if !self.cfg.names {
            return None;
        }
        let id = self.refs.len() as u64;
        let msg = self.ref_msg(src, dst, id, publ);
        let dst_addr = self.addrs[dst];
        let n = self.nodes[src].as_mut()?;
        if !n.table().iter().any(|p| p == publ) || publ.node != n.addr() {
            return None;
        }
        let selector = 2000 + src as u32;
        let peer = n.peer_mut(dst_addr)?;
        if !peer.is_up() || peer.is_congested(user::MEDIUM, selector) {
            return None;
        }
        match peer.send(now, msg, selector) {
            Ok(_) => {}
            Err(SendError::Congested(_) | SendError::NotUp(_)) => return None,
            Err(e) => self.violation(&format!("reference {src}->{dst} #{id} refused: {e}")),
        }
        self.refs.push(RefMsg {
            src,
            dst,
            publ: *publ,
            state: RefState::Sent,
        });
        self.pump(src);
        Some(id)
    }

    /// Every binding-reference message sent so far, by id.
    pub fn refs(&self) -> &[RefMsg] {
        &self.refs
    }

    /// Has every reference message been delivered, purged by its sender's link, or lost with
    /// its crashed sender?
    pub fn refs_settled(&self) -> bool {
        self.refs.iter().all(|r| r.state != RefState::Sent)
    }

    /// Reference messages in each state: (sent and pending, delivered, purged, lost).
    pub fn ref_counts(&self) -> (usize, usize, usize, usize) {
        let c = |s| self.refs.iter().filter(|r| r.state == s).count();
        (
            c(RefState::Sent),
            c(RefState::Delivered),
            c(RefState::Purged),
            c(RefState::Lost),
        )
    }

    /// Where bindings have not converged: for every pair of live nodes whose peer objects are
    /// both up, the viewer's bindings of the publisher must equal the publisher's own
    /// cluster-scope bindings, and a node holds no bindings of a node it has no working link
    /// to. `None` when converged.
    pub fn names_divergence(&self) -> Option<String> {
        let n = self.cfg.nodes;
        for v in 0..n {
            let Some(viewer) = self.node(v) else { continue };
            for j in (0..n).filter(|&j| j != v) {
                let aj = self.addrs[j];
                let view = viewer.view_of(aj);
                if !self.peer_up(v, j) {
                    if !view.is_empty() {
                        return Some(format!(
                            "node {v} holds {} bindings of node {j} it has no link to",
                            view.len()
                        ));
                    }
                    continue;
                }
                let Some(publisher) = self.node(j) else {
                    continue;
                };
                if !self.peer_up(j, v) {
                    continue;
                }
                let own = publisher.own_cluster_bindings();
                if view != own {
                    return Some(Self::diff_msg(v, j, &view, &own));
                }
            }
        }
        None
    }

    /// Have the binding tables converged (see [`Sim::names_divergence`])?
    pub fn names_converged(&self) -> bool {
        self.names_divergence().is_none()
    }

    fn diff_msg(v: usize, j: usize, view: &[Publication], own: &[Publication]) -> String {
        let extra: Vec<_> = view.iter().filter(|p| !own.contains(p)).collect();
        let missing: Vec<_> = own.iter().filter(|p| !view.contains(p)).collect();
        format!("node {v}'s view of node {j}: extra {extra:?}, missing {missing:?}")
    }

    fn ref_msg(&self, src: usize, dst: usize, id: u64, publ: &Publication) -> BytesMut {
        let len = BASIC_H_SIZE + REF_LEN;
        let mut b = BytesMut::zeroed(len);
        let (sa, da) = (self.addrs[src], self.addrs[dst]);
        {
            let mut h = Header::new_unchecked(&mut b[..]);
            h.init(user::MEDIUM, DIRECT_MSG, BASIC_H_SIZE, len, sa);
            h.set(field::ORIGNODE, sa);
            h.set(field::DESTNODE, da);
            h.set(field::ORIGPORT, publ.port);
            h.set(field::DESTPORT, 2000 + dst as u32);
        }
        let words = [
            REF_MAGIC,
            src as u32,
            dst as u32,
            (id >> 32) as u32,
            id as u32,
            publ.range.type_,
            publ.range.lower,
            publ.range.upper,
            publ.port,
            publ.key,
        ];
        for (k, w) in words.iter().enumerate() {
            b[BASIC_H_SIZE + 4 * k..BASIC_H_SIZE + 4 * k + 4].copy_from_slice(&w.to_be_bytes());
        }
        b
    }

    /// (src, dst, id, the binding's (range, port, key)) of a reference message.
    fn parse_ref(m: &[u8]) -> Option<(usize, usize, u64, RefBinding)> {
        let h = Header::new_checked(m).ok()?;
        if h.user() != user::MEDIUM || h.mtype() != DIRECT_MSG || h.header_len() != BASIC_H_SIZE {
            return None;
        }
        let p = h.payload();
        if p.len() != REF_LEN {
            return None;
        }
        let w = |k: usize| -> Option<u32> {
            Some(u32::from_be_bytes(
                p.get(4 * k..4 * k + 4)?.try_into().ok()?,
            ))
        };
        if w(0)? != REF_MAGIC {
            return None;
        }
        let id = ((w(3)? as u64) << 32) | w(4)? as u64;
        let range = ServiceRange {
            type_: w(5)?,
            lower: w(6)?,
            upper: w(7)?,
        };
        Some((w(1)? as usize, w(2)? as usize, id, (range, w(8)?, w(9)?)))
    }

    /// Invariant 6: a reference message is delivered at most once, in order per (src, dst),
    /// intact, and only once the receiver's table holds the binding it names.
    fn on_ref_deliver(&mut self, node: usize, peer: usize, m: &[u8]) {
        let Some((src, dst, id, (range, port, key))) = Self::parse_ref(m) else {
            self.violation(&format!(
                "node {node} got an unexpected MEDIUM message from {peer}: {} bytes",
                m.len()
            ));
        };
        let Some(r) = self.refs.get(id as usize).copied() else {
            self.violation(&format!("reference #{id} delivered but never sent"));
        };
        if src != peer || dst != node || r.src != src || r.dst != dst {
            self.violation(&format!(
                "node {node} got reference #{id} from {peer} naming {src}->{dst} (sent {}->{})",
                r.src, r.dst
            ));
        }
        let intact = Header::new_checked(m)
            .is_ok_and(|h| h.orignode() == self.addrs[src] && h.destnode() == self.addrs[dst])
            && (range, port, key) == (r.publ.range, r.publ.port, r.publ.key);
        if !intact {
            self.violation(&format!("reference {src}->{dst} #{id}: damaged"));
        }
        if r.state == RefState::Delivered {
            self.violation(&format!("reference {src}->{dst} #{id} delivered twice"));
        }
        if let Some(&l) = self.ref_last.get(&(src, dst)) {
            if id <= l {
                self.violation(&format!(
                    "reference {src}->{dst} #{id} delivered after #{l}: reordered"
                ));
            }
        }
        let has = self
            .node(node)
            .is_some_and(|n| n.table().iter().any(|p| *p == r.publ));
        if !has {
            self.violation(&format!(
                "publish-before-data: node {node} delivers reference #{id} from {src} to {:?} port {} key {} before the binding",
                r.publ.range, r.publ.port, r.publ.key
            ));
        }
        self.ref_last.insert((src, dst), id);
        if let Some(r) = self.refs.get_mut(id as usize) {
            r.state = RefState::Delivered;
        }
    }

    /// Invariant 5b: for every direction publisher -> viewer whose peers are up at both ends
    /// and whose links at the publisher have nothing unacknowledged (transmit queue and backlog
    /// empty), the viewer has every update the publisher sent: views must be equal. Checked
    /// again only when either table changed.
    fn check_quiet_names(&mut self) {
        let n = self.cfg.nodes;
        for j in 0..n {
            for v in (0..n).filter(|&v| v != j) {
                let (Some(pn), Some(vn)) = (self.node(j), self.node(v)) else {
                    continue;
                };
                let vers = (pn.names_version(), vn.names_version());
                if self.names_verified.get(&(j, v)) == Some(&vers) {
                    continue;
                }
                let (aj, av) = (self.addrs[j], self.addrs[v]);
                let (Some(pp), Some(vp)) = (pn.peer(av), vn.peer(aj)) else {
                    continue;
                };
                if !pp.is_up() || !vp.is_up() {
                    continue;
                }
                let quiet = pp
                    .links()
                    .iter()
                    .all(|(_, s)| s.transmq_len == 0 && s.backlog_len == 0);
                if !quiet {
                    continue;
                }
                let own = pn.own_cluster_bindings();
                let view = vn.view_of(aj);
                if view != own {
                    let msg = Self::diff_msg(v, j, &view, &own);
                    self.violation(&format!("bindings diverge on a quiet link: {msg}"));
                }
                self.names_verified.insert((j, v), vers);
            }
        }
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
        let t = self
            .nodes
            .iter()
            .flatten()
            .filter_map(|n| n.poll_timeout())
            .chain(r)
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
            for _ in 0..copies {
                let mut delay = self.uniform(rule.delay_min, rule.delay_max);
                if self.chance(rule.reorder) {
                    delay += self.uniform(Duration::ZERO, rule.reorder_max);
                }
                let mut data = f.data.clone();
                let mut corrupted = false;
                if self.chance(rule.corrupt) {
                    self.fault(from, to);
                    data = self.corrupt_detectably(&data);
                    corrupted = true;
                } else if self.chance(rule.garble) {
                    self.fault(from, to);
                    data = self.garble(&data);
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
                });
            }
        }
    }

    /// Flip one byte so that header validation must reject the frame: the version bits of
    /// byte 0, or bit 16 of the message size (the size then exceeds the frame).
    fn corrupt_detectably(&mut self, data: &Bytes) -> Bytes {
        let mut b = BytesMut::from(&data[..]);
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

    fn on_event(&mut self, node: usize, peer_addr: NodeAddr, ev: PeerEvent) {
        let Some(&peer) = self.index_of.get(&peer_addr) else {
            self.violation(&format!(
                "node {node}: event about unknown node {peer_addr:#x}"
            ));
        };
        let t = self.elapsed();
        if !matches!(
            ev,
            PeerEvent::Deliver(_) | PeerEvent::Purged(_) | PeerEvent::Unblocked(_)
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
        let now = self.now;
        let names = self.cfg.names;
        let conns = self.cfg.conns;
        match ev {
            PeerEvent::LinkUp { bearer, .. } => {
                log(LogKind::LinkUp(bearer));
                if let Some(n) = self.nodes[node].as_mut().filter(|_| names) {
                    n.names_link_up(peer_addr, bearer);
                }
            }
            PeerEvent::NodeUp => {
                log(LogKind::NodeUp);
                if let Some(n) = self.nodes[node].as_mut().filter(|_| names) {
                    n.names_node_up(now, peer_addr);
                }
            }
            PeerEvent::NodeDown => {
                log(LogKind::NodeDown);
                if let Some(n) = self.nodes[node].as_mut().filter(|_| conns) {
                    n.conn_node_lost(now, peer_addr);
                }
                if let Some(n) = self.nodes[node].as_mut().filter(|_| names) {
                    n.names_node_down(peer_addr);
                    let left = n.table().bindings_of_node(peer_addr).len();
                    if left > 0 {
                        self.violation(&format!(
                            "node {node} kept {left} bindings of {peer} after its node-down"
                        ));
                    }
                }
            }
            PeerEvent::LinkDown { bearer, reason, .. } => {
                log(LogKind::LinkDown(bearer, reason));
                if let Some(n) = self.nodes[node].as_mut().filter(|_| names) {
                    n.names_link_down(peer_addr, bearer);
                }
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
            PeerEvent::Deliver(m) if conns && Self::is_conn_msg(&m) => {
                self.on_conn_deliver(node, m)
            }
            PeerEvent::Deliver(m) => match Header::new_checked(&m[..]).map(|h| h.user()) {
                Ok(user::NAME_DISTRIBUTOR) if names => {
                    if let Some(n) = self.nodes[node].as_mut() {
                        n.names_receive(peer_addr, &m);
                    }
                }
                Ok(user::MEDIUM) if names && self.cfg.check_delivery => {
                    self.on_ref_deliver(node, peer, &m)
                }
                _ => self.on_deliver(node, peer, &m),
            },
            PeerEvent::Purged(m) => {
                if conns {
                    self.conn_purged(node, peer_addr, &m);
                }
                self.on_purged(node, peer, &m)
            }
            PeerEvent::Unblocked(_) => {}
        }
    }

    /// A message for the connection glue: CONN_MANAGER, or data to a glue socket's port.
    fn is_conn_msg(m: &[u8]) -> bool {
        Header::new_checked(m).is_ok_and(|h| {
            h.user() == user::CONN_MANAGER
                || (h.user() <= user::CRITICAL && h.destport() >= CONN_PORT_BASE)
        })
    }

    /// The (src, dst, seq) record of one of our data messages.
    fn parse_record(m: &[u8]) -> Option<(NodeAddr, NodeAddr, usize, usize, u64)> {
        let h = Header::new_checked(m).ok()?;
        if h.user() != user::LOW
            || h.mtype() != DIRECT_MSG
            || h.header_len() != BASIC_H_SIZE
            || h.destport() >= CONN_PORT_BASE
        {
            return None;
        }
        let p = h.payload();
        if p.len() < RECORD_LEN {
            return None;
        }
        let src = u32::from_be_bytes(p[0..4].try_into().ok()?) as usize;
        let dst = u32::from_be_bytes(p[4..8].try_into().ok()?) as usize;
        let seq = u64::from_be_bytes(p[8..16].try_into().ok()?);
        Some((h.orignode(), h.destnode(), src, dst, seq))
    }

    fn on_deliver(&mut self, node: usize, peer: usize, m: &[u8]) {
        if !self.cfg.check_delivery {
            return;
        }
        let Some((orig, dest, src, dst, seq)) = Self::parse_record(m) else {
            self.violation(&format!(
                "node {node} got an unexpected message from {peer}: {} bytes",
                m.len()
            ));
        };
        if orig != self.addrs[peer] || dest != self.addrs[node] || src != peer || dst != node {
            self.violation(&format!(
                "node {node} got a message from {peer} naming {orig:#x}->{dest:#x} ({src}->{dst} #{seq})"
            ));
        }
        let expect = self.data_msg(src, dst, seq);
        if m.len() != expect.len() || m[BASIC_H_SIZE..] != expect[BASIC_H_SIZE..] {
            self.violation(&format!("{src}->{dst} #{seq}: payload damaged"));
        }
        let f = self.flows.entry((src, dst)).or_default().clone();
        if seq >= f.next {
            self.violation(&format!(
                "{src}->{dst} #{seq} delivered but never sent (next {})",
                f.next
            ));
        }
        if let Some(l) = f.last {
            if seq <= l {
                self.violation(&format!(
                    "{src}->{dst} #{seq} delivered after #{l}: duplicate or reordered"
                ));
            }
        }
        let from = f.last.map_or(0, |l| l + 1);
        for k in from.max(f.lost_below)..seq {
            if !f.purged.contains(&k) {
                self.violation(&format!(
                    "{src}->{dst} #{seq} delivered but #{k} was skipped without being purged"
                ));
            }
        }
        let f = self.flows.entry((src, dst)).or_default();
        f.last = Some(seq);
        f.delivered += 1;
    }

    fn on_purged(&mut self, node: usize, peer: usize, m: &[u8]) {
        let mut seqs = Vec::new();
        let mut refs = Vec::new();
        if let Ok(h) = Header::new_checked(m) {
            if h.user() == user::MSG_BUNDLER {
                let size = h.size();
                let mut pos = h.header_len();
                while pos + SHORT_H_SIZE <= size {
                    let Ok(inner) = Header::new_checked(&m[pos..size]) else {
                        break;
                    };
                    let isz = inner.size();
                    if let Some(r) = Self::parse_record(&m[pos..pos + isz]) {
                        seqs.push(r);
                    }
                    if let Some(r) = Self::parse_ref(&m[pos..pos + isz]) {
                        refs.push(r);
                    }
                    pos += (isz + 3) & !3;
                }
            } else if let Some(r) = Self::parse_record(m) {
                seqs.push(r);
            } else if let Some(r) = Self::parse_ref(m) {
                refs.push(r);
            }
        }
        for (src, dst, id, _) in refs {
            if src != node || dst != peer {
                self.violation(&format!(
                    "node {node} purged a reference {src}->{dst} #{id} on its link to {peer}"
                ));
            }
            if let Some(r) = self.refs.get_mut(id as usize) {
                if r.state == RefState::Sent {
                    r.state = RefState::Purged;
                }
            }
        }
        for (_, _, src, dst, seq) in seqs {
            if src != node || dst != peer {
                self.violation(&format!(
                    "node {node} purged a message {src}->{dst} on its link to {peer}"
                ));
            }
            self.flows.entry((src, dst)).or_default().purged.insert(seq);
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
