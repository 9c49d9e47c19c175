//! Datagram socket actors (kernel `socket.c`, connectionless path), spec §9.1–9.3.
//!
//! A [`SocketActor`] owns one [`RecvQueue`]; a [`DgramSocket`] is the user's handle. Unicast
//! and anycast sends resolve the destination in the node's binding table themselves and post
//! the message to the destination node's peer actor (or deliver it to a local socket) without a
//! round trip to the [`crate::names::NameTable`] actor; multicast goes through that actor.
//! Received messages reach the socket from the peer actor, or through the name table actor when
//! name-table updates from that peer are still pending (see [`crate::names`]).

use crate::addr::{Scope, ServiceAddr, ServiceRange, SocketAddr};
use crate::binding::AnycastResult;
use crate::binding::{BindingError, Publication};
use crate::names::{LocalBatch, Route, SendKind};
use crate::node::TransportNode;
use crate::socket::{
    build_direct, build_mcast, build_named, Offer, Received, RecvQueue, SendOpts, SocketError,
};
use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use tokio::sync::oneshot;

/// A message for this socket.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Incoming(pub Bytes);

/// Messages for this socket, in order.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct IncomingBatch(pub Vec<Bytes>);

/// Wait for the next received message.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RecvNext(pub oneshot::Sender<Received>);

/// Take up to `max` queued messages at once (waiting for the first if none is queued).
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct RecvBatch(pub usize, pub oneshot::Sender<Vec<Received>>);

/// Close: queued messages are rejected with NO_PORT.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Close;

/// Set the receive buffer size.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), SocketError>")]
pub struct SetRcvbuf(pub usize);

/// The actor owning one socket's receive queue.
pub struct SocketActor {
    node: TransportNode,
    port: u32,
    q: RecvQueue,
    waiters: VecDeque<oneshot::Sender<Received>>,
    /// Messages taken from the queue for a receiver that had gone away.
    pending: VecDeque<Received>,
    /// A batch receiver waiting for the first message.
    batch_waiter: Option<(usize, oneshot::Sender<Vec<Received>>)>,
}

impl SocketActor {
    /// Hand queued messages to waiting receivers. A message whose receiver gave up (its future
    /// was dropped) goes to the next receiver: nothing is lost.
    fn wake(&mut self) {
        if let Some((max, w)) = self.batch_waiter.take() {
            let batch = self.take(max);
            if batch.is_empty() {
                self.batch_waiter = Some((max, w));
            } else if let Err(back) = w.send(batch) {
                for r in back.into_iter().rev() {
                    self.pending.push_front(r);
                }
            }
        }
        while !self.waiters.is_empty() {
            let Some(r) = self.pending.pop_front().or_else(|| self.q.recv()) else {
                return;
            };
            let Some(w) = self.waiters.pop_front() else {
                self.pending.push_front(r);
                return;
            };
            if let Err(r) = w.send(r) {
                self.pending.push_front(r);
            }
        }
    }
}

impl SocketActor {
    fn take(&mut self, max: usize) -> Vec<Received> {
        let mut v = Vec::new();
        while v.len() < max {
            match self.pending.pop_front().or_else(|| self.q.recv()) {
                Some(r) => v.push(r),
                None => break,
            }
        }
        v
    }
}

impl Handler<RecvBatch> for SocketActor {
    type Result = ();
    fn handle(&mut self, m: RecvBatch, _: &mut Self::Context) {
        self.batch_waiter = Some((m.0.max(1), m.1));
        self.wake();
    }
}

impl Actor for SocketActor {
    type Context = Context<Self>;
}

impl Handler<Incoming> for SocketActor {
    type Result = ();
    fn handle(&mut self, m: Incoming, _: &mut Self::Context) {
        match self.q.offer(m.0, self.node.addr()) {
            Offer::Accepted => self.wake(),
            Offer::Rejected {
                returned: Some(ret),
                ..
            } => self.node.route(Route::Returned(ret)),
            _ => {}
        }
    }
}

impl Handler<IncomingBatch> for SocketActor {
    type Result = ();
    fn handle(&mut self, m: IncomingBatch, _: &mut Self::Context) {
        let own = self.node.addr();
        let mut accepted = false;
        for msg in m.0 {
            match self.q.offer(msg, own) {
                Offer::Accepted => accepted = true,
                Offer::Rejected {
                    returned: Some(ret),
                    ..
                } => self.node.route(Route::Returned(ret)),
                _ => {}
            }
        }
        if accepted {
            self.wake();
        }
    }
}

impl Handler<RecvNext> for SocketActor {
    type Result = ();
    fn handle(&mut self, m: RecvNext, _: &mut Self::Context) {
        self.waiters.push_back(m.0);
        self.wake();
    }
}

impl Handler<SetRcvbuf> for SocketActor {
    type Result = Result<(), SocketError>;
    fn handle(&mut self, m: SetRcvbuf, _: &mut Self::Context) -> Self::Result {
        self.q.set_rcvbuf(m.0)
    }
}

impl Handler<Close> for SocketActor {
    type Result = ();
    fn handle(&mut self, _: Close, ctx: &mut Self::Context) {
        self.node.unregister_socket(self.port);
        for ret in self.q.close(self.node.addr()) {
            self.node.route(Route::Returned(ret));
        }
        ctx.stop();
    }
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

/// A connectionless socket (SOCK_RDM by default; DGRAM differs only in the header bit 18).
pub struct DgramSocket {
    node: TransportNode,
    port: u32,
    actor: Addr<SocketActor>,
    opts: SendOpts,
    binds: u32,
    bound: Vec<Publication>,
}

impl DgramSocket {
    pub(crate) fn open(node: TransportNode, port: u32) -> DgramSocket {
        let actor = SocketActor {
            node: node.clone(),
            port,
            q: RecvQueue::new(),
            waiters: VecDeque::new(),
            pending: VecDeque::new(),
            batch_waiter: None,
        }
        .start();
        node.register_socket(port, actor.clone());
        DgramSocket {
            node,
            port,
            actor,
            opts: SendOpts::RDM,
            binds: 0,
            bound: Vec::new(),
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
        self.actor
            .send(SetRcvbuf(bytes))
            .await
            .unwrap_or(Err(SocketError::BadRcvbuf(bytes)))
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
        out.flush();
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

    /// The next received message (data, or one of ours returned with an error code).
    pub async fn recv(&self) -> Option<Received> {
        let (tx, rx) = oneshot::channel();
        // No reply from the actor itself: the answer comes through `rx` (dropped with the
        // message if the actor is gone).
        self.actor.do_send(RecvNext(tx));
        rx.await.ok()
    }

    /// Up to `max` received messages at once (at least one: waits for the first), like
    /// `recvmmsg`: one round trip to the socket for a whole batch.
    pub async fn recv_batch(&self, max: usize) -> Vec<Received> {
        let (tx, rx) = oneshot::channel();
        self.actor.do_send(RecvBatch(max, tx));
        rx.await.unwrap_or_default()
    }

    /// Close: bindings withdrawn, queued messages rejected (returned if their sender asked).
    pub async fn close(mut self) {
        for p in std::mem::take(&mut self.bound) {
            let _ = self.node.withdraw(p.range, p.port, p.key).await;
        }
        let _ = self.actor.send(Close).await;
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
