//! # tipc-actors
//!
//! The upper half of TIPC and the actix actors that drive the sans-IO cores of
//! `tipc-transport`: Bearer, Peer (one per remote node, owning its links) and the node's
//! registry. (In progress.)
