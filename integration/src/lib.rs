//! # tipc-integration
//!
//! The deterministic multi-node simulation harness and helpers for cross-crate tests:
//! real sockets on loopback, network namespaces and a Linux kernel peer.

pub mod cluster;
pub mod ctl_proc;
pub mod kernel_peer;
pub mod netns;
pub mod node_proc;
pub mod pattern;
pub mod services;
pub mod sim;
