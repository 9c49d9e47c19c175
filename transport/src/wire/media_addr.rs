//! Media addresses and their 32-byte on-wire form in discovery messages
//! (kernel `udp_media.c: tipc_udp_addr2msg/msg2addr`, `eth_media.c`), spec §3.2.

use super::WireError;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Size of the media-info field in a discovery message (w5..w12).
pub const MEDIA_INFO_SIZE: usize = 32;
/// Media type byte for Ethernet.
pub const MEDIA_TYPE_ETH: u8 = 1;
/// Media type byte for UDP.
pub const MEDIA_TYPE_UDP: u8 = 3;
/// Media type byte for the in-memory test media (never seen by a kernel).
pub const MEDIA_TYPE_MEM: u8 = 0x7E;

/// Where a bearer sends a frame: the address of a peer's bearer on one media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MediaAddr {
    /// An Ethernet MAC address.
    Eth([u8; 6]),
    /// A UDP/IP socket address (IPv4 or IPv6).
    Udp(SocketAddr),
    /// An in-memory endpoint id (tests and simulation).
    Mem(u32),
}

impl MediaAddr {
    /// Is this a broadcast or multicast address (rejected in discovery, §3.2)?
    pub fn is_broadcast(&self) -> bool {
        match self {
            MediaAddr::Eth(m) => m[0] & 1 == 1,
            MediaAddr::Udp(sa) => {
                sa.ip().is_multicast() || sa.ip() == IpAddr::V4(Ipv4Addr::BROADCAST)
            }
            MediaAddr::Mem(id) => *id == u32::MAX,
        }
    }

    /// Is `other` the same endpoint? The media address written in a discovery message and the
    /// source address of a received frame are compared this way: UDP by IP and port only (an
    /// IPv6 source carries a flow label and a scope id the media-info field has not; an
    /// IPv4-mapped IPv6 address is its IPv4 address), the others exactly.
    pub fn same_endpoint(&self, other: &MediaAddr) -> bool {
        match (self, other) {
            (MediaAddr::Udp(a), MediaAddr::Udp(b)) => {
                let ip = |sa: &SocketAddr| match sa.ip() {
                    IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
                    v4 => v4,
                };
                a.port() == b.port() && ip(a) == ip(b)
            }
            (a, b) => a == b,
        }
    }

    /// Encode into the 32-byte media-info field (zero-filled).
    pub fn to_media_info(&self) -> [u8; MEDIA_INFO_SIZE] {
        let mut b = [0u8; MEDIA_INFO_SIZE];
        match self {
            MediaAddr::Eth(mac) => {
                b[3] = MEDIA_TYPE_ETH;
                b[4..10].copy_from_slice(mac);
            }
            MediaAddr::Udp(sa) => {
                b[3] = MEDIA_TYPE_UDP;
                match sa.ip() {
                    IpAddr::V4(ip) => {
                        b[4..6].copy_from_slice(&0x0800u16.to_be_bytes());
                        b[8..12].copy_from_slice(&ip.octets());
                    }
                    IpAddr::V6(ip) => {
                        b[4..6].copy_from_slice(&0x86DDu16.to_be_bytes());
                        b[8..24].copy_from_slice(&ip.octets());
                    }
                }
                b[6..8].copy_from_slice(&sa.port().to_be_bytes());
            }
            MediaAddr::Mem(id) => {
                b[3] = MEDIA_TYPE_MEM;
                b[4..8].copy_from_slice(&id.to_be_bytes());
            }
        }
        b
    }

    /// Decode the 32-byte media-info field. Fails on a short field, an unknown media type or an
    /// unknown UDP protocol.
    pub fn from_media_info(b: &[u8]) -> Result<MediaAddr, WireError> {
        if b.len() < MEDIA_INFO_SIZE {
            return Err(WireError::BadMediaAddr);
        }
        match b[3] {
            MEDIA_TYPE_ETH => {
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&b[4..10]);
                Ok(MediaAddr::Eth(mac))
            }
            MEDIA_TYPE_UDP => {
                let proto = u16::from_be_bytes([b[4], b[5]]);
                let port = u16::from_be_bytes([b[6], b[7]]);
                let ip = match proto {
                    0x0800 => IpAddr::V4(Ipv4Addr::new(b[8], b[9], b[10], b[11])),
                    0x86DD => {
                        let mut o = [0u8; 16];
                        o.copy_from_slice(&b[8..24]);
                        IpAddr::V6(Ipv6Addr::from(o))
                    }
                    _ => return Err(WireError::BadMediaAddr),
                };
                Ok(MediaAddr::Udp(SocketAddr::new(ip, port)))
            }
            MEDIA_TYPE_MEM => Ok(MediaAddr::Mem(u32::from_be_bytes([b[4], b[5], b[6], b[7]]))),
            _ => Err(WireError::BadMediaAddr),
        }
    }
}

impl std::fmt::Display for MediaAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MediaAddr::Eth(m) => write!(
                f,
                "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                m[0], m[1], m[2], m[3], m[4], m[5]
            ),
            MediaAddr::Udp(sa) => write!(f, "{sa}"),
            MediaAddr::Mem(id) => write!(f, "mem:{id}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_endpoint_udp_ignores_scope_flow_and_v4_mapping() {
        let v6: SocketAddr = "[fe80::1%3]:6118".parse().unwrap();
        let v6_plain: SocketAddr = "[fe80::1]:6118".parse().unwrap();
        assert!(MediaAddr::Udp(v6).same_endpoint(&MediaAddr::Udp(v6_plain)));
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:6118".parse().unwrap();
        let v4: SocketAddr = "10.0.0.1:6118".parse().unwrap();
        assert!(MediaAddr::Udp(mapped).same_endpoint(&MediaAddr::Udp(v4)));
        let other_port: SocketAddr = "10.0.0.1:6119".parse().unwrap();
        assert!(!MediaAddr::Udp(v4).same_endpoint(&MediaAddr::Udp(other_port)));
        assert!(!MediaAddr::Mem(1).same_endpoint(&MediaAddr::Mem(2)));
        assert!(MediaAddr::Eth([2; 6]).same_endpoint(&MediaAddr::Eth([2; 6])));
    }
}
