//! Data messages (users 0..3, kernel `msg.h` data accessors, `msg.c: tipc_msg_build`).
//!
//! Spec: tipc-protocol.md §2.1 (header sizes), §2.2 (data header and message types).

use super::{field, Header, WireError, BASIC_H_SIZE, MCAST_H_SIZE, NAMED_H_SIZE, SHORT_H_SIZE};

/// Data message types (w1 bits 31-29), §2.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    /// `TIPC_CONN_MSG`: connection data.
    Conn = 0,
    /// `TIPC_MCAST_MSG`: multicast to a service range.
    Mcast = 1,
    /// `TIPC_NAMED_MSG`: anycast to a service address.
    Named = 2,
    /// `TIPC_DIRECT_MSG`: to a socket address.
    Direct = 3,
    /// `TIPC_GRP_MEMBER_EVT`: group membership event (local only).
    GrpMemberEvt = 4,
    /// `TIPC_GRP_BCAST_MSG`: group broadcast.
    GrpBcast = 5,
    /// `TIPC_GRP_MCAST_MSG`: group multicast.
    GrpMcast = 6,
    /// `TIPC_GRP_UCAST_MSG`: group unicast and anycast.
    GrpUcast = 7,
}

impl DataType {
    /// Decode w1 bits 31-29 (all eight values are valid).
    pub fn from_u8(v: u8) -> Result<Self, WireError> {
        Ok(match v {
            0 => Self::Conn,
            1 => Self::Mcast,
            2 => Self::Named,
            3 => Self::Direct,
            4 => Self::GrpMemberEvt,
            5 => Self::GrpBcast,
            6 => Self::GrpMcast,
            7 => Self::GrpUcast,
            t => return Err(WireError::BadType(t)),
        })
    }

    /// Is this one of the group types (4..=7), whose w10 carries `grp_bc_seqno`?
    pub fn is_group(self) -> bool {
        self as u8 >= 4
    }
}

/// A parsed data message. Fields are raw so that `emit(parse(x)) == x`.
///
/// The header size is the caller's choice (`hsize`: 24, 32, 40 or 44). Words absent from the
/// chosen size parse as 0 and are not emitted; with a 24-byte header `orignode` parses as
/// `prevnode` (§2.1). With a group type, w10 is split into `grp_bc_seqno` (bits 31-16),
/// `grp_bc_ack_req` (bit 0) and the remaining bits in `name_upper`; otherwise `name_upper` is
/// the whole of w10.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataRepr<'a> {
    /// Header size in bytes: 24, 32, 40 or 44.
    pub hsize: usize,
    /// w0 bits 28-25: importance 0..=3 (the user field).
    pub importance: u8,
    /// w1 bits 31-29.
    pub mtype: DataType,
    /// w0 bit 20: not sequenced (set on broadcast-link packets).
    pub non_seq: bool,
    /// w0 bit 19: drop instead of returning when undeliverable.
    pub dest_droppable: bool,
    /// w0 bit 18: src_droppable (DGRAM), ack_required (CONN_MSG), is_rcast (multicast).
    pub bit18: bool,
    /// w0 bit 17: connection SYN (also the RBCTL multicast SYN).
    pub syn: bool,
    /// w1 bits 28-25: error code of a returned message (0 = none).
    pub errcode: u8,
    /// w1 bits 24-21: reroute counter.
    pub reroute_cnt: u8,
    /// w1 bits 20-19: lookup scope.
    pub lookup_scope: u8,
    /// w1 bits 15-0: last in-sequence broadcast packet received from the peer.
    pub bcast_ack: u16,
    /// w2 bits 31-16: last in-sequence unicast packet received.
    pub ack: u16,
    /// w2 bits 15-0: link sequence number.
    pub seqno: u16,
    /// w3: node that put the packet on this link.
    pub prevnode: u32,
    /// w4: originating port.
    pub origport: u32,
    /// w5: destination port (network id on broadcast-link packets).
    pub destport: u32,
    /// w6: originating node (`prevnode` with a 24-byte header).
    pub orignode: u32,
    /// w7: destination node (0 with a 24-byte header).
    pub destnode: u32,
    /// w8: service type (named, mcast, group).
    pub name_type: u32,
    /// w9: service instance or range lower bound.
    pub name_instance: u32,
    /// w10: range upper bound (MCAST_MSG); the bits of w10 not used by group fields otherwise.
    pub name_upper: u32,
    /// w10 bits 31-16 of group messages: sender's group broadcast seqno.
    pub grp_bc_seqno: u16,
    /// w10 bit 0 of group messages: please acknowledge this broadcast.
    pub grp_bc_ack_req: bool,
    /// User data.
    pub payload: &'a [u8],
}

const GRP_W10_MASK: u32 = 0xFFFF_0001;

impl<'a> DataRepr<'a> {
    /// Parse a checked header whose user is 0..=3. Header sizes other than 24, 32, 40 and 44 are
    /// rejected.
    pub fn parse(h: &Header<&'a [u8]>) -> Result<Self, WireError> {
        if !h.is_data() {
            return Err(WireError::BadUser(h.user()));
        }
        let hsize = h.header_len();
        if !matches!(
            hsize,
            SHORT_H_SIZE | BASIC_H_SIZE | NAMED_H_SIZE | MCAST_H_SIZE
        ) {
            return Err(WireError::BadHeaderSize(hsize));
        }
        let buf: &'a [u8] = h.into_inner_ref();
        let payload = buf.get(hsize..h.size()).ok_or(WireError::Truncated)?;
        let mtype = DataType::from_u8(h.mtype())?;
        let w10 = h.word(10);
        let (name_upper, grp_bc_seqno, grp_bc_ack_req) = if mtype.is_group() {
            (
                w10 & !GRP_W10_MASK,
                h.get(field::GRP_BC_SEQNO) as u16,
                h.flag(field::GRP_BC_ACK_REQ),
            )
        } else {
            (w10, 0, false)
        };
        Ok(DataRepr {
            hsize,
            importance: h.user(),
            mtype,
            non_seq: h.non_seq(),
            dest_droppable: h.flag(field::DEST_DROPPABLE),
            bit18: h.flag(field::BIT18),
            syn: h.flag(field::SYN),
            errcode: h.errcode(),
            reroute_cnt: h.get(field::REROUTE_CNT) as u8,
            lookup_scope: h.get(field::LOOKUP_SCOPE) as u8,
            bcast_ack: h.bcast_ack(),
            ack: h.ack(),
            seqno: h.seqno(),
            prevnode: h.prevnode(),
            origport: h.origport(),
            destport: h.destport(),
            orignode: h.orignode(),
            destnode: h.destnode(),
            name_type: h.get(field::NAMETYPE),
            name_instance: h.get(field::NAMEINST),
            name_upper,
            grp_bc_seqno,
            grp_bc_ack_req,
            payload,
        })
    }

    /// Bytes needed to emit this message.
    pub fn buffer_len(&self) -> usize {
        self.hsize + self.payload.len()
    }

    /// Emit into `buf` (at least [`buffer_len`](Self::buffer_len) bytes). Returns the length.
    ///
    /// `hsize` must be 24, 32, 40 or 44 and `importance` 0..=3 (other values are masked).
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let len = self.buffer_len();
        let buf = &mut buf[..len];
        let mut h = Header::new_unchecked(&mut *buf);
        h.init(
            self.importance & 3,
            self.mtype as u8,
            self.hsize,
            len,
            self.prevnode,
        );
        h.set_flag(field::NON_SEQ, self.non_seq);
        h.set_flag(field::DEST_DROPPABLE, self.dest_droppable);
        h.set_flag(field::BIT18, self.bit18);
        h.set_flag(field::SYN, self.syn);
        h.set(field::ERRCODE, self.errcode as u32);
        h.set(field::REROUTE_CNT, self.reroute_cnt as u32);
        h.set(field::LOOKUP_SCOPE, self.lookup_scope as u32);
        h.set_bcast_ack(self.bcast_ack);
        h.set_ack(self.ack);
        h.set_seqno(self.seqno);
        h.set(field::ORIGPORT, self.origport);
        h.set(field::DESTPORT, self.destport);
        if self.hsize >= BASIC_H_SIZE {
            h.set(field::ORIGNODE, self.orignode);
            h.set(field::DESTNODE, self.destnode);
        }
        if self.hsize >= NAMED_H_SIZE {
            h.set(field::NAMETYPE, self.name_type);
            h.set(field::NAMEINST, self.name_instance);
        }
        if self.hsize >= MCAST_H_SIZE {
            h.set(field::NAMEUPPER, self.name_upper);
            if self.mtype.is_group() {
                h.set(field::GRP_BC_SEQNO, self.grp_bc_seqno as u32);
                h.set_flag(field::GRP_BC_ACK_REQ, self.grp_bc_ack_req);
            }
        }
        let hs = self.hsize;
        buf[hs..].copy_from_slice(self.payload);
        len
    }
}
