//! # tipc-actors
//!
//! The upper half of TIPC: sans-IO cores and the thin actix actors that drive them over the
//! links of `tipc-transport`. The files stack in layers; a file imports from the layers below
//! it and from its own layer, never from above (`integration/tests/layers.rs` checks both
//! halves: `actors_files_import_only_from_lower_layers` ranks every file by this table, lib.rs
//! aside, and `actors_src_has_no_import_cycle` keeps imports within a layer acyclic):
//!
//! | layer | files | kernel |
//! |---|---|---|
//! | cores (sans-IO) | [`addr`], [`name_table`] (the binding table), [`name_distr`], [`topsrv`] (service tracking), [`socket`] (message building, receive queue, the receive dispatch [`socket::rcv`], the connection core [`socket::conn`]), [`group`] (a communication group member) | `name_table.c`, `name_distr.c`, `subscr.c`, `socket.c`, `group.c` |
//! | context | [`tx`] (a bearer's send path), [`flow`] (per-peer send state), [`msg`] (actor messages and handles), [`ctx`] (the node context: clock, table, port registry, handles) | `net.c` |
//! | routing | [`send`] (to a peer's send queue), [`route`] (carrying out the dispatch's verdicts) | `node.c: tipc_node_xmit`, `socket.c: tipc_sk_rcv` |
//! | actors | [`actor`]: bearer, peer, name table, connection socket | `bearer.c`, `node.c`, `name_table.c`, `socket.c` |
//! | user handles | [`sock`]: datagram, connection and stream sockets | `socket.c` |
//! | facade | [`node`]: [`TransportNode`] | `net.c` |
//!
//! Every protocol decision is a function of a core; the actors and the simulation of
//! `tipc-integration` call the same functions. Actors must run inside an actix `System` (or
//! a tokio `LocalSet`).
//!
//! Communication groups take the same shape: the sans-IO core [`group`] (kernel `group.c`),
//! reached through the multicast path of [`socket::rcv`]; its driver [`actor::group`]; the
//! member handle [`sock::group`]; [`TransportNode::join`] in the facade.

pub mod actor;
pub mod addr;
pub mod clock;
pub mod crypto;
pub mod ctx;
pub mod flow;
pub mod group;
pub mod msg;
pub mod name_distr;
pub mod name_table;
pub mod node;
pub mod route;
pub mod send;
pub mod sock;
pub mod socket;
pub mod topsrv;
pub mod tx;

pub use ctx::{BearerInfo, Delivered, NodeEvent, SocketInfo, SocketKind, TransportConfig};
pub use node::{CryptoInfo, LinkInfo, NetDrops, NodeInfo, TransportError, TransportNode};
