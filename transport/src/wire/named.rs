//! NAME_DISTRIBUTOR messages (user 11) and their 20-byte binding items (kernel `name_distr.c`,
//! `name_distr.h: struct distr_item`).
//!
//! Spec: tipc-protocol.md §2.5 (NAME_DISTRIBUTOR overlay), §7.1 (item layout).

use super::{field, user, Header, WireError, INT_H_SIZE};

/// Size of one distribution item on the wire.
pub const ITEM_SIZE: usize = 20;

/// NAME_DISTRIBUTOR message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameDistrType {
    /// PUBLICATION: insert the bindings.
    Publication = 0,
    /// WITHDRAWAL: remove the bindings.
    Withdrawal = 1,
}

impl NameDistrType {
    /// Decode w1 bits 31-29.
    pub fn from_u8(v: u8) -> Result<Self, WireError> {
        match v {
            0 => Ok(Self::Publication),
            1 => Ok(Self::Withdrawal),
            t => Err(WireError::BadType(t)),
        }
    }
}

/// One binding in a NAME_DISTRIBUTOR message (§7.1). The publishing node is the message's
/// `orignode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DistrItem {
    /// Service type.
    pub type_: u32,
    /// Range lower bound.
    pub lower: u32,
    /// Range upper bound.
    pub upper: u32,
    /// Publishing socket's port.
    pub port: u32,
    /// Publication key.
    pub key: u32,
}

impl DistrItem {
    /// Decode one item from exactly 20 bytes (`None` if `b` is shorter).
    pub fn from_bytes(b: &[u8]) -> Option<Self> {
        let w = |i: usize| -> Option<u32> {
            let s = b.get(i * 4..i * 4 + 4)?;
            Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        };
        Some(DistrItem {
            type_: w(0)?,
            lower: w(1)?,
            upper: w(2)?,
            port: w(3)?,
            key: w(4)?,
        })
    }

    /// Encode into the first 20 bytes of `b` (which must be at least that long).
    pub fn write(&self, b: &mut [u8]) {
        for (i, v) in [self.type_, self.lower, self.upper, self.port, self.key]
            .iter()
            .enumerate()
        {
            b[i * 4..i * 4 + 4].copy_from_slice(&v.to_be_bytes());
        }
    }
}

/// Zero-copy iterator over the items of a NAME_DISTRIBUTOR message.
#[derive(Debug, Clone)]
pub struct DistrItems<'a> {
    rest: core::slice::ChunksExact<'a, u8>,
}

impl Iterator for DistrItems<'_> {
    type Item = DistrItem;
    fn next(&mut self) -> Option<DistrItem> {
        self.rest.next().and_then(DistrItem::from_bytes)
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.rest.size_hint()
    }
}

impl ExactSizeIterator for DistrItems<'_> {}

/// A parsed NAME_DISTRIBUTOR message. Raw fields keep `emit(parse(x)) == x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameDistrRepr<'a> {
    /// Message type.
    pub mtype: NameDistrType,
    /// w0 bit 20: set when sent on the broadcast link.
    pub non_seq: bool,
    /// w1 bit 28: part of the bulk sent at link-up.
    pub bulk: bool,
    /// w1 bit 27: last message of the bulk.
    pub last_bulk: bool,
    /// w1 bit 26: sender uses `named_seqno` ordering.
    pub non_legacy: bool,
    /// w1 bits 15-0.
    pub bcast_ack: u16,
    /// w2 bits 31-16.
    pub ack: u16,
    /// w2 bits 15-0.
    pub seqno: u16,
    /// w3.
    pub prevnode: u32,
    /// w4 bits 15-0: name-distribution sequence number.
    pub named_seqno: u16,
    /// w5 raw: bit 14 is `bc_ack_invalid`.
    pub w5: u32,
    /// w6: publishing node of every item.
    pub orignode: u32,
    /// w7: destination (0 on the broadcast link).
    pub destnode: u32,
    /// The raw items, a multiple of 20 bytes.
    pub items: &'a [u8],
}

impl<'a> NameDistrRepr<'a> {
    /// Parse a checked header whose user is NAME_DISTRIBUTOR. A data area that is not a whole
    /// number of items is rejected with [`WireError::BadPayload`].
    pub fn parse(h: &Header<&'a [u8]>) -> Result<Self, WireError> {
        if h.user() != user::NAME_DISTRIBUTOR {
            return Err(WireError::BadUser(h.user()));
        }
        if h.header_len() != INT_H_SIZE {
            return Err(WireError::BadHeaderSize(h.header_len()));
        }
        let buf: &'a [u8] = h.into_inner_ref();
        let items = buf.get(INT_H_SIZE..h.size()).ok_or(WireError::Truncated)?;
        if items.len() % ITEM_SIZE != 0 {
            return Err(WireError::BadPayload);
        }
        Ok(NameDistrRepr {
            mtype: NameDistrType::from_u8(h.mtype())?,
            non_seq: h.non_seq(),
            bulk: h.flag(field::BULK),
            last_bulk: h.flag(field::LAST_BULK),
            non_legacy: h.flag(field::NON_LEGACY),
            bcast_ack: h.bcast_ack(),
            ack: h.ack(),
            seqno: h.seqno(),
            prevnode: h.prevnode(),
            named_seqno: h.get(field::NAMED_SEQNO) as u16,
            w5: h.word(5),
            orignode: h.get(field::ORIGNODE),
            destnode: h.destnode(),
            items,
        })
    }

    /// w5 bit 14: ignore `bcast_ack` (set in bulk messages).
    pub fn bc_ack_invalid(&self) -> bool {
        self.w5 & (1 << 14) != 0
    }

    /// The items, decoded lazily.
    pub fn iter(&self) -> DistrItems<'a> {
        DistrItems {
            rest: self.items.chunks_exact(ITEM_SIZE),
        }
    }

    /// Number of items.
    pub fn item_count(&self) -> usize {
        self.items.len() / ITEM_SIZE
    }

    /// Bytes needed to emit.
    pub fn buffer_len(&self) -> usize {
        INT_H_SIZE + self.items.len()
    }

    /// Emit into `buf` (at least [`buffer_len`](Self::buffer_len) bytes). Returns the length.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let len = self.buffer_len();
        let buf = &mut buf[..len];
        self.emit_header(buf, len);
        buf[INT_H_SIZE..].copy_from_slice(self.items);
        len
    }

    /// Emit this header (ignoring `self.items`) followed by `items` into `buf`, which must hold
    /// `40 + 20 * items.len()` bytes. Returns the length.
    pub fn emit_with_items(&self, items: &[DistrItem], buf: &mut [u8]) -> usize {
        let len = INT_H_SIZE + items.len() * ITEM_SIZE;
        let buf = &mut buf[..len];
        self.emit_header(buf, len);
        for (it, chunk) in items
            .iter()
            .zip(buf[INT_H_SIZE..].chunks_exact_mut(ITEM_SIZE))
        {
            it.write(chunk);
        }
        len
    }

    fn emit_header(&self, buf: &mut [u8], len: usize) {
        let mut h = Header::new_unchecked(&mut *buf);
        h.init(
            user::NAME_DISTRIBUTOR,
            self.mtype as u8,
            INT_H_SIZE,
            len,
            self.prevnode,
        );
        h.set_flag(field::NON_SEQ, self.non_seq);
        h.set_flag(field::BULK, self.bulk);
        h.set_flag(field::LAST_BULK, self.last_bulk);
        h.set_flag(field::NON_LEGACY, self.non_legacy);
        h.set_bcast_ack(self.bcast_ack);
        h.set_ack(self.ack);
        h.set_seqno(self.seqno);
        h.set(field::NAMED_SEQNO, self.named_seqno as u32);
        h.set_word(5, self.w5);
        h.set(field::ORIGNODE, self.orignode);
        h.set(field::DESTNODE, self.destnode);
    }
}
