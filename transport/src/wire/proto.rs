//! LINK_PROTOCOL messages (user 7): RESET, ACTIVATE, STATE (kernel `link.c:
//! tipc_link_build_proto_msg`), spec §4.3.

use super::{field, user, Header, WireError, INT_H_SIZE};

/// LINK_PROTOCOL message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkProtoType {
    /// STATE_MSG: acks, NACKs, probes.
    State = 0,
    /// RESET_MSG.
    Reset = 1,
    /// ACTIVATE_MSG.
    Activate = 2,
}

impl LinkProtoType {
    /// Decode w1 bits 31-29.
    pub fn from_u8(v: u8) -> Result<Self, WireError> {
        match v {
            0 => Ok(Self::State),
            1 => Ok(Self::Reset),
            2 => Ok(Self::Activate),
            t => Err(WireError::BadType(t)),
        }
    }
}

/// Length of the interface-name field in RESET/ACTIVATE data.
pub const IF_NAME_LEN: usize = 16;

/// A parsed LINK_PROTOCOL message. Fields are kept raw so that `emit(parse(x)) == x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkProtoRepr<'a> {
    /// Message type.
    pub mtype: LinkProtoType,
    /// w0 bit 19: STATE sent as probe or probe reply.
    pub keepalive: bool,
    /// w1 bits 28-16: STATE gap (NACK); bit 16 is `dest_session_valid` in ACTIVATE.
    pub seq_gap: u16,
    /// w1 bits 15-0: bcast_ack (STATE, RESET) or dest_session (ACTIVATE).
    pub bcast_ack: u16,
    /// w2 bits 31-16: last in-sequence unicast packet received.
    pub ack: u16,
    /// w2 bits 15-0: STATE counter, or `snd_nxt + 32767`.
    pub seqno: u16,
    /// w3: sender node address.
    pub prevnode: u32,
    /// w4 bits 31-16: sender's broadcast `snd_nxt - 1`.
    pub last_bcast: u16,
    /// w4 bits 15-0: sender's unicast `snd_nxt`.
    pub next_sent: u16,
    /// w5 bits 31-16: sender's link session.
    pub session: u16,
    /// w5 bit 14: ignore `bcast_ack`.
    pub bc_ack_invalid: bool,
    /// w5 bit 13: the sender is taking the link down.
    pub peer_stopping: bool,
    /// w5 bit 12: the sender considers our node up.
    pub redundant_link: bool,
    /// w5 bits 11-9: sender's bearer id.
    pub bearer_id: u8,
    /// w5 bits 8-4: link priority (0 = unchanged).
    pub priority: u8,
    /// w5 bits 3-1: network plane.
    pub net_plane: u8,
    /// w5 bit 0: probe (please reply with STATE).
    pub probe: bool,
    /// w6.
    pub orignode: u32,
    /// w7.
    pub destnode: u32,
    /// w8 bits 9-0: broadcast gap.
    pub bc_gap: u16,
    /// w9 bits 31-16: advertised MTU / 4 (RESET, ACTIVATE).
    pub max_pkt: u16,
    /// w9 bits 15-0: tolerance in ms (0 = unchanged).
    pub tolerance: u16,
    /// Data: interface name (RESET/ACTIVATE) or gap-ack and monitor records (STATE).
    pub data: &'a [u8],
}

impl<'a> LinkProtoRepr<'a> {
    /// Parse a checked header whose user is LINK_PROTOCOL.
    pub fn parse(h: &Header<&'a [u8]>) -> Result<Self, WireError> {
        if h.user() != user::LINK_PROTOCOL {
            return Err(WireError::BadUser(h.user()));
        }
        if h.header_len() < INT_H_SIZE {
            return Err(WireError::BadHeaderSize(h.header_len()));
        }
        let buf: &'a [u8] = h.into_inner_ref();
        let data = buf
            .get(h.header_len()..h.size())
            .ok_or(WireError::Truncated)?;
        Ok(LinkProtoRepr {
            mtype: LinkProtoType::from_u8(h.mtype())?,
            keepalive: h.flag(field::KEEPALIVE),
            seq_gap: h.get(field::SEQ_GAP) as u16,
            bcast_ack: h.get(field::BCAST_ACK) as u16,
            ack: h.ack(),
            seqno: h.seqno(),
            prevnode: h.prevnode(),
            last_bcast: h.get(field::LAST_BCAST) as u16,
            next_sent: h.get(field::NEXT_SENT) as u16,
            session: h.get(field::SESSION) as u16,
            bc_ack_invalid: h.flag(field::BC_ACK_INVALID),
            peer_stopping: h.flag(field::PEER_STOPPING),
            redundant_link: h.flag(field::REDUNDANT_LINK),
            bearer_id: h.get(field::BEARER_ID) as u8,
            priority: h.get(field::PRIORITY) as u8,
            net_plane: h.get(field::NET_PLANE) as u8,
            probe: h.flag(field::PROBE),
            orignode: h.get(field::ORIGNODE),
            destnode: h.get(field::DESTNODE),
            bc_gap: h.get(field::BC_GAP) as u16,
            max_pkt: h.get(field::MAX_PKT) as u16,
            tolerance: h.get(field::TOLERANCE) as u16,
            data,
        })
    }

    /// ACTIVATE only: the receiver's session as the sender knows it, if marked valid.
    pub fn dest_session(&self) -> Option<u16> {
        (self.mtype == LinkProtoType::Activate && self.seq_gap & 1 == 1).then_some(self.bcast_ack)
    }

    /// RESET/ACTIVATE only: the advertised MTU in bytes.
    pub fn mtu(&self) -> usize {
        self.max_pkt as usize * 4
    }

    /// RESET/ACTIVATE only: the interface name (up to the first NUL).
    pub fn if_name(&self) -> &'a [u8] {
        let d = &self.data[..self.data.len().min(IF_NAME_LEN)];
        let end = d.iter().position(|&c| c == 0).unwrap_or(d.len());
        &d[..end]
    }

    /// Bytes needed to emit this message.
    pub fn buffer_len(&self) -> usize {
        INT_H_SIZE + self.data.len()
    }

    /// Emit into `buf` (at least [`buffer_len`](Self::buffer_len) bytes). Returns the length.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let len = self.buffer_len();
        let buf = &mut buf[..len];
        let mut h = Header::new_unchecked(&mut *buf);
        h.init(
            user::LINK_PROTOCOL,
            self.mtype as u8,
            INT_H_SIZE,
            len,
            self.prevnode,
        );
        h.set_flag(field::KEEPALIVE, self.keepalive);
        h.set(field::SEQ_GAP, self.seq_gap as u32);
        h.set(field::BCAST_ACK, self.bcast_ack as u32);
        h.set_ack(self.ack);
        h.set_seqno(self.seqno);
        h.set(field::LAST_BCAST, self.last_bcast as u32);
        h.set(field::NEXT_SENT, self.next_sent as u32);
        h.set(field::SESSION, self.session as u32);
        h.set_flag(field::BC_ACK_INVALID, self.bc_ack_invalid);
        h.set_flag(field::PEER_STOPPING, self.peer_stopping);
        h.set_flag(field::REDUNDANT_LINK, self.redundant_link);
        h.set(field::BEARER_ID, self.bearer_id as u32);
        h.set(field::PRIORITY, self.priority as u32);
        h.set(field::NET_PLANE, self.net_plane as u32);
        h.set_flag(field::PROBE, self.probe);
        h.set(field::ORIGNODE, self.orignode);
        h.set(field::DESTNODE, self.destnode);
        h.set(field::BC_GAP, self.bc_gap as u32);
        h.set(field::MAX_PKT, self.max_pkt as u32);
        h.set(field::TOLERANCE, self.tolerance as u32);
        buf[INT_H_SIZE..].copy_from_slice(self.data);
        len
    }
}

/// The unicast blocks of a STATE's gap ACK record (`tipc_get_gap_ack_blks`, §4.5; the record
/// opens the data of every STATE from a peer with `TIPC_GAP_ACK_BLOCK`), as big-endian
/// `{ack, gap}` pairs: `None` when the record runs past `data` (the kernel drops such a STATE),
/// an empty slice when it holds no usable unicast block. Broadcast blocks come first and are
/// skipped; a record whose length counts only unicast blocks (byte 3 reserved, older peers)
/// is read as that.
pub fn gap_ack_blocks(data: &[u8]) -> Option<&[u8]> {
    let h = data.get(..4)?;
    let len = u16::from_be_bytes([h[0], h[1]]) as usize;
    if len > data.len() {
        return None;
    }
    let (uc, bc) = (h[2] as usize, h[3] as usize);
    if len == 4 + 4 * (uc + bc) {
        return Some(&data[4 + 4 * bc..len]);
    }
    if len == 4 + 4 * uc {
        return Some(&data[4..len]);
    }
    Some(&[])
}

/// Most unicast gap ACK blocks in a record (`MAX_GAP_ACK_BLKS / 2`).
pub const MAX_GAP_ACK_BLOCKS: usize = 64;
/// Bytes of the largest gap ACK record we build.
pub const GAP_ACK_RECORD_MAX: usize = 4 + 4 * MAX_GAP_ACK_BLOCKS;

/// Build a gap ACK record (`tipc_build_gap_ack_blks`, §4.5) into `out` from the seqnos held
/// out of order (`held`, rising; the deferred queue): no broadcast blocks; each unicast block
/// `{ack, gap}` is the last seqno of an island and the number of packets missing after it,
/// the last one `{last held, 0}`, at most [`MAX_GAP_ACK_BLOCKS`] (fewer if `out` is shorter
/// than [`GAP_ACK_RECORD_MAX`]). Returns the record's length (4 with no blocks; 0 if `out`
/// cannot hold even that).
pub fn build_gap_ack_record(held: impl IntoIterator<Item = super::Seqno>, out: &mut [u8]) -> usize {
    if out.len() < 4 {
        return 0;
    }
    let max = MAX_GAP_ACK_BLOCKS.min((out.len() - 4) / 4);
    let mut n = 0usize;
    let mut put = |n: &mut usize, ack: super::Seqno, gap: u16| {
        let b = 4 + 4 * *n;
        out[b..b + 2].copy_from_slice(&ack.0.to_be_bytes());
        out[b + 2..b + 4].copy_from_slice(&gap.to_be_bytes());
        *n += 1;
    };
    let mut held = held.into_iter();
    if let Some(first) = held.next().filter(|_| max > 0) {
        let (mut expect, mut last) = (first.next(), first);
        for s in held {
            if s.more(expect) {
                put(&mut n, expect.sub(1), s.diff(expect));
                if n >= max {
                    break;
                }
            }
            expect = s.next();
            last = s;
        }
        if n < max {
            put(&mut n, last, 0);
        }
    }
    let len = 4 + 4 * n;
    out[..2].copy_from_slice(&(len as u16).to_be_bytes());
    out[2] = n as u8;
    out[3] = 0;
    len
}
