//! Datagram sockets (kernel `socket.c`, connectionless path), spec §9.1–9.3.
//!
//! A [`SocketInbox`] holds one socket's [`RecvQueue`] behind a mutex (never held across an
//! `await`); a [`DgramSocket`] is the user's handle. Whoever delivers a message (a peer actor,
//! the name table actor, a local sender) queues it in the inbox and wakes the waiting receivers
//! directly, so a received message costs no actor hop between the link and the user. Unicast and
//! anycast sends resolve the destination in the node's binding table themselves and post the
//! message to the destination node's peer actor (or deliver it to a local socket) without a
//! round trip to the [`crate::names::NameTable`] actor; multicast goes through that actor.
//! Received messages come from the peer actor, or through the name table actor when name-table
//! updates from that peer are still pending (see [`crate::names`]).

use crate::addr::{Scope, ServiceAddr, ServiceRange, SocketAddr};
use crate::binding::AnycastResult;
use crate::binding::{BindingError, Publication};
use crate::names::{LocalBatch, SendKind};
use crate::node::{Shared, TransportNode};
use crate::socket::{
    build_direct, build_mcast, build_named, Offer, Received, RecvQueue, SendOpts, SocketError,
};
use bytes::{Bytes, BytesMut};
use std::sync::{Mutex, MutexGuard};
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
    closed: bool,
}

impl SocketInbox {
    fn new() -> SocketInbox {
        SocketInbox {
            q: Mutex::new(InboxState {
                q: RecvQueue::new(),
                closed: false,
            }),
            ready: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, InboxState> {
        // A panic while holding the lock leaves a consistent queue: take it over.
        self.q.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue messages for this socket (`tipc_sk_filter_rcv`) and wake the receivers. Messages
    /// the queue refuses are returned to their senders if they asked for it.
    pub(crate) fn deliver(&self, shared: &Shared, msgs: Vec<Bytes>) {
        let own = shared.own_addr;
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
                match st.q.offer(msg, own) {
                    Offer::Accepted => accepted = true,
                    Offer::Rejected {
                        returned: Some(ret),
                        ..
                    } => returned.push(ret),
                    _ => {}
                }
            }
        }
        if accepted {
            self.ready.notify_waiters();
        }
        route_returned(shared, returned);
    }
}

/// Send rejected messages back where their headers say.
fn route_returned(shared: &Shared, returned: Vec<BytesMut>) {
    if returned.is_empty() {
        return;
    }
    let mut out = LocalBatch::default();
    for ret in returned {
        crate::names::route_out(shared, ret, &mut out);
    }
    out.flush(shared);
}

/// Why a datagram send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DgramError {
    /// Building the message failed (too large, bad importance, bad range).
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// No binding matches the service address or range (the kernel's `EHOSTUNREACH`).
    #[error("no binding for the destination")]
    NoDestination,
    /// The destination node is not reachable.
    #[error("destination node unreachable")]
    NoNode,
    /// The node is stopping.
    #[error("node stopped")]
    Stopped,
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
    node: TransportNode,
    port: u32,
    inbox: std::sync::Arc<SocketInbox>,
    opts: SendOpts,
    binds: u32,
    bound: Vec<Publication>,
}

impl DgramSocket {
    pub(crate) fn open(node: TransportNode, port: u32, kind: DgramKind) -> DgramSocket {
        let inbox = std::sync::Arc::new(SocketInbox::new());
        node.register_socket(port, inbox.clone());
        DgramSocket {
            node,
            port,
            inbox,
            opts: match kind {
                DgramKind::Rdm => SendOpts::RDM,
                DgramKind::Dgram => SendOpts::DGRAM,
            },
            binds: 0,
            bound: Vec::new(),
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
            node: self.node.addr(),
            port: self.port,
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
        if range.type_ < crate::addr::RESERVED_TYPES {
            return Err(BindError::Reserved);
        }
        if range.lower > range.upper {
            return Err(BindError::Table(BindingError::InvalidRange {
                lower: range.lower,
                upper: range.upper,
            }));
        }
        self.binds += 1;
        let p = Publication {
            range,
            scope,
            node: self.node.addr(),
            port: self.port,
            key: self.port.wrapping_add(self.binds),
        };
        self.node.publish(p).await.map_err(BindError::Table)?;
        self.bound.push(p);
        Ok(())
    }

    /// Withdraw a binding made with [`DgramSocket::bind`] (same range).
    pub async fn unbind(&mut self, range: ServiceRange) -> bool {
        let Some(i) = self.bound.iter().position(|p| p.range == range) else {
            return false;
        };
        let p = self.bound.remove(i);
        self.node.withdraw(p.range, p.port, p.key).await.is_some()
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
        if dest != self.node.addr() && dest != 0 {
            return if self.node.post(dest, msg).await {
                Ok(())
            } else {
                Err(DgramError::NoNode)
            };
        }
        let mut out = LocalBatch::default();
        crate::names::route_out(self.node.shared(), msg, &mut out);
        out.flush(self.node.shared());
        Ok(())
    }

    /// Send to a service address: anycast, round-robin among the matching bindings (the
    /// kernel's per-range rotation, `tipc_nametbl_lookup_anycast`).
    pub async fn send_to_service(&self, name: ServiceAddr, data: &[u8]) -> Result<(), DgramError> {
        let mut msg = build_named(
            self.addr(),
            name,
            SocketAddr { node: 0, port: 0 },
            Scope::Cluster,
            &self.opts,
            data,
        )?;
        let found = self.node.shared().table().lookup_anycast(name, 0);
        let dest = match found {
            AnycastResult::Found(sock) => sock,
            AnycastResult::Deferred(node) => SocketAddr { node, port: 0 },
            AnycastResult::NotFound => return Err(DgramError::NoDestination),
        };
        {
            let mut h = tipc_transport::wire::Header::new_unchecked(&mut msg[..]);
            h.set(tipc_transport::wire::field::DESTNODE, dest.node);
            h.set(tipc_transport::wire::field::DESTPORT, dest.port);
        }
        self.send_built(msg).await
    }

    /// Send to a service range: multicast, one copy to every socket bound in it.
    pub async fn send_to_range(&self, range: ServiceRange, data: &[u8]) -> Result<(), DgramError> {
        let msg = build_mcast(self.addr(), range, &self.opts, data)?;
        self.node
            .send_from_socket(SendKind::Mcast(msg, range))
            .await
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

    /// Close: bindings withdrawn, queued messages rejected (returned if their sender asked).
    pub async fn close(mut self) {
        for p in std::mem::take(&mut self.bound) {
            let _ = self.node.withdraw(p.range, p.port, p.key).await;
        }
        self.node.unregister_socket(self.port);
        let own = self.node.addr();
        let returned = {
            let mut st = self.inbox.lock();
            st.closed = true;
            st.q.close(own)
        };
        self.inbox.ready.notify_waiters();
        route_returned(self.node.shared(), returned);
    }
}

/// Why a bind failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// Service types below 64 are reserved (the kernel's `EACCES`).
    #[error("service types below 64 are reserved")]
    Reserved,
    /// The table refused it.
    #[error("binding refused: {0:?}")]
    Table(BindingError),
}
