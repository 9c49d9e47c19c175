//! Datagram sockets, the user's handle (kernel `socket.c`, connectionless path), spec
//! §9.1–9.3.
//!
//! A [`SocketInbox`] holds one socket's [`RecvQueue`] behind a mutex (never held across an
//! `await`) and is the socket's entry in the node's port registry; a [`DgramSocket`] is the
//! user's handle. Whoever delivers a message (a peer actor, the name table actor, a local
//! sender) queues it in the inbox and wakes the waiting receivers directly, so a received
//! message costs no actor hop between the link and the user. Unicast and anycast sends resolve
//! the destination in the node's binding table themselves and post the message to the
//! destination node's send queue (or deliver it to a local socket) without a round trip to
//! the name table actor; multicast goes through that actor. Dropping a socket (even in a
//! panicking task) withdraws its bindings and returns its queued messages at once.

use crate::addr::{Scope, ServiceAddr, ServiceRange, SocketAddr};
use crate::ctx::{NodeCtx, Port};
use crate::msg::SendMcast;
use crate::name_table::Publication;
use crate::route::Deliveries;
use crate::send::{post, try_post};
use crate::socket::mcast::McastFilter;
use crate::socket::rcv::resolve_anycast;
use crate::socket::{
    bind_publication, build_direct, build_mcast, build_named, McastMethod, Offer, Received,
    RecvQueue, SendOpts, SocketError,
};
pub use crate::socket::{BindError, DgramError};
use bytes::{Bytes, BytesMut};
use std::sync::{Arc, Mutex, MutexGuard};
use tipc_transport::NodeAddr;
use tokio::sync::Notify;

/// The receive side of one datagram socket, shared by its handle and the deliverers.
#[derive(Debug)]
pub struct SocketInbox {
    q: Mutex<InboxState>,
    ready: Notify,
}

#[derive(Debug)]
struct InboxState {
    q: RecvQueue,
    /// Multicasts held across a sender's method switch.
    filter: McastFilter,
    closed: bool,
}

impl SocketInbox {
    fn new() -> SocketInbox {
        SocketInbox {
            q: Mutex::new(InboxState {
                q: RecvQueue::new(),
                filter: McastFilter::default(),
                closed: false,
            }),
            ready: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, InboxState> {
        // A panic while holding the lock leaves a consistent queue: take it over.
        self.q.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Close the queue: what it holds goes back to the senders who asked for it.
    fn close(&self, ctx: &NodeCtx) {
        let returned = {
            let mut st = self.lock();
            st.closed = true;
            st.q.close(ctx.own_addr)
        };
        self.ready.notify_waiters();
        route_returned(ctx, returned);
    }
}

impl Port for SocketInbox {
    /// Queue messages for this socket (`tipc_sk_filter_rcv`) and wake the receivers. Messages
    /// the queue refuses are returned to their senders if they asked for it.
    fn deliver(&self, ctx: &NodeCtx, msgs: Vec<Bytes>) {
        let own = ctx.own_addr;
        let mut returned = Vec::new();
        let mut accepted = false;
        {
            let mut st = self.lock();
            for msg in msgs {
                if st.closed {
                    // Closed after the deliverer looked us up: as for a missing port.
                    returned.extend(crate::socket::reverse(
                        &msg,
                        tipc_transport::wire::ErrorCode::NoPort,
                        own,
                    ));
                    continue;
                }
                let InboxState { q, filter, .. } = &mut *st;
                filter.filter(msg, &mut |m| match q.offer(m, own) {
                    Offer::Accepted => accepted = true,
                    Offer::Rejected {
                        returned: Some(ret),
                        ..
                    } => returned.push(ret),
                    _ => {}
                });
            }
        }
        if accepted {
            self.ready.notify_waiters();
        }
        route_returned(ctx, returned);
    }

    fn node_lost(&self, _: &NodeCtx, _: NodeAddr) {}

    fn is_datagram(&self) -> bool {
        true
    }
}

/// Send rejected messages back where their headers say.
fn route_returned(ctx: &NodeCtx, returned: Vec<BytesMut>) {
    if returned.is_empty() {
        return;
    }
    let mut d = Deliveries::new(ctx);
    for ret in returned {
        d.route_out(ret);
    }
    d.flush();
}

/// A datagram socket's receive queue at one moment ([`DgramSocket::queue_stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    /// Messages waiting to be read.
    pub len: usize,
    /// Bytes charged for them.
    pub bytes: usize,
    /// The queue's counters since the socket opened.
    pub counters: crate::socket::RecvStats,
}

/// The two connectionless socket types (§9.1). Both are reliable node to node and both drop an
/// undeliverable message unless made returnable; the only wire difference is that DGRAM sets
/// w0 bit 18 (`src_droppable`), which no kernel code reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DgramKind {
    /// `SOCK_RDM` (reliable datagrams).
    #[default]
    Rdm,
    /// `SOCK_DGRAM`.
    Dgram,
}

/// A connectionless socket (SOCK_RDM by default; DGRAM differs only in the header bit 18).
pub struct DgramSocket {
    ctx: Arc<NodeCtx>,
    port: u32,
    inbox: Arc<SocketInbox>,
    opts: SendOpts,
    binds: u32,
    bound: Mutex<Vec<Publication>>,
    closed: std::sync::atomic::AtomicBool,
    /// The multicast method (replicast or broadcast link) and its expiry.
    mcast: Mutex<McastMethod>,
}

impl DgramSocket {
    /// A socket of `kind` on a fresh port, registered with the node.
    pub(crate) fn open(ctx: Arc<NodeCtx>, kind: DgramKind) -> DgramSocket {
        let port = ctx.alloc_port();
        let inbox = Arc::new(SocketInbox::new());
        ctx.ports.insert(port, inbox.clone());
        DgramSocket {
            ctx,
            port,
            inbox,
            opts: match kind {
                DgramKind::Rdm => SendOpts::RDM,
                DgramKind::Dgram => SendOpts::DGRAM,
            },
            binds: 0,
            bound: Mutex::new(Vec::new()),
            closed: std::sync::atomic::AtomicBool::new(false),
            mcast: Mutex::new(McastMethod::default()),
        }
    }

    /// The socket type it was opened as.
    pub fn kind(&self) -> DgramKind {
        if self.opts.src_droppable {
            DgramKind::Dgram
        } else {
            DgramKind::Rdm
        }
    }

    /// This socket's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr {
            node: self.ctx.own_addr,
            port: self.port,
        }
    }

    /// Its receive queue now: messages waiting, the bytes charged for them, and the queue's
    /// counters (read-only; for metrics).
    pub fn queue_stats(&self) -> QueueStats {
        let st = self.inbox.lock();
        QueueStats {
            len: st.q.len(),
            bytes: st.q.queued_bytes(),
            counters: *st.q.stats(),
        }
    }

    /// Rejected messages come back with an error code instead of being dropped
    /// (`TIPC_DEST_DROPPABLE` = 0). Default: dropped.
    pub fn set_returnable(&mut self, returnable: bool) {
        self.opts.dest_droppable = !returnable;
    }

    /// Message importance 0 (LOW) ..= 3 (CRITICAL).
    pub fn set_importance(&mut self, importance: u8) -> Result<(), SocketError> {
        if importance > 3 {
            return Err(SocketError::BadImportance(importance));
        }
        self.opts.importance = importance;
        Ok(())
    }

    /// Receive buffer size (512 KiB ..= 16 MiB; default 2 MiB).
    pub async fn set_rcvbuf(&self, bytes: usize) -> Result<(), SocketError> {
        self.inbox.lock().q.set_rcvbuf(bytes)
    }

    /// Bind a service range (`bind()` with `TIPC_SERVICE_RANGE`); types below 64 are
    /// reserved. The key is `port + number of previous binds + 1`, as the kernel's.
    pub async fn bind(&mut self, range: ServiceRange, scope: Scope) -> Result<(), BindError> {
        let p = bind_publication(self.addr(), range, scope, self.binds + 1)?;
        self.binds += 1;
        self.ctx.publish(p).await?;
        self.bound().push(p);
        Ok(())
    }

    /// Withdraw a binding made with [`DgramSocket::bind`] (same range).
    pub async fn unbind(&mut self, range: ServiceRange) -> bool {
        let p = {
            let mut bound = self.bound();
            let Some(i) = bound.iter().position(|p| p.range == range) else {
                return false;
            };
            bound.remove(i)
        };
        self.ctx.withdraw(p.range, p.port, p.key).await.is_some()
    }

    /// Send to a socket address (DIRECT_MSG).
    pub async fn send_to_socket(&self, dest: SocketAddr, data: &[u8]) -> Result<(), DgramError> {
        let msg = build_direct(self.addr(), dest, &self.opts, data)?;
        self.send_built(msg).await
    }

    /// Send a message whose header names its destination node: straight to the peer actor, or
    /// to a local socket, without a round trip per message.
    async fn send_built(&self, msg: BytesMut) -> Result<(), DgramError> {
        let dest = tipc_transport::wire::Header::new_unchecked(&msg[..]).destnode();
        if !self.ctx.is_own(dest) {
            return if post(&self.ctx, dest, msg).await {
                Ok(())
            } else {
                Err(DgramError::NoNode)
            };
        }
        crate::route::route_out(&self.ctx, msg);
        Ok(())
    }

    /// Build a message to `dest` without sending it (see [`Prepared`]).
    pub fn prepare_to_socket(&self, dest: SocketAddr, data: &[u8]) -> Result<Prepared, DgramError> {
        Ok(Prepared {
            msg: build_direct(self.addr(), dest, &self.opts, data)?,
            dest,
        })
    }

    /// Build an anycast to `name` and choose its destination now (the lookup's round robin
    /// moves on), without sending it: the caller can look at [`Prepared::dest`] first.
    pub fn prepare_anycast(&self, name: ServiceAddr, data: &[u8]) -> Result<Prepared, DgramError> {
        let mut msg = build_named(
            self.addr(),
            name,
            SocketAddr { node: 0, port: 0 },
            Scope::Cluster,
            &self.opts,
            data,
        )?;
        let Some(node) = resolve_anycast(&mut self.ctx.table(), name, &mut msg) else {
            return Err(DgramError::NoDestination);
        };
        let port = tipc_transport::wire::Header::new_unchecked(&msg[..]).destport();
        Ok(Prepared {
            msg,
            dest: SocketAddr { node, port },
        })
    }

    /// Send a prepared message (waits only while the link is congested).
    pub async fn send_prepared(&self, p: Prepared) -> Result<(), DgramError> {
        self.send_built(p.msg).await
    }

    /// Send a prepared message without waiting; while the link to its node is congested it
    /// comes back with [`DgramError::Congested`].
    pub fn try_send_prepared(&self, p: Prepared) -> Result<(), (DgramError, Prepared)> {
        if !self.ctx.is_own(p.dest.node) {
            let dest = p.dest;
            return match try_post(&self.ctx, dest.node, p.msg) {
                Ok(true) => Ok(()),
                Ok(false) => Err((
                    DgramError::NoNode,
                    Prepared {
                        msg: BytesMut::new(),
                        dest,
                    },
                )),
                Err(msg) => Err((DgramError::Congested, Prepared { msg, dest })),
            };
        }
        crate::route::route_out(&self.ctx, p.msg);
        Ok(())
    }

    /// Send to a service address: anycast, round-robin among the matching bindings (the
    /// kernel's per-range rotation, `tipc_nametbl_lookup_anycast`).
    pub async fn send_to_service(&self, name: ServiceAddr, data: &[u8]) -> Result<(), DgramError> {
        self.send_anycast(name, data).await.map(|_| ())
    }

    /// [`send_to_service`](Self::send_to_service), telling which socket the lookup chose
    /// (where a reply or a node-down event will come from).
    pub async fn send_anycast(
        &self,
        name: ServiceAddr,
        data: &[u8],
    ) -> Result<SocketAddr, DgramError> {
        let p = self.prepare_anycast(name, data)?;
        let dest = p.dest;
        self.send_prepared(p).await.map(|_| dest)
    }

    /// Send to a service range: multicast, one copy to every socket bound in it.
    pub async fn send_to_range(&self, range: ServiceRange, data: &[u8]) -> Result<(), DgramError> {
        let msg = build_mcast(self.addr(), range, &self.opts, data)?;
        let names = self.ctx.names().ok_or(DgramError::Stopped)?;
        let method = *self.mcast.lock().unwrap_or_else(|p| p.into_inner());
        let m = names
            .mcast
            .send(SendMcast { msg, range, method })
            .await
            .unwrap_or(Err(DgramError::Stopped))?;
        *self.mcast.lock().unwrap_or_else(|p| p.into_inner()) = m;
        Ok(())
    }

    /// The next received message (data, or one of ours returned with an error code); `None`
    /// once the socket is closed. Cancel-safe: a message is taken only when returned.
    pub async fn recv(&self) -> Option<Received> {
        self.recv_with(|st| st.q.recv()).await
    }

    /// Up to `max` received messages at once (at least one: waits for the first), like
    /// `recvmmsg`. Empty once the socket is closed.
    pub async fn recv_batch(&self, max: usize) -> Vec<Received> {
        let max = max.max(1);
        self.recv_with(|st| {
            let mut v = Vec::new();
            while v.len() < max {
                match st.q.recv() {
                    Some(r) => v.push(r),
                    None => break,
                }
            }
            (!v.is_empty()).then_some(v)
        })
        .await
        .unwrap_or_default()
    }

    /// Wait until `take` finds something in the queue (or the socket is closed).
    async fn recv_with<T>(&self, mut take: impl FnMut(&mut InboxState) -> Option<T>) -> Option<T> {
        loop {
            let ready = self.inbox.ready.notified();
            tokio::pin!(ready);
            // Registered before looking, so a delivery in between is not missed.
            ready.as_mut().enable();
            {
                let mut st = self.inbox.lock();
                if let Some(v) = take(&mut st) {
                    return Some(v);
                }
                if st.closed {
                    return None;
                }
            }
            ready.await;
        }
    }

    /// Close: bindings withdrawn (done when this returns), queued messages rejected (returned
    /// if their sender asked).
    pub async fn close(self) {
        self.shutdown().await;
    }

    /// [`close`](Self::close) through a shared handle: bindings withdrawn (done when this
    /// returns), queued messages rejected, later receives end; sends still work.
    pub async fn shutdown(&self) {
        let bound = std::mem::take(&mut *self.bound());
        for p in bound {
            let _ = self.ctx.withdraw(p.range, p.port, p.key).await;
        }
        self.shut();
    }

    fn bound(&self) -> MutexGuard<'_, Vec<Publication>> {
        self.bound.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Unregister the port and close the queue; withdraw what is still bound without
    /// waiting.
    fn shut(&self) {
        if self.closed.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        for p in std::mem::take(&mut *self.bound()) {
            self.ctx.withdraw_now(p);
        }
        self.ctx.ports.remove(&self.port);
        self.inbox.close(&self.ctx);
    }
}

/// A datagram built and addressed by [`DgramSocket::prepare_anycast`] or
/// [`DgramSocket::prepare_to_socket`], not sent yet.
#[derive(Debug)]
pub struct Prepared {
    msg: BytesMut,
    dest: SocketAddr,
}

impl Prepared {
    /// Where it goes (for an anycast deferred to another node's lookup, the port is 0).
    pub fn dest(&self) -> SocketAddr {
        self.dest
    }
}

impl Drop for DgramSocket {
    /// As [`DgramSocket::close`], without waiting: the withdrawals reach the name table (and
    /// the cluster) after this returns, queued messages go back at once.
    fn drop(&mut self) {
        self.shut();
    }
}
