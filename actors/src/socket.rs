//! Connectionless (SOCK_RDM / SOCK_DGRAM) socket core, sans-IO (kernel `net/tipc/socket.c`
//! with the message helpers of `net/tipc/msg.c` and the multicast sync of `net/tipc/bcast.c`).
//!
//! Spec: tipc-protocol.md §2.2 (data header), §2.6 (error codes), §8.2 (secondary lookup),
//! §9.1 (datagram sockets), §9.2 (rejection, `tipc_msg_reverse`), §9.3 (`rcvbuf_limit`).
//!
//! The core does no I/O and never consults the binding table itself: name lookups are passed in
//! as closures. It has three parts:
//!
//! * **Building** what `sendto()` puts on the wire ([`build_direct`], [`build_named`],
//!   [`build_mcast`], [`replicast_copy`], [`mcast_sync`]): byte-exact with the kernel's socket
//!   header template (`tipc_sk_create`, `__tipc_sendmsg`, `tipc_sendmcast`). The link-stamped
//!   fields (w1 `bcast_ack`, w2 `ack`/`seqno`) are left 0 for the link to fill in.
//! * **Receiving** into a per-socket queue ([`RecvQueue`], the connectionless half of
//!   `tipc_sk_filter_rcv` with the §9.3 limits).
//! * **Rejecting and rerouting** messages ([`reverse`], [`lookup_dest`],
//!   [`reject_or_reroute`]), the `tipc_sk_rcv` path for a message whose port does not exist.
//! * **Dispatching** what arrives at the node ([`rcv`]: `tipc_sk_rcv` and `tipc_sk_mcast_rcv`
//!   as verdicts, and the connection sockets' receive glue), driven alike by the actors and
//!   the simulation.
//!
//! The connection socket core is [`conn`] (the connection half of `socket.c`).

use crate::addr::RangeError;

pub mod conn;
pub mod mcast;
mod msg;
pub mod rcv;
mod rcvq;

pub use msg::{
    build_direct, build_mcast, build_named, lookup_dest, mcast_sync, reject_or_reroute,
    replicast_copy, reverse, McastMethod, SendOpts, MAX_FORWARD_SIZE, METHOD_EXPIRE,
};
pub use rcvq::{
    truesize, Offer, Received, RecvQueue, RecvStats, Returned, RCVBUF_DEFAULT, RCVBUF_MAX,
    RCVBUF_MIN, SKB_OVERHEAD,
};

/// Why a socket operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// The payload exceeds `TIPC_MAX_USER_MSG_SIZE` (66000 bytes): the kernel's `EMSGSIZE`.
    #[error("message of {0} bytes exceeds 66000 bytes")]
    TooLarge(usize),
    /// Importance outside 0..=3 (`TIPC_IMPORTANCE` takes LOW..CRITICAL): the kernel's `EINVAL`.
    #[error("bad importance {0}")]
    BadImportance(u8),
    /// A service range with `lower > upper`: the kernel's `EINVAL`. A
    /// [`ServiceRange`](crate::addr::ServiceRange) cannot hold one: this is the
    /// [`RangeError`] of building it from numbers (`SocketError::from`).
    #[error("bad service range: lower > upper")]
    BadRange,
    /// A receive buffer size outside 512 KiB..=16 MiB.
    #[error("receive buffer size {0} outside 512 KiB..=16 MiB")]
    BadRcvbuf(usize),
}

impl From<RangeError> for SocketError {
    fn from(_: RangeError) -> Self {
        SocketError::BadRange
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
    /// The link to the destination node is congested (from a `try_` send, which does not
    /// wait; the kernel's `EAGAIN` on a non-blocking socket).
    #[error("link congested")]
    Congested,
}

/// Why a bind failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindError {
    /// Service types below 64 are reserved (the kernel's `EACCES`).
    #[error("service types below 64 are reserved")]
    Reserved,
    /// The binding table refused it.
    #[error("binding refused: {0}")]
    Table(crate::name_table::BindingError),
    /// The node is stopping.
    #[error("node stopped")]
    Stopped,
}

impl From<RangeError> for BindError {
    /// [`BindError::Table`] with [`BindingError::InvalidRange`](crate::name_table::BindingError::InvalidRange).
    fn from(e: RangeError) -> Self {
        BindError::Table(e.into())
    }
}

/// The publication `bind()` makes for socket `own` (`tipc_sk_publish`): service types below
/// 64 are reserved, and the key is `port + n`, `n` counting the socket's binds from 1, as the
/// kernel's. (`lower <= upper` holds by construction of the [`ServiceRange`]; bounds given as
/// numbers are refused where the range is built, `BindError::from(RangeError)`.)
///
/// [`ServiceRange`]: crate::addr::ServiceRange
pub fn bind_publication(
    own: crate::addr::SocketAddr,
    range: crate::addr::ServiceRange,
    scope: crate::addr::Scope,
    n: u32,
) -> Result<crate::name_table::Publication, BindError> {
    if range.type_() < crate::addr::RESERVED_TYPES {
        return Err(BindError::Reserved);
    }
    Ok(crate::name_table::Publication {
        range,
        scope,
        node: own.node,
        port: own.port,
        key: own.port.wrapping_add(n),
    })
}
