//! # tipc-actors
//!
//! The upper half of TIPC and the thin actix actors that drive the sans-IO cores of
//! `tipc-transport`:
//!
//! * [`bearer::BearerActor`] (kernel `bearer.c` + `discover.c` glue): owns one media and its
//!   discoverer, demultiplexes received frames to peers;
//! * [`peer::PeerActor`] (kernel `node.c`): one per remote node, owns that node's links;
//! * [`binding::BindingTable`] (kernel `name_table.c`): the sans-IO binding table;
//! * [`name_distr::NameDistributor`] (kernel `name_distr.c`): sans-IO name distribution;
//! * [`node::TransportNode`]: the node's registry of bearers and peers, management queries and
//!   node events;
//! * [`socket`] (kernel `socket.c`, connectionless part): sans-IO datagram message building,
//!   receive queue, rejection and secondary lookup;
//! * [`topology`] (kernel `subscr.c`, `topsrv.c`): sans-IO service tracking;
//! * [`conn`] (kernel `socket.c`, connection part): stream and seqpacket sockets;
//! * [`names::NameTable`]: the actor owning the binding table, name distribution and
//!   subscriptions, on the delivery path of every peer.
//!
//! Actors must run inside an actix `System` (or a tokio `LocalSet`).

pub mod addr;
pub mod bearer;
pub mod binding;
pub mod conn;
pub mod name_distr;
pub mod names;
pub mod node;
pub mod peer;
pub mod socket;
pub mod sockets;
pub mod topology;

pub use node::{
    BearerInfo, Delivered, LinkInfo, NodeEvent, NodeInfo, TransportConfig, TransportNode,
};
