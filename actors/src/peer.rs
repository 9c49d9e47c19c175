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
    /// Node-level counters.
    pub stats: tipc_transport::peer::PeerStats,
}

/// The peer's link core and its transmit staging: owned by the peer's actor, and borrowed
/// (under its lock) by senders that hand a message to the link from their own task
/// ([`send_inline`]), which saves the actor hop on a request/reply path.
pub(crate) struct PeerLinks {
    core: Peer,
    out: BytesMut,
    /// The frames of a flush: each one's first part in `out`, and the rest by reference.
    order: Vec<(Transmit, Bytes)>,
    /// Send paths of the bearers, looked up once.
    txs: [Option<Arc<TxPath>>; MAX_BEARERS],
    /// Deadline of the actor's armed timer.
    armed: Option<Instant>,
}

impl std::fmt::Debug for PeerLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerLinks")
            .field("peer", &self.core.addr())
            .field("armed", &self.armed)
            .finish_non_exhaustive()
    }
}

fn lock_links(l: &std::sync::Mutex<PeerLinks>) -> std::sync::MutexGuard<'_, PeerLinks> {
    l.lock().unwrap_or_else(|p| p.into_inner())
}

/// The largest message that goes unfragmented over the peer's active link (0 if none is up).
pub(crate) fn link_mss(flow: &crate::node::PeerFlow) -> usize {
    flow.links().map_or(0, |l| lock_links(&l).core.mss())
}

impl PeerLinks {
    /// Hand every frame the core has ready to the bearers, in order.
    fn flush(&mut self, shared: &Shared) {
        self.order.clear();
        if self.out.capacity() < 16 * 1024 {
            // Start a fresh chunk rather than letting `reserve` allocate one per frame burst.
            self.out = BytesMut::with_capacity(OUT_CHUNK);
        }
        while let Some(t) = self.core.poll_transmit_parts(&mut self.out) {
            self.order.push(t);
        }
        if self.order.is_empty() {
            return;
        }
        // One buffer for every frame of this round (the headers, stamped, and the small
        // packets): the bearers get zero-copy slices of it, and large payloads by reference.
        let all = self.out.split().freeze();
        let mut batches: [Vec<TxFrame>; MAX_BEARERS] = Default::default();
        let mut off = 0;
        for (t, tail) in self.order.drain(..) {
            if let Some(b) = batches.get_mut(t.bearer as usize) {
                b.push(TxFrame {
                    dest: Dest::Unicast(t.dest),
                    data: all.slice(off..off + t.len),
                    tail,
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
                *cached = shared.bearer(b as BearerId).map(|s| s.tx);
            }
            if let Some(tx) = cached {
                tx.send(frames);
            }
        }
    }
}

/// What [`send_inline`] did with a message.
#[derive(Debug)]
pub(crate) enum Inline {
    /// Sent; the actor has nothing to do.
    Sent,
    /// Sent; the actor must run (the link got congested or its timer must move earlier).
    SentDrain,
    /// Not taken (the link core is busy, or the link refused it): queue it for the actor,
    /// which parks, rejects or sends it as its own path would.
    Refused(BytesMut),
}

/// Offer `msg` to the peer's link from the caller's task and send what the link produces,
/// if the link is idle: nothing sent is waiting for an acknowledgement (a request/reply
/// exchange; a burst keeps going through the actor's queue, which batches its frames).
/// The caller guarantees order: nothing is queued or parked for this peer and no drain is
/// pending (it holds the queue lock). Never waits for the lock: a busy core refuses.
pub(crate) fn send_inline(shared: &Shared, flow: &crate::node::PeerFlow, msg: BytesMut) -> Inline {
    let Some(links) = flow.links() else {
        return Inline::Refused(msg);
    };
    let Ok(mut l) = links.try_lock() else {
        return Inline::Refused(msg);
    };
    if !link_idle(&l.core) {
        return Inline::Refused(msg);
    }
    let now = Instant::now();
    let congested = match l.core.send(now, msg, 0) {
        Ok(SendStatus::Accepted) => false,
        Ok(SendStatus::Congested) => true,
        Err(SendError::Congested(m)) | Err(SendError::NotUp(m)) | Err(SendError::Invalid(m)) => {
            return Inline::Refused(m)
        }
        // A refusal this crate does not know: dropped, as the actor's path drops it.
        Err(_) => return Inline::Sent,
    };
    l.flush(shared);
    if congested {
        flow.congested
            .store(true, std::sync::atomic::Ordering::Release);
        return Inline::SentDrain;
    }
    let sooner = l
        .core
        .poll_timeout()
        .is_some_and(|d| l.armed.is_none_or(|a| d < a));
    if sooner {
        Inline::SentDrain
    } else {
        Inline::Sent
    }
}

/// The actor owning one peer node.
pub struct PeerActor {
    shared: Arc<Shared>,
    /// The peer's address.
    addr: NodeAddr,
    /// The link core, shared with inline senders.
    links: Arc<std::sync::Mutex<PeerLinks>>,
    timer: Option<(Instant, SpawnHandle)>,
    link_up: [bool; MAX_BEARERS],
    /// Posted messages the link refused (congestion), sent when it has room again. Not empty
    /// only while `flow.congested` is set, which keeps inline senders out.
    parked: std::collections::VecDeque<BytesMut>,
    /// This peer's shared flow state (congestion, messages pending at the name table).
    flow: Arc<crate::node::PeerFlow>,
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
        let links = Arc::new(std::sync::Mutex::new(PeerLinks {
            core,
            out: BytesMut::with_capacity(OUT_CHUNK),
            order: Vec::new(),
            txs: Default::default(),
            armed: None,
        }));
        flow.set_links(Some(links.clone()));
        PeerActor {
            shared,
            addr: n.addr,
            links,
            timer: None,
            link_up: [false; MAX_BEARERS],
            parked: std::collections::VecDeque::new(),
            flow,
        }
        .start()
    }

    /// Drain events, transmits and the timer of the core. Delivered messages and node/link
    /// state changes go to the name table in the order the core produced them.
    fn pump(&mut self, ctx: &mut Context<Self>, l: &mut PeerLinks) {
        let peer = self.addr;
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
        while let Some(ev) = l.core.poll_event() {
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
                    let id = link_id(l, bearer);
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
                    let id = link_id(l, bearer);
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
        self.unpark(l);
        l.flush(&self.shared);
        self.arm(ctx, l);
    }

    fn flow(&self) -> Arc<crate::node::PeerFlow> {
        self.flow.clone()
    }

    /// Offer one posted message to the link; false if it had to be parked.
    fn offer(&mut self, l: &mut PeerLinks, msg: BytesMut) -> bool {
        self.offer_at(l, Instant::now(), msg)
    }

    fn offer_at(&mut self, l: &mut PeerLinks, now: Instant, msg: BytesMut) -> bool {
        use tipc_transport::link::SendError as E;
        match l.core.send(now, msg, 0) {
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
        self.flow
            .congested
            .store(true, std::sync::atomic::Ordering::Release);
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
            crate::socket::reverse(m, tipc_transport::wire::ErrorCode::NoNode, self.addr)
        {
            if let Some(n) = self.shared.names.get() {
                n.do_send(crate::names::RouteMsg(crate::names::Route::Returned(ret)));
            }
        }
    }

    /// Send parked messages while the link takes them; release waiting senders when done.
    ///
    /// The congestion flag is read from the shared flow state: inline senders set it too.
    fn unpark(&mut self, l: &mut PeerLinks) {
        use std::sync::atomic::Ordering;
        let congested = self.flow.congested.load(Ordering::Acquire);
        if !congested && self.parked.is_empty() {
            return;
        }
        if !l.core.is_up() {
            for m in std::mem::take(&mut self.parked) {
                self.reject(&m);
            }
        }
        while let Some(m) = self.parked.pop_front() {
            if !self.offer(l, m) {
                break;
            }
        }
        let clear = !l.core.is_up()
            || (self.parked.is_empty() && !(0..4).any(|i| l.core.is_congested(i, 0)));
        if clear && self.flow.congested.load(Ordering::Acquire) {
            let flow = self.flow();
            flow.congested.store(false, Ordering::Release);
            flow.notify.notify_waiters();
        }
    }

    /// When the core (or the cleanup of a lost node) next needs a timeout.
    fn deadline(l: &PeerLinks) -> Option<Instant> {
        let mut deadline = l.core.poll_timeout();
        if !l.core.is_up() {
            if let Some(t) = l.core.lost_at() {
                let c = t + NODE_CLEANUP_AFTER;
                deadline = Some(deadline.map_or(c, |d| d.min(c)));
            }
        }
        deadline
    }

    /// Keep one timer armed at or before the next deadline. An armed timer that would fire
    /// earlier is kept (it finds nothing due and re-arms), so a deadline that moves later with
    /// every packet costs no timer churn.
    fn arm(&mut self, ctx: &mut Context<Self>, l: &mut PeerLinks) {
        let Some(d) = Self::deadline(l) else {
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
            let links = act.links.clone();
            let mut l = lock_links(&links);
            l.armed = None;
            let now = Instant::now();
            if Self::deadline(&l).is_some_and(|d| d <= now) {
                l.core.handle_timeout(now);
                if !l.core.is_up()
                    && l.core
                        .lost_at()
                        .is_some_and(|t| now >= t + NODE_CLEANUP_AFTER)
                {
                    act.shared.peers.remove(&act.addr);
                    ctx.stop();
                    return;
                }
            }
            act.pump(ctx, &mut l);
        });
        self.timer = Some((d, h));
        l.armed = Some(d);
    }
}

/// Nothing sent on the link inline senders use (selector 0) awaits an acknowledgement.
fn link_idle(core: &Peer) -> bool {
    core.queued(0) == 0
}

/// The kernel's link id: `(peer_bearer_id << 16) | bearer_id`.
fn link_id(l: &PeerLinks, bearer: BearerId) -> u32 {
    let peer_bearer = l
        .core
        .links()
        .into_iter()
        .find(|(b, _)| *b == bearer)
        .map_or(0, |(_, s)| s.peer_bearer_id);
    ((peer_bearer as u32) << 16) | bearer as u32
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
        let links = self.links.clone();
        let mut l = lock_links(&links);
        let out = l
            .core
            .handle_discovery(now, &b.info.params, &sighting, self.shared.random_u16());
        if out.respond && n.is_request {
            b.ctl.do_send(BearerCmd::Respond(n));
        }
        self.pump(ctx, &mut l);
    }
}

impl Handler<Packets> for PeerActor {
    type Result = ();
    fn handle(&mut self, m: Packets, ctx: &mut Self::Context) {
        let now = Instant::now();
        let links = self.links.clone();
        let mut l = lock_links(&links);
        for p in m.pkts {
            l.core.handle_packet(now, m.bearer, p);
        }
        self.pump(ctx, &mut l);
    }
}

impl Handler<BcastPackets> for PeerActor {
    type Result = ();
    fn handle(&mut self, m: BcastPackets, ctx: &mut Self::Context) {
        let now = Instant::now();
        let links = self.links.clone();
        let mut l = lock_links(&links);
        for p in m.pkts {
            l.core.handle_broadcast(now, p);
        }
        self.pump(ctx, &mut l);
    }
}

impl Handler<PeerQuery> for PeerActor {
    type Result = PeerSnapshot;
    fn handle(&mut self, _: PeerQuery, _: &mut Self::Context) -> PeerSnapshot {
        let l = lock_links(&self.links);
        PeerSnapshot {
            addr: l.core.addr(),
            id: l.core.id(),
            up: l.core.is_up(),
            links: l.core.links(),
            stats: *l.core.stats(),
        }
    }
}

impl Handler<Shutdown> for PeerActor {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        let links = self.links.clone();
        let mut l = lock_links(&links);
        l.core.shutdown(Instant::now());
        self.pump(ctx, &mut l);
    }
}

impl Handler<Drain> for PeerActor {
    type Result = ();
    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) {
        // The core is locked first and held until the queue is offered to it: an inline sender
        // (which needs the core) cannot overtake messages taken from the queue.
        let links = self.links.clone();
        let mut l = lock_links(&links);
        // Cleared before taking: a message queued after the take schedules a new drain.
        self.flow
            .drain_scheduled
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let msgs = std::mem::take(&mut *self.flow.queue.lock().unwrap_or_else(|p| p.into_inner()));
        let now = Instant::now();
        // What was queued in one go leaves bundled: a connection's ACK, first reply and FIN
        // become one packet instead of three.
        let cork = msgs.len() > 1;
        if cork {
            l.core.set_cork(now, true);
        }
        for m in msgs {
            if self.parked.is_empty() {
                self.offer_at(&mut l, now, m);
            } else {
                // Keep order behind the parked ones.
                self.parked.push_back(m);
            }
        }
        if cork {
            l.core.set_cork(now, false);
        }
        self.pump(ctx, &mut l);
    }
}

impl Handler<Barrier> for PeerActor {
    type Result = ();
    fn handle(&mut self, _: Barrier, _: &mut Self::Context) {}
}

impl Handler<SendMsg> for PeerActor {
    type Result = Result<SendStatus, SendError>;
    fn handle(&mut self, m: SendMsg, ctx: &mut Self::Context) -> Self::Result {
        let links = self.links.clone();
        let mut l = lock_links(&links);
        let r = l.core.send(Instant::now(), m.msg, m.selector);
        self.pump(ctx, &mut l);
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
