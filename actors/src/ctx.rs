//! The node context (kernel `struct tipc_net`): what every actor and user handle of one node
//! shares. Identity and configuration, the clock, the binding table, the registry of local
//! ports, per-peer send state, and handles (never concrete actor types) through which the
//! actors reach each other: one `PeerHandle` per peer node, the name table's
//! `NamesHandle`, and each bearer's send path and command recipients.

use crate::addr::ServiceRange;
use crate::crypto::NodeCrypto;
use crate::flow::{link_mss, PeerFlow};
use crate::msg::{BearerCmd, BearerStatsQuery, NamesHandle, PeerHandle, Publish, Withdraw};
use crate::name_table::{BindingTable, Publication};
use crate::socket::rcv::{Nodes, RcvStats};
use crate::socket::BindError;
use crate::tx::TxPath;
use actix::prelude::*;
use bytes::Bytes;
use dashmap::DashMap;
use std::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::Duration;
use tipc_transport::bcast::{BcastConfig, BcastLink};
use tipc_transport::discovery::Neighbor;
use tipc_transport::peer::BearerParams;
use tipc_transport::wire::MAX_MSG_SIZE;
use tipc_transport::{BearerId, NodeAddr, NodeId, MAX_BEARERS};
use tokio::sync::{broadcast, mpsc, Notify};

pub use crate::clock::now;

/// Transport settings of a node.
#[derive(Debug, Clone)]
pub struct TransportConfig {
    /// Node identity.
    pub id: NodeId,
    /// Network (cluster) id, 1..=9999.
    pub net_id: u32,
    /// Capabilities to advertise.
    pub caps: u16,
    /// Link tolerance.
    pub tolerance: Duration,
    /// Link priority.
    pub priority: u8,
    /// Seed for session numbers and the node signature (None: from the OS).
    pub seed: Option<u64>,
    /// Most peer nodes the node keeps (up or not): discovery messages from further new nodes
    /// are refused and counted ([`tipc_transport::discovery::DEFAULT_MAX_PEERS`]).
    pub max_peers: usize,
}

impl TransportConfig {
    /// Defaults of the kernel: net id 4711, tolerance 1500 ms, priority 10.
    pub fn new(id: NodeId) -> Self {
        TransportConfig {
            id,
            net_id: 4711,
            caps: tipc_transport::OWN_CAPABILITIES,
            tolerance: tipc_transport::link::DEFAULT_TOLERANCE,
            priority: tipc_transport::link::DEFAULT_PRIORITY,
            seed: None,
            max_peers: tipc_transport::discovery::DEFAULT_MAX_PEERS,
        }
    }
}

/// Events of the transport layer, for management and upper layers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeEvent {
    /// A link came up.
    LinkUp {
        /// Peer node.
        peer: NodeAddr,
        /// Link name.
        name: String,
    },
    /// A link went down.
    LinkDown {
        /// Peer node.
        peer: NodeAddr,
        /// Link name.
        name: String,
        /// Why, as text.
        reason: String,
    },
    /// A peer node became reachable.
    NodeUp(NodeAddr),
    /// A peer node was lost.
    NodeDown(NodeAddr),
}

/// A message delivered by a peer's link, for a raw-transport user (tests, benchmarks:
/// [`crate::TransportNode::set_delivery`]).
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The peer it came from.
    pub from: NodeAddr,
    /// The complete TIPC message.
    pub msg: Bytes,
}

/// One of the node's bearers.
#[derive(Debug, Clone)]
pub struct BearerInfo {
    /// Bearer id.
    pub id: BearerId,
    /// Name as the kernel prints it (`udp:udp0`, `eth:eth0`).
    pub name: String,
    /// Media address.
    pub media_addr: String,
    /// Link parameters.
    pub params: BearerParams,
}

/// One local socket, for `socket list` ([`crate::node::TransportNode::sockets`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SocketInfo {
    /// Its port.
    pub port: u32,
    /// What it is.
    pub kind: SocketKind,
}

/// What a local socket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SocketKind {
    /// A datagram socket (RDM, DGRAM) or a communication group member.
    Datagram,
    /// A connection socket (stream or seqpacket): fresh, listening, connecting, connected or
    /// ended.
    Conn {
        /// Its state.
        state: crate::socket::conn::ConnState,
        /// The peer socket, while connected.
        peer: Option<crate::addr::SocketAddr>,
        /// The service address the connection was made through, when known (an accepted
        /// connection requested by name: the kernel's `TIPC_DESTNAME`).
        via: Option<crate::addr::ServiceAddr>,
    },
}

/// A bearer as the node knows it: its send path and its actor's recipients.
#[derive(Clone)]
pub(crate) struct BearerSlot {
    pub info: BearerInfo,
    pub tx: Arc<TxPath>,
    pub ctl: Recipient<BearerCmd>,
    pub stats: Recipient<BearerStatsQuery>,
}

/// A local socket in the port registry (kernel `tipc_sk_lookup`): the dispatch's
/// [`crate::socket::rcv::Verdict::Port`] messages are handed to it, and it hears of lost
/// peer nodes (`tipc_node_lost_contact`).
pub(crate) trait Port: Send + Sync {
    /// Messages for this socket, in delivery order. Whatever the socket cannot take it
    /// rejects itself (through [`crate::route`]).
    fn deliver(&self, ctx: &NodeCtx, msgs: Vec<Bytes>);
    /// The last link to `node` failed.
    fn node_lost(&self, ctx: &NodeCtx, node: NodeAddr);
    /// A datagram socket, not a connection socket.
    fn is_datagram(&self) -> bool;
    /// What the socket is, for `socket list` (datagram sockets and group members keep this
    /// default).
    fn kind(&self) -> SocketKind {
        SocketKind::Datagram
    }
    /// A group member's drop counters (`None`: not a group member).
    fn group_drops(&self) -> Option<crate::group::GroupDrops> {
        None
    }
}

/// Starts the actor of a newly discovered peer and returns its handle (set by the facade).
pub(crate) type SpawnPeer = fn(&Arc<NodeCtx>, &Neighbor) -> PeerHandle;

/// What the actors and handles of one node share (see the module docs).
pub(crate) struct NodeCtx {
    pub own_addr: NodeAddr,
    pub cfg: TransportConfig,
    pub signature: u16,
    rng: Mutex<rand_chacha::ChaCha8Rng>,
    /// The actor of each known peer node.
    pub peers: DashMap<NodeAddr, Arc<PeerHandle>>,
    spawn_peer: SpawnPeer,
    pub bearers: RwLock<Vec<Option<BearerSlot>>>,
    pub events: broadcast::Sender<NodeEvent>,
    /// Raw transport mode: every delivered message goes here instead of to the sockets.
    pub deliver: RwLock<Option<mpsc::UnboundedSender<Delivered>>>,
    /// Per-peer wake-up for raw senders waiting out link congestion.
    pub unblocked: DashMap<NodeAddr, Arc<Notify>>,
    /// Per-peer send state.
    flow: DashMap<NodeAddr, Arc<PeerFlow>>,
    /// The name table actor (set once at start).
    pub names: OnceLock<NamesHandle>,
    /// The binding table. Updated by the name table actor only; read (and rotated, for
    /// anycast round-robin) by sends and deliveries. Never held across an `await`.
    table: Mutex<BindingTable>,
    /// Identities of known peer nodes (for display).
    pub node_ids: DashMap<NodeAddr, NodeId>,
    /// Capabilities of known peer nodes (connection flow control, SYN bit).
    pub node_caps: DashMap<NodeAddr, u16>,
    /// Local sockets by port.
    pub ports: DashMap<u32, Arc<dyn Port>>,
    next_port: AtomicU32,
    /// Messages the receive dispatch dropped, by cause.
    rcv_stats: Mutex<RcvStats>,
    /// What group members that left had dropped.
    pub group_drops_left: Mutex<crate::group::GroupDrops>,
    /// The node's broadcast send link. Lock order: a peer's links, then this; whoever holds
    /// it only sends on bearers.
    bcast: Mutex<BcastLink>,
    /// Its `last_bcast`, for the peers' links without the lock.
    bcast_last: AtomicU16,
    /// The node-wide multicast method: 0 select by ratio, 1 broadcast, 2 replicast.
    bcast_mode: AtomicU8,
    /// Discovery messages from new nodes refused because the node had `max_peers` peers.
    peer_limit_refused: AtomicU64,
    /// Node-level drop counters of peers that were forgotten (a forgotten peer's counters
    /// would otherwise vanish from the totals).
    pub peer_drops_gone: Mutex<tipc_transport::peer::PeerStats>,
    /// The node's encryption: every bearer seals and opens through it.
    pub crypto: Arc<NodeCrypto>,
}

impl NodeCtx {
    /// A context for node `cfg.id` with no bearers, peers or sockets yet. `seed` feeds the
    /// node signature, the first port number and link sessions.
    pub fn new(cfg: TransportConfig, seed: u64, spawn_peer: SpawnPeer) -> NodeCtx {
        use rand_core::{RngCore, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let signature = rng.next_u32() as u16;
        // Ports start at a random value and increase, skipping 0 (`tipc_sk_insert`).
        let port_start = rng.next_u32().max(1);
        let (events, _) = broadcast::channel(1024);
        let own = cfg.id.hash();
        let cfg_net_id = cfg.net_id;
        let cfg_id = cfg.id;
        NodeCtx {
            own_addr: own,
            cfg,
            signature,
            rng: Mutex::new(rng),
            peers: DashMap::new(),
            spawn_peer,
            bearers: RwLock::new(vec![None; MAX_BEARERS]),
            events,
            deliver: RwLock::new(None),
            unblocked: DashMap::new(),
            flow: DashMap::new(),
            names: OnceLock::new(),
            table: Mutex::new(BindingTable::new(own)),
            node_ids: DashMap::new(),
            node_caps: DashMap::new(),
            ports: DashMap::new(),
            next_port: AtomicU32::new(port_start),
            rcv_stats: Mutex::new(RcvStats::default()),
            group_drops_left: Mutex::new(crate::group::GroupDrops::default()),
            bcast: Mutex::new(BcastLink::new(BcastConfig {
                own_addr: own,
                net_id: cfg_net_id,
                mtu: 1500,
            })),
            bcast_last: AtomicU16::new(0),
            bcast_mode: AtomicU8::new(0),
            peer_limit_refused: AtomicU64::new(0),
            peer_drops_gone: Mutex::new(Default::default()),
            crypto: Arc::new(NodeCrypto::new(own, cfg_id)),
        }
    }

    /// A random 16-bit number (link sessions).
    pub fn random_u16(&self) -> u16 {
        use rand_core::RngCore;
        self.rng
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .next_u32() as u16
    }

    /// This peer's send state (created on first use).
    pub fn flow_of(&self, peer: NodeAddr) -> Arc<PeerFlow> {
        match self.flow.get(&peer) {
            Some(f) => f.value().clone(),
            None => self.flow.entry(peer).or_default().clone(),
        }
    }

    /// The binding table (a poisoned lock is taken over: the table has no invariants a panic
    /// between two calls could break).
    pub fn table(&self) -> MutexGuard<'_, BindingTable> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A bearer by id.
    pub fn bearer(&self, id: BearerId) -> Option<BearerSlot> {
        let b = self.bearers.read().ok()?;
        b.get(id as usize).cloned().flatten()
    }

    /// A bearer's send path.
    pub fn bearer_tx(&self, id: BearerId) -> Option<Arc<TxPath>> {
        let b = self.bearers.read().ok()?;
        b.get(id as usize)?.as_ref().map(|s| s.tx.clone())
    }

    /// The smallest MTU of the node's bearers (1500 if it has none).
    pub fn min_bearer_mtu(&self) -> usize {
        self.bearers
            .read()
            .ok()
            .and_then(|b| b.iter().flatten().map(|s| s.info.params.mtu).min())
            .unwrap_or(1500)
    }

    /// The actor of the peer node `n` discovered, started if there is none yet; `None` if
    /// there is none and the node has [`TransportConfig::max_peers`] peers already (counted:
    /// [`NodeCtx::peer_limit_refused`]).
    pub fn peer_or_spawn(self: &Arc<Self>, n: &Neighbor) -> Option<Arc<PeerHandle>> {
        if let Some(p) = self.peers.get(&n.addr) {
            return Some(p.value().clone());
        }
        if !tipc_transport::discovery::admit_new_peer(self.peers.len(), self.cfg.max_peers) {
            let refused = self.peer_limit_refused.fetch_add(1, Ordering::Relaxed);
            if refused.is_power_of_two() || refused == 0 {
                tracing::warn!(
                    max_peers = self.cfg.max_peers,
                    refused = refused + 1,
                    "peer limit reached: discovery from new node {:08x} refused",
                    n.addr
                );
            }
            return None;
        }
        Some(
            self.peers
                .entry(n.addr)
                .or_insert_with(|| Arc::new((self.spawn_peer)(self, n)))
                .value()
                .clone(),
        )
    }

    /// Discovery messages from new nodes refused at the peer limit.
    pub fn peer_limit_refused(&self) -> u64 {
        self.peer_limit_refused.load(Ordering::Relaxed)
    }

    /// Peer `addr`'s actor stops (the node was forgotten, `tipc_node_cleanup`): drop what the
    /// node kept for it, unless a new actor for that address took its place already
    /// (`links`: the stopping actor's link core). `stats`: its counters, kept in the totals.
    pub fn forget_peer(
        &self,
        addr: NodeAddr,
        links: &Arc<Mutex<crate::flow::PeerLinks>>,
        stats: &tipc_transport::peer::PeerStats,
    ) {
        self.peer_drops_gone
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(stats);
        let ours = |f: &Arc<PeerFlow>| f.links().is_some_and(|l| Arc::ptr_eq(&l, links));
        if self.flow.remove_if(&addr, |_, f| ours(f)).is_some() {
            self.node_ids.remove(&addr);
            self.node_caps.remove(&addr);
            self.unblocked.remove(&addr);
        }
        self.peers.remove(&addr);
    }

    /// A fresh port for a socket.
    pub fn alloc_port(&self) -> u32 {
        loop {
            let p = self.next_port.fetch_add(1, Ordering::Relaxed);
            if p != 0 && !self.ports.contains_key(&p) {
                return p;
            }
        }
    }

    /// Count the dispatch's drops.
    pub fn count_drop(&self, cause: crate::socket::rcv::DropCause) {
        self.rcv_stats
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .count(cause);
    }

    /// What the dispatch dropped so far.
    pub fn rcv_stats(&self) -> RcvStats {
        *self.rcv_stats.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The name table's handle; `None` once the node stopped (never set).
    pub fn names(&self) -> Option<&NamesHandle> {
        self.names.get()
    }

    /// Publish a binding of a local socket through the name table.
    pub async fn publish(&self, p: Publication) -> Result<(), BindError> {
        let names = self.names().ok_or(BindError::Stopped)?;
        match names.publish.send(Publish(p)).await {
            Ok(r) => r.map_err(BindError::Table),
            Err(_) => Err(BindError::Stopped),
        }
    }

    /// Withdraw a binding of a local socket (exact range, port and key); the publication,
    /// if there was one. `None` too when the node is stopping.
    pub async fn withdraw(&self, range: ServiceRange, port: u32, key: u32) -> Option<Publication> {
        let names = self.names()?;
        let w = Withdraw { range, port, key };
        names.withdraw.send(w).await.ok().flatten()
    }

    /// Withdraw a binding without waiting (a socket dropped or stopping): the name table
    /// takes it before anything sent to it later.
    pub fn withdraw_now(&self, p: Publication) {
        if let Some(names) = self.names() {
            names.withdraw.do_send(Withdraw {
                range: p.range,
                port: p.port,
                key: p.key,
            });
        }
    }

    /// The broadcast send link (a poisoned lock is taken over: the link is consistent
    /// between calls). See the lock order at the field.
    pub fn bcast(&self) -> MutexGuard<'_, BcastLink> {
        self.bcast.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The broadcast link's `last_bcast`, as last published by [`NodeCtx::set_bcast_last`].
    pub fn bcast_last(&self) -> u16 {
        self.bcast_last.load(Ordering::Acquire)
    }

    /// Publish the broadcast link's `last_bcast` for the peers' links.
    pub fn set_bcast_last(&self, v: u16) {
        self.bcast_last.store(v, Ordering::Release);
    }

    /// The node-wide multicast method (`None`: select by the ratio of §5.4).
    pub fn bcast_forced(&self) -> Option<crate::group::Method> {
        match self.bcast_mode.load(Ordering::Relaxed) {
            1 => Some(crate::group::Method::Broadcast),
            2 => Some(crate::group::Method::Replicast),
            _ => None,
        }
    }

    /// Set the node-wide multicast method.
    pub fn set_bcast_forced(&self, m: Option<crate::group::Method>) {
        let v = match m {
            None => 0,
            Some(crate::group::Method::Broadcast) => 1,
            Some(crate::group::Method::Replicast) => 2,
        };
        self.bcast_mode.store(v, Ordering::Relaxed);
    }

    /// Is `node` this node (or 0, which means this node)?
    pub fn is_own(&self, node: NodeAddr) -> bool {
        node == self.own_addr || node == 0
    }
}

impl Nodes for NodeCtx {
    fn caps(&self, node: NodeAddr) -> u16 {
        if self.is_own(node) {
            return self.cfg.caps;
        }
        self.node_caps
            .get(&node)
            .map(|c| *c.value())
            .unwrap_or(tipc_transport::OWN_CAPABILITIES)
    }

    fn mss(&self, node: NodeAddr) -> usize {
        if self.is_own(node) {
            return MAX_MSG_SIZE;
        }
        // Looked up, not created: any address may be asked about.
        match self.flow.get(&node).map_or(0, |f| link_mss(f.value())) {
            0 => crate::socket::conn::MAX_PKT_DEFAULT,
            m => m,
        }
    }
}
