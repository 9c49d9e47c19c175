//! Any TIPC message: dispatch on the user field to the per-user reprs (kernel `msg.h` users,
//! `node.c: tipc_rcv` and `link.c: tipc_link_input` dispatch).
//!
//! Spec: tipc-protocol.md §2.1 (acceptance), §2.4 (users).

use super::{
    user, BcastProtoRepr, BundleRepr, ConnMgrRepr, DataRepr, DiscRepr, FragmentRepr,
    GroupProtoRepr, Header, LinkProtoRepr, NameDistrRepr, TunnelRepr, WireError,
};

/// A parsed message of any on-wire user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageRepr<'a> {
    /// Users 0..=3.
    Data(DataRepr<'a>),
    /// User 5.
    BcastProto(BcastProtoRepr<'a>),
    /// User 6 (inner messages stay raw in `data`).
    Bundle(BundleRepr<'a>),
    /// User 7.
    LinkProto(LinkProtoRepr<'a>),
    /// User 8.
    ConnMgr(ConnMgrRepr<'a>),
    /// User 9.
    GroupProto(GroupProtoRepr<'a>),
    /// User 10.
    Tunnel(TunnelRepr<'a>),
    /// User 11.
    NameDistr(NameDistrRepr<'a>),
    /// User 12.
    Fragment(FragmentRepr<'a>),
    /// User 13.
    LinkConfig(DiscRepr),
    /// User 14: crypto key distribution, unsupported; the whole message (`size` bytes), raw.
    Crypto(&'a [u8]),
}

impl<'a> MessageRepr<'a> {
    /// Check the header ([`Header::new_checked`]) and parse by user. Trailing bytes beyond
    /// `size` (Ethernet padding) are ignored.
    pub fn parse(buf: &'a [u8]) -> Result<Self, WireError> {
        let h = Header::new_checked(buf)?;
        Self::parse_header(&h)
    }

    /// Parse an already checked header by user.
    pub fn parse_header(h: &Header<&'a [u8]>) -> Result<Self, WireError> {
        Ok(match h.user() {
            user::LOW..=user::CRITICAL => Self::Data(DataRepr::parse(h)?),
            user::BCAST_PROTOCOL => Self::BcastProto(BcastProtoRepr::parse(h)?),
            user::MSG_BUNDLER => Self::Bundle(BundleRepr::parse(h)?),
            user::LINK_PROTOCOL => Self::LinkProto(LinkProtoRepr::parse(h)?),
            user::CONN_MANAGER => Self::ConnMgr(ConnMgrRepr::parse(h)?),
            user::GROUP_PROTOCOL => Self::GroupProto(GroupProtoRepr::parse(h)?),
            user::TUNNEL_PROTOCOL => Self::Tunnel(TunnelRepr::parse(h)?),
            user::NAME_DISTRIBUTOR => Self::NameDistr(NameDistrRepr::parse(h)?),
            user::MSG_FRAGMENTER => Self::Fragment(FragmentRepr::parse(h)?),
            user::LINK_CONFIG => Self::LinkConfig(DiscRepr::parse(h)?),
            user::MSG_CRYPTO => {
                let b: &'a [u8] = h.into_inner_ref();
                Self::Crypto(b.get(..h.size()).ok_or(WireError::Truncated)?)
            }
            u => return Err(WireError::BadUser(u)),
        })
    }

    /// The message user this repr encodes as (for data, its importance).
    pub fn user(&self) -> u8 {
        match self {
            Self::Data(r) => r.importance,
            Self::BcastProto(_) => user::BCAST_PROTOCOL,
            Self::Bundle(_) => user::MSG_BUNDLER,
            Self::LinkProto(_) => user::LINK_PROTOCOL,
            Self::ConnMgr(_) => user::CONN_MANAGER,
            Self::GroupProto(_) => user::GROUP_PROTOCOL,
            Self::Tunnel(_) => user::TUNNEL_PROTOCOL,
            Self::NameDistr(_) => user::NAME_DISTRIBUTOR,
            Self::Fragment(_) => user::MSG_FRAGMENTER,
            Self::LinkConfig(_) => user::LINK_CONFIG,
            Self::Crypto(_) => user::MSG_CRYPTO,
        }
    }

    /// Bytes needed to emit.
    pub fn buffer_len(&self) -> usize {
        match self {
            Self::Data(r) => r.buffer_len(),
            Self::BcastProto(r) => r.buffer_len(),
            Self::Bundle(r) => r.buffer_len(),
            Self::LinkProto(r) => r.buffer_len(),
            Self::ConnMgr(r) => r.buffer_len(),
            Self::GroupProto(r) => r.buffer_len(),
            Self::Tunnel(r) => r.buffer_len(),
            Self::NameDistr(r) => r.buffer_len(),
            Self::Fragment(r) => r.buffer_len(),
            Self::LinkConfig(r) => r.buffer_len(),
            Self::Crypto(b) => b.len(),
        }
    }

    /// Emit into `buf` (at least [`buffer_len`](Self::buffer_len) bytes). Returns the length.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        match self {
            Self::Data(r) => r.emit(buf),
            Self::BcastProto(r) => r.emit(buf),
            Self::Bundle(r) => r.emit(buf),
            Self::LinkProto(r) => r.emit(buf),
            Self::ConnMgr(r) => r.emit(buf),
            Self::GroupProto(r) => r.emit(buf),
            Self::Tunnel(r) => r.emit(buf),
            Self::NameDistr(r) => r.emit(buf),
            Self::Fragment(r) => r.emit(buf),
            Self::LinkConfig(r) => r.emit(buf),
            Self::Crypto(b) => {
                buf[..b.len()].copy_from_slice(b);
                b.len()
            }
        }
    }
}
