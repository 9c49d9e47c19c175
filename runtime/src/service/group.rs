//! Typed messages to a communication group (§10): [`GroupRef`], a group service's membership
//! (from `Ctx::group` or `ServiceHandle::group`), sends tells to members by the group's four
//! modes, flow-controlled by the group's windows and ordered per sender across modes.
//! Each send is a `Producer` span ([`crate::telemetry`]) whose context travels in the
//! envelope, so the members' handler spans are its children.

use super::client::{answer, ask_request, await_answer, AskError, DEFAULT_ASK_TIMEOUT};
use super::envelope::{Envelope, TraceContext};
use super::message::{encode_into, CodecError, TipcMessage};
use crate::telemetry::SendSpan;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tipc_actors::addr::{ServiceAddr, SocketAddr};
use tipc_actors::group::GroupSendError;
use tipc_actors::sock::group::GroupMember;
use tokio::sync::oneshot;

/// A member of a group, as events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Member {
    /// Its member instance.
    pub instance: u32,
    /// Its socket.
    pub socket: SocketAddr,
}

/// Why a group tell was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupTellError {
    /// No member matches the destination.
    #[error("no group member for the destination")]
    NoMember,
    /// Larger than a TIPC message.
    #[error("message too large")]
    TooLarge,
    /// The member left the group (its service stopped).
    #[error("not in the group")]
    NotJoined,
    /// The message could not be encoded.
    #[error("cannot encode the message: {0}")]
    Encode(CodecError),
}

impl From<GroupSendError> for GroupTellError {
    fn from(e: GroupSendError) -> GroupTellError {
        match e {
            GroupSendError::NoDestination(_) => GroupTellError::NoMember,
            GroupSendError::TooLarge(_) => GroupTellError::TooLarge,
            _ => GroupTellError::NotJoined,
        }
    }
}

/// A group service's membership: typed tells and asks to the group. Each send waits while a
/// window it needs is closed (a slow member holds its senders back; nothing is dropped).
#[derive(Clone)]
pub struct GroupRef {
    member: Arc<GroupMember>,
    asks: Arc<GroupAsks>,
}

type Waiter = oneshot::Sender<Result<Bytes, AskError>>;

/// The asks a group member sent and waits for. The member that answers sends its reply back
/// as a group unicast, which arrives with the member's other messages: the service routes it
/// here ([`GroupAsks::complete`]).
#[derive(Default)]
pub(crate) struct GroupAsks {
    next: AtomicU64,
    /// Correlation id -> the member socket asked (`None`: anycast) and the waiter.
    pending: Mutex<HashMap<u64, (Option<SocketAddr>, Waiter)>>,
}

impl GroupAsks {
    fn pending(&self) -> MutexGuard<'_, HashMap<u64, (Option<SocketAddr>, Waiter)>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn register(
        &self,
        to: Option<SocketAddr>,
    ) -> (u64, oneshot::Receiver<Result<Bytes, AskError>>) {
        let corr = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending().insert(corr, (to, tx));
        (corr, rx)
    }

    /// A reply or error envelope for one of our asks; false if no ask waits for it (late, or
    /// not ours).
    pub(crate) fn complete(&self, env: &Envelope, payload: Bytes) -> bool {
        let Some(r) = answer(env.kind, payload) else {
            return false;
        };
        match self.pending().remove(&env.correlation) {
            Some((_, tx)) => {
                let _ = tx.send(r);
                true
            }
            None => false,
        }
    }

    /// A member left (or its node was lost): the asks sent to it fail now.
    pub(crate) fn member_left(&self, sock: SocketAddr) {
        let gone: Vec<Waiter> = {
            let mut p = self.pending();
            let keys: Vec<u64> = p
                .iter()
                .filter(|(_, (to, _))| *to == Some(sock))
                .map(|(k, _)| *k)
                .collect();
            keys.into_iter()
                .filter_map(|k| p.remove(&k).map(|(_, tx)| tx))
                .collect()
        };
        for tx in gone {
            let _ = tx.send(Err(AskError::ServiceGone));
        }
    }

    /// This member is leaving: every ask fails.
    pub(crate) fn fail_all(&self) {
        let all: Vec<Waiter> = self.pending().drain().map(|(_, (_, tx))| tx).collect();
        for tx in all {
            let _ = tx.send(Err(AskError::Stopped));
        }
    }

    /// Asks waiting now.
    pub(crate) fn len(&self) -> usize {
        self.pending().len()
    }
}

/// Removes an ask's entry when its future ends, however it ends (cancel safety).
struct AskGuard<'a> {
    asks: &'a GroupAsks,
    corr: u64,
}

impl Drop for AskGuard<'_> {
    fn drop(&mut self) {
        self.asks.pending().remove(&self.corr);
    }
}

fn tell_bytes<M: TipcMessage>(
    msg: &M,
    trace: Option<TraceContext>,
) -> Result<Vec<u8>, GroupTellError> {
    let mut buf = Vec::with_capacity(64);
    let mut env = Envelope::tell(M::ID);
    env.trace = trace;
    env.emit(&mut buf);
    encode_into(msg, &mut buf).map_err(GroupTellError::Encode)?;
    Ok(buf)
}

/// Where a group send goes, as span names show it (`group 3100 broadcast`).
struct GroupTarget {
    type_: u32,
    how: How,
    raw: bool,
}

#[derive(Clone, Copy)]
enum How {
    Broadcast,
    Multicast(u32),
    Anycast(u32),
    Unicast(SocketAddr),
}

impl std::fmt::Display for GroupTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = self.type_;
        match self.how {
            How::Broadcast => write!(f, "group {t} broadcast")?,
            How::Multicast(i) => write!(f, "group {t}:{i} multicast")?,
            How::Anycast(i) => write!(f, "group {t}:{i} anycast")?,
            How::Unicast(s) => write!(f, "group {t} unicast to {s}")?,
        }
        if self.raw {
            write!(f, " raw")?;
        }
        Ok(())
    }
}

impl GroupRef {
    pub(crate) fn new(member: Arc<GroupMember>, asks: Arc<GroupAsks>) -> GroupRef {
        GroupRef { member, asks }
    }

    /// Ask the member at socket `to` and wait for its reply, at most [`DEFAULT_ASK_TIMEOUT`].
    /// The member answers as a service answers an ask; if it leaves first (its service
    /// stopped, its node was lost: seen with member events on) the ask fails at once with
    /// [`AskError::ServiceGone`]. Cancel-safe.
    pub async fn ask_unicast<M: TipcMessage>(
        &self,
        to: SocketAddr,
        msg: &M,
    ) -> Result<M::Reply, AskError> {
        self.ask_timeout(How::Unicast(to), msg, DEFAULT_ASK_TIMEOUT)
            .await
    }

    /// Ask one member with `instance` (round robin, as [`GroupRef::anycast`]) and wait for
    /// its reply, at most [`DEFAULT_ASK_TIMEOUT`]. Cancel-safe.
    pub async fn ask_anycast<M: TipcMessage>(
        &self,
        instance: u32,
        msg: &M,
    ) -> Result<M::Reply, AskError> {
        self.ask_timeout(How::Anycast(instance), msg, DEFAULT_ASK_TIMEOUT)
            .await
    }

    /// [`GroupRef::ask_unicast`] with its own timeout.
    pub async fn ask_unicast_timeout<M: TipcMessage>(
        &self,
        to: SocketAddr,
        msg: &M,
        timeout: Duration,
    ) -> Result<M::Reply, AskError> {
        self.ask_timeout(How::Unicast(to), msg, timeout).await
    }

    /// [`GroupRef::ask_anycast`] with its own timeout.
    pub async fn ask_anycast_timeout<M: TipcMessage>(
        &self,
        instance: u32,
        msg: &M,
        timeout: Duration,
    ) -> Result<M::Reply, AskError> {
        self.ask_timeout(How::Anycast(instance), msg, timeout).await
    }

    /// Asks this member waits for now.
    pub fn pending_asks(&self) -> usize {
        self.asks.len()
    }

    async fn ask_timeout<M: TipcMessage>(
        &self,
        how: How,
        msg: &M,
        timeout: Duration,
    ) -> Result<M::Reply, AskError> {
        let mut span = self.span(how, false, M::ID);
        let to = match how {
            How::Unicast(to) => Some(to),
            _ => None,
        };
        let (corr, rx) = self.asks.register(to);
        let _guard = AskGuard {
            asks: &self.asks,
            corr,
        };
        let r = async {
            let buf = ask_request(msg, corr, timeout, span.trace)?;
            let m = &self.member;
            let sent = match how {
                How::Unicast(to) => tokio::time::timeout(timeout, m.unicast(to, buf)).await,
                How::Anycast(i) => tokio::time::timeout(timeout, m.anycast(i, buf)).await,
                _ => return Err(AskError::NoService),
            };
            match sent {
                Err(_) => return Err(AskError::Timeout(timeout)),
                Ok(Err(e)) => {
                    return Err(match GroupTellError::from(e) {
                        GroupTellError::NoMember => AskError::NoService,
                        GroupTellError::TooLarge => {
                            AskError::Encode(CodecError("message too large".into()))
                        }
                        _ => AskError::Stopped,
                    })
                }
                Ok(Ok(())) => {}
            }
            await_answer::<M>(rx, timeout).await
        }
        .await;
        if let Err(e) = &r {
            span.fail(e);
        }
        r
    }

    /// This member's address in the group (group type and instance).
    pub fn member(&self) -> ServiceAddr {
        self.member.member()
    }

    /// This member's socket.
    pub fn socket(&self) -> SocketAddr {
        self.member.addr()
    }

    /// Members up now (not counting this one).
    pub fn members_up(&self) -> usize {
        self.member.members_up()
    }

    /// To every member.
    pub async fn broadcast<M: TipcMessage>(&self, msg: &M) -> Result<(), GroupTellError> {
        self.typed(How::Broadcast, msg).await
    }

    /// To every member with `instance`.
    pub async fn multicast<M: TipcMessage>(
        &self,
        instance: u32,
        msg: &M,
    ) -> Result<(), GroupTellError> {
        self.typed(How::Multicast(instance), msg).await
    }

    /// To one member with `instance` (round robin, preferring one whose window is open).
    pub async fn anycast<M: TipcMessage>(
        &self,
        instance: u32,
        msg: &M,
    ) -> Result<(), GroupTellError> {
        self.typed(How::Anycast(instance), msg).await
    }

    /// To one member socket.
    pub async fn unicast<M: TipcMessage>(
        &self,
        to: SocketAddr,
        msg: &M,
    ) -> Result<(), GroupTellError> {
        self.typed(How::Unicast(to), msg).await
    }

    /// Raw bytes (no envelope) to every member: what a plain TIPC group member (a kernel
    /// socket) reads as it is. Its span carries no context to the members.
    pub async fn broadcast_raw(&self, data: impl Into<bytes::Bytes>) -> Result<(), GroupTellError> {
        let mut span = self.span(How::Broadcast, true, 0);
        let r = self.member.broadcast(data).await.map_err(Into::into);
        Self::end(&mut span, r)
    }

    /// Raw bytes (no envelope) to one member socket.
    pub async fn unicast_raw(
        &self,
        to: SocketAddr,
        data: impl Into<bytes::Bytes>,
    ) -> Result<(), GroupTellError> {
        let mut span = self.span(How::Unicast(to), true, 0);
        let r = self.member.unicast(to, data).await.map_err(Into::into);
        Self::end(&mut span, r)
    }

    fn span(&self, how: How, raw: bool, id: u32) -> SendSpan {
        let target = GroupTarget {
            type_: self.member.member().type_,
            how,
            raw,
        };
        SendSpan::start(false, &target, id, self.member.addr().node)
    }

    fn end(span: &mut SendSpan, r: Result<(), GroupTellError>) -> Result<(), GroupTellError> {
        if let Err(e) = &r {
            span.fail(e);
        }
        r
    }

    async fn typed<M: TipcMessage>(&self, how: How, msg: &M) -> Result<(), GroupTellError> {
        let mut span = self.span(how, false, M::ID);
        let r = async {
            let b = tell_bytes(msg, span.trace)?;
            let m = &self.member;
            match how {
                How::Broadcast => m.broadcast(b).await?,
                How::Multicast(i) => m.multicast(i, b).await?,
                How::Anycast(i) => m.anycast(i, b).await?,
                How::Unicast(to) => m.unicast(to, b).await?,
            }
            Ok(())
        }
        .await;
        Self::end(&mut span, r)
    }
}
