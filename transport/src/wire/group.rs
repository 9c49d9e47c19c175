//! GROUP_PROTOCOL messages (user 9): member-to-member group control (kernel `group.c:
//! tipc_group_proto_xmit, tipc_group_proto_rcv`).
//!
//! Spec: tipc-protocol.md §2.5 (GROUP_PROTOCOL overlay), §10.2.

use super::{field, user, Header, WireError, INT_H_SIZE};

/// GROUP_PROTOCOL message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupProtoType {
    /// GRP_JOIN_MSG: `bc_syncpt`, `adv_win`.
    Join = 0,
    /// GRP_LEAVE_MSG: `bc_syncpt`.
    Leave = 1,
    /// GRP_ADV_MSG: `adv_win`.
    Adv = 2,
    /// GRP_ACK_MSG: `bc_acked`.
    Ack = 3,
    /// GRP_RECLAIM_MSG.
    Reclaim = 4,
    /// GRP_REMIT_MSG: `remitted`.
    Remit = 5,
}

impl GroupProtoType {
    /// Decode w1 bits 31-29.
    pub fn from_u8(v: u8) -> Result<Self, WireError> {
        Ok(match v {
            0 => Self::Join,
            1 => Self::Leave,
            2 => Self::Adv,
            3 => Self::Ack,
            4 => Self::Reclaim,
            5 => Self::Remit,
            t => return Err(WireError::BadType(t)),
        })
    }
}

/// A parsed GROUP_PROTOCOL message. Raw fields keep `emit(parse(x)) == x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupProtoRepr<'a> {
    /// Message type.
    pub mtype: GroupProtoType,
    /// w0 bit 19: dest_droppable (always set by the kernel).
    pub dest_droppable: bool,
    /// w1 bits 15-0.
    pub bcast_ack: u16,
    /// w2 bits 31-16.
    pub ack: u16,
    /// w2 bits 15-0.
    pub seqno: u16,
    /// w3.
    pub prevnode: u32,
    /// w4: sending member's port.
    pub origport: u32,
    /// w5: receiving member's port.
    pub destport: u32,
    /// w6.
    pub orignode: u32,
    /// w7.
    pub destnode: u32,
    /// w9 bits 31-16: `bc_syncpt` (JOIN, LEAVE), `bc_acked` (ACK) or `remitted` (REMIT).
    pub w9_hi: u16,
    /// w9 bits 15-0: advertised window (JOIN, ADV).
    pub adv_win: u16,
    /// Payload (empty from a kernel).
    pub data: &'a [u8],
}

impl<'a> GroupProtoRepr<'a> {
    /// Parse a checked header whose user is GROUP_PROTOCOL.
    pub fn parse(h: &Header<&'a [u8]>) -> Result<Self, WireError> {
        if h.user() != user::GROUP_PROTOCOL {
            return Err(WireError::BadUser(h.user()));
        }
        if h.header_len() != INT_H_SIZE {
            return Err(WireError::BadHeaderSize(h.header_len()));
        }
        let buf: &'a [u8] = h.into_inner_ref();
        let data = buf.get(INT_H_SIZE..h.size()).ok_or(WireError::Truncated)?;
        Ok(GroupProtoRepr {
            mtype: GroupProtoType::from_u8(h.mtype())?,
            dest_droppable: h.flag(field::DEST_DROPPABLE),
            bcast_ack: h.bcast_ack(),
            ack: h.ack(),
            seqno: h.seqno(),
            prevnode: h.prevnode(),
            origport: h.origport(),
            destport: h.destport(),
            orignode: h.get(field::ORIGNODE),
            destnode: h.destnode(),
            w9_hi: h.get(field::GRP_W9_HI) as u16,
            adv_win: h.get(field::ADV_WIN) as u16,
            data,
        })
    }

    /// JOIN, LEAVE: the sender's broadcast sync point.
    pub fn bc_syncpt(&self) -> u16 {
        self.w9_hi
    }
    /// ACK: the acknowledged broadcast seqno.
    pub fn bc_acked(&self) -> u16 {
        self.w9_hi
    }
    /// REMIT: the remitted window.
    pub fn remitted(&self) -> u16 {
        self.w9_hi
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
            user::GROUP_PROTOCOL,
            self.mtype as u8,
            INT_H_SIZE,
            len,
            self.prevnode,
        );
        h.set_flag(field::DEST_DROPPABLE, self.dest_droppable);
        h.set_bcast_ack(self.bcast_ack);
        h.set_ack(self.ack);
        h.set_seqno(self.seqno);
        h.set(field::ORIGPORT, self.origport);
        h.set(field::DESTPORT, self.destport);
        h.set(field::ORIGNODE, self.orignode);
        h.set(field::DESTNODE, self.destnode);
        h.set(field::GRP_W9_HI, self.w9_hi as u32);
        h.set(field::ADV_WIN, self.adv_win as u32);
        buf[INT_H_SIZE..].copy_from_slice(self.data);
        len
    }
}
