//! TIPC wire format (kernel `msg.h`, `msg.c`, `name_distr.h`, `discover.c` message layouts).
//!
//! Spec: tipc-protocol.md §2 (header), §3.2 (discovery), §4.3 (link protocol), §4.9–4.10
//! (fragments, bundles), §5.3 (broadcast protocol), §7.1 (name items), §2.5 (per-user overlays).
//!
//! [`Header`] is a zero-copy view in smoltcp's style; each message kind has a `Repr` with
//! `parse`, `emit` and `buffer_len`. Malformed input yields a [`WireError`], never a panic.

mod any;
mod bcast;
mod bundle;
mod conn;
mod data;
mod disc;
mod frag;
mod group;
mod header;
mod media_addr;
mod named;
mod proto;
mod reverse;
mod seqno;
mod tunnel;

pub use any::*;
pub use bcast::*;
pub use bundle::*;
pub use conn::*;
pub use data::*;
pub use disc::*;
pub use frag::*;
pub use group::*;
pub use header::*;
pub use media_addr::*;
pub use named::*;
pub use proto::*;
pub use reverse::*;
pub use seqno::Seqno;
pub use tunnel::*;

/// Why a buffer was not accepted as a TIPC message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The buffer is shorter than the header or than the declared size.
    #[error("truncated message")]
    Truncated,
    /// Version field is not 2.
    #[error("bad protocol version {0}")]
    BadVersion(u8),
    /// Version 7: an encrypted envelope, which we do not support.
    #[error("encrypted message (version 7)")]
    Encrypted,
    /// Header size outside 24..=60 bytes, or too small for the message user.
    #[error("bad header size {0}")]
    BadHeaderSize(usize),
    /// Size field inconsistent with the header size or too large.
    #[error("bad message size {0}")]
    BadSize(usize),
    /// The user field does not name a known on-wire user.
    #[error("unknown message user {0}")]
    BadUser(u8),
    /// The type field is not valid for this user.
    #[error("bad message type {0}")]
    BadType(u8),
    /// A media address field could not be decoded.
    #[error("bad media address")]
    BadMediaAddr,
    /// A payload structure (items, bundle, record) is malformed.
    #[error("malformed payload")]
    BadPayload,
}

/// Message users (w0 bits 28-25), §2.4.
pub mod user {
    /// Data, LOW importance.
    pub const LOW: u8 = 0;
    /// Data, MEDIUM importance.
    pub const MEDIUM: u8 = 1;
    /// Data, HIGH importance.
    pub const HIGH: u8 = 2;
    /// Data, CRITICAL importance.
    pub const CRITICAL: u8 = 3;
    /// Importance level of internal messages (never on the wire as a user).
    pub const SYSTEM_IMPORTANCE: u8 = 4;
    /// Broadcast-link protocol.
    pub const BCAST_PROTOCOL: u8 = 5;
    /// Bundle of small messages.
    pub const MSG_BUNDLER: u8 = 6;
    /// Unicast link protocol (RESET/ACTIVATE/STATE).
    pub const LINK_PROTOCOL: u8 = 7;
    /// Connection manager (probe, probe reply, ack).
    pub const CONN_MANAGER: u8 = 8;
    /// Communication-group protocol.
    pub const GROUP_PROTOCOL: u8 = 9;
    /// Failover / synch tunnel.
    pub const TUNNEL_PROTOCOL: u8 = 10;
    /// Binding-table distribution.
    pub const NAME_DISTRIBUTOR: u8 = 11;
    /// Fragment of a large message.
    pub const MSG_FRAGMENTER: u8 = 12;
    /// Neighbour discovery.
    pub const LINK_CONFIG: u8 = 13;
    /// Crypto key distribution (unsupported).
    pub const MSG_CRYPTO: u8 = 14;
}

/// Importance of a message for backlog purposes (`msg_importance`): data users carry it in the
/// user field (SYSTEM if the message carries an error code); bundles and fragments in w9.
pub fn importance<T: AsRef<[u8]>>(h: &Header<T>) -> u8 {
    let u = h.user();
    if u <= user::CRITICAL {
        if h.errcode() != 0 {
            user::SYSTEM_IMPORTANCE
        } else {
            u
        }
    } else if u == user::MSG_BUNDLER || u == user::MSG_FRAGMENTER {
        (h.get(field::INNER_IMPORTANCE) as u8).min(user::SYSTEM_IMPORTANCE)
    } else {
        user::SYSTEM_IMPORTANCE
    }
}

/// Error codes of returned messages (w1 bits 28-25), §2.6.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorCode {
    /// No error.
    Ok = 0,
    /// No binding matched a named message.
    NoName = 1,
    /// No such port (also the FIN code of a closed socket).
    NoPort = 2,
    /// The peer node was lost.
    NoNode = 3,
    /// The receive queue was over its limit.
    Overload = 4,
    /// The connection was shut down.
    ConnShutdown = 5,
}

impl ErrorCode {
    /// Decode the 4-bit field; unknown values map to `None`.
    pub fn from_u8(v: u8) -> Option<Self> {
        Some(match v {
            0 => Self::Ok,
            1 => Self::NoName,
            2 => Self::NoPort,
            3 => Self::NoNode,
            4 => Self::Overload,
            5 => Self::ConnShutdown,
            _ => return None,
        })
    }
}

/// The kernel's names (`TIPC_OK`, `TIPC_ERR_NO_NAME`, ..., `TIPC_CONN_SHUTDOWN`) in words:
/// "ok", "no name", "no port", "no node", "overload", "connection shutdown".
impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorCode::Ok => "ok",
            ErrorCode::NoName => "no name",
            ErrorCode::NoPort => "no port",
            ErrorCode::NoNode => "no node",
            ErrorCode::Overload => "overload",
            ErrorCode::ConnShutdown => "connection shutdown",
        })
    }
}

#[cfg(test)]
mod error_code_tests {
    use super::ErrorCode;

    #[test]
    fn error_code_displays_kernel_names() {
        let names: Vec<String> = (0..=5)
            .filter_map(ErrorCode::from_u8)
            .map(|c| c.to_string())
            .collect();
        assert_eq!(
            names,
            [
                "ok",
                "no name",
                "no port",
                "no node",
                "overload",
                "connection shutdown"
            ]
        );
    }
}
