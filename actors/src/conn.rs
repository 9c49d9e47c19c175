//! Connection sockets (SOCK_STREAM / SOCK_SEQPACKET): one actix actor per socket driving a
//! [`ConnCore`], and the async user API ([`Listener`], [`Connection`], [`ConnStream`]).
//! Kernel `net/tipc/socket.c` (connection half) and `node.c: node_lost_contact`; spec
//! tipc-protocol.md §9.4–9.7.
//!
//! The core sits behind a mutex shared by the actor, the user handles and the deliverers.
//! Received messages are fed to the core by whoever delivers them (the peer actor or the name
//! table through `deliver_local`, via [`deliver`]), in link order, and the waiting user task is
//! woken directly: no hop through the socket's actor. The actor keeps the timers and hands
//! connection requests to acceptors; a deliverer pokes it only when the next timeout moved
//! earlier or a listener got a request. A send needs no round trip either: the sending task
//! waits while the link is congested, checks the window, writes the message into the core and
//! posts it straight to the peer actor's queue; a SYN to a service is resolved in the shared
//! binding table, as anycast datagram sends are. Everything the core produces (data, acks,
//! probe replies, rejections, FINs) is sent by whoever drove it, in the core's order
//! ([`push_out`]): a deliverer may send stream data too, when a peer's message pushes out
//! what Nagle held.
//!
//! Node loss: the name table calls [`node_down`] when the last link to a peer fails; every
//! connection to it ends at once with [`ConnError::NoNode`] (the local abort of
//! `node_lost_contact`).

use crate::addr::{Scope, ServiceAddr, ServiceRange, SocketAddr};
use crate::binding::{BindingError, Publication};
use crate::node::{Shared, TransportNode};
use crate::socket::conn::{ConnCore, Output, Read, SynDest, Verdict};
pub use crate::socket::conn::{ConnError, ConnState, ConnStats};
use crate::sockets::BindError;
use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;
use tipc_transport::wire::{ErrorCode, MAX_MSG_SIZE, MAX_USER_MSG_SIZE};
use tipc_transport::NodeAddr;
use tokio::sync::{oneshot, Notify};

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

/// State shared by a socket's actor and its user handle.
struct Inner {
    core: Mutex<ConnCore>,
    /// Woken on every change: data, acks, state.
    changed: Notify,
    /// A task is sending the core's output ([`push_out`]).
    sending: AtomicBool,
}

impl Inner {
    fn new(core: ConnCore) -> Arc<Inner> {
        Arc::new(Inner {
            core: Mutex::new(core),
            changed: Notify::new(),
            sending: AtomicBool::new(false),
        })
    }

    fn lock(&self) -> MutexGuard<'_, ConnCore> {
        match self.core.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
}

/// Send what the socket's core queued, in the order it queued it, whoever queued it. One
/// task at a time sends: a task that finds another one at it leaves its messages to that
/// one, which looks at the core again after it stopped, so nothing waits and no message
/// overtakes another (held stream data pushed out by a deliverer, then a write of the
/// user's). No lock is held while a message is sent: it may be delivered to a socket of this
/// node at once, which may answer at once. False if a message was for a node we do not know.
fn push_out(shared: &Shared, inner: &Inner) -> bool {
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
            let next = inner.lock().poll_output();
            let Some(o) = next else { break };
            ok &= flush_one(shared, o);
        }
        inner.sending.store(false, Ordering::SeqCst);
        if !inner.lock().has_output() {
            return ok;
        }
    }
}

/// The largest message toward `node` that goes unfragmented (the socket's `max_pkt`).
fn peer_mss(shared: &Shared, node: NodeAddr) -> usize {
    if node == shared.own_addr || node == 0 {
        return MAX_MSG_SIZE;
    }
    match crate::peer::link_mss(&shared.flow_of(node)) {
        0 => crate::socket::conn::MAX_PKT_DEFAULT,
        m => m,
    }
}

/// The capabilities of `node` (ours for our own node; the kernel's full set if unknown yet).
fn caps_of(shared: &Shared, node: NodeAddr) -> u16 {
    if node == shared.own_addr || node == 0 {
        return shared.cfg.caps;
    }
    shared
        .node_caps
        .get(&node)
        .map(|c| *c.value())
        .unwrap_or(tipc_transport::OWN_CAPABILITIES)
}

/// Send what the core produced, without waiting (acks, probe replies, rejections, FINs from a
/// drop). A named SYN retry (after OVERLOAD) is resolved in the shared binding table like the
/// first SYN; if the binding is gone by then, the retry is not sent and the connect ends by
/// its timeout or by the loss of the node the first SYN went to.
fn flush_now(shared: &Shared, outs: Vec<Output>) {
    for o in outs {
        flush_one(shared, o);
    }
}

/// One output of [`flush_now`]; false if it was for a node we do not know.
fn flush_one(shared: &Shared, o: Output) -> bool {
    match o {
        Output::ToNode(n, msg) => post_now(shared, n, msg),
        Output::Lookup(name, msg) => {
            if let Ok((n, msg)) = resolve_named(shared, name, msg) {
                post_now(shared, n, msg);
            }
            true
        }
    }
}

/// Like [`flush_now`], but what goes to a peer waits for its actor's next drain (bundled with
/// whatever the caller queues until it yields).
fn flush_deferred(shared: &Shared, outs: Vec<Output>) {
    for o in outs {
        match o {
            Output::ToNode(n, msg) if n != shared.own_addr && n != 0 => {
                shared.enqueue_to_peer_deferred(n, msg);
            }
            o => flush_now(shared, vec![o]),
        }
    }
}

/// Resolve a named SYN in the shared binding table (anycast, round-robin, as
/// [`crate::sockets::DgramSocket::send_to_service`]): the destination written into the header,
/// and the node to send it to.
fn resolve_named(
    shared: &Shared,
    name: ServiceAddr,
    mut msg: BytesMut,
) -> Result<(NodeAddr, BytesMut), ConnError> {
    use crate::binding::AnycastResult;
    use tipc_transport::wire::{field, Header};
    let found = shared.table().lookup_anycast(name, 0);
    let dest = match found {
        AnycastResult::Found(sock) => sock,
        AnycastResult::Deferred(node) => SocketAddr { node, port: 0 },
        AnycastResult::NotFound => return Err(ConnError::NoDestination),
    };
    let mut h = Header::new_unchecked(&mut msg[..]);
    h.set(field::DESTNODE, dest.node);
    h.set(field::DESTPORT, dest.port);
    Ok((dest.node, msg))
}

fn post_now(shared: &Shared, to: NodeAddr, msg: BytesMut) -> bool {
    if to == shared.own_addr || to == 0 {
        deliver_here(shared, msg);
        true
    } else {
        // The peer's ordered send queue, shared with `TransportNode::post`.
        shared.enqueue_to_peer(to, msg)
    }
}

/// A message for a socket of this node: through the local delivery path.
fn deliver_here(shared: &Shared, msg: BytesMut) {
    let mut out = crate::names::LocalBatch::default();
    crate::names::route_out(shared, msg, &mut out);
    out.flush(shared);
}

/// Send with backpressure (waits while the link is congested). False: the node is unknown.
async fn post_wait(node: &TransportNode, to: NodeAddr, msg: BytesMut) -> bool {
    if to == node.addr() || to == 0 {
        deliver_here(node.shared(), msg);
        true
    } else {
        node.post(to, msg).await
    }
}

fn drain(core: &mut ConnCore) -> Vec<Output> {
    let mut v = Vec::new();
    while let Some(o) = core.poll_output() {
        v.push(o);
    }
    v
}

/// The peer node was lost.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct NodeLost(pub NodeAddr);

/// Timers may have changed: re-arm.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Rearm;

/// A listener got a connection request: hand it to a waiting acceptor.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct ServeAccepts;

/// Stop the actor (after close): unregister, withdraw bindings.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct Stop(Vec<Publication>);

/// Accept the next connection request.
#[derive(Debug, Message)]
#[rtype(result = "()")]
struct AcceptNext(oneshot::Sender<Accepted>);

/// An accepted connection and what it must send first (its ACK): sent by the acceptor, as the
/// kernel's `accept()` does, so that the ACK leaves together with whatever the acceptor sends
/// at once (a reply to a "0-RTT" request, a FIN) instead of ahead of it on its own.
type Accepted = Result<NewConn, ConnError>;

/// An accepted connection whose ACK is not sent yet. Dropped unused (the acceptor gave up),
/// it sends the ACK, then the connection's drop sends the FIN.
struct NewConn {
    node: TransportNode,
    outs: Vec<Output>,
    conn: Option<Connection>,
}

impl std::fmt::Debug for NewConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewConn").field("conn", &self.conn).finish()
    }
}

impl NewConn {
    /// Queue the ACK; the connection. The ACK waits for the peer actor's next drain, so a
    /// reply and a FIN the acceptor sends before it yields leave in the same packet.
    fn open(mut self) -> Option<Connection> {
        flush_deferred(self.node.shared(), std::mem::take(&mut self.outs));
        self.conn.take()
    }
}

impl Drop for NewConn {
    fn drop(&mut self) {
        flush_now(self.node.shared(), std::mem::take(&mut self.outs));
        self.conn.take();
    }
}

/// The actor of one connection socket (listener or connection).
pub struct ConnActor {
    node: TransportNode,
    port: u32,
    inner: Arc<Inner>,
    kind: ConnKind,
    timer: Option<SpawnHandle>,
    accept_waiters: VecDeque<oneshot::Sender<Accepted>>,
}

impl ConnActor {
    fn start_socket(
        node: &TransportNode,
        port: u32,
        inner: Arc<Inner>,
        kind: ConnKind,
    ) -> Addr<ConnActor> {
        let self_inner = inner.clone();
        let a = ConnActor {
            node: node.clone(),
            port,
            inner,
            kind,
            timer: None,
            accept_waiters: VecDeque::new(),
        }
        .start();
        node.shared().conns.insert(
            port,
            ConnEntry {
                actor: a.clone(),
                inner: self_inner,
            },
        );
        a
    }

    fn rearm(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.timer.take() {
            ctx.cancel_future(h);
        }
        let next = self.inner.lock().poll_timeout();
        if let Some(t) = next {
            let d = t.saturating_duration_since(Instant::now());
            self.timer = Some(ctx.run_later(d, |act, ctx| {
                act.timer = None;
                act.inner.lock().handle_timeout(Instant::now());
                push_out(act.node.shared(), &act.inner);
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
            let port = self.node.alloc_port();
            let own = SocketAddr {
                node: self.node.addr(),
                port,
            };
            let (accepted, outs) = {
                let mut c = self.inner.lock();
                let caps = c
                    .peek_request()
                    .map(|p| caps_of(self.node.shared(), p.node))
                    .unwrap_or(0);
                let a = c.accept(own, caps, Instant::now());
                (a, drain(&mut c))
            };
            flush_now(self.node.shared(), outs);
            let Some(mut core) = accepted else {
                self.accept_waiters.push_front(w);
                return;
            };
            core.set_max_pkt(peer_mss(self.node.shared(), core.peer().node));
            let outs = drain(&mut core);
            let conn = Connection::from_core(&self.node, port, core, self.kind);
            // If the acceptor gave up, the value comes back and its drop sends the ACK and
            // then the FIN.
            let _ = w.send(Ok(NewConn {
                node: self.node.clone(),
                outs,
                conn: Some(conn),
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
        let hit = self.inner.lock().handle_node_lost(m.0, Instant::now());
        if hit {
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
        let shared = self.node.shared();
        shared.conns.remove(&self.port);
        if let Some(names) = shared.names.get() {
            for p in m.0 {
                names.do_send(crate::names::Withdraw {
                    range: p.range,
                    port: p.port,
                    key: p.key,
                });
            }
        }
        for w in self.accept_waiters.drain(..) {
            let _ = w.send(Err(ConnError::Closed));
        }
        self.inner.changed.notify_waiters();
        ctx.stop();
    }
}

/// A connection socket as the node knows it: its actor and its shared state.
pub(crate) struct ConnEntry {
    actor: Addr<ConnActor>,
    inner: Arc<Inner>,
}

/// What the socket's actor must do after a message was fed to the core.
struct Poke {
    /// A listener: serve waiting acceptors.
    listen: bool,
    /// The next timeout moved earlier (or appeared): re-arm the timer.
    rearm: bool,
}

/// Feed one received message to the core, send what it produced, wake the user task.
fn feed(shared: &Shared, inner: &Inner, msg: Bytes) -> Poke {
    let sender = tipc_transport::wire::Header::new_checked(&msg[..])
        .map(|h| h.orignode())
        .unwrap_or(0);
    let caps = caps_of(shared, sender);
    let (v, out, poke) = {
        let mut c = inner.lock();
        let before = c.poll_timeout();
        let v = c.handle_message(msg, caps, Instant::now());
        let after = c.poll_timeout();
        let rearm = match (before, after) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(b), Some(a)) => a < b,
        };
        let listen = c.state() == ConnState::Listen && c.backlog() > 0;
        (v, c.has_output(), Poke { listen, rearm })
    };
    if out {
        push_out(shared, inner);
    }
    if v != Verdict::Dropped {
        inner.changed.notify_waiters();
    }
    poke
}

/// Hand a message to the connection socket at `port`; `Err(msg)` if there is none. The core
/// takes it at once (in the caller's context, in delivery order); the socket's actor is
/// poked only when a timer must be re-armed or a listener got a request.
pub(crate) fn deliver(shared: &Shared, port: u32, msg: Bytes) -> Result<(), Bytes> {
    let (inner, actor) = match shared.conns.get(&port) {
        Some(e) => (e.inner.clone(), e.actor.clone()),
        None => return Err(msg),
    };
    let Poke { listen, rearm } = feed(shared, &inner, msg);
    if listen {
        actor.do_send(ServeAccepts);
    }
    if rearm {
        actor.do_send(Rearm);
    }
    Ok(())
}

/// The last link to `peer` failed: every connection to it ends with [`ConnError::NoNode`].
pub(crate) fn node_down(shared: &Shared, peer: NodeAddr) {
    for e in shared.conns.iter() {
        e.value().actor.do_send(NodeLost(peer));
    }
}

/// Wait until `f` (called under the core lock) gives a result; every change wakes it.
async fn wait_for<T>(inner: &Inner, mut f: impl FnMut(&mut ConnCore) -> Option<T>) -> T {
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

/// A listening socket. Dropping it closes it (pending requests are rejected with NO_PORT).
pub struct Listener {
    node: TransportNode,
    port: u32,
    inner: Arc<Inner>,
    actor: Addr<ConnActor>,
    bound: Mutex<Vec<Publication>>,
    closed: std::sync::atomic::AtomicBool,
}

impl Listener {
    /// This socket's address.
    pub fn local(&self) -> SocketAddr {
        SocketAddr {
            node: self.node.addr(),
            port: self.port,
        }
    }

    /// Bind a service range (types below 64 are reserved). The key is `port + number of
    /// previous binds + 1`, as the kernel's.
    pub async fn bind(&self, range: ServiceRange, scope: Scope) -> Result<(), BindError> {
        if range.type_ < crate::addr::RESERVED_TYPES {
            return Err(BindError::Reserved);
        }
        if range.lower > range.upper {
            return Err(BindError::Table(BindingError::InvalidRange {
                lower: range.lower,
                upper: range.upper,
            }));
        }
        let key = {
            let b = self.bound.lock().unwrap_or_else(|p| p.into_inner());
            self.port.wrapping_add(b.len() as u32 + 1)
        };
        let p = Publication {
            range,
            scope,
            node: self.node.addr(),
            port: self.port,
            key,
        };
        self.node.publish(p).await.map_err(BindError::Table)?;
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
        new.open().ok_or(ConnError::Closed)
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
        if self.closed.swap(true, std::sync::atomic::Ordering::AcqRel) {
            return;
        }
        let outs = {
            let mut c = self.inner.lock();
            c.shutdown(ErrorCode::NoPort);
            drain(&mut c)
        };
        flush_now(self.node.shared(), outs);
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
    node: TransportNode,
    port: u32,
    inner: Arc<Inner>,
    actor: Addr<ConnActor>,
    kind: ConnKind,
    closed: std::sync::atomic::AtomicBool,
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
    fn from_core(node: &TransportNode, port: u32, core: ConnCore, kind: ConnKind) -> Connection {
        let inner = Inner::new(core);
        let actor = ConnActor::start_socket(node, port, inner.clone(), kind);
        Connection {
            node: node.clone(),
            port,
            inner,
            actor,
            kind,
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Open a socket and send the SYN; returns once the ACK arrived (or the attempt failed).
    async fn open(
        node: &TransportNode,
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
        let port = node.alloc_port();
        let own = SocketAddr {
            node: node.addr(),
            port,
        };
        let mut core = ConnCore::new(own);
        core.set_importance(opts.importance);
        core.set_conn_timeout(opts.timeout);
        core.set_stream(kind == ConnKind::Stream);
        core.set_nodelay(opts.nodelay);
        let conn = Connection::from_core(node, port, core, kind);
        let dest = match dest {
            ConnDest::Service(s) => SynDest::Service(s),
            ConnDest::Socket(s) => SynDest::Socket(s),
        };
        let outs = {
            let mut c = conn.inner.lock();
            c.connect(dest, first, Instant::now())?;
            drain(&mut c)
        };
        conn.actor.do_send(Rearm);
        for o in outs {
            let res = match o {
                Output::ToNode(n, msg) => {
                    if post_wait(node, n, msg).await {
                        Ok(())
                    } else {
                        Err(ConnError::NoNode)
                    }
                }
                Output::Lookup(name, msg) => match resolve_named(node.shared(), name, msg) {
                    Ok((n, msg)) => {
                        // From now on the loss of node `n` fails the connect (a 0-RTT SYN
                        // has no connect timeout).
                        conn.inner.lock().syn_sent_to(n);
                        if post_wait(node, n, msg).await {
                            Ok(())
                        } else {
                            Err(ConnError::NoNode)
                        }
                    }
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = res {
                conn.inner.lock().connect_failed(e);
                return Err(e);
            }
        }
        let r = wait_for(&conn.inner, |c| match c.state() {
            ConnState::Connecting => None,
            ConnState::Established => Some(Ok(())),
            // Accepted, then ended before we looked (the reply and the peer's FIN came with
            // the ACK): connected all the same, as the kernel's connect, which fails only
            // with `sk_err`; what arrived is read next, then the end.
            ConnState::Disconnecting if c.rx_len() > 0 => Some(Ok(())),
            _ => Some(Err(match c.end() {
                Some(Err(e)) => e,
                _ => ConnError::Closed,
            })),
        })
        .await;
        r?;
        let peer = conn.peer().node;
        conn.inner.lock().set_max_pkt(peer_mss(node.shared(), peer));
        Ok(conn)
    }

    /// This socket's address.
    pub fn local(&self) -> SocketAddr {
        SocketAddr {
            node: self.node.addr(),
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
        let shared = self.node.shared();
        let to = self.peer().node;
        let flow = (to != shared.own_addr && to != 0).then(|| shared.flow_of(to));
        let mut off = 0;
        loop {
            if let Some(f) = &flow {
                crate::node::wait_uncongested(f).await;
            }
            let end = (off + MAX_USER_MSG_SIZE).min(data.len());
            let chunk = &data[off..end];
            wait_for(&self.inner, |c| match c.can_send() {
                Ok(true) => Some(c.write(chunk)),
                Ok(false) => None,
                Err(e) => Some(Err(e)),
            })
            .await?;
            if !push_out(shared, &self.inner) {
                return Err(ConnError::NoNode);
            }
            if let Some(f) = &flow {
                self.node.post_barrier(to, f).await;
            }
            off = end;
            if off >= data.len() {
                return Ok(());
            }
        }
    }

    /// Write `chunk` (at most 66000 bytes) now if nothing must be waited for (the window is
    /// open, the link to the peer not congested); `None`: wait with [`Connection::send`].
    fn try_send_now(&self, chunk: &[u8]) -> Option<Result<(), ConnError>> {
        let shared = self.node.shared();
        let r = {
            let mut c = self.inner.lock();
            let to = c.peer().node;
            let congested = to != shared.own_addr
                && to != 0
                && shared.flow_of(to).congested.load(Ordering::Acquire);
            match c.can_send() {
                Ok(true) if !congested => c.write(chunk),
                Ok(_) => return None,
                Err(e) => Err(e),
            }
        };
        if r.is_ok() && !push_out(shared, &self.inner) {
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
            push_out(self.node.shared(), &self.inner);
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
        let shared = self.node.shared();
        let to = self.peer().node;
        if to != shared.own_addr && to != 0 {
            crate::node::wait_uncongested(&shared.flow_of(to)).await;
        }
        let was = {
            let mut c = self.inner.lock();
            let was = c.state();
            c.shutdown(err);
            was
        };
        self.inner.changed.notify_waiters();
        push_out(shared, &self.inner);
        match was {
            ConnState::Established | ConnState::Connecting => Ok(()),
            _ => Err(ConnError::Closed),
        }
    }

    fn stop(&self) {
        if !self.closed.swap(true, std::sync::atomic::Ordering::AcqRel) {
            self.actor.do_send(Stop(Vec::new()));
        }
    }

    /// A tokio `AsyncRead + AsyncWrite` view (meant for [`ConnKind::Stream`]).
    pub fn into_stream(self) -> ConnStream {
        ConnStream {
            conn: Arc::new(self),
            rd: None,
            rbuf: Bytes::new(),
            wr: None,
            shut: None,
            eof: false,
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        if self.closed.load(std::sync::atomic::Ordering::Acquire) {
            return;
        }
        self.inner.lock().shutdown(ErrorCode::NoPort);
        push_out(self.node.shared(), &self.inner);
        self.stop();
    }
}

type BoxFut<T> = Pin<Box<dyn std::future::Future<Output = T>>>;

/// A connection as a tokio byte stream. Read end: `Ok(0)` after the peer's shutdown; errors
/// map to `io::Error` (`ConnectionReset`, `NotConnected`, ...). `poll_shutdown` sends the FIN
/// with `CONN_SHUTDOWN`.
pub struct ConnStream {
    conn: Arc<Connection>,
    rd: Option<BoxFut<Result<Option<Bytes>, ConnError>>>,
    rbuf: Bytes,
    wr: Option<(usize, BoxFut<Result<(), ConnError>>)>,
    shut: Option<BoxFut<Result<(), ConnError>>>,
    eof: bool,
}

fn io_err(e: ConnError) -> std::io::Error {
    use std::io::ErrorKind as K;
    let kind = match e {
        ConnError::Reset | ConnError::PeerShutdown => K::ConnectionReset,
        ConnError::Refused(_) => K::ConnectionRefused,
        ConnError::Aborted | ConnError::NoNode => K::ConnectionAborted,
        ConnError::Timeout => K::TimedOut,
        ConnError::TooLarge(_) => K::InvalidInput,
        _ => K::NotConnected,
    };
    std::io::Error::new(kind, e)
}

impl ConnStream {
    /// The connection behind the stream.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }
}

impl tokio::io::AsyncRead for ConnStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let me = &mut *self;
        loop {
            if !me.rbuf.is_empty() {
                let n = me.rbuf.len().min(buf.remaining());
                buf.put_slice(&me.rbuf.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if me.eof {
                return Poll::Ready(Ok(()));
            }
            let fut = me.rd.get_or_insert_with(|| {
                let c = me.conn.clone();
                Box::pin(async move { c.recv().await })
            });
            match fut.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => {
                    me.rd = None;
                    match r {
                        Ok(Some(b)) => me.rbuf = b,
                        Ok(None) => me.eof = true,
                        Err(e) => return Poll::Ready(Err(io_err(e))),
                    }
                }
            }
        }
    }
}

impl tokio::io::AsyncWrite for ConnStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let me = &mut *self;
        if me.wr.is_none() && data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if me.wr.is_none() {
            let n = data.len().min(MAX_USER_MSG_SIZE);
            // The common case: window open, link not congested: written from the caller's
            // buffer at once (one copy, no future).
            if let Some(r) = me.conn.try_send_now(&data[..n]) {
                return Poll::Ready(r.map(|_| n).map_err(io_err));
            }
            let b = Bytes::copy_from_slice(&data[..n]);
            let c = me.conn.clone();
            me.wr = Some((n, Box::pin(async move { c.send(b).await })));
        }
        let Some((n, fut)) = me.wr.as_mut() else {
            return Poll::Ready(Ok(0));
        };
        let n = *n;
        match fut.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => {
                me.wr = None;
                Poll::Ready(r.map(|_| n).map_err(io_err))
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<std::io::Result<()>> {
        let me = &mut *self;
        if let Some((_, fut)) = me.wr.as_mut() {
            match fut.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => {
                    me.wr = None;
                    r.map_err(io_err)?;
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        mut self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.as_mut().poll_flush(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Ready(Ok(())) => {}
        }
        let me = &mut *self;
        let fut = me.shut.get_or_insert_with(|| {
            let c = me.conn.clone();
            Box::pin(async move { c.shutdown().await })
        });
        match fut.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(r) => Poll::Ready(r.map_err(io_err)),
        }
    }
}

impl TransportNode {
    /// A listening connection socket of `kind` on a fresh port (bind it to receive requests
    /// by name; requests to its socket address work at once).
    pub fn conn_listener(&self, kind: ConnKind) -> Listener {
        let port = self.alloc_port();
        let mut core = ConnCore::new(SocketAddr {
            node: self.addr(),
            port,
        });
        let _ = core.listen();
        core.set_stream(kind == ConnKind::Stream);
        let inner = Inner::new(core);
        let actor = ConnActor::start_socket(self, port, inner.clone(), kind);
        Listener {
            node: self.clone(),
            port,
            inner,
            actor,
            bound: Mutex::new(Vec::new()),
            closed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// TCP-style connect: an empty SYN, then wait for the ACK (timeout 8 s, as the kernel).
    pub async fn connect(&self, dest: ConnDest, kind: ConnKind) -> Result<Connection, ConnError> {
        Connection::open(self, dest, kind, &[], ConnectOptions::default()).await
    }

    /// Connect with options: TCP-style if `first` is empty, else "0-RTT" with `first` in the
    /// SYN. [`ConnError::BadImportance`] for an importance above 3.
    pub async fn connect_opts(
        &self,
        dest: ConnDest,
        kind: ConnKind,
        first: Bytes,
        opts: ConnectOptions,
    ) -> Result<Connection, ConnError> {
        Connection::open(self, dest, kind, &first, opts).await
    }

    /// "0-RTT" connect: the SYN carries `first` (at most 66000 bytes); returns when the ACK
    /// arrives, as the kernel's `sendto()` on an unconnected socket waits for the connection.
    pub async fn connect_with(
        &self,
        dest: ConnDest,
        kind: ConnKind,
        first: Bytes,
    ) -> Result<Connection, ConnError> {
        Connection::open(self, dest, kind, &first, ConnectOptions::default()).await
    }
}
