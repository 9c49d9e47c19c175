//! # tipc-runtime
//!
//! What users touch: the [`Node`] built from a [`NodeConfig`] (command-line flags or TOML), and
//! the management plane ([`ctl`]): the control socket between the node daemon `tipc-node` and
//! the management tool `tipcctl` (its protocol, the node's server, the client, and the text
//! views and output lines scripts rely on).
//!
//! The service layer ([`service`]): typed messages ([`TipcMessage`], `#[derive(TipcMessage)]`),
//! services (`#[tipc_service]`), and clients ([`ServiceRef`]: tell, ask).
//!
//! Tracing ([`telemetry`]): one call exports a span per tell, ask and handled message to an
//! OpenTelemetry collector, one trace id across nodes.
//!
//! Modules, each importing only those above it: [`config`]; [`service`] with [`telemetry`]
//! beside it (the spans of its messages; the two use each other); [`node`]; [`ctl`] (inside
//! it: `proto`, `fmt`, `views`, `client`, `dgram`, `conn`, `server`). The binaries
//! (`src/bin/`) use the library like any application.

pub mod config;
pub mod ctl;
pub mod node;
pub mod service;
pub mod telemetry;

/// What the macros' generated code names (not a stable API).
#[doc(hidden)]
pub mod __private {
    pub use crate::service::server::{
        call, decode_request, unknown, Answers, Binding, Ctx, GroupOpts, MemberEvent, Outcome, Raw,
        Request, Service,
    };
    pub use crate::service::TipcMessage;
    pub use tipc_actors::addr::{Scope, ServiceRange};
}

pub use config::NodeConfig;
pub use node::{free_loopback_ports, Node, NodeError};
pub use service::{AskError, Ctx, ReplyTo, ServiceHandle, ServiceRef, TellError, TipcMessage};
pub use tipc_actors::addr::{Scope, ServiceAddr, ServiceRange, SocketAddr};
pub use tipc_actors::NodeEvent;
pub use tipc_macros::{tipc_service, TipcMessage};

/// The actix System nodes run in (re-exported so applications need no direct actix dependency).
pub use actix_rt::System;
