//! # tipc-transport
//!
//! The lower half of a userspace TIPC node that speaks the Linux kernel's wire format:
//!
//! * [`wire`]: header views and message reprs (kernel `msg.h`/`msg.c`);
//! * [`media`]: UDP (quinn-udp), Ethernet (pnet_datalink), in-memory and fault-injecting media
//!   (kernel `udp_media.c`, `eth_media.c`, `bearer.c`);
//! * sans-IO protocol cores: [`discovery`] (`discover.c`), [`link`] (`link.c`), [`peer`]
//!   (`node.c`, one per remote node, owning its links), [`bcast`] (`bcast.c`: the node's
//!   broadcast send link, fed by the peers' broadcast acks), [`crypto`] (`crypto.c`: the
//!   encryption envelope, keys and key exchange; spec `shared/spec/tipc-crypto.md`).
//!
//! The cores do no I/O and read no clock: time is passed in as an [`std::time::Instant`].
//! Spec references are to `shared/spec/tipc-protocol.md`.

pub mod addr;
pub mod bcast;
pub mod crypto;
pub mod discovery;
pub mod link;
pub mod media;
pub mod peer;
pub mod wire;

pub use addr::{NodeAddr, NodeId};
pub use wire::MediaAddr;

/// Identifies one of a node's bearers (0..[`MAX_BEARERS`]); the kernel's bearer id.
pub type BearerId = u8;

/// Maximum bearers per node (`MAX_BEARERS`).
pub const MAX_BEARERS: usize = 3;

/// Node capabilities we advertise (§6): SYN_BIT | BCAST_SYNCH | BCAST_STATE_NACK |
/// BLOCK_FLOWCTL | BCAST_RCAST | NODE_ID128 | LINK_PROTO_SEQNO | MCAST_RBCTL | GAP_ACK_BLOCK
/// | TUNNEL_ENHANCED | NAGLE.
pub const OWN_CAPABILITIES: u16 = 0x7FF;

/// Capability bits (§6, kernel `node.h`).
pub mod caps {
    /// Connection requests carry the SYN bit.
    pub const SYN_BIT: u16 = 0x001;
    /// Broadcast link synchronised by the bc-init message.
    pub const BCAST_SYNCH: u16 = 0x002;
    /// Broadcast NACK in STATE messages.
    pub const BCAST_STATE_NACK: u16 = 0x004;
    /// Block-based connection flow control.
    pub const BLOCK_FLOWCTL: u16 = 0x008;
    /// Replicast supported.
    pub const BCAST_RCAST: u16 = 0x010;
    /// 128-bit node identities in discovery.
    pub const NODE_ID128: u16 = 0x020;
    /// STATE messages carry their own sequence counter.
    pub const LINK_PROTO_SEQNO: u16 = 0x040;
    /// Multicast method switching with SYN pairs.
    pub const MCAST_RBCTL: u16 = 0x080;
    /// Gap-ack blocks in STATE messages.
    pub const GAP_ACK_BLOCK: u16 = 0x100;
    /// Enhanced tunnelling (fragmented failover, dummy synch).
    pub const TUNNEL_ENHANCED: u16 = 0x200;
    /// Nagle on stream connections.
    pub const NAGLE: u16 = 0x400;
    /// Name updates on the broadcast link.
    pub const NAMED_BCAST: u16 = 0x800;
}
