//! The receive queue of a connectionless socket (kernel `socket.c: tipc_sk_filter_rcv,
//! rcvbuf_limit, tipc_sk_enqueue, tsk_rej_rx_queue`; the ancillary data of
//! `tipc_add_ancillary`).
//!
//! Spec: tipc-protocol.md §9.1, §9.2 (rejection reasons), §9.3 (queue limits).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use tipc_transport::wire::{self, DataRepr, DataType, ErrorCode, Header};
use tipc_transport::NodeAddr;

use super::{reverse, SocketError};
use crate::addr::{ServiceRange, SocketAddr};

/// Default receive buffer (`sysctl tipc_rmem[1]`, 2 MiB).
pub const RCVBUF_DEFAULT: usize = 2 << 20;
/// Smallest settable receive buffer (`tipc_rmem[0]`, 512 KiB).
pub const RCVBUF_MIN: usize = 512 << 10;
/// Largest settable receive buffer (`tipc_rmem[2]`, 16 MiB).
pub const RCVBUF_MAX: usize = 16 << 20;
/// Fixed per-message cost added by [`truesize`]: the kernel's `sizeof(struct sk_buff)` (232)
/// plus `sizeof(struct skb_shared_info)` (320), rounded up to 576, on x86-64.
pub const SKB_OVERHEAD: usize = 576;

/// The bytes a queued message of `len` bytes (header included) is charged against the receive
/// buffer: an approximation of the kernel's `skb->truesize`.
///
/// Our choice: the data allocation is `len` rounded up to a power of two (at least 64, as
/// `kmalloc`'s size classes do) up to 4 KiB, and to a whole number of 4 KiB pages above that;
/// plus [`SKB_OVERHEAD`]. The kernel's real figure depends on the bearer's buffer layout; what
/// matters for interop is only the order of magnitude (how many messages fit in 2 MiB), and this
/// stays within a factor 2 of it. A 1-byte datagram costs 640, a 66040-byte one 70208.
pub fn truesize(len: usize) -> usize {
    let data = if len <= 4096 {
        len.max(64).next_power_of_two()
    } else {
        len.div_ceil(4096) * 4096
    };
    data + SKB_OVERHEAD
}

/// Error information of a returned message (the `TIPC_ERRINFO` ancillary data, §9.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Returned {
    /// Why the message came back.
    pub error: ErrorCode,
    /// The original destination: the node that rejected it and the port it was addressed to
    /// (the returned message's orignode/origport).
    pub dest: SocketAddr,
}

/// A message taken from the receive queue: what `recvmsg()` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The source address (`msg_orignode`, `msg_origport`); for a returned message this is the
    /// rejecting node and the original destination port, as in the kernel.
    pub from: SocketAddr,
    /// `TIPC_DESTNAME`: `{type, instance, instance}` for a `NAMED_MSG`, `{type, lower, upper}` for
    /// a `MCAST_MSG`, `None` for a `DIRECT_MSG`.
    pub dest: Option<ServiceRange>,
    /// The message type (`Direct`, `Named` or `Mcast`).
    pub mtype: DataType,
    /// The header's importance (user field, 0..=3).
    pub importance: u8,
    /// The payload: a zero-copy slice of the received buffer. For a returned message these are
    /// the returned bytes (`TIPC_RETDATA`, at most 1024).
    pub data: Bytes,
    /// Set if this is one of our own messages coming back with an error code.
    pub returned: Option<Returned>,
}

/// The outcome of [`RecvQueue::offer`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Offer {
    /// Queued; [`RecvQueue::recv`] will return it.
    Accepted,
    /// Refused with `error`. `returned` is the message to send back to its sender
    /// ([`reverse`]), to its header's destnode; `None` if it must be dropped silently
    /// (`dest_droppable`, or it already carried an error code).
    Rejected {
        /// The rejection reason (`NO_PORT` or `OVERLOAD`).
        error: ErrorCode,
        /// The returned message, if any.
        returned: Option<BytesMut>,
    },
    /// Malformed, or not a data message: counted in [`RecvStats`] and dropped.
    Dropped,
}

/// Counters of a [`RecvQueue`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RecvStats {
    /// Messages queued.
    pub accepted: u64,
    /// Messages rejected with `NO_PORT` (connection or group messages).
    pub rejected_no_port: u64,
    /// Messages rejected with `OVERLOAD` (the kernel's `sk_drops`).
    pub rejected_overload: u64,
    /// Buffers that did not validate as data messages of a connectionless type (also a
    /// `MCAST_MSG` with `lower > upper`).
    pub dropped_malformed: u64,
    /// Valid messages of a non-data user (connection manager, group protocol): a
    /// connectionless socket outside a group ignores them.
    pub dropped_not_data: u64,
}

#[derive(Debug)]
struct Entry {
    msg: Bytes,
    truesize: usize,
    rx: Received,
}

/// The receive queue of a connectionless socket (`sk_receive_queue` + `sk_rmem_alloc`).
///
/// A message of importance `i` is accepted while `queued_bytes + truesize < rcvbuf << i`
/// (§9.3); returned messages count as importance 4 (SYSTEM), so they are refused only at
/// 16 × `rcvbuf`.
#[derive(Debug)]
pub struct RecvQueue {
    rcvbuf: usize,
    queue: VecDeque<Entry>,
    queued_bytes: usize,
    stats: RecvStats,
}

impl Default for RecvQueue {
    fn default() -> Self {
        Self::new()
    }
}

impl RecvQueue {
    /// An empty queue with the default 2 MiB receive buffer.
    pub fn new() -> Self {
        RecvQueue {
            rcvbuf: RCVBUF_DEFAULT,
            queue: VecDeque::new(),
            queued_bytes: 0,
            stats: RecvStats::default(),
        }
    }

    /// Set the receive buffer (`SO_RCVBUF`), [`RCVBUF_MIN`]..=[`RCVBUF_MAX`]. Already queued
    /// messages stay queued even if they now exceed the limit.
    pub fn set_rcvbuf(&mut self, bytes: usize) -> Result<(), SocketError> {
        if !(RCVBUF_MIN..=RCVBUF_MAX).contains(&bytes) {
            return Err(SocketError::BadRcvbuf(bytes));
        }
        self.rcvbuf = bytes;
        Ok(())
    }

    /// The receive buffer size.
    pub fn rcvbuf(&self) -> usize {
        self.rcvbuf
    }

    /// The queue limit for a message of importance `importance` (0..=4, 4 = returned
    /// messages): `rcvbuf << importance` (`rcvbuf_limit`, connectionless case).
    pub fn limit(&self, importance: u8) -> usize {
        self.rcvbuf << importance.min(wire::user::SYSTEM_IMPORTANCE)
    }

    /// Bytes charged for the queued messages (the sum of their [`truesize`]s).
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Number of queued messages.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Is the queue empty?
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The counters.
    pub fn stats(&self) -> &RecvStats {
        &self.stats
    }

    /// Offer a received message addressed to this socket (`tipc_sk_filter_rcv`, connectionless
    /// socket, no group). `own_node` is this node's address, for the returned message.
    ///
    /// * `DIRECT_MSG`, `NAMED_MSG`, `MCAST_MSG` are queued if they fit (else `OVERLOAD`), with
    ///   or without an error code (with one it is a returned message, [`Received::returned`]);
    /// * `CONN_MSG` and the group types are rejected with `NO_PORT`;
    /// * other users and malformed buffers are dropped, among them a `MCAST_MSG` whose range
    ///   has `lower > upper`.
    pub fn offer(&mut self, msg: Bytes, own_node: NodeAddr) -> Offer {
        let (rx, importance, truesize) = {
            let h = match Header::new_checked(&msg[..]) {
                Ok(h) => h,
                Err(_) => {
                    self.stats.dropped_malformed += 1;
                    return Offer::Dropped;
                }
            };
            if !h.is_data() {
                self.stats.dropped_not_data += 1;
                return Offer::Dropped;
            }
            let r = match DataRepr::parse(&h) {
                Ok(r) => r,
                Err(_) => {
                    self.stats.dropped_malformed += 1;
                    return Offer::Dropped;
                }
            };
            let dest = match r.mtype {
                DataType::Direct => None,
                DataType::Named if r.hsize >= wire::NAMED_H_SIZE => {
                    Some(ServiceRange::single(r.name_type, r.name_instance))
                }
                DataType::Mcast if r.hsize >= wire::MCAST_H_SIZE => {
                    match ServiceRange::new(r.name_type, r.name_instance, r.name_upper) {
                        Ok(range) => Some(range),
                        // lower > upper: no `TIPC_DESTNAME` to report.
                        Err(_) => {
                            self.stats.dropped_malformed += 1;
                            return Offer::Dropped;
                        }
                    }
                }
                DataType::Named | DataType::Mcast => {
                    self.stats.dropped_malformed += 1;
                    return Offer::Dropped;
                }
                _ => {
                    // Connection message to a connectionless socket, or a group message to a
                    // socket outside a group.
                    self.stats.rejected_no_port += 1;
                    return Offer::Rejected {
                        error: ErrorCode::NoPort,
                        returned: reverse(&msg, ErrorCode::NoPort, own_node),
                    };
                }
            };
            let from = SocketAddr {
                node: r.orignode,
                port: r.origport,
            };
            let returned = if r.errcode != 0 {
                match ErrorCode::from_u8(r.errcode) {
                    Some(error) => Some(Returned { error, dest: from }),
                    None => {
                        self.stats.dropped_malformed += 1;
                        return Offer::Dropped;
                    }
                }
            } else {
                None
            };
            let start = r.hsize;
            let data = msg.slice(start..start + r.payload.len());
            let rx = Received {
                from,
                dest,
                mtype: r.mtype,
                importance: r.importance,
                data,
                returned,
            };
            (rx, wire::importance(&h), truesize(h.size()))
        };
        if self.queued_bytes + truesize >= self.limit(importance) {
            self.stats.rejected_overload += 1;
            return Offer::Rejected {
                error: ErrorCode::Overload,
                returned: reverse(&msg, ErrorCode::Overload, own_node),
            };
        }
        self.queued_bytes += truesize;
        self.stats.accepted += 1;
        self.queue.push_back(Entry { msg, truesize, rx });
        Offer::Accepted
    }

    /// The next message, if any, without taking it.
    pub fn peek(&self) -> Option<&Received> {
        self.queue.front().map(|e| &e.rx)
    }

    /// Take the next message, freeing its queue space.
    pub fn recv(&mut self) -> Option<Received> {
        let e = self.queue.pop_front()?;
        self.queued_bytes -= e.truesize;
        Some(e.rx)
    }

    /// Close the socket (`tsk_rej_rx_queue` with `NO_PORT`): empty the queue and return the
    /// returned messages to send, one per queued message that is neither `dest_droppable` nor
    /// itself a returned message.
    pub fn close(&mut self, own_node: NodeAddr) -> Vec<BytesMut> {
        self.queued_bytes = 0;
        self.queue
            .drain(..)
            .filter_map(|e| reverse(&e.msg, ErrorCode::NoPort, own_node))
            .collect()
    }
}
