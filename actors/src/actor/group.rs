//! The driver of a group member socket (kernel `socket.c`, group half: `tipc_sk_join`,
//! `tipc_sk_leave`, `tipc_sk_filter_rcv` for a group socket, `tipc_sk_group_wakeup` and the
//! topology events a group subscribes to). Spec tipc-protocol.md §10.
//!
//! A member has no timers, so it has no actix actor: its [`GroupCore`] sits behind a mutex
//! shared by the user handle ([`crate::sock::group`]), the deliverers (peer actors and the
//! name table, through the port registry: [`GroupInner`] is the member's `Port`) and one
//! small task that feeds it the binding events of the group's type. Whoever drives the core
//! sends what it produced ([`push_out`]), in the core's order, and wakes the handle.
//!
//! Broadcasts and multicasts go as replicast: a copy per member node over its unicast link,
//! stamped by [`replicast_copy`], and through the multicast dispatch for members on this node.
//!
//! Memory: what the core delivers waits in the member's queue until the user reads it; the
//! windows bound it (the senders stop), and the queue refuses more than the core's receive
//! buffer ([`GroupCore::rcvbuf`]) from a sender that ignores them (counted in
//! [`DriverStats::rcvbuf_dropped`], the message accounted as read so honest windows stay
//! true). Messages that come before the join completes wait, at most [`MAX_EARLY`].

use crate::addr::Scope;
use crate::ctx::{NodeCtx, Port};
use crate::group::{GroupCore, GroupEvent, Transmit};
use crate::route::{route_out, Deliveries};
use crate::send::enqueue_to_peer;
use crate::socket::replicast_copy;
use crate::topsrv::{EventKind, TopoEvent};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tipc_transport::wire::InputQueue;
use tipc_transport::NodeAddr;
use tokio::sync::{mpsc, oneshot, Notify};

/// Messages held for a member socket whose join has not completed; more are dropped and
/// counted ([`DriverStats::early_dropped`]).
pub const MAX_EARLY: usize = 4096;

/// What the driver counted beside the core's own [`crate::group::GroupStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverStats {
    /// Messages that came before the join completed and did not fit in [`MAX_EARLY`].
    pub early_dropped: u64,
    /// Messages refused because the member's queue held its receive buffer's worth.
    pub rcvbuf_dropped: u64,
    /// Messages that came after the member left.
    pub after_leave: u64,
    /// The most bytes the member's queue held at once.
    pub max_queued_bytes: usize,
}

/// The state behind the member's mutex.
pub(crate) struct GroupState {
    /// The member's core.
    pub core: GroupCore,
    early: Vec<Bytes>,
    /// Delivered, not read yet.
    pub queue: VecDeque<GroupEvent>,
    /// Bytes of the messages in `queue`.
    pub queued_bytes: usize,
    /// Driver counters.
    pub stats: DriverStats,
    /// Left (or the node stopped): no more input, sends fail.
    pub closed: bool,
}

impl GroupState {
    /// Move what the core delivered into the queue; true if a blocked sender may retry.
    pub fn absorb(&mut self) -> bool {
        while let Some(ev) = self.core.poll_event() {
            if let GroupEvent::Message(m) = &ev {
                let len = m.msg.len();
                if self.queued_bytes + len > self.core.rcvbuf().max(len) {
                    self.stats.rcvbuf_dropped += 1;
                    self.core.handle_read(m.from, m.blocks());
                    continue;
                }
                self.queued_bytes += len;
                self.stats.max_queued_bytes = self.stats.max_queued_bytes.max(self.queued_bytes);
            }
            self.queue.push_back(ev);
        }
        self.core.poll_wakeup()
    }
}

/// A member socket's shared state: its core, its queue and its wake-ups.
pub(crate) struct GroupInner {
    st: Mutex<GroupState>,
    /// Woken when the queue gets something or the member closes.
    pub readable: Notify,
    /// Woken when a blocked sender may retry (the core's `poll_wakeup`) or the member closes.
    pub writable: Notify,
    sending: AtomicBool,
}

impl GroupInner {
    /// Shared state around a core that has not joined yet.
    pub fn new(core: GroupCore) -> Arc<GroupInner> {
        Arc::new(GroupInner {
            st: Mutex::new(GroupState {
                core,
                early: Vec::new(),
                queue: VecDeque::new(),
                queued_bytes: 0,
                stats: DriverStats::default(),
                closed: false,
            }),
            readable: Notify::new(),
            writable: Notify::new(),
            sending: AtomicBool::new(false),
        })
    }

    /// The state (a poisoned lock is taken over: the core is consistent between calls).
    pub fn lock(&self) -> MutexGuard<'_, GroupState> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// After an input: send what the core produced and wake who should look again.
    pub fn after(&self, ctx: &NodeCtx, readable: bool, writable: bool) {
        push_out(ctx, self);
        if readable {
            self.readable.notify_waiters();
        }
        if writable {
            self.writable.notify_waiters();
        }
    }

    /// Run `f` on the state, then absorb what the core delivered, send, and wake.
    pub fn drive<R>(&self, ctx: &NodeCtx, f: impl FnOnce(&mut GroupState) -> R) -> R {
        let (r, readable, writable) = {
            let mut st = self.lock();
            let before = st.queue.len();
            let r = f(&mut st);
            let writable = st.absorb();
            (r, st.queue.len() != before, writable)
        };
        self.after(ctx, readable, writable);
        r
    }
}

impl Port for GroupInner {
    /// Messages for the member (`tipc_sk_filter_rcv` with a group): to the core, or held
    /// until the join completes.
    fn deliver(&self, ctx: &NodeCtx, msgs: Vec<Bytes>) {
        self.drive(ctx, |st| {
            for msg in msgs {
                if st.closed {
                    st.stats.after_leave += 1;
                } else if !st.core.is_joined() {
                    if st.early.len() < MAX_EARLY {
                        st.early.push(msg);
                    } else {
                        st.stats.early_dropped += 1;
                    }
                } else {
                    st.core.handle_message(msg);
                }
            }
        })
    }

    fn node_lost(&self, ctx: &NodeCtx, node: NodeAddr) {
        self.drive(ctx, |st| {
            if st.core.is_joined() {
                st.core.handle_node_down(node);
            }
        })
    }

    fn is_datagram(&self) -> bool {
        true
    }
}

/// Complete the join (`tipc_sk_join` after the publication): the members the binding table
/// holds now join the core, then the messages that came early are handled.
pub(crate) fn join_now(ctx: &NodeCtx, inner: &GroupInner) {
    let cfg = inner.lock().core.config();
    let members = ctx.table().group_members(cfg.type_, cfg.scope);
    inner.drive(ctx, |st| {
        // Only fails if joined already.
        let _ = st.core.join(members);
        for msg in std::mem::take(&mut st.early) {
            st.core.handle_message(msg);
        }
    });
}

/// A binding event of the group's type (the group's subscription): members appear and go.
/// In a node-scope group only this node's bindings count.
pub(crate) fn handle_binding(ctx: &NodeCtx, inner: &GroupInner, ev: &TopoEvent) {
    inner.drive(ctx, |st| {
        if !st.core.is_joined() {
            return;
        }
        let cfg = st.core.config();
        if cfg.scope == Scope::Node && ev.port.node != ctx.own_addr {
            return;
        }
        match ev.kind {
            EventKind::Published => st.core.handle_member_published(ev.port, ev.found_lower),
            EventKind::Withdrawn => st.core.handle_member_withdrawn(ev.port, ev.found_lower),
            EventKind::Timeout => {}
        }
    });
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

/// Leave (`tipc_sk_leave`): GRP_LEAVE to every member, then the socket is closed. The caller
/// withdraws the binding and unregisters the port afterwards, so the LEAVEs go first.
pub(crate) fn leave_now(ctx: &NodeCtx, inner: &GroupInner) {
    inner.drive(ctx, |st| {
        st.core.leave();
        st.closed = true;
    });
    inner.readable.notify_waiters();
    inner.writable.notify_waiters();
}

/// Send what the member's core queued, in its order, whoever queued it: one task at a time
/// sends, and a task that finds another at it leaves its messages to that one (which looks
/// again before it stops). No lock is held while a message is sent: a copy for this node
/// is delivered at once, possibly to this very member.
pub(crate) fn push_out(ctx: &NodeCtx, inner: &GroupInner) {
    loop {
        if inner
            .sending
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return;
        }
        loop {
            let batch: Vec<Transmit> = {
                let mut st = inner.lock();
                std::iter::from_fn(|| st.core.poll_transmit()).collect()
            };
            if batch.is_empty() {
                break;
            }
            for t in batch {
                transmit(ctx, t);
            }
        }
        inner.sending.store(false, Ordering::SeqCst);
        if !inner.lock().core.has_transmit() {
            return;
        }
    }
}

/// One message of the core on its way: to one node's link (or this node's dispatch), or a
/// broadcast as replicast copies to the member nodes.
fn transmit(ctx: &NodeCtx, t: Transmit) {
    match t {
        Transmit::Node { node, msg } => {
            let msg = msg
                .try_into_mut()
                .unwrap_or_else(|m| BytesMut::from(&m[..]));
            if ctx.is_own(node) {
                route_out(ctx, msg);
            } else {
                enqueue_to_peer(ctx, node, msg);
            }
        }
        Transmit::Members { nodes, msg, .. } => {
            let mut local = false;
            for n in nodes {
                if ctx.is_own(n) {
                    local = true;
                } else if let Some(copy) = replicast_copy(&msg, n) {
                    enqueue_to_peer(ctx, n, copy);
                }
            }
            if local {
                let mut d = Deliveries::new(ctx);
                d.input(InputQueue::Mcast, msg);
                d.flush();
            }
        }
    }
}
