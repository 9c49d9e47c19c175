//! # tipc-runtime
//!
//! What users touch: the [`Node`] built from a [`NodeConfig`] (command-line flags or TOML), and
//! the management plane ([`ctl`]): the control socket between the node daemon `tipc-node` and
//! the management tool `tipcctl` (its protocol, the node's server, the client, and the text
//! views and output lines scripts rely on).
//!
//! Modules, each importing only those above it: [`config`]; [`node`]; [`ctl`] (inside it:
//! `proto`, `fmt`, `views`, `client`, `dgram`, `conn`, `server`). The binaries (`src/bin/`)
//! use the library like any application.

pub mod config;
pub mod ctl;
pub mod node;

pub use config::NodeConfig;
pub use node::{Node, NodeError};
pub use tipc_actors::NodeEvent;

/// The actix System nodes run in (re-exported so applications need no direct actix dependency).
pub use actix_rt::System;
