//! The NameTable actor: the node's binding table, name distribution and service tracking
//! (kernel `name_table.c`, `name_distr.c`, `subscr.c`/`topsrv.c`), spec §7, §8.
//!
//! Every message a peer's link delivers passes through this actor in link order: a
//! NAME_DISTRIBUTOR message is applied to the table before any later message from that peer is
//! handed on. So a binding the peer published before sending a message is visible here before
//! that message is delivered (the kernel does not guarantee this since 5.10; we do).
//!
//! At node-up the actor sends our cluster-scope bindings to the peer (the bulk); at node-down it
//! purges what the peer published. It publishes our node-state binding `{0, own, own}` at start
//! and a node-scope link-state binding `{2, peer, peer}` per working link.

use crate::addr::{Scope, ServiceAddr, ServiceRange, SocketAddr};
use crate::binding::{AnycastResult, BindingError, BindingTable, Publication, TableEvent};
use crate::name_distr::{stamp_destnode, NameDistributor, Update};
use crate::node::{Delivered, Shared};
use crate::socket::{lookup_dest, replicast_copy, reverse};
use crate::sockets::{DgramError, Incoming};
use crate::topology::{ClientId, PubInfo, SubError, SubId, Subscription, TopoEvent, Topology};
use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;
use tipc_transport::wire::{field, user, DataType, ErrorCode, Header};
use tipc_transport::NodeAddr;
use tokio::sync::mpsc;

/// Messages delivered by a peer's links, in link order.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct FromPeer {
    /// The peer.
    pub from: NodeAddr,
    /// The messages.
    pub msgs: Vec<Bytes>,
}

/// A peer node came up (first link) or went down (last link).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum PeerState {
    /// Up: send it our bindings.
    Up(NodeAddr),
    /// Down: forget its bindings.
    Down(NodeAddr),
    /// A link to the peer came up: publish `{2, peer, peer}` (node scope) with this link id.
    LinkUp(NodeAddr, u32),
    /// That link went down.
    LinkDown(NodeAddr, u32),
}

/// Publish a binding of a local socket.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), BindingError>")]
pub struct Publish(pub Publication);

/// Withdraw a binding of a local socket.
#[derive(Debug, Message)]
#[rtype(result = "Option<Publication>")]
pub struct Withdraw {
    /// Exact range.
    pub range: ServiceRange,
    /// Port.
    pub port: u32,
    /// Key.
    pub key: u32,
}

/// Ask for every binding, in `nametable show` order.
#[derive(Debug, Message)]
#[rtype(result = "Vec<Publication>")]
pub struct ShowTable;

/// Subscribe to a service range; events go to `events`.
#[derive(Debug, Message)]
#[rtype(result = "Result<SubId, SubError>")]
pub struct Subscribe {
    /// The subscription.
    pub sub: Subscription,
    /// Where its events go; dropping the receiver ends the subscription.
    pub events: mpsc::UnboundedSender<TopoEvent>,
}

/// A message produced on this node that must go where its header says.
#[derive(Debug)]
pub enum Route {
    /// A rejected message on its way back to its sender (header destnode/destport).
    Returned(BytesMut),
}

/// Route a message (see [`Route`]).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RouteMsg(pub Route);

/// What a local socket sends.
#[derive(Debug)]
pub enum SendKind {
    /// A DIRECT_MSG (destination in the header).
    Direct(BytesMut),
    /// A NAMED_MSG to be resolved by anycast lookup.
    Named(BytesMut, ServiceAddr),
    /// A MCAST_MSG to replicate to every node and local socket bound in the range.
    Mcast(BytesMut, ServiceRange),
}

/// Send a message from a local socket.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), DgramError>")]
pub struct SendFromSocket(pub SendKind);

/// Counters of the name table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NameTableStats {
    /// Name-distribution messages received.
    pub distr_rx: u64,
    /// Updates applied.
    pub applied: u64,
    /// Updates the table refused (duplicates, invalid, over the limit, unknown withdrawal).
    pub refused: u64,
}

/// The actor owning the binding table.
pub struct NameTable {
    shared: Arc<Shared>,
    table: BindingTable,
    distr: NameDistributor,
    topo: Topology,
    clients: HashMap<ClientId, mpsc::UnboundedSender<TopoEvent>>,
    next_client: u64,
    up_peers: BTreeSet<NodeAddr>,
    timer: Option<SpawnHandle>,
    stats: NameTableStats,
}

impl NameTable {
    pub(crate) fn new(shared: Arc<Shared>) -> NameTable {
        let own = shared.own_addr;
        let mut table = BindingTable::new(own);
        // Our node-state binding; the kernel publishes it when its address is set.
        let _ = table.publish(Publication::node_state(own));
        // `NameDistributor::new` already accounts for the node-state publication's seqno (the
        // kernel spends seqno 0 on it before any peer exists); it travels in every bulk.
        let distr = NameDistributor::new(own);
        let mut me = NameTable {
            shared,
            table,
            distr,
            topo: Topology::new(),
            clients: HashMap::new(),
            next_client: 1,
            up_peers: BTreeSet::new(),
            timer: None,
            stats: NameTableStats::default(),
        };
        me.drain_table(Instant::now());
        me
    }

    fn peer_send(&self, peer: NodeAddr, msg: BytesMut) {
        if let Some(p) = self.shared.peers.get(&peer) {
            p.do_send(crate::peer::Post(msg));
        }
    }

    /// Table events to service tracking.
    fn drain_table(&mut self, now: Instant) {
        while let Some(ev) = self.table.poll_event() {
            match ev {
                TableEvent::Published { publ, first } => self.topo.on_published(
                    now,
                    &PubInfo {
                        range: publ.range,
                        node: publ.node,
                        port: publ.port,
                        first_of_range: first,
                    },
                ),
                TableEvent::Withdrawn { publ, last } => self.topo.on_withdrawn(
                    now,
                    &PubInfo {
                        range: publ.range,
                        node: publ.node,
                        port: publ.port,
                        first_of_range: last,
                    },
                ),
            }
        }
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        self.drain_table(now);
        while let Some((client, ev)) = self.topo.poll_event() {
            let gone = match self.clients.get(&client) {
                Some(tx) => tx.send(ev).is_err(),
                None => false,
            };
            if gone {
                self.clients.remove(&client);
                self.topo.client_gone(client);
            }
        }
        if let Some(h) = self.timer.take() {
            ctx.cancel_future(h);
        }
        if let Some(t) = self.topo.poll_timeout() {
            self.timer = Some(ctx.run_later(t.saturating_duration_since(now), |act, ctx| {
                act.timer = None;
                act.topo.handle_timeout(Instant::now());
                act.pump(ctx);
            }));
        }
    }

    fn apply(&mut self, u: Update) {
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
            self.stats.applied += 1;
        } else {
            self.stats.refused += 1;
        }
    }

    /// Send to a peer node; false if it is unknown.
    fn send_to_peer(&self, node: NodeAddr, msg: BytesMut) -> bool {
        match self.shared.peers.get(&node) {
            Some(p) => {
                // The same mailbox path as sockets' direct posts, so order is kept.
                p.do_send(crate::peer::Post(msg));
                true
            }
            None => false,
        }
    }

    /// Deliver to a local socket; `reject` a message for a port that does not exist.
    fn deliver_to_port(&mut self, port: u32, msg: Bytes, reject: bool) {
        let sock = self.shared.sockets.get(&port).map(|e| e.value().clone());
        match sock {
            Some(a) => a.do_send(Incoming(msg)),
            None => match crate::conn::deliver(&self.shared, port, msg) {
                Ok(()) => {}
                Err(msg) if reject => self.reject(&msg, ErrorCode::NoPort),
                Err(_) => {}
            },
        }
    }

    /// Return a message to its sender with an error code, unless it is droppable.
    fn reject(&mut self, msg: &[u8], err: ErrorCode) {
        if let Some(ret) = reverse(msg, err, self.shared.own_addr) {
            self.route_out(ret);
        }
    }

    /// A message built here goes to its header's destination node.
    fn route_out(&mut self, msg: BytesMut) -> bool {
        let dest = Header::new_unchecked(&msg[..]).destnode();
        if dest == self.shared.own_addr || dest == 0 {
            self.deliver_local(msg.freeze());
            true
        } else {
            self.send_to_peer(dest, msg)
        }
    }

    /// The receiving half of the socket layer (`tipc_sk_rcv`): a data message for this node.
    fn deliver_local(&mut self, msg: Bytes) {
        let own = self.shared.own_addr;
        let Ok(h) = Header::new_checked(&msg[..]) else {
            return;
        };
        if h.user() == user::CONN_MANAGER {
            // Connection protocol: to its socket, or back with NO_PORT (`tipc_sk_rcv`).
            if let Err(msg) = crate::conn::deliver(&self.shared, h.destport(), msg) {
                self.reject(&msg, ErrorCode::NoPort);
            }
            return;
        }
        if h.user() > user::CRITICAL {
            return;
        }
        let destport = h.destport();
        if h.errcode() != 0 {
            // One of our messages coming back: to the socket that sent it, never re-rejected.
            self.deliver_to_port(destport, msg, false);
            return;
        }
        match DataType::from_u8(h.mtype()) {
            Ok(DataType::Direct) => self.deliver_to_port(destport, msg, true),
            Ok(DataType::Named) => {
                if destport != 0
                    && (self.shared.sockets.contains_key(&destport)
                        || self.shared.conns.contains_key(&destport))
                {
                    self.deliver_to_port(destport, msg, true);
                    return;
                }
                let mut m = BytesMut::from(&msg[..]);
                let table = &mut self.table;
                match lookup_dest(&mut m, own, |sa, scope| table.lookup_secondary(sa, scope)) {
                    Ok(sock) if sock.node == own => {
                        self.deliver_to_port(sock.port, m.freeze(), true)
                    }
                    Ok(sock) => {
                        if !self.send_to_peer(sock.node, m) {
                            self.reject(&msg, ErrorCode::NoNode);
                        }
                    }
                    Err(e) => self.reject(&msg, e),
                }
            }
            Ok(DataType::Mcast) => {
                let range = ServiceRange {
                    type_: h.get(field::NAMETYPE),
                    lower: h.get(field::NAMEINST),
                    upper: h.get(field::NAMEUPPER),
                };
                let from_local = h.orignode() == own;
                for port in self.table.lookup_mcast_local_ports(range, from_local) {
                    self.deliver_to_port(port, msg.clone(), false);
                }
            }
            Ok(DataType::Conn) => self.deliver_to_port(destport, msg, true),
            // Group messages to a connectionless world: NO_PORT.
            _ => self.reject(&msg, ErrorCode::NoPort),
        }
    }

    /// Our cluster-scope publications (for the bulk).
    fn own_cluster_bindings(&self) -> Vec<Publication> {
        self.table
            .bindings_of_node(self.shared.own_addr)
            .into_iter()
            .filter(|p| p.scope == Scope::Cluster)
            .collect()
    }
}

impl Actor for NameTable {
    type Context = Context<Self>;
}

impl Handler<FromPeer> for NameTable {
    type Result = ();

    fn handle(&mut self, m: FromPeer, ctx: &mut Self::Context) {
        let deliver = self.shared.deliver.read().ok().and_then(|d| d.clone());
        for msg in m.msgs {
            let usr = Header::new_unchecked(&msg[..]).user();
            if usr == user::NAME_DISTRIBUTOR {
                self.stats.distr_rx += 1;
                for u in self.distr.receive(m.from, &msg) {
                    self.apply(u);
                }
            } else if let Some(tx) = &deliver {
                // Raw transport mode (tests, benchmarks): every message to the hook.
                let _ = tx.send(Delivered { from: m.from, msg });
            } else {
                self.deliver_local(msg);
            }
        }
        self.pump(ctx);
    }
}

impl Handler<PeerState> for NameTable {
    type Result = ();

    fn handle(&mut self, m: PeerState, ctx: &mut Self::Context) {
        match m {
            PeerState::Up(peer) => {
                self.up_peers.insert(peer);
                let own = self.own_cluster_bindings();
                // One item list per message up to the smallest bearer MTU we may use.
                let mss = self
                    .shared
                    .bearers
                    .read()
                    .ok()
                    .and_then(|b| b.iter().flatten().map(|s| s.info.params.mtu).min())
                    .unwrap_or(1500)
                    .saturating_sub(2 * tipc_transport::wire::INT_H_SIZE);
                for msg in self.distr.bulk(peer, own.iter(), mss) {
                    self.peer_send(peer, msg);
                }
            }
            PeerState::Down(peer) => {
                self.up_peers.remove(&peer);
                crate::conn::node_down(&self.shared, peer);
                self.distr.node_down(peer);
                let gone = self.table.purge_node(peer);
                self.stats.applied += gone.len() as u64;
            }
            PeerState::LinkUp(peer, link_id) => {
                let own = self.shared.own_addr;
                let _ = self
                    .table
                    .publish(Publication::link_state(own, peer, link_id));
            }
            PeerState::LinkDown(peer, link_id) => {
                let p = Publication::link_state(self.shared.own_addr, peer, link_id);
                let _ = self.table.withdraw(p.range, p.node, p.port, p.key);
            }
        }
        self.pump(ctx);
    }
}

impl Handler<Publish> for NameTable {
    type Result = Result<(), BindingError>;

    fn handle(&mut self, m: Publish, ctx: &mut Self::Context) -> Self::Result {
        self.table.publish(m.0)?;
        if let Some((_, msg)) = self.distr.publish(&m.0) {
            for &peer in &self.up_peers {
                let mut copy = msg.clone();
                stamp_destnode(&mut copy, peer);
                self.peer_send(peer, copy);
            }
        }
        self.pump(ctx);
        Ok(())
    }
}

impl Handler<Withdraw> for NameTable {
    type Result = Option<Publication>;

    fn handle(&mut self, m: Withdraw, ctx: &mut Self::Context) -> Self::Result {
        let p = self
            .table
            .withdraw(m.range, self.shared.own_addr, m.port, m.key)?;
        if let Some((_, msg)) = self.distr.withdraw(&p) {
            for &peer in &self.up_peers {
                let mut copy = msg.clone();
                stamp_destnode(&mut copy, peer);
                self.peer_send(peer, copy);
            }
        }
        self.pump(ctx);
        Some(p)
    }
}

impl Handler<ShowTable> for NameTable {
    type Result = Vec<Publication>;

    fn handle(&mut self, _: ShowTable, _: &mut Self::Context) -> Vec<Publication> {
        self.table.iter().copied().collect()
    }
}

impl Handler<Subscribe> for NameTable {
    type Result = Result<SubId, SubError>;

    fn handle(&mut self, m: Subscribe, ctx: &mut Self::Context) -> Self::Result {
        let client = ClientId(self.next_client);
        self.next_client += 1;
        let existing: Vec<PubInfo> = self
            .table
            .subscription_snapshot(m.sub.range, true)
            .into_iter()
            .map(|p| PubInfo {
                range: p.range,
                node: p.node,
                port: p.port,
                first_of_range: false,
            })
            .collect();
        let id = self
            .topo
            .subscribe(Instant::now(), m.sub, client, existing)?;
        self.clients.insert(client, m.events);
        self.pump(ctx);
        Ok(id)
    }
}

impl Handler<RouteMsg> for NameTable {
    type Result = ();

    fn handle(&mut self, m: RouteMsg, _: &mut Self::Context) {
        match m.0 {
            Route::Returned(msg) => {
                self.route_out(msg);
            }
        }
    }
}

impl Handler<SendFromSocket> for NameTable {
    type Result = Result<(), DgramError>;

    fn handle(&mut self, m: SendFromSocket, _: &mut Self::Context) -> Self::Result {
        let own = self.shared.own_addr;
        match m.0 {
            SendKind::Direct(msg) => {
                if self.route_out(msg) {
                    Ok(())
                } else {
                    Err(DgramError::NoNode)
                }
            }
            SendKind::Named(mut msg, name) => {
                let dest = match self.table.lookup_anycast(name, 0) {
                    AnycastResult::Found(sock) => sock,
                    AnycastResult::Deferred(node) => SocketAddr { node, port: 0 },
                    AnycastResult::NotFound => return Err(DgramError::NoDestination),
                };
                {
                    let mut h = Header::new_unchecked(&mut msg[..]);
                    h.set(field::DESTNODE, dest.node);
                    h.set(field::DESTPORT, dest.port);
                }
                if dest.node == own {
                    self.deliver_local(msg.freeze());
                    Ok(())
                } else if self.send_to_peer(dest.node, msg) {
                    Ok(())
                } else {
                    Err(DgramError::NoNode)
                }
            }
            SendKind::Mcast(msg, range) => {
                let nodes = self.table.lookup_mcast_nodes(range, true);
                let ports = self.table.lookup_mcast_local_ports(range, true);
                if nodes.is_empty() && ports.is_empty() {
                    return Err(DgramError::NoDestination);
                }
                for n in nodes {
                    if let Some(copy) = replicast_copy(&msg, n) {
                        self.send_to_peer(n, copy);
                    }
                }
                let b = msg.freeze();
                for port in ports {
                    self.deliver_to_port(port, b.clone(), false);
                }
                Ok(())
            }
        }
    }
}

/// The socket address of a publication, for display.
pub fn publication_socket(p: &Publication) -> SocketAddr {
    p.socket()
}
