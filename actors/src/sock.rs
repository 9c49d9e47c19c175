//! The sockets users hold (kernel `socket.c`'s system-call side): [`dgram`] (SOCK_RDM and
//! SOCK_DGRAM), [`conn`] (SOCK_STREAM and SOCK_SEQPACKET listeners and connections),
//! [`stream`] (a connection as a tokio byte stream) and [`group`] (a communication group
//! member). Dropping a socket closes it as the
//! kernel closes a released socket: bindings withdrawn, connections ended.

pub mod conn;
pub mod dgram;
pub mod group;
pub mod stream;
