//! Addresses of the upper half (kernel uapi `linux/tipc.h`), spec §1.2.

use std::fmt;
use tipc_transport::NodeAddr;

/// A service address `{type, instance}` (an anycast name).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct ServiceAddr {
    /// Service type.
    pub type_: u32,
    /// Instance.
    pub instance: u32,
}

/// A service range `{type, lower, upper}` (multicast destination, binding range).
///
/// It cannot hold `lower > upper`: [`ServiceRange::new`] refuses such bounds with a
/// [`RangeError`], so everything that takes a `ServiceRange` may rely on `lower <= upper`.
/// Ranges order by type, then lower, then upper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceRange {
    type_: u32,
    lower: u32,
    upper: u32,
}

/// Bounds with `lower > upper`, refused by [`ServiceRange::new`] (the kernel's `EINVAL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("invalid range: lower {lower} > upper {upper}")]
pub struct RangeError {
    /// The refused lower bound.
    pub lower: u32,
    /// The refused upper bound.
    pub upper: u32,
}

impl ServiceRange {
    /// The range `[lower, upper]` of service `type_`; `Err` if `lower > upper`.
    pub const fn new(type_: u32, lower: u32, upper: u32) -> Result<ServiceRange, RangeError> {
        if lower > upper {
            return Err(RangeError { lower, upper });
        }
        Ok(ServiceRange {
            type_,
            lower,
            upper,
        })
    }

    /// The one-instance range `[instance, instance]` of service `type_`.
    pub const fn single(type_: u32, instance: u32) -> ServiceRange {
        ServiceRange {
            type_,
            lower: instance,
            upper: instance,
        }
    }

    /// Service type.
    pub const fn type_(&self) -> u32 {
        self.type_
    }
    /// Lower bound (`<= upper`).
    pub const fn lower(&self) -> u32 {
        self.lower
    }
    /// Upper bound (`>= lower`).
    pub const fn upper(&self) -> u32 {
        self.upper
    }

    /// Does this range overlap `[lower, upper]` (`max(lowers) <= min(uppers)`)?
    pub fn overlaps(&self, lower: u32, upper: u32) -> bool {
        self.lower.max(lower) <= self.upper.min(upper)
    }
    /// Does this range contain `instance`?
    pub fn contains(&self, instance: u32) -> bool {
        self.lower <= instance && instance <= self.upper
    }
}

/// A socket address `{node, port}` (serializable: services pass them in messages).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_range_new_refuses_lower_above_upper() {
        assert_eq!(
            ServiceRange::new(1000, 5, 4),
            Err(RangeError { lower: 5, upper: 4 })
        );
        let r = ServiceRange::new(1000, 4, 5).expect("valid");
        assert_eq!((r.type_(), r.lower(), r.upper()), (1000, 4, 5));
        assert_eq!(
            ServiceRange::new(1000, 7, 7),
            Ok(ServiceRange::single(1000, 7))
        );
        assert_eq!(
            ServiceRange::new(1, 0, u32::MAX).map(|r| (r.lower(), r.upper())),
            Ok((0, u32::MAX))
        );
    }

    #[test]
    fn service_range_orders_by_type_then_lower_then_upper() {
        let r = |t, l, u| ServiceRange::new(t, l, u).expect("valid");
        let mut v = vec![r(2, 0, 0), r(1, 5, 9), r(1, 5, 6), r(1, 0, 9)];
        v.sort();
        assert_eq!(v, [r(1, 0, 9), r(1, 5, 6), r(1, 5, 9), r(2, 0, 0)]);
    }
}
