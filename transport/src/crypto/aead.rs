//! The AEAD construction (kernel `crypto.c: tipc_aead_init, tipc_aead_encrypt,
//! tipc_aead_decrypt`), spec tipc-crypto.md §15.3.
//!
//! AES-GCM (RustCrypto `aes-gcm`) with a 16-byte tag. The 12-byte IV is
//! `salt XOR X ‖ seqno` where X depends on the key's mode (x86_64 kernel byte order):
//! * cluster (and master) keys: the ehdr's bytes 12-15 reversed;
//! * per-node keys: the destination address (sender) or own address (receiver) in
//!   little-endian order when D=1, zero when D=0.
//!
//! The associated data is the ehdr as sent (16 or 28 bytes); the plaintext is the whole TIPC
//! packet padded with zeros to a multiple of 4. Tags are verified in constant time by the crate;
//! cipher state and key bytes are zeroized on drop.

use super::ehdr::{Ehdr, EhdrRepr, TAG_SIZE};
use super::error::{CryptoDrop, KeyError};
use super::key::{Key, KeyMode, SALT_SIZE};
use crate::addr::NodeAddr;
use aes_gcm::aead::consts::U12;
use aes_gcm::aes::{Aes128, Aes192, Aes256};
use aes_gcm::{AeadInOut, AesGcm, KeyInit, Nonce, Tag};
use bytes::BytesMut;
use zeroize::Zeroize;

/// IV length (`TIPC_AES_GCM_IV_SIZE`).
pub const IV_SIZE: usize = 12;

enum Cipher {
    A128(AesGcm<Aes128, U12>),
    A192(AesGcm<Aes192, U12>),
    A256(AesGcm<Aes256, U12>),
}

impl Cipher {
    fn new(aes_key: &[u8]) -> Result<Cipher, KeyError> {
        let bad = |_| KeyError::BadLength(aes_key.len() + SALT_SIZE);
        Ok(match aes_key.len() {
            16 => Cipher::A128(AesGcm::new_from_slice(aes_key).map_err(bad)?),
            24 => Cipher::A192(AesGcm::new_from_slice(aes_key).map_err(bad)?),
            32 => Cipher::A256(AesGcm::new_from_slice(aes_key).map_err(bad)?),
            n => return Err(KeyError::BadLength(n + SALT_SIZE)),
        })
    }

    fn seal(&self, iv: &[u8; IV_SIZE], aad: &[u8], buf: &mut [u8]) -> Option<[u8; TAG_SIZE]> {
        let nonce = Nonce::<U12>::from(*iv);
        let tag = match self {
            Cipher::A128(c) => c.encrypt_inout_detached(&nonce, aad, buf.into()),
            Cipher::A192(c) => c.encrypt_inout_detached(&nonce, aad, buf.into()),
            Cipher::A256(c) => c.encrypt_inout_detached(&nonce, aad, buf.into()),
        }
        .ok()?;
        let mut out = [0u8; TAG_SIZE];
        out.copy_from_slice(tag.as_slice());
        Some(out)
    }

    fn open(&self, iv: &[u8; IV_SIZE], aad: &[u8], buf: &mut [u8], tag: &[u8]) -> bool {
        let nonce = Nonce::<U12>::from(*iv);
        let Ok(tag) = Tag::try_from(tag) else {
            return false;
        };
        match self {
            Cipher::A128(c) => c.decrypt_inout_detached(&nonce, aad, buf.into(), &tag),
            Cipher::A192(c) => c.decrypt_inout_detached(&nonce, aad, buf.into(), &tag),
            Cipher::A256(c) => c.decrypt_inout_detached(&nonce, aad, buf.into(), &tag),
        }
        .is_ok()
    }
}

/// One key ready to encrypt and decrypt: the cipher, its salt, its mode and the material it came
/// from (kept for key distribution). The kernel's `struct tipc_aead` without the counters.
pub struct Aead {
    cipher: Cipher,
    salt: [u8; SALT_SIZE],
    mode: KeyMode,
    key: Key,
}

impl Drop for Aead {
    fn drop(&mut self) {
        self.salt.zeroize();
    }
}

impl std::fmt::Debug for Aead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aead")
            .field("mode", &self.mode)
            .field("keylen", &self.key.len())
            .finish_non_exhaustive()
    }
}

/// Bytes of an envelope for an inner packet of `inner_len` bytes: `ehsz + align4(len) + 16`.
pub fn envelope_len(ehdr_len: usize, inner_len: usize) -> usize {
    ehdr_len + inner_len.next_multiple_of(4) + TAG_SIZE
}

impl Aead {
    /// Build the cipher for `key` in `mode`.
    pub fn new(key: Key, mode: KeyMode) -> Result<Aead, KeyError> {
        Ok(Aead {
            cipher: Cipher::new(key.aes_key())?,
            salt: key.salt(),
            mode,
            key,
        })
    }

    /// The key's mode (selects the IV rule).
    pub fn mode(&self) -> KeyMode {
        self.mode
    }

    /// The key material (for KEY_DISTR and as a rekeying template). Secret.
    pub fn key(&self) -> &Key {
        &self.key
    }

    /// A copy of this key in another mode (the kernel's `tipc_aead_clone`, used to clone a TX
    /// cluster key into a peer's RX slots).
    pub fn clone_key(&self) -> Result<Aead, KeyError> {
        Aead::new(self.key.clone(), self.mode)
    }

    /// The IV for the envelope whose header is `ehdr` (at least 16 bytes are read; missing bytes
    /// count as 0). `node` is the destination address when sealing and our own address when
    /// opening; it matters only for per-node keys with D=1.
    pub fn iv(&self, ehdr: &[u8], node: NodeAddr) -> [u8; IV_SIZE] {
        let e = Ehdr::new_unchecked(ehdr);
        let x: [u8; 4] = match self.mode {
            KeyMode::Cluster => e.addr().to_le_bytes(),
            KeyMode::PerNode if e.destined() => node.to_le_bytes(),
            KeyMode::PerNode => [0; 4],
        };
        let mut iv = [0u8; IV_SIZE];
        for i in 0..SALT_SIZE {
            iv[i] = self.salt[i] ^ x[i];
        }
        iv[4..12].copy_from_slice(&e.seqno().to_be_bytes());
        iv
    }

    /// Seal `inner` (a whole TIPC v2 packet) under the header `ehdr`: returns
    /// `ehdr | ciphertext of inner and 0-3 zero pad bytes | tag`. `dest` is the destination
    /// address (used by per-node keys when `ehdr.destined`). Fails only if the packet exceeds
    /// GCM's limits ([`CryptoDrop::BadOutgoing`]).
    pub fn seal(
        &self,
        ehdr: &EhdrRepr,
        dest: NodeAddr,
        inner: &[u8],
    ) -> Result<BytesMut, CryptoDrop> {
        let ehsz = ehdr.buffer_len();
        let total = envelope_len(ehsz, inner.len());
        let mut buf = BytesMut::zeroed(total);
        ehdr.emit(&mut buf[..ehsz]);
        buf[ehsz..ehsz + inner.len()].copy_from_slice(inner);
        let iv = self.iv(&buf[..ehsz], dest);
        let (aad, rest) = buf.split_at_mut(ehsz);
        let body = total - ehsz - TAG_SIZE;
        let (body, tag_out) = rest.split_at_mut(body);
        let tag = self
            .cipher
            .seal(&iv, aad, body)
            .ok_or(CryptoDrop::BadOutgoing)?;
        tag_out.copy_from_slice(&tag);
        Ok(buf)
    }

    /// Open an envelope: verify the tag over the header and ciphertext, and return the
    /// decrypted bytes (the inner packet followed by its 0-3 pad bytes). `own` is our own
    /// address (per-node keys with D=1). Errors: [`CryptoDrop::NotEnvelope`] or
    /// [`CryptoDrop::BadHeader`] for a malformed envelope, [`CryptoDrop::DecryptFailed`] when
    /// the tag does not verify.
    pub fn open(&self, envelope: &[u8], own: NodeAddr) -> Result<BytesMut, CryptoDrop> {
        let e = Ehdr::new_checked(envelope)?;
        let ehsz = e.header_len();
        let aad = e.header();
        let payload = e.payload();
        let body_len = payload.len() - TAG_SIZE;
        let (ct, tag) = payload.split_at(body_len);
        let iv = self.iv(aad, own);
        let mut buf = BytesMut::from(ct);
        if self.cipher.open(&iv, &aad[..ehsz], &mut buf, tag) {
            Ok(buf)
        } else {
            Err(CryptoDrop::DecryptFailed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::ehdr::EhdrOrigin;

    fn aead(mode: KeyMode) -> Aead {
        Aead::new(Key::parse("this_is_a_key16_salt").unwrap(), mode).unwrap()
    }

    #[test]
    fn aead_iv_cluster_mode_matches_spec_example() {
        // §15.7: salt "salt" XOR reversed 0x63620000, then seqno 18.
        let mut ehdr = [0u8; 16];
        ehdr[0] = 0xef;
        ehdr[11] = 0x12;
        ehdr[12..16].copy_from_slice(&[0x63, 0x62, 0, 0]);
        let iv = aead(KeyMode::Cluster).iv(&ehdr, 0x1234_5678);
        assert_eq!(iv, [0x73, 0x61, 0x0e, 0x17, 0, 0, 0, 0, 0, 0, 0, 0x12]);
    }

    #[test]
    fn aead_iv_per_node_mode_uses_destination_only_when_destined() {
        let mut ehdr = [0u8; 16];
        ehdr[0] = 0xe1; // D=1
        ehdr[12..16].copy_from_slice(&[0xff; 4]);
        let a = aead(KeyMode::PerNode);
        assert_eq!(a.iv(&ehdr, 0x6362_0000)[..4], [0x73, 0x61, 0x0e, 0x17]);
        ehdr[0] = 0xe0; // D=0: salt unchanged
        assert_eq!(a.iv(&ehdr, 0x6362_0000)[..4], *b"salt");
    }

    #[test]
    fn aead_seal_pads_to_four_and_appends_tag() {
        let a = aead(KeyMode::Cluster);
        let r = EhdrRepr {
            user: 0,
            destined: true,
            tx_key: 1,
            rx_key_active: 1,
            keepalive: false,
            master_key: false,
            rx_nokey: false,
            seqno: 5,
            origin: EhdrOrigin::Addr(1),
        };
        for (inner, wire) in [(45usize, 80usize), (47, 80), (44, 76), (48, 80)] {
            let env = a.seal(&r, 2, &vec![7u8; inner]).unwrap();
            assert_eq!(env.len(), wire, "inner {inner}");
            let plain = a.open(&env, 2).unwrap();
            assert_eq!(&plain[..inner], &vec![7u8; inner][..]);
            assert!(plain[inner..].iter().all(|&b| b == 0));
        }
    }
}
