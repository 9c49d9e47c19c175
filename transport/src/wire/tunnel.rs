//! TUNNEL_PROTOCOL messages (user 10): SYNCH and FAILOVER tunnelling between parallel links
//! (kernel `link.c: tipc_link_tnl_prepare, tipc_link_tnl_rcv`, `msg.c: tipc_msg_fragment`).
//!
//! Spec: tipc-protocol.md §2.5 (TUNNEL_PROTOCOL overlay), §4.12.

use super::{field, user, Header, WireError, INT_H_SIZE};

/// TUNNEL_PROTOCOL message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TunnelType {
    /// SYNCH_MSG.
    Synch = 0,
    /// FAILOVER_MSG.
    Failover = 1,
}

impl TunnelType {
    /// Decode w1 bits 31-29.
    pub fn from_u8(v: u8) -> Result<Self, WireError> {
        match v {
            0 => Ok(Self::Synch),
            1 => Ok(Self::Failover),
            t => Err(WireError::BadType(t)),
        }
    }
}

/// A parsed TUNNEL_PROTOCOL message. The data is one complete original packet, a fragment of
/// one (when `nof_fragms != 0`), or empty (enhanced dummy SYNCH).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TunnelRepr<'a> {
    /// Message type.
    pub mtype: TunnelType,
    /// w1 bits 15-0.
    pub bcast_ack: u16,
    /// w2 bits 31-16.
    pub ack: u16,
    /// w2 bits 15-0.
    pub seqno: u16,
    /// w3.
    pub prevnode: u32,
    /// w4 bits 31-16: fragment number (0 when not fragmented).
    pub fragm_no: u16,
    /// w4 bits 15-0: number of fragments (0 when not fragmented).
    pub nof_fragms: u16,
    /// w5 bits 11-9: the peer's bearer id of the link being replaced.
    pub bearer_id: u8,
    /// w6.
    pub orignode: u32,
    /// w7.
    pub destnode: u32,
    /// w9 bits 31-16: msgcnt (FAILOVER, legacy SYNCH) or syncpt (enhanced dummy SYNCH).
    pub msgcnt: u16,
    /// The tunnelled packet (or fragment of one).
    pub data: &'a [u8],
}

impl<'a> TunnelRepr<'a> {
    /// Parse a checked header whose user is TUNNEL_PROTOCOL.
    pub fn parse(h: &Header<&'a [u8]>) -> Result<Self, WireError> {
        if h.user() != user::TUNNEL_PROTOCOL {
            return Err(WireError::BadUser(h.user()));
        }
        if h.header_len() != INT_H_SIZE {
            return Err(WireError::BadHeaderSize(h.header_len()));
        }
        let buf: &'a [u8] = h.into_inner_ref();
        let data = buf.get(INT_H_SIZE..h.size()).ok_or(WireError::Truncated)?;
        Ok(TunnelRepr {
            mtype: TunnelType::from_u8(h.mtype())?,
            bcast_ack: h.bcast_ack(),
            ack: h.ack(),
            seqno: h.seqno(),
            prevnode: h.prevnode(),
            fragm_no: h.get(field::FRAGM_NO) as u16,
            nof_fragms: h.get(field::NOF_FRAGMS) as u16,
            bearer_id: h.get(field::BEARER_ID) as u8,
            orignode: h.get(field::ORIGNODE),
            destnode: h.destnode(),
            msgcnt: h.get(field::MSGCNT) as u16,
            data,
        })
    }

    /// Enhanced dummy SYNCH: the sync point (shares w9 bits 31-16 with `msgcnt`).
    pub fn syncpt(&self) -> u16 {
        self.msgcnt
    }

    /// The tunnelled packet, checked like any packet; `None` for a fragment or an empty tunnel
    /// message, `Some(Err)` if the data is not a valid packet.
    pub fn inner(&self) -> Option<Result<Header<&'a [u8]>, WireError>> {
        if self.nof_fragms != 0 || self.data.is_empty() {
            return None;
        }
        Some(Header::new_checked(self.data))
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
            user::TUNNEL_PROTOCOL,
            self.mtype as u8,
            INT_H_SIZE,
            len,
            self.prevnode,
        );
        h.set_bcast_ack(self.bcast_ack);
        h.set_ack(self.ack);
        h.set_seqno(self.seqno);
        h.set(field::FRAGM_NO, self.fragm_no as u32);
        h.set(field::NOF_FRAGMS, self.nof_fragms as u32);
        h.set(field::BEARER_ID, self.bearer_id as u32);
        h.set(field::ORIGNODE, self.orignode);
        h.set(field::DESTNODE, self.destnode);
        h.set(field::MSGCNT, self.msgcnt as u32);
        buf[INT_H_SIZE..].copy_from_slice(self.data);
        len
    }
}

/// The fragments `tipc_msg_fragment` cuts a tunnelled packet of `dsz` bytes into for a tunnel
/// link of `mtu` (`TIPC_TUNNEL_ENHANCED` FAILOVER): `None` when it fits in one tunnel message;
/// otherwise the byte range of the packet each fragment carries, in order (`fragm_no` from 1).
/// Every fragment but the last carries `mtu - INT_H_SIZE` bytes; as in the kernel there are
/// `dsz / dmax + 1` of them, so the last one is empty when `dsz` is a multiple of `dmax`.
pub fn tunnel_fragments(
    dsz: usize,
    mtu: usize,
) -> Option<impl ExactSizeIterator<Item = std::ops::Range<usize>>> {
    let dmax = mtu.checked_sub(INT_H_SIZE).filter(|&d| d > 0)?;
    if dsz <= dmax {
        return None;
    }
    let n = dsz / dmax + 1;
    Some((0..n).map(move |i| i * dmax..((i + 1) * dmax).min(dsz)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lens(dsz: usize, mtu: usize) -> Option<Vec<usize>> {
        tunnel_fragments(dsz, mtu).map(|f| f.map(|r| r.len()).collect())
    }

    #[test]
    fn tunnel_fragments_cut_like_tipc_msg_fragment() {
        assert_eq!(lens(1460, 1500), None);
        assert_eq!(lens(1461, 1500), Some(vec![1460, 1]));
        // A multiple of dmax: the kernel's empty last fragment.
        assert_eq!(lens(2920, 1500), Some(vec![1460, 1460, 0]));
        assert_eq!(lens(13960, 1500), Some([vec![1460; 9], vec![820]].concat()));
        // No room for data: never fragmented.
        assert_eq!(lens(100, INT_H_SIZE), None);
    }
}
