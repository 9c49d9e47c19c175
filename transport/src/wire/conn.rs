//! CONN_MANAGER messages (user 8): connection probe, probe reply and flow-control ack (kernel
//! `socket.c: tipc_sk_build_ack, tipc_sk_check_probing_state, tipc_sk_proto_rcv`).
//!
//! Spec: tipc-protocol.md §2.5 (CONN_MANAGER overlay), §9.5 (flow control), §9.7 (probing).

use super::{field, user, Header, WireError, INT_H_SIZE};

/// CONN_MANAGER message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnMgrType {
    /// CONN_PROBE.
    Probe = 0,
    /// CONN_PROBE_REPLY.
    ProbeReply = 1,
    /// CONN_ACK.
    Ack = 2,
}

impl ConnMgrType {
    /// Decode w1 bits 31-29.
    pub fn from_u8(v: u8) -> Result<Self, WireError> {
        match v {
            0 => Ok(Self::Probe),
            1 => Ok(Self::ProbeReply),
            2 => Ok(Self::Ack),
            t => Err(WireError::BadType(t)),
        }
    }
}

/// A parsed CONN_MANAGER message. Raw fields keep `emit(parse(x)) == x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnMgrRepr<'a> {
    /// Message type.
    pub mtype: ConnMgrType,
    /// w0 bit 19: dest_droppable.
    pub dest_droppable: bool,
    /// w0 bit 18: nagle_ack (CONN_ACK answering an `ack_required` message).
    pub nagle_ack: bool,
    /// w1 bits 28-25: error code (a probe reply is a reversed probe).
    pub errcode: u8,
    /// w1 bits 15-0.
    pub bcast_ack: u16,
    /// w2 bits 31-16.
    pub ack: u16,
    /// w2 bits 15-0.
    pub seqno: u16,
    /// w3.
    pub prevnode: u32,
    /// w4: sending socket's port.
    pub origport: u32,
    /// w5: peer socket's port.
    pub destport: u32,
    /// w6.
    pub orignode: u32,
    /// w7.
    pub destnode: u32,
    /// w9 bits 31-16: blocks (or messages) consumed since the last ack.
    pub conn_ack: u16,
    /// w9 bits 15-0: advertised window in blocks.
    pub adv_win: u16,
    /// Payload (empty from a kernel).
    pub data: &'a [u8],
}

impl<'a> ConnMgrRepr<'a> {
    /// Parse a checked header whose user is CONN_MANAGER.
    pub fn parse(h: &Header<&'a [u8]>) -> Result<Self, WireError> {
        if h.user() != user::CONN_MANAGER {
            return Err(WireError::BadUser(h.user()));
        }
        if h.header_len() != INT_H_SIZE {
            return Err(WireError::BadHeaderSize(h.header_len()));
        }
        let buf: &'a [u8] = h.into_inner_ref();
        let data = buf.get(INT_H_SIZE..h.size()).ok_or(WireError::Truncated)?;
        Ok(ConnMgrRepr {
            mtype: ConnMgrType::from_u8(h.mtype())?,
            dest_droppable: h.flag(field::DEST_DROPPABLE),
            nagle_ack: h.flag(field::BIT18),
            errcode: h.errcode(),
            bcast_ack: h.bcast_ack(),
            ack: h.ack(),
            seqno: h.seqno(),
            prevnode: h.prevnode(),
            origport: h.origport(),
            destport: h.destport(),
            orignode: h.get(field::ORIGNODE),
            destnode: h.destnode(),
            conn_ack: h.get(field::CONN_ACK) as u16,
            adv_win: h.get(field::ADV_WIN) as u16,
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
        h.init(
            user::CONN_MANAGER,
            self.mtype as u8,
            INT_H_SIZE,
            len,
            self.prevnode,
        );
        h.set_flag(field::DEST_DROPPABLE, self.dest_droppable);
        h.set_flag(field::BIT18, self.nagle_ack);
        h.set(field::ERRCODE, self.errcode as u32);
        h.set_bcast_ack(self.bcast_ack);
        h.set_ack(self.ack);
        h.set_seqno(self.seqno);
        h.set(field::ORIGPORT, self.origport);
        h.set(field::DESTPORT, self.destport);
        h.set(field::ORIGNODE, self.orignode);
        h.set(field::DESTNODE, self.destnode);
        h.set(field::CONN_ACK, self.conn_ack as u32);
        h.set(field::ADV_WIN, self.adv_win as u32);
        buf[INT_H_SIZE..].copy_from_slice(self.data);
        len
    }
}
