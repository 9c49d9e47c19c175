//! Clients of services: [`ServiceRef`] (tell, try_tell, ask) over a node's shared client
//! socket ([`Clients`]), which matches replies to asks by correlation id and fails an ask at
//! once when TIPC says why it cannot be answered: the message came back (no service, service
//! gone, overload), or the serving node went down. The timeout is the last resort.

use super::envelope::{parse_error_payload, Envelope, ErrorCode, Kind, TraceContext};
use super::message::{decode, encode_into, CodecError, TipcMessage};
use crate::telemetry::SendSpan;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tipc_actors::addr::{ServiceAddr, ServiceRange, SocketAddr};
use tipc_actors::sock::dgram::{DgramSocket, Prepared};
use tipc_actors::socket::{DgramError, Received};
use tipc_actors::{NodeEvent, TransportNode};
use tipc_transport::NodeAddr;
use tokio::sync::{oneshot, Notify};

/// The default time an ask waits for its reply.
pub const DEFAULT_ASK_TIMEOUT: Duration = Duration::from_secs(5);
/// Tells a client socket may have unconsumed at one service socket (the tell window); the
/// service acknowledges every [`super::server::ACK_EVERY`] consumed.
pub const TELL_WINDOW: u32 = 1024;

/// Why an ask failed. Each is known as soon as TIPC knows it; [`AskError::Timeout`] only when
/// nothing was heard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AskError {
    /// No binding matches the destination (nothing to send to).
    #[error("no service bound at the destination")]
    NoService,
    /// The service went away: unbound, stopped or panicked before it handled the ask.
    #[error("service gone")]
    ServiceGone,
    /// The serving socket's queue was full (TIPC_ERR_OVERLOAD).
    #[error("service overloaded")]
    Overloaded,
    /// The node serving the ask went down (or is not reachable).
    #[error("node down")]
    NodeDown,
    /// No reply within the timeout.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The handler panicked.
    #[error("the handler panicked")]
    Panicked,
    /// The service refused or failed the ask ([`ErrorCode`] and its detail).
    #[error("remote error: {code}: {detail}")]
    Remote {
        /// What went wrong.
        code: ErrorCode,
        /// The service's text.
        detail: String,
    },
    /// The message could not be encoded.
    #[error("cannot encode the message: {0}")]
    Encode(CodecError),
    /// The reply did not decode as the message's reply type.
    #[error("cannot decode the reply: {0}")]
    Decode(CodecError),
    /// This node is stopping.
    #[error("node stopped")]
    Stopped,
}

impl AskError {
    /// The kinds, in the order of [`AskError::kind_index`] (metric attribute values).
    pub const KINDS: [&'static str; 10] = [
        "no_service",
        "service_gone",
        "overloaded",
        "node_down",
        "timeout",
        "panicked",
        "remote",
        "encode",
        "decode",
        "stopped",
    ];

    /// This error's place in [`AskError::KINDS`].
    pub fn kind_index(&self) -> usize {
        match self {
            AskError::NoService => 0,
            AskError::ServiceGone => 1,
            AskError::Overloaded => 2,
            AskError::NodeDown => 3,
            AskError::Timeout(_) => 4,
            AskError::Panicked => 5,
            AskError::Remote { .. } => 6,
            AskError::Encode(_) => 7,
            AskError::Decode(_) => 8,
            AskError::Stopped => 9,
        }
    }

    /// Its kind as a short name (`"node_down"`, `"timeout"`...).
    pub fn kind(&self) -> &'static str {
        Self::KINDS[self.kind_index()]
    }
}

/// Why a tell failed (a tell that was sent and lost later is counted, not reported).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TellError {
    /// No binding matches the destination.
    #[error("no service bound at the destination")]
    NoService,
    /// The destination node is not reachable.
    #[error("node down")]
    NodeDown,
    /// The message could not be encoded.
    #[error("cannot encode the message: {0}")]
    Encode(CodecError),
    /// This node is stopping.
    #[error("node stopped")]
    Stopped,
}

impl From<DgramError> for TellError {
    fn from(e: DgramError) -> TellError {
        match e {
            DgramError::NoDestination => TellError::NoService,
            DgramError::NoNode => TellError::NodeDown,
            DgramError::Stopped => TellError::Stopped,
            other => TellError::Encode(CodecError(other.to_string())),
        }
    }
}

/// Why a [`ServiceRef::try_tell`] did not send: the message comes back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TryTellError<M> {
    /// The link to the destination is congested: try again later, or `tell` (which waits).
    #[error("link congested")]
    Congested(M),
    /// Anything else a tell can meet.
    #[error("{0}")]
    Failed(TellError, M),
}

impl<M> TryTellError<M> {
    /// The message, handed back.
    pub fn into_message(self) -> M {
        match self {
            TryTellError::Congested(m) | TryTellError::Failed(_, m) => m,
        }
    }
}

/// What the client side counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Asks sent.
    pub asks: u64,
    /// Tells sent.
    pub tells: u64,
    /// Tells that came back undelivered (no service, service gone, overload, node down).
    pub tells_returned: u64,
    /// Replies for no pending ask (late: after a timeout or a dropped ask).
    pub late_replies: u64,
    /// Messages on the client socket that were neither replies nor returns.
    pub malformed: u64,
    /// Tells that failed at once (no service, node down, encoding, stopping).
    pub tells_failed: u64,
    /// Asks that failed, by kind (indexed as [`AskError::KINDS`]).
    pub ask_errors: [u64; 10],
}

/// The tells in flight to one service socket.
struct Flow {
    inflight: u32,
    opened: Arc<Notify>,
}

struct Pending {
    tx: oneshot::Sender<Result<Bytes, AskError>>,
    /// The node the ask went to (0 until the send chose it).
    node: NodeAddr,
}

/// A node's client side: one returnable RDM socket shared by every [`ServiceRef`], the asks
/// waiting for replies, and the counters.
pub struct Clients {
    sock: DgramSocket,
    node: TransportNode,
    next: AtomicU64,
    pending: Mutex<HashMap<u64, Pending>>,
    flows: Mutex<HashMap<SocketAddr, Flow>>,
    stats: Counters,
}

/// [`ClientStats`] as atomics (counted on the send path without a lock).
#[derive(Default)]
struct Counters {
    asks: AtomicU64,
    tells: AtomicU64,
    tells_returned: AtomicU64,
    late_replies: AtomicU64,
    malformed: AtomicU64,
    tells_failed: AtomicU64,
    ask_errors: [AtomicU64; 10],
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

thread_local! {
    /// The encoding buffer of this thread's tells: a tell is encoded, then copied into its
    /// TIPC message before the send waits, so one buffer serves them all.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(Vec::with_capacity(256));
}

impl Clients {
    /// The client side of `node`: its socket, the task matching replies, and the task failing
    /// asks to nodes that go down. Must run inside a tokio runtime.
    pub fn start(node: &TransportNode) -> Arc<Clients> {
        let mut sock = node.dgram_socket();
        sock.set_returnable(true);
        let c = Arc::new(Clients {
            sock,
            node: node.clone(),
            next: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            flows: Mutex::new(HashMap::new()),
            stats: Counters::default(),
        });
        let weak = Arc::downgrade(&c);
        let mut events = node.events();
        tokio::spawn(async move {
            loop {
                let ev = events.recv().await;
                let Some(c) = weak.upgrade() else { return };
                match ev {
                    Ok(NodeEvent::NodeDown(addr)) => c.fail_node(addr),
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                    Err(_) => return,
                }
            }
        });
        register_metrics(&c);
        // The reply task holds the client side until the node stops (its socket's inbox
        // closes then, and every ask still pending fails with `Stopped`).
        let rx = c.clone();
        tokio::spawn(async move {
            loop {
                let b = rx.sock.recv_batch(256).await;
                if b.is_empty() {
                    rx.fail_all(AskError::Stopped);
                    return;
                }
                for r in b {
                    rx.on_message(r);
                }
            }
        });
        c
    }

    fn pending(&self) -> MutexGuard<'_, HashMap<u64, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn flows(&self) -> MutexGuard<'_, HashMap<SocketAddr, Flow>> {
        self.flows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take a place in the tell window to `dest`, if one is free.
    fn try_acquire(&self, dest: SocketAddr) -> Result<(), Arc<Notify>> {
        let mut flows = self.flows();
        let f = flows.entry(dest).or_insert_with(|| Flow {
            inflight: 0,
            opened: Arc::new(Notify::new()),
        });
        if f.inflight < TELL_WINDOW {
            f.inflight += 1;
            Ok(())
        } else {
            Err(f.opened.clone())
        }
    }

    /// Wait for a place in the tell window to `dest`.
    async fn acquire(&self, dest: SocketAddr) {
        loop {
            let opened = match self.try_acquire(dest) {
                Ok(()) => return,
                Err(n) => n,
            };
            let woken = opened.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            // Registered: an ack between the look and now is not missed.
            if self.try_acquire(dest).is_ok() {
                return;
            }
            woken.await;
        }
    }

    /// `n` tells to `dest` were consumed (acked) or came back: their places free up.
    fn release(&self, dest: SocketAddr, n: u32) {
        let mut flows = self.flows();
        if let Some(f) = flows.get_mut(&dest) {
            f.inflight = f.inflight.saturating_sub(n);
            f.opened.notify_waiters();
            if f.inflight == 0 {
                flows.remove(&dest);
            }
        }
    }

    /// Tells in flight to `dest` (unconsumed as far as this client knows).
    pub fn tells_in_flight(&self, dest: SocketAddr) -> u32 {
        self.flows().get(&dest).map_or(0, |f| f.inflight)
    }

    /// What was counted so far.
    pub fn stats(&self) -> ClientStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ClientStats {
            asks: g(&self.stats.asks),
            tells: g(&self.stats.tells),
            tells_returned: g(&self.stats.tells_returned),
            late_replies: g(&self.stats.late_replies),
            malformed: g(&self.stats.malformed),
            tells_failed: g(&self.stats.tells_failed),
            ask_errors: std::array::from_fn(|i| g(&self.stats.ask_errors[i])),
        }
    }

    /// The transport node it sends through.
    pub fn transport(&self) -> &TransportNode {
        &self.node
    }

    /// Asks waiting for a reply now.
    pub fn pending_asks(&self) -> usize {
        self.pending().len()
    }

    /// The client socket's address (where replies come to).
    pub fn addr(&self) -> SocketAddr {
        self.sock.addr()
    }

    fn complete(&self, corr: u64, r: Result<Bytes, AskError>) -> bool {
        match self.pending().remove(&corr) {
            Some(p) => {
                let _ = p.tx.send(r);
                true
            }
            None => false,
        }
    }

    fn fail_node(&self, node: NodeAddr) {
        let gone: Vec<Pending> = {
            let mut p = self.pending();
            let keys: Vec<u64> = p
                .iter()
                .filter(|(_, v)| v.node == node)
                .map(|(k, _)| *k)
                .collect();
            keys.into_iter().filter_map(|k| p.remove(&k)).collect()
        };
        for p in gone {
            let _ = p.tx.send(Err(AskError::NodeDown));
        }
        // Tells waiting for a window at the lost node go on (and meet NO_NODE).
        self.flows().retain(|dest, f| {
            if dest.node == node {
                f.opened.notify_waiters();
            }
            dest.node != node
        });
    }

    fn fail_all(&self, e: AskError) {
        let all: Vec<Pending> = self.pending().drain().map(|(_, v)| v).collect();
        for p in all {
            let _ = p.tx.send(Err(e.clone()));
        }
    }

    fn on_message(&self, r: Received) {
        let Ok((env, payload)) = Envelope::parse(&r.data) else {
            bump(&self.stats.malformed);
            return;
        };
        if let Some(ret) = r.returned {
            // One of ours came back undelivered: TIPC says why.
            let e = match ret.error {
                tipc_transport::wire::ErrorCode::NoName => AskError::NoService,
                tipc_transport::wire::ErrorCode::NoPort => AskError::ServiceGone,
                tipc_transport::wire::ErrorCode::NoNode => AskError::NodeDown,
                tipc_transport::wire::ErrorCode::Overload => AskError::Overloaded,
                _ => AskError::ServiceGone,
            };
            match env.kind {
                Kind::Ask => {
                    self.complete(env.correlation, Err(e));
                }
                _ => {
                    bump(&self.stats.tells_returned);
                    if r.mtype != tipc_transport::wire::DataType::Mcast {
                        self.release(ret.dest, 1);
                    }
                }
            }
            return;
        }
        if env.kind == Kind::Ack {
            self.release(r.from, env.id);
            return;
        }
        let Some(result) = answer(env.kind, r.data.slice_ref(payload)) else {
            bump(&self.stats.malformed);
            return;
        };
        if !self.complete(env.correlation, result) {
            bump(&self.stats.late_replies);
        }
    }

    fn register(&self) -> (u64, oneshot::Receiver<Result<Bytes, AskError>>) {
        let corr = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending().insert(corr, Pending { tx, node: 0 });
        (corr, rx)
    }

    fn set_node(&self, corr: u64, node: NodeAddr) {
        if let Some(p) = self.pending().get_mut(&corr) {
            p.node = node;
        }
    }
}

/// Make `c` known to the metrics ([`crate::telemetry::metrics`]): its transport, and its
/// counters as `tipc.client.*` data points (read only when metrics are collected).
fn register_metrics(c: &Arc<Clients>) {
    use crate::telemetry::metrics::{kv, register_node, Points};
    let addr = c.addr().node;
    let weak = Arc::downgrade(c);
    let transport_of = {
        let weak = weak.clone();
        Box::new(move || weak.upgrade().map(|c| c.node.clone()))
    };
    let last = Mutex::new((ClientStats::default(), 0usize));
    let read = move |p: &mut Points| {
        let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
        let alive = match weak.upgrade() {
            Some(c) => {
                *last = (c.stats(), c.pending_asks());
                true
            }
            None => false,
        };
        let (s, pending) = &*last;
        let node = || vec![kv("tipc.node", addr as i64)];
        p.add("tipc.client.tells", s.tells, node());
        p.add("tipc.client.asks", s.asks, node());
        p.add("tipc.client.tells.returned", s.tells_returned, node());
        p.add("tipc.client.tells.failed", s.tells_failed, node());
        p.add("tipc.client.late_replies", s.late_replies, node());
        p.add("tipc.client.malformed", s.malformed, node());
        p.add("tipc.client.asks.pending", *pending as u64, node());
        for (kind, v) in AskError::KINDS.iter().zip(s.ask_errors) {
            let mut a = node();
            a.push(kv("tipc.error", *kind));
            p.add("tipc.client.ask.errors", v, a);
        }
        alive
    };
    register_node(addr, transport_of, Box::new(read));
}

/// An ask's request: its envelope (correlation `corr`, the deadline `timeout`, the sender's
/// trace context) and `msg` encoded. Used by service asks and group asks alike.
pub(crate) fn ask_request<M: TipcMessage>(
    msg: &M,
    corr: u64,
    timeout: Duration,
    trace: Option<TraceContext>,
) -> Result<Vec<u8>, AskError> {
    let mut buf = Vec::with_capacity(64);
    let mut env = Envelope::ask(M::ID, corr);
    env.deadline_ms = Some(timeout.as_millis().min(u32::MAX as u128) as u32);
    env.trace = trace;
    env.emit(&mut buf);
    encode_into(msg, &mut buf).map_err(AskError::Encode)?;
    Ok(buf)
}

/// What a reply or error envelope of `kind` answers an ask with (`None`: not an answer).
pub(crate) fn answer(kind: Kind, payload: Bytes) -> Option<Result<Bytes, AskError>> {
    match kind {
        Kind::Reply => Some(Ok(payload)),
        Kind::Error => Some(Err(match parse_error_payload(&payload) {
            (ErrorCode::Panicked, _) => AskError::Panicked,
            (ErrorCode::ServiceGone, _) => AskError::ServiceGone,
            (code, detail) => AskError::Remote { code, detail },
        })),
        _ => None,
    }
}

/// Wait at most `timeout` for an ask's answer on `rx`, and decode it as `M`'s reply.
pub(crate) async fn await_answer<M: TipcMessage>(
    rx: oneshot::Receiver<Result<Bytes, AskError>>,
    timeout: Duration,
) -> Result<M::Reply, AskError> {
    match tokio::time::timeout(timeout, rx).await {
        Err(_) => Err(AskError::Timeout(timeout)),
        Ok(Err(_)) => Err(AskError::Stopped),
        Ok(Ok(Err(e))) => Err(e),
        Ok(Ok(Ok(payload))) => decode::<M::Reply>(&payload).map_err(AskError::Decode),
    }
}

/// Removes a pending ask when the ask's future ends or is dropped (cancel safety).
struct PendingGuard<'a> {
    clients: &'a Clients,
    corr: u64,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.clients.pending().remove(&self.corr);
    }
}

/// Where a [`ServiceRef`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Anycast to a service address (round robin among its bindings, as TIPC's lookup).
    Service(ServiceAddr),
    /// Multicast to every socket bound in a range (tell only).
    Range(ServiceRange),
    /// One socket.
    Socket(SocketAddr),
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Service(a) => write!(f, "{}:{}", a.type_, a.instance),
            Target::Range(r) => write!(f, "{}:{}-{}", r.type_(), r.lower(), r.upper()),
            Target::Socket(s) => write!(f, "socket {s}"),
        }
    }
}

/// A handle for sending typed messages to a service; cheap to clone.
#[derive(Clone)]
pub struct ServiceRef {
    clients: Arc<Clients>,
    target: Target,
    timeout: Duration,
}

impl ServiceRef {
    /// A reference to `target` through `clients`.
    pub fn new(clients: Arc<Clients>, target: Target) -> ServiceRef {
        ServiceRef {
            clients,
            target,
            timeout: DEFAULT_ASK_TIMEOUT,
        }
    }

    /// The same reference with another default ask timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> ServiceRef {
        self.timeout = timeout;
        self
    }

    /// Where it sends.
    pub fn target(&self) -> Target {
        self.target
    }

    async fn send(&self, bytes: &[u8]) -> Result<NodeAddr, DgramError> {
        let s = &self.clients.sock;
        match self.target {
            Target::Service(name) => s.send_anycast(name, bytes).await.map(|d| d.node),
            Target::Range(range) => s.send_to_range(range, bytes).await.map(|_| 0),
            Target::Socket(to) => s.send_to_socket(to, bytes).await.map(|_| to.node),
        }
    }

    fn prepare(&self, bytes: &[u8]) -> Result<Option<Prepared>, DgramError> {
        let s = &self.clients.sock;
        match self.target {
            Target::Service(name) => s.prepare_anycast(name, bytes).map(Some),
            Target::Socket(to) => s.prepare_to_socket(to, bytes).map(Some),
            Target::Range(_) => Ok(None),
        }
    }

    /// Send `msg` one way. Waits while the link is congested or the service socket has a
    /// window of this node's tells unconsumed ([`TELL_WINDOW`]); a range multicast is not
    /// windowed (what overflows comes back and is counted in `tells_returned`).
    pub async fn tell<M: TipcMessage>(&self, msg: &M) -> Result<(), TellError> {
        let mut span = self.span(false, M::ID);
        let r = self.tell_in(msg, &span).await;
        if let Err(e) = &r {
            bump(&self.clients.stats.tells_failed);
            span.fail(e);
        }
        r
    }

    fn span(&self, ask: bool, id: u32) -> SendSpan {
        SendSpan::start(ask, &self.target, id, self.clients.sock.addr().node)
    }

    async fn tell_in<M: TipcMessage>(&self, msg: &M, span: &SendSpan) -> Result<(), TellError> {
        let prepared = SCRATCH.with(|b| -> Result<Result<Prepared, Vec<u8>>, TellError> {
            let mut buf = b.borrow_mut();
            buf.clear();
            let mut env = Envelope::tell(M::ID);
            env.trace = span.trace;
            env.emit(&mut buf);
            encode_into(msg, &mut buf).map_err(TellError::Encode)?;
            match self.prepare(&buf)? {
                Some(p) => Ok(Ok(p)),
                None => Ok(Err(buf.clone())),
            }
        })?;
        let s = &self.clients.sock;
        match prepared {
            Err(bytes) => {
                self.send(&bytes).await?;
            }
            Ok(p) => {
                let dest = p.dest();
                let windowed = dest.port != 0;
                if windowed {
                    self.clients.acquire(dest).await;
                }
                if let Err(e) = s.send_prepared(p).await {
                    if windowed {
                        self.clients.release(dest, 1);
                    }
                    return Err(e.into());
                }
            }
        }
        bump(&self.clients.stats.tells);
        Ok(())
    }

    /// Send `msg` one way without waiting: while the link is congested the message comes
    /// back in [`TryTellError::Congested`]. A range target is multicast through the name
    /// table, which may wait: use [`tell`](Self::tell) for it.
    pub fn try_tell<M: TipcMessage>(&self, msg: M) -> Result<(), TryTellError<M>> {
        let mut span = self.span(false, M::ID);
        let r = self.try_tell_in(msg, &span);
        if let Err(e) = &r {
            if let TryTellError::Failed(..) = e {
                bump(&self.clients.stats.tells_failed);
            }
            span.fail(e);
        }
        r
    }

    fn try_tell_in<M: TipcMessage>(&self, msg: M, span: &SendSpan) -> Result<(), TryTellError<M>> {
        let mut buf = Vec::with_capacity(64);
        let mut env = Envelope::tell(M::ID);
        env.trace = span.trace;
        env.emit(&mut buf);
        if let Err(e) = encode_into(&msg, &mut buf) {
            return Err(TryTellError::Failed(TellError::Encode(e), msg));
        }
        let p = match self.prepare(&buf) {
            Ok(Some(p)) => p,
            Ok(None) => {
                return Err(TryTellError::Failed(
                    TellError::Encode(CodecError(
                        "try_tell cannot multicast without waiting: use tell".into(),
                    )),
                    msg,
                ))
            }
            Err(e) => return Err(TryTellError::Failed(e.into(), msg)),
        };
        let dest = p.dest();
        let windowed = dest.port != 0;
        if windowed && self.clients.try_acquire(dest).is_err() {
            return Err(TryTellError::Congested(msg));
        }
        match self.clients.sock.try_send_prepared(p) {
            Ok(()) => {
                bump(&self.clients.stats.tells);
                Ok(())
            }
            Err((e, _)) => {
                if windowed {
                    self.clients.release(dest, 1);
                }
                match e {
                    DgramError::Congested => Err(TryTellError::Congested(msg)),
                    e => Err(TryTellError::Failed(e.into(), msg)),
                }
            }
        }
    }

    /// Ask with the reference's timeout ([`DEFAULT_ASK_TIMEOUT`] unless set).
    pub async fn ask<M: TipcMessage>(&self, msg: &M) -> Result<M::Reply, AskError> {
        self.ask_timeout(msg, self.timeout).await
    }

    /// Ask and wait at most `timeout` for the reply. Fails at once when TIPC knows the ask
    /// cannot be answered. Cancel-safe: dropping the future leaves nothing pending.
    pub async fn ask_timeout<M: TipcMessage>(
        &self,
        msg: &M,
        timeout: Duration,
    ) -> Result<M::Reply, AskError> {
        if let Target::Range(_) = self.target {
            return Err(AskError::Remote {
                code: ErrorCode::Other(0),
                detail: "ask needs one destination: use tell for a range".into(),
            });
        }
        let mut span = self.span(true, M::ID);
        let r = self.ask_in(msg, timeout, &span).await;
        if let Err(e) = &r {
            bump(&self.clients.stats.ask_errors[e.kind_index()]);
            span.fail(e);
        }
        r
    }

    async fn ask_in<M: TipcMessage>(
        &self,
        msg: &M,
        timeout: Duration,
        span: &SendSpan,
    ) -> Result<M::Reply, AskError> {
        let (corr, rx) = self.clients.register();
        let _guard = PendingGuard {
            clients: &self.clients,
            corr,
        };
        let buf = ask_request(msg, corr, timeout, span.trace)?;
        let send = tokio::time::timeout(timeout, self.send(&buf)).await;
        match send {
            Err(_) => return Err(AskError::Timeout(timeout)),
            Ok(Err(DgramError::NoDestination)) => return Err(AskError::NoService),
            Ok(Err(DgramError::NoNode)) => return Err(AskError::NodeDown),
            Ok(Err(DgramError::Stopped)) => return Err(AskError::Stopped),
            Ok(Err(DgramError::Congested)) => return Err(AskError::Overloaded),
            Ok(Err(e)) => return Err(AskError::Encode(CodecError(e.to_string()))),
            Ok(Ok(node)) => self.clients.set_node(corr, node),
        }
        bump(&self.clients.stats.asks);
        await_answer::<M>(rx, timeout).await
    }
}
