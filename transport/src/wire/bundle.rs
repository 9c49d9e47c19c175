//! MSG_BUNDLER messages (user 6): several small messages in one packet (kernel `msg.c:
//! tipc_msg_try_bundle, tipc_msg_bundle, tipc_msg_extract`).
//!
//! Spec: tipc-protocol.md §4.10 (bundling rules), §2.5 (MSG_BUNDLER overlay).

use bytes::{Bytes, BytesMut};

use super::{field, importance, user, Header, WireError, INT_H_SIZE, MIN_H_SIZE};

/// Round up to a multiple of 4 (`BUF_ALIGN`).
#[inline]
pub const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// A parsed MSG_BUNDLER header. `data` holds the inner messages, raw (see [`extract`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BundleRepr<'a> {
    /// w0 bit 20: set when sent on the broadcast link.
    pub non_seq: bool,
    /// w1 bits 15-0.
    pub bcast_ack: u16,
    /// w2 bits 31-16.
    pub ack: u16,
    /// w2 bits 15-0.
    pub seqno: u16,
    /// w3 (the first inner message's prevnode).
    pub prevnode: u32,
    /// w5 raw: 0, or the network id on broadcast-link packets.
    pub w5: u32,
    /// w6.
    pub orignode: u32,
    /// w7.
    pub destnode: u32,
    /// w9 bits 31-16: number of bundled messages.
    pub msgcnt: u16,
    /// w9 bits 2-0: importance of the bundle.
    pub importance: u8,
    /// The inner messages, each starting 4-byte aligned.
    pub data: &'a [u8],
}

impl<'a> BundleRepr<'a> {
    /// Parse a checked header whose user is MSG_BUNDLER.
    pub fn parse(h: &Header<&'a [u8]>) -> Result<Self, WireError> {
        if h.user() != user::MSG_BUNDLER {
            return Err(WireError::BadUser(h.user()));
        }
        if h.header_len() != INT_H_SIZE {
            return Err(WireError::BadHeaderSize(h.header_len()));
        }
        if h.mtype() != 0 {
            return Err(WireError::BadType(h.mtype()));
        }
        let buf: &'a [u8] = h.into_inner_ref();
        let data = buf.get(INT_H_SIZE..h.size()).ok_or(WireError::Truncated)?;
        Ok(BundleRepr {
            non_seq: h.non_seq(),
            bcast_ack: h.bcast_ack(),
            ack: h.ack(),
            seqno: h.seqno(),
            prevnode: h.prevnode(),
            w5: h.word(5),
            orignode: h.get(field::ORIGNODE),
            destnode: h.destnode(),
            msgcnt: h.get(field::MSGCNT) as u16,
            importance: h.get(field::INNER_IMPORTANCE) as u8,
            data,
        })
    }

    /// Bytes needed to emit.
    pub fn buffer_len(&self) -> usize {
        INT_H_SIZE + self.data.len()
    }

    /// Emit into `buf` (at least [`buffer_len`](Self::buffer_len) bytes). Returns the length.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let len = self.buffer_len();
        let buf = &mut buf[..len];
        let mut h = Header::new_unchecked(&mut *buf);
        h.init(user::MSG_BUNDLER, 0, INT_H_SIZE, len, self.prevnode);
        h.set_flag(field::NON_SEQ, self.non_seq);
        h.set_bcast_ack(self.bcast_ack);
        h.set_ack(self.ack);
        h.set_seqno(self.seqno);
        h.set_word(5, self.w5);
        h.set(field::ORIGNODE, self.orignode);
        h.set(field::DESTNODE, self.destnode);
        h.set(field::MSGCNT, self.msgcnt as u32);
        h.set(field::INNER_IMPORTANCE, self.importance as u32);
        buf[INT_H_SIZE..].copy_from_slice(self.data);
        len
    }
}

/// Why a message was not added to a bundle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BundleError {
    /// The message would make the bundle larger than the limit, or msgcnt would overflow.
    #[error("message does not fit in the bundle")]
    NoRoom,
    /// The message is not a valid TIPC message.
    #[error("invalid message: {0}")]
    BadMessage(#[from] WireError),
    /// The message's user may not be bundled (FRAGMENTER, TUNNEL, BCAST_PROTOCOL, or a
    /// bundle itself).
    #[error("user {0} is never bundled")]
    NotBundleable(u8),
}

/// May a message of this user and total size be bundled on a link with this `mss`
/// (`tipc_msg_try_bundle`'s first checks, §4.10)? A bundle is never put inside another: the
/// receiver opens one level only.
pub fn can_bundle(msg_user: u8, msg_len: usize, mss: usize) -> bool {
    !matches!(
        msg_user,
        user::MSG_FRAGMENTER | user::TUNNEL_PROTOCOL | user::BCAST_PROTOCOL | user::MSG_BUNDLER
    ) && mss > INT_H_SIZE + msg_len
}

/// Builds a bundle packet in a [`BytesMut`] (`tipc_msg_try_bundle`, `tipc_msg_bundle`).
///
/// The 40-byte header takes prevnode, orignode and importance from the first message
/// (`tipc_msg_init(msg_prevnode(inner), .., dnode)`); each added message starts 4-byte
/// aligned (the padding is zeroed) and `msgcnt` and `size` are kept up to date.
#[derive(Debug, Clone)]
pub struct BundleBuilder {
    buf: BytesMut,
}

impl BundleBuilder {
    /// Would a bundle made of a first message of `first_len` bytes and a second of `next_len`
    /// bytes fit in `max` bytes? (The kernel only starts a bundle when it does.)
    pub fn would_fit(first_len: usize, next_len: usize, max: usize) -> bool {
        align4(INT_H_SIZE + first_len) + next_len <= max
    }

    /// Start a bundle holding `first` (a complete message, validated; only its `size` bytes are
    /// used), destined to `destnode`.
    pub fn new(first: &[u8], destnode: u32) -> Result<Self, BundleError> {
        let h = Header::new_checked(first)?;
        if !can_bundle(h.user(), 0, usize::MAX) {
            return Err(BundleError::NotBundleable(h.user()));
        }
        let msg = h.message();
        let mut buf = BytesMut::with_capacity(INT_H_SIZE + msg.len());
        buf.resize(INT_H_SIZE, 0);
        let repr = BundleRepr {
            non_seq: false,
            bcast_ack: 0,
            w5: 0,
            ack: 0,
            seqno: 0,
            prevnode: h.prevnode(),
            orignode: h.prevnode(),
            destnode,
            msgcnt: 1,
            importance: importance(&h),
            data: &[],
        };
        repr.emit(&mut buf);
        buf.extend_from_slice(msg);
        let mut b = BundleBuilder { buf };
        b.set_size();
        Ok(b)
    }

    /// Continue an existing bundle packet (e.g. the last packet of a backlog).
    pub fn from_bytes_mut(buf: BytesMut) -> Result<Self, WireError> {
        {
            let h = Header::new_checked(&buf[..])?;
            BundleRepr::parse(&h)?;
        }
        let mut buf = buf;
        let size = Header::new_unchecked(&buf[..]).size();
        buf.truncate(size);
        Ok(BundleBuilder { buf })
    }

    /// Can a message of `len` bytes be added without the bundle exceeding `max` bytes?
    pub fn fits(&self, len: usize, max: usize) -> bool {
        align4(self.buf.len()) + len <= max && self.msgcnt() < u16::MAX
    }

    /// Append a complete message (validated; only its `size` bytes are used) if it
    /// [`fits`](Self::fits) in `max` bytes.
    pub fn push(&mut self, msg: &[u8], max: usize) -> Result<(), BundleError> {
        let h = Header::new_checked(msg)?;
        if !can_bundle(h.user(), 0, usize::MAX) {
            return Err(BundleError::NotBundleable(h.user()));
        }
        let msg = h.message();
        if !self.fits(msg.len(), max) {
            return Err(BundleError::NoRoom);
        }
        let offset = align4(self.buf.len());
        self.buf.resize(offset, 0);
        self.buf.extend_from_slice(msg);
        let cnt = self.msgcnt() + 1;
        let mut hdr = Header::new_unchecked(&mut self.buf[..INT_H_SIZE]);
        hdr.set(field::MSGCNT, cnt as u32);
        self.set_size();
        Ok(())
    }

    fn set_size(&mut self) {
        let len = self.buf.len();
        let mut hdr = Header::new_unchecked(&mut self.buf[..INT_H_SIZE]);
        hdr.set(field::SIZE, len as u32);
    }

    /// Number of messages in the bundle.
    pub fn msgcnt(&self) -> u16 {
        Header::new_unchecked(&self.buf[..]).get(field::MSGCNT) as u16
    }

    /// Current size of the bundle packet in bytes.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Always false: a bundle holds at least one message.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The packet so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// The packet, to be sent or kept for more bundling.
    pub fn into_bytes_mut(self) -> BytesMut {
        self.buf
    }

    /// The finished packet.
    pub fn freeze(self) -> Bytes {
        self.buf.freeze()
    }
}

/// Iterate over the inner messages of a bundle packet as zero-copy [`Bytes`] slices, following
/// `tipc_msg_extract`: each inner message is validated like a packet; iteration stops after the
/// first error (a malformed bundle yields one `Err` item, never a panic).
///
/// The outer packet is checked first (a non-bundle yields a single `Err`).
pub fn extract(bundle: &Bytes) -> BundleIter {
    let outer = Header::new_checked(&bundle[..]).and_then(|h| {
        BundleRepr::parse(&h)?;
        Ok(h.size())
    });
    match outer {
        Ok(size) => BundleIter {
            buf: bundle.clone(),
            pos: INT_H_SIZE,
            end: size,
            err: None,
        },
        Err(e) => BundleIter {
            buf: Bytes::new(),
            pos: 0,
            end: 0,
            err: Some(e),
        },
    }
}

/// Iterator returned by [`extract`].
#[derive(Debug, Clone)]
pub struct BundleIter {
    buf: Bytes,
    pos: usize,
    end: usize,
    err: Option<WireError>,
}

impl BundleIter {
    fn stop(&mut self, e: WireError) -> Option<Result<Bytes, WireError>> {
        self.pos = self.end;
        Some(Err(e))
    }
}

impl Iterator for BundleIter {
    type Item = Result<Bytes, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.err.take() {
            return Some(Err(e));
        }
        if self.pos >= self.end {
            return None;
        }
        let rest = self.end - self.pos;
        if rest < MIN_H_SIZE {
            return self.stop(WireError::Truncated);
        }
        let start = self.pos;
        let imsz = Header::new_unchecked(&self.buf[start..self.end]).size();
        if imsz > rest {
            return self.stop(WireError::Truncated);
        }
        let inner = self.buf.slice(start..start + imsz);
        if let Err(e) = Header::new_checked(&inner[..]) {
            return self.stop(e);
        }
        self.pos = start + align4(imsz);
        Some(Ok(inner))
    }
}

impl core::iter::FusedIterator for BundleIter {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn can_bundle_refuses_bundles_fragments_and_link_level_users() {
        for u in [
            user::MSG_BUNDLER,
            user::MSG_FRAGMENTER,
            user::TUNNEL_PROTOCOL,
            user::BCAST_PROTOCOL,
        ] {
            assert!(!can_bundle(u, 24, 1500), "user {u}");
        }
        assert!(can_bundle(user::LOW, 24, 1500));
        assert!(
            !can_bundle(user::LOW, 1500 - INT_H_SIZE, 1500),
            "no room for a header"
        );
    }
}
