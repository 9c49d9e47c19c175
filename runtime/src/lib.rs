//! # tipc-runtime
//!
//! What users touch: the [`Node`] built from a [`NodeConfig`] (command-line flags or TOML), the
//! control socket ([`control`]) between the node daemon `tipc-node` and the management tool
//! `tipcctl`.

pub mod config;
pub mod conn;
pub mod control;
pub mod dgram;
pub mod node;

pub use config::NodeConfig;
pub use node::{Node, NodeError};
pub use tipc_actors::NodeEvent;

/// The actix System nodes run in (re-exported so applications need no direct actix dependency).
pub use actix_rt::System;
