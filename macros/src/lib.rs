//! # tipc-macros
//!
//! Procedural macros for TIPC services (`#[tipc_service]`), built with the service and group
//! features of the runtime. The transport foundation does not need them yet.
