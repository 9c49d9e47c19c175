//! The management plane: the control socket between the node daemon `tipc-node` and the
//! management tool `tipcctl` (the role of iproute2's `tipc` and the kernel's netlink interface,
//! `net/tipc/netlink.c`, for a userspace node).
//!
//! A Unix stream socket carries length-prefixed (u32, big-endian) rmp-serde frames. The client
//! sends one [`Request`]; the node answers with any number of [`Reply::Line`] (and, on a
//! connection, [`Reply::Data`]) frames and one [`Reply::Done`]. A reply has no size limit: a
//! table comes in as many frames as it takes.
//!
//! The socket is the node's management interface, so it is guarded ([`access`]): mode 0600
//! whatever the umask (0660 with `tipc-node --control-group GROUP`), each client's
//! credentials checked, an existing path that is not a stale socket never replaced; and what
//! clients send is never trusted ([`server`]).
//!
//! The files stack; each imports only files listed above it:
//!
//! | file | what |
//! |---|---|
//! | [`proto`] | the frames: [`Request`], [`Reply`], [`Input`] and the types they carry; [`read_frame`], [`write_frame`], [`write_rows`] |
//! | [`access`] | who may use the socket: the path checks, the mode, the client's credentials |
//! | [`fmt`] | the words of commands and output lines: `sock:0xNODE:PORT`, `TYPE:LOWER:UPPER`, error names, payload text |
//! | [`views`] | the tables (`node list`, `link list`, `link stat show`, `nametable show`, ...) as iproute2's `tipc` prints them |
//! | [`client`] | `tipcctl`'s side: [`request`], [`pipe`] (a connection), [`read_chunk`] |
//! | [`dgram`], [`conn`], [`group`] | the node's side of the streaming commands: datagrams and subscriptions; connections; group members. Their docs list the stable output lines |
//! | [`server`] | the node's side: [`bind`], then [`ControlServer::serve`] accepts and dispatches each request |

pub mod access;
pub mod client;
pub mod conn;
pub mod dgram;
pub mod fmt;
pub mod group;
pub mod proto;
pub mod server;
pub mod views;

pub use access::Access;
pub use client::{pipe, read_chunk, request};
pub use proto::{
    read_frame, write_frame, write_rows, BcastMode, ConnTarget, DgramDest, GroupAction,
    GroupSendReq, Input, Kind, Linger, Reply, Request, MAX_DATA_FRAME, MAX_FRAME, MAX_MESSAGE,
    TEXT_CHUNK,
};
pub use server::{bind, serve, ControlServer};
