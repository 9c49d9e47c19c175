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
use super::group::{GroupAsks, GroupRef, Member};
use super::message::{decode, encode_into, TipcMessage};
use crate::telemetry::metrics::{QueueLook, QueueProbe};
use crate::telemetry::{current_traced, ServeSpan};
use actix::prelude::*;
use bytes::Bytes;
use opentelemetry::context::FutureExt as _;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tipc_actors::addr::{Scope, ServiceAddr, ServiceRange, SocketAddr};
use tipc_actors::sock::dgram::DgramSocket;
use tipc_actors::sock::group::{GroupMember, GroupRecv, GroupSpec, Mode};
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
    /// The service range (one instance: `lower == upper`); for a group member, the group's
    /// type and the member's instance.
    pub range: ServiceRange,
    /// Node or cluster scope.
    pub scope: Scope,
    /// A member of a communication group instead of a bound socket.
    pub group: Option<GroupOpts>,
}

/// How a group service joins (`#[tipc_service(group = T, instance = I, events, loopback)]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GroupOpts {
    /// Member events (`#[on_join]`, `#[on_leave]`).
    pub events: bool,
    /// Copies of its own broadcasts, multicasts and anycasts.
    pub loopback: bool,
}

impl Binding {
    /// A socket bound to `range` with `scope`.
    pub fn service(range: ServiceRange, scope: Scope) -> Binding {
        Binding {
            range,
            scope,
            group: None,
        }
    }

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

    /// Whether the service takes raw datagrams (a `#[handle]` method taking [`Raw`]): no
    /// envelope, so plain TIPC clients (the kernel's sockets, `tipcctl send rdm`) can call it.
    fn is_raw() -> bool {
        false
    }

    /// Handle one raw datagram (generated for a raw service); the reply, if any, goes back
    /// to the sender as it is.
    fn dispatch_raw(&mut self, msg: Raw, cx: &mut Ctx<'_, Self>) -> Option<Vec<u8>> {
        let _ = (msg, cx);
        None
    }

    /// A group member joined or left (generated from `#[on_join]` / `#[on_leave]`).
    fn on_member(&mut self, event: MemberEvent, cx: &mut Ctx<'_, Self>) {
        let _ = (event, cx);
    }
}

/// A datagram as it came, for a raw service (no envelope: what a plain TIPC client sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raw {
    /// The payload.
    pub data: Bytes,
    /// The sender's socket.
    pub from: SocketAddr,
}

/// A member of a group service's group came or went (ordered with its messages: a join
/// before its first message, a leave after its last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberEvent {
    /// A member joined.
    Joined(Member),
    /// A member left, or its node was lost.
    Left(Member),
}

/// One received tell or ask.
#[derive(Debug, Clone)]
pub struct Request {
    env: Envelope,
    from: SocketAddr,
    data: Bytes,
    payload_at: usize,
    /// For a group service: the sender's member address and how it sent.
    member: Option<(ServiceAddr, Mode)>,
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

    /// For a group service: the sender's member address and how it sent (broadcast,
    /// multicast, unicast or anycast: the wire tells these two apart only as unicast).
    pub fn member(&self) -> Option<(ServiceAddr, Mode)> {
        self.member
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

/// `Self`, what a `#[handle]` method answers with (its return type, or the `T` of the
/// `ReplyTo<T>` it takes), is `R`, its message's reply type. The generated code checks every
/// handler through this trait, so a mismatch is reported at the handler's signature in these
/// words instead of as a type error inside the generated code.
#[diagnostic::on_unimplemented(
    message = "this #[handle] method answers with `{Self}`, but its message's reply type is `{R}`",
    label = "expected `{R}`",
    note = "a message's reply type is set by `#[tipc(reply = T)]` on it (default `()`); its #[handle] method returns a `T`, or takes `reply: ReplyTo<T>` and returns nothing"
)]
pub trait Answers<R> {
    /// The answer as the reply.
    fn answer(self) -> R;

    /// The deferred reply to the message being handled, typed as the handler takes it (the
    /// generated code calls this for a handler taking a [`ReplyTo`]).
    fn reply_to<S: Service>(cx: &Ctx<'_, S>) -> ReplyTo<Self>
    where
        Self: Sized,
    {
        cx.reply_to::<Self>()
    }
}

impl<T> Answers<T> for T {
    fn answer(self) -> T {
        self
    }
}

/// The answer to an unknown message id (the generated `dispatch`'s last arm).
pub fn unknown(req: &Request) -> Outcome {
    Outcome::Failed(
        ErrorCode::UnknownMessage,
        format!("no handler for message id {}", req.id()),
    )
}

struct ReplySink {
    ep: Endpoint,
    to: SocketAddr,
    env: Envelope,
    /// The runtime the service runs on: a `ReplyTo` moved to another thread (or runtime)
    /// still sends through it.
    rt: tokio::runtime::Handle,
}

impl ReplySink {
    fn send(self, bytes: Vec<u8>) {
        let (ep, to) = (self.ep, self.to);
        self.rt.spawn(async move { ep.send_to(to, bytes).await });
    }
}

/// What a service receives on and answers from: its bound socket, or its group membership.
#[derive(Clone)]
pub(crate) enum Endpoint {
    Socket(Arc<DgramSocket>),
    Group(Arc<GroupMember>, Arc<GroupAsks>),
}

impl Endpoint {
    fn addr(&self) -> SocketAddr {
        match self {
            Endpoint::Socket(s) => s.addr(),
            Endpoint::Group(g, _) => g.addr(),
        }
    }

    /// Send `bytes` to one socket (a group member answers with a group unicast, which keeps
    /// the order with what it broadcast before).
    async fn send_to(&self, to: SocketAddr, bytes: Vec<u8>) {
        match self {
            Endpoint::Socket(s) => {
                let _ = s.send_to_socket(to, &bytes).await;
            }
            Endpoint::Group(g, _) => {
                let _ = g.unicast(to, bytes).await;
            }
        }
    }

    /// A look at its receive queue for metrics (messages, bytes, refused for overload),
    /// holding the socket only weakly.
    fn queue_probe(&self) -> crate::telemetry::metrics::QueueProbe {
        match self {
            Endpoint::Socket(s) => {
                let w = Arc::downgrade(s);
                Box::new(move || {
                    w.upgrade().map(|s| {
                        let q = s.queue_stats();
                        QueueLook {
                            len: Some(q.len as u64),
                            bytes: q.bytes as u64,
                            refused: q.counters.rejected_overload,
                        }
                    })
                })
            }
            Endpoint::Group(g, _) => {
                let w = Arc::downgrade(g);
                Box::new(move || {
                    w.upgrade().map(|g| {
                        let st = g.stats();
                        QueueLook {
                            len: None,
                            bytes: st.queued_bytes as u64,
                            refused: st.driver.rcvbuf_dropped,
                        }
                    })
                })
            }
        }
    }

    /// Withdraw the binding (or leave the group) and reject what is queued.
    async fn close(&self) {
        match self {
            Endpoint::Socket(s) => s.shutdown().await,
            Endpoint::Group(g, asks) => {
                g.leave_shared();
                asks.fail_all();
            }
        }
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
    ep: &'a Endpoint,
    clients: &'a Arc<Clients>,
    node: &'a TransportNode,
    from: SocketAddr,
    /// The message being handled (none for a member event).
    req: Option<&'a Request>,
    stop: &'a mut bool,
}

impl<S: Service> Ctx<'_, S> {
    /// The sender's socket (for a member event, the member's).
    pub fn from(&self) -> SocketAddr {
        self.from
    }

    /// How long the asker waits, counted from when it sent (None for a tell).
    pub fn deadline(&self) -> Option<Duration> {
        self.req?
            .env
            .deadline_ms
            .map(|ms| Duration::from_millis(ms as u64))
    }

    /// The service's own socket address.
    pub fn socket(&self) -> SocketAddr {
        self.ep.addr()
    }

    /// For a group service: the sender's member address and how it sent.
    pub fn member(&self) -> Option<(ServiceAddr, Mode)> {
        self.req.and_then(|r| r.member)
    }

    /// For a group service: its membership, to send typed messages to the group.
    pub fn group(&self) -> Option<GroupRef> {
        match self.ep {
            Endpoint::Group(g, a) => Some(GroupRef::new(g.clone(), a.clone())),
            Endpoint::Socket(_) => None,
        }
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
    /// The future runs in the current trace context (the handled message's span), so the
    /// asks it makes are children of that span.
    pub fn spawn(&mut self, fut: impl std::future::Future<Output = ()> + 'static) {
        match current_traced() {
            Some(tcx) => self
                .actx
                .spawn(actix::fut::wrap_future::<_, ServiceActor<S>>(
                    fut.with_context(tcx),
                )),
            None => self
                .actx
                .spawn(actix::fut::wrap_future::<_, ServiceActor<S>>(fut)),
        };
    }

    /// The deferred reply to the message being handled (the generated code calls this for a
    /// handler taking a [`ReplyTo`]).
    #[doc(hidden)]
    pub fn reply_to<T>(&self) -> ReplyTo<T> {
        ReplyTo {
            sink: self.req.filter(|r| r.is_ask()).map(|r| ReplySink {
                ep: self.ep.clone(),
                to: r.from,
                env: r.env,
                rt: tokio::runtime::Handle::current(),
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
    ep: Endpoint,
    clients: Arc<Clients>,
    node: TransportNode,
    counters: Arc<ServiceCounters>,
    stopping: bool,
    /// Tells consumed per sending socket, not yet acknowledged.
    acks: std::collections::HashMap<SocketAddr, u32>,
    /// Where it is bound (its name in spans).
    range: ServiceRange,
}

impl<S: Service> Actor for ServiceActor<S> {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.counters.running.store(false, Ordering::Release);
        let ep = self.ep.clone();
        actix_rt::spawn(async move { ep.close().await });
    }
}

/// One thing a service received.
enum Incoming {
    /// A message: from a socket (`windowed`: a tell counted against its sender's window, not
    /// a multicast), or from a group member.
    Msg {
        from: SocketAddr,
        data: Bytes,
        windowed: bool,
        returned: bool,
        member: Option<(ServiceAddr, Mode)>,
    },
    /// A group member came or went.
    Member(MemberEvent),
}

/// Batches from the service's socket or membership.
struct Batch(Vec<Incoming>);

impl<S: Service> StreamHandler<Batch> for ServiceActor<S> {
    fn handle(&mut self, batch: Batch, ctx: &mut Self::Context) {
        let mut out: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
        let drained = batch.0.len() < BATCH;
        for r in batch.0 {
            match r {
                Incoming::Msg {
                    from,
                    data,
                    windowed,
                    returned,
                    member,
                } => self.one(from, data, windowed, returned, member, ctx, &mut out),
                Incoming::Member(ev) => self.member_event(ev, ctx),
            }
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
        let ep = self.ep.clone();
        let sends = async move {
            for (to, b) in out {
                ep.send_to(to, b).await;
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

    /// Run the user's code `f` with a [`Ctx`] for a message from `from`: a panic is caught
    /// and counted, and after it, or after `cx.stop()`, the service stops.
    fn call_user<R>(
        &mut self,
        ctx: &mut Context<Self>,
        from: SocketAddr,
        req: Option<&Request>,
        f: impl FnOnce(&mut S, &mut Ctx<'_, S>) -> R,
    ) -> std::thread::Result<R> {
        let mut stop = false;
        let r = {
            let mut cx = Ctx {
                actx: ctx,
                ep: &self.ep,
                clients: &self.clients,
                node: &self.node,
                from,
                req,
                stop: &mut stop,
            };
            let svc = &mut *self.svc;
            catch_unwind(AssertUnwindSafe(|| f(svc, &mut cx)))
        };
        if r.is_err() {
            ServiceCounters::add(&self.counters.panics);
            stop = true;
        }
        if stop {
            self.stopping = true;
            ctx.stop();
        }
        r
    }

    fn member_event(&mut self, ev: MemberEvent, ctx: &mut Context<Self>) {
        if self.stopping {
            return;
        }
        let from = match ev {
            MemberEvent::Joined(m) | MemberEvent::Left(m) => m.socket,
        };
        if let (MemberEvent::Left(m), Endpoint::Group(_, asks)) = (&ev, &self.ep) {
            asks.member_left(m.socket);
        }
        let _ = self.call_user(ctx, from, None, |svc, cx| svc.on_member(ev, cx));
    }

    fn one_raw(
        &mut self,
        from: SocketAddr,
        data: Bytes,
        ctx: &mut Context<Self>,
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) {
        if self.stopping {
            ServiceCounters::add(&self.counters.refused_stopping);
            return;
        }
        let span = ServeSpan::raw(&ServiceName(self.range), self.ep.addr().node);
        let r = self.call_user(ctx, from, None, |svc, cx| {
            svc.dispatch_raw(Raw { data, from }, cx)
        });
        if r.is_err() {
            span.fail(&"the handler panicked");
        }
        drop(span);
        if let Ok(reply) = r {
            ServiceCounters::add(&self.counters.tells);
            if let Some(b) = reply {
                ServiceCounters::add(&self.counters.replies);
                out.push((from, b));
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn one(
        &mut self,
        from: SocketAddr,
        data: Bytes,
        windowed: bool,
        returned: bool,
        member: Option<(ServiceAddr, Mode)>,
        ctx: &mut Context<Self>,
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) {
        if returned {
            ServiceCounters::add(&self.counters.returned);
            return;
        }
        if S::is_raw() {
            self.one_raw(from, data, ctx, out);
            return;
        }
        let (env, payload_len) = match Envelope::parse(&data) {
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
            // A group member's asks are answered by group unicasts to it: the replies arrive
            // here, among the member's messages.
            if let Endpoint::Group(_, asks) = &self.ep {
                let payload = data.slice(data.len() - payload_len..);
                if asks.complete(&env, payload) {
                    return;
                }
            }
            ServiceCounters::add(&self.counters.malformed);
            return;
        }
        // A tell sent to this socket (not a multicast) counts against its sender's window:
        // consumed now, whatever becomes of it.
        if env.kind == Kind::Tell && windowed {
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
            payload_at: data.len() - payload_len,
            data,
            member,
        };
        let span = ServeSpan::start(
            ask.is_some(),
            req.env.trace.as_ref(),
            &ServiceName(self.range),
            req.env.id,
            self.ep.addr().node,
        );
        let outcome = self.call_user(ctx, from, Some(&req), |svc, cx| svc.dispatch(&req, cx));
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
                    Outcome::Failed(code, detail) => {
                        span.fail(&format_args!("{code}: {detail}"));
                        match self.refuse(ask, code, &detail) {
                            Some(b) => out.push((from, b)),
                            None => ServiceCounters::add(&self.counters.bad_tells),
                        }
                    }
                }
            }
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                span.fail(&format_args!("the handler panicked: {what}"));
                if let Some(b) = self.refuse(ask, ErrorCode::Panicked, &what) {
                    out.push((from, b));
                }
            }
        }
        drop(span);
    }
}

/// A service's name in span names and metric attributes: `type:instance` (or
/// `type:lower-upper`).
pub(crate) struct ServiceName(pub(crate) ServiceRange);

impl std::fmt::Display for ServiceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self.0;
        if r.lower() == r.upper() {
            write!(f, "{}:{}", r.type_(), r.lower())
        } else {
            write!(f, "{}:{}-{}", r.type_(), r.lower(), r.upper())
        }
    }
}

/// Make a service known to the metrics ([`crate::telemetry::metrics`]): its counters and
/// queue as `tipc.service.*` data points (read only when metrics are collected).
fn register_metrics(node: u32, name: String, counters: &Arc<ServiceCounters>, probe: QueueProbe) {
    use crate::telemetry::metrics::{kv, register_service, Points};
    let weak = Arc::downgrade(counters);
    let last = std::sync::Mutex::new((ServiceStats::default(), QueueLook::default()));
    let read = move |p: &mut Points| {
        let mut last = last.lock().unwrap_or_else(|p| p.into_inner());
        let alive = match weak.upgrade() {
            Some(c) => {
                last.0 = c.snapshot();
                true
            }
            None => false,
        };
        if let Some(q) = probe() {
            last.1 = q;
        }
        let (st, q) = &*last;
        let a = || {
            vec![
                kv("tipc.node", node as i64),
                kv("tipc.service", name.clone()),
            ]
        };
        p.add("tipc.service.tells", st.tells, a());
        p.add("tipc.service.asks", st.asks, a());
        p.add("tipc.service.replies", st.replies, a());
        for (kind, v) in [
            ("error_reply", st.errors),
            ("bad_tell", st.bad_tells),
            ("malformed", st.malformed),
            ("panic", st.panics),
            ("reply_returned", st.returned),
            ("refused_stopping", st.refused_stopping),
        ] {
            let mut attrs = a();
            attrs.push(kv("tipc.error", kind));
            p.add("tipc.service.errors", v, attrs);
        }
        if let Some(len) = q.len {
            p.add("tipc.service.queue", len, a());
        }
        p.add("tipc.service.queue.bytes", q.bytes, a());
        p.add("tipc.service.queue.refused", q.refused, a());
        alive
    };
    register_service(Box::new(read));
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
        let ep = self.ep.clone();
        Box::pin(async move { ep.close().await })
    }
}

/// Why a service could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The binding was refused (reserved type, bad range, node stopping).
    #[error("cannot bind the service: {0}")]
    Bind(#[from] tipc_actors::socket::BindError),
    /// The group could not be joined.
    #[error("cannot join the group: {0}")]
    Join(String),
}

/// A running service: its address, counters, and `stop`.
pub struct ServiceHandle<S: Service> {
    addr: Addr<ServiceActor<S>>,
    ep: Endpoint,
    binding: Binding,
    counters: Arc<ServiceCounters>,
}

impl<S: Service> Clone for ServiceHandle<S> {
    fn clone(&self) -> Self {
        ServiceHandle {
            addr: self.addr.clone(),
            ep: self.ep.clone(),
            binding: self.binding,
            counters: self.counters.clone(),
        }
    }
}

/// Batches of a group member's stream.
fn group_batch(v: Vec<GroupRecv>) -> Batch {
    let t = |member: ServiceAddr, socket| Member {
        instance: member.instance,
        socket,
    };
    Batch(
        v.into_iter()
            .map(|r| match r {
                GroupRecv::Message {
                    from,
                    member,
                    mode,
                    data,
                } => Incoming::Msg {
                    from,
                    data,
                    windowed: false,
                    returned: false,
                    member: Some((member, mode)),
                },
                GroupRecv::MemberUp { member, sock } => {
                    Incoming::Member(MemberEvent::Joined(t(member, sock)))
                }
                GroupRecv::MemberDown { member, sock } => {
                    Incoming::Member(MemberEvent::Left(t(member, sock)))
                }
            })
            .collect(),
    )
}

impl<S: Service> ServiceHandle<S> {
    /// Bind `binding` on `node` (or join its group) and start `svc` there (inside an actix
    /// System).
    pub async fn start(
        svc: S,
        binding: Binding,
        node: &TransportNode,
        clients: Arc<Clients>,
    ) -> Result<ServiceHandle<S>, StartError> {
        let ep = match binding.group {
            None => {
                let mut sock = node.dgram_socket();
                sock.bind(binding.range, binding.scope).await?;
                Endpoint::Socket(Arc::new(sock))
            }
            Some(g) => {
                let mut spec = GroupSpec::new(binding.range.type_(), binding.range.lower())
                    .with_scope(binding.scope);
                if g.events {
                    spec = spec.with_events();
                }
                if g.loopback {
                    spec = spec.with_loopback();
                }
                let m = node
                    .join(spec)
                    .await
                    .map_err(|e| StartError::Join(e.to_string()))?;
                Endpoint::Group(Arc::new(m), Arc::default())
            }
        };
        let counters = Arc::new(ServiceCounters::default());
        counters.running.store(true, Ordering::Release);
        register_metrics(
            ep.addr().node,
            ServiceName(binding.range).to_string(),
            &counters,
            ep.queue_probe(),
        );
        let c = counters.clone();
        let node = node.clone();
        let rx = ep.clone();
        let for_actor = ep.clone();
        let addr = ServiceActor::create(move |ctx| {
            match rx {
                Endpoint::Socket(s) => {
                    ctx.add_stream(futures_util::stream::unfold(s, |s| async move {
                        let b = s.recv_batch(BATCH).await;
                        let v: Vec<Incoming> = b
                            .into_iter()
                            .map(|r| Incoming::Msg {
                                from: r.from,
                                windowed: r.mtype != tipc_transport::wire::DataType::Mcast,
                                returned: r.returned.is_some(),
                                data: r.data,
                                member: None,
                            })
                            .collect();
                        (!v.is_empty()).then_some((Batch(v), s))
                    }));
                }
                Endpoint::Group(g, _) => {
                    ctx.add_stream(futures_util::stream::unfold(g, |g| async move {
                        let b = g.recv_batch(BATCH).await;
                        (!b.is_empty()).then(|| (group_batch(b), g))
                    }));
                }
            }
            ServiceActor {
                svc: Box::new(svc),
                ep: for_actor,
                clients,
                node,
                counters: c,
                stopping: false,
                range: binding.range,
                acks: std::collections::HashMap::new(),
            }
        });
        Ok(ServiceHandle {
            addr,
            ep,
            binding,
            counters,
        })
    }

    /// The service's socket address.
    pub fn socket(&self) -> SocketAddr {
        self.ep.addr()
    }

    /// Where it is bound.
    pub fn binding(&self) -> Binding {
        self.binding
    }

    /// For a group service: its membership, to send typed messages to the group.
    pub fn group(&self) -> Option<GroupRef> {
        match &self.ep {
            Endpoint::Group(g, a) => Some(GroupRef::new(g.clone(), a.clone())),
            Endpoint::Socket(_) => None,
        }
    }

    /// Whether it still runs (false after `stop`, a handler's `stop`, or a panic).
    pub fn is_running(&self) -> bool {
        self.counters.running.load(Ordering::Acquire)
    }

    /// Counters.
    pub fn stats(&self) -> ServiceStats {
        self.counters.snapshot()
    }

    /// Stop: the bindings are withdrawn (or the group left) when this returns; queued asks
    /// come back to their senders as "service gone".
    pub async fn stop(&self) {
        let _ = self.addr.send(Stop).await;
    }
}
