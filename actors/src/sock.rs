//! The sockets users hold (kernel `socket.c`'s system-call side): [`dgram`] (SOCK_RDM and
//! SOCK_DGRAM), [`conn`] (SOCK_STREAM and SOCK_SEQPACKET listeners and connections) and
//! [`stream`] (a connection as a tokio byte stream). Dropping a socket closes it as the
//! kernel closes a released socket: bindings withdrawn, connections ended.

pub mod conn;
pub mod dgram;
pub mod stream;
