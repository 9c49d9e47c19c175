//! The name table actor: the node's name distribution and service tracking (kernel
//! `name_table.c`, `name_distr.c`, `subscr.c`/`topsrv.c`), spec §7, §8. It drives the sans-IO
//! [`NameService`] and [`Topology`] cores on the node's binding table.
//!
//! The table itself lives in the node context behind a mutex (held only for a lookup or an
//! update, never across an `await`): sockets resolve anycast sends and peer actors deliver
//! received data without a round trip to this actor.
//!
//! Ordering guarantee: a binding the peer published before sending a message is visible here
//! before that message is delivered (the kernel does not guarantee this since 5.10; we do). A
//! peer actor hands a delivered batch to this actor ([`FromPeer`], applied in link order) when
//! it holds a NAME_DISTRIBUTOR message or when anything it sent here earlier is still
//! unhandled (the per-peer counter `PeerFlow::at_names`); only otherwise does it deliver the
//! batch itself.

use crate::ctx::{now, Delivered, NodeCtx};
use crate::group::Method;
use crate::msg::{
    FromPeer, Inbound, NameStats, NamesHandle, NamesStatsQuery, PeerState, Publish, SendMcast,
    ShowTable, Subscribe, Withdraw,
};
use crate::name_distr::{NameService, NameServiceStats};
use crate::name_table::{BindingError, Publication, TableEvent};
use crate::route::{node_lost, Deliveries};
use crate::send::{bcast_send, enqueue_to_peer};
use crate::socket::{mcast_sync, replicast_copy, DgramError, McastMethod};
use crate::topsrv::{ClientId, PubInfo, SubError, SubId, TopoEvent, Topology};
use actix::prelude::*;
use bytes::BytesMut;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;
use tipc_transport::bcast::BcastSendError;
use tipc_transport::wire::InputQueue;
use tipc_transport::NodeAddr;
use tokio::sync::mpsc;

/// Start the node's name table actor; its node-state binding is published at once.
pub(crate) fn start(ctx: &Arc<NodeCtx>) -> NamesHandle {
    NamesHandle::of(NameTable::new(ctx.clone()).start())
}

/// The actor owning the node's name distribution and subscriptions.
pub struct NameTable {
    ctx: Arc<NodeCtx>,
    names: NameService,
    topo: Topology,
    clients: HashMap<ClientId, mpsc::UnboundedSender<TopoEvent>>,
    next_client: u64,
    timer: Option<SpawnHandle>,
}

impl NameTable {
    fn new(ctx: Arc<NodeCtx>) -> NameTable {
        let names = NameService::new(ctx.own_addr, &mut ctx.table());
        let mut me = NameTable {
            ctx,
            names,
            topo: Topology::new(),
            clients: HashMap::new(),
            next_client: 1,
            timer: None,
        };
        me.drain_table(now());
        me
    }

    /// Counters of the name distribution.
    pub fn stats(&self) -> NameServiceStats {
        self.names.stats()
    }

    /// Table events to service tracking.
    fn drain_table(&mut self, now: Instant) {
        let events: Vec<TableEvent> = {
            let mut t = self.ctx.table();
            std::iter::from_fn(|| t.poll_event()).collect()
        };
        for ev in events {
            match ev {
                TableEvent::Published { publ, first } => self.topo.handle_published(
                    now,
                    &PubInfo {
                        range: publ.range,
                        node: publ.node,
                        port: publ.port,
                        first_of_range: first,
                    },
                ),
                TableEvent::Withdrawn { publ, last } => self.topo.handle_withdrawn(
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

    /// Send what the name service produced, hand service-tracking events to their clients
    /// and re-arm the subscription timer.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        while let Some((peer, msg)) = self.names.poll_transmit() {
            enqueue_to_peer(&self.ctx, peer, msg);
        }
        let now = now();
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
                act.topo.handle_timeout(crate::ctx::now());
                act.pump(ctx);
            }));
        }
    }

    /// One handled message from the peer's actor (see `PeerFlow::at_names`).
    fn handled_from(&self, peer: NodeAddr) {
        self.ctx.flow_of(peer).handled_at_names();
    }
}

impl Actor for NameTable {
    type Context = Context<Self>;
}

impl Handler<FromPeer> for NameTable {
    type Result = ();

    fn handle(&mut self, m: FromPeer, ctx: &mut Self::Context) {
        let hook = self.ctx.deliver.read().ok().and_then(|d| d.clone());
        let node = self.ctx.clone();
        let mut d = Deliveries::new(&node);
        for msg in m.msgs {
            let (queue, msg) = match msg {
                Inbound::Names(msg) => {
                    // Data delivered so far goes first (link order).
                    d.flush();
                    self.names
                        .handle_message(&mut self.ctx.table(), m.from, &msg);
                    continue;
                }
                Inbound::Sockets(msg) => (InputQueue::Sockets, msg),
                Inbound::Mcast(msg) => (InputQueue::Mcast, msg),
            };
            match &hook {
                // Raw transport mode (tests, benchmarks): every data message to the hook.
                Some(tx) => {
                    let _ = tx.send(Delivered { from: m.from, msg });
                }
                None => d.input(queue, msg),
            }
        }
        d.flush();
        drop(d);
        self.handled_from(m.from);
        self.pump(ctx);
    }
}

impl Handler<PeerState> for NameTable {
    type Result = ();

    fn handle(&mut self, m: PeerState, ctx: &mut Self::Context) {
        let (PeerState::Up(peer)
        | PeerState::Down(peer)
        | PeerState::LinkUp(peer, _)
        | PeerState::LinkDown(peer, _)) = m;
        self.handled_from(peer);
        match m {
            PeerState::Up(peer) => {
                let mtu = self.ctx.min_bearer_mtu();
                self.names.handle_node_up(&self.ctx.table(), peer, mtu);
            }
            PeerState::Down(peer) => {
                node_lost(&self.ctx, peer);
                self.names.handle_node_down(&mut self.ctx.table(), peer);
            }
            PeerState::LinkUp(peer, link_id) => {
                self.names
                    .handle_link_up(&mut self.ctx.table(), peer, link_id);
            }
            PeerState::LinkDown(peer, link_id) => {
                self.names
                    .handle_link_down(&mut self.ctx.table(), peer, link_id);
            }
        }
        self.pump(ctx);
    }
}

impl Handler<Publish> for NameTable {
    type Result = Result<(), BindingError>;

    fn handle(&mut self, m: Publish, ctx: &mut Self::Context) -> Self::Result {
        let r = self.names.publish(&mut self.ctx.table(), m.0);
        self.pump(ctx);
        r
    }
}

impl Handler<Withdraw> for NameTable {
    type Result = Option<Publication>;

    fn handle(&mut self, m: Withdraw, ctx: &mut Self::Context) -> Self::Result {
        let p = self
            .names
            .withdraw(&mut self.ctx.table(), m.range, m.port, m.key);
        self.pump(ctx);
        p
    }
}

impl Handler<ShowTable> for NameTable {
    type Result = Vec<Publication>;

    fn handle(&mut self, _: ShowTable, _: &mut Self::Context) -> Vec<Publication> {
        self.ctx.table().iter().copied().collect()
    }
}

impl Handler<NamesStatsQuery> for NameTable {
    type Result = NameStats;

    fn handle(&mut self, _: NamesStatsQuery, _: &mut Self::Context) -> NameStats {
        NameStats {
            service: self.names.stats(),
            distr: self.names.distributor().stats(),
        }
    }
}

impl Handler<Subscribe> for NameTable {
    type Result = Result<SubId, SubError>;

    fn handle(&mut self, m: Subscribe, ctx: &mut Self::Context) -> Self::Result {
        let client = ClientId(self.next_client);
        self.next_client += 1;
        let existing: Vec<PubInfo> = self
            .ctx
            .table()
            .subscription_snapshot(m.sub.range, true)
            .into_iter()
            .map(|p| PubInfo {
                range: p.range,
                node: p.node,
                port: p.port,
                first_of_range: false,
            })
            .collect();
        let id = self.topo.subscribe(now(), m.sub, client, existing)?;
        self.clients.insert(client, m.events);
        self.pump(ctx);
        Ok(id)
    }
}

impl Handler<SendMcast> for NameTable {
    type Result = Result<McastMethod, DgramError>;

    /// `tipc_sendmcast`: the nodes with a binding in the range get the message by replicast
    /// (a copy each) or once on the broadcast link, as the socket's method picks (§5.4); the
    /// local sockets get it through the multicast dispatch.
    fn handle(&mut self, m: SendMcast, _: &mut Self::Context) -> Self::Result {
        let (nodes, local) = {
            let t = self.ctx.table();
            (
                t.lookup_mcast_nodes(m.range, true),
                !t.lookup_mcast_local_ports(m.range, true).is_empty(),
            )
        };
        if nodes.is_empty() && !local {
            return Err(DgramError::NoDestination);
        }
        let mut method = m.method;
        let mut msg = m.msg;
        // The local copy is taken before a method switch marks the message (as the kernel).
        let local_copy = local.then(|| msg.clone());
        if !nodes.is_empty() {
            let (peers, can_broadcast) = {
                let b = self.ctx.bcast();
                let n = b.peers().count();
                (n, n > 0 && !b.is_congested())
            };
            let caps = |bit: u16| {
                self.ctx.cfg.caps & bit != 0
                    && self.ctx.node_caps.iter().all(|c| c.value() & bit != 0)
            };
            // The node-wide method (rule 5): replicast as if the node could not broadcast,
            // broadcast as if a peer took no replicast.
            let forced = self.ctx.bcast_forced();
            let can_broadcast = can_broadcast && forced != Some(Method::Replicast);
            let all_rcast =
                caps(tipc_transport::caps::BCAST_RCAST) && forced != Some(Method::Broadcast);
            let rbctl = caps(tipc_transport::caps::MCAST_RBCTL);
            let (rcast, sync) = method.select(
                now(),
                nodes.len(),
                peers + 1,
                can_broadcast,
                all_rcast,
                rbctl,
            );
            if rbctl {
                tipc_transport::wire::Header::new_unchecked(&mut msg[..]).set_is_rcast(rcast);
            }
            if sync {
                // The dummy goes by the old method, the message (SYN) by the new one.
                if let Some(dummy) = mcast_sync(&mut msg) {
                    mcast_out(&self.ctx, dummy, !rcast, &nodes);
                }
            }
            mcast_out(&self.ctx, msg, rcast, &nodes);
        }
        if let Some(copy) = local_copy {
            let mut d = Deliveries::new(&self.ctx);
            d.route_out(copy);
            d.flush();
        }
        Ok(method)
    }
}

/// A multicast to `nodes` by replicast (a copy each) or on the broadcast link; by replicast
/// too if the broadcast link refuses it. The copies keep the message's `is_rcast` bit when it
/// carries SYN: a receiver pairs a switch's two messages by that bit.
fn mcast_out(ctx: &NodeCtx, msg: BytesMut, rcast: bool, nodes: &[NodeAddr]) {
    let msg = if rcast {
        msg
    } else {
        match bcast_send(ctx, msg) {
            Ok(()) => return,
            Err(BcastSendError::Congested(m))
            | Err(BcastSendError::NoPeers(m))
            | Err(BcastSendError::Invalid(m)) => m,
            Err(_) => return,
        }
    };
    let h = tipc_transport::wire::Header::new_unchecked(&msg[..]);
    let keep = h.syn().then(|| h.is_rcast());
    for &n in nodes {
        if let Some(mut copy) = replicast_copy(&msg, n) {
            if let Some(bit) = keep {
                tipc_transport::wire::Header::new_unchecked(&mut copy[..]).set_is_rcast(bit);
            }
            enqueue_to_peer(ctx, n, copy);
        }
    }
}
