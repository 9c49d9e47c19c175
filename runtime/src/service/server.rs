//! The serving side: the [`Service`] trait `#[tipc_service]` implements, and the actix actor
//! that runs one ([`ServiceActor`], kept behind [`ServiceHandle`]).
//!
//! A service owns an RDM socket bound to its service address. The actor takes what arrives in
//! batches, parses each envelope, calls the generated `dispatch` (which decodes the message and
//! calls the `#[handle]` method), and sends the replies before it takes the next batch, so a
//! slow service holds its clients back instead of queueing without bound. Bad input is
//! answered, never a panic: an ask with an unknown id, an undecodable payload, another envelope
//! version or an unknown must-understand flag gets an error reply within one round trip; a bad
//! tell is counted. A panicking handler answers its asker [`ErrorCode::Panicked`] and stops the
//! service as a closed socket stops in TIPC: bindings withdrawn cluster-wide, asks already
//! taken answered "service gone", queued ones returned to their senders (who learn "service
//! gone" at once), pending deferred replies answered when dropped.

use super::client::Clients;
use super::envelope::{error_payload, Envelope, EnvelopeError, ErrorCode, Kind};
use super::message::{decode, encode_into, TipcMessage};
use actix::prelude::*;
use bytes::Bytes;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tipc_actors::addr::{Scope, ServiceRange, SocketAddr};
use tipc_actors::sock::dgram::DgramSocket;
use tipc_actors::socket::Received;
use tipc_actors::TransportNode;

/// Longest detail text in an error reply.
const MAX_DETAIL: usize = 200;
/// Messages taken from the socket per batch.
const BATCH: usize = 256;
/// A service acknowledges a client's tells every this many consumed, and whatever it consumed
/// when its queue runs empty (the tell window, [`super::client::TELL_WINDOW`]).
pub const ACK_EVERY: u32 = 64;

/// Where a service binds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The service range (one instance: `lower == upper`).
    pub range: ServiceRange,
    /// Node or cluster scope.
    pub scope: Scope,
}

impl Binding {
    /// The binding `S` names in its `#[tipc_service]` (to start from and change).
    pub fn of<S: Service>() -> Binding {
        S::binding()
    }
}

/// A service: implemented by `#[tipc_service]` on the impl block of the user's type.
pub trait Service: Sized + 'static {
    /// Where the service binds unless started with another binding.
    fn binding() -> Binding;

    /// The ids of the messages it handles.
    fn message_ids() -> &'static [u32];

    /// Handle one tell or ask (generated: decode, call the `#[handle]` method, encode).
    fn dispatch(&mut self, req: &Request, cx: &mut Ctx<'_, Self>) -> Outcome;
}

/// One received tell or ask.
#[derive(Debug, Clone)]
pub struct Request {
    env: Envelope,
    from: SocketAddr,
    data: Bytes,
    payload_at: usize,
}

impl Request {
    /// The message id.
    pub fn id(&self) -> u32 {
        self.env.id
    }

    /// Whether the sender waits for a reply.
    pub fn is_ask(&self) -> bool {
        self.env.kind == Kind::Ask
    }

    /// The envelope.
    pub fn envelope(&self) -> &Envelope {
        &self.env
    }

    /// The sender's socket.
    pub fn from(&self) -> SocketAddr {
        self.from
    }

    /// The encoded message.
    pub fn payload(&self) -> &[u8] {
        &self.data[self.payload_at..]
    }

    /// The encoded message, zero-copy.
    pub fn payload_bytes(&self) -> Bytes {
        self.data.slice(self.payload_at..)
    }
}

/// What handling a message produced.
#[derive(Debug)]
pub enum Outcome {
    /// Handled; nothing to send (a tell).
    Done,
    /// The reply to send, envelope included.
    Reply(Vec<u8>),
    /// The message was refused or failed: an ask gets this error, a tell is counted.
    Failed(ErrorCode, String),
    /// A [`ReplyTo`] will answer.
    Deferred,
}

/// Decode `req` as `M`, run the handler, encode its reply (the generated code calls this).
pub fn call<M: TipcMessage>(req: &Request, f: impl FnOnce(M) -> M::Reply) -> Outcome {
    let m = match decode::<M>(req.payload()) {
        Ok(m) => m,
        Err(e) => return Outcome::Failed(ErrorCode::Undecodable, e.0),
    };
    let reply = f(m);
    if !req.is_ask() {
        return Outcome::Done;
    }
    encode_reply(&req.env, &reply)
}

fn encode_reply<T: serde::Serialize>(env: &Envelope, reply: &T) -> Outcome {
    let mut out = Vec::with_capacity(64);
    env.answer(Kind::Reply).emit(&mut out);
    match encode_into(reply, &mut out) {
        Ok(()) => Outcome::Reply(out),
        Err(e) => Outcome::Failed(ErrorCode::ReplyFailed, e.0),
    }
}

/// Decode `req` as `M`, or the outcome that refuses it (the generated code calls this for a
/// handler taking a [`ReplyTo`]).
pub fn decode_request<M: TipcMessage>(req: &Request) -> Result<M, Outcome> {
    decode::<M>(req.payload()).map_err(|e| Outcome::Failed(ErrorCode::Undecodable, e.0))
}

/// The answer to an unknown message id (the generated `dispatch`'s last arm).
pub fn unknown(req: &Request) -> Outcome {
    Outcome::Failed(
        ErrorCode::UnknownMessage,
        format!("no handler for message id {}", req.id()),
    )
}

struct ReplySink {
    sock: Arc<DgramSocket>,
    to: SocketAddr,
    env: Envelope,
}

impl ReplySink {
    fn send(self, bytes: Vec<u8>) {
        tokio::spawn(async move {
            let _ = self.sock.send_to_socket(self.to, &bytes).await;
        });
    }
}

/// A deferred reply: moves into a spawned future and answers the ask later. Dropped without
/// [`send`](Self::send), it answers the asker with an error instead of leaving it waiting.
/// For a tell it does nothing.
pub struct ReplyTo<T> {
    sink: Option<ReplySink>,
    _reply: PhantomData<fn(T)>,
}

impl<T: serde::Serialize> ReplyTo<T> {
    /// Send the reply.
    pub fn send(mut self, reply: T) {
        if let Some(sink) = self.sink.take() {
            match encode_reply(&sink.env, &reply) {
                Outcome::Reply(b) => sink.send(b),
                Outcome::Failed(code, detail) => {
                    let b = error_reply(&sink.env, code, &detail);
                    sink.send(b)
                }
                _ => {}
            }
        }
    }

    /// Whether anyone waits for the reply (false for a tell).
    pub fn is_wanted(&self) -> bool {
        self.sink.is_some()
    }
}

impl<T> Drop for ReplyTo<T> {
    fn drop(&mut self) {
        if let Some(sink) = self.sink.take() {
            let b = error_reply(
                &sink.env,
                ErrorCode::ReplyFailed,
                "the handler dropped its ReplyTo without replying",
            );
            sink.send(b);
        }
    }
}

fn error_reply(env: &Envelope, code: ErrorCode, detail: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + detail.len().min(MAX_DETAIL));
    env.answer(Kind::Error).emit(&mut out);
    error_payload(code, detail, MAX_DETAIL, &mut out);
    out
}

/// What a handler may use besides its message: the sender, the deadline, the node's clients,
/// spawning, stopping.
pub struct Ctx<'a, S: Service> {
    actx: &'a mut Context<ServiceActor<S>>,
    sock: &'a Arc<DgramSocket>,
    clients: &'a Arc<Clients>,
    node: &'a TransportNode,
    req: &'a Request,
    stop: &'a mut bool,
}

impl<S: Service> Ctx<'_, S> {
    /// The sender's socket.
    pub fn from(&self) -> SocketAddr {
        self.req.from
    }

    /// How long the asker waits, counted from when it sent (None for a tell).
    pub fn deadline(&self) -> Option<Duration> {
        self.req
            .env
            .deadline_ms
            .map(|ms| Duration::from_millis(ms as u64))
    }

    /// The service's own socket address.
    pub fn socket(&self) -> SocketAddr {
        self.sock.addr()
    }

    /// The node's client side, to tell or ask other services from a handler (in a spawned
    /// future).
    pub fn clients(&self) -> Arc<Clients> {
        self.clients.clone()
    }

    /// The transport node the service runs on.
    pub fn transport(&self) -> &TransportNode {
        self.node
    }

    /// Run `fut` on the service's thread, beside the service.
    pub fn spawn(&mut self, fut: impl std::future::Future<Output = ()> + 'static) {
        self.actx
            .spawn(actix::fut::wrap_future::<_, ServiceActor<S>>(fut));
    }

    /// The deferred reply to the message being handled (the generated code calls this for a
    /// handler taking a [`ReplyTo`]).
    #[doc(hidden)]
    pub fn reply_to<T>(&self) -> ReplyTo<T> {
        ReplyTo {
            sink: self.req.is_ask().then(|| ReplySink {
                sock: self.sock.clone(),
                to: self.req.from,
                env: self.req.env,
            }),
            _reply: PhantomData,
        }
    }

    /// Stop the service after this message: bindings withdrawn, later messages answered
    /// "service gone".
    pub fn stop(&mut self) {
        *self.stop = true;
    }
}

/// Counters of one service (shared with its handle).
#[derive(Debug, Default)]
pub struct ServiceCounters {
    tells: AtomicU64,
    asks: AtomicU64,
    replies: AtomicU64,
    errors: AtomicU64,
    bad_tells: AtomicU64,
    malformed: AtomicU64,
    returned: AtomicU64,
    panics: AtomicU64,
    refused_stopping: AtomicU64,
    running: AtomicBool,
}

/// A snapshot of [`ServiceCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceStats {
    /// Tells handled.
    pub tells: u64,
    /// Asks handled (answered or deferred).
    pub asks: u64,
    /// Replies sent.
    pub replies: u64,
    /// Error replies sent (unknown id, undecodable, version, flags, panic, gone).
    pub errors: u64,
    /// Tells refused (unknown id, undecodable, version, flags): counted, nobody to tell.
    pub bad_tells: u64,
    /// Messages without a readable envelope, or replies sent to a service.
    pub malformed: u64,
    /// Our replies that came back undelivered.
    pub returned: u64,
    /// Handler panics.
    pub panics: u64,
    /// Tells dropped because the service was stopping.
    pub refused_stopping: u64,
}

impl ServiceCounters {
    fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// A snapshot.
    pub fn snapshot(&self) -> ServiceStats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ServiceStats {
            tells: g(&self.tells),
            asks: g(&self.asks),
            replies: g(&self.replies),
            errors: g(&self.errors),
            bad_tells: g(&self.bad_tells),
            malformed: g(&self.malformed),
            returned: g(&self.returned),
            panics: g(&self.panics),
            refused_stopping: g(&self.refused_stopping),
        }
    }
}

/// The actor running a service (actix underneath; users see [`ServiceHandle`]).
pub struct ServiceActor<S: Service> {
    /// Boxed: the actor must be `Unpin`, the user's type need not be.
    svc: Box<S>,
    sock: Arc<DgramSocket>,
    clients: Arc<Clients>,
    node: TransportNode,
    counters: Arc<ServiceCounters>,
    stopping: bool,
    /// Tells consumed per sending socket, not yet acknowledged.
    acks: std::collections::HashMap<SocketAddr, u32>,
}

impl<S: Service> Actor for ServiceActor<S> {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.counters.running.store(false, Ordering::Release);
        let sock = self.sock.clone();
        actix_rt::spawn(async move { sock.shutdown().await });
    }
}

/// Batches from the service's socket.
struct Batch(Vec<Received>);

impl<S: Service> StreamHandler<Batch> for ServiceActor<S> {
    fn handle(&mut self, batch: Batch, ctx: &mut Self::Context) {
        let mut out: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        let drained = batch.0.len() < BATCH;
        for r in batch.0 {
            self.one(r, ctx, &mut out);
        }
        for (to, n) in self.acks.iter_mut() {
            if *n >= ACK_EVERY || drained || self.stopping {
                let mut b = Vec::with_capacity(6);
                Envelope::ack(*n).emit(&mut b);
                out.push((*to, b));
                *n = 0;
            }
        }
        self.acks.retain(|_, n| *n > 0);
        if out.is_empty() {
            return;
        }
        let sock = self.sock.clone();
        let sends = async move {
            for (to, b) in out {
                let _ = sock.send_to_socket(to, &b).await;
            }
        };
        if self.stopping {
            // The actor is going: the answers leave on their own.
            actix_rt::spawn(sends);
        } else {
            // The next batch waits for these replies: a slow link holds the service back.
            ctx.wait(sends.into_actor(self));
        }
    }

    fn finished(&mut self, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl<S: Service> ServiceActor<S> {
    fn refuse(
        &self,
        env_reply: Option<(u32, u64)>,
        code: ErrorCode,
        detail: &str,
    ) -> Option<Vec<u8>> {
        let (id, corr) = env_reply?;
        ServiceCounters::add(&self.counters.errors);
        Some(error_reply(&Envelope::ask(id, corr), code, detail))
    }

    fn one(&mut self, r: Received, ctx: &mut Context<Self>, out: &mut Vec<(SocketAddr, Vec<u8>)>) {
        let from = r.from;
        if r.returned.is_some() {
            ServiceCounters::add(&self.counters.returned);
            return;
        }
        let (env, payload_len) = match Envelope::parse(&r.data) {
            Ok((env, rest)) => (env, rest.len()),
            Err(e) => {
                let ask = e.reply_to();
                match self.refuse(ask, e.code(), &e.to_string()) {
                    Some(b) => out.push((from, b)),
                    None if matches!(
                        e,
                        EnvelopeError::Version { .. } | EnvelopeError::MustUnderstand { .. }
                    ) =>
                    {
                        ServiceCounters::add(&self.counters.bad_tells)
                    }
                    None => ServiceCounters::add(&self.counters.malformed),
                }
                return;
            }
        };
        if !matches!(env.kind, Kind::Tell | Kind::Ask) {
            ServiceCounters::add(&self.counters.malformed);
            return;
        }
        // A tell sent to this socket (not a multicast) counts against its sender's window:
        // consumed now, whatever becomes of it.
        if env.kind == Kind::Tell && r.mtype != tipc_transport::wire::DataType::Mcast {
            *self.acks.entry(from).or_insert(0) += 1;
        }
        let ask = (env.kind == Kind::Ask).then_some((env.id, env.correlation));
        if self.stopping {
            match self.refuse(ask, ErrorCode::ServiceGone, "the service stopped") {
                Some(b) => out.push((from, b)),
                None => ServiceCounters::add(&self.counters.refused_stopping),
            }
            return;
        }
        let req = Request {
            env,
            from,
            payload_at: r.data.len() - payload_len,
            data: r.data,
        };
        let mut stop = false;
        let outcome = {
            let mut cx = Ctx {
                actx: ctx,
                sock: &self.sock,
                clients: &self.clients,
                node: &self.node,
                req: &req,
                stop: &mut stop,
            };
            let svc = &mut *self.svc;
            catch_unwind(AssertUnwindSafe(|| svc.dispatch(&req, &mut cx)))
        };
        match outcome {
            Ok(o) => {
                ServiceCounters::add(if ask.is_some() {
                    &self.counters.asks
                } else {
                    &self.counters.tells
                });
                match o {
                    Outcome::Done | Outcome::Deferred => {}
                    Outcome::Reply(b) => {
                        ServiceCounters::add(&self.counters.replies);
                        out.push((from, b));
                    }
                    Outcome::Failed(code, detail) => match self.refuse(ask, code, &detail) {
                        Some(b) => out.push((from, b)),
                        None => ServiceCounters::add(&self.counters.bad_tells),
                    },
                }
            }
            Err(panic) => {
                ServiceCounters::add(&self.counters.panics);
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                if let Some(b) = self.refuse(ask, ErrorCode::Panicked, &what) {
                    out.push((from, b));
                }
                stop = true;
            }
        }
        if stop {
            self.stopping = true;
            ctx.stop();
        }
    }
}

/// Stop a service (the handle's `stop`).
struct Stop;

impl Message for Stop {
    type Result = ();
}

impl<S: Service> Handler<Stop> for ServiceActor<S> {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: Stop, ctx: &mut Self::Context) -> Self::Result {
        self.stopping = true;
        ctx.stop();
        let sock = self.sock.clone();
        Box::pin(async move { sock.shutdown().await })
    }
}

/// Why a service could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The binding was refused (reserved type, bad range, node stopping).
    #[error("cannot bind the service: {0}")]
    Bind(#[from] tipc_actors::socket::BindError),
}

/// A running service: its address, counters, and `stop`.
pub struct ServiceHandle<S: Service> {
    addr: Addr<ServiceActor<S>>,
    sock: SocketAddr,
    binding: Binding,
    counters: Arc<ServiceCounters>,
}

impl<S: Service> Clone for ServiceHandle<S> {
    fn clone(&self) -> Self {
        ServiceHandle {
            addr: self.addr.clone(),
            sock: self.sock,
            binding: self.binding,
            counters: self.counters.clone(),
        }
    }
}

impl<S: Service> ServiceHandle<S> {
    /// Bind `binding` on `node` and start `svc` there (inside an actix System).
    pub async fn start(
        svc: S,
        binding: Binding,
        node: &TransportNode,
        clients: Arc<Clients>,
    ) -> Result<ServiceHandle<S>, StartError> {
        let mut sock = node.dgram_socket();
        sock.bind(binding.range, binding.scope).await?;
        let sock = Arc::new(sock);
        let addr_of = sock.addr();
        let counters = Arc::new(ServiceCounters::default());
        counters.running.store(true, Ordering::Release);
        let c = counters.clone();
        let node = node.clone();
        let addr = ServiceActor::create(move |ctx| {
            let rx = sock.clone();
            ctx.add_stream(futures_util::stream::unfold(rx, |s| async move {
                let b = s.recv_batch(BATCH).await;
                (!b.is_empty()).then_some((Batch(b), s))
            }));
            ServiceActor {
                svc: Box::new(svc),
                sock,
                clients,
                node,
                counters: c,
                stopping: false,
                acks: std::collections::HashMap::new(),
            }
        });
        Ok(ServiceHandle {
            addr,
            sock: addr_of,
            binding,
            counters,
        })
    }

    /// The service's socket address.
    pub fn socket(&self) -> SocketAddr {
        self.sock
    }

    /// Where it is bound.
    pub fn binding(&self) -> Binding {
        self.binding
    }

    /// Whether it still runs (false after `stop`, a handler's `stop`, or a panic).
    pub fn is_running(&self) -> bool {
        self.counters.running.load(Ordering::Acquire)
    }

    /// Counters.
    pub fn stats(&self) -> ServiceStats {
        self.counters.snapshot()
    }

    /// Stop: the bindings are withdrawn when this returns; queued asks come back to their
    /// senders as "service gone".
    pub async fn stop(&self) {
        let _ = self.addr.send(Stop).await;
    }
}
