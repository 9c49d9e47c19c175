//! Connection-oriented socket core (SOCK_STREAM / SOCK_SEQPACKET), sans-IO (kernel
//! `net/tipc/socket.c`: `tipc_sk_filter_connect`, `tipc_sk_finish_conn`, `tipc_accept`,
//! `tipc_sk_build_ack`, `tipc_sk_conn_proto_rcv`, `tipc_sk_check_probing_state`,
//! `__tipc_shutdown`, `rcvbuf_limit`; `node.c: node_lost_contact`).
//!
//! Spec: tipc-protocol.md §2.5 (CONN_MANAGER overlay), §2.6 (error codes), §9.2 (rejection),
//! §9.3 (receive limit), §9.4 (setup), §9.5 (flow control), §9.6 (Nagle), §9.7 (probing,
//! shutdown, abort).
//!
//! [`ConnCore`] holds one socket's connection state: the kernel states OPEN, LISTEN,
//! CONNECTING, ESTABLISHED and DISCONNECTING, the block-based (or legacy message-based) flow
//! control counters, the receive queue and the probe state. It does no I/O and reads no clock:
//! messages to transmit are queued as [`Output`]s for the caller to poll, time is passed in.
//! Everything built here leaves the link-stamped fields (w1 `bcast_ack`, w2) at 0.
//!
//! This file holds the types, the constants and the core's state with its accessors; the
//! behaviour is split by concern, each file one `impl ConnCore` block:
//!
//! * `connect`: listen, connect (SYN), accept, setup and abort, shutdown, node loss (§9.4, §9.7);
//! * `tx`: write, the send window and Nagle, the messages the core builds (§9.5, §9.6);
//! * `rx`: received messages, CONN_MANAGER (acks, probes), the receive queue, read and the
//!   CONN_ACKs it sends (§9.2, §9.3, §9.5–§9.7);
//! * `timer`: the connect timeout, the OVERLOAD retry of the SYN and probing (§9.4, §9.7).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tipc_transport::wire::ErrorCode;
use tipc_transport::NodeAddr;

use super::{truesize, RCVBUF_DEFAULT, RCVBUF_MIN};
use crate::addr::{ServiceAddr, SocketAddr};

mod connect;
mod rx;
mod timer;
mod tx;

/// Flow-control block size in bytes (`FLOWCTL_BLK_SZ`).
pub const FLOWCTL_BLK_SZ: usize = 1024;
/// Window in messages when the peer lacks `TIPC_BLOCK_FLOWCTL` (`FLOWCTL_MSG_WIN`).
pub const FLOWCTL_MSG_WIN: u32 = 512;
/// Receive limit in bytes for a legacy peer (`FLOWCTL_MSG_LIM` = 1025 × truesize(66060)).
pub fn flowctl_msg_lim() -> usize {
    1025 * truesize(66060)
}
/// An ack is sent once the consumed count reaches `rcv_win / TIPC_ACK_RATE`.
pub const TIPC_ACK_RATE: u32 = 4;
/// Initial send (and receive) window in blocks: `RCVBUF_MIN / 1024 / 4` = 128.
pub const INITIAL_WIN: u32 = (RCVBUF_MIN / FLOWCTL_BLK_SZ / 4) as u32;
/// Advertised window in blocks at the default receive buffer: `2 MiB / 1024 / 4` = 512.
pub const ADV_WIN: u32 = (RCVBUF_DEFAULT / FLOWCTL_BLK_SZ / 4) as u32;
/// Default connect timeout (`CONN_TIMEOUT_DEFAULT`, 8000 ms).
pub const CONN_TIMEOUT: Duration = Duration::from_millis(8000);
/// Interval between connection probes (`CONN_PROBING_INTV`, 3600 s).
pub const CONN_PROBING_INTV: Duration = Duration::from_secs(3600);
/// Stream writes before Nagle may start, initially (`NAGLE_START_INIT`).
pub const NAGLE_START_INIT: u32 = 4;
/// The most that start is doubled to after ineffective rounds (`NAGLE_START_MAX`).
pub const NAGLE_START_MAX: u32 = 1024;
/// Blocks of held stream data that are sent even while a Nagle ack is awaited
/// (`__tipc_sendstream`: `blocks <= 64`).
pub const NAGLE_MAX_BACKLOG: u32 = 64;
/// Largest message before the link MTU is known (`MAX_PKT_DEFAULT`).
pub const MAX_PKT_DEFAULT: usize = 1500;
/// Nagle buffer size toward a socket of our own node (`tsk_set_nagle`).
pub const NAGLE_LOCAL: usize = 1500;

/// Why a connection could not be set up or why it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnError {
    /// The connection request was rejected with this error code (`ECONNREFUSED`): e.g.
    /// `NO_PORT` for a closed port, `NO_NAME` when the service vanished.
    #[error("connection refused ({0})")]
    Refused(ErrorCode),
    /// The peer node was lost (`TIPC_ERR_NO_NODE`, generated locally).
    #[error("peer node lost")]
    NoNode,
    /// The peer closed the connection without shutdown, or its socket vanished (`NO_PORT`,
    /// `ECONNRESET`).
    #[error("connection reset by peer")]
    Reset,
    /// The peer's receive queue overflowed (`OVERLOAD`) and our message came back.
    #[error("peer overloaded")]
    Overload,
    /// The connection request was not answered in time (8 s by default).
    #[error("connection timed out")]
    Timeout,
    /// A probe stayed unanswered for a whole probing interval (`ECONNABORTED`).
    #[error("connection aborted: probe unanswered")]
    Aborted,
    /// The socket was closed or shut down locally.
    #[error("connection closed")]
    Closed,
    /// The peer shut the connection down (`CONN_SHUTDOWN`): nothing more can be sent.
    #[error("peer shut the connection down")]
    PeerShutdown,
    /// No binding matches the service address (`EHOSTUNREACH`).
    #[error("no binding for the destination")]
    NoDestination,
    /// A seqpacket message over 66000 bytes (`EMSGSIZE`).
    #[error("message of {0} bytes exceeds 66000 bytes")]
    TooLarge(usize),
    /// The operation does not fit the socket's state (e.g. connecting twice).
    #[error("invalid socket state")]
    BadState,
    /// An importance above CRITICAL (3) was asked for (`EINVAL`).
    #[error("importance {0} is not one of 0 (low) to 3 (critical)")]
    BadImportance(u8),
}

impl ConnError {
    /// The end reason a received error code stands for (`CONN_SHUTDOWN` is the orderly end,
    /// mapped to [`ConnError::PeerShutdown`]).
    pub fn from_code(code: u8) -> ConnError {
        match ErrorCode::from_u8(code) {
            Some(ErrorCode::NoNode) => ConnError::NoNode,
            Some(ErrorCode::Overload) => ConnError::Overload,
            Some(ErrorCode::ConnShutdown) => ConnError::PeerShutdown,
            _ => ConnError::Reset,
        }
    }
}

/// Kernel socket states (`enum tipc_sock_state` subset used by connection sockets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnState {
    /// Fresh, not connected.
    Open,
    /// Listening for connection requests.
    Listen,
    /// SYN sent, waiting for the ACK.
    Connecting,
    /// Connected.
    Established,
    /// Ended (by either side or by node loss).
    Disconnecting,
}

/// Where a SYN goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SynDest {
    /// A socket address: `DIRECT_MSG`.
    Socket(SocketAddr),
    /// A service address: `NAMED_MSG`, resolved by the sender's anycast lookup.
    Service(ServiceAddr),
}

/// A message the core wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// To this node (possibly our own).
    ToNode(NodeAddr, BytesMut),
    /// A named SYN: look the service up (anycast), stamp destnode/destport, send.
    Lookup(ServiceAddr, BytesMut),
}

/// What a received message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Queued for the application (data, a connection request, or an end marker).
    Queued,
    /// Consumed by the protocol (ack, probe, setup ACK, ...).
    Consumed,
    /// Not acceptable: rejected back to its sender (if returnable), see [`Output`].
    Rejected(ErrorCode),
    /// Dropped silently (malformed, or not for this state).
    Dropped,
}

/// Counters of one connection socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnStats {
    /// Data messages sent (handed to the link; a Nagle buffer counts once).
    pub tx_msgs: u64,
    /// Data bytes written.
    pub tx_bytes: u64,
    /// Stream writes appended to a Nagle buffer instead of becoming a message of their own.
    pub nagled: u64,
    /// Data messages received (queued).
    pub rx_msgs: u64,
    /// CONN_ACKs sent.
    pub acks_sent: u64,
    /// CONN_ACKs received.
    pub acks_rcvd: u64,
    /// Messages rejected back (unacceptable, or over the receive limit).
    pub rejected: u64,
    /// Malformed or unexpected messages dropped.
    pub dropped: u64,
}

/// One received item.
#[derive(Debug, Clone)]
struct RxItem {
    msg: Bytes,
    truesize: usize,
}

/// One received unit handed to the application by [`ConnCore::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// Payload of one data message.
    Data(Bytes),
    /// The connection ended: `Ok(())` after the peer's shutdown, else why.
    End(Result<(), ConnError>),
}

/// The connection state of one socket (see the module docs).
#[derive(Debug)]
pub struct ConnCore {
    own: SocketAddr,
    state: ConnState,
    peer: SocketAddr,
    importance: u8,
    block_fc: bool,
    snt_unacked: u32,
    snd_win: u32,
    rcv_unacked: u32,
    rcv_win: u32,
    rcvbuf: usize,
    /// The peer node's capabilities (`peer_caps`), once connected.
    peer_caps: u16,
    nagle: Nagle,
    rx: VecDeque<RxItem>,
    rx_mem: usize,
    /// The end reason once DISCONNECTING (`Ok` = peer shutdown).
    end: Option<Result<(), ConnError>>,
    syn: Option<(SynDest, Bytes)>,
    /// `TIPC_CONN_TIMEOUT`: how long a connect waits for the ACK.
    conn_timeout: Duration,
    /// Accepted from a request sent to a service address: that address (`TIPC_DESTNAME`).
    dest_name: Option<ServiceAddr>,
    /// The deadline of each [`Timer`].
    timers: Timers,
    probe_unacked: bool,
    rng: u32,
    out: VecDeque<Output>,
    stats: ConnStats,
    /// Buffers of large data messages (dropped once the link fragmented them): reused.
    tx_pool: tipc_transport::wire::ChunkPool,
}

/// Data messages at least this large are built in [`ConnCore`]'s reused buffers.
const TX_POOL_MIN: usize = 16 * 1024;

impl ConnCore {
    /// A fresh socket (OPEN) at `own`, importance LOW, block flow control assumed until the
    /// connection is set up.
    pub fn new(own: SocketAddr) -> ConnCore {
        ConnCore {
            own,
            state: ConnState::Open,
            peer: SocketAddr { node: 0, port: 0 },
            importance: 0,
            block_fc: true,
            snt_unacked: 0,
            snd_win: INITIAL_WIN,
            rcv_unacked: 0,
            rcv_win: INITIAL_WIN,
            rcvbuf: RCVBUF_DEFAULT,
            peer_caps: 0,
            nagle: Nagle::new(),
            rx: VecDeque::new(),
            rx_mem: 0,
            end: None,
            syn: None,
            conn_timeout: CONN_TIMEOUT,
            dest_name: None,
            timers: Timers::default(),
            probe_unacked: false,
            rng: own.port ^ own.node ^ 0x9e37_79b9 | 1,
            out: VecDeque::new(),
            stats: ConnStats::default(),
            tx_pool: tipc_transport::wire::ChunkPool::with_chunk(TX_POOL_MIN),
        }
    }

    /// The socket's own address.
    pub fn own(&self) -> SocketAddr {
        self.own
    }
    /// The current state.
    pub fn state(&self) -> ConnState {
        self.state
    }
    /// The peer socket (valid once ESTABLISHED; the SYN's direct destination while CONNECTING).
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
    /// Importance of our messages (0..=3).
    pub fn importance(&self) -> u8 {
        self.importance
    }
    /// For a socket accepted from a request sent to a service address: that address (what
    /// the kernel's `recvmsg` reports as `TIPC_DESTNAME`). `None` for a request sent to the
    /// listener's socket address, and on the connecting side.
    pub fn dest_name(&self) -> Option<ServiceAddr> {
        self.dest_name
    }

    /// How long a connect waits for the ACK (`TIPC_CONN_TIMEOUT`).
    pub fn conn_timeout(&self) -> Duration {
        self.conn_timeout
    }

    /// Set the connect timeout (`TIPC_CONN_TIMEOUT`; the kernel's default is 8 s). It also
    /// spreads the retries of a SYN refused with `OVERLOAD` (100 ms + up to a quarter of it).
    pub fn set_conn_timeout(&mut self, t: Duration) {
        self.conn_timeout = t;
    }

    /// Set the importance of our messages (`TIPC_IMPORTANCE`), clamped to 0..=3.
    pub fn set_importance(&mut self, imp: u8) {
        self.importance = imp.min(3);
    }

    /// A SOCK_STREAM socket (Nagle applies to streams only); a listener's accepted sockets
    /// inherit it.
    pub fn set_stream(&mut self, on: bool) {
        self.nagle.stream = on;
        self.set_nagle();
    }

    /// A SOCK_STREAM socket (else SOCK_SEQPACKET).
    pub fn is_stream(&self) -> bool {
        self.nagle.stream
    }

    /// `TIPC_NODELAY`: no Nagle on our stream writes.
    pub fn set_nodelay(&mut self, on: bool) {
        self.nagle.nodelay = on;
        self.set_nagle();
    }

    /// `TIPC_NODELAY` is set.
    pub fn nodelay(&self) -> bool {
        self.nagle.nodelay
    }

    /// The largest message that goes unfragmented to the peer (the kernel takes the link's
    /// mss when the connection is set up; [`tipc_transport::wire::MAX_MSG_SIZE`] for a
    /// socket of our own node). Until it is set, 1500.
    pub fn set_max_pkt(&mut self, mss: usize) {
        self.nagle.max_pkt = mss;
        self.set_nagle();
    }

    /// The Nagle buffer size in bytes, 0 when our writes are not delayed (`maxnagle`).
    pub fn max_nagle(&self) -> usize {
        self.nagle.max
    }

    /// Stream data held for Nagle, in messages.
    pub fn nagle_held(&self) -> usize {
        self.nagle.txq.len()
    }

    /// Counters.
    pub fn stats(&self) -> ConnStats {
        self.stats
    }
    /// Block-based flow control in use (the peer has `TIPC_BLOCK_FLOWCTL`).
    pub fn block_flowctl(&self) -> bool {
        self.block_fc
    }
    /// Sent but not yet acknowledged, in blocks (or messages in legacy mode).
    pub fn snt_unacked(&self) -> u32 {
        self.snt_unacked
    }
    /// The peer's advertised window, in blocks (or messages).
    pub fn snd_win(&self) -> u32 {
        self.snd_win
    }
    /// Our receive window (what the next CONN_ACK advertises after its first one).
    pub fn rcv_win(&self) -> u32 {
        self.rcv_win
    }
    /// Consumed since the last CONN_ACK we sent.
    pub fn rcv_unacked(&self) -> u32 {
        self.rcv_unacked
    }
    /// Bytes (truesize) in the receive queue.
    pub fn rx_mem(&self) -> usize {
        self.rx_mem
    }
    /// Items waiting in the receive queue (data, requests, or the end marker).
    pub fn rx_len(&self) -> usize {
        self.rx.len()
    }
    /// The end reason once the connection is over (`Ok` = the peer shut down).
    pub fn end(&self) -> Option<Result<(), ConnError>> {
        self.end
    }

    /// Is a message waiting in [`ConnCore::poll_output`]?
    pub fn has_output(&self) -> bool {
        !self.out.is_empty()
    }

    /// The next message to send, in order: to a node, or a named SYN to resolve first.
    ///
    /// Call repeatedly until it returns `None`, and again after every call that may queue a
    /// message: the inputs [`ConnCore::handle_message`], [`ConnCore::handle_timeout`] and
    /// [`ConnCore::handle_node_lost`], and the commands [`ConnCore::connect`],
    /// [`ConnCore::write`], [`ConnCore::read`] (a CONN_ACK) and [`ConnCore::shutdown`]. A core
    /// returned by [`ConnCore::accept`] starts with its ACK queued.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }
}

/// Nagle state of a stream socket (`struct tipc_sock`: `maxnagle`, `oneway`, `nagle_start`,
/// `expect_ack`, `msg_acc`, `pkt_cnt`, `snd_backlog`, `sk_write_queue`).
#[derive(Debug)]
pub(crate) struct Nagle {
    /// SOCK_STREAM (Nagle is for streams only).
    pub(super) stream: bool,
    /// `TIPC_NODELAY`.
    pub(super) nodelay: bool,
    /// The largest message toward the peer (`max_pkt`: the link's mss).
    pub(super) max_pkt: usize,
    /// Nagle buffer size, 0 = off (`maxnagle`).
    pub(super) max: usize,
    /// Writes since the last message from the peer (`oneway`).
    pub(super) oneway: u32,
    /// Writes before Nagle starts (`nagle_start`).
    pub(super) start: u32,
    /// A message with `ack_required` is out and its nagle ack not back yet.
    pub(super) expect_ack: bool,
    /// Writes appended since the last evaluation (`msg_acc`).
    pub(super) msg_acc: u32,
    /// Messages they went out in (`pkt_cnt`).
    pub(super) pkt_cnt: u32,
    /// Blocks held in `txq`, not yet counted into `snt_unacked` (`snd_backlog`).
    pub(super) backlog: u32,
    /// Messages held (`sk_write_queue`): the last one may still grow.
    pub(super) txq: VecDeque<BytesMut>,
}

impl Nagle {
    fn new() -> Nagle {
        Nagle {
            stream: false,
            nodelay: false,
            max_pkt: MAX_PKT_DEFAULT,
            max: 0,
            oneway: 0,
            start: NAGLE_START_INIT,
            expect_ack: false,
            msg_acc: 0,
            pkt_cnt: 0,
            backlog: 0,
            txq: VecDeque::new(),
        }
    }
}

/// The timers of a connection socket, each with one deadline (or none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// The TCP-style connect gives up (`TIPC_CONN_TIMEOUT`).
    Connect,
    /// The SYN goes again after an OVERLOAD rejection.
    SynRetry,
    /// The next connection probe (or the abort of an unanswered one).
    Probe,
}

/// One deadline per [`Timer`]; the core's timeout is their minimum.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Timers([Option<Instant>; 3]);

impl Timers {
    fn earliest(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }
}

impl std::ops::Index<Timer> for Timers {
    type Output = Option<Instant>;
    fn index(&self, t: Timer) -> &Option<Instant> {
        &self.0[t as usize]
    }
}

impl std::ops::IndexMut<Timer> for Timers {
    fn index_mut(&mut self, t: Timer) -> &mut Option<Instant> {
        &mut self.0[t as usize]
    }
}
