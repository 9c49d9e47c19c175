//! LINK_CONFIG (user 13) discovery messages (kernel `discover.c: tipc_disc_init_msg`),
//! spec §3.2.

use super::{field, user, Header, MediaAddr, WireError, MAX_H_SIZE, MEDIA_INFO_SIZE};
use crate::addr::NODE_ID_LEN;

/// Total size of a discovery message: 60-byte header plus the 16-byte node identity.
pub const DISC_MSG_SIZE: usize = MAX_H_SIZE + NODE_ID_LEN;

/// Discovery message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiscType {
    /// DSC_REQ_MSG.
    Request = 0,
    /// DSC_RESP_MSG.
    Response = 1,
    /// DSC_TRIAL_MSG (address trial).
    Trial = 2,
    /// DSC_TRIAL_FAIL_MSG.
    TrialFail = 3,
}

impl DiscType {
    /// Decode w1 bits 31-29.
    pub fn from_u8(v: u8) -> Result<Self, WireError> {
        match v {
            0 => Ok(Self::Request),
            1 => Ok(Self::Response),
            2 => Ok(Self::Trial),
            3 => Ok(Self::TrialFail),
            t => Err(WireError::BadType(t)),
        }
    }
}

/// A parsed discovery message. Raw fields keep `emit(parse(x)) == x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiscRepr {
    /// Message type.
    pub mtype: DiscType,
    /// w1 bits 27-15: node capabilities.
    pub caps: u16,
    /// w1 bits 15-0: node signature (bit 15 equals `caps & 1`).
    pub signature: u16,
    /// w0 bit 20 (always 1 from a kernel).
    pub non_seq: bool,
    /// w2: destination domain (REQ), requester address (RESP), trial address (TRIAL_FAIL).
    pub dest_domain: u32,
    /// w3: sender address (trial address during a trial).
    pub prevnode: u32,
    /// w4: network id.
    pub net_id: u32,
    /// w5..w12: the sender's media address, raw.
    pub media_info: [u8; MEDIA_INFO_SIZE],
    /// w13: peer net hash.
    pub net_hash: u32,
    /// w14: suggested address (TRIAL_FAIL).
    pub suggested: u32,
    /// Bytes 60..76: node identity (meaningful if `caps` has NODE_ID128).
    pub node_id: [u8; NODE_ID_LEN],
}

impl DiscRepr {
    /// Parse a checked header whose user is LINK_CONFIG.
    pub fn parse<T: AsRef<[u8]>>(h: &Header<T>) -> Result<Self, WireError> {
        if h.user() != user::LINK_CONFIG {
            return Err(WireError::BadUser(h.user()));
        }
        if h.header_len() != MAX_H_SIZE {
            return Err(WireError::BadHeaderSize(h.header_len()));
        }
        let b = h.as_bytes();
        let mut media_info = [0u8; MEDIA_INFO_SIZE];
        media_info.copy_from_slice(b.get(20..52).ok_or(WireError::Truncated)?);
        let mut node_id = [0u8; NODE_ID_LEN];
        // Older peers send a 60-byte message without the identity.
        if h.size() >= DISC_MSG_SIZE {
            node_id.copy_from_slice(b.get(60..76).ok_or(WireError::Truncated)?);
        }
        Ok(DiscRepr {
            mtype: DiscType::from_u8(h.mtype())?,
            caps: h.get(field::CAPABILITIES) as u16,
            signature: h.get(field::SIGNATURE) as u16,
            non_seq: h.non_seq(),
            dest_domain: h.get(field::DEST_DOMAIN),
            prevnode: h.prevnode(),
            net_id: h.get(field::NET_ID),
            media_info,
            net_hash: h.get(field::PEER_NET_HASH),
            suggested: h.get(field::SUGGESTED_ADDR),
            node_id,
        })
    }

    /// The sender's media address.
    pub fn media_addr(&self) -> Result<MediaAddr, WireError> {
        MediaAddr::from_media_info(&self.media_info)
    }

    /// Bytes needed to emit.
    pub fn buffer_len(&self) -> usize {
        DISC_MSG_SIZE
    }

    /// Emit into `buf` (at least 76 bytes). Returns the length.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let buf = &mut buf[..DISC_MSG_SIZE];
        let mut h = Header::new_unchecked(&mut *buf);
        h.init(
            user::LINK_CONFIG,
            self.mtype as u8,
            MAX_H_SIZE,
            DISC_MSG_SIZE,
            self.prevnode,
        );
        h.set_flag(field::NON_SEQ, self.non_seq);
        // The kernel writes the signature first, then the capabilities (shared bit 15).
        h.set(field::SIGNATURE, self.signature as u32);
        h.set(field::CAPABILITIES, self.caps as u32);
        h.set(field::DEST_DOMAIN, self.dest_domain);
        h.set(field::NET_ID, self.net_id);
        h.set(field::PEER_NET_HASH, self.net_hash);
        h.set(field::SUGGESTED_ADDR, self.suggested);
        buf[20..52].copy_from_slice(&self.media_info);
        buf[60..76].copy_from_slice(&self.node_id);
        DISC_MSG_SIZE
    }
}
