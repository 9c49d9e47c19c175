//! Key material and key settings (uapi `struct tipc_aead_key`, `crypto.c:
//! tipc_aead_key_validate`, iproute2 `tipc/misc.c: str2key, str2nodeid` and `tipc/node.c:
//! cmd_node_set_key`), spec tipc-crypto.md §15.3 and §15.9.
//!
//! A [`Key`] is an AES key (16, 24 or 32 bytes) followed by a 4-byte salt: 20, 28 or 36 bytes in
//! all. Anything else is refused. Key bytes are zeroized when a [`Key`] is dropped, and never
//! printed by `Debug`.

use super::error::KeyError;
use crate::addr::{NodeId, NODE_ID_LEN};
use rand_core::RngCore;
use zeroize::Zeroize;

/// Salt length (`TIPC_AES_GCM_SALT_SIZE`).
pub const SALT_SIZE: usize = 4;
/// Shortest key material: AES-128 plus salt (`TIPC_AEAD_KEYLEN_MIN`).
pub const KEYLEN_MIN: usize = 20;
/// Longest key material: AES-256 plus salt (`TIPC_AEAD_KEYLEN_MAX`).
pub const KEYLEN_MAX: usize = 36;
/// The only algorithm name the kernel accepts.
pub const ALG_NAME: &str = "gcm(aes)";
/// Length of the zero-padded `alg_name` field (`TIPC_AEAD_ALG_NAME`).
pub const ALG_NAME_LEN: usize = 32;

/// Is `len` a valid key-material length (20, 28 or 36)?
pub fn valid_keylen(len: usize) -> bool {
    matches!(len, 20 | 28 | 36)
}

/// AES-GCM key material: AES key followed by the 4-byte salt. Zeroized on drop; compared
/// without data-dependent branches.
#[derive(Clone)]
pub struct Key {
    bytes: [u8; KEYLEN_MAX],
    len: u8,
}

impl Key {
    /// Key material from raw bytes; the length must be 20, 28 or 36.
    pub fn from_bytes(b: &[u8]) -> Result<Key, KeyError> {
        if !valid_keylen(b.len()) {
            return Err(KeyError::BadLength(b.len()));
        }
        let mut bytes = [0u8; KEYLEN_MAX];
        bytes[..b.len()].copy_from_slice(b);
        Ok(Key {
            bytes,
            len: b.len() as u8,
        })
    }

    /// Parse a key as `tipc node set key KEY` takes it (iproute2 `str2key`): `0x` followed by
    /// hex digits (an odd count makes the first digit a byte of its own), otherwise the text's
    /// bytes. The result must be 20, 28 or 36 bytes long, the last 4 being the salt.
    ///
    /// `Key::parse("this_is_a_key16_salt")` and
    /// `Key::parse("0x746869735F69735F615F6B657931365F73616C74")` give the same key.
    pub fn parse(s: &str) -> Result<Key, KeyError> {
        if s.is_empty() {
            return Err(KeyError::BadSyntax("empty key"));
        }
        let hex = s
            .strip_prefix("0x")
            .filter(|h| !h.is_empty() && h.bytes().all(|c| c.is_ascii_hexdigit()));
        let Some(h) = hex else {
            return Key::from_bytes(s.as_bytes());
        };
        let n = h.len().div_ceil(2);
        if !valid_keylen(n) {
            return Err(KeyError::BadLength(n));
        }
        let mut buf = [0u8; KEYLEN_MAX];
        let digits = h.as_bytes();
        // An odd count: the first digit alone is byte 0.
        let odd = digits.len() % 2;
        if odd == 1 {
            buf[0] = nibble(digits[0]);
        }
        for (o, pair) in buf[odd..n].iter_mut().zip(digits[odd..].chunks_exact(2)) {
            *o = nibble(pair[0]) << 4 | nibble(pair[1]);
        }
        let k = Key::from_bytes(&buf[..n]);
        buf.zeroize();
        k
    }

    /// A fresh random key of `len` bytes (20, 28 or 36), salt included (the kernel's
    /// `tipc_aead_key_generate` for rekeying).
    pub fn random(rng: &mut dyn RngCore, len: usize) -> Result<Key, KeyError> {
        if !valid_keylen(len) {
            return Err(KeyError::BadLength(len));
        }
        let mut bytes = [0u8; KEYLEN_MAX];
        rng.fill_bytes(&mut bytes[..len]);
        Ok(Key {
            bytes,
            len: len as u8,
        })
    }

    /// Length of the key material (20, 28 or 36).
    #[allow(clippy::len_without_is_empty)] // never empty by construction
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// The AES key (all but the last 4 bytes). Secret: do not log.
    pub fn aes_key(&self) -> &[u8] {
        &self.bytes[..self.len() - SALT_SIZE]
    }

    /// The 4-byte salt (the last 4 bytes).
    pub fn salt(&self) -> [u8; SALT_SIZE] {
        let l = self.len();
        let mut s = [0u8; SALT_SIZE];
        s.copy_from_slice(&self.bytes[l - SALT_SIZE..l]);
        s
    }

    /// The whole material (AES key then salt), as carried in a KEY_DISTR message. Secret.
    pub fn material(&self) -> &[u8] {
        &self.bytes[..self.len()]
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        let diff = self
            .bytes
            .iter()
            .zip(other.bytes.iter())
            .fold(self.len ^ other.len, |acc, (a, b)| acc | (a ^ b));
        diff == 0
    }
}

impl Eq for Key {}

impl Drop for Key {
    fn drop(&mut self) {
        self.bytes.zeroize();
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

fn nibble(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        b'A'..=b'F' => c - b'A' + 10,
        _ => 0,
    }
}

/// How a key is used (`CLUSTER_KEY` = 1, `PER_NODE_KEY` = 2): it selects the IV rule (§15.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyMode {
    /// One key for the whole cluster (also the master key): IV uses the ehdr address.
    Cluster = 1,
    /// A node's own TX key (configured per node, or made by rekeying): IV uses the destination
    /// address (D=1) or the plain salt (D=0).
    PerNode = 2,
}

impl KeyMode {
    /// Decode the wire value (1 or 2).
    pub fn from_u8(v: u8) -> Option<KeyMode> {
        match v {
            1 => Some(KeyMode::Cluster),
            2 => Some(KeyMode::PerNode),
            _ => None,
        }
    }
}

/// Where `tipc node set key` puts a key (§15.4 "Where keys come from").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyTarget {
    /// Own TX, next slot, cluster mode (no `nodeid`, no `master`).
    Cluster,
    /// Own TX slot 0, cluster mode (`master`).
    Master,
    /// `nodeid ID`: own TX in per-node mode if ID is our identity, else that peer's RX.
    Node(NodeId),
}

/// The rekeying option of `tipc node set key` (`TIPC_NLA_NODE_REKEYING`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rekeying {
    /// `rekeying now` (`TIPC_REKEYING_NOW`).
    Now,
    /// `rekeying N`: every N minutes; 0 disables.
    Minutes(u32),
}

/// One `tipc node set key ...` command line, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySetting {
    /// The key; `None` for `tipc node set key rekeying N` alone.
    pub key: Option<Key>,
    /// Where the key goes.
    pub target: KeyTarget,
    /// A rekeying change, if given.
    pub rekeying: Option<Rekeying>,
}

impl KeySetting {
    /// Parse the arguments after `tipc node set key`: `KEY [algname ALG] [nodeid ID] [master]
    /// [rekeying N|now]`, or `rekeying N|now` alone. `algname` must be `gcm(aes)`; `nodeid` and
    /// `master` together are refused, as the tool does.
    pub fn parse(args: &[&str]) -> Result<KeySetting, KeyError> {
        let mut it = args.iter().copied().peekable();
        let mut key = None;
        if it.peek() != Some(&"rekeying") {
            let k = it.next().ok_or(KeyError::BadSyntax("missing key"))?;
            key = Some(Key::parse(k)?);
        }
        let (mut node, mut master, mut rekeying) = (None, false, None);
        while let Some(a) = it.next() {
            match a {
                "algname" => {
                    let v = it
                        .next()
                        .ok_or(KeyError::BadSyntax("algname needs a value"))?;
                    if v != ALG_NAME {
                        return Err(KeyError::BadAlgorithm(v.to_string()));
                    }
                }
                "nodeid" => {
                    let v = it
                        .next()
                        .ok_or(KeyError::BadSyntax("nodeid needs a value"))?;
                    node = Some(parse_node_id(v)?);
                }
                "master" => master = true,
                "rekeying" => {
                    let v = it
                        .next()
                        .ok_or(KeyError::BadSyntax("rekeying needs a value"))?;
                    rekeying = Some(if v == "now" {
                        Rekeying::Now
                    } else {
                        Rekeying::Minutes(
                            v.parse()
                                .map_err(|_| KeyError::BadSyntax("rekeying: minutes or now"))?,
                        )
                    });
                }
                _ => return Err(KeyError::BadSyntax("unknown option")),
            }
        }
        let target = match (node, master) {
            (Some(_), true) => return Err(KeyError::BadSyntax("nodeid and master together")),
            (Some(id), false) => KeyTarget::Node(id),
            (None, true) => KeyTarget::Master,
            (None, false) => KeyTarget::Cluster,
        };
        if key.is_none() && (rekeying.is_none() || target != KeyTarget::Cluster) {
            return Err(KeyError::BadSyntax("missing key"));
        }
        Ok(KeySetting {
            key,
            target,
            rekeying,
        })
    }
}

/// Parse a node identity as `tipc ... nodeid ID` takes it (iproute2 `str2nodeid`): up to 16
/// characters of `[0-9A-Za-z._:@-]` are the identity itself (zero padded); otherwise up to 32 hex
/// digits, two per byte from the left.
pub fn parse_node_id(s: &str) -> Result<NodeId, KeyError> {
    let b = s.as_bytes();
    let text_ok =
        |c: &u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'@' | b'-');
    let mut id = [0u8; NODE_ID_LEN];
    if !b.is_empty() && b.len() <= NODE_ID_LEN && b.iter().all(text_ok) {
        id[..b.len()].copy_from_slice(b);
        return Ok(NodeId(id));
    }
    if b.is_empty() || b.len() > 2 * NODE_ID_LEN || !b.iter().all(u8::is_ascii_hexdigit) {
        return Err(KeyError::BadNodeId(s.to_string()));
    }
    for (i, pair) in b.chunks(2).enumerate() {
        id[i] = pair.iter().fold(0u8, |acc, &c| acc << 4 | nibble(c));
    }
    Ok(NodeId(id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_parse_accepts_hex_and_text_forms_equally() {
        let a = Key::parse("0x746869735F69735F615F6B657931365F73616C74").unwrap();
        let b = Key::parse("this_is_a_key16_salt").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.aes_key(), b"this_is_a_key16_");
        assert_eq!(a.salt(), *b"salt");
        assert_eq!(a.len(), 20);
    }

    #[test]
    fn key_parse_accepts_every_aes_size() {
        for n in [20usize, 28, 36] {
            let text: String = "k".repeat(n);
            assert_eq!(Key::parse(&text).unwrap().len(), n);
            let hex = format!("0x{}", "ab".repeat(n));
            let k = Key::parse(&hex).unwrap();
            assert!(k.material().iter().all(|&b| b == 0xab));
            assert_eq!(k.aes_key().len(), n - 4);
        }
    }

    #[test]
    fn key_parse_odd_hex_makes_first_nibble_a_byte() {
        // 39 digits: "1" then 19 pairs -> 20 bytes.
        let s = format!("0x1{}", "23".repeat(19));
        let k = Key::parse(&s).unwrap();
        assert_eq!(k.material()[0], 0x01);
        assert!(k.material()[1..].iter().all(|&b| b == 0x23));
    }

    #[test]
    fn key_parse_refuses_bad_lengths() {
        for bad in ["", "short", "this_is_a_key16_sal", "this_is_a_key16_salt!"] {
            assert!(Key::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Key::parse(&"x".repeat(37)), Err(KeyError::BadLength(37)));
        assert_eq!(Key::parse(&"x".repeat(72)), Err(KeyError::BadLength(72)));
        assert_eq!(Key::parse("0x00"), Err(KeyError::BadLength(1)));
        assert_eq!(
            Key::parse(&format!("0x{}", "00".repeat(24))),
            Err(KeyError::BadLength(24))
        );
    }

    #[test]
    fn key_parse_non_hex_after_0x_is_text() {
        // "0x" + 18 non-hex characters: 20 bytes of text.
        let s = format!("0x{}", "g".repeat(18));
        let k = Key::parse(&s).unwrap();
        assert_eq!(k.material(), s.as_bytes());
    }

    #[test]
    fn key_from_bytes_refuses_lengths_the_kernel_rejects() {
        for n in 0..=80 {
            assert_eq!(
                Key::from_bytes(&vec![0u8; n]).is_ok(),
                valid_keylen(n),
                "{n}"
            );
        }
    }

    #[test]
    fn key_debug_hides_material() {
        let k = Key::parse("this_is_a_key16_salt").unwrap();
        let s = format!("{k:?}");
        assert!(!s.contains("this") && !s.contains("116"), "{s}");
    }

    #[test]
    fn key_setting_parses_tipc_tool_forms() {
        let s = KeySetting::parse(&["this_is_a_key16_salt", "algname", "gcm(aes)"]).unwrap();
        assert_eq!(s.target, KeyTarget::Cluster);
        let s = KeySetting::parse(&["this_is_a_master_key", "master"]).unwrap();
        assert_eq!(s.target, KeyTarget::Master);
        let s = KeySetting::parse(&["this_is_a_key16_salt", "nodeid", "b"]).unwrap();
        assert_eq!(s.target, KeyTarget::Node(NodeId::from_str_id("b").unwrap()));
        let s = KeySetting::parse(&["rekeying", "0"]).unwrap();
        assert_eq!((s.key, s.rekeying), (None, Some(Rekeying::Minutes(0))));
        let s = KeySetting::parse(&["this_is_a_key16_salt", "rekeying", "now"]).unwrap();
        assert_eq!(s.rekeying, Some(Rekeying::Now));
    }

    #[test]
    fn key_setting_refuses_what_the_tool_refuses() {
        let k = "this_is_a_key16_salt";
        assert!(KeySetting::parse(&[]).is_err());
        assert!(KeySetting::parse(&[k, "nodeid", "b", "master"]).is_err());
        assert!(KeySetting::parse(&[k, "algname", "ccm(aes)"]).is_err());
        assert!(KeySetting::parse(&[k, "algname"]).is_err());
        assert!(KeySetting::parse(&[k, "bogus"]).is_err());
        assert!(KeySetting::parse(&["rekeying", "soon"]).is_err());
        assert!(KeySetting::parse(&["rekeying", "0", "master"]).is_err());
    }

    #[test]
    fn node_id_parses_text_and_hex() {
        assert_eq!(
            parse_node_id("ca").unwrap(),
            NodeId::from_str_id("ca").unwrap()
        );
        let id = parse_node_id("0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(id.0[0], 0x01);
        assert_eq!(id.0[15], 0xef);
        assert!(parse_node_id("").is_err());
        assert!(parse_node_id("not hex and too long!").is_err());
        assert!(parse_node_id(&"a".repeat(33)).is_err());
    }
}
