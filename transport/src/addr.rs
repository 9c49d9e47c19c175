//! Node identity and node address (kernel `addr.c`, `core.h: hash128to32`), spec §1.1.

use std::fmt;

/// Length of a node identity.
pub const NODE_ID_LEN: usize = 16;

/// The 32-bit on-wire node address (`prevnode`, `orignode`, `destnode`). 0 means "own/unknown".
pub type NodeAddr = u32;

/// A 16-byte node identity.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NodeId(pub [u8; NODE_ID_LEN]);

impl NodeId {
    /// Build an identity from text (at most 16 bytes, zero padded), as `tipc node set identity`.
    pub fn from_str_id(s: &str) -> Result<NodeId, AddrError> {
        let b = s.as_bytes();
        if b.is_empty() || b.len() > NODE_ID_LEN {
            return Err(AddrError::IdentityLength(b.len()));
        }
        let mut id = [0u8; NODE_ID_LEN];
        id[..b.len()].copy_from_slice(b);
        Ok(NodeId(id))
    }

    /// The node address the kernel derives: XOR of the four big-endian words; OR if that is 0.
    pub fn hash(&self) -> NodeAddr {
        let w =
            |i: usize| u32::from_be_bytes([self.0[i], self.0[i + 1], self.0[i + 2], self.0[i + 3]]);
        let x = w(0) ^ w(4) ^ w(8) ^ w(12);
        if x != 0 {
            x
        } else {
            w(0) | w(4) | w(8) | w(12)
        }
    }

    /// The identity as printed in link names (`tipc_nodeid2string`): text if every byte is in
    /// `[0-9A-Za-z.:_@-]` or NUL, otherwise lowercase hex with trailing '0's stripped.
    pub fn to_id_string(&self) -> String {
        let printable = self
            .0
            .iter()
            .all(|&c| c == 0 || c.is_ascii_alphanumeric() || b".:_@-".contains(&c));
        if printable {
            let end = self.0.iter().position(|&c| c == 0).unwrap_or(NODE_ID_LEN);
            // Bytes after the first NUL are ignored, as the kernel prints a C string.
            return String::from_utf8_lossy(&self.0[..end]).into_owned();
        }
        let mut s = String::with_capacity(32);
        for b in self.0 {
            s.push_str(&format!("{b:02x}"));
        }
        let t = s.trim_end_matches('0');
        if t.is_empty() {
            "0".into()
        } else {
            t.to_string()
        }
    }

    /// The identity the kernel uses for a peer without `TIPC_NODE_ID128`: the address as hex text.
    pub fn from_addr(addr: NodeAddr) -> NodeId {
        let s = format!("{addr:x}");
        let mut id = [0u8; NODE_ID_LEN];
        id[..s.len()].copy_from_slice(s.as_bytes());
        NodeId(id)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.to_id_string())
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_id_string())
    }
}

/// Errors building addresses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddrError {
    /// Identity must be 1..=16 bytes.
    #[error("node identity must be 1 to 16 bytes, got {0}")]
    IdentityLength(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_of_text_identity_matches_kernel_examples() {
        assert_eq!(NodeId::from_str_id("a").unwrap().hash(), 0x6100_0000);
        assert_eq!(NodeId::from_str_id("b").unwrap().hash(), 0x6200_0000);
    }

    #[test]
    fn hash_of_udp_identity_is_ipv4_address() {
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&[10, 0, 0, 1]);
        assert_eq!(NodeId(id).hash(), 0x0a00_0001);
    }

    #[test]
    fn id_string_prints_text_or_trimmed_hex() {
        assert_eq!(NodeId::from_str_id("host").unwrap().to_id_string(), "host");
        let mut id = [0u8; 16];
        id[..4].copy_from_slice(&[10, 0x63, 0, 0x0b]);
        assert_eq!(NodeId(id).to_id_string(), "0a63000b");
    }
}
