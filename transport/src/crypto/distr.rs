//! MSG_CRYPTO KEY_DISTR_MSG, the session-key distribution message (kernel `crypto.c:
//! tipc_crypto_key_xmit, tipc_crypto_key_rcv`, `crypto.h: msg_key_gen, msg_key_mode`), spec
//! tipc-crypto.md §15.5 and §15.8 item 5.
//!
//! ```text
//! 40-byte internal header: user 14, type 0, w3 prevnode, w4 key_gen(31-16) | mode(3-0),
//!                          w6 orignode, w7 destnode (0 on the broadcast link)
//! data 0..32   alg_name "gcm(aes)", NUL padded
//! data 32..36  keylen, big-endian
//! data 36..    key material (AES key ‖ salt)
//! ```
//!
//! Parsing applies every length check of CVE-2021-43267's fix before reading a length, and the
//! checks the kernel leaves out (algorithm name, key length, mode).

use super::error::KeyDistrError;
use super::key::{valid_keylen, Key, KeyMode, ALG_NAME, ALG_NAME_LEN, KEYLEN_MIN};
use crate::addr::NodeAddr;
use crate::wire::{user, Header, INT_H_SIZE};
use bytes::BytesMut;

/// MSG_CRYPTO message type of a key distribution (`KEY_DISTR_MSG`).
pub const KEY_DISTR_MSG: u8 = 0;
/// Fixed part of the data: `alg_name[32]` and `keylen`.
pub const KEY_DISTR_FIXED: usize = ALG_NAME_LEN + 4;

/// A parsed KEY_DISTR message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDistrRepr {
    /// w3: the sender.
    pub prevnode: NodeAddr,
    /// w6: the originating node.
    pub orignode: NodeAddr,
    /// w7: the destination (0 on the broadcast link).
    pub destnode: NodeAddr,
    /// w0 bit 20: sent on the broadcast link.
    pub non_seq: bool,
    /// w4 bits 31-16: the sender's key generation.
    pub key_gen: u16,
    /// w4 bits 3-0: how the receiver must use the key.
    pub mode: KeyMode,
    /// The key material.
    pub key: Key,
}

impl KeyDistrRepr {
    /// Parse a whole MSG_CRYPTO message (already decrypted by the caller). Every length is
    /// checked before it is used; the buffer may be longer than the message (pad bytes).
    pub fn parse(buf: &[u8]) -> Result<KeyDistrRepr, KeyDistrError> {
        let h = Header::new_checked(buf).map_err(|_| KeyDistrError::NotKeyDistr)?;
        if h.user() != user::MSG_CRYPTO
            || h.mtype() != KEY_DISTR_MSG
            || h.header_len() != INT_H_SIZE
        {
            return Err(KeyDistrError::NotKeyDistr);
        }
        // new_checked guarantees INT_H_SIZE <= size <= buf.len().
        let data = h.payload();
        if data.len() < KEY_DISTR_FIXED + KEYLEN_MIN {
            return Err(KeyDistrError::BadLength);
        }
        let (name, rest) = data.split_at(ALG_NAME_LEN);
        let keylen = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let material = &rest[4..];
        if material.len() != keylen {
            return Err(KeyDistrError::BadLength);
        }
        if !valid_keylen(keylen) {
            return Err(KeyDistrError::BadKeyLength);
        }
        let n = ALG_NAME.len();
        if &name[..n] != ALG_NAME.as_bytes() || name[n..].iter().any(|&c| c != 0) {
            return Err(KeyDistrError::BadAlgorithm);
        }
        let w4 = h.word(4);
        let mode = KeyMode::from_u8((w4 & 0xF) as u8).ok_or(KeyDistrError::BadMode)?;
        let key = Key::from_bytes(material).map_err(|_| KeyDistrError::BadKeyLength)?;
        Ok(KeyDistrRepr {
            prevnode: h.prevnode(),
            orignode: h.orignode(),
            destnode: h.destnode(),
            non_seq: h.non_seq(),
            key_gen: (w4 >> 16) as u16,
            mode,
            key,
        })
    }

    /// Bytes needed to emit: `40 + 36 + keylen`.
    pub fn buffer_len(&self) -> usize {
        INT_H_SIZE + KEY_DISTR_FIXED + self.key.len()
    }

    /// Emit into `buf` (at least [`KeyDistrRepr::buffer_len`] bytes). Link fields (ack, seqno,
    /// bcast_ack) and w5 are left 0 for the link to fill. Returns the length.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let len = self.buffer_len();
        let buf = &mut buf[..len];
        let mut h = Header::new_unchecked(&mut *buf);
        h.init(
            user::MSG_CRYPTO,
            KEY_DISTR_MSG,
            INT_H_SIZE,
            len,
            self.prevnode,
        );
        h.set_non_seq(self.non_seq);
        h.set_word(4, u32::from(self.key_gen) << 16 | self.mode as u32);
        h.set_orignode(self.orignode);
        h.set_destnode(self.destnode);
        let data = &mut buf[INT_H_SIZE..];
        data[..ALG_NAME_LEN].fill(0);
        data[..ALG_NAME.len()].copy_from_slice(ALG_NAME.as_bytes());
        data[ALG_NAME_LEN..KEY_DISTR_FIXED].copy_from_slice(&(self.key.len() as u32).to_be_bytes());
        data[KEY_DISTR_FIXED..].copy_from_slice(self.key.material());
        len
    }

    /// Emit into a new buffer.
    pub fn to_bytes(&self) -> BytesMut {
        let mut b = BytesMut::zeroed(self.buffer_len());
        self.emit(&mut b);
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len() / 2)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
            .collect()
    }

    /// The captured broadcast KEY_DISTR of §15.7 (plaintext, after decryption).
    fn captured() -> Vec<u8> {
        let mut b = hex(
            "5d500060 00000000 00000001 6d610000 31220001 00001267 6d610000 00000000
             00000000 00000000 67636d28 61657329",
        );
        b.extend_from_slice(&[0u8; 24]);
        b.extend_from_slice(&hex("00000014"));
        b.extend_from_slice(b"this_is_a_key16_salt");
        b
    }

    #[test]
    fn key_distr_parses_captured_broadcast_message() {
        let b = captured();
        assert_eq!(b.len(), 96);
        let r = KeyDistrRepr::parse(&b).unwrap();
        assert_eq!((r.key_gen, r.mode), (0x3122, KeyMode::Cluster));
        assert_eq!(
            (r.prevnode, r.orignode, r.destnode),
            (0x6d61_0000, 0x6d61_0000, 0)
        );
        assert!(r.non_seq);
        assert_eq!(r.key.material(), b"this_is_a_key16_salt");
        // Re-emitting gives the same bytes except the link fields w1, w2 and w5.
        let mut out = r.to_bytes();
        out[8..12].copy_from_slice(&b[8..12]);
        out[20..24].copy_from_slice(&b[20..24]);
        assert_eq!(&out[..], &b[..]);
    }

    #[test]
    fn key_distr_refuses_keylen_larger_than_message() {
        // CVE-2021-43267: keylen says 72 in a message carrying 20 bytes.
        let mut b = captured();
        b[72..76].copy_from_slice(&72u32.to_be_bytes());
        assert_eq!(KeyDistrRepr::parse(&b), Err(KeyDistrError::BadLength));
        b[72..76].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(KeyDistrRepr::parse(&b), Err(KeyDistrError::BadLength));
    }

    #[test]
    fn key_distr_refuses_bad_sizes_names_and_modes() {
        let good = captured();
        // Message size smaller than the fixed part.
        let mut b = good.clone();
        b[2..4].copy_from_slice(&60u16.to_be_bytes());
        assert_eq!(KeyDistrRepr::parse(&b), Err(KeyDistrError::BadLength));
        // A 24-byte key with a consistent size: refused (not 20/28/36).
        let mut b = good[..76].to_vec();
        b[72..76].copy_from_slice(&24u32.to_be_bytes());
        b.extend_from_slice(&[1u8; 24]);
        b[2..4].copy_from_slice(&(100u16).to_be_bytes());
        assert_eq!(KeyDistrRepr::parse(&b), Err(KeyDistrError::BadKeyLength));
        let mut b = good.clone();
        b[40..48].copy_from_slice(b"ccm(aes)");
        assert_eq!(KeyDistrRepr::parse(&b), Err(KeyDistrError::BadAlgorithm));
        let mut b = good.clone();
        b[60] = b'x'; // garbage after the NUL
        assert_eq!(KeyDistrRepr::parse(&b), Err(KeyDistrError::BadAlgorithm));
        let mut b = good.clone();
        b[19] = 3;
        assert_eq!(KeyDistrRepr::parse(&b), Err(KeyDistrError::BadMode));
        let mut b = good.clone();
        b[4] = 0x20; // type 1
        assert_eq!(KeyDistrRepr::parse(&b), Err(KeyDistrError::NotKeyDistr));
        assert_eq!(
            KeyDistrRepr::parse(&good[..95]),
            Err(KeyDistrError::NotKeyDistr)
        );
    }
}
