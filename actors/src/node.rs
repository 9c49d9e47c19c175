//! The node's transport registry (kernel `net.c`, `node.c` node table, `bearer.c` bearer list):
//! identity, bearers, one [`PeerActor`] per remote node, management queries and node events.

use crate::bearer::{BearerActor, BearerCmd, BearerStats, BearerStatsQuery};
use crate::peer::{PeerActor, PeerQuery, PeerSnapshot, Shutdown};
use actix::prelude::*;
use bytes::Bytes;
use dashmap::DashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tipc_transport::link::LinkSnapshot;
use tipc_transport::media::Media;
use tipc_transport::peer::BearerParams;
use tipc_transport::{BearerId, NodeAddr, NodeId, MAX_BEARERS};
use tokio::sync::{broadcast, mpsc};

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

/// A message delivered by a peer's link, for the upper layers.
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

/// One link, for `link list` and `link stat show`.
#[derive(Debug, Clone)]
pub struct LinkInfo {
    /// Peer node address.
    pub peer: NodeAddr,
    /// Bearer id.
    pub bearer: BearerId,
    /// Snapshot.
    pub link: LinkSnapshot,
}

/// One peer node, for `node list`.
#[derive(Debug, Clone)]
pub struct NodeInfo {
    /// Node address.
    pub addr: NodeAddr,
    /// Node identity.
    pub id: NodeId,
    /// Up or down.
    pub up: bool,
    /// Node-level counters.
    pub stats: tipc_transport::peer::PeerStats,
}

/// Congestion state of one peer, shared by its actor and the senders posting to it.
#[derive(Debug, Default)]
pub struct PeerFlow {
    /// The peer's link is congested (or messages are parked): senders wait.
    pub congested: std::sync::atomic::AtomicBool,
    /// Woken when the congestion clears (or the peer goes down).
    pub notify: tokio::sync::Notify,
    /// Messages posted so far (a round trip every [`POST_BARRIER`] keeps the mailbox short).
    pub posted: std::sync::atomic::AtomicU64,
    /// Messages the peer's actor sent to the name table ([`crate::names::FromPeer`],
    /// [`crate::names::PeerState`]) that it has not handled yet. While this is not zero, the
    /// peer actor routes delivered data through the name table too, to keep link order with
    /// the name updates before it.
    pub at_names: std::sync::atomic::AtomicUsize,
    /// Messages for the peer's link, in order, waiting for its actor (see
    /// [`Shared::enqueue_to_peer`]).
    pub(crate) queue: std::sync::Mutex<std::collections::VecDeque<bytes::BytesMut>>,
    /// A [`crate::peer::Drain`] is in the actor's mailbox.
    pub(crate) drain_scheduled: std::sync::atomic::AtomicBool,
    /// The current actor's link core, for senders that offer to it directly.
    links: std::sync::Mutex<Option<Arc<std::sync::Mutex<crate::peer::PeerLinks>>>>,
}

/// Wait while the peer's link is congested (or messages are parked for it). The common case
/// (not congested) builds no `Notified` future.
pub(crate) async fn wait_uncongested(flow: &PeerFlow) {
    use std::sync::atomic::Ordering;
    while flow.congested.load(Ordering::Acquire) {
        let notified = flow.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !flow.congested.load(Ordering::Acquire) {
            break;
        }
        notified.await;
    }
}

impl PeerFlow {
    /// The link core of the peer's current actor.
    pub(crate) fn links(&self) -> Option<Arc<std::sync::Mutex<crate::peer::PeerLinks>>> {
        self.links.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Set by a new actor for this peer.
    pub(crate) fn set_links(&self, l: Option<Arc<std::sync::Mutex<crate::peer::PeerLinks>>>) {
        *self.links.lock().unwrap_or_else(|p| p.into_inner()) = l;
    }

    /// One more message on its way to the name table.
    pub(crate) fn sent_to_names(&self) {
        self.at_names
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// The name table handled one of them.
    pub(crate) fn handled_at_names(&self) {
        let _ = self.at_names.fetch_update(
            std::sync::atomic::Ordering::AcqRel,
            std::sync::atomic::Ordering::Acquire,
            |n| n.checked_sub(1),
        );
    }

    /// Nothing from this peer is waiting at the name table.
    pub(crate) fn names_idle(&self) -> bool {
        self.at_names.load(std::sync::atomic::Ordering::Acquire) == 0
    }
}

/// A poster waits for the peer actor every this many messages, so that at most this many
/// messages sit in its mailbox before congestion can be seen.
pub const POST_BARRIER: u64 = 64;

/// State shared by the node's actors.
pub(crate) struct Shared {
    pub own_addr: NodeAddr,
    pub cfg: TransportConfig,
    pub signature: u16,
    pub peers: DashMap<NodeAddr, Addr<PeerActor>>,
    pub bearers: RwLock<Vec<Option<BearerSlot>>>,
    pub events: broadcast::Sender<NodeEvent>,
    pub deliver: RwLock<Option<mpsc::UnboundedSender<Delivered>>>,
    pub rng: std::sync::Mutex<rand_chacha::ChaCha8Rng>,
    /// Per-peer wake-up for senders waiting out link congestion.
    pub unblocked: DashMap<NodeAddr, Arc<tokio::sync::Notify>>,
    /// Per-peer congestion state for fire-and-forget senders ([`TransportNode::post`]).
    pub flow: DashMap<NodeAddr, Arc<PeerFlow>>,
    /// The binding table actor (set once at start).
    pub names: std::sync::OnceLock<Addr<crate::names::NameTable>>,
    /// The binding table. Updated by the name table actor only; read (and rotated, for
    /// anycast round-robin) by sends and deliveries. Never held across an `await`.
    pub table: std::sync::Mutex<crate::binding::BindingTable>,
    /// Identities of known peer nodes (for display).
    pub node_ids: DashMap<NodeAddr, NodeId>,
    /// Local sockets by port.
    pub sockets: DashMap<u32, Arc<crate::sockets::SocketInbox>>,
    /// Local connection sockets (listeners and connections) by port.
    pub conns: DashMap<u32, crate::conn::ConnEntry>,
    /// Capabilities of known peer nodes (connection flow control, SYN bit).
    pub node_caps: DashMap<NodeAddr, u16>,
    /// Next port number to try.
    pub next_port: std::sync::atomic::AtomicU32,
}

#[derive(Clone)]
pub(crate) struct BearerSlot {
    pub info: BearerInfo,
    pub tx: Arc<crate::bearer::TxPath>,
    pub ctl: Recipient<BearerCmd>,
    pub stats: Recipient<BearerStatsQuery>,
}

impl Shared {
    pub fn random_u16(&self) -> u16 {
        use rand_core::RngCore;
        match self.rng.lock() {
            Ok(mut r) => r.next_u32() as u16,
            Err(p) => p.into_inner().next_u32() as u16,
        }
    }

    /// This peer's flow state (created on first use).
    pub fn flow_of(&self, peer: NodeAddr) -> Arc<PeerFlow> {
        match self.flow.get(&peer) {
            Some(f) => f.value().clone(),
            None => self.flow.entry(peer).or_default().clone(),
        }
    }

    /// Queue a complete message for a peer's link, in order with everything else queued for
    /// it, and make sure its actor drains the queue: a burst of messages costs one mailbox
    /// message and one pass of the actor. False if the peer is unknown.
    pub fn enqueue_to_peer(&self, peer: NodeAddr, msg: bytes::BytesMut) -> bool {
        let Some(actor) = self.peers.get(&peer) else {
            return false;
        };
        self.enqueue_with(&actor, &self.flow_of(peer), msg, true);
        true
    }

    /// Like [`Shared::enqueue_to_peer`], but never sent from the caller's task: the message
    /// waits for the peer actor's next drain, so whatever the caller queues for the peer
    /// before it yields leaves bundled with it (an accepted connection's ACK, then the
    /// acceptor's first reply and FIN).
    pub fn enqueue_to_peer_deferred(&self, peer: NodeAddr, msg: bytes::BytesMut) -> bool {
        let Some(actor) = self.peers.get(&peer) else {
            return false;
        };
        self.enqueue_with(&actor, &self.flow_of(peer), msg, false);
        true
    }

    ///
    /// When nothing is queued, no drain is pending and the peer is not congested (so nothing
    /// is parked either), the message is offered to the link core right here and its frames
    /// go out from this task ([`crate::peer::send_inline`]): no actor hop on a request/reply
    /// path. The queue lock is held meanwhile, so a later message cannot overtake it.
    fn enqueue_with(
        &self,
        actor: &Addr<PeerActor>,
        flow: &PeerFlow,
        msg: bytes::BytesMut,
        inline: bool,
    ) {
        use crate::peer::Inline;
        use std::sync::atomic::Ordering;
        let mut q = flow.queue.lock().unwrap_or_else(|p| p.into_inner());
        let msg = if inline
            && may_send_inline(
                !q.is_empty(),
                flow.drain_scheduled.load(Ordering::Acquire),
                flow.congested.load(Ordering::Acquire),
            ) {
            match crate::peer::send_inline(self, flow, msg) {
                Inline::Sent => return,
                Inline::SentDrain => {
                    drop(q);
                    if !flow.drain_scheduled.swap(true, Ordering::AcqRel) {
                        actor.do_send(crate::peer::Drain);
                    }
                    return;
                }
                Inline::Refused(m) => m,
            }
        } else {
            msg
        };
        q.push_back(msg);
        drop(q);
        if !flow.drain_scheduled.swap(true, Ordering::AcqRel) {
            actor.do_send(crate::peer::Drain);
        }
    }

    /// The binding table (a poisoned lock is taken over: the table has no invariants a panic
    /// between two calls could break).
    pub fn table(&self) -> std::sync::MutexGuard<'_, crate::binding::BindingTable> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn bearer(&self, id: BearerId) -> Option<BearerSlot> {
        let b = self.bearers.read().ok()?;
        b.get(id as usize).cloned().flatten()
    }
}

/// May a message for a peer skip its queue and go to the link from the sender's task? Only
/// if that cannot overtake anything: nothing is queued, no drain is pending (the actor may be
/// about to offer what it took), and the peer is not congested (nothing is parked).
fn may_send_inline(queued: bool, drain_pending: bool, congested: bool) -> bool {
    !queued && !drain_pending && !congested
}

/// Errors of the transport node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// All bearer slots are used.
    #[error("a node has at most {MAX_BEARERS} bearers")]
    TooManyBearers,
    /// A bearer with that name exists.
    #[error("bearer {0} already enabled")]
    DuplicateBearer(String),
    /// The actor system is gone.
    #[error("node stopped")]
    Stopped,
}

/// A running node's transport layer. Cheap to clone.
#[derive(Clone)]
pub struct TransportNode {
    shared: Arc<Shared>,
}

impl TransportNode {
    /// Create the node (no bearers yet). Must be called inside an actix System.
    pub fn new(cfg: TransportConfig) -> TransportNode {
        use rand_core::{RngCore, SeedableRng};
        let seed = cfg.seed.unwrap_or_else(|| {
            let mut b = [0u8; 8];
            // Any failure here leaves a fixed seed, which only makes signatures predictable.
            let _ = std::fs::File::open("/dev/urandom")
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b));
            u64::from_le_bytes(b) ^ std::process::id() as u64
        });
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let signature = rng.next_u32() as u16;
        // Ports start at a random value and increase, skipping 0 (`tipc_sk_insert`).
        let port_start = rng.next_u32().max(1);
        let (events, _) = broadcast::channel(1024);
        let own = cfg.id.hash();
        let node = TransportNode {
            shared: Arc::new(Shared {
                own_addr: own,
                cfg,
                signature,
                peers: DashMap::new(),
                bearers: RwLock::new(vec![None; MAX_BEARERS]),
                events,
                deliver: RwLock::new(None),
                rng: std::sync::Mutex::new(rng),
                unblocked: DashMap::new(),
                flow: DashMap::new(),
                names: std::sync::OnceLock::new(),
                table: std::sync::Mutex::new(crate::binding::BindingTable::new(own)),
                node_ids: DashMap::new(),
                sockets: DashMap::new(),
                conns: DashMap::new(),
                node_caps: DashMap::new(),
                next_port: std::sync::atomic::AtomicU32::new(port_start),
            }),
        };
        let names = crate::names::NameTable::new(node.shared.clone()).start();
        let _ = node.shared.names.set(names);
        node
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Own node address.
    pub fn addr(&self) -> NodeAddr {
        self.shared.own_addr
    }

    /// Own identity.
    pub fn id(&self) -> NodeId {
        self.shared.cfg.id
    }

    /// Subscribe to transport events.
    pub fn events(&self) -> broadcast::Receiver<NodeEvent> {
        self.shared.events.subscribe()
    }

    /// Route messages delivered by links to this channel (upper layers).
    pub fn set_delivery(&self, tx: mpsc::UnboundedSender<Delivered>) {
        if let Ok(mut d) = self.shared.deliver.write() {
            *d = Some(tx);
        }
    }

    /// Enable a bearer on a media. `if_name` is the part after the media prefix in its name.
    pub fn enable_bearer<M: Media>(
        &self,
        media: M,
        if_name: &str,
        max_win: u16,
    ) -> Result<BearerInfo, TransportError> {
        let name = format!("{}:{}", media.kind().name(), if_name);
        let mut bearers = self
            .shared
            .bearers
            .write()
            .map_err(|_| TransportError::Stopped)?;
        if bearers.iter().flatten().any(|b| b.info.name == name) {
            return Err(TransportError::DuplicateBearer(name));
        }
        let id = bearers
            .iter()
            .position(|b| b.is_none())
            .ok_or(TransportError::TooManyBearers)? as BearerId;
        let encap_hlen = match media.local_addr() {
            tipc_transport::MediaAddr::Udp(sa) if sa.is_ipv4() => 28,
            tipc_transport::MediaAddr::Udp(_) => 48,
            _ => 0,
        };
        let params = BearerParams {
            id,
            if_name: if_name.to_string(),
            mtu: media.mtu(),
            encap_hlen,
            tolerance: self.shared.cfg.tolerance,
            priority: self.shared.cfg.priority,
            min_win: 50,
            max_win,
        };
        let info = BearerInfo {
            id,
            name,
            media_addr: media.local_addr().to_string(),
            params,
        };
        let (addr, tx) = BearerActor::start_on(self.shared.clone(), info.clone(), media);
        bearers[id as usize] = Some(BearerSlot {
            info: info.clone(),
            tx,
            ctl: addr.clone().recipient(),
            stats: addr.recipient(),
        });
        Ok(info)
    }

    /// The node's bearers.
    pub fn bearers(&self) -> Vec<BearerInfo> {
        self.shared
            .bearers
            .read()
            .map(|b| b.iter().flatten().map(|s| s.info.clone()).collect())
            .unwrap_or_default()
    }

    /// Counters of a bearer (None if there is no such bearer).
    pub async fn bearer_stats(&self, id: BearerId) -> Option<BearerStats> {
        let slot = self.shared.bearer(id)?;
        slot.stats.send(BearerStatsQuery).await.ok()
    }

    /// Snapshot of every peer and its links.
    pub async fn peers(&self) -> Vec<PeerSnapshot> {
        let addrs: Vec<Addr<PeerActor>> = self
            .shared
            .peers
            .iter()
            .map(|e| e.value().clone())
            .collect();
        let mut out = Vec::with_capacity(addrs.len());
        for a in addrs {
            if let Ok(s) = a.send(PeerQuery).await {
                out.push(s);
            }
        }
        out.sort_by_key(|p| p.addr);
        out
    }

    /// Peer nodes, for `node list`.
    pub async fn nodes(&self) -> Vec<NodeInfo> {
        self.peers()
            .await
            .into_iter()
            .map(|p| NodeInfo {
                addr: p.addr,
                id: p.id,
                up: p.up,
                stats: p.stats,
            })
            .collect()
    }

    /// All links, for `link list`.
    pub async fn links(&self) -> Vec<LinkInfo> {
        let mut v: Vec<LinkInfo> = self
            .peers()
            .await
            .into_iter()
            .flat_map(|p| {
                let peer = p.addr;
                p.links
                    .into_iter()
                    .map(move |(bearer, link)| LinkInfo { peer, bearer, link })
            })
            .collect();
        v.sort_by(|a, b| a.link.name.cmp(&b.link.name));
        v
    }

    /// Send a complete TIPC message to a peer node over its active link. `selector` (the
    /// sender's port) picks among equal-priority links. The message is handed back in the error
    /// if the node is unknown or down, or if the link refuses it (congestion).
    pub async fn send(
        &self,
        to: NodeAddr,
        msg: bytes::BytesMut,
        selector: u32,
    ) -> Result<tipc_transport::link::SendStatus, tipc_transport::link::SendError> {
        use tipc_transport::link::SendError;
        let Some(p) = self.shared.peers.get(&to).map(|e| e.value().clone()) else {
            return Err(SendError::NotUp(msg));
        };
        match p.send(crate::peer::SendMsg { msg, selector }).await {
            Ok(r) => r,
            Err(_) => Err(SendError::NotUp(bytes::BytesMut::new())),
        }
    }

    /// Post a complete message to a peer node without waiting for the peer actor (the fast path
    /// of socket sends): waits only while the peer's link is congested, and every
    /// [`POST_BARRIER`] messages for the actor to catch up. A message the link refuses is parked
    /// in the peer actor until the congestion clears; one for a peer that is down is rejected
    /// back to its sender with NO_NODE (if returnable).
    pub async fn post(&self, to: NodeAddr, msg: bytes::BytesMut) -> bool {
        let flow = self.shared.flow_of(to);
        wait_uncongested(&flow).await;
        {
            let Some(peer) = self.shared.peers.get(&to) else {
                return false;
            };
            self.shared.enqueue_with(&peer, &flow, msg, true);
        }
        self.post_barrier(to, &flow).await;
        true
    }

    /// Count one message posted to `to`; every [`POST_BARRIER`]th waits for its actor to
    /// catch up.
    pub(crate) async fn post_barrier(&self, to: NodeAddr, flow: &PeerFlow) {
        use std::sync::atomic::Ordering;
        if flow.posted.fetch_add(1, Ordering::Relaxed) % POST_BARRIER != POST_BARRIER - 1 {
            return;
        }
        let peer = self.shared.peers.get(&to).map(|p| p.value().clone());
        if let Some(peer) = peer {
            let _ = peer.send(crate::peer::Barrier).await;
        }
    }

    /// Like [`TransportNode::send`], but waits while the link is congested instead of failing,
    /// as a blocking socket does. Fails only if the peer is unknown or down.
    pub async fn send_wait(
        &self,
        to: NodeAddr,
        mut msg: bytes::BytesMut,
        selector: u32,
    ) -> Result<(), tipc_transport::link::SendError> {
        use tipc_transport::link::{SendError, SendStatus};
        loop {
            let notify = self
                .shared
                .unblocked
                .entry(to)
                .or_insert_with(|| Arc::new(tokio::sync::Notify::new()))
                .clone();
            match self.send(to, msg, selector).await {
                Ok(SendStatus::Accepted) => return Ok(()),
                Ok(SendStatus::Congested) => {
                    notify.notified().await;
                    return Ok(());
                }
                Err(SendError::Congested(m)) => {
                    notify.notified().await;
                    msg = m;
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn names(&self) -> Result<&Addr<crate::names::NameTable>, TransportError> {
        self.shared.names.get().ok_or(TransportError::Stopped)
    }

    /// Every binding in the table (`nametable show` order).
    pub async fn nametable(&self) -> Vec<crate::binding::Publication> {
        match self.names() {
            Ok(a) => a.send(crate::names::ShowTable).await.unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    /// The identity of a node (own or a known peer).
    pub fn node_id(&self, addr: NodeAddr) -> Option<NodeId> {
        if addr == self.shared.own_addr {
            return Some(self.shared.cfg.id);
        }
        self.shared.node_ids.get(&addr).map(|e| *e.value())
    }

    /// Publish a binding of a local socket (distributed to the cluster if cluster scope).
    pub async fn publish(
        &self,
        p: crate::binding::Publication,
    ) -> Result<(), crate::binding::BindingError> {
        match self.names() {
            Ok(a) => a
                .send(crate::names::Publish(p))
                .await
                .unwrap_or(Err(crate::binding::BindingError::LimitReached)),
            Err(_) => Err(crate::binding::BindingError::LimitReached),
        }
    }

    /// Withdraw a binding of a local socket.
    pub async fn withdraw(
        &self,
        range: crate::addr::ServiceRange,
        port: u32,
        key: u32,
    ) -> Option<crate::binding::Publication> {
        let a = self.names().ok()?;
        a.send(crate::names::Withdraw { range, port, key })
            .await
            .ok()
            .flatten()
    }

    /// Subscribe to a service range: events arrive on the returned channel (initial matches
    /// first). Dropping the receiver ends the subscription.
    pub async fn subscribe(
        &self,
        sub: crate::topology::Subscription,
    ) -> Result<mpsc::UnboundedReceiver<crate::topology::TopoEvent>, crate::topology::SubError>
    {
        let (tx, rx) = mpsc::unbounded_channel();
        let a = self
            .names()
            .map_err(|_| crate::topology::SubError::TooManySubscriptions)?;
        match a.send(crate::names::Subscribe { sub, events: tx }).await {
            Ok(Ok(_)) => Ok(rx),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(crate::topology::SubError::TooManySubscriptions),
        }
    }

    /// Open a connectionless (RDM) socket on a fresh port.
    pub fn dgram_socket(&self) -> crate::sockets::DgramSocket {
        self.datagram_socket(crate::sockets::DgramKind::Rdm)
    }

    /// Open a connectionless socket of `kind` (`SOCK_RDM` or `SOCK_DGRAM`) on a fresh port.
    pub fn datagram_socket(&self, kind: crate::sockets::DgramKind) -> crate::sockets::DgramSocket {
        crate::sockets::DgramSocket::open(self.clone(), self.alloc_port(), kind)
    }

    /// A fresh port for a socket.
    pub(crate) fn alloc_port(&self) -> u32 {
        use std::sync::atomic::Ordering;
        loop {
            let p = self.shared.next_port.fetch_add(1, Ordering::Relaxed);
            if p != 0
                && !self.shared.sockets.contains_key(&p)
                && !self.shared.conns.contains_key(&p)
            {
                return p;
            }
        }
    }

    pub(crate) fn register_socket(&self, port: u32, a: Arc<crate::sockets::SocketInbox>) {
        self.shared.sockets.insert(port, a);
    }

    pub(crate) fn unregister_socket(&self, port: u32) {
        self.shared.sockets.remove(&port);
    }

    /// Ports of the local sockets (`socket list`).
    pub fn socket_ports(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self.shared.sockets.iter().map(|e| *e.key()).collect();
        v.sort_unstable();
        v
    }

    pub(crate) async fn send_from_socket(
        &self,
        kind: crate::names::SendKind,
    ) -> Result<(), crate::sockets::DgramError> {
        let a = self
            .shared
            .names
            .get()
            .ok_or(crate::sockets::DgramError::Stopped)?;
        a.send(crate::names::SendFromSocket(kind))
            .await
            .unwrap_or(Err(crate::sockets::DgramError::Stopped))
    }

    /// Stop: every link tells its peer (RESET with `peer_stopping`), then bearers close.
    pub async fn shutdown(&self) {
        let addrs: Vec<Addr<PeerActor>> = self
            .shared
            .peers
            .iter()
            .map(|e| e.value().clone())
            .collect();
        for a in addrs {
            let _ = a.send(Shutdown).await;
        }
        let bearers: Vec<BearerSlot> = self
            .shared
            .bearers
            .read()
            .map(|b| b.iter().flatten().cloned().collect())
            .unwrap_or_default();
        for b in bearers {
            let _ = b.ctl.send(BearerCmd::Flush).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::may_send_inline;

    #[test]
    fn may_send_inline_when_nothing_queued_pending_or_congested() {
        assert!(may_send_inline(false, false, false));
    }

    #[test]
    fn may_send_inline_refused_behind_queued_pending_or_parked_messages() {
        assert!(
            !may_send_inline(true, false, false),
            "queued messages first"
        );
        assert!(
            !may_send_inline(false, true, false),
            "a drain may hold taken messages"
        );
        assert!(
            !may_send_inline(false, false, true),
            "parked messages first"
        );
    }
}
