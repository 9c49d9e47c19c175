//! Communication group members, the user's handle (kernel `socket.c`: `setsockopt
//! (TIPC_GROUP_JOIN)`, `tipc_send_group_*`, `recvmsg` on a group socket,
//! `setsockopt(TIPC_GROUP_LEAVE)`). Spec tipc-protocol.md §10.
//!
//! [`GroupMember`] is one member socket of one group, made by
//! [`crate::TransportNode::join`]. It sends in four modes ([`GroupMember::broadcast`],
//! [`GroupMember::multicast`], [`GroupMember::anycast`], [`GroupMember::unicast`]); each waits
//! while a destination's window is closed (the kernel's blocking send), and its `try_` form
//! hands the message back instead ([`GroupSendError::Congested`]). [`GroupMember::recv`] gives
//! data and member events in one ordered stream: per sender, in its send order across modes,
//! and a member's leave after its last message. Dropping the handle leaves the group.

use crate::actor::group::{join_now, leave_now, pump_bindings, retire, GroupInner};
use crate::addr::{Scope, ServiceAddr, ServiceRange, SocketAddr};
use crate::ctx::NodeCtx;
use crate::group::{
    Cast, GroupConfig, GroupCore, GroupDest, GroupError, GroupEvent, GroupSock, GroupStats,
    MemberInfo, SockStats,
};
use crate::msg::Subscribe;
use crate::name_table::Publication;
use crate::socket::{bind_publication, BindError};
use crate::topsrv::Subscription;
use bytes::Bytes;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

pub use crate::group::GroupSendError;

/// What to join (`struct tipc_group_req` and its flags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupSpec {
    /// The group: a service type of 64 or more.
    pub type_: u32,
    /// This member's instance.
    pub instance: u32,
    /// Cluster (the default) or node scope.
    pub scope: Scope,
    /// Member events ([`GroupRecv::MemberUp`], [`GroupRecv::MemberDown`]) in the stream.
    pub events: bool,
    /// The member gets its own broadcasts, multicasts and anycasts.
    pub loopback: bool,
}

impl GroupSpec {
    /// Member `instance` of group `type_`, cluster scope, no events, no loopback.
    pub fn new(type_: u32, instance: u32) -> GroupSpec {
        GroupSpec {
            type_,
            instance,
            scope: Scope::Cluster,
            events: false,
            loopback: false,
        }
    }

    /// With member events.
    pub fn with_events(mut self) -> GroupSpec {
        self.events = true;
        self
    }

    /// With loopback.
    pub fn with_loopback(mut self) -> GroupSpec {
        self.loopback = true;
        self
    }

    /// With this scope.
    pub fn with_scope(mut self, scope: Scope) -> GroupSpec {
        self.scope = scope;
        self
    }
}

/// Why a join failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The request itself (a reserved type).
    #[error(transparent)]
    Group(#[from] GroupError),
    /// The binding could not be made.
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The node is stopping.
    #[error("node stopped")]
    Stopped,
}

/// How a received message was sent, as far as the wire tells (a kernel sender's anycast and
/// unicast are both GRP_UCAST).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// GRP_BCAST.
    Broadcast,
    /// GRP_MCAST to our instance.
    Multicast,
    /// GRP_UCAST: a unicast, an anycast, or a multicast that had one target.
    Unicast,
}

impl Mode {
    /// `bcast`, `mcast` or `ucast`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Broadcast => "bcast",
            Mode::Multicast => "mcast",
            Mode::Unicast => "ucast",
        }
    }
}

/// What [`GroupMember::recv`] gives, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupRecv {
    /// A data message.
    Message {
        /// The sending member socket.
        from: SocketAddr,
        /// The sender's member address: the group type and its instance.
        member: ServiceAddr,
        /// How it was sent.
        mode: Mode,
        /// The payload.
        data: Bytes,
    },
    /// A member joined (before any of its messages).
    MemberUp {
        /// Its member address.
        member: ServiceAddr,
        /// Its socket.
        sock: SocketAddr,
    },
    /// A member left or its node was lost (after its last message).
    MemberDown {
        /// Its member address.
        member: ServiceAddr,
        /// Its socket.
        sock: SocketAddr,
    },
}

/// A member's counters: the core's and the driver's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemberStats {
    /// The protocol core's.
    pub core: GroupStats,
    /// The socket's (early, over-buffer and after-leave drops, the queue's peak).
    pub driver: SockStats,
    /// Bytes waiting to be read now.
    pub queued_bytes: usize,
}

/// One member socket of a communication group (see the module docs).
pub struct GroupMember {
    ctx: Arc<NodeCtx>,
    inner: Arc<GroupInner>,
    own: SocketAddr,
    spec: GroupSpec,
    publ: Publication,
    /// Taken by the first leave (a shared handle may leave: [`GroupMember::leave_shared`]).
    stop: std::sync::Mutex<Option<oneshot::Sender<()>>>,
}

impl GroupMember {
    /// Join (`tipc_sk_join`): a fresh port, a subscription to the group's bindings, the
    /// member binding published, then the core joins the members the table holds.
    pub(crate) async fn join(ctx: Arc<NodeCtx>, spec: GroupSpec) -> Result<GroupMember, JoinError> {
        let flags = u32::from(spec.loopback) * crate::group::GROUP_LOOPBACK
            + u32::from(spec.events) * crate::group::GROUP_MEMBER_EVTS;
        let cfg = GroupConfig::from_request(spec.type_, spec.instance, spec.scope as u32, flags)?;
        let port = ctx.alloc_port();
        let own = SocketAddr {
            node: ctx.own_addr,
            port,
        };
        let core = GroupCore::new(own, cfg)?;
        let (range, scope) = core.binding();
        let publ = bind_publication(own, range, scope, 0)?;
        let inner = GroupInner::new(GroupSock::new(core));
        ctx.ports.insert(port, inner.clone());
        let fail = |ctx: &NodeCtx, e: JoinError| {
            ctx.ports.remove(&port);
            Err(e)
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let Some(names) = ctx.names() else {
            return fail(&ctx, JoinError::Stopped);
        };
        let whole = ServiceRange::new(spec.type_, 0, u32::MAX).expect("0 <= MAX");
        let sub = Subscription::ports(whole);
        match names.subscribe.send(Subscribe { sub, events: tx }).await {
            Ok(Ok(_)) => {}
            _ => return fail(&ctx, JoinError::Stopped),
        }
        if let Err(e) = ctx.publish(publ).await {
            return fail(&ctx, e.into());
        }
        join_now(&ctx, &inner);
        let (stop_tx, stop_rx) = oneshot::channel();
        actix::spawn(pump_bindings(ctx.clone(), inner.clone(), rx, stop_rx));
        Ok(GroupMember {
            ctx,
            inner,
            own,
            spec,
            publ,
            stop: std::sync::Mutex::new(Some(stop_tx)),
        })
    }

    /// This member's socket address.
    pub fn addr(&self) -> SocketAddr {
        self.own
    }

    /// This member's member address `{type, instance}`.
    pub fn member(&self) -> ServiceAddr {
        ServiceAddr {
            type_: self.spec.type_,
            instance: self.spec.instance,
        }
    }

    /// What it joined with.
    pub fn spec(&self) -> GroupSpec {
        self.spec
    }

    /// Send to every member (GRP_BCAST), waiting while a window is closed.
    pub async fn broadcast(&self, data: impl Into<Bytes>) -> Result<(), GroupSendError> {
        self.send(GroupDest::Broadcast, data.into()).await
    }

    /// Send to every member with `instance` (GRP_MCAST; the kernel's group multicast names
    /// one instance, the range's lower bound), waiting while a window is closed.
    pub async fn multicast(
        &self,
        instance: u32,
        data: impl Into<Bytes>,
    ) -> Result<(), GroupSendError> {
        self.send(GroupDest::Multicast(instance), data.into()).await
    }

    /// Send to one member with `instance`, round robin, preferring one whose window takes
    /// it (GRP_UCAST), waiting while none does.
    pub async fn anycast(
        &self,
        instance: u32,
        data: impl Into<Bytes>,
    ) -> Result<(), GroupSendError> {
        self.send(GroupDest::Anycast(instance), data.into()).await
    }

    /// Send to one member socket (GRP_UCAST), waiting while its window is closed.
    pub async fn unicast(
        &self,
        to: SocketAddr,
        data: impl Into<Bytes>,
    ) -> Result<(), GroupSendError> {
        self.send(GroupDest::Member(to), data.into()).await
    }

    /// [`broadcast`](Self::broadcast) without waiting.
    pub fn try_broadcast(&self, data: impl Into<Bytes>) -> Result<(), GroupSendError> {
        self.try_send(GroupDest::Broadcast, data.into())
    }

    /// [`multicast`](Self::multicast) without waiting.
    pub fn try_multicast(
        &self,
        instance: u32,
        data: impl Into<Bytes>,
    ) -> Result<(), GroupSendError> {
        self.try_send(GroupDest::Multicast(instance), data.into())
    }

    /// [`anycast`](Self::anycast) without waiting.
    pub fn try_anycast(&self, instance: u32, data: impl Into<Bytes>) -> Result<(), GroupSendError> {
        self.try_send(GroupDest::Anycast(instance), data.into())
    }

    /// [`unicast`](Self::unicast) without waiting.
    pub fn try_unicast(
        &self,
        to: SocketAddr,
        data: impl Into<Bytes>,
    ) -> Result<(), GroupSendError> {
        self.try_send(GroupDest::Member(to), data.into())
    }

    /// Send to `dest`, waiting while a window is closed; the other errors at once, with the
    /// message handed back. Cancel-safe: dropped while waiting, nothing was sent.
    pub async fn send(&self, dest: GroupDest, data: Bytes) -> Result<(), GroupSendError> {
        // The common case costs no waiter.
        let mut data = match self.attempt(dest, data) {
            Err(GroupSendError::Congested(d)) => d,
            r => return r,
        };
        let mut guard = Abandon {
            ctx: &self.ctx,
            inner: &self.inner,
            armed: true,
        };
        loop {
            let woken = self.inner.writable.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            // Again once registered: a wake-up between the first attempt and now is not lost.
            match self.attempt(dest, data) {
                Err(GroupSendError::Congested(d)) => {
                    data = d;
                    woken.await;
                }
                r => {
                    guard.armed = false;
                    return r;
                }
            }
        }
    }

    /// Send to `dest` once: [`GroupSendError::Congested`] hands the message back when a
    /// window is closed.
    pub fn try_send(&self, dest: GroupDest, data: Bytes) -> Result<(), GroupSendError> {
        let r = self.attempt(dest, data);
        if matches!(r, Err(GroupSendError::Congested(_))) {
            self.inner.drive(&self.ctx, |st| st.abandon_send());
        }
        r
    }

    fn attempt(&self, dest: GroupDest, data: Bytes) -> Result<(), GroupSendError> {
        self.inner.drive(&self.ctx, |st| st.send(dest, data))
    }

    /// The next message or member event; `None` once the member left (or the node stopped)
    /// and everything queued was read.
    pub async fn recv(&self) -> Option<GroupRecv> {
        if let Some(r) = self.try_recv() {
            return Some(r);
        }
        loop {
            let woken = self.inner.readable.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if let Some(r) = self.try_recv() {
                return Some(r);
            }
            if self.inner.lock().is_closed() {
                return None;
            }
            woken.await;
        }
    }

    /// Up to `max` messages and member events at once (at least one: waits for the first),
    /// in order, like `recvmmsg`. Empty once the member left and everything was read.
    pub async fn recv_batch(&self, max: usize) -> Vec<GroupRecv> {
        let max = max.max(1);
        loop {
            let v = self.try_recv_batch(max);
            if !v.is_empty() {
                return v;
            }
            let woken = self.inner.readable.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let v = self.try_recv_batch(max);
            if !v.is_empty() || self.inner.lock().is_closed() {
                return v;
            }
            woken.await;
        }
    }

    fn try_recv_batch(&self, max: usize) -> Vec<GroupRecv> {
        self.inner.drive(&self.ctx, |st| {
            std::iter::from_fn(|| st.read())
                .take(max)
                .map(Self::delivery)
                .collect()
        })
    }

    /// The next message or member event if one is queued.
    pub fn try_recv(&self) -> Option<GroupRecv> {
        let ev = self.inner.drive(&self.ctx, |st| st.read())?;
        Some(Self::delivery(ev))
    }

    fn delivery(ev: GroupEvent) -> GroupRecv {
        match ev {
            GroupEvent::Message(m) => GroupRecv::Message {
                from: m.from,
                member: m.service,
                mode: match m.cast {
                    Cast::Broadcast => Mode::Broadcast,
                    Cast::Multicast(_) => Mode::Multicast,
                    Cast::Unicast => Mode::Unicast,
                },
                data: m.payload(),
            },
            GroupEvent::MemberUp { member, service } => GroupRecv::MemberUp {
                member: service,
                sock: member,
            },
            GroupEvent::MemberDown { member, service } => GroupRecv::MemberDown {
                member: service,
                sock: member,
            },
        }
    }

    /// The other members as the core knows them (any state; itself with loopback).
    pub fn members(&self) -> Vec<MemberInfo> {
        self.inner.lock().core().members().collect()
    }

    /// Members that completed the join both ways (JOINED or later, not leaving).
    pub fn members_up(&self) -> usize {
        self.inner
            .lock()
            .core()
            .members()
            .filter(|m| m.addr != self.own && m.state.is_receiver())
            .count()
    }

    /// Counters.
    pub fn stats(&self) -> MemberStats {
        let st = self.inner.lock();
        MemberStats {
            core: st.core().stats(),
            driver: st.stats(),
            queued_bytes: st.queued_bytes(),
        }
    }

    /// Leave the group (as dropping the handle does): GRP_LEAVE to every member, then the
    /// binding is withdrawn; what was queued and not read is dropped.
    pub fn leave(self) {
        self.leave_inner();
    }

    /// [`leave`](Self::leave) through a shared handle (a member held in an `Arc`); later
    /// sends fail with `NotJoined`, receives end once the queue is read.
    pub fn leave_shared(&self) {
        self.leave_inner();
    }

    fn leave_inner(&self) {
        let stop = self.stop.lock().unwrap_or_else(|p| p.into_inner()).take();
        let Some(stop) = stop else {
            return;
        };
        leave_now(&self.ctx, &self.inner);
        self.ctx.withdraw_now(self.publ);
        self.ctx.ports.remove(&self.own.port);
        retire(&self.ctx, &self.inner);
        let _ = stop.send(());
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        self.leave_inner();
    }
}

/// Forgets a blocked anycast's chosen member if the waiting send is dropped.
struct Abandon<'a> {
    ctx: &'a NodeCtx,
    inner: &'a GroupInner,
    armed: bool,
}

impl Drop for Abandon<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.inner.drive(self.ctx, |st| st.abandon_send());
        }
    }
}
