//! Addresses of the upper half (kernel uapi `linux/tipc.h`), spec §1.2.

use std::fmt;
use tipc_transport::NodeAddr;

/// A service address `{type, instance}` (an anycast name).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceAddr {
    /// Service type.
    pub type_: u32,
    /// Instance.
    pub instance: u32,
}

/// A service range `{type, lower, upper}` (multicast destination, binding range); `lower <= upper`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceRange {
    /// Service type.
    pub type_: u32,
    /// Lower bound.
    pub lower: u32,
    /// Upper bound.
    pub upper: u32,
}

impl ServiceRange {
    /// Does this range overlap `[lower, upper]` (`max(lowers) <= min(uppers)`)?
    pub fn overlaps(&self, lower: u32, upper: u32) -> bool {
        self.lower.max(lower) <= self.upper.min(upper)
    }
    /// Does this range contain `instance`?
    pub fn contains(&self, instance: u32) -> bool {
        self.lower <= instance && instance <= self.upper
    }
}

/// A socket address `{node, port}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SocketAddr {
    /// Node address.
    pub node: NodeAddr,
    /// Port number.
    pub port: u32,
}

impl fmt::Display for SocketAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}:{}", self.node, self.port)
    }
}

/// Binding scope (`TIPC_CLUSTER_SCOPE` = 2, `TIPC_NODE_SCOPE` = 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Distributed to the cluster.
    Cluster = 2,
    /// This node only.
    Node = 3,
}

/// Service types below this are reserved: bind and group join fail (`EACCES`).
pub const RESERVED_TYPES: u32 = 64;
/// Node-state publications `{0, node, node}`.
pub const NODE_STATE: u32 = 0;
/// The topology service `{1, 1, 1}`.
pub const TOP_SRV: u32 = 1;
/// Link-state publications `{2, peer, peer}`.
pub const LINK_STATE: u32 = 2;
