//! The Peer actor (kernel `node.c`): one per remote node, owning that node's links through the
//! sans-IO [`Peer`] core. Handlers call the core with `now`, then `pump` drains
//! events to the node, transmits to the bearers' send channels, and re-arms one timer.
//!
//! Delivered data goes straight to the local sockets (`names::deliver_local`) unless the batch
//! holds a NAME_DISTRIBUTOR message or something this actor sent to the name table is still
//! unhandled there: then the batch goes through the name table actor, which applies name
//! updates and data in link order (the publish-before-data guarantee of [`crate::names`]).

use crate::bearer::{BearerCmd, TxPath};
use crate::names::{FromPeer, LocalBatch, PeerState};
use crate::node::{Delivered, NodeEvent, Shared};
use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tipc_transport::discovery::Neighbor;
use tipc_transport::link::{LinkSnapshot, SendError, SendStatus};
use tipc_transport::media::{Dest, TxFrame};
use tipc_transport::peer::{NeighborSighting, Peer, PeerEvent, Transmit};
use tipc_transport::{BearerId, NodeAddr, NodeId, MAX_BEARERS};

/// Transmit staging buffer allocation unit. Frames are zero-copy slices of it, so a chunk is
/// freed only when every frame cut from it was sent; large chunks keep that rare.
const OUT_CHUNK: usize = 256 * 1024;

/// A node with no working link for this long is forgotten (`NODE_CLEANUP_AFTER`).
pub const NODE_CLEANUP_AFTER: Duration = Duration::from_secs(300);

/// Discovery saw this peer on a bearer.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Discovered {
    /// Bearer.
    pub bearer: BearerId,
    /// What discovery learned.
    pub neighbor: Neighbor,
}

/// Unicast-link packets from this peer, in arrival order.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Packets {
    /// Bearer they arrived on.
    pub bearer: BearerId,
    /// The packets.
    pub pkts: Vec<Bytes>,
}

/// Broadcast-link packets from this peer.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct BcastPackets {
    /// The packets.
    pub pkts: Vec<Bytes>,
}

/// Ask for a snapshot.
#[derive(Debug, Message)]
#[rtype(result = "PeerSnapshot")]
pub struct PeerQuery;

/// Stop: tell the peer on every link.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Send a complete message to this peer.
#[derive(Debug, Message)]
#[rtype(result = "Result<SendStatus, SendError>")]
pub struct SendMsg {
    /// The message.
    pub msg: BytesMut,
    /// Link selector (the sender's port).
    pub selector: u32,
}

/// Post a message to this peer without a reply (see `TransportNode::post`).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Post(pub BytesMut);

/// Send what is queued for this peer (`PeerFlow::queue`).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Drain;

/// Answered once every earlier message was handled.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Barrier;

/// A peer and its links, for management output.
#[derive(Debug, Clone, MessageResponse)]
pub struct PeerSnapshot {
    /// Address.
    pub addr: NodeAddr,
    /// Identity.
    pub id: NodeId,
    /// Node up.
    pub up: bool,
    /// Links.
    pub links: Vec<(BearerId, LinkSnapshot)>,
}

/// The actor owning one peer node.
pub struct PeerActor {
    shared: Arc<Shared>,
    core: Peer,
    timer: Option<(Instant, SpawnHandle)>,
    out: BytesMut,
    order: Vec<Transmit>,
    link_up: [bool; MAX_BEARERS],
    /// Posted messages the link refused (congestion), sent when it has room again.
    parked: std::collections::VecDeque<BytesMut>,
    /// We told posters the peer is congested (mirror of the shared flag, to keep the shared map
    /// off the hot path).
    flow_congested: bool,
    /// This peer's shared flow state (congestion, messages pending at the name table).
    flow: Arc<crate::node::PeerFlow>,
    /// Send channels of the bearers, looked up once.
    txs: [Option<Arc<TxPath>>; MAX_BEARERS],
}

impl PeerActor {
    pub(crate) fn start_new(shared: Arc<Shared>, n: &Neighbor) -> Addr<PeerActor> {
        shared.node_ids.insert(n.addr, n.id);
        shared.node_caps.insert(n.addr, n.caps);
        let mut core = Peer::new(shared.own_addr, shared.cfg.id, n.addr, n.id, n.caps);
        core.set_net_id(shared.cfg.net_id);
        let flow = shared.flow_of(n.addr);
        // A previous actor for this node is gone with its mailbox: what was queued for it is
        // dropped as its mailbox was, and the next message schedules a drain for this one.
        flow.queue.lock().unwrap_or_else(|p| p.into_inner()).clear();
        flow.drain_scheduled
            .store(false, std::sync::atomic::Ordering::SeqCst);
        PeerActor {
            shared,
            core,
            timer: None,
            out: BytesMut::with_capacity(OUT_CHUNK),
            order: Vec::new(),
            link_up: [false; MAX_BEARERS],
            parked: std::collections::VecDeque::new(),
            flow_congested: false,
            flow,
            txs: Default::default(),
        }
        .start()
    }

    /// Drain events, transmits and the timer of the core. Delivered messages and node/link
    /// state changes go to the name table in the order the core produced them.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        let peer = self.core.addr();
        let shared = &*self.shared;
        let flow = &*self.flow;
        let names = shared.names.get();
        // Raw transport mode (a delivery hook): everything goes through the name table.
        let hooked = shared.deliver.read().map_or(true, |d| d.is_some());
        let mut batch: Vec<Bytes> = Vec::new();
        let flush_batch = |batch: &mut Vec<Bytes>| {
            if batch.is_empty() {
                return;
            }
            let msgs = std::mem::take(batch);
            match names {
                Some(_) if !hooked && deliver_directly(flow.names_idle(), &msgs) => {
                    let mut out = LocalBatch::default();
                    for msg in msgs {
                        crate::names::deliver_local(shared, msg, &mut out);
                    }
                    out.flush(shared);
                }
                Some(n) => {
                    flow.sent_to_names();
                    n.do_send(FromPeer { from: peer, msgs });
                }
                None => {
                    let d = self.shared.deliver.read().ok().and_then(|d| d.clone());
                    if let Some(tx) = d {
                        for msg in msgs {
                            let _ = tx.send(Delivered { from: peer, msg });
                        }
                    }
                }
            }
        };
        let state = |s: PeerState| {
            if let Some(n) = names {
                flow.sent_to_names();
                n.do_send(s);
            }
        };
        while let Some(ev) = self.core.poll_event() {
            match ev {
                PeerEvent::Deliver(msg) => batch.push(msg),
                PeerEvent::LinkUp { bearer, name } => {
                    tracing::info!(link = %name, "link up");
                    if let Some(b) = self.shared.bearer(bearer) {
                        b.ctl.do_send(BearerCmd::LinkUp);
                    }
                    if let Some(f) = self.link_up.get_mut(bearer as usize) {
                        *f = true;
                    }
                    let id = self.link_id(bearer);
                    flush_batch(&mut batch);
                    state(PeerState::LinkUp(peer, id));
                    let _ = self.shared.events.send(NodeEvent::LinkUp { peer, name });
                }
                PeerEvent::LinkDown {
                    bearer,
                    name,
                    reason,
                } => {
                    tracing::info!(link = %name, ?reason, "link down");
                    if self.link_up.get(bearer as usize).copied().unwrap_or(false) {
                        if let Some(b) = self.shared.bearer(bearer) {
                            b.ctl.do_send(BearerCmd::LinkDown);
                        }
                        self.link_up[bearer as usize] = false;
                    }
                    let id = self.link_id(bearer);
                    flush_batch(&mut batch);
                    state(PeerState::LinkDown(peer, id));
                    let _ = self.shared.events.send(NodeEvent::LinkDown {
                        peer,
                        name,
                        reason: format!("{reason:?}"),
                    });
                }
                PeerEvent::NodeUp => {
                    flush_batch(&mut batch);
                    state(PeerState::Up(peer));
                    let _ = self.shared.events.send(NodeEvent::NodeUp(peer));
                }
                PeerEvent::NodeDown => {
                    if let Some(n) = self.shared.unblocked.get(&peer) {
                        n.notify_waiters();
                        n.notify_one();
                    }
                    flush_batch(&mut batch);
                    state(PeerState::Down(peer));
                    let _ = self.shared.events.send(NodeEvent::NodeDown(peer));
                }
                PeerEvent::Unblocked(_) => {
                    if let Some(n) = self.shared.unblocked.get(&peer) {
                        n.notify_waiters();
                        n.notify_one();
                    }
                }
                PeerEvent::Purged(pkt) => self.reject_purged(pkt),
            }
        }
        flush_batch(&mut batch);
        self.unpark();
        self.flush();
        self.arm(ctx);
    }

    fn flow(&self) -> Arc<crate::node::PeerFlow> {
        self.flow.clone()
    }

    /// Offer one posted message to the link; false if it had to be parked.
    fn offer(&mut self, msg: BytesMut) -> bool {
        self.offer_at(Instant::now(), msg)
    }

    fn offer_at(&mut self, now: Instant, msg: BytesMut) -> bool {
        use tipc_transport::link::SendError as E;
        match self.core.send(now, msg, 0) {
            Ok(SendStatus::Accepted) => true,
            Ok(SendStatus::Congested) => {
                self.set_congested();
                true
            }
            Err(E::Congested(m)) => {
                self.parked.push_front(m);
                self.set_congested();
                false
            }
            Err(E::NotUp(m)) | Err(E::Invalid(m)) => {
                self.reject(&m);
                true
            }
            Err(_) => true,
        }
    }

    fn set_congested(&mut self) {
        if !self.flow_congested {
            self.flow_congested = true;
            self.flow()
                .congested
                .store(true, std::sync::atomic::Ordering::Release);
        }
    }

    /// A link packet the link purged when it went down: its messages go back to their senders
    /// (NO_NODE) unless droppable. Bundles are opened; fragments cannot be returned (counted
    /// by the link as purged).
    fn reject_purged(&self, pkt: Bytes) {
        let Ok(h) = tipc_transport::wire::Header::new_checked(&pkt[..]) else {
            return;
        };
        match h.user() {
            tipc_transport::wire::user::MSG_BUNDLER => {
                for m in tipc_transport::wire::extract(&pkt).flatten() {
                    self.reject(&m);
                }
            }
            u if u <= tipc_transport::wire::user::CRITICAL => self.reject(&pkt),
            _ => {}
        }
    }

    /// A message that cannot reach the peer goes back to its sender (NO_NODE), never lost
    /// silently unless the sender marked it droppable.
    fn reject(&self, m: &[u8]) {
        // Returned in the name of the unreachable node, so that the sender sees the original
        // destination (`orignode` of a returned message is the node that could not deliver).
        if let Some(ret) =
            crate::socket::reverse(m, tipc_transport::wire::ErrorCode::NoNode, self.core.addr())
        {
            if let Some(n) = self.shared.names.get() {
                n.do_send(crate::names::RouteMsg(crate::names::Route::Returned(ret)));
            }
        }
    }

    /// Send parked messages while the link takes them; release waiting senders when done.
    fn unpark(&mut self) {
        if !self.flow_congested && self.parked.is_empty() {
            return;
        }
        if !self.core.is_up() {
            for m in std::mem::take(&mut self.parked) {
                self.reject(&m);
            }
        }
        while let Some(m) = self.parked.pop_front() {
            if !self.offer(m) {
                break;
            }
        }
        let clear = !self.core.is_up()
            || (self.parked.is_empty() && !(0..4).any(|i| self.core.is_congested(i, 0)));
        if clear && self.flow_congested {
            self.flow_congested = false;
            let flow = self.flow();
            flow.congested
                .store(false, std::sync::atomic::Ordering::Release);
            flow.notify.notify_waiters();
        }
    }

    /// The kernel's link id: `(peer_bearer_id << 16) | bearer_id`.
    fn link_id(&self, bearer: BearerId) -> u32 {
        let peer_bearer = self
            .core
            .links()
            .into_iter()
            .find(|(b, _)| *b == bearer)
            .map_or(0, |(_, s)| s.peer_bearer_id);
        ((peer_bearer as u32) << 16) | bearer as u32
    }

    fn flush(&mut self) {
        self.order.clear();
        if self.out.capacity() < 16 * 1024 {
            // Start a fresh chunk rather than letting `reserve` allocate one per frame burst.
            self.out = BytesMut::with_capacity(OUT_CHUNK);
        }
        while let Some(t) = self.core.poll_transmit(&mut self.out) {
            self.order.push(t);
        }
        if self.order.is_empty() {
            return;
        }
        // One buffer for every frame of this round: the bearers get zero-copy slices of it.
        let all = self.out.split().freeze();
        let mut batches: [Vec<TxFrame>; MAX_BEARERS] = Default::default();
        let mut off = 0;
        for t in &self.order {
            if let Some(b) = batches.get_mut(t.bearer as usize) {
                b.push(TxFrame {
                    dest: Dest::Unicast(t.dest),
                    data: all.slice(off..off + t.len),
                });
            }
            off += t.len;
        }
        for (b, frames) in batches.into_iter().enumerate() {
            if frames.is_empty() {
                continue;
            }
            let Some(cached) = self.txs.get_mut(b) else {
                continue;
            };
            if cached.as_ref().is_none_or(|t| t.is_closed()) {
                *cached = self.shared.bearer(b as BearerId).map(|s| s.tx);
            }
            if let Some(tx) = cached {
                tx.send(frames);
            }
        }
    }

    /// When the core (or the cleanup of a lost node) next needs a timeout.
    fn deadline(&self) -> Option<Instant> {
        let mut deadline = self.core.poll_timeout();
        if !self.core.is_up() {
            if let Some(t) = self.core.lost_at() {
                let c = t + NODE_CLEANUP_AFTER;
                deadline = Some(deadline.map_or(c, |d| d.min(c)));
            }
        }
        deadline
    }

    /// Keep one timer armed at or before the next deadline. An armed timer that would fire
    /// earlier is kept (it finds nothing due and re-arms), so a deadline that moves later with
    /// every packet costs no timer churn.
    fn arm(&mut self, ctx: &mut Context<Self>) {
        let Some(d) = self.deadline() else {
            return;
        };
        if matches!(&self.timer, Some((cur, _)) if *cur <= d) {
            return;
        }
        if let Some((_, h)) = self.timer.take() {
            ctx.cancel_future(h);
        }
        let h = ctx.run_later(d.saturating_duration_since(Instant::now()), |act, ctx| {
            act.timer = None;
            let now = Instant::now();
            if act.deadline().is_some_and(|d| d <= now) {
                act.core.handle_timeout(now);
                if !act.core.is_up()
                    && act
                        .core
                        .lost_at()
                        .is_some_and(|t| now >= t + NODE_CLEANUP_AFTER)
                {
                    act.shared.peers.remove(&act.core.addr());
                    ctx.stop();
                    return;
                }
            }
            act.pump(ctx);
        });
        self.timer = Some((d, h));
    }
}

/// May a batch of delivered messages go straight to the sockets? Only if nothing from this
/// peer is still waiting at the name table (`names_idle`) and the batch holds no
/// NAME_DISTRIBUTOR message: otherwise a binding published before a message could be applied
/// after that message is delivered.
fn deliver_directly(names_idle: bool, msgs: &[Bytes]) -> bool {
    names_idle
        && !msgs.iter().any(|m| {
            m.len() >= 4
                && tipc_transport::wire::Header::new_unchecked(&m[..]).user()
                    == tipc_transport::wire::user::NAME_DISTRIBUTOR
        })
}

impl Actor for PeerActor {
    type Context = Context<Self>;
}

impl Handler<Discovered> for PeerActor {
    type Result = ();
    fn handle(&mut self, m: Discovered, ctx: &mut Self::Context) {
        let now = Instant::now();
        let Some(b) = self.shared.bearer(m.bearer) else {
            return;
        };
        let n = m.neighbor;
        let sighting = NeighborSighting {
            media_addr: n.media_addr,
            id: n.id,
            caps: n.caps,
            signature: n.signature,
        };
        let out =
            self.core
                .handle_discovery(now, &b.info.params, &sighting, self.shared.random_u16());
        if out.respond && n.is_request {
            b.ctl.do_send(BearerCmd::Respond(n));
        }
        self.pump(ctx);
    }
}

impl Handler<Packets> for PeerActor {
    type Result = ();
    fn handle(&mut self, m: Packets, ctx: &mut Self::Context) {
        let now = Instant::now();
        for p in m.pkts {
            self.core.handle_packet(now, m.bearer, p);
        }
        self.pump(ctx);
    }
}

impl Handler<BcastPackets> for PeerActor {
    type Result = ();
    fn handle(&mut self, m: BcastPackets, ctx: &mut Self::Context) {
        let now = Instant::now();
        for p in m.pkts {
            self.core.handle_broadcast(now, p);
        }
        self.pump(ctx);
    }
}

impl Handler<PeerQuery> for PeerActor {
    type Result = PeerSnapshot;
    fn handle(&mut self, _: PeerQuery, _: &mut Self::Context) -> PeerSnapshot {
        PeerSnapshot {
            addr: self.core.addr(),
            id: self.core.id(),
            up: self.core.is_up(),
            links: self.core.links(),
        }
    }
}

impl Handler<Shutdown> for PeerActor {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        self.core.shutdown(Instant::now());
        self.pump(ctx);
    }
}

impl Handler<Post> for PeerActor {
    type Result = ();
    fn handle(&mut self, m: Post, ctx: &mut Self::Context) {
        if self.parked.is_empty() {
            self.offer(m.0);
        } else {
            // Keep order behind the parked ones.
            self.parked.push_back(m.0);
        }
        self.pump(ctx);
    }
}

impl Handler<Drain> for PeerActor {
    type Result = ();
    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) {
        // Cleared before taking: a message queued after the take schedules a new drain.
        self.flow
            .drain_scheduled
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let msgs = std::mem::take(&mut *self.flow.queue.lock().unwrap_or_else(|p| p.into_inner()));
        let now = Instant::now();
        for m in msgs {
            if self.parked.is_empty() {
                self.offer_at(now, m);
            } else {
                // Keep order behind the parked ones.
                self.parked.push_back(m);
            }
        }
        self.pump(ctx);
    }
}

impl Handler<Barrier> for PeerActor {
    type Result = ();
    fn handle(&mut self, _: Barrier, _: &mut Self::Context) {}
}

impl Handler<SendMsg> for PeerActor {
    type Result = Result<SendStatus, SendError>;
    fn handle(&mut self, m: SendMsg, ctx: &mut Self::Context) -> Self::Result {
        let r = self.core.send(Instant::now(), m.msg, m.selector);
        self.pump(ctx);
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tipc_transport::wire::user;

    fn msg_of_user(u: u8) -> Bytes {
        let mut m = vec![0u8; 40];
        m[0] = (2 << 5) | (u << 1);
        Bytes::from(m)
    }

    #[test]
    fn deliver_directly_data_batch_when_names_idle() {
        let batch = [msg_of_user(user::LOW), msg_of_user(user::CRITICAL)];
        assert!(deliver_directly(true, &batch));
    }

    #[test]
    fn deliver_directly_refused_when_batch_holds_name_distributor() {
        let batch = [
            msg_of_user(user::LOW),
            msg_of_user(user::NAME_DISTRIBUTOR),
            msg_of_user(user::LOW),
        ];
        assert!(!deliver_directly(true, &batch));
    }

    #[test]
    fn deliver_directly_refused_while_name_table_has_pending_batches() {
        assert!(!deliver_directly(false, &[msg_of_user(user::LOW)]));
    }

    #[test]
    fn peer_flow_names_idle_after_every_sent_batch_is_handled() {
        let f = crate::node::PeerFlow::default();
        assert!(f.names_idle());
        f.sent_to_names();
        f.sent_to_names();
        f.handled_at_names();
        assert!(!f.names_idle());
        f.handled_at_names();
        assert!(f.names_idle());
        // A stray decrement does not wrap the counter around.
        f.handled_at_names();
        assert!(f.names_idle());
        f.sent_to_names();
        assert!(!f.names_idle());
    }
}
