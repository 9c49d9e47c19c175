//! The connection socket actor (kernel `socket.c`, connection half): one per stream or
//! seqpacket socket, owning its [`ConnCore`]'s timers and handing connection requests to
//! acceptors. Spec tipc-protocol.md §9.4–9.7.
//!
//! The core sits behind a mutex shared by the actor, the user handle ([`crate::sock::conn`])
//! and the deliverers. Received messages are fed to the core by whoever delivers them (a peer
//! actor or the name table, through the port registry: `ConnPort`), in link order, with the
//! glue of [`crate::socket::rcv`], and the waiting user task is woken directly: no hop through
//! this actor. A deliverer pokes the actor only when the next timeout moved earlier or a
//! listener got a request. Everything the core produces (data, acks, probe replies,
//! rejections, FINs) is sent by whoever drove it, in the core's order (`push_out`): a
//! deliverer may send stream data too, when a peer's message pushes out what Nagle held.
//!
//! Node loss: the port registry tells every connection socket (`route::node_lost`);
//! the connections to that node end at once with [`ConnError::NoNode`] (the local abort of
//! `node_lost_contact`).

use crate::addr::{ServiceAddr, SocketAddr};
use crate::ctx::{now, NodeCtx, Port, SocketKind};
use crate::name_table::Publication;
use crate::route::route_out;
use crate::send::{enqueue_deferred, enqueue_to_peer, post};
use crate::socket::conn::{ConnCore, ConnError, ConnState, Output, Verdict};
use crate::socket::rcv::{conn_accept, conn_rcv, conn_resolve, resolve_anycast};
use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tipc_transport::wire::ErrorCode;
use tipc_transport::NodeAddr;
use tokio::sync::{oneshot, Notify};

/// State shared by a socket's actor, its user handle and its deliverers.
pub(crate) struct Inner {
    core: Mutex<ConnCore>,
    /// Woken on every change: data, acks, state.
    pub changed: Notify,
    /// A task is sending the core's output (`push_out`).
    sending: AtomicBool,
}

impl Inner {
    /// Shared state around a core.
    pub fn new(core: ConnCore) -> Arc<Inner> {
        Arc::new(Inner {
            core: Mutex::new(core),
            changed: Notify::new(),
            sending: AtomicBool::new(false),
        })
    }

    /// The core (a poisoned lock is taken over: the core is consistent between calls).
    pub fn lock(&self) -> MutexGuard<'_, ConnCore> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Send what the socket's core queued, in the order it queued it, whoever queued it. One
/// task at a time sends: a task that finds another one at it leaves its messages to that
/// one, which looks at the core again after it stopped, so nothing waits and no message
/// overtakes another (held stream data pushed out by a deliverer, then a write of the
/// user's). No lock is held while a message is sent: it may be delivered to a socket of this
/// node at once, which may answer at once. False if a message was for a node we do not know.
pub(crate) fn push_out(ctx: &NodeCtx, inner: &Inner) -> bool {
    let mut ok = true;
    loop {
        if inner
            .sending
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return ok;
        }
        loop {
            let next = {
                let mut c = inner.lock();
                c.poll_output()
                    .map(|o| conn_resolve(&mut c, o, |n, m| resolve(ctx, n, m)))
            };
            let Some(r) = next else { break };
            // A named SYN retry (after OVERLOAD) whose binding is gone is not sent: the
            // connect ends by its timeout or by the loss of the node the first SYN went to.
            if let Ok((n, msg)) = r {
                ok &= send_now(ctx, n, msg);
            }
        }
        inner.sending.store(false, Ordering::SeqCst);
        if !inner.lock().has_output() {
            return ok;
        }
    }
}

/// Send the outputs of a core taken out by the caller ([`drain`]), without waiting.
pub(crate) fn flush_now(ctx: &NodeCtx, core: &Inner, outs: Vec<Output>) {
    for o in outs {
        let r = conn_resolve(&mut core.lock(), o, |n, m| resolve(ctx, n, m));
        if let Ok((n, msg)) = r {
            send_now(ctx, n, msg);
        }
    }
}

/// Like [`flush_now`], but what goes to a peer waits for its actor's next drain (bundled with
/// whatever the caller queues until it yields).
pub(crate) fn flush_deferred(ctx: &NodeCtx, core: &Inner, outs: Vec<Output>) {
    for o in outs {
        let r = conn_resolve(&mut core.lock(), o, |n, m| resolve(ctx, n, m));
        match r {
            Ok((n, msg)) if !ctx.is_own(n) => {
                enqueue_deferred(ctx, n, msg);
            }
            Ok((n, msg)) => {
                send_now(ctx, n, msg);
            }
            Err(_) => {}
        }
    }
}

/// A named SYN's anycast lookup in the node's binding table.
pub(crate) fn resolve(ctx: &NodeCtx, name: ServiceAddr, msg: &mut [u8]) -> Option<NodeAddr> {
    resolve_anycast(&mut ctx.table(), name, msg)
}

/// Send a message: to a local socket through the dispatch, or into the peer's ordered send
/// queue. False if the node is unknown.
fn send_now(ctx: &NodeCtx, to: NodeAddr, msg: BytesMut) -> bool {
    if ctx.is_own(to) {
        route_out(ctx, msg);
        true
    } else {
        enqueue_to_peer(ctx, to, msg)
    }
}

/// Send with backpressure (waits while the link is congested). False: the node is unknown.
pub(crate) async fn send_wait(ctx: &NodeCtx, to: NodeAddr, msg: BytesMut) -> bool {
    if ctx.is_own(to) {
        route_out(ctx, msg);
        true
    } else {
        post(ctx, to, msg).await
    }
}

/// Everything the core has ready to send.
pub(crate) fn drain(core: &mut ConnCore) -> Vec<Output> {
    std::iter::from_fn(|| core.poll_output()).collect()
}

/// Wait until `f` (called under the core lock) gives a result; every change wakes it.
pub(crate) async fn wait_for<T>(inner: &Inner, mut f: impl FnMut(&mut ConnCore) -> Option<T>) -> T {
    loop {
        let n = inner.changed.notified();
        tokio::pin!(n);
        n.as_mut().enable();
        if let Some(v) = f(&mut inner.lock()) {
            return v;
        }
        n.await;
    }
}

/// End a socket that its user let go of: FIN with NO_PORT (or the first unread message
/// rejected back), then the actor stops (`tipc_release`).
pub(crate) fn release(ctx: &NodeCtx, inner: &Inner, actor: &Addr<ConnActor>) {
    inner.lock().shutdown(ErrorCode::NoPort);
    push_out(ctx, inner);
    actor.do_send(Stop(Vec::new()));
}

/// The peer node was lost.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct NodeLost(NodeAddr);

/// Timers may have changed: re-arm.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Rearm;

/// A listener got a connection request: hand it to a waiting acceptor.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct ServeAccepts;

/// Stop the actor (after close): unregister, withdraw these bindings.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct Stop(pub Vec<Publication>);

/// Accept the next connection request.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub(crate) struct AcceptNext(pub oneshot::Sender<Accepted>);

/// An accepted connection and what it must send first (its ACK): sent by the acceptor, as the
/// kernel's `accept()` does, so that the ACK leaves together with whatever the acceptor sends
/// at once (a reply to a "0-RTT" request, a FIN) instead of ahead of it on its own.
pub(crate) type Accepted = Result<NewConn, ConnError>;

/// An accepted connection socket whose ACK is not sent yet. Taken with [`NewConn::open`];
/// dropped unused (the acceptor gave up), it sends the ACK and then the FIN.
pub(crate) struct NewConn {
    ctx: Arc<NodeCtx>,
    outs: Vec<Output>,
    /// The new socket: its port, shared state and actor.
    pub sock: Option<(u32, Arc<Inner>, Addr<ConnActor>)>,
}

impl std::fmt::Debug for NewConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewConn")
            .field("port", &self.sock.as_ref().map(|s| s.0))
            .finish_non_exhaustive()
    }
}

impl NewConn {
    /// Queue the ACK; the socket. The ACK waits for the peer actor's next drain, so a reply
    /// and a FIN the acceptor sends before it yields leave in the same packet.
    pub fn open(mut self) -> Option<(u32, Arc<Inner>, Addr<ConnActor>)> {
        let sock = self.sock.take()?;
        flush_deferred(&self.ctx, &sock.1, std::mem::take(&mut self.outs));
        Some(sock)
    }
}

impl Drop for NewConn {
    fn drop(&mut self) {
        if let Some((_, inner, actor)) = self.sock.take() {
            flush_now(&self.ctx, &inner, std::mem::take(&mut self.outs));
            release(&self.ctx, &inner, &actor);
        }
    }
}

/// The actor of one connection socket (listener or connection).
pub(crate) struct ConnActor {
    ctx: Arc<NodeCtx>,
    port: u32,
    inner: Arc<Inner>,
    timer: Option<SpawnHandle>,
    accept_waiters: VecDeque<oneshot::Sender<Accepted>>,
}

impl ConnActor {
    /// Start the actor of a socket at `port` and register the socket in the port registry.
    pub fn start(ctx: &Arc<NodeCtx>, port: u32, inner: Arc<Inner>) -> Addr<ConnActor> {
        let a = ConnActor {
            ctx: ctx.clone(),
            port,
            inner: inner.clone(),
            timer: None,
            accept_waiters: VecDeque::new(),
        }
        .start();
        ctx.ports.insert(
            port,
            Arc::new(ConnPort {
                inner,
                actor: a.clone(),
            }),
        );
        a
    }

    fn rearm(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.timer.take() {
            ctx.cancel_future(h);
        }
        let next = self.inner.lock().poll_timeout();
        if let Some(t) = next {
            let d = t.saturating_duration_since(now());
            self.timer = Some(ctx.run_later(d, |act, ctx| {
                act.timer = None;
                act.inner.lock().handle_timeout(now());
                push_out(&act.ctx, &act.inner);
                act.inner.changed.notify_waiters();
                act.rearm(ctx);
            }));
        }
    }

    /// LISTEN: hand pending requests to waiting acceptors.
    fn serve_accepts(&mut self) {
        while !self.accept_waiters.is_empty() {
            let (pending, ended) = {
                let c = self.inner.lock();
                (c.backlog() > 0, c.state() != ConnState::Listen)
            };
            if ended {
                for w in self.accept_waiters.drain(..) {
                    let _ = w.send(Err(ConnError::Closed));
                }
                return;
            }
            if !pending {
                return;
            }
            let Some(w) = self.accept_waiters.pop_front() else {
                return;
            };
            if w.is_closed() {
                continue;
            }
            let port = self.ctx.alloc_port();
            let own = SocketAddr {
                node: self.ctx.own_addr,
                port,
            };
            let (accepted, outs) = {
                let mut c = self.inner.lock();
                let a = conn_accept(&mut c, own, &*self.ctx, now());
                (a, drain(&mut c))
            };
            flush_now(&self.ctx, &self.inner, outs);
            let Some(mut core) = accepted else {
                self.accept_waiters.push_front(w);
                return;
            };
            let outs = drain(&mut core);
            let inner = Inner::new(core);
            let actor = ConnActor::start(&self.ctx, port, inner.clone());
            // If the acceptor gave up, the value comes back and its drop sends the ACK and
            // then the FIN.
            let _ = w.send(Ok(NewConn {
                ctx: self.ctx.clone(),
                outs,
                sock: Some((port, inner, actor)),
            }));
        }
    }
}

impl Actor for ConnActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.rearm(ctx);
    }
}

impl Handler<ServeAccepts> for ConnActor {
    type Result = ();
    fn handle(&mut self, _: ServeAccepts, _: &mut Self::Context) {
        self.serve_accepts();
    }
}

impl Handler<NodeLost> for ConnActor {
    type Result = ();
    fn handle(&mut self, m: NodeLost, ctx: &mut Self::Context) {
        let hit = self.inner.lock().handle_node_lost(m.0, now());
        if hit {
            push_out(&self.ctx, &self.inner);
            self.inner.changed.notify_waiters();
            self.rearm(ctx);
        }
    }
}

impl Handler<Rearm> for ConnActor {
    type Result = ();
    fn handle(&mut self, _: Rearm, ctx: &mut Self::Context) {
        self.rearm(ctx);
    }
}

impl Handler<AcceptNext> for ConnActor {
    type Result = ();
    fn handle(&mut self, m: AcceptNext, _: &mut Self::Context) {
        self.accept_waiters.push_back(m.0);
        self.serve_accepts();
    }
}

impl Handler<Stop> for ConnActor {
    type Result = ();
    fn handle(&mut self, m: Stop, ctx: &mut Self::Context) {
        self.ctx.ports.remove(&self.port);
        for p in m.0 {
            self.ctx.withdraw_now(p);
        }
        for w in self.accept_waiters.drain(..) {
            let _ = w.send(Err(ConnError::Closed));
        }
        self.inner.changed.notify_waiters();
        ctx.stop();
    }
}

/// A connection socket in the port registry: its shared state and its actor.
struct ConnPort {
    inner: Arc<Inner>,
    actor: Addr<ConnActor>,
}

impl Port for ConnPort {
    /// The core takes each message at once (in the caller's context, in delivery order); the
    /// socket's actor is poked only when a timer must be re-armed or a listener got a
    /// request.
    fn deliver(&self, ctx: &NodeCtx, msgs: Vec<Bytes>) {
        let (mut listen, mut rearm) = (false, false);
        for msg in msgs {
            let (fed, out) = {
                let mut c = self.inner.lock();
                let fed = conn_rcv(&mut c, msg, ctx, now());
                (fed, c.has_output())
            };
            if out {
                push_out(ctx, &self.inner);
            }
            if fed.verdict != Verdict::Dropped {
                self.inner.changed.notify_waiters();
            }
            listen |= fed.acceptable;
            rearm |= fed.rearm;
        }
        if listen {
            self.actor.do_send(ServeAccepts);
        }
        if rearm {
            self.actor.do_send(Rearm);
        }
    }

    fn node_lost(&self, _: &NodeCtx, node: NodeAddr) {
        self.actor.do_send(NodeLost(node));
    }

    fn is_datagram(&self) -> bool {
        false
    }

    fn kind(&self) -> SocketKind {
        let c = self.inner.lock();
        let state = c.state();
        SocketKind::Conn {
            state,
            peer: (state == ConnState::Established).then(|| c.peer()),
            via: c.dest_name(),
        }
    }
}
