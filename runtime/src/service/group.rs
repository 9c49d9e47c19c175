//! Typed messages to a communication group (§10): [`GroupRef`], a group service's membership
//! (from `Ctx::group` or `ServiceHandle::group`), sends tells to members by the group's four
//! modes, flow-controlled by the group's windows and ordered per sender across modes.

use super::envelope::Envelope;
use super::message::{encode_into, CodecError, TipcMessage};
use std::sync::Arc;
use tipc_actors::addr::{ServiceAddr, SocketAddr};
use tipc_actors::group::GroupSendError;
use tipc_actors::sock::group::GroupMember;

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

/// A group service's membership: typed tells to the group. Each send waits while a window
/// it needs is closed (a slow member holds its senders back; nothing is dropped).
#[derive(Clone)]
pub struct GroupRef {
    member: Arc<GroupMember>,
}

fn tell_bytes<M: TipcMessage>(msg: &M) -> Result<Vec<u8>, GroupTellError> {
    let mut buf = Vec::with_capacity(64);
    Envelope::tell(M::ID).emit(&mut buf);
    encode_into(msg, &mut buf).map_err(GroupTellError::Encode)?;
    Ok(buf)
}

impl GroupRef {
    pub(crate) fn new(member: Arc<GroupMember>) -> GroupRef {
        GroupRef { member }
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
        Ok(self.member.broadcast(tell_bytes(msg)?).await?)
    }

    /// To every member with `instance`.
    pub async fn multicast<M: TipcMessage>(
        &self,
        instance: u32,
        msg: &M,
    ) -> Result<(), GroupTellError> {
        Ok(self.member.multicast(instance, tell_bytes(msg)?).await?)
    }

    /// To one member with `instance` (round robin, preferring one whose window is open).
    pub async fn anycast<M: TipcMessage>(
        &self,
        instance: u32,
        msg: &M,
    ) -> Result<(), GroupTellError> {
        Ok(self.member.anycast(instance, tell_bytes(msg)?).await?)
    }

    /// To one member socket.
    pub async fn unicast<M: TipcMessage>(
        &self,
        to: SocketAddr,
        msg: &M,
    ) -> Result<(), GroupTellError> {
        Ok(self.member.unicast(to, tell_bytes(msg)?).await?)
    }

    /// Raw bytes (no envelope) to every member: what a plain TIPC group member (a kernel
    /// socket) reads as it is.
    pub async fn broadcast_raw(&self, data: impl Into<bytes::Bytes>) -> Result<(), GroupTellError> {
        Ok(self.member.broadcast(data).await?)
    }

    /// Raw bytes (no envelope) to one member socket.
    pub async fn unicast_raw(
        &self,
        to: SocketAddr,
        data: impl Into<bytes::Bytes>,
    ) -> Result<(), GroupTellError> {
        Ok(self.member.unicast(to, data).await?)
    }
}
