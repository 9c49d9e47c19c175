//! Connection sockets, the user's handles (kernel `socket.c`, connection half:
//! `tipc_listen`, `tipc_accept`, `tipc_connect`, `tipc_sendstream`, `tipc_recvmsg`,
//! `tipc_shutdown`, `tipc_release`); spec tipc-protocol.md §9.4–9.7. A [`Listener`] or
//! [`Connection`] shares its [`crate::socket::conn::ConnCore`] with the socket's actor
//! ([`crate::actor::conn`]), which keeps its timers; sends and receives run in the user's
//! task. Dropping a handle closes the socket: a listener's bindings are withdrawn and its
//! pending requests rejected, a connection sends its FIN.

use crate::actor::conn::{
    drain, flush_now, push_out, release, resolve, send_wait, wait_for, AcceptNext, ConnActor,
    Inner, Rearm, Stop,
};
use crate::addr::{Scope, ServiceAddr, ServiceRange, SocketAddr};
use crate::ctx::{now, NodeCtx};
use crate::flow::wait_uncongested;
use crate::name_table::Publication;
use crate::send::post_barrier;
use crate::socket::conn::{ConnCore, Read, SynDest};
pub use crate::socket::conn::{ConnError, ConnState, ConnStats};
use crate::socket::rcv::{conn_connect_result, conn_resolve, Nodes};
use crate::socket::{bind_publication, BindError};
use actix::prelude::*;
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tipc_transport::wire::{ErrorCode, MAX_USER_MSG_SIZE};
use tokio::sync::oneshot;

/// The socket type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnKind {
    /// SOCK_STREAM: a byte stream, split into messages of at most 66000 bytes.
    Stream,
    /// SOCK_SEQPACKET: message boundaries kept, at most 66000 bytes per message.
    Seqpacket,
}

/// Where to connect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnDest {
    /// A service address (the SYN is a NAMED_MSG, resolved by anycast lookup).
    Service(ServiceAddr),
    /// A socket address (the SYN is a DIRECT_MSG).
    Socket(SocketAddr),
}

/// Options of an outgoing connection (what `setsockopt` sets before the kernel's `connect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectOptions {
    /// Importance of our messages, 0 (low) to 3 (critical) (`TIPC_IMPORTANCE`). The
    /// accepting socket takes the importance of the SYN, as the kernel's `accept()`.
    pub importance: u8,
    /// How long a TCP-style connect waits for the ACK (`TIPC_CONN_TIMEOUT`, 8 s by default).
    pub timeout: std::time::Duration,
    /// `TIPC_NODELAY` on a stream: no Nagle on our writes (off by default, as the kernel).
    pub nodelay: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            importance: 0,
            timeout: crate::socket::conn::CONN_TIMEOUT,
            nodelay: false,
        }
    }
}

/// A snapshot of one connection's flow-control state (for tests and `socket list`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnInfo {
    /// State.
    pub state: ConnState,
    /// Sent and not yet acknowledged, in blocks of 1024 bytes (messages with a legacy peer).
    pub snt_unacked: u32,
    /// The peer's window, same unit.
    pub snd_win: u32,
    /// Bytes (truesize) in the receive queue.
    pub rx_mem: usize,
    /// Block-based flow control in use.
    pub block_flowctl: bool,
    /// Counters.
    pub stats: ConnStats,
}

/// A listening socket. Dropping it closes it (pending requests are rejected with NO_PORT).
pub struct Listener {
    ctx: Arc<NodeCtx>,
    port: u32,
    inner: Arc<Inner>,
    actor: Addr<ConnActor>,
    bound: Mutex<Vec<Publication>>,
    closed: AtomicBool,
}

impl Listener {
    /// A listening socket of `kind` on a fresh port.
    pub(crate) fn open(ctx: &Arc<NodeCtx>, kind: ConnKind) -> Listener {
        let port = ctx.alloc_port();
        let mut core = ConnCore::new(SocketAddr {
            node: ctx.own_addr,
            port,
        });
        let _ = core.listen();
        core.set_stream(kind == ConnKind::Stream);
        let inner = Inner::new(core);
        let actor = ConnActor::start(ctx, port, inner.clone());
        Listener {
            ctx: ctx.clone(),
            port,
            inner,
            actor,
            bound: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        }
    }

    /// This socket's address.
    pub fn local(&self) -> SocketAddr {
        SocketAddr {
            node: self.ctx.own_addr,
            port: self.port,
        }
    }

    /// Bind a service range (types below 64 are reserved). The key is `port + number of
    /// previous binds + 1`, as the kernel's.
    pub async fn bind(&self, range: ServiceRange, scope: Scope) -> Result<(), BindError> {
        let n = self.bound.lock().unwrap_or_else(|p| p.into_inner()).len() as u32 + 1;
        let p = bind_publication(self.local(), range, scope, n)?;
        self.ctx.publish(p).await?;
        self.bound.lock().unwrap_or_else(|p| p.into_inner()).push(p);
        Ok(())
    }

    /// The next connection (waits for a request). Its ACK is sent here, as the kernel's
    /// `accept()` does, just before it is returned.
    pub async fn accept(&self) -> Result<Connection, ConnError> {
        let (tx, rx) = oneshot::channel();
        self.actor
            .send(AcceptNext(tx))
            .await
            .map_err(|_| ConnError::Closed)?;
        let new = rx.await.unwrap_or(Err(ConnError::Closed))?;
        let (port, inner, actor) = new.open().ok_or(ConnError::Closed)?;
        let kind = if inner.lock().is_stream() {
            ConnKind::Stream
        } else {
            ConnKind::Seqpacket
        };
        Ok(Connection {
            ctx: self.ctx.clone(),
            port,
            inner,
            actor,
            kind,
            closed: AtomicBool::new(false),
        })
    }

    /// Connection requests waiting to be accepted.
    pub fn backlog(&self) -> usize {
        self.inner.lock().backlog()
    }

    /// Close: bindings withdrawn, pending requests rejected with NO_PORT.
    pub async fn close(&self) {
        self.close_now();
    }

    fn close_now(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let outs = {
            let mut c = self.inner.lock();
            c.shutdown(ErrorCode::NoPort);
            drain(&mut c)
        };
        flush_now(&self.ctx, &self.inner, outs);
        let bound = std::mem::take(&mut *self.bound.lock().unwrap_or_else(|p| p.into_inner()));
        self.actor.do_send(Stop(bound));
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.close_now();
    }
}

/// An established connection. All methods take `&self`, so one task may send while another
/// receives. Dropping it closes it (FIN with NO_PORT).
pub struct Connection {
    ctx: Arc<NodeCtx>,
    port: u32,
    inner: Arc<Inner>,
    actor: Addr<ConnActor>,
    kind: ConnKind,
    closed: AtomicBool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("local", &self.local())
            .field("peer", &self.peer())
            .field("kind", &self.kind)
            .finish()
    }
}

impl Connection {
    /// Open a socket and send the SYN; returns once the ACK arrived (or the attempt failed).
    pub(crate) async fn open(
        ctx: &Arc<NodeCtx>,
        dest: ConnDest,
        kind: ConnKind,
        first: &[u8],
        opts: ConnectOptions,
    ) -> Result<Connection, ConnError> {
        if first.len() > MAX_USER_MSG_SIZE {
            return Err(ConnError::TooLarge(first.len()));
        }
        if opts.importance > 3 {
            return Err(ConnError::BadImportance(opts.importance));
        }
        let port = ctx.alloc_port();
        let own = SocketAddr {
            node: ctx.own_addr,
            port,
        };
        let mut core = ConnCore::new(own);
        core.set_importance(opts.importance);
        core.set_conn_timeout(opts.timeout);
        core.set_stream(kind == ConnKind::Stream);
        core.set_nodelay(opts.nodelay);
        let inner = Inner::new(core);
        let actor = ConnActor::start(ctx, port, inner.clone());
        let conn = Connection {
            ctx: ctx.clone(),
            port,
            inner,
            actor,
            kind,
            closed: AtomicBool::new(false),
        };
        let dest = match dest {
            ConnDest::Service(s) => SynDest::Service(s),
            ConnDest::Socket(s) => SynDest::Socket(s),
        };
        let outs = {
            let mut c = conn.inner.lock();
            c.connect(dest, first, now())?;
            drain(&mut c)
        };
        conn.actor.do_send(Rearm);
        for o in outs {
            let r = conn_resolve(&mut conn.inner.lock(), o, |n, m| resolve(ctx, n, m));
            let res = match r {
                Ok((n, msg)) => {
                    if send_wait(ctx, n, msg).await {
                        Ok(())
                    } else {
                        Err(ConnError::NoNode)
                    }
                }
                Err(e) => Err(e),
            };
            if let Err(e) = res {
                conn.inner.lock().connect_failed(e);
                return Err(e);
            }
        }
        wait_for(&conn.inner, |c| conn_connect_result(c)).await?;
        let peer = conn.peer().node;
        conn.inner.lock().set_max_pkt(ctx.mss(peer));
        Ok(conn)
    }

    /// This socket's address.
    pub fn local(&self) -> SocketAddr {
        SocketAddr {
            node: self.ctx.own_addr,
            port: self.port,
        }
    }

    /// The peer socket.
    pub fn peer(&self) -> SocketAddr {
        self.inner.lock().peer()
    }

    /// Stream or seqpacket.
    pub fn kind(&self) -> ConnKind {
        self.kind
    }

    /// Accepted from a request sent to a service address: that address (the kernel's
    /// `TIPC_DESTNAME`); `None` otherwise.
    pub fn dest_name(&self) -> Option<ServiceAddr> {
        self.inner.lock().dest_name()
    }

    /// The importance of our messages (0 low to 3 critical).
    pub fn importance(&self) -> u8 {
        self.inner.lock().importance()
    }

    /// Set the importance of the messages sent from now on (`TIPC_IMPORTANCE`): a higher
    /// one gets more room in the link's send queue before it counts as congested.
    pub fn set_importance(&self, importance: u8) -> Result<(), ConnError> {
        if importance > 3 {
            return Err(ConnError::BadImportance(importance));
        }
        self.inner.lock().set_importance(importance);
        Ok(())
    }

    /// Flow-control state and counters.
    pub fn info(&self) -> ConnInfo {
        let c = self.inner.lock();
        ConnInfo {
            state: c.state(),
            snt_unacked: c.snt_unacked(),
            snd_win: c.snd_win(),
            rx_mem: c.rx_mem(),
            block_flowctl: c.block_flowctl(),
            stats: c.stats(),
        }
    }

    /// Seqpacket: one message (at most 66000 bytes, else [`ConnError::TooLarge`]). Stream: the
    /// bytes, split into messages of at most 66000 bytes; small writes may wait in the Nagle
    /// buffer for the peer's ack (see [`Connection::set_nodelay`]). Waits while the peer's
    /// window is full (end-to-end flow control) and while the link is congested.
    pub async fn send(&self, data: Bytes) -> Result<(), ConnError> {
        if self.kind == ConnKind::Seqpacket && data.len() > MAX_USER_MSG_SIZE {
            return Err(ConnError::TooLarge(data.len()));
        }
        let ctx = &self.ctx;
        let to = self.peer().node;
        let flow = (!ctx.is_own(to)).then(|| ctx.flow_of(to));
        let mut off = 0;
        loop {
            if let Some(f) = &flow {
                wait_uncongested(f).await;
            }
            let end = (off + MAX_USER_MSG_SIZE).min(data.len());
            let chunk = &data[off..end];
            wait_for(&self.inner, |c| match c.can_send() {
                Ok(true) => Some(c.write(chunk)),
                Ok(false) => None,
                Err(e) => Some(Err(e)),
            })
            .await?;
            if !push_out(ctx, &self.inner) {
                return Err(ConnError::NoNode);
            }
            if let Some(f) = &flow {
                post_barrier(ctx, to, f).await;
            }
            off = end;
            if off >= data.len() {
                return Ok(());
            }
        }
    }

    /// Write `chunk` (at most 66000 bytes) now if nothing must be waited for (the window is
    /// open, the link to the peer not congested); `None`: wait with [`Connection::send`].
    pub(crate) fn try_send_now(&self, chunk: &[u8]) -> Option<Result<(), ConnError>> {
        let ctx = &self.ctx;
        let r = {
            let mut c = self.inner.lock();
            let to = c.peer().node;
            let congested = !ctx.is_own(to) && ctx.flow_of(to).congested.load(Ordering::Acquire);
            match c.can_send() {
                Ok(true) if !congested => c.write(chunk),
                Ok(_) => return None,
                Err(e) => Err(e),
            }
        };
        if r.is_ok() && !push_out(ctx, &self.inner) {
            return Some(Err(ConnError::NoNode));
        }
        Some(r)
    }

    /// `TIPC_NODELAY`: stream writes go out at once instead of waiting in the Nagle buffer
    /// (what is held goes with the next write, message or ack from the peer).
    pub fn set_nodelay(&self, on: bool) {
        self.inner.lock().set_nodelay(on);
    }

    /// The next message (seqpacket) or chunk (stream). `Ok(None)`: orderly end (the peer shut
    /// down); `Err`: why the connection ended.
    pub async fn recv(&self) -> Result<Option<Bytes>, ConnError> {
        let (r, out) = wait_for(&self.inner, |c| {
            let r = c.read()?;
            Some((r, c.has_output()))
        })
        .await;
        if out {
            push_out(&self.ctx, &self.inner);
        }
        match r {
            Read::Data(b) => Ok(Some(b)),
            Read::End(Ok(())) => Ok(None),
            Read::End(Err(e)) => Err(e),
        }
    }

    /// `shutdown()`: FIN with `CONN_SHUTDOWN` (the peer's recv returns `Ok(None)`); nothing
    /// more can be sent or received.
    pub async fn shutdown(&self) -> Result<(), ConnError> {
        self.end_conn(ErrorCode::ConnShutdown).await
    }

    /// `close()`: FIN with `NO_PORT` (or the first unread message rejected back); the peer's
    /// recv fails with [`ConnError::Reset`].
    pub async fn close(&self) {
        let _ = self.end_conn(ErrorCode::NoPort).await;
        self.stop();
    }

    async fn end_conn(&self, err: ErrorCode) -> Result<(), ConnError> {
        let ctx = &self.ctx;
        let to = self.peer().node;
        if !ctx.is_own(to) {
            wait_uncongested(&ctx.flow_of(to)).await;
        }
        let was = {
            let mut c = self.inner.lock();
            let was = c.state();
            c.shutdown(err);
            was
        };
        self.inner.changed.notify_waiters();
        push_out(ctx, &self.inner);
        match was {
            ConnState::Established | ConnState::Connecting => Ok(()),
            _ => Err(ConnError::Closed),
        }
    }

    fn stop(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.actor.do_send(Stop(Vec::new()));
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            release(&self.ctx, &self.inner, &self.actor);
        }
    }
}
