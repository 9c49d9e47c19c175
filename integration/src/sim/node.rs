//! One simulated node: the sans-IO cores of a node, driven by the same functions the actors
//! call, without actix.
//!
//! * Lower half, as `actors/src/actor/bearer.rs` and `actor/peer.rs`: one [`Discoverer`] per
//!   bearer, one [`Peer`] per remote node, frames [`classify`]d to discovery or to the peer,
//!   discovered neighbours passed to [`Peer::handle_discovery`] (answered with a `DSC_RESP`
//!   when it says so), link up/down counted per bearer into [`Discoverer::set_up_links`], a
//!   peer dropped at its [`PeerEvent::Forget`].
//! * Upper half, as `actor/name_table.rs`, `route.rs` and `actor/conn.rs`: the
//!   [`NameService`] on the node's [`BindingTable`] (node-state binding, bulks, single
//!   updates, purges, link-state bindings); delivered and returned messages through the
//!   receive dispatch of [`tipc_actors::socket::rcv`] to the node's ports; connection sockets
//!   ([`ConnCore`]) fed, accepted and resolved with [`conn_rcv`], [`conn_accept`] and
//!   [`conn_resolve`]; node loss told to every connection socket.
//!
//! * Groups, as `actor/group.rs`: member sockets ([`GroupSock`]) joined with the table's
//!   members, fed the table's binding events of their type, their messages by the dispatch
//!   and node loss; their transmits routed by [`route_transmit`] (replicast copies to the
//!   peers' links, parked in order while a link is congested, as the actors' send queue;
//!   copies for this node through the multicast dispatch).
//!
//! * Encryption, as `actors/src/crypto.rs` and `actor/crypto.rs` (with [`SimConfig::crypto`]):
//!   the node's [`NodeCrypto`], seeded from the simulation's RNG. Every frame the node sends
//!   is sealed by [`NodeCrypto::seal`] in [`SimNode::drain`] (for the peer of its unicast
//!   link, `None` for discovery and the broadcast link, as the bearers' send path); every
//!   frame received is opened by [`NodeCrypto::open`] before it is classified (as the bearer
//!   actor); a delivered `MSG_CRYPTO` goes to [`NodeCrypto::key_distr`]; the peer lifecycle
//!   (`add_peer` at discovery, `peer_down` at node-down, `remove_peer` at forget) as the peer
//!   actor; the crypto timers and the KEY_DISTR messages to send through
//!   [`NodeCrypto::drive`] (as the driver task: to the peer's link, or the broadcast link).
//!
//! The node's ports are its connection sockets, its group member sockets and its harness sockets ("sinks": the traffic
//! port `1000 + i` and the reference port `2000 + i` of node `i`), whose messages (delivered,
//! or returned to them) go to the simulation as [`Upcall::Sink`]. Connections inside one node
//! are not modelled.

use super::{NodeStats, OutFrame, SimConfig, NET_ID, REF_PORT_BASE, TRAFFIC_PORT_BASE};
use bytes::{Bytes, BytesMut};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;
use tipc_actors::addr::{Scope, ServiceRange, SocketAddr};
use tipc_actors::crypto::NodeCrypto;
use tipc_actors::group::{
    route_transmit, BcastPolicy, GroupConfig, GroupCore, GroupDest, GroupEvent, GroupSendError,
    GroupSock, Route as GroupRoute,
};
use tipc_actors::name_distr::{NameDistrStats, NameDistributor, NameService};
use tipc_actors::name_table::{BindingError, BindingTable, Publication, TableEvent};
use tipc_actors::socket::conn::{ConnCore, ConnError, MAX_PKT_DEFAULT};
use tipc_actors::socket::rcv::{
    self, conn_accept, conn_rcv, conn_resolve, resolve_anycast, Nodes, RcvEnv, RcvStats, Verdict,
};
use tipc_actors::socket::replicast_copy;
use tipc_transport::bcast::{BcastConfig, BcastLink, BcastSendError};
use tipc_transport::crypto::{is_envelope, CryptoConfig, CryptoEvent, CryptoStats, KeySetting};
use tipc_transport::discovery::{Discoverer, DiscoveryConfig};
use tipc_transport::media::{Dest, RxFrame, TxFrame};
use tipc_transport::peer::{
    classify, BearerParams, DropReason, NeighborSighting, Peer, PeerEvent, Route,
};
use tipc_transport::wire::{Header, InputQueue, MediaAddr};
use tipc_transport::{BearerId, NodeAddr, NodeId, MAX_BEARERS, OWN_CAPABILITIES};

/// First port of the connection glue's sockets (sinks use 1000 + i and 2000 + i).
pub(super) const CONN_PORT_BASE: u32 = 100_000;
/// First port of the group member sockets.
pub(super) const GROUP_PORT_BASE: u32 = 200_000;

/// Counters of a simulated node's group glue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupGlueStats {
    /// Messages for a peer whose link was congested: held in order until it takes them.
    pub parked: u64,
    /// Messages for a peer with no working link (its node is down): dropped.
    pub send_failed: u64,
    /// Messages delivered to a member socket.
    pub delivered: u64,
    /// Group broadcasts sent on the broadcast link.
    pub bcast_sent: u64,
    /// Group broadcasts the broadcast link refused (sent by replicast instead).
    pub bcast_refused: u64,
}

#[derive(Debug)]
struct SimBearer {
    params: BearerParams,
    disc: Discoverer,
    up_links: usize,
}

/// Counters of a simulated node's crypto glue, and what the simulation's wire did to the
/// frames this node instance received (to explain the crypto's drops).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CryptoGlueStats {
    /// Envelopes this node put on the wire.
    pub sealed_sent: u64,
    /// Frames this node put on the wire in clear.
    pub clear_sent: u64,
    /// Envelopes received (before opening).
    pub envelopes_rx: u64,
    /// Frames received and handed on after [`NodeCrypto::open`] (opened or accepted clear).
    pub opened: u64,
    /// KEY_DISTR messages sent on a unicast link.
    pub keys_sent_unicast: u64,
    /// KEY_DISTR messages sent on the broadcast link.
    pub keys_sent_bcast: u64,
    /// KEY_DISTR messages the link refused (no peer, link down, congested).
    pub keys_send_failed: u64,
    /// Envelope copies delivered here that the wire duplicated (the second copy).
    pub wire_dups: u64,
    /// Envelope copies delivered here that the wire delayed extra (reordering).
    pub wire_reordered: u64,
    /// Envelope copies delivered here that the wire corrupted or garbled.
    pub wire_tampered: u64,
    /// Probe or grace copies delivered here (sealed with a key the receiver may not hold).
    pub wire_probes: u64,
    /// Envelopes delivered here sealed with a session key this node had not activated in
    /// that slot for their sender.
    pub wire_not_active: u64,
    /// Envelopes delivered here from a peer that restarted while this node may still hold
    /// the replay windows of its previous instance (until this node's node-down for it).
    pub wire_after_restart: u64,
}

/// Counters of a simulated node's connection glue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnGlueStats {
    /// Messages handed to a connection socket.
    pub delivered: u64,
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

/// Counters of a simulated node's name glue (the [`NameService`]'s, plus send failures).
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

/// What the node's upper half hands to the simulation's applications.
#[derive(Debug, Clone)]
pub enum Upcall {
    /// A message for a harness socket at `port`: delivered, or returned (error code set).
    Sink(u32, Bytes),
    /// A listener accepted a connection request.
    Accepted(Accepted),
}

/// One simulated node (see the module docs).
#[derive(Debug)]
pub struct SimNode {
    id: NodeId,
    addr: NodeAddr,
    signature: u16,
    bearers: Vec<SimBearer>,
    pub(super) peers: BTreeMap<NodeAddr, Peer>,
    link_up: BTreeSet<(NodeAddr, BearerId)>,
    rng: ChaCha8Rng,
    out: BytesMut,
    stats: NodeStats,
    /// The binding table and the name distribution on it (with [`SimConfig::names`]).
    table: BindingTable,
    names: Option<NameService>,
    next_key: u32,
    /// Bumped on every change of the binding table.
    names_version: u64,
    name_send_failed: u64,
    /// Connection sockets (listeners and connections) by port.
    conns: BTreeMap<u32, ConnCore>,
    /// Flow-control blocks of the data messages each connection socket sent (a Nagle
    /// buffer is one message), by port.
    conn_sent: BTreeMap<u32, u64>,
    next_conn_port: u32,
    conn_stats: ConnGlueStats,
    /// The harness sockets.
    sinks: BTreeSet<u32>,
    upcalls: Vec<Upcall>,
    rcv_stats: RcvStats,
    /// Group member sockets by port.
    groups: BTreeMap<u32, GroupSock>,
    next_group_port: u32,
    /// Group messages a congested link refused, per peer, in order.
    group_parked: BTreeMap<NodeAddr, VecDeque<BytesMut>>,
    /// Binding events of the table not yet given to the group sockets: (published,
    /// publication).
    group_bindings: Vec<(bool, Publication)>,
    group_stats: GroupGlueStats,
    /// The node's broadcast send link (the actors' `NodeCtx::bcast`).
    bcast: BcastLink,
    /// The node's crypto (with [`SimConfig::crypto`]).
    crypto: Option<NodeCrypto>,
    pub(super) crypto_glue: CryptoGlueStats,
}

/// Seal `frames[start..]` for `node` (the peer of their unicast link, `None` for discovery
/// and the broadcast link) with the node's crypto, as the bearers' send path does.
fn seal(
    crypto: &Option<NodeCrypto>,
    now: Instant,
    frames: &mut Vec<OutFrame>,
    start: usize,
    node: Option<NodeAddr>,
) {
    let Some(c) = crypto.as_ref().filter(|c| c.is_sealing()) else {
        return;
    };
    if frames.len() == start {
        return;
    }
    // One call per frame: the core may add probe or grace copies before it.
    let plain: Vec<OutFrame> = frames.drain(start..).collect();
    for f in plain {
        let sealed = c.seal(now, vec![TxFrame::new(f.dest, f.data)], node);
        let copies = sealed.len().saturating_sub(1);
        frames.extend(sealed.into_iter().enumerate().map(|(i, t)| OutFrame {
            bearer: f.bearer,
            dest: t.dest,
            data: t.data,
            probe: i < copies,
        }));
    }
}

/// The dispatch's view of a simulated node.
struct Env<'a> {
    own: NodeAddr,
    table: &'a mut BindingTable,
    conns: &'a BTreeMap<u32, ConnCore>,
    sinks: &'a BTreeSet<u32>,
    groups: &'a BTreeMap<u32, GroupSock>,
}

impl RcvEnv for Env<'_> {
    fn own(&self) -> NodeAddr {
        self.own
    }
    fn has_port(&self, port: u32) -> bool {
        self.conns.contains_key(&port)
            || self.sinks.contains(&port)
            || self.groups.contains_key(&port)
    }
    fn with_table<R>(&mut self, f: impl FnOnce(&mut BindingTable) -> R) -> R {
        f(self.table)
    }
}

/// What a simulated node knows of the others.
struct PeerView<'a> {
    own: NodeAddr,
    peers: &'a BTreeMap<NodeAddr, Peer>,
}

impl Nodes for PeerView<'_> {
    fn caps(&self, node: NodeAddr) -> u16 {
        if node == self.own || node == 0 {
            return OWN_CAPABILITIES;
        }
        self.peers.get(&node).map_or(OWN_CAPABILITIES, |p| p.caps())
    }
    fn mss(&self, node: NodeAddr) -> usize {
        match self.peers.get(&node).map_or(0, |p| p.mss()) {
            0 => MAX_PKT_DEFAULT,
            m => m,
        }
    }
}

impl SimNode {
    /// A fresh node instance: node `index` of the cluster, with its own signature and a seeded
    /// RNG for link sessions. Its discoverers send their first request at `now`; `started_us`
    /// is the wall-clock time the instance starts (µs since the Unix epoch), as a real node
    /// gives its crypto.
    pub fn new(
        cfg: &SimConfig,
        index: usize,
        id: NodeId,
        signature: u16,
        rng_seed: u64,
        now: Instant,
        started_us: u64,
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
        let crypto = cfg.crypto.as_ref().map(|c| {
            let mut cc = CryptoConfig::new(addr, id);
            cc.rekeying = c.rekeying;
            cc.started_us = started_us;
            // Its own stream, so that the link sessions drawn from `rng_seed` stay the same.
            let rng = ChaCha8Rng::seed_from_u64(rng_seed ^ 0x6372_7970_746f);
            NodeCrypto::with_rng(cc, rng)
        });
        let mut table = BindingTable::new(addr);
        // The node-state binding is published when the address is set; with the name glue
        // off it stays in the table, undistributed.
        let names = if cfg.names {
            Some(NameService::new(addr, &mut table))
        } else {
            let _ = table.publish(Publication::node_state(addr));
            None
        };
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
            names,
            next_key: 1,
            names_version: 0,
            name_send_failed: 0,
            conns: BTreeMap::new(),
            conn_sent: BTreeMap::new(),
            next_conn_port: CONN_PORT_BASE,
            conn_stats: ConnGlueStats::default(),
            sinks: [
                TRAFFIC_PORT_BASE + index as u32,
                REF_PORT_BASE + index as u32,
            ]
            .into(),
            upcalls: Vec::new(),
            rcv_stats: RcvStats::default(),
            groups: BTreeMap::new(),
            next_group_port: GROUP_PORT_BASE,
            group_parked: BTreeMap::new(),
            group_bindings: Vec::new(),
            group_stats: GroupGlueStats::default(),
            bcast: BcastLink::new(BcastConfig {
                own_addr: addr,
                net_id: NET_ID,
                mtu: cfg.first_mtu.unwrap_or(cfg.mtu).min(cfg.mtu),
            }),
            crypto,
            crypto_glue: CryptoGlueStats::default(),
        };
        node.table_changed();
        node
    }

    // ------------------------------------------------------------------ name glue

    /// The binding table.
    pub fn table(&self) -> &BindingTable {
        &self.table
    }
    /// The name distributor (its drop counters, pending queues), with [`SimConfig::names`].
    pub fn distributor(&self) -> Option<&NameDistributor> {
        self.names.as_ref().map(|n| n.distributor())
    }
    /// Name-distributor drop counters.
    pub fn distr_stats(&self) -> NameDistrStats {
        self.distributor().map(|d| d.stats()).unwrap_or_default()
    }
    /// Counters of the name glue.
    pub fn name_stats(&self) -> NameStats {
        let s = self.names.as_ref().map(|n| n.stats()).unwrap_or_default();
        NameStats {
            distr_rx: s.distr_rx,
            applied: s.applied,
            refused: s.refused,
            purged: s.purged,
            send_failed: self.name_send_failed,
        }
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

    /// The table changed: drain its events (the group sockets' subscriptions take those of
    /// their types, as the actors' topology subscription does) and bump the version.
    fn table_changed(&mut self) {
        while let Some(ev) = self.table.poll_event() {
            if self.groups.is_empty() {
                continue;
            }
            let (published, publ) = match ev {
                TableEvent::Published { publ, .. } => (true, publ),
                TableEvent::Withdrawn { publ, .. } => (false, publ),
            };
            let t = publ.range.type_();
            if self.groups.values().any(|g| g.core().config().type_ == t) {
                self.group_bindings.push((published, publ));
            }
        }
        self.names_version += 1;
    }

    /// Send what the name service produced over the peers' links.
    fn send_names(&mut self, now: Instant) {
        let Some(names) = self.names.as_mut() else {
            return;
        };
        while let Some((peer, msg)) = names.poll_transmit() {
            let sent = self
                .peers
                .get_mut(&peer)
                .is_some_and(|p| p.send(now, msg, 0).is_ok());
            if !sent {
                self.name_send_failed += 1;
            }
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
        if let Some(names) = self.names.as_mut() {
            names.publish(&mut self.table, p)?;
        } else {
            self.table.publish(p)?;
        }
        self.next_key = self.next_key.wrapping_add(1).max(1);
        self.table_changed();
        self.send_names(now);
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
        let p = match self.names.as_mut() {
            Some(names) => names.withdraw(&mut self.table, range, port, key)?,
            None => self.table.withdraw(range, own, port, key)?,
        };
        self.table_changed();
        self.send_names(now);
        Some(p)
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
    /// What the receive dispatch dropped.
    pub fn rcv_stats(&self) -> RcvStats {
        self.rcv_stats
    }

    /// Send everything socket `port` produced, as the connection actor's `push_out`: each
    /// output resolved with [`conn_resolve`] (a named SYN after an anycast lookup in this
    /// node's table) and handed to its peer's links; a message the links refuse fails a
    /// connect with NO_NODE.
    pub fn conn_flush(&mut self, now: Instant, port: u32) {
        // Bounded: a core queues a handful of messages per call.
        for _ in 0..4096 {
            let Some(core) = self.conns.get_mut(&port) else {
                return;
            };
            let Some(o) = core.poll_output() else {
                return;
            };
            let table = &mut self.table;
            match conn_resolve(core, o, |n, m| resolve_anycast(table, n, m)) {
                Ok((to, msg)) => {
                    let blocks = Self::data_blocks(&msg);
                    if self.conn_post(now, to, msg, port) {
                        *self.conn_sent.entry(port).or_default() += blocks;
                    } else if let Some(c) = self.conns.get_mut(&port) {
                        c.connect_failed(ConnError::NoNode);
                    }
                }
                Err(_) => self.conn_stats.lookup_failed += 1,
            }
        }
    }

    /// Hand a message to a peer's links (as the actors' `enqueue_to_peer`). Returns whether
    /// the link accepted it.
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

    /// Flow-control blocks of `msg` if it carries connection data (data user, no error code,
    /// a payload), else 0.
    fn data_blocks(msg: &[u8]) -> u64 {
        match Header::new_checked(msg) {
            Ok(h)
                if h.user() <= tipc_transport::wire::user::CRITICAL
                    && h.errcode() == 0
                    && !h.payload().is_empty() =>
            {
                (h.size() / 1024) as u64 + 1
            }
            _ => 0,
        }
    }

    /// Blocks of the data messages connection socket `port` sent so far.
    pub fn conn_blocks_sent(&self, port: u32) -> u64 {
        self.conn_sent.get(&port).copied().unwrap_or(0)
    }

    /// A message for connection socket `port` (the port registry's `deliver`): fed to the
    /// core, its output sent; a listener accepts every request at once (each accepted socket
    /// sends its ACK).
    fn conn_receive(&mut self, now: Instant, port: u32, msg: Bytes) {
        let view = PeerView {
            own: self.addr,
            peers: &self.peers,
        };
        let Some(core) = self.conns.get_mut(&port) else {
            return;
        };
        self.conn_stats.delivered += 1;
        let fed = conn_rcv(core, msg, &view, now);
        self.conn_flush(now, port);
        if !fed.acceptable {
            return;
        }
        loop {
            let new_port = self.next_conn_port;
            let own = SocketAddr {
                node: self.addr,
                port: new_port,
            };
            let view = PeerView {
                own: self.addr,
                peers: &self.peers,
            };
            let Some(listener) = self.conns.get_mut(&port) else {
                break;
            };
            let Some(core) = conn_accept(listener, own, &view, now) else {
                break;
            };
            let peer = core.peer();
            self.next_conn_port += 1;
            self.conns.insert(new_port, core);
            self.conn_flush(now, port);
            self.conn_flush(now, new_port);
            self.upcalls.push(Upcall::Accepted(Accepted {
                listener: port,
                port: new_port,
                peer,
            }));
        }
    }

    // ------------------------------------------------------------------ dispatch

    /// Run the receive dispatch and carry out its verdicts (as `actors/src/route.rs`).
    fn dispatch(&mut self, now: Instant, f: impl FnOnce(&mut Env<'_>, &mut dyn FnMut(Verdict))) {
        let mut vs = VecDeque::new();
        {
            let mut env = Env {
                own: self.addr,
                table: &mut self.table,
                conns: &self.conns,
                sinks: &self.sinks,
                groups: &self.groups,
            };
            f(&mut env, &mut |v| vs.push_back(v));
        }
        self.apply_verdicts(now, vs);
    }

    /// Carry out the dispatch's verdicts, and those of the messages they make local sockets
    /// send to this node.
    fn apply_verdicts(&mut self, now: Instant, mut vs: VecDeque<Verdict>) {
        // Bounded: a rejection produces one returned message, never rejected again; group
        // sockets answer a message with a bounded number of protocol messages.
        while let Some(v) = vs.pop_front() {
            match v {
                Verdict::Port(port, msg) if self.sinks.contains(&port) => {
                    self.upcalls.push(Upcall::Sink(port, msg));
                }
                Verdict::Port(port, msg) if self.conns.contains_key(&port) => {
                    self.conn_receive(now, port, msg);
                }
                Verdict::Port(port, msg) if self.groups.contains_key(&port) => {
                    self.group_stats.delivered += 1;
                    if let Some(g) = self.groups.get_mut(&port) {
                        g.handle_message(msg);
                    }
                    self.group_flush(now, &mut vs);
                }
                Verdict::Port(_, msg) => {
                    let mut env = Env {
                        own: self.addr,
                        table: &mut self.table,
                        conns: &self.conns,
                        sinks: &self.sinks,
                        groups: &self.groups,
                    };
                    rcv::port_gone(&mut env, &msg, &mut |v| vs.push_back(v));
                }
                Verdict::Node(to, msg) => {
                    let selector = Header::new_checked(&msg[..]).map_or(0, |h| h.origport());
                    if !self.peers.contains_key(&to) {
                        let mut env = Env {
                            own: self.addr,
                            table: &mut self.table,
                            conns: &self.conns,
                            sinks: &self.sinks,
                            groups: &self.groups,
                        };
                        rcv::unreachable(&mut env, &msg, &mut |v| vs.push_back(v));
                    } else {
                        self.conn_post(now, to, msg, selector);
                    }
                }
                Verdict::Drop(cause) => self.rcv_stats.count(cause),
            }
        }
    }

    // ------------------------------------------------------------------ group glue

    /// Join group `cfg` as a new member socket (`tipc_sk_join`, as the actors' driver): a
    /// fresh port, the member binding published, the members the table holds joined.
    pub fn group_join(&mut self, now: Instant, cfg: GroupConfig) -> Result<u32, String> {
        let port = self.next_group_port;
        let own = SocketAddr {
            node: self.addr,
            port,
        };
        let core = GroupCore::new(own, cfg).map_err(|e| e.to_string())?;
        let (range, scope) = core.binding();
        self.next_group_port += 1;
        self.groups.insert(port, GroupSock::new(core));
        if let Err(e) = self.publish(now, range, port, scope) {
            self.groups.remove(&port);
            return Err(e.to_string());
        }
        let members = self.table.group_members(cfg.type_, cfg.scope);
        if let Some(g) = self.groups.get_mut(&port) {
            g.join(members);
        }
        self.group_pump(now);
        Ok(port)
    }

    /// The member socket at `port`.
    pub fn group(&self, port: u32) -> Option<&GroupSock> {
        self.groups.get(&port)
    }

    /// Member sockets by port.
    pub fn groups(&self) -> impl Iterator<Item = (u32, &GroupSock)> {
        self.groups.iter().map(|(p, g)| (*p, g))
    }

    /// Send from member `port` (then everything it produced goes out).
    pub fn group_send(
        &mut self,
        now: Instant,
        port: u32,
        dest: GroupDest,
        data: Bytes,
    ) -> Result<(), GroupSendError> {
        let r = match self.groups.get_mut(&port) {
            Some(g) => g.send(dest, data),
            None => Err(GroupSendError::NotJoined(data)),
        };
        self.group_pump(now);
        r
    }

    /// Whether a blocked sender at `port` may retry.
    pub fn group_wakeup(&mut self, port: u32) -> bool {
        self.groups.get_mut(&port).is_some_and(|g| g.poll_wakeup())
    }

    /// The application at `port` reads the next message or event.
    pub fn group_read(&mut self, now: Instant, port: u32) -> Option<GroupEvent> {
        let ev = self.groups.get_mut(&port)?.read();
        self.group_pump(now);
        ev
    }

    /// Member `port` leaves: LEAVEs sent, then its binding withdrawn, the port closed.
    pub fn group_leave(&mut self, now: Instant, port: u32) {
        let Some(g) = self.groups.get_mut(&port) else {
            return;
        };
        g.leave();
        let (range, _) = g.core().binding();
        self.group_pump(now);
        self.withdraw(now, range, port);
        self.groups.remove(&port);
    }

    /// Counters of the group glue.
    pub fn group_stats(&self) -> GroupGlueStats {
        self.group_stats
    }

    /// Messages parked for congested links, in all.
    pub fn group_parked(&self) -> usize {
        self.group_parked.values().map(VecDeque::len).sum()
    }

    /// Give the group sockets the binding events of their types, retry parked messages, and
    /// send what the sockets produced.
    fn group_pump(&mut self, now: Instant) {
        if self.groups.is_empty() {
            return;
        }
        let own = self.addr;
        for (published, p) in std::mem::take(&mut self.group_bindings) {
            for g in self.groups.values_mut() {
                if g.core().config().type_ == p.range.type_() {
                    g.handle_binding(own, published, p.socket(), p.range.lower());
                }
            }
        }
        let parked: Vec<NodeAddr> = self.group_parked.keys().copied().collect();
        for n in parked {
            self.group_unpark(now, n);
        }
        let mut vs = VecDeque::new();
        self.group_flush(now, &mut vs);
        self.apply_verdicts(now, vs);
    }

    /// Send what the group sockets produced, in order: to peers' links, and copies for this
    /// node through the dispatch (their verdicts into `vs`).
    fn group_flush(&mut self, now: Instant, vs: &mut VecDeque<Verdict>) {
        let own = self.addr;
        let peers = self.bcast.peers().count();
        let policy = BcastPolicy {
            available: peers > 0,
            cluster_size: peers + 1,
            node_forced: None,
        };
        let mut routes = Vec::new();
        for g in self.groups.values_mut() {
            while let Some(t) = g.poll_transmit() {
                route_transmit(t, own, policy, |r| routes.push(r));
            }
        }
        for r in routes {
            match r {
                GroupRoute::Node(n, msg) => self.group_post(now, n, msg),
                GroupRoute::Broadcast { msg, nodes } => {
                    let m = BytesMut::from(&msg[..]);
                    let back = match self.bcast.send(now, m) {
                        Ok(()) => None,
                        Err(BcastSendError::Congested(m))
                        | Err(BcastSendError::NoPeers(m))
                        | Err(BcastSendError::Invalid(m)) => Some(m),
                        Err(_) => None,
                    };
                    if let Some(m) = back {
                        self.group_stats.bcast_refused += 1;
                        for n in nodes {
                            if let Some(copy) = replicast_copy(&m, n) {
                                self.group_post(now, n, copy);
                            }
                        }
                    } else {
                        self.group_stats.bcast_sent += 1;
                    }
                }
                GroupRoute::Local(msg) => {
                    let mut env = Env {
                        own,
                        table: &mut self.table,
                        conns: &self.conns,
                        sinks: &self.sinks,
                        groups: &self.groups,
                    };
                    rcv::input(&mut env, InputQueue::Mcast, msg, &mut |v| vs.push_back(v));
                }
            }
        }
    }

    /// A group message for peer `n`: behind what is parked for it, or to its links; parked
    /// if they are congested (the actors' send queue), dropped if none is up (its node is
    /// lost, and the members there with it).
    fn group_post(&mut self, now: Instant, n: NodeAddr, msg: BytesMut) {
        if let Some(q) = self.group_parked.get_mut(&n) {
            q.push_back(msg);
            self.group_stats.parked += 1;
            return;
        }
        let Some(p) = self.peers.get_mut(&n) else {
            self.group_stats.send_failed += 1;
            return;
        };
        match p.send(now, msg, 0) {
            Ok(_) => {}
            Err(tipc_transport::link::SendError::Congested(m)) => {
                self.group_stats.parked += 1;
                self.group_parked.entry(n).or_default().push_back(m);
            }
            Err(_) => self.group_stats.send_failed += 1,
        }
    }

    /// Hand what is parked for `n` to its links while they take it.
    fn group_unpark(&mut self, now: Instant, n: NodeAddr) {
        let Some(mut q) = self.group_parked.remove(&n) else {
            return;
        };
        let Some(p) = self.peers.get_mut(&n) else {
            self.group_stats.send_failed += q.len() as u64;
            return;
        };
        while let Some(m) = q.pop_front() {
            match p.send(now, m, 0) {
                Ok(_) => {}
                Err(tipc_transport::link::SendError::Congested(m)) => {
                    q.push_front(m);
                    break;
                }
                Err(_) => self.group_stats.send_failed += 1,
            }
        }
        if !q.is_empty() {
            self.group_parked.insert(n, q);
        }
    }

    /// Carry out a peer event in the upper half (what the peer actor, the name table actor
    /// and the port registry do with it). Link up/down counting for discovery happens in
    /// [`SimNode::drain`].
    pub fn handle_peer_event(&mut self, now: Instant, peer: NodeAddr, ev: &PeerEvent) {
        // The broadcast half of node events (as the peer actor: `node.c` into `bcast.c`).
        let init = self.peers.get(&peer).map_or(0, |p| p.bc_init_last());
        self.bcast.handle_peer_event(now, peer, ev, init);
        match ev {
            PeerEvent::LinkUp { link_id, .. } => {
                if let Some(names) = self.names.as_mut() {
                    names.handle_link_up(&mut self.table, peer, *link_id);
                    self.table_changed();
                }
            }
            PeerEvent::LinkDown { link_id, .. } => {
                if let Some(names) = self.names.as_mut() {
                    names.handle_link_down(&mut self.table, peer, *link_id);
                    self.table_changed();
                }
            }
            PeerEvent::NodeUp => {
                let mtu = self
                    .bearers
                    .iter()
                    .map(|b| b.params.mtu)
                    .min()
                    .unwrap_or(1500);
                if let Some(names) = self.names.as_mut() {
                    names.handle_node_up(&self.table, peer, mtu);
                    self.send_names(now);
                }
            }
            PeerEvent::NodeDown => {
                if let Some(c) = &self.crypto {
                    c.with(|c| c.peer_down(peer));
                }
                self.group_parked.remove(&peer);
                for g in self.groups.values_mut() {
                    g.handle_node_down(peer);
                }
                let ports: Vec<u32> = self.conns.keys().copied().collect();
                for port in ports {
                    let hit = self
                        .conns
                        .get_mut(&port)
                        .is_some_and(|c| c.handle_node_lost(peer, now));
                    if hit {
                        self.conn_flush(now, port);
                    }
                }
                if let Some(names) = self.names.as_mut() {
                    names.handle_node_down(&mut self.table, peer);
                    self.table_changed();
                }
            }
            PeerEvent::NameDistr(m) => {
                if let Some(names) = self.names.as_mut() {
                    names.handle_message(&mut self.table, peer, m);
                    self.table_changed();
                }
            }
            PeerEvent::Deliver(m) => {
                let m = m.clone();
                self.dispatch(now, |env, out| {
                    rcv::input(env, InputQueue::Sockets, m, &mut |v| out(v))
                });
            }
            PeerEvent::DeliverMcast(m) => {
                let m = m.clone();
                self.dispatch(now, |env, out| {
                    rcv::input(env, InputQueue::Mcast, m, &mut |v| out(v))
                });
            }
            PeerEvent::Returned(m) => {
                let m = m.clone();
                self.dispatch(now, |env, out| rcv::route(env, m, &mut |v| out(v)));
            }
            PeerEvent::Forget => {
                if let Some(c) = &self.crypto {
                    c.with(|c| c.remove_peer(peer));
                }
                self.peers.remove(&peer);
            }
            PeerEvent::KeyDistr(m) => {
                if let Some(c) = &self.crypto {
                    c.key_distr(now, peer, m);
                }
            }
            PeerEvent::Unblocked(_) | PeerEvent::BcastAck { .. } | PeerEvent::BcastReady => {}
        }
    }

    /// What the upper half handed up since the last call.
    pub fn take_upcalls(&mut self) -> Vec<Upcall> {
        std::mem::take(&mut self.upcalls)
    }

    // ------------------------------------------------------------------ lower half

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

    /// A frame arrived on `bearer` (the bearer actor's receive path): opened by the crypto
    /// first (with [`SimConfig::crypto`]), then classified.
    pub fn handle_frame(&mut self, now: Instant, bearer: BearerId, frame: Bytes) {
        self.stats.rx_frames += 1;
        self.sync_last_bcast();
        let b = bearer as usize;
        if b >= self.bearers.len() {
            return;
        }
        let frame = match &self.crypto {
            Some(c) => {
                self.crypto_glue.envelopes_rx += is_envelope(&frame) as u64;
                // The simulated wire has no source address (the peers use the one in the
                // discovery messages); the crypto uses it only in its log lines.
                let mut frames = vec![RxFrame {
                    src: MediaAddr::Mem(0),
                    data: frame,
                }];
                c.open(now, &mut frames);
                match frames.pop() {
                    Some(f) => {
                        self.crypto_glue.opened += 1;
                        f.data
                    }
                    None => return,
                }
            }
            None => frame,
        };
        match classify(self.addr, &frame) {
            Ok(Route::Discovery) => {
                let Some(n) = self.bearers[b].disc.handle_frame(now, &frame) else {
                    return;
                };
                let (own, own_id) = (self.addr, self.id);
                let crypto = &self.crypto;
                let peer = self.peers.entry(n.addr).or_insert_with(|| {
                    // As the peer actor when it starts.
                    if let Some(c) = crypto {
                        c.with(|c| c.add_peer(now, n.addr, n.id));
                    }
                    let mut p = Peer::new(own, own_id, n.addr, n.id, n.caps);
                    p.set_net_id(NET_ID);
                    p
                });
                let sighting = NeighborSighting {
                    media_addr: n.media_addr,
                    id: n.id,
                    caps: n.caps,
                    signature: n.signature,
                    is_request: n.is_request,
                };
                let session = self.rng.next_u32() as u16;
                let out = peer.handle_discovery(now, &self.bearers[b].params, &sighting, session);
                if out.respond && n.is_request {
                    self.bearers[b].disc.respond_to(now, &n, out.stranger);
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
        let k = self.crypto.as_ref().and_then(|c| c.poll_timeout());
        d.chain(p).chain(c).chain(k).min()
    }

    /// Our broadcast link's `last_bcast` into every peer (as the peer actor before each run).
    fn sync_last_bcast(&mut self) {
        let last = self.bcast.last_bcast();
        for p in self.peers.values_mut() {
            p.set_last_bcast(last);
        }
    }

    /// The broadcast send link.
    pub fn bcast(&self) -> &BcastLink {
        &self.bcast
    }

    /// Run every timer that is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.sync_last_bcast();
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
    ///
    /// With crypto, the crypto driver runs first (its due timers; the KEY_DISTR messages it
    /// wants sent go to the links), and every frame is sealed on its way out, as the bearers'
    /// send path does.
    pub fn drain(&mut self, now: Instant) -> (Vec<OutFrame>, Vec<(NodeAddr, PeerEvent)>) {
        self.group_pump(now);
        self.drive_crypto(now);
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
        for (&addr, p) in self.peers.iter_mut() {
            let start = frames.len();
            while let Some(t) = p.poll_transmit(&mut self.out) {
                frames.push(OutFrame {
                    bearer: t.bearer,
                    dest: Dest::Unicast(t.dest),
                    data: self.out.split_to(t.len).freeze(),
                    probe: false,
                });
            }
            seal(&self.crypto, now, &mut frames, start, Some(addr));
        }
        let start = frames.len();
        while let Some(data) = self.bcast.poll_transmit() {
            frames.push(OutFrame {
                bearer: 0,
                dest: Dest::Broadcast,
                data,
                probe: false,
            });
        }
        for (i, b) in self.bearers.iter_mut().enumerate() {
            while let Some((dest, data)) = b.disc.poll_transmit() {
                frames.push(OutFrame {
                    bearer: i as BearerId,
                    dest,
                    data,
                    probe: false,
                });
            }
        }
        seal(&self.crypto, now, &mut frames, start, None);
        if self.crypto.is_some() {
            for f in &frames {
                if is_envelope(&f.data) {
                    self.crypto_glue.sealed_sent += 1;
                } else {
                    self.crypto_glue.clear_sent += 1;
                }
            }
        }
        (frames, events)
    }

    /// One round of the crypto driver: timers due, then the key distributions it asks for
    /// on the peer's link or the broadcast link (as `actor/crypto.rs`).
    fn drive_crypto(&mut self, now: Instant) {
        let Some(c) = &self.crypto else {
            return;
        };
        let (_, events) = c.drive(now);
        for ev in events {
            match ev {
                CryptoEvent::SendKey { dest: Some(d), msg } => {
                    let sent = self
                        .peers
                        .get_mut(&d)
                        .is_some_and(|p| p.send(now, BytesMut::from(&msg[..]), 0).is_ok());
                    if sent {
                        self.crypto_glue.keys_sent_unicast += 1;
                    } else {
                        self.crypto_glue.keys_send_failed += 1;
                    }
                }
                CryptoEvent::SendKey { dest: None, msg } => {
                    match self.bcast.send(now, BytesMut::from(&msg[..])) {
                        Ok(()) => self.crypto_glue.keys_sent_bcast += 1,
                        Err(_) => self.crypto_glue.keys_send_failed += 1,
                    }
                }
                _ => {}
            }
        }
    }

    // ------------------------------------------------------------------ crypto

    /// The node's crypto, with [`SimConfig::crypto`].
    pub fn crypto(&self) -> Option<&NodeCrypto> {
        self.crypto.as_ref()
    }
    /// Install a key as `tipc node set key` does ([`NodeCrypto::set_key`]).
    pub fn set_key(&mut self, now: Instant, s: KeySetting) {
        if let Some(c) = &self.crypto {
            if let Err(e) = c.set_key(now, s) {
                panic!("node {:08x}: key refused: {e}", self.addr);
            }
        }
    }
    /// The crypto core's counters (node-wide), with [`SimConfig::crypto`].
    pub fn crypto_stats(&self) -> Option<CryptoStats> {
        self.crypto.as_ref().map(|c| c.with(|c| c.stats().clone()))
    }
    /// The crypto glue's counters.
    pub fn crypto_glue(&self) -> CryptoGlueStats {
        self.crypto_glue
    }
    /// Does the node seal what it sends?
    pub fn is_sealing(&self) -> bool {
        self.crypto.as_ref().is_some_and(|c| c.is_sealing())
    }
}
