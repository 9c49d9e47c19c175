//! BCAST_PROTOCOL messages (user 5): the broadcast-link init message and the legacy broadcast
//! NACK (kernel `link.c: tipc_link_build_bc_proto_msg, tipc_link_build_bc_init_msg`).
//!
//! Spec: tipc-protocol.md §5.3, §2.4.

use super::{field, user, Header, WireError, INT_H_SIZE};

/// The only BCAST_PROTOCOL message type, `STATE_MSG`.
pub const BCAST_STATE_MSG: u8 = 0;

/// A parsed BCAST_PROTOCOL message. Raw fields keep `emit(parse(x)) == x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BcastProtoRepr<'a> {
    /// w0 bit 20: 0 for the bc-init (sequenced on the unicast link), 1 for a legacy NACK.
    pub non_seq: bool,
    /// w1 bits 15-0: last in-sequence broadcast packet received.
    pub bcast_ack: u16,
    /// w2 bits 31-16: `bcgap_after`, overwritten by the unicast `ack` on a bc-init.
    pub bcgap_after: u16,
    /// w2 bits 15-0: `bcgap_to`, overwritten by the unicast `seqno` on a bc-init.
    pub bcgap_to: u16,
    /// w3: sender node.
    pub prevnode: u32,
    /// w4 bits 31-16: sender's broadcast `snd_nxt - 1`.
    pub last_bcast: u16,
    /// w5 raw: bit 14 is `bc_ack_invalid` (bc-init); a legacy NACK carries the network id here.
    pub w5: u32,
    /// w6: originating node.
    pub orignode: u32,
    /// w7: destination node (the peer).
    pub destnode: u32,
    /// Payload (empty from a kernel).
    pub data: &'a [u8],
}

impl<'a> BcastProtoRepr<'a> {
    /// Parse a checked header whose user is BCAST_PROTOCOL.
    pub fn parse(h: &Header<&'a [u8]>) -> Result<Self, WireError> {
        if h.user() != user::BCAST_PROTOCOL {
            return Err(WireError::BadUser(h.user()));
        }
        if h.header_len() != INT_H_SIZE {
            return Err(WireError::BadHeaderSize(h.header_len()));
        }
        if h.mtype() != BCAST_STATE_MSG {
            return Err(WireError::BadType(h.mtype()));
        }
        let buf: &'a [u8] = h.into_inner_ref();
        let data = buf.get(INT_H_SIZE..h.size()).ok_or(WireError::Truncated)?;
        Ok(BcastProtoRepr {
            non_seq: h.non_seq(),
            bcast_ack: h.bcast_ack(),
            bcgap_after: h.get(field::BCGAP_AFTER) as u16,
            bcgap_to: h.get(field::BCGAP_TO) as u16,
            prevnode: h.prevnode(),
            last_bcast: h.get(field::LAST_BCAST) as u16,
            w5: h.word(5),
            orignode: h.get(field::ORIGNODE),
            destnode: h.destnode(),
            data,
        })
    }

    /// w5 bit 14: the `bcast_ack` of this message is not valid (set on the bc-init).
    pub fn bc_ack_invalid(&self) -> bool {
        self.w5 & (1 << 14) != 0
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
        h.init(
            user::BCAST_PROTOCOL,
            BCAST_STATE_MSG,
            INT_H_SIZE,
            len,
            self.prevnode,
        );
        h.set_flag(field::NON_SEQ, self.non_seq);
        h.set_bcast_ack(self.bcast_ack);
        h.set(field::BCGAP_AFTER, self.bcgap_after as u32);
        h.set(field::BCGAP_TO, self.bcgap_to as u32);
        h.set(field::LAST_BCAST, self.last_bcast as u32);
        h.set_word(5, self.w5);
        h.set(field::ORIGNODE, self.orignode);
        h.set(field::DESTNODE, self.destnode);
        buf[INT_H_SIZE..].copy_from_slice(self.data);
        len
    }
}
