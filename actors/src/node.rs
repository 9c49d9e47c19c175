//! The node facade (kernel `net.c`, and the management side of `node.c` and `bearer.c`):
//! [`TransportNode`] starts the node's actors, enables bearers, opens sockets, answers
//! management queries and publishes node events. It is the top of the crate: it wires the
//! actors into the node context ([`crate::ctx`]) and never decides protocol state itself.

use crate::actor::bearer::BearerActor;
use crate::addr::ServiceRange;
use crate::ctx::{
    now, BearerInfo, BearerSlot, Delivered, NodeCtx, NodeEvent, SocketInfo, TransportConfig,
};
use crate::flow::lock_links;
use crate::msg::{
    BearerCmd, BearerStats, BearerStatsQuery, NameStats, NamesStatsQuery, PeerQuery, PeerSnapshot,
    ShowTable, Shutdown, Subscribe,
};
use crate::name_table::Publication;
use crate::send::schedule_drain;
use crate::sock::conn::{ConnDest, ConnError, ConnKind, ConnectOptions, Connection, Listener};
use crate::sock::dgram::{DgramKind, DgramSocket};
use crate::sock::group::{GroupMember, GroupSpec, JoinError};
use crate::socket::rcv::RcvStats;
use crate::socket::BindError;
use crate::topsrv::{SubError, Subscription, TopoEvent};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use tipc_transport::crypto::{CryptoError, CryptoStats, KeySetting, KeyState};
use tipc_transport::link::LinkSnapshot;
use tipc_transport::link::{SendError, SendStatus};
use tipc_transport::media::Media;
use tipc_transport::peer::BearerParams;
use tipc_transport::{BearerId, NodeAddr, NodeId, MAX_BEARERS};
use tokio::sync::{broadcast, mpsc};

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

/// What the node dropped from the network, by cause, over its bearers and peers (those
/// forgotten included): `tipcctl node stat`'s `network dropped:` line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetDrops {
    /// Frames failing header validation, and malformed discovery messages.
    pub malformed: u64,
    /// Frames for another node, or with our own address (or 0) as their previous node.
    pub misrouted: u64,
    /// Link packets from nodes we have no peer for.
    pub unknown_peer: u64,
    /// Discovery messages of another network id.
    pub wrong_network: u64,
    /// Discovery messages with our own address, or from another media address for a peer
    /// whose link is up (another node with its identity or address).
    pub duplicate_address: u64,
    /// Link packets naming a peer but coming from another media address than its link's.
    pub spoofed_source: u64,
    /// Discovery messages from new nodes refused at the peer limit.
    pub peer_limit: u64,
    /// Frames not sent to peers that never answered (responses over the rate limit, link
    /// frames no discovery message paid for).
    pub stranger_limited: u64,
    /// Name-distribution items naming another node than the peer that sent them.
    pub foreign_names: u64,
}

/// The node's encryption state, for `tipcctl node crypto` and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CryptoInfo {
    /// Frames are sealed (the TX side holds a key).
    pub sealing: bool,
    /// A master key is set.
    pub master: bool,
    /// Own TX slots (pending, active, passive; 0 = none).
    pub tx: KeyState,
    /// Node-wide counters (drops by reason: decrypt failed, replayed, no key, plaintext...).
    pub stats: CryptoStats,
    /// Each known peer's receive side: its RX slots and counters.
    pub peers: Vec<(NodeAddr, KeyState, CryptoStats)>,
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
    ctx: Arc<NodeCtx>,
}

impl TransportNode {
    /// Create the node (no bearers yet). Must be called inside an actix System.
    pub fn new(cfg: TransportConfig) -> TransportNode {
        let seed = cfg.seed.unwrap_or_else(|| {
            let mut b = [0u8; 8];
            // Any failure here leaves a fixed seed, which only makes signatures predictable.
            let _ = std::fs::File::open("/dev/urandom")
                .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut b));
            u64::from_le_bytes(b) ^ std::process::id() as u64
        });
        let ctx = Arc::new(NodeCtx::new(cfg, seed, crate::actor::peer::start));
        let names = crate::actor::name_table::start(&ctx);
        crate::actor::crypto::spawn_driver(&ctx);
        let _ = ctx.names.set(names);
        TransportNode { ctx }
    }

    /// Own node address.
    pub fn addr(&self) -> NodeAddr {
        self.ctx.own_addr
    }

    /// Own identity.
    pub fn id(&self) -> NodeId {
        self.ctx.cfg.id
    }

    /// Subscribe to transport events.
    pub fn events(&self) -> broadcast::Receiver<NodeEvent> {
        self.ctx.events.subscribe()
    }

    /// Raw transport mode (tests, benchmarks): every data message delivered by a link goes to
    /// this channel instead of to the sockets.
    pub fn set_delivery(&self, tx: mpsc::UnboundedSender<Delivered>) {
        if let Ok(mut d) = self.ctx.deliver.write() {
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
            .ctx
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
            tolerance: self.ctx.cfg.tolerance,
            priority: self.ctx.cfg.priority,
            min_win: 50,
            max_win,
        };
        let info = BearerInfo {
            id,
            name,
            media_addr: media.local_addr().to_string(),
            params,
        };
        let (addr, tx) = BearerActor::start_on(self.ctx.clone(), info.clone(), media);
        bearers[id as usize] = Some(BearerSlot {
            info: info.clone(),
            tx,
            ctl: addr.clone().recipient(),
            stats: addr.recipient(),
        });
        let mtu = bearers
            .iter()
            .flatten()
            .map(|b| b.info.params.mtu)
            .min()
            .unwrap_or(info.params.mtu);
        drop(bearers);
        self.ctx.bcast().set_mtu(mtu);
        Ok(info)
    }

    /// The node's bearers.
    pub fn bearers(&self) -> Vec<BearerInfo> {
        self.ctx
            .bearers
            .read()
            .map(|b| b.iter().flatten().map(|s| s.info.clone()).collect())
            .unwrap_or_default()
    }

    /// Counters of a bearer (None if there is no such bearer).
    pub async fn bearer_stats(&self, id: BearerId) -> Option<BearerStats> {
        let slot = self.ctx.bearer(id)?;
        slot.stats.send(BearerStatsQuery).await.ok()
    }

    /// Snapshot of every peer and its links.
    pub async fn peers(&self) -> Vec<PeerSnapshot> {
        let handles: Vec<_> = self
            .ctx
            .peers
            .iter()
            .map(|e| e.value().query.clone())
            .collect();
        let mut out = Vec::with_capacity(handles.len());
        for q in handles {
            if let Ok(s) = q.send(PeerQuery).await {
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

    /// Wait until everything queued for `nodes` was delivered: their send queues here are
    /// empty and each of their links holds nothing unacknowledged; a node that is down or
    /// unknown (or this node) counts as done. False if that did not happen within `limit`.
    pub async fn wait_delivered(&self, nodes: &[NodeAddr], limit: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let mut busy = false;
            for &n in nodes {
                if self.ctx.is_own(n) {
                    continue;
                }
                let q = self.ctx.peers.get(&n).map(|p| p.query.clone());
                let Some(q) = q else { continue };
                busy |= !self.ctx.flow_of(n).queue().is_empty();
                if let Ok(snap) = q.send(PeerQuery).await {
                    busy |= snap.up
                        && snap
                            .links
                            .iter()
                            .any(|(_, l)| l.transmq_len + l.backlog_len > 0);
                }
            }
            if !busy {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// The node-wide multicast method (`tipc link set broadcast`, §5.4 rule 5):
    /// `Some(Broadcast)` or `Some(Replicast)` for every group broadcast and datagram range
    /// multicast the socket does not force itself; `None` (the default) selects by the ratio.
    pub fn set_bcast_mode(&self, mode: Option<crate::group::Method>) {
        self.ctx.set_bcast_forced(mode);
    }

    /// The node-wide multicast method.
    pub fn bcast_mode(&self) -> Option<crate::group::Method> {
        self.ctx.bcast_forced()
    }

    /// The broadcast send link's counters, and the peers it broadcasts to.
    pub fn bcast_stats(&self) -> (tipc_transport::bcast::BcastStats, usize) {
        let b = self.ctx.bcast();
        (b.stats(), b.peers().count())
    }

    /// What the group member sockets dropped (closed groups, malformed, stale, over their
    /// queues), those that left included.
    pub fn group_drops(&self) -> crate::group::GroupDrops {
        let mut d = *self
            .ctx
            .group_drops_left
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for p in self.ctx.ports.iter() {
            if let Some(g) = p.value().group_drops() {
                d.merge(g);
            }
        }
        d
    }

    /// What the node dropped from the network, by cause ([`NetDrops`]).
    pub async fn net_drops(&self) -> NetDrops {
        let mut d = NetDrops {
            peer_limit: self.ctx.peer_limit_refused(),
            ..NetDrops::default()
        };
        for b in self.bearers() {
            if let Some(s) = self.bearer_stats(b.id).await {
                d.malformed += s.rx_malformed + s.disc_malformed;
                d.misrouted += s.rx_misrouted;
                d.unknown_peer += s.rx_unknown_peer;
                d.wrong_network += s.disc_wrong_network;
                d.duplicate_address += s.disc_own_addr;
                d.stranger_limited += s.disc_resp_limited;
            }
        }
        let mut peers = *self
            .ctx
            .peer_drops_gone
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for p in self.peers().await {
            peers.add(&p.stats);
        }
        d.duplicate_address += peers.duplicates;
        d.spoofed_source += peers.spoofed_source;
        d.stranger_limited += peers.stranger_suppressed;
        d.foreign_names = self.name_stats().await.distr.foreign_items;
        d
    }

    /// Install a key as `tipc node set key` does: the key (if any) goes to its target, then
    /// the rekeying change (if any) applies. Returns the slot the key landed in (0: master,
    /// or a per-node key of a peer not known yet, kept until it is discovered).
    pub fn set_key(&self, s: KeySetting) -> Result<u8, CryptoError> {
        self.ctx.crypto.set_key(crate::ctx::now(), s)
    }

    /// Remove every key, own and peers' (`tipc node flush key`): the node sends in clear
    /// again.
    pub fn flush_keys(&self) {
        self.ctx.crypto.with(|c| c.flush_keys());
    }

    /// The node's encryption state and counters.
    pub fn crypto_info(&self) -> CryptoInfo {
        let mut peers: Vec<NodeAddr> = self.ctx.peers.iter().map(|e| *e.key()).collect();
        peers.sort_unstable();
        self.ctx.crypto.with_quiet(|c| CryptoInfo {
            sealing: c.is_enabled(),
            master: c.has_master_key(),
            tx: c.tx_state(),
            stats: c.stats().clone(),
            peers: peers
                .into_iter()
                .filter_map(|a| Some((a, c.rx_state(a)?, c.peer_stats(a)?.clone())))
                .collect(),
        })
    }

    /// Discovery messages from new nodes refused because the node had
    /// [`TransportConfig::max_peers`](crate::TransportConfig::max_peers) peers.
    pub fn peer_limit_refused(&self) -> u64 {
        self.ctx.peer_limit_refused()
    }

    /// Messages the receive dispatch dropped, by cause (malformed, not for sockets, not
    /// returnable, sender gone).
    pub fn rcv_stats(&self) -> RcvStats {
        self.ctx.rcv_stats()
    }

    /// Send a complete TIPC message to a peer node over its active link (raw transport).
    /// `selector` (the sender's port) picks among equal-priority links. The message is handed
    /// back in the error if the node is unknown or its link refuses it (not up, congested).
    pub async fn send(
        &self,
        to: NodeAddr,
        msg: BytesMut,
        selector: u32,
    ) -> Result<SendStatus, SendError> {
        let Some(handle) = self.ctx.peers.get(&to).map(|h| h.value().clone()) else {
            return Err(SendError::NotUp(msg));
        };
        let flow = self.ctx.flow_of(to);
        let Some(links) = flow.links() else {
            return Err(SendError::NotUp(msg));
        };
        let r = {
            let mut l = lock_links(&links);
            let r = l.core.send(now(), msg, selector);
            l.flush(&|b| self.ctx.bearer_tx(b));
            r
        };
        // The peer's actor re-arms its timer and reports what the send changed.
        schedule_drain(&handle, &flow);
        r
    }

    /// Like [`TransportNode::send`], but waits while the link is congested instead of failing,
    /// as a blocking socket does. Fails only if the peer is unknown or down.
    pub async fn send_wait(
        &self,
        to: NodeAddr,
        mut msg: BytesMut,
        selector: u32,
    ) -> Result<(), SendError> {
        loop {
            let notify = self
                .ctx
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

    /// Every binding in the table (`nametable show` order).
    pub async fn nametable(&self) -> Vec<Publication> {
        match self.ctx.names() {
            Some(n) => n.show.send(ShowTable).await.unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// Counters of the name distribution: updates applied, refused and purged, and what was
    /// dropped (malformed, out of order, items in another node's name).
    pub async fn name_stats(&self) -> NameStats {
        match self.ctx.names() {
            Some(n) => n.stats.send(NamesStatsQuery).await.unwrap_or_default(),
            None => NameStats::default(),
        }
    }

    /// The identity of a node (own or a known peer).
    pub fn node_id(&self, addr: NodeAddr) -> Option<NodeId> {
        if addr == self.ctx.own_addr {
            return Some(self.ctx.cfg.id);
        }
        self.ctx.node_ids.get(&addr).map(|e| *e.value())
    }

    /// Publish a binding of a local socket (distributed to the cluster if cluster scope).
    pub async fn publish(&self, p: Publication) -> Result<(), BindError> {
        self.ctx.publish(p).await
    }

    /// Withdraw a binding of a local socket.
    pub async fn withdraw(&self, range: ServiceRange, port: u32, key: u32) -> Option<Publication> {
        self.ctx.withdraw(range, port, key).await
    }

    /// Subscribe to a service range: events arrive on the returned channel (initial matches
    /// first). Dropping the receiver ends the subscription.
    pub async fn subscribe(
        &self,
        sub: Subscription,
    ) -> Result<mpsc::UnboundedReceiver<TopoEvent>, SubError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let names = self.ctx.names().ok_or(SubError::Stopped)?;
        match names.subscribe.send(Subscribe { sub, events: tx }).await {
            Ok(Ok(_)) => Ok(rx),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(SubError::Stopped),
        }
    }

    /// Open a connectionless (RDM) socket on a fresh port.
    pub fn dgram_socket(&self) -> DgramSocket {
        self.datagram_socket(DgramKind::Rdm)
    }

    /// Open a connectionless socket of `kind` (`SOCK_RDM` or `SOCK_DGRAM`) on a fresh port.
    pub fn datagram_socket(&self, kind: DgramKind) -> DgramSocket {
        DgramSocket::open(self.ctx.clone(), kind)
    }

    /// Join a communication group as a new member socket (`TIPC_GROUP_JOIN`): the first
    /// joiner creates the group. The handle sends in the four modes and receives messages
    /// and member events in order; dropping it leaves.
    pub async fn join(&self, spec: GroupSpec) -> Result<GroupMember, JoinError> {
        GroupMember::join(self.ctx.clone(), spec).await
    }

    /// Ports of the local datagram sockets (`socket list`).
    pub fn socket_ports(&self) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .ctx
            .ports
            .iter()
            .filter(|e| e.value().is_datagram())
            .map(|e| *e.key())
            .collect();
        v.sort_unstable();
        v
    }

    /// Every local socket (datagram sockets, group members, connection sockets: listening,
    /// connecting, connected), by port (`socket list`).
    pub fn sockets(&self) -> Vec<SocketInfo> {
        // The registry's shard locks are released before a socket's own lock is taken.
        let ports: Vec<_> = self
            .ctx
            .ports
            .iter()
            .map(|e| (*e.key(), e.value().clone()))
            .collect();
        let mut v: Vec<SocketInfo> = ports
            .into_iter()
            .map(|(port, p)| SocketInfo {
                port,
                kind: p.kind(),
            })
            .collect();
        v.sort_unstable_by_key(|s| s.port);
        v
    }

    /// A listening connection socket of `kind` on a fresh port (bind it to receive requests
    /// by name; requests to its socket address work at once).
    pub fn conn_listener(&self, kind: ConnKind) -> Listener {
        Listener::open(&self.ctx, kind)
    }

    /// TCP-style connect: an empty SYN, then wait for the ACK (timeout 8 s, as the kernel).
    pub async fn connect(&self, dest: ConnDest, kind: ConnKind) -> Result<Connection, ConnError> {
        Connection::open(&self.ctx, dest, kind, &[], ConnectOptions::default()).await
    }

    /// Connect with options: TCP-style if `first` is empty, else "0-RTT" with `first` in the
    /// SYN. [`ConnError::BadImportance`] for an importance above 3.
    pub async fn connect_opts(
        &self,
        dest: ConnDest,
        kind: ConnKind,
        first: Bytes,
        opts: ConnectOptions,
    ) -> Result<Connection, ConnError> {
        Connection::open(&self.ctx, dest, kind, &first, opts).await
    }

    /// "0-RTT" connect: the SYN carries `first` (at most 66000 bytes); returns when the ACK
    /// arrives, as the kernel's `sendto()` on an unconnected socket waits for the connection.
    pub async fn connect_with(
        &self,
        dest: ConnDest,
        kind: ConnKind,
        first: Bytes,
    ) -> Result<Connection, ConnError> {
        Connection::open(&self.ctx, dest, kind, &first, ConnectOptions::default()).await
    }

    /// Stop: every link tells its peer (RESET with `peer_stopping`), then bearers close.
    pub async fn shutdown(&self) {
        let peers: Vec<_> = self
            .ctx
            .peers
            .iter()
            .map(|e| e.value().shutdown.clone())
            .collect();
        for p in peers {
            let _ = p.send(Shutdown).await;
        }
        let bearers: Vec<BearerSlot> = self
            .ctx
            .bearers
            .read()
            .map(|b| b.iter().flatten().cloned().collect())
            .unwrap_or_default();
        for b in bearers {
            let _ = b.ctl.send(BearerCmd::Flush).await;
        }
    }
}
