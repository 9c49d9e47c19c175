//! The peer actor (kernel `node.c`): one per remote node, driving that node's links through
//! the sans-IO [`Peer`] core. Handlers call the core with the time, then `pump` carries out
//! what it produced: deliveries to the sockets ([`crate::route`]) or to the name table,
//! node and link events, returned messages, transmits to the bearers, one re-armed timer.
//!
//! Delivered data goes straight to the local sockets unless the batch holds a
//! NAME_DISTRIBUTOR message or something this actor sent to the name table is still
//! unhandled there: then the batch goes through the name table actor, which applies name
//! updates and data in link order (publish before data, [`crate::actor::name_table`]).

use crate::ctx::{now, NodeCtx, NodeEvent};
use crate::flow::{lock_links, PeerFlow, PeerLinks};
use crate::msg::{
    Barrier, BcastPackets, BearerCmd, Discovered, Drain, FromPeer, Inbound, Packets, PeerHandle,
    PeerQuery, PeerSnapshot, PeerState, Shutdown,
};
use crate::route::{route_out, Deliveries};
use crate::send::bcast_flush;
use actix::prelude::*;
use bytes::BytesMut;
use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tipc_transport::discovery::Neighbor;
use tipc_transport::link::{SendError, SendStatus};
use tipc_transport::peer::{NeighborSighting, Peer, PeerEvent};
use tipc_transport::wire::{ErrorCode, InputQueue};
use tipc_transport::{NodeAddr, MAX_BEARERS};

/// Start the actor of a newly discovered peer node.
pub(crate) fn start(ctx: &Arc<NodeCtx>, n: &Neighbor) -> PeerHandle {
    PeerHandle::of(PeerActor::new(ctx.clone(), n).start())
}

/// The actor owning one peer node.
pub struct PeerActor {
    ctx: Arc<NodeCtx>,
    /// The peer's address.
    addr: NodeAddr,
    /// The link core, shared with inline senders.
    links: Arc<Mutex<PeerLinks>>,
    timer: Option<(Instant, SpawnHandle)>,
    link_up: [bool; MAX_BEARERS],
    /// Posted messages the link refused (congestion), sent when it has room again. Not empty
    /// only while the flow is congested, which keeps inline senders out.
    parked: VecDeque<BytesMut>,
    /// This peer's shared send state.
    flow: Arc<PeerFlow>,
}

impl PeerActor {
    fn new(ctx: Arc<NodeCtx>, n: &Neighbor) -> PeerActor {
        ctx.node_ids.insert(n.addr, n.id);
        ctx.node_caps.insert(n.addr, n.caps);
        let (addr, id) = (n.addr, n.id);
        ctx.crypto.with(|c| c.add_peer(now(), addr, id));
        let mut core = Peer::new(ctx.own_addr, ctx.cfg.id, n.addr, n.id, n.caps);
        core.set_net_id(ctx.cfg.net_id);
        let flow = ctx.flow_of(n.addr);
        // A previous actor for this node is gone with its mailbox: what was queued for it is
        // dropped as its mailbox was, and the next message schedules a drain for this one.
        flow.queue().clear();
        flow.drain_scheduled.store(false, Ordering::SeqCst);
        let links = Arc::new(Mutex::new(PeerLinks::new(core)));
        flow.set_links(Some(links.clone()));
        PeerActor {
            ctx,
            addr: n.addr,
            links,
            timer: None,
            link_up: [false; MAX_BEARERS],
            parked: VecDeque::new(),
            flow,
        }
    }

    /// Carry out what the core produced: deliveries, node and link events in the order the
    /// core produced them, then transmits and the timer. False: the node is forgotten and
    /// the actor stops.
    fn pump(&mut self, ctx: &mut Context<Self>, l: &mut PeerLinks) -> bool {
        let peer = self.addr;
        // Before anything is delivered: a connection completed by a delivery takes the link's
        // message size from here.
        self.flow.set_mss(l.core.mss());
        let mut batch: Vec<Inbound> = Vec::new();
        let mut forget = false;
        while let Some(ev) = l.core.poll_event() {
            // The broadcast half of node events (`node.c`'s calls into `bcast.c`).
            if matches!(
                ev,
                PeerEvent::NodeUp
                    | PeerEvent::NodeDown
                    | PeerEvent::BcastAck { .. }
                    | PeerEvent::BcastReady
            ) {
                let init = l.core.bc_init_last();
                let mut b = self.ctx.bcast();
                b.handle_peer_event(now(), peer, &ev, init);
                bcast_flush(&self.ctx, &mut b);
            }
            match ev {
                PeerEvent::Deliver(msg) => batch.push(Inbound::Sockets(msg)),
                PeerEvent::DeliverMcast(msg) => batch.push(Inbound::Mcast(msg)),
                PeerEvent::NameDistr(msg) => batch.push(Inbound::Names(msg)),
                PeerEvent::KeyDistr(msg) => self.ctx.crypto.key_distr(now(), peer, &msg),
                PeerEvent::LinkUp {
                    bearer,
                    name,
                    link_id,
                } => {
                    tracing::info!(link = %name, "link up");
                    if let Some(b) = self.ctx.bearer(bearer) {
                        b.ctl.do_send(BearerCmd::LinkUp);
                    }
                    if let Some(f) = self.link_up.get_mut(bearer as usize) {
                        *f = true;
                    }
                    self.flush_batch(&mut batch);
                    self.to_names(PeerState::LinkUp(peer, link_id));
                    let _ = self.ctx.events.send(NodeEvent::LinkUp { peer, name });
                }
                PeerEvent::LinkDown {
                    bearer,
                    name,
                    reason,
                    link_id,
                } => {
                    tracing::info!(link = %name, ?reason, "link down");
                    if self.link_up.get(bearer as usize).copied().unwrap_or(false) {
                        if let Some(b) = self.ctx.bearer(bearer) {
                            b.ctl.do_send(BearerCmd::LinkDown);
                        }
                        self.link_up[bearer as usize] = false;
                    }
                    self.flush_batch(&mut batch);
                    self.to_names(PeerState::LinkDown(peer, link_id));
                    let _ = self.ctx.events.send(NodeEvent::LinkDown {
                        peer,
                        name,
                        reason: format!("{reason:?}"),
                    });
                }
                PeerEvent::NodeUp => {
                    self.flush_batch(&mut batch);
                    self.to_names(PeerState::Up(peer));
                    let _ = self.ctx.events.send(NodeEvent::NodeUp(peer));
                }
                PeerEvent::NodeDown => {
                    self.ctx.crypto.with(|c| c.peer_down(peer));
                    self.wake_raw_senders();
                    self.flush_batch(&mut batch);
                    self.to_names(PeerState::Down(peer));
                    let _ = self.ctx.events.send(NodeEvent::NodeDown(peer));
                }
                PeerEvent::Unblocked(_) => self.wake_raw_senders(),
                PeerEvent::Returned(msg) => {
                    self.flush_batch(&mut batch);
                    route_out(&self.ctx, msg);
                }
                PeerEvent::Forget => forget = true,
                PeerEvent::BcastAck { .. } | PeerEvent::BcastReady => {}
            }
        }
        self.flush_batch(&mut batch);
        if forget {
            tracing::debug!(peer = %format!("{:08x}", self.addr), "node forgotten");
            self.ctx.crypto.with(|c| c.remove_peer(peer));
            self.ctx.forget_peer(self.addr, &self.links, l.core.stats());
            ctx.stop();
            return false;
        }
        self.unpark(l);
        l.flush(&|b| self.ctx.bearer_tx(b));
        self.arm(ctx, l);
        true
    }

    /// Hand a batch of delivered messages on, in link order: straight to the sockets when
    /// nothing from this peer waits at the name table and the batch holds no name update;
    /// otherwise through the name table actor (and always in raw transport mode, where the
    /// name table hands data to the delivery hook).
    fn flush_batch(&self, batch: &mut Vec<Inbound>) {
        if batch.is_empty() {
            return;
        }
        let msgs = std::mem::take(batch);
        let hooked = self.ctx.deliver.read().map_or(true, |d| d.is_some());
        match self.ctx.names() {
            Some(_) if !hooked && deliver_directly(self.flow.names_idle(), &msgs) => {
                let mut d = Deliveries::new(&self.ctx);
                for m in msgs {
                    match m {
                        Inbound::Sockets(msg) => d.input(InputQueue::Sockets, msg),
                        Inbound::Mcast(msg) => d.input(InputQueue::Mcast, msg),
                        Inbound::Names(_) => {}
                    }
                }
                d.flush();
            }
            Some(n) => {
                self.flow.sent_to_names();
                n.from_peer.do_send(FromPeer {
                    from: self.addr,
                    msgs,
                });
            }
            None => {}
        }
    }

    fn to_names(&self, s: PeerState) {
        if let Some(n) = self.ctx.names() {
            self.flow.sent_to_names();
            n.peer_state.do_send(s);
        }
    }

    fn wake_raw_senders(&self) {
        if let Some(n) = self.ctx.unblocked.get(&self.addr) {
            n.notify_waiters();
            n.notify_one();
        }
    }

    /// Offer one posted message to the link; false if it had to be parked.
    fn offer(&mut self, l: &mut PeerLinks, now: Instant, msg: BytesMut) -> bool {
        match l.core.send(now, msg, 0) {
            Ok(SendStatus::Accepted) => true,
            Ok(SendStatus::Congested) => {
                self.flow.set_congested();
                true
            }
            Err(SendError::Congested(m)) => {
                self.parked.push_front(m);
                self.flow.set_congested();
                false
            }
            Err(SendError::NotUp(m)) | Err(SendError::Invalid(m)) => {
                self.unreachable(&m);
                true
            }
            Err(_) => true,
        }
    }

    /// A message that cannot reach the peer goes back to its sender (NO_NODE), never lost
    /// silently unless the sender marked it droppable. Returned in the name of the
    /// unreachable node, as the core's [`PeerEvent::Returned`].
    fn unreachable(&self, m: &[u8]) {
        if let Some(ret) = tipc_transport::wire::reverse(m, ErrorCode::NoNode, self.addr) {
            route_out(&self.ctx, ret);
        } else {
            self.ctx
                .count_drop(crate::socket::rcv::DropCause::NotReturnable);
        }
    }

    /// Send parked messages while the link takes them; release waiting senders when done.
    /// The congestion flag is read from the shared flow state: inline senders set it too.
    fn unpark(&mut self, l: &mut PeerLinks) {
        let congested = self.flow.congested.load(Ordering::Acquire);
        if !congested && self.parked.is_empty() {
            return;
        }
        if !l.core.is_up() {
            for m in std::mem::take(&mut self.parked) {
                self.unreachable(&m);
            }
        }
        let now = now();
        while let Some(m) = self.parked.pop_front() {
            if !self.offer(l, now, m) {
                break;
            }
        }
        let clear = !l.core.is_up()
            || (self.parked.is_empty() && !(0..4).any(|i| l.core.is_congested(i, 0)));
        if clear {
            self.flow.clear_congested();
        }
    }

    /// Keep one timer armed at or before the core's next deadline. An armed timer that would
    /// fire earlier is kept (it finds nothing due and re-arms), so a deadline that moves later
    /// with every packet costs no timer churn.
    fn arm(&mut self, ctx: &mut Context<Self>, l: &mut PeerLinks) {
        let Some(d) = l.core.poll_timeout() else {
            return;
        };
        if matches!(&self.timer, Some((cur, _)) if *cur <= d) {
            return;
        }
        if let Some((_, h)) = self.timer.take() {
            ctx.cancel_future(h);
        }
        let h = ctx.run_later(d.saturating_duration_since(now()), |act, ctx| {
            act.timer = None;
            let links = act.links.clone();
            let mut l = lock_links(&links);
            l.armed = None;
            let now = now();
            l.core.set_last_bcast(act.ctx.bcast_last());
            if l.core.poll_timeout().is_some_and(|d| d <= now) {
                l.core.handle_timeout(now);
            }
            act.pump(ctx, &mut l);
        });
        self.timer = Some((d, h));
        l.armed = Some(d);
    }

    /// Run `f` on the link core under its lock, then pump.
    fn with_core(&mut self, ctx: &mut Context<Self>, f: impl FnOnce(&mut Self, &mut PeerLinks)) {
        let links = self.links.clone();
        let mut l = lock_links(&links);
        l.core.set_last_bcast(self.ctx.bcast_last());
        f(self, &mut l);
        self.pump(ctx, &mut l);
    }
}

/// May a batch of delivered messages go straight to the sockets? Only if nothing from this
/// peer is still waiting at the name table (`names_idle`) and the batch holds no
/// NAME_DISTRIBUTOR message: otherwise a binding published before a message could be applied
/// after that message is delivered.
fn deliver_directly(names_idle: bool, msgs: &[Inbound]) -> bool {
    names_idle && !msgs.iter().any(|m| matches!(m, Inbound::Names(_)))
}

impl Actor for PeerActor {
    type Context = Context<Self>;
}

impl Handler<Discovered> for PeerActor {
    type Result = ();
    fn handle(&mut self, m: Discovered, ctx: &mut Self::Context) {
        let Some(b) = self.ctx.bearer(m.bearer) else {
            return;
        };
        let n = m.neighbor;
        let sighting = NeighborSighting {
            media_addr: n.media_addr,
            id: n.id,
            caps: n.caps,
            signature: n.signature,
            is_request: n.is_request,
        };
        let session = self.ctx.random_u16();
        self.with_core(ctx, |_, l| {
            let out = l
                .core
                .handle_discovery(now(), &b.info.params, &sighting, session);
            if out.log_duplicate {
                let working = l.core.link_media(m.bearer);
                tracing::warn!(
                    bearer = %b.info.name,
                    "duplicate node {:08x} ({}) at {} ignored: its link to {} is up \
                     (another node uses its identity or address?)",
                    n.addr,
                    n.id.to_id_string(),
                    n.media_addr,
                    working.map_or_else(|| "?".to_string(), |a| a.to_string()),
                );
            }
            if out.respond && n.is_request {
                b.ctl.do_send(BearerCmd::Respond {
                    neighbor: n,
                    stranger: out.stranger,
                });
            }
        });
    }
}

impl Handler<Packets> for PeerActor {
    type Result = ();
    fn handle(&mut self, m: Packets, ctx: &mut Self::Context) {
        self.with_core(ctx, |_, l| {
            let now = now();
            for p in m.pkts {
                l.core.handle_packet_from(now, m.bearer, &m.src, p);
            }
        });
    }
}

impl Handler<BcastPackets> for PeerActor {
    type Result = ();
    fn handle(&mut self, m: BcastPackets, ctx: &mut Self::Context) {
        self.with_core(ctx, |_, l| {
            let now = now();
            for p in m.pkts {
                l.core.handle_broadcast_from(now, m.bearer, &m.src, p);
            }
        });
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
        self.with_core(ctx, |_, l| l.core.shutdown(now()));
    }
}

impl Handler<Drain> for PeerActor {
    type Result = ();
    fn handle(&mut self, _: Drain, ctx: &mut Self::Context) {
        // The core is locked first and held until the queue is offered to it: an inline sender
        // (which needs the core) cannot overtake messages taken from the queue.
        self.with_core(ctx, |me, l| {
            // Cleared before taking: a message queued after the take schedules a new drain.
            me.flow.drain_scheduled.store(false, Ordering::SeqCst);
            let msgs = std::mem::take(&mut *me.flow.queue());
            let now = now();
            // What was queued in one go leaves bundled: a connection's ACK, first reply and
            // FIN become one packet instead of three.
            let cork = msgs.len() > 1;
            if cork {
                l.core.set_cork(now, true);
            }
            for m in msgs {
                if me.parked.is_empty() {
                    me.offer(l, now, m);
                } else {
                    // Keep order behind the parked ones.
                    me.parked.push_back(m);
                }
            }
            if cork {
                l.core.set_cork(now, false);
            }
        });
    }
}

impl Handler<Barrier> for PeerActor {
    type Result = ();
    fn handle(&mut self, _: Barrier, _: &mut Self::Context) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn m() -> Bytes {
        Bytes::from_static(&[0u8; 40])
    }

    #[test]
    fn deliver_directly_data_batch_when_names_idle() {
        let batch = [Inbound::Sockets(m()), Inbound::Mcast(m())];
        assert!(deliver_directly(true, &batch));
    }

    #[test]
    fn deliver_directly_refused_when_batch_holds_name_distributor() {
        let batch = [
            Inbound::Sockets(m()),
            Inbound::Names(m()),
            Inbound::Sockets(m()),
        ];
        assert!(!deliver_directly(true, &batch));
    }

    #[test]
    fn deliver_directly_refused_while_name_table_has_pending_batches() {
        assert!(!deliver_directly(false, &[Inbound::Sockets(m())]));
    }
}
