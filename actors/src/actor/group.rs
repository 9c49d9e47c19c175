//! The driver of a group member socket (kernel `socket.c`, group half: `tipc_sk_join`,
//! `tipc_sk_leave`, `tipc_sk_filter_rcv` for a group socket, `tipc_sk_group_wakeup` and the
//! topology events a group subscribes to). Spec tipc-protocol.md §10.
//!
//! A member has no timers, so it has no actix actor: its [`GroupSock`] (the core and its
//! queues, sans-IO, shared with the simulation) sits behind a mutex shared by the user handle
//! ([`crate::sock::group`]), the deliverers (peer actors and the name table, through the
//! port registry: [`GroupInner`] is the member's `Port`) and one small task that feeds it the
//! binding events of the group's type. Whoever drives the socket sends what it produced
//! (`send_batches`, where [`route_transmit`] says), in its order, and wakes the handle.

use crate::ctx::{NodeCtx, Port};
use crate::group::{route_transmit, BcastPolicy, GroupDrops, GroupSock, Route, Transmit};
use crate::route::Deliveries;
use crate::send::{bcast_send, enqueue_to_peer};
use crate::socket::replicast_copy;
use crate::topsrv::{EventKind, TopoEvent};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tipc_transport::bcast::BcastSendError;
use tipc_transport::wire::InputQueue;
use tipc_transport::NodeAddr;
use tokio::sync::{mpsc, oneshot, Notify};

/// A member socket's shared state: its socket, and its wake-ups.
pub(crate) struct GroupInner {
    st: Mutex<GroupSock>,
    /// Woken when the queue gets something or the member closes.
    pub readable: Notify,
    /// Woken when a blocked sender may retry or the member closes.
    pub writable: Notify,
    sending: AtomicBool,
    /// Set by a driver that queued messages while another task held `sending`: that task
    /// looks at the socket again before it stops.
    more: AtomicBool,
}

impl GroupInner {
    /// Shared state around a socket that has not joined yet.
    pub fn new(sock: GroupSock) -> Arc<GroupInner> {
        Arc::new(GroupInner {
            st: Mutex::new(sock),
            readable: Notify::new(),
            writable: Notify::new(),
            sending: AtomicBool::new(false),
            more: AtomicBool::new(false),
        })
    }

    /// The socket (a poisoned lock is taken over: the socket is consistent between calls).
    pub fn lock(&self) -> MutexGuard<'_, GroupSock> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Run `f` on the socket, then send what it produced and wake who should look again.
    pub fn drive<R>(&self, ctx: &NodeCtx, f: impl FnOnce(&mut GroupSock) -> R) -> R {
        let (r, readable, writable, batch) = {
            let mut st = self.lock();
            let before = st.queued();
            let r = f(&mut st);
            let writable = st.poll_wakeup();
            let readable = st.queued() > before || st.is_closed();
            // A task sending now looks at the socket again before it stops: leave it to it.
            let batch = (st.has_transmit() && self.claim_sending()).then(|| {
                let mut b = VecDeque::new();
                st.swap_transmits(&mut b);
                b
            });
            (r, readable, writable, batch)
        };
        if let Some(b) = batch {
            self.send_batches(ctx, b);
        }
        if readable {
            self.readable.notify_waiters();
        }
        if writable {
            self.writable.notify_waiters();
        }
        r
    }

    /// Whether this task becomes the one that sends (`sending` was clear). If another task
    /// holds it, `more` tells it to look at the socket again, and the claim is retried: that
    /// task may have looked for `more` just before it was set, then cleared `sending`.
    fn claim_sending(&self) -> bool {
        let claim = || {
            self.sending
                .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok()
        };
        if claim() {
            return true;
        }
        self.more.store(true, Ordering::SeqCst);
        claim()
    }

    /// Send what the socket queued, in its order, whoever queued it: only the task that holds
    /// `sending` sends. Before it stops it clears the flag and looks at `more`, which a driver
    /// that queued meanwhile set (before its own claim, [`claim_sending`](Self::claim_sending)):
    /// either that driver claims the flag and sends, or this task sees `more`, claims the flag
    /// back and takes the socket's queue under its lock. No lock is held while a message is
    /// sent: a copy for this node is delivered at once, possibly to this very member. The
    /// queue and `b` trade places, so their buffers are reused within a run.
    fn send_batches(&self, ctx: &NodeCtx, mut b: VecDeque<Transmit>) {
        loop {
            // Only broadcasts need the broadcast link's state (a lock and a bearer lookup).
            let members = b.iter().any(|t| matches!(t, Transmit::Members { .. }));
            let policy = if members {
                bcast_policy(ctx)
            } else {
                BcastPolicy::REPLICAST
            };
            for t in b.drain(..) {
                route_transmit(t, ctx.own_addr, policy, |r| send(ctx, r));
            }
            self.sending.store(false, Ordering::SeqCst);
            if !self.more.load(Ordering::SeqCst)
                || self
                    .sending
                    .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
                    .is_err()
            {
                return;
            }
            self.more.store(false, Ordering::SeqCst);
            self.lock().swap_transmits(&mut b);
        }
    }
}

impl Port for GroupInner {
    /// Messages for the member (`tipc_sk_filter_rcv` with a group).
    fn deliver(&self, ctx: &NodeCtx, msgs: Vec<Bytes>) {
        self.drive(ctx, |st| {
            for msg in msgs {
                st.handle_message(msg);
            }
        })
    }

    fn node_lost(&self, ctx: &NodeCtx, node: NodeAddr) {
        self.drive(ctx, |st| st.handle_node_down(node))
    }

    fn is_datagram(&self) -> bool {
        true
    }

    fn group_drops(&self) -> Option<GroupDrops> {
        let mut d = GroupDrops::default();
        d.add(&self.lock());
        Some(d)
    }
}

/// Complete the join (`tipc_sk_join` after the publication): the members the binding table
/// holds now join, then the messages that came early are handled.
pub(crate) fn join_now(ctx: &NodeCtx, inner: &GroupInner) {
    let cfg = inner.lock().core().config();
    let members = ctx.table().group_members(cfg.type_, cfg.scope);
    inner.drive(ctx, |st| st.join(members));
}

/// Feed the group's binding events to the member until it leaves (`stop`) or the node's
/// name table goes away.
pub(crate) async fn pump_bindings(
    ctx: Arc<NodeCtx>,
    inner: Arc<GroupInner>,
    mut events: mpsc::UnboundedReceiver<TopoEvent>,
    mut stop: oneshot::Receiver<()>,
) {
    loop {
        tokio::select! {
            _ = &mut stop => return,
            ev = events.recv() => match ev {
                Some(ev) => handle_binding(&ctx, &inner, &ev),
                None => return,
            },
        }
    }
}

/// A binding event of the group's type (the group's subscription).
fn handle_binding(ctx: &NodeCtx, inner: &GroupInner, ev: &TopoEvent) {
    let published = match ev.kind {
        EventKind::Published => true,
        EventKind::Withdrawn => false,
        EventKind::Timeout => return,
    };
    inner.drive(ctx, |st| {
        st.handle_binding(ctx.own_addr, published, ev.port, ev.found_lower)
    });
}

/// Leave (`tipc_sk_leave`): GRP_LEAVE to every member, then the socket is closed. The caller
/// withdraws the binding and unregisters the port afterwards, so the LEAVEs go first.
pub(crate) fn leave_now(ctx: &NodeCtx, inner: &GroupInner) {
    inner.drive(ctx, |st| st.leave());
}

/// The member's port is gone: what it dropped joins the node's sum of members that left.
pub(crate) fn retire(ctx: &NodeCtx, inner: &GroupInner) {
    let mut d = GroupDrops::default();
    d.add(&inner.lock());
    ctx.group_drops_left
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .merge(d);
}

/// What the node's broadcast link offers: broadcast once the node has a bearer and peers.
fn bcast_policy(ctx: &NodeCtx) -> BcastPolicy {
    let peers = ctx.bcast().peers().count();
    let bearer = ctx
        .bearers
        .read()
        .is_ok_and(|b| b.iter().flatten().next().is_some());
    BcastPolicy {
        available: bearer && peers > 0,
        cluster_size: peers + 1,
        node_forced: ctx.bcast_forced(),
    }
}

fn send(ctx: &NodeCtx, r: Route) {
    match r {
        Route::Node(node, msg) => {
            enqueue_to_peer(ctx, node, msg);
        }
        Route::Broadcast { msg, nodes } => {
            let m = msg
                .try_into_mut()
                .unwrap_or_else(|m| BytesMut::from(&m[..]));
            if let Err(e) = bcast_send(ctx, m) {
                let m = match e {
                    BcastSendError::Congested(m)
                    | BcastSendError::NoPeers(m)
                    | BcastSendError::Invalid(m) => m,
                    _ => return,
                };
                for n in nodes {
                    if let Some(copy) = replicast_copy(&m, n) {
                        enqueue_to_peer(ctx, n, copy);
                    }
                }
            }
        }
        Route::Local(msg) => {
            let mut d = Deliveries::new(ctx);
            d.input(InputQueue::Mcast, msg);
            d.flush();
        }
    }
}
