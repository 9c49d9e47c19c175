//! The encryption header (kernel `crypto.h: struct tipc_ehdr`, `crypto.c: tipc_ehdr_build,
//! tipc_ehdr_validate`), spec tipc-crypto.md §15.2.
//!
//! ```text
//! w0: ver(3)=7 | user(4) | D | tx_key(2) | rx_key_active(2) | K | M | N | rsvd(1) | rsvd(16)
//! w1-w2: seqno (64 bits, big-endian)
//! w3: addr (short form, 16 bytes)     or bytes 12-27: node identity (long form, 28 bytes)
//! ```
//!
//! The long form is used exactly when the header's user field is 13 (LINK_CONFIG). [`Ehdr`] is a
//! view in the style of [`crate::wire::Header`]: after [`Ehdr::new_checked`] no accessor panics.

use super::error::CryptoDrop;
use crate::addr::{NodeAddr, NodeId, NODE_ID_LEN};

/// Version value of an envelope (`TIPC_EVERSION`).
pub const EHDR_VERSION: u8 = 7;
/// Short form length (`EHDR_SIZE`, `EHDR_MIN_SIZE`).
pub const EHDR_SIZE: usize = 16;
/// Long form length, LINK_CONFIG only (`EHDR_CFG_SIZE`, `EHDR_MAX_SIZE`).
pub const EHDR_CFG_SIZE: usize = 28;
/// The ehdr user value that selects the long form (LINK_CONFIG).
pub const EHDR_USER_CONFIG: u8 = 13;
/// The ehdr user value of an encrypted LINK_PROTOCOL STATE.
pub const EHDR_USER_STATE: u8 = 7;
/// AES-GCM tag length (`TIPC_AES_GCM_TAG_SIZE`).
pub const TAG_SIZE: usize = 16;
/// Envelope overhead with the short form (`EMSG_OVERHEAD`): 16 + 16, plus up to 3 pad bytes.
pub const EMSG_OVERHEAD: usize = EHDR_SIZE + TAG_SIZE;

// w0 bit positions (shift, mask).
const VERSION: (u32, u32) = (29, 0x7);
const USER: (u32, u32) = (25, 0xF);
const DESTINED: (u32, u32) = (24, 0x1);
const TX_KEY: (u32, u32) = (22, 0x3);
const RX_KEY_ACTIVE: (u32, u32) = (20, 0x3);
const KEEPALIVE: (u32, u32) = (19, 0x1);
const MASTER_KEY: (u32, u32) = (18, 0x1);
const RX_NOKEY: (u32, u32) = (17, 0x1);

/// Length of the encryption header whose first byte is `b0` (16, or 28 when the user is 13).
pub fn ehdr_len(b0: u8) -> usize {
    if (b0 >> 1) & 0xF == EHDR_USER_CONFIG {
        EHDR_CFG_SIZE
    } else {
        EHDR_SIZE
    }
}

/// Is `frame` an envelope (at least 16 bytes and version 7)? Anything else takes the plain path.
pub fn is_envelope(frame: &[u8]) -> bool {
    frame.len() >= EHDR_SIZE && frame[0] >> 5 == EHDR_VERSION
}

/// A read (and, with `T: AsMut<[u8]>`, write) view of an encryption header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ehdr<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ehdr<T> {
    /// Wrap a buffer without checking it. Readers return 0 for bytes outside the buffer.
    pub const fn new_unchecked(buf: T) -> Self {
        Ehdr { buf }
    }

    /// Wrap an envelope after the kernel's `tipc_ehdr_validate` checks: at least 16 bytes and
    /// version 7 ([`CryptoDrop::NotEnvelope`] otherwise), the whole 16- or 28-byte header
    /// present and at least one ciphertext byte besides the tag ([`CryptoDrop::BadHeader`]).
    pub fn new_checked(buf: T) -> Result<Self, CryptoDrop> {
        let e = Ehdr { buf };
        e.check()?;
        Ok(e)
    }

    /// Apply the checks of [`Ehdr::new_checked`].
    pub fn check(&self) -> Result<(), CryptoDrop> {
        let b = self.buf.as_ref();
        if !is_envelope(b) {
            return Err(CryptoDrop::NotEnvelope);
        }
        if b.len() <= self.header_len() + TAG_SIZE {
            return Err(CryptoDrop::BadHeader);
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// The underlying buffer, borrowed.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }

    fn w0(&self) -> u32 {
        match self.buf.as_ref().get(0..4) {
            Some(w) => u32::from_be_bytes([w[0], w[1], w[2], w[3]]),
            None => 0,
        }
    }

    fn get(&self, f: (u32, u32)) -> u8 {
        ((self.w0() >> f.0) & f.1) as u8
    }

    /// Version (7 for an envelope).
    pub fn version(&self) -> u8 {
        self.get(VERSION)
    }
    /// The ehdr user: 13 for LINK_CONFIG, 7 for a STATE, 0 otherwise (as the kernel sends).
    pub fn user(&self) -> u8 {
        self.get(USER)
    }
    /// Header length: 28 when the user is 13, else 16.
    pub fn header_len(&self) -> usize {
        if self.user() == EHDR_USER_CONFIG {
            EHDR_CFG_SIZE
        } else {
            EHDR_SIZE
        }
    }
    /// D: sent on a unicast link to a known node.
    pub fn destined(&self) -> bool {
        self.get(DESTINED) != 0
    }
    /// Slot of the key that encrypted the packet (0 = master).
    pub fn tx_key(&self) -> u8 {
        self.get(TX_KEY)
    }
    /// Slot of the sender's active RX key for the receiver (0 = none).
    pub fn rx_key_active(&self) -> u8 {
        self.get(RX_KEY_ACTIVE)
    }
    /// K: keepalive copy of the inner STATE's w0 bit 19.
    pub fn keepalive(&self) -> bool {
        self.get(KEEPALIVE) != 0
    }
    /// M: the sender has a master key.
    pub fn master_key(&self) -> bool {
        self.get(MASTER_KEY) != 0
    }
    /// N: the sender recently lacked a key for our packets.
    pub fn rx_nokey(&self) -> bool {
        self.get(RX_NOKEY) != 0
    }
    /// The reserved bits of w0 (bit 16 and bits 15-0), ignored on receive.
    pub fn reserved(&self) -> u32 {
        self.w0() & 0x1_FFFF
    }
    /// The 64-bit per-key sequence number (bytes 4-11).
    pub fn seqno(&self) -> u64 {
        let mut s = [0u8; 8];
        if let Some(b) = self.buf.as_ref().get(4..12) {
            s.copy_from_slice(b);
        }
        u64::from_be_bytes(s)
    }
    /// Bytes 12-15: the sender's address (short form) or the first 4 identity bytes (long form).
    pub fn addr(&self) -> NodeAddr {
        match self.buf.as_ref().get(12..16) {
            Some(w) => u32::from_be_bytes([w[0], w[1], w[2], w[3]]),
            None => 0,
        }
    }
    /// Bytes 12-27 of a long-form header: the sender's node identity. `None` for the short form.
    pub fn id(&self) -> Option<NodeId> {
        if self.user() != EHDR_USER_CONFIG {
            return None;
        }
        let b = self.buf.as_ref().get(12..12 + NODE_ID_LEN)?;
        let mut id = [0u8; NODE_ID_LEN];
        id.copy_from_slice(b);
        Some(NodeId(id))
    }
    /// The header bytes (the associated data), or the whole buffer if shorter.
    pub fn header(&self) -> &[u8] {
        let b = self.buf.as_ref();
        b.get(..self.header_len()).unwrap_or(b)
    }
    /// The ciphertext and tag after the header (empty if the buffer is shorter than the header).
    pub fn payload(&self) -> &[u8] {
        self.buf.as_ref().get(self.header_len()..).unwrap_or(&[])
    }
}

/// Who sent an envelope, as its header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EhdrOrigin {
    /// Short form: the sender's node address (a copy of the inner header's w3).
    Addr(NodeAddr),
    /// Long form (LINK_CONFIG): the sender's 16-byte node identity.
    Id(NodeId),
}

/// A parsed encryption header. Emitting a parsed header gives back the same bytes, except the
/// reserved bits (emitted as 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EhdrRepr {
    /// The ehdr user (0..=15). 13 selects the long form, and then `origin` is an identity.
    pub user: u8,
    /// D bit.
    pub destined: bool,
    /// Key slot that encrypted the packet (0..=3).
    pub tx_key: u8,
    /// The sender's active RX key slot for us (0..=3).
    pub rx_key_active: u8,
    /// K bit.
    pub keepalive: bool,
    /// M bit.
    pub master_key: bool,
    /// N bit.
    pub rx_nokey: bool,
    /// Per-key sequence number.
    pub seqno: u64,
    /// Sender address (short form) or identity (long form).
    pub origin: EhdrOrigin,
}

impl EhdrRepr {
    /// Parse a header checked by [`Ehdr::new_checked`] (or any buffer holding a whole header;
    /// a buffer shorter than its header length gives [`CryptoDrop::BadHeader`]).
    pub fn parse<T: AsRef<[u8]>>(e: &Ehdr<T>) -> Result<Self, CryptoDrop> {
        let b = e.as_bytes();
        if !is_envelope(b) {
            return Err(CryptoDrop::NotEnvelope);
        }
        if b.len() < e.header_len() {
            return Err(CryptoDrop::BadHeader);
        }
        let origin = match e.id() {
            Some(id) => EhdrOrigin::Id(id),
            None => EhdrOrigin::Addr(e.addr()),
        };
        Ok(EhdrRepr {
            user: e.user(),
            destined: e.destined(),
            tx_key: e.tx_key(),
            rx_key_active: e.rx_key_active(),
            keepalive: e.keepalive(),
            master_key: e.master_key(),
            rx_nokey: e.rx_nokey(),
            seqno: e.seqno(),
            origin,
        })
    }

    /// Bytes needed to emit: 28 when `user` is 13, else 16.
    pub fn buffer_len(&self) -> usize {
        if self.user & 0xF == EHDR_USER_CONFIG {
            EHDR_CFG_SIZE
        } else {
            EHDR_SIZE
        }
    }

    /// Emit into `buf`, which must hold [`EhdrRepr::buffer_len`] bytes (panics otherwise: this is
    /// our own output, sized by the caller). Returns the length. Values are masked to their
    /// field widths. A long form whose origin is an address writes the address and 12 zero
    /// bytes; a short form whose origin is an identity writes the identity's first 4 bytes.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let len = self.buffer_len();
        let buf = &mut buf[..len];
        let bit = |v: bool, s: u32| (v as u32) << s;
        let w0 = (u32::from(EHDR_VERSION) << VERSION.0)
            | ((u32::from(self.user) & USER.1) << USER.0)
            | bit(self.destined, DESTINED.0)
            | ((u32::from(self.tx_key) & TX_KEY.1) << TX_KEY.0)
            | ((u32::from(self.rx_key_active) & RX_KEY_ACTIVE.1) << RX_KEY_ACTIVE.0)
            | bit(self.keepalive, KEEPALIVE.0)
            | bit(self.master_key, MASTER_KEY.0)
            | bit(self.rx_nokey, RX_NOKEY.0);
        buf[0..4].copy_from_slice(&w0.to_be_bytes());
        buf[4..12].copy_from_slice(&self.seqno.to_be_bytes());
        let tail = &mut buf[12..];
        tail.fill(0);
        match self.origin {
            EhdrOrigin::Addr(a) => tail[..4].copy_from_slice(&a.to_be_bytes()),
            EhdrOrigin::Id(id) => {
                let n = tail.len().min(NODE_ID_LEN);
                tail[..n].copy_from_slice(&id.0[..n]);
            }
        }
        len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ehdr_reads_captured_state_header() {
        let b = hex16("ef580000000000000000001263620000");
        let mut env = b.to_vec();
        env.extend_from_slice(&[0u8; 17]);
        let e = Ehdr::new_checked(&env[..]).unwrap();
        assert_eq!(
            (
                e.version(),
                e.user(),
                e.destined(),
                e.tx_key(),
                e.rx_key_active()
            ),
            (7, 7, true, 1, 1)
        );
        assert!(e.keepalive() && !e.master_key() && !e.rx_nokey());
        assert_eq!((e.seqno(), e.addr(), e.header_len()), (18, 0x6362_0000, 16));
        let r = EhdrRepr::parse(&e).unwrap();
        let mut out = [0u8; 16];
        assert_eq!(r.emit(&mut out), 16);
        assert_eq!(out, b);
    }

    #[test]
    fn ehdr_first_bytes_match_captured_table() {
        // §15.2 "Typical first two bytes".
        // (first two bytes, user, D, tx_key, rx_key_active, K, M)
        type Case = ([u8; 2], u8, bool, u8, u8, bool, bool);
        let cases: [Case; 6] = [
            ([0xfa, 0x40], 13, false, 1, 0, false, false),
            ([0xfa, 0x04], 13, false, 0, 0, false, true),
            ([0xef, 0x50], 7, true, 1, 1, false, false),
            ([0xef, 0x58], 7, true, 1, 1, true, false),
            ([0xe0, 0x04], 0, false, 0, 0, false, true),
            ([0xe1, 0x24], 0, true, 0, 2, false, true),
        ];
        for (b, user, d, tx, rx, k, m) in cases {
            let buf = [b[0], b[1], 0, 0];
            let e = Ehdr::new_unchecked(&buf[..]);
            assert_eq!(
                (e.user(), e.destined(), e.tx_key(), e.rx_key_active()),
                (user, d, tx, rx)
            );
            assert_eq!((e.keepalive(), e.master_key()), (k, m));
        }
    }

    #[test]
    fn ehdr_new_checked_refuses_short_and_tagless_buffers() {
        assert_eq!(
            Ehdr::new_checked(&[0xe1u8; 15][..]),
            Err(CryptoDrop::NotEnvelope)
        );
        assert_eq!(
            Ehdr::new_checked(&[0x4fu8; 64][..]),
            Err(CryptoDrop::NotEnvelope)
        );
        // 16-byte header + 16-byte tag and no ciphertext.
        let mut b = [0u8; 32];
        b[0] = 0xe1;
        assert_eq!(Ehdr::new_checked(&b[..]), Err(CryptoDrop::BadHeader));
        // Long form needs 28 + 16 + 1.
        let mut b = [0u8; 44];
        b[0] = 0xfa;
        assert_eq!(Ehdr::new_checked(&b[..]), Err(CryptoDrop::BadHeader));
        let mut b = [0u8; 45];
        b[0] = 0xfa;
        assert!(Ehdr::new_checked(&b[..]).is_ok());
    }

    fn hex16(s: &str) -> [u8; 16] {
        let mut out = [0u8; 16];
        for (i, o) in out.iter_mut().enumerate() {
            *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
        }
        out
    }
}
