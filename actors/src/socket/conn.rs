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

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tipc_transport::caps;
use tipc_transport::wire::{
    field, user, ConnMgrRepr, ConnMgrType, DataType, ErrorCode, Header, MAX_USER_MSG_SIZE,
    SHORT_H_SIZE,
};
use tipc_transport::NodeAddr;

use super::{build_direct, build_named, reverse, truesize, SendOpts, RCVBUF_DEFAULT, RCVBUF_MIN};
use crate::addr::{Scope, ServiceAddr, SocketAddr};

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
    #[error("connection refused ({0:?})")]
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

/// A tiny xorshift for the OVERLOAD retry delay (the kernel's `get_random_bytes`).
fn xorshift(s: &mut u32) -> u32 {
    let mut x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    x
}

/// Nagle state of a stream socket (`struct tipc_sock`: `maxnagle`, `oneway`, `nagle_start`,
/// `expect_ack`, `msg_acc`, `pkt_cnt`, `snd_backlog`, `sk_write_queue`).
#[derive(Debug)]
struct Nagle {
    /// SOCK_STREAM (Nagle is for streams only).
    stream: bool,
    /// `TIPC_NODELAY`.
    nodelay: bool,
    /// The largest message toward the peer (`max_pkt`: the link's mss).
    max_pkt: usize,
    /// Nagle buffer size, 0 = off (`maxnagle`).
    max: usize,
    /// Writes since the last message from the peer (`oneway`).
    oneway: u32,
    /// Writes before Nagle starts (`nagle_start`).
    start: u32,
    /// A message with `ack_required` is out and its nagle ack not back yet.
    expect_ack: bool,
    /// Writes appended since the last evaluation (`msg_acc`).
    msg_acc: u32,
    /// Messages they went out in (`pkt_cnt`).
    pkt_cnt: u32,
    /// Blocks held in `txq`, not yet counted into `snt_unacked` (`snd_backlog`).
    backlog: u32,
    /// Messages held (`sk_write_queue`): the last one may still grow.
    txq: VecDeque<BytesMut>,
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

/// Flow-control blocks of a message of `len` bytes (`msg_blocks`, `tsk_blocks`).
fn blocks(len: usize) -> u32 {
    (len / FLOWCTL_BLK_SZ) as u32 + 1
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
    connect_deadline: Option<Instant>,
    retry_at: Option<Instant>,
    probe_at: Option<Instant>,
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
            connect_deadline: None,
            retry_at: None,
            probe_at: None,
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

    /// `tsk_set_nagle`: a stream toward a peer with `TIPC_NAGLE`, without `TIPC_NODELAY`,
    /// delays small writes in a buffer of the link's mss (1500 bytes toward our own node).
    fn set_nagle(&mut self) {
        let n = &mut self.nagle;
        n.max = 0;
        if !n.stream || n.nodelay || self.peer_caps & caps::NAGLE == 0 {
            return;
        }
        n.max = if n.max_pkt >= tipc_transport::wire::MAX_MSG_SIZE {
            NAGLE_LOCAL
        } else {
            n.max_pkt
        };
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

    /// The next message to send.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The flow-control increment of a message of `len` bytes (`tsk_inc`).
    pub fn inc(&self, len: usize) -> u32 {
        if self.block_fc {
            (len / FLOWCTL_BLK_SZ) as u32 + 1
        } else {
            1
        }
    }

    /// Is the send window full (`tsk_conn_cong`: `snt_unacked > snd_win`)?
    pub fn congested(&self) -> bool {
        self.snt_unacked > self.snd_win
    }

    /// May a data message be sent now? `Ok(false)`: wait (still connecting, or the window is
    /// full); `Err`: the connection is over or was never set up.
    pub fn can_send(&self) -> Result<bool, ConnError> {
        match self.state {
            ConnState::Established => Ok(!self.congested()),
            ConnState::Connecting => Ok(false),
            ConnState::Disconnecting => Err(match self.end {
                Some(Ok(())) => ConnError::PeerShutdown,
                Some(Err(e)) => e,
                None => ConnError::Closed,
            }),
            ConnState::Open | ConnState::Listen => Err(ConnError::BadState),
        }
    }

    /// Start listening (`listen()`): OPEN -> LISTEN.
    pub fn listen(&mut self) -> Result<(), ConnError> {
        if self.state != ConnState::Open {
            return Err(ConnError::BadState);
        }
        self.state = ConnState::Listen;
        Ok(())
    }

    fn opts(&self) -> SendOpts {
        SendOpts {
            importance: self.importance,
            dest_droppable: false,
            src_droppable: false,
        }
    }

    /// Send the SYN (`connect()` with empty `data`, or the implicit "0-RTT" SYN+ of `sendmsg()`
    /// with data): OPEN -> CONNECTING. The SYN (w0 bit 17) is queued as an [`Output`]; a copy
    /// is kept for an OVERLOAD retry. The connect timer (8 s) starts for `connect()` only: a
    /// SYN+ waits as long as `sendmsg()` does, by default without limit (`__tipc_sendmsg` waits
    /// `sk_sndtimeo`, and neither wait aborts the socket in the kernel), so a slow link never
    /// turns a 0-RTT connection whose data is on its way into [`ConnError::Timeout`].
    pub fn connect(&mut self, dest: SynDest, data: &[u8], now: Instant) -> Result<(), ConnError> {
        if self.state != ConnState::Open {
            return Err(ConnError::BadState);
        }
        let opts = self.opts();
        let msg = match dest {
            SynDest::Socket(sa) => build_direct(self.own, sa, &opts, data),
            SynDest::Service(name) => build_named(
                self.own,
                name,
                SocketAddr { node: 0, port: 0 },
                Scope::Cluster,
                &opts,
                data,
            ),
        };
        let mut msg = msg.map_err(|_| ConnError::TooLarge(data.len()))?;
        Header::new_unchecked(&mut msg[..]).set_flag(field::SYN, true);
        if let SynDest::Socket(sa) = dest {
            self.peer = sa;
        }
        // An implicit SYN+ counts its data and header (§9.5).
        self.snt_unacked = if data.is_empty() {
            0
        } else {
            self.inc(msg.len())
        };
        self.syn = Some((dest, msg.clone().freeze()));
        self.state = ConnState::Connecting;
        self.connect_deadline = data.is_empty().then(|| now + self.conn_timeout);
        self.push_syn(dest, msg);
        if !data.is_empty() {
            self.stats.tx_msgs += 1;
            self.stats.tx_bytes += data.len() as u64;
        }
        Ok(())
    }

    fn push_syn(&mut self, dest: SynDest, msg: BytesMut) {
        match dest {
            SynDest::Socket(sa) => self.out.push_back(Output::ToNode(sa.node, msg)),
            SynDest::Service(name) => self.out.push_back(Output::Lookup(name, msg)),
        }
    }

    /// The SYN could not be sent at all (no binding, no route): CONNECTING -> DISCONNECTING.
    pub fn connect_failed(&mut self, why: ConnError) {
        if self.state == ConnState::Connecting {
            self.abort(Err(why));
        }
    }

    /// A named SYN ([`Output::Lookup`]) was resolved and sent to `node`: a loss of that node
    /// now fails the connect with [`ConnError::NoNode`] ([`ConnCore::node_lost`]), as it does
    /// for a SYN to a socket address. Without it a 0-RTT SYN+, which has no connect timeout,
    /// would wait for a lost node forever.
    pub fn syn_sent_to(&mut self, node: NodeAddr) {
        if self.state == ConnState::Connecting && self.peer.node == 0 {
            self.peer.node = node;
        }
    }

    /// `tipc_sk_finish_conn`: ESTABLISHED with `peer`, flow-control mode from its caps.
    fn finish_conn(&mut self, peer: SocketAddr, peer_caps: u16, now: Instant) {
        self.peer = peer;
        self.state = ConnState::Established;
        self.syn = None;
        self.connect_deadline = None;
        self.retry_at = None;
        self.probe_at = Some(now + CONN_PROBING_INTV);
        self.probe_unacked = false;
        self.block_fc = peer_caps & caps::BLOCK_FLOWCTL != 0;
        self.peer_caps = peer_caps;
        self.nagle.txq.clear();
        self.nagle.backlog = 0;
        self.set_nagle();
        if !self.block_fc {
            self.rcv_win = FLOWCTL_MSG_WIN;
            self.snd_win = FLOWCTL_MSG_WIN;
        }
    }

    fn abort(&mut self, why: Result<(), ConnError>) {
        // Held stream data cannot be delivered any more (the kernel purges its write queue).
        self.nagle.txq.clear();
        self.nagle.backlog = 0;
        self.state = ConnState::Disconnecting;
        self.end.get_or_insert(why);
        self.syn = None;
        self.connect_deadline = None;
        self.retry_at = None;
        self.probe_at = None;
    }

    /// Send `data` (at most 66000 bytes) on the established connection: one iteration of the
    /// kernel's `__tipc_sendstream`. The caller checks [`ConnCore::can_send`] first (the
    /// kernel waits before each message, so the window may be overshot by one message, and
    /// by the held Nagle data when it is pushed). What goes out is queued as
    /// [`Output::ToNode`] messages, in order.
    ///
    /// Nagle (a stream toward a `TIPC_NAGLE` peer, §9.6): from the `nagle_start`-th write
    /// since the last message from the peer, a write that fits the Nagle buffer is appended
    /// to the held messages. While a message with `ack_required` is unanswered they stay held
    /// (up to 64 blocks); otherwise they go out with `ack_required` on the last one. The
    /// peer's nagle ack, any message from the peer, and [`ConnCore::shutdown`] push held data
    /// out.
    pub fn write(&mut self, data: &[u8]) -> Result<(), ConnError> {
        if self.state != ConnState::Established {
            return Err(self.can_send().err().unwrap_or(ConnError::BadState));
        }
        if data.len() > MAX_USER_MSG_SIZE {
            return Err(ConnError::TooLarge(data.len()));
        }
        self.stats.tx_bytes += data.len() as u64;
        let mut blocks = self.nagle.backlog;
        let oneway = self.nagle.oneway;
        self.nagle.oneway = oneway.saturating_add(1);
        let max = self.nagle.max;
        if oneway >= self.nagle.start && max > 0 && data.len() <= max {
            blocks += self.nagle_append(data, max);
            self.stats.nagled += 1;
            let n = &mut self.nagle;
            n.msg_acc += 1;
            if blocks <= NAGLE_MAX_BACKLOG && n.expect_ack {
                n.backlog = blocks;
                return Ok(());
            } else if blocks > NAGLE_MAX_BACKLOG {
                n.pkt_cnt += n.txq.len() as u32;
            } else {
                n.expect_ack = Self::mark_ack_required(&mut n.txq);
                n.msg_acc = 0;
                n.pkt_cnt = 0;
            }
        } else {
            let msg = if data.len() >= TX_POOL_MIN {
                let buf = self.tx_pool.take(SHORT_H_SIZE + data.len());
                self.short_msg_in(buf, self.importance, 0, data)
            } else {
                self.short_msg(self.importance, 0, data)
            };
            self.nagle.txq.push_back(msg);
            blocks += self.inc(data.len() + SHORT_H_SIZE);
        }
        self.snt_unacked += blocks;
        self.nagle.backlog = 0;
        self.send_txq();
        Ok(())
    }

    /// Set `ack_required` on the last held message; false if none is held.
    fn mark_ack_required(txq: &mut VecDeque<BytesMut>) -> bool {
        match txq.back_mut() {
            Some(m) => {
                Header::new_unchecked(&mut m[..]).set_flag(field::BIT18, true);
                true
            }
            None => false,
        }
    }

    /// Everything held goes out, in order.
    fn send_txq(&mut self) {
        let to = self.peer.node;
        self.stats.tx_msgs += self.nagle.txq.len() as u64;
        for m in self.nagle.txq.drain(..) {
            self.out.push_back(Output::ToNode(to, m));
        }
    }

    /// `tipc_msg_append`: `data` appended to the last held message while it is below `max`
    /// bytes, then to new 24-byte-header messages of up to `max` bytes. Returns the blocks
    /// added.
    fn nagle_append(&mut self, data: &[u8], max: usize) -> u32 {
        let mut added = 0;
        let mut rem = data;
        loop {
            if self.nagle.txq.back().is_none_or(|m| m.len() >= max) {
                let mut m = BytesMut::with_capacity(max);
                m.extend_from_slice(&self.short_msg(self.importance, 0, &[]));
                self.nagle.txq.push_back(m);
                added += 1;
            }
            let Some(m) = self.nagle.txq.back_mut() else {
                return added;
            };
            let before = blocks(m.len());
            let n = rem.len().min(max - m.len());
            m.extend_from_slice(&rem[..n]);
            let len = m.len();
            Header::new_unchecked(&mut m[..]).set(field::SIZE, len as u32);
            added += blocks(len) - before;
            rem = &rem[n..];
            if rem.is_empty() {
                return added;
            }
        }
    }

    /// `tipc_sk_push_backlog`: held data goes out. On a nagle ack the round is judged first:
    /// fewer than two writes per message sent means Nagle did not pay, and it starts later
    /// next time (doubling up to 1024 writes); otherwise the last held message asks for the
    /// next ack.
    fn push_backlog(&mut self, nagle_ack: bool) {
        let n = &mut self.nagle;
        if nagle_ack {
            n.pkt_cnt += n.txq.len() as u32;
            if n.pkt_cnt == 0 || n.msg_acc / n.pkt_cnt < 2 {
                n.oneway = 0;
                if n.start < NAGLE_START_MAX {
                    n.start *= 2;
                }
                n.expect_ack = false;
            } else {
                n.start = NAGLE_START_INIT;
                n.expect_ack = Self::mark_ack_required(&mut n.txq);
            }
            n.msg_acc = 0;
            n.pkt_cnt = 0;
        }
        if n.txq.is_empty() || self.state != ConnState::Established {
            return;
        }
        if n.msg_acc > 0 {
            n.pkt_cnt += n.txq.len() as u32;
        }
        self.snt_unacked += n.backlog;
        n.backlog = 0;
        self.send_txq();
    }

    /// A 24-byte-header CONN_MSG from us to the peer (`tipc_msg_create` with `SHORT_H_SIZE`).
    fn short_msg(&self, importance: u8, err: u8, data: &[u8]) -> BytesMut {
        let buf = BytesMut::with_capacity(SHORT_H_SIZE + data.len());
        self.short_msg_in(buf, importance, err, data)
    }

    /// [`ConnCore::short_msg`] built in `buf` (empty, with room for it).
    fn short_msg_in(&self, mut buf: BytesMut, importance: u8, err: u8, data: &[u8]) -> BytesMut {
        // Header room zeroed, the data copied once (no zeroing of up to 66 KB first).
        buf.clear();
        buf.resize(SHORT_H_SIZE, 0);
        buf.extend_from_slice(data);
        let mut h = Header::new_unchecked(&mut buf[..]);
        h.init(
            importance,
            DataType::Conn as u8,
            SHORT_H_SIZE,
            SHORT_H_SIZE + data.len(),
            self.own.node,
        );
        h.set(field::ERRCODE, err as u32);
        h.set(field::ORIGPORT, self.own.port);
        h.set(field::DESTPORT, self.peer.port);
        buf
    }

    /// A CONN_MANAGER message from us to the peer (40 bytes, nodes and ports set).
    fn proto_msg(&self, mtype: ConnMgrType, conn_ack: u16, adv_win: u16) -> BytesMut {
        let r = ConnMgrRepr {
            mtype,
            dest_droppable: false,
            nagle_ack: false,
            errcode: 0,
            bcast_ack: 0,
            ack: 0,
            seqno: 0,
            prevnode: self.own.node,
            origport: self.own.port,
            destport: self.peer.port,
            orignode: self.own.node,
            destnode: self.peer.node,
            conn_ack,
            adv_win,
            data: &[],
        };
        let mut buf = BytesMut::zeroed(r.buffer_len());
        r.emit(&mut buf);
        buf
    }

    /// `tipc_sk_build_ack`: a CONN_ACK carrying the consumed count (reset to 0); with block
    /// flow control the receive window becomes the advertised one (512 blocks by default).
    fn build_ack(&mut self) -> BytesMut {
        let consumed = self.rcv_unacked.min(0xFFFF) as u16;
        self.rcv_unacked = 0;
        let adv = if self.block_fc {
            self.rcv_win = (self.rcvbuf / FLOWCTL_BLK_SZ / 4) as u32;
            self.rcv_win.min(0xFFFF) as u16
        } else {
            0
        };
        self.stats.acks_sent += 1;
        self.proto_msg(ConnMgrType::Ack, consumed, adv)
    }

    /// Queue the reversed copy of `msg` (if returnable), counting a rejection.
    fn reject(&mut self, msg: &[u8], err: ErrorCode) -> Verdict {
        self.stats.rejected += 1;
        if let Some(ret) = reverse(msg, err, self.own.node) {
            let to = Header::new_unchecked(&ret[..]).destnode();
            self.out.push_back(Output::ToNode(to, ret));
        }
        Verdict::Rejected(err)
    }

    fn drop_msg(&mut self) -> Verdict {
        self.stats.dropped += 1;
        Verdict::Dropped
    }

    /// The receive limit for `msg` (`rcvbuf_limit`).
    fn rcv_limit(&self, h: &Header<&[u8]>) -> usize {
        if h.mtype() != DataType::Conn as u8 {
            return self.rcvbuf << h.user().min(3);
        }
        if self.block_fc {
            self.rcvbuf
        } else {
            flowctl_msg_lim()
        }
    }

    fn enqueue(&mut self, msg: Bytes, h: &Header<&[u8]>) -> Verdict {
        let ts = truesize(msg.len());
        if self.rx_mem + ts >= self.rcv_limit(h) {
            return self.reject(&msg, ErrorCode::Overload);
        }
        self.rx_mem += ts;
        self.rx.push_back(RxItem { msg, truesize: ts });
        Verdict::Queued
    }

    /// A message for this socket (`tipc_sk_filter_rcv` for connection sockets).
    ///
    /// `sender_caps` are the capabilities of the message's originating node (its SYN_BIT and
    /// BLOCK_FLOWCTL matter). Responses (rejections, acks, probe replies) are queued as
    /// [`Output`]s.
    pub fn on_message(&mut self, msg: Bytes, sender_caps: u16, now: Instant) -> Verdict {
        let Ok(h) = Header::new_checked(&msg[..]) else {
            return self.drop_msg();
        };
        let usr = h.user();
        if usr == user::CONN_MANAGER {
            return self.on_proto(&msg);
        }
        if usr > user::CRITICAL {
            return self.drop_msg();
        }
        let mtype = h.mtype();
        if mtype > DataType::Direct as u8 || mtype == DataType::Mcast as u8 {
            // Group and multicast messages: not for a connection socket.
            if mtype == DataType::Mcast as u8 {
                return self.drop_msg();
            }
            return self.reject(&msg, ErrorCode::NoPort);
        }
        // Any message from anyone ends a run of one-way writes (`tipc_sk_filter_connect`).
        self.nagle.oneway = 0;
        let con_msg = mtype == DataType::Conn as u8;
        let err = h.errcode();
        let oport = h.origport();
        let onode = h.orignode();
        match self.state {
            ConnState::Connecting => {
                if con_msg {
                    if err != 0 {
                        self.abort(Err(ConnError::Refused(
                            ErrorCode::from_u8(err).unwrap_or(ErrorCode::NoPort),
                        )));
                        return Verdict::Consumed;
                    }
                    self.finish_conn(
                        SocketAddr {
                            node: onode,
                            port: oport,
                        },
                        sender_caps,
                        now,
                    );
                    self.importance = h.user();
                    if h.payload().is_empty() {
                        return Verdict::Consumed;
                    }
                    self.stats.rx_msgs += 1;
                    return self.enqueue(msg.clone(), &h);
                }
                // Only our own SYN coming back counts; anything else is ignored.
                let ours = err != 0 && h.flag(field::SYN) && h.destport() == self.own.port;
                let from_peer = self.peer.port == 0 || (oport == self.peer.port);
                if !ours || !from_peer {
                    return self.drop_msg();
                }
                let code = ErrorCode::from_u8(err).unwrap_or(ErrorCode::NoPort);
                if code != ErrorCode::Overload || self.syn.is_none() {
                    self.abort(Err(ConnError::Refused(code)));
                    return Verdict::Consumed;
                }
                let quarter = (self.conn_timeout.as_millis() as u64 / 4).max(1);
                let ms = 100 + xorshift(&mut self.rng) as u64 % quarter;
                self.retry_at = Some(now + Duration::from_millis(ms));
                Verdict::Consumed
            }
            ConnState::Open | ConnState::Disconnecting => self.reject(&msg, ErrorCode::NoPort),
            ConnState::Listen => {
                if !h.flag(field::SYN) && sender_caps & caps::SYN_BIT != 0 {
                    return self.reject(&msg, ErrorCode::NoPort);
                }
                if con_msg || err != 0 {
                    return self.reject(&msg, ErrorCode::NoPort);
                }
                self.enqueue(msg.clone(), &h)
            }
            ConnState::Established => {
                self.push_backlog(false);
                if con_msg && err == 0 && oport == self.peer.port && onode == self.peer.node {
                    if h.flag(field::BIT18) {
                        // ack_required (Nagle): answer at once with a nagle CONN_ACK.
                        let mut ack = self.build_ack();
                        Header::new_unchecked(&mut ack[..]).set_flag(field::BIT18, true);
                        self.out.push_back(Output::ToNode(self.peer.node, ack));
                    }
                    self.stats.rx_msgs += 1;
                    return self.enqueue(msg.clone(), &h);
                }
                if !self.is_peer_msg(&h) {
                    return self.reject(&msg, ErrorCode::NoPort);
                }
                if err == 0 {
                    self.stats.rx_msgs += 1;
                    return self.enqueue(msg.clone(), &h);
                }
                // FIN (or one of our messages returned, or the local node-lost abort).
                let why = match ConnError::from_code(err) {
                    ConnError::PeerShutdown => Ok(()),
                    e => Err(e),
                };
                self.abort(why);
                self.rx.push_back(RxItem {
                    msg: msg.clone(),
                    truesize: 0,
                });
                Verdict::Queued
            }
        }
    }

    /// `tsk_peer_msg`: from the connected peer socket?
    fn is_peer_msg(&self, h: &Header<&[u8]>) -> bool {
        if self.state != ConnState::Established || h.origport() != self.peer.port {
            return false;
        }
        let orig = h.orignode();
        orig == self.peer.node
            || (orig == 0 && self.peer.node == self.own.node)
            || (self.peer.node == 0 && orig == self.own.node)
    }

    /// CONN_MANAGER (`tipc_sk_conn_proto_rcv`): probe, probe reply, ack.
    fn on_proto(&mut self, msg: &Bytes) -> Verdict {
        let Ok(h) = Header::new_checked(&msg[..]) else {
            return self.drop_msg();
        };
        let Ok(r) = ConnMgrRepr::parse(&h) else {
            return self.drop_msg();
        };
        if !self.is_peer_msg(&h) {
            return self.drop_msg();
        }
        if r.errcode != 0 {
            self.abort(Err(ConnError::from_code(r.errcode)));
            self.rx.push_back(RxItem {
                msg: msg.clone(),
                truesize: 0,
            });
            return Verdict::Queued;
        }
        self.probe_unacked = false;
        match r.mtype {
            ConnMgrType::Probe => {
                if let Some(mut rep) = reverse(msg, ErrorCode::Ok, self.own.node) {
                    Header::new_unchecked(&mut rep[..])
                        .set(field::MTYPE, ConnMgrType::ProbeReply as u32);
                    let to = Header::new_unchecked(&rep[..]).destnode();
                    self.out.push_back(Output::ToNode(to, rep));
                }
            }
            ConnMgrType::Ack => {
                self.stats.acks_rcvd += 1;
                self.push_backlog(r.nagle_ack);
                let n = r.conn_ack as u32;
                if n <= self.snt_unacked {
                    self.snt_unacked -= n;
                    if self.block_fc {
                        self.snd_win = r.adv_win as u32;
                    }
                }
            }
            ConnMgrType::ProbeReply => {}
        }
        Verdict::Consumed
    }

    /// Take the next received unit (`recvmsg`): data counts into the consumed count when it is
    /// read, and a CONN_ACK is queued once that count reaches `rcv_win / 4`. After the last
    /// data the end is reported on every call; `None` while nothing is there.
    pub fn read(&mut self) -> Option<Read> {
        if self.state == ConnState::Listen {
            return None;
        }
        let item = match self.rx.pop_front() {
            Some(i) => i,
            // After the last data the end is reported, as often as asked.
            None => return self.end.map(Read::End),
        };
        self.rx_mem -= item.truesize;
        let h = Header::new_unchecked(&item.msg[..]);
        if h.errcode() != 0 {
            // The end marker: report it, drop what follows.
            self.rx.clear();
            self.rx_mem = 0;
            return Some(Read::End(self.end.unwrap_or(Err(ConnError::Reset))));
        }
        let hlen = h.header_len();
        let data = item
            .msg
            .slice(hlen.min(h.size())..h.size().min(item.msg.len()));
        if self.state == ConnState::Established {
            self.rcv_unacked += self.inc(h.size());
            if self.rcv_unacked >= self.rcv_win / TIPC_ACK_RATE {
                let ack = self.build_ack();
                self.out.push_back(Output::ToNode(self.peer.node, ack));
            }
        }
        Some(Read::Data(data))
    }

    /// Has [`ConnCore::read`] something to return?
    pub fn readable(&self) -> bool {
        self.state != ConnState::Listen && (!self.rx.is_empty() || self.end.is_some())
    }

    /// LISTEN: take the next connection request and create the accepted socket (`tipc_accept`)
    /// at `new_own`: ESTABLISHED with the request's `{orignode, origport}`, the request's
    /// importance, its data (if any) queued, and the empty ACK `CONN_MSG` queued on the new
    /// core. `peer_caps` are the requester's node capabilities.
    pub fn accept(
        &mut self,
        new_own: SocketAddr,
        peer_caps: u16,
        now: Instant,
    ) -> Option<ConnCore> {
        if self.state != ConnState::Listen {
            return None;
        }
        let item = self.rx.pop_front()?;
        self.rx_mem -= item.truesize;
        let h = Header::new_unchecked(&item.msg[..]);
        let peer = SocketAddr {
            node: h.orignode(),
            port: h.origport(),
        };
        let mut c = ConnCore::new(new_own);
        c.nagle.stream = self.nagle.stream;
        c.nagle.nodelay = self.nagle.nodelay;
        c.importance = h.user().min(3);
        if h.is_data()
            && h.mtype() == DataType::Named as u8
            && h.header_len() >= tipc_transport::wire::NAMED_H_SIZE
        {
            c.dest_name = Some(ServiceAddr {
                type_: h.get(field::NAMETYPE),
                instance: h.get(field::NAMEINST),
            });
        }
        c.finish_conn(peer, peer_caps, now);
        if !h.payload().is_empty() {
            c.stats.rx_msgs += 1;
            let ts = truesize(item.msg.len());
            c.rx_mem += ts;
            c.rx.push_back(RxItem {
                msg: item.msg.clone(),
                truesize: ts,
            });
        }
        // The ACK: an empty stream send, counted like one (`__tipc_sendstream`).
        let ack = c.short_msg(c.importance, 0, &[]);
        c.snt_unacked += c.inc(SHORT_H_SIZE);
        c.nagle.oneway = 1;
        c.out.push_back(Output::ToNode(peer.node, ack));
        Some(c)
    }

    /// The origin `{orignode, origport}` of the next connection request (LISTEN).
    pub fn peek_request(&self) -> Option<SocketAddr> {
        if self.state != ConnState::Listen {
            return None;
        }
        let h = Header::new_unchecked(&self.rx.front()?.msg[..]);
        Some(SocketAddr {
            node: h.orignode(),
            port: h.origport(),
        })
    }

    /// Pending connection requests (LISTEN).
    pub fn backlog(&self) -> usize {
        if self.state == ConnState::Listen {
            self.rx.len()
        } else {
            0
        }
    }

    /// `__tipc_shutdown` with `err` (`NoPort` for `close()`, `ConnShutdown` for `shutdown()`):
    /// CONNECTING/ESTABLISHED -> DISCONNECTING with a FIN to the peer (the first unread message
    /// rejected back with `err`, else an empty CRITICAL CONN_MSG with errcode `err`); LISTEN
    /// rejects every pending request with `err`. Nothing is sent in other states.
    pub fn shutdown(&mut self, err: ErrorCode) {
        match self.state {
            ConnState::Connecting | ConnState::Established => {
                let was_connected = self.state == ConnState::Established;
                // Held stream data goes out before the FIN.
                self.push_backlog(false);
                self.abort(Err(ConnError::Closed));
                // Unread data is rejected back as the FIN.
                let first = self
                    .rx
                    .iter()
                    .position(|i| Header::new_unchecked(&i.msg[..]).errcode() == 0);
                if let Some(i) = first {
                    let m = self.rx[i].msg.clone();
                    self.rx.clear();
                    self.rx_mem = 0;
                    if let Some(ret) = reverse(&m, err, self.own.node) {
                        let to = Header::new_unchecked(&ret[..]).destnode();
                        self.out.push_back(Output::ToNode(to, ret));
                        return;
                    }
                }
                self.rx.clear();
                self.rx_mem = 0;
                if was_connected || self.peer.port != 0 {
                    let fin = self.short_msg(user::CRITICAL, err as u8, &[]);
                    self.out.push_back(Output::ToNode(self.peer.node, fin));
                }
            }
            ConnState::Listen => {
                self.state = ConnState::Disconnecting;
                self.end = Some(Err(ConnError::Closed));
                while let Some(i) = self.rx.pop_front() {
                    let _ = self.reject(&i.msg, err);
                }
                self.rx_mem = 0;
            }
            ConnState::Open => {
                self.state = ConnState::Disconnecting;
                self.end = Some(Err(ConnError::Closed));
            }
            ConnState::Disconnecting => {}
        }
    }

    /// The abort the local node generates for a connection whose peer node was lost
    /// (`node_lost_contact`): a CRITICAL CONN_MSG, 24-byte header, errcode `NO_NODE`, that
    /// looks as if it came from the peer socket. `None` unless connected to `node`.
    pub fn node_lost_msg(&self, node: NodeAddr) -> Option<Bytes> {
        if self.state != ConnState::Established || self.peer.node != node {
            return None;
        }
        let mut buf = BytesMut::zeroed(SHORT_H_SIZE);
        let mut h = Header::new_unchecked(&mut buf[..]);
        h.init(
            user::CRITICAL,
            DataType::Conn as u8,
            SHORT_H_SIZE,
            SHORT_H_SIZE,
            node,
        );
        h.set(field::ERRCODE, ErrorCode::NoNode as u32);
        h.set(field::ORIGPORT, self.peer.port);
        h.set(field::DESTPORT, self.own.port);
        Some(buf.freeze())
    }

    /// The peer node was lost: an established connection to it ends with
    /// [`ConnError::NoNode`] (through [`ConnCore::node_lost_msg`]); a connection request to it
    /// fails the same way. Returns true if this socket was affected.
    pub fn node_lost(&mut self, node: NodeAddr, now: Instant) -> bool {
        if let Some(m) = self.node_lost_msg(node) {
            return self.on_message(m, 0, now) == Verdict::Queued;
        }
        if self.state == ConnState::Connecting && self.peer.node == node && node != 0 {
            self.abort(Err(ConnError::NoNode));
            return true;
        }
        false
    }

    /// When [`ConnCore::handle_timeout`] wants to run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.connect_deadline, self.retry_at, self.probe_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// Timers: connect timeout (-> [`ConnError::Timeout`]), the OVERLOAD retry of the SYN,
    /// and connection probing (a probe every hour; one left unanswered aborts with
    /// [`ConnError::Aborted`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.connect_deadline.is_some_and(|t| now >= t) {
            if self.state == ConnState::Connecting {
                self.abort(Err(ConnError::Timeout));
            }
            self.connect_deadline = None;
        }
        if self.retry_at.is_some_and(|t| now >= t) {
            self.retry_at = None;
            if self.state == ConnState::Connecting {
                if let Some((dest, syn)) = self.syn.clone() {
                    self.push_syn(dest, BytesMut::from(&syn[..]));
                }
            }
        }
        if self.probe_at.is_some_and(|t| now >= t) {
            if self.state != ConnState::Established {
                self.probe_at = None;
            } else if self.probe_unacked {
                self.abort(Err(ConnError::Aborted));
            } else {
                let p = self.proto_msg(ConnMgrType::Probe, 0, 0);
                self.out.push_back(Output::ToNode(self.peer.node, p));
                self.probe_unacked = true;
                self.probe_at = Some(now + CONN_PROBING_INTV);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tipc_transport::OWN_CAPABILITIES;

    const A: NodeAddr = 0x6100_0000;
    const B: NodeAddr = 0x6200_0000;
    const LEGACY: u16 = OWN_CAPABILITIES & !(caps::BLOCK_FLOWCTL | caps::SYN_BIT);

    fn sa(node: NodeAddr, port: u32) -> SocketAddr {
        SocketAddr { node, port }
    }

    /// A kernel vector with the link-stamped fields (w1 bits 15-0, w2) zeroed.
    fn vector(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/../transport/tests/vectors/eth/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        let text = std::fs::read_to_string(path).expect("vector");
        let hex: String = text
            .lines()
            .filter(|l| !l.trim_start().starts_with('#'))
            .flat_map(|l| l.chars())
            .filter(|c| !c.is_whitespace())
            .collect();
        let mut v: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        v[6..12].fill(0);
        v
    }

    fn outputs(c: &mut ConnCore) -> Vec<Output> {
        let mut v = Vec::new();
        while let Some(o) = c.poll_output() {
            v.push(o);
        }
        v
    }

    fn only_msg(c: &mut ConnCore) -> (NodeAddr, BytesMut) {
        let mut o = outputs(c);
        assert_eq!(o.len(), 1, "{o:?}");
        match o.remove(0) {
            Output::ToNode(n, m) => (n, m),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn hdr(m: &[u8]) -> Header<&[u8]> {
        Header::new_checked(m).expect("valid")
    }

    /// Client at `c` connected (by a direct SYN, then the peer's ACK) to server `s`.
    fn established(c: SocketAddr, s: SocketAddr, caps: u16, now: Instant) -> ConnCore {
        let mut core = ConnCore::new(c);
        core.connect(SynDest::Socket(s), &[], now).unwrap();
        outputs(&mut core);
        let mut srv = ConnCore::new(s);
        srv.peer = c;
        let ack = srv.short_msg(0, 0, &[]);
        assert_eq!(core.on_message(ack.freeze(), caps, now), Verdict::Consumed);
        assert_eq!(core.state(), ConnState::Established);
        core
    }

    /// A message from the peer `s` to `c` as the peer's core would build it.
    fn from_peer(c: SocketAddr, s: SocketAddr, err: u8, data: &[u8]) -> Bytes {
        let mut srv = ConnCore::new(s);
        srv.peer = c;
        srv.short_msg(0, err, data).freeze()
    }

    fn conn_ack(c: SocketAddr, s: SocketAddr, n: u16, adv: u16) -> Bytes {
        let mut srv = ConnCore::new(s);
        srv.peer = c;
        srv.proto_msg(ConnMgrType::Ack, n, adv).freeze()
    }

    #[test]
    fn connect_named_syn_matches_kernel_vector() {
        let now = Instant::now();
        let mut c = ConnCore::new(sa(A, 0x7b7c_24ee));
        c.connect(
            SynDest::Service(ServiceAddr {
                type_: 2000,
                instance: 1,
            }),
            &[],
            now,
        )
        .unwrap();
        assert_eq!(c.state(), ConnState::Connecting);
        let mut o = outputs(&mut c);
        let Some(Output::Lookup(name, mut syn)) = o.pop() else {
            panic!("expected a lookup");
        };
        assert_eq!(name.type_, 2000);
        // The name table stamps the lookup result.
        let mut h = Header::new_unchecked(&mut syn[..]);
        h.set(field::DESTNODE, B);
        h.set(field::DESTPORT, 0xdd9a_5e82);
        assert_eq!(&syn[..], &vector("126-data-low-named-a2b-syn.hex")[..]);
    }

    #[test]
    fn accept_ack_and_data_match_kernel_vectors() {
        let now = Instant::now();
        let mut l = ConnCore::new(sa(B, 1000));
        l.listen().unwrap();
        let mut client = ConnCore::new(sa(A, 0x0e20_9a8e));
        client
            .connect(SynDest::Socket(sa(B, 1000)), &[], now)
            .unwrap();
        let (_, syn) = only_msg(&mut client);
        assert_eq!(
            l.on_message(syn.freeze(), OWN_CAPABILITIES, now),
            Verdict::Queued
        );
        assert_eq!(l.backlog(), 1);
        assert_eq!(l.peek_request(), Some(sa(A, 0x0e20_9a8e)));
        let mut s = l.accept(sa(B, 0x86ae_c7bb), OWN_CAPABILITIES, now).unwrap();
        assert_eq!(l.backlog(), 0);
        assert_eq!(s.state(), ConnState::Established);
        let (to, ack) = only_msg(&mut s);
        assert_eq!(to, A);
        assert_eq!(&ack[..], &vector("070-data-low-conn-b2a-empty.hex")[..]);
        s.write(b"ifirst").unwrap();
        let (to, data) = only_msg(&mut s);
        assert_eq!(to, A);
        assert_eq!(&data[..], &vector("071-data-low-conn-b2a.hex")[..]);
        // The client completes with the accepted socket (not the listener).
        assert_eq!(
            client.on_message(ack.freeze(), OWN_CAPABILITIES, now),
            Verdict::Consumed
        );
        assert_eq!(client.state(), ConnState::Established);
        assert_eq!(client.peer(), sa(B, 0x86ae_c7bb));
    }

    #[test]
    fn accept_of_named_request_records_the_service_asked_for() {
        let now = Instant::now();
        let name = ServiceAddr {
            type_: 18_888,
            instance: 17,
        };
        let mut client = ConnCore::new(sa(A, 5));
        client.connect(SynDest::Service(name), b"q", now).unwrap();
        let mut o = outputs(&mut client);
        let Some(Output::Lookup(n, mut syn)) = o.pop() else {
            panic!("a named SYN is resolved by its sender: {o:?}");
        };
        assert_eq!(n, name);
        {
            let mut h = Header::new_unchecked(&mut syn[..]);
            h.set(field::DESTNODE, B);
            h.set(field::DESTPORT, 1000);
        }
        let mut l = ConnCore::new(sa(B, 1000));
        l.listen().unwrap();
        l.on_message(syn.freeze(), OWN_CAPABILITIES, now);
        let s = l.accept(sa(B, 1001), OWN_CAPABILITIES, now).unwrap();
        assert_eq!(s.dest_name(), Some(name));
        assert_eq!(client.dest_name(), None);
        // By socket address: no name.
        let mut c2 = ConnCore::new(sa(A, 6));
        c2.connect(SynDest::Socket(sa(B, 1000)), &[], now).unwrap();
        let (_, syn) = only_msg(&mut c2);
        l.on_message(syn.freeze(), OWN_CAPABILITIES, now);
        let s2 = l.accept(sa(B, 1002), OWN_CAPABILITIES, now).unwrap();
        assert_eq!(s2.dest_name(), None);
    }

    #[test]
    fn shutdown_fin_matches_kernel_vector() {
        let now = Instant::now();
        let mut c = established(
            sa(A, 0x7b7c_24ee),
            sa(B, 0x6d5c_ae2e),
            OWN_CAPABILITIES,
            now,
        );
        c.shutdown(ErrorCode::ConnShutdown);
        assert_eq!(c.state(), ConnState::Disconnecting);
        let (to, fin) = only_msg(&mut c);
        assert_eq!(to, B);
        assert_eq!(
            &fin[..],
            &vector("129-data-critical-conn-a2b-err-conn_shutdown.hex")[..]
        );
        assert_eq!(c.can_send(), Err(ConnError::Closed));
        // A second shutdown sends nothing.
        c.shutdown(ErrorCode::NoPort);
        assert!(outputs(&mut c).is_empty());
    }

    #[test]
    fn read_acks_after_consuming_rcv_win_quarter_matching_kernel_vector() {
        let now = Instant::now();
        let (me, peer) = (sa(B, 0x6376_7181), sa(A, 0xb97e_9214));
        let mut c = established(me, peer, OWN_CAPABILITIES, now);
        let big = vec![0x55u8; 20000];
        for _ in 0..2 {
            assert_eq!(
                c.on_message(from_peer(me, peer, 0, &big), OWN_CAPABILITIES, now),
                Verdict::Queued
            );
        }
        // Counted when read, not on arrival.
        assert!(outputs(&mut c).is_empty());
        assert_eq!(c.read(), Some(Read::Data(Bytes::from(big.clone()))));
        assert_eq!(c.rcv_unacked(), 20);
        assert!(outputs(&mut c).is_empty());
        assert_eq!(c.read(), Some(Read::Data(Bytes::from(big))));
        // 40 blocks >= 128 / 4: CONN_ACK conn_ack=40, adv_win=512.
        let (to, ack) = only_msg(&mut c);
        assert_eq!(to, A);
        assert_eq!(&ack[..], &vector("076-conn-manager-conn-ack-b2a.hex")[..]);
        assert_eq!(c.rcv_unacked(), 0);
        assert_eq!(c.rcv_win(), ADV_WIN);
    }

    #[test]
    fn send_blocks_when_window_exceeded_and_ack_reopens_it() {
        let now = Instant::now();
        let (me, peer) = (sa(A, 10), sa(B, 20));
        let mut c = established(me, peer, OWN_CAPABILITIES, now);
        assert_eq!(c.snd_win(), INITIAL_WIN);
        let chunk = vec![0u8; 1000]; // 1024 bytes with the header: 2 blocks.
        let mut sent = 0;
        while c.can_send() == Ok(true) {
            c.write(&chunk).unwrap();
            sent += 1;
        }
        assert_eq!(c.snt_unacked(), 130);
        assert_eq!(sent, 65);
        // An ack for more than was sent is ignored.
        c.on_message(conn_ack(me, peer, 131, 512), OWN_CAPABILITIES, now);
        assert_eq!(c.snt_unacked(), 130);
        assert_eq!(c.snd_win(), INITIAL_WIN);
        c.on_message(conn_ack(me, peer, 40, 512), OWN_CAPABILITIES, now);
        assert_eq!(c.snt_unacked(), 90);
        assert_eq!(c.snd_win(), 512);
        assert_eq!(c.can_send(), Ok(true));
        assert_eq!(c.stats().acks_rcvd, 2);
    }

    #[test]
    fn legacy_peer_uses_message_counting_and_no_adv_win() {
        let now = Instant::now();
        let (me, peer) = (sa(A, 10), sa(B, 20));
        let mut c = established(me, peer, LEGACY, now);
        assert!(!c.block_flowctl());
        assert_eq!(
            (c.snd_win(), c.rcv_win()),
            (FLOWCTL_MSG_WIN, FLOWCTL_MSG_WIN)
        );
        c.write(&[0u8; 60000]).unwrap();
        assert_eq!(outputs(&mut c).len(), 1);
        assert_eq!(c.snt_unacked(), 1);
        for _ in 0..128 {
            c.on_message(from_peer(me, peer, 0, b"x"), LEGACY, now);
        }
        for i in 0..128 {
            assert!(matches!(c.read(), Some(Read::Data(_))));
            let o = outputs(&mut c);
            if i < 127 {
                assert!(o.is_empty());
            } else {
                let Some(Output::ToNode(_, ack)) = o.into_iter().next() else {
                    panic!("no ack after 128 messages");
                };
                let h = hdr(&ack);
                assert_eq!(h.get(field::CONN_ACK), 128);
                assert_eq!(h.get(field::ADV_WIN), 0);
            }
        }
        // A legacy ack never changes the window.
        c.on_message(conn_ack(me, peer, 1, 77), LEGACY, now);
        assert_eq!((c.snt_unacked(), c.snd_win()), (0, FLOWCTL_MSG_WIN));
    }

    #[test]
    fn ack_required_gets_immediate_nagle_ack() {
        let now = Instant::now();
        let (me, peer) = (sa(A, 10), sa(B, 20));
        let mut c = established(me, peer, OWN_CAPABILITIES, now);
        let mut m = BytesMut::from(&from_peer(me, peer, 0, b"abc")[..]);
        Header::new_unchecked(&mut m[..]).set_flag(field::BIT18, true);
        assert_eq!(
            c.on_message(m.freeze(), OWN_CAPABILITIES, now),
            Verdict::Queued
        );
        let (to, ack) = only_msg(&mut c);
        assert_eq!(to, B);
        let h = hdr(&ack);
        assert_eq!(h.user(), user::CONN_MANAGER);
        assert_eq!(h.mtype(), ConnMgrType::Ack as u8);
        assert!(h.flag(field::BIT18));
    }

    #[test]
    fn probe_is_answered_with_reversed_probe_reply() {
        let now = Instant::now();
        let (me, peer) = (sa(A, 10), sa(B, 20));
        let mut c = established(me, peer, OWN_CAPABILITIES, now);
        let mut p = ConnCore::new(peer);
        p.peer = me;
        let probe = p.proto_msg(ConnMgrType::Probe, 0, 0).freeze();
        assert_eq!(
            c.on_message(probe, OWN_CAPABILITIES, now),
            Verdict::Consumed
        );
        let (to, rep) = only_msg(&mut c);
        assert_eq!(to, B);
        let h = hdr(&rep);
        assert_eq!(h.user(), user::CONN_MANAGER);
        assert_eq!(h.mtype(), ConnMgrType::ProbeReply as u8);
        assert_eq!((h.origport(), h.destport()), (10, 20));
        assert_eq!((h.orignode(), h.destnode()), (A, B));
        assert_eq!(h.errcode(), 0);
    }

    #[test]
    fn unanswered_probe_aborts_after_a_probing_interval() {
        let now = Instant::now();
        let (me, peer) = (sa(A, 10), sa(B, 20));
        let mut c = established(me, peer, OWN_CAPABILITIES, now);
        assert_eq!(c.poll_timeout(), Some(now + CONN_PROBING_INTV));
        c.handle_timeout(now + CONN_PROBING_INTV);
        let (_, probe) = only_msg(&mut c);
        assert_eq!(hdr(&probe).mtype(), ConnMgrType::Probe as u8);
        // Answered: the next interval probes again.
        let mut p = ConnCore::new(peer);
        p.peer = me;
        let reply = p.proto_msg(ConnMgrType::ProbeReply, 0, 0).freeze();
        c.on_message(reply, OWN_CAPABILITIES, now);
        c.handle_timeout(now + 2 * CONN_PROBING_INTV);
        assert_eq!(outputs(&mut c).len(), 1);
        assert_eq!(c.state(), ConnState::Established);
        // Unanswered: aborted.
        c.handle_timeout(now + 3 * CONN_PROBING_INTV);
        assert_eq!(c.state(), ConnState::Disconnecting);
        assert_eq!(c.can_send(), Err(ConnError::Aborted));
        assert_eq!(c.read(), Some(Read::End(Err(ConnError::Aborted))));
    }

    #[test]
    fn established_rejects_message_from_wrong_port_or_node_with_no_port() {
        let now = Instant::now();
        let (me, peer) = (sa(A, 10), sa(B, 20));
        let mut c = established(me, peer, OWN_CAPABILITIES, now);
        let wrong_port = from_peer(me, sa(B, 21), 0, b"x");
        assert_eq!(
            c.on_message(wrong_port, OWN_CAPABILITIES, now),
            Verdict::Rejected(ErrorCode::NoPort)
        );
        let (to, ret) = only_msg(&mut c);
        assert_eq!(to, B);
        let h = hdr(&ret);
        assert_eq!(h.errcode(), ErrorCode::NoPort as u8);
        assert_eq!(h.header_len(), 32);
        assert_eq!(h.destport(), 21);
        let wrong_node = from_peer(me, sa(0x6300_0000, 20), 0, b"x");
        assert_eq!(
            c.on_message(wrong_node, OWN_CAPABILITIES, now),
            Verdict::Rejected(ErrorCode::NoPort)
        );
        assert_eq!(c.state(), ConnState::Established);
        assert_eq!(c.rx_len(), 0);
    }

    #[test]
    fn listener_requires_syn_only_from_syn_bit_peers() {
        let now = Instant::now();
        let mut l = ConnCore::new(sa(B, 1000));
        l.listen().unwrap();
        let plain = build_direct(sa(A, 5), sa(B, 1000), &SendOpts::default(), b"hi").unwrap();
        let mut plain_ret = plain.clone();
        Header::new_unchecked(&mut plain_ret[..]).set_flag(field::DEST_DROPPABLE, false);
        assert_eq!(
            l.on_message(plain_ret.clone().freeze(), OWN_CAPABILITIES, now),
            Verdict::Rejected(ErrorCode::NoPort)
        );
        assert_eq!(outputs(&mut l).len(), 1);
        // A legacy peer's plain message is a request.
        assert_eq!(
            l.on_message(plain_ret.freeze(), LEGACY, now),
            Verdict::Queued
        );
        // Connection messages and returned messages are never requests.
        let mut conn = ConnCore::new(sa(A, 6));
        conn.peer = sa(B, 1000);
        let cm = conn.short_msg(0, 0, b"x").freeze();
        assert_eq!(
            l.on_message(cm, LEGACY, now),
            Verdict::Rejected(ErrorCode::NoPort)
        );
        let mut returned = plain.clone();
        {
            let mut h = Header::new_unchecked(&mut returned[..]);
            h.set(field::ERRCODE, ErrorCode::NoName as u32);
            h.set_flag(field::SYN, true);
        }
        assert_eq!(
            l.on_message(returned.freeze(), LEGACY, now),
            Verdict::Rejected(ErrorCode::NoPort)
        );
        assert_eq!(outputs(&mut l).len(), 1, "only the CONN_MSG is returned");
        assert_eq!(l.backlog(), 1);
        // The legacy request gets a legacy connection.
        let s = l.accept(sa(B, 1001), LEGACY, now).unwrap();
        assert!(!s.block_flowctl());
    }

    #[test]
    fn listener_close_rejects_pending_requests() {
        let now = Instant::now();
        let mut l = ConnCore::new(sa(B, 1000));
        l.listen().unwrap();
        let mut c = ConnCore::new(sa(A, 5));
        c.connect(SynDest::Socket(sa(B, 1000)), b"data", now)
            .unwrap();
        let (_, syn) = only_msg(&mut c);
        l.on_message(syn.freeze(), OWN_CAPABILITIES, now);
        l.shutdown(ErrorCode::NoPort);
        let (to, ret) = only_msg(&mut l);
        assert_eq!(to, A);
        assert_eq!(hdr(&ret).errcode(), ErrorCode::NoPort as u8);
        // The client sees its SYN refused.
        assert_eq!(
            c.on_message(ret.freeze(), OWN_CAPABILITIES, now),
            Verdict::Consumed
        );
        assert_eq!(c.state(), ConnState::Disconnecting);
        assert_eq!(c.can_send(), Err(ConnError::Refused(ErrorCode::NoPort)));
    }

    #[test]
    fn overloaded_syn_is_retried_after_random_delay_and_keeps_data() {
        let now = Instant::now();
        let mut c = ConnCore::new(sa(A, 5));
        c.connect(SynDest::Socket(sa(B, 1000)), b"zero-rtt", now)
            .unwrap();
        assert_eq!(c.snt_unacked(), 1);
        let (_, syn) = only_msg(&mut c);
        let ret = reverse(&syn, ErrorCode::Overload, B).unwrap();
        assert!(hdr(&ret).payload().is_empty(), "OVERLOAD drops SYN data");
        assert_eq!(
            c.on_message(ret.freeze(), OWN_CAPABILITIES, now),
            Verdict::Consumed
        );
        assert_eq!(c.state(), ConnState::Connecting);
        let t = c.poll_timeout().unwrap();
        let d = t - now;
        assert!(
            d >= Duration::from_millis(100) && d < Duration::from_millis(2100),
            "{d:?}"
        );
        c.handle_timeout(t);
        let (to, again) = only_msg(&mut c);
        assert_eq!(to, B);
        assert_eq!(&again[..], &syn[..]);
    }

    #[test]
    fn connect_times_out_after_eight_seconds() {
        let now = Instant::now();
        let mut c = ConnCore::new(sa(A, 5));
        c.connect(SynDest::Socket(sa(B, 1000)), &[], now).unwrap();
        assert_eq!(
            c.connect(SynDest::Socket(sa(B, 1000)), &[], now),
            Err(ConnError::BadState)
        );
        c.handle_timeout(now + Duration::from_millis(7999));
        assert_eq!(c.state(), ConnState::Connecting);
        c.handle_timeout(now + CONN_TIMEOUT);
        assert_eq!(c.can_send(), Err(ConnError::Timeout));
    }

    #[test]
    fn connect_times_out_after_the_timeout_set_on_the_socket() {
        let now = Instant::now();
        let mut c = ConnCore::new(sa(A, 5));
        c.set_conn_timeout(Duration::from_millis(300));
        c.connect(SynDest::Socket(sa(B, 1000)), &[], now).unwrap();
        assert_eq!(c.poll_timeout(), Some(now + Duration::from_millis(300)));
        c.handle_timeout(now + Duration::from_millis(299));
        assert_eq!(c.state(), ConnState::Connecting);
        c.handle_timeout(now + Duration::from_millis(300));
        assert_eq!(c.can_send(), Err(ConnError::Timeout));
    }

    #[test]
    fn zero_rtt_connect_waits_past_the_connect_timeout() {
        let now = Instant::now();
        let mut c = ConnCore::new(sa(A, 5));
        c.connect(SynDest::Socket(sa(B, 1000)), b"data", now)
            .unwrap();
        let (_, syn) = only_msg(&mut c);
        assert_eq!(c.poll_timeout(), None);
        c.handle_timeout(now + 10 * CONN_TIMEOUT);
        assert_eq!(c.state(), ConnState::Connecting);
        // The ACK arrives late: established, the SYN data counted until acknowledged.
        let mut l = ConnCore::new(sa(B, 1000));
        l.listen().unwrap();
        l.on_message(syn.freeze(), OWN_CAPABILITIES, now);
        let mut s = l.accept(sa(B, 1001), OWN_CAPABILITIES, now).unwrap();
        let (_, ack) = only_msg(&mut s);
        let late = now + 10 * CONN_TIMEOUT;
        assert_eq!(
            c.on_message(ack.freeze(), OWN_CAPABILITIES, late),
            Verdict::Consumed
        );
        assert_eq!(c.state(), ConnState::Established);
        assert_eq!(c.snt_unacked(), 1);
        assert_eq!(c.can_send(), Ok(true));
    }

    #[test]
    fn named_zero_rtt_connect_fails_with_no_node_when_resolved_node_is_lost() {
        let now = Instant::now();
        let name = ServiceAddr {
            type_: 5000,
            instance: 1,
        };
        let mut c = ConnCore::new(sa(A, 5));
        c.connect(SynDest::Service(name), b"data", now).unwrap();
        assert!(matches!(outputs(&mut c)[..], [Output::Lookup(..)]));
        assert!(!c.node_lost(B, now), "destination not known yet");
        c.syn_sent_to(B);
        assert!(!c.node_lost(0x6300_0000, now));
        assert_eq!(c.state(), ConnState::Connecting);
        assert!(c.node_lost(B, now));
        assert_eq!(c.can_send(), Err(ConnError::NoNode));
        // Once connected, a later resolution changes nothing.
        let mut e = established(sa(A, 6), sa(B, 20), OWN_CAPABILITIES, now);
        e.syn_sent_to(0x6300_0000);
        assert_eq!(e.peer(), sa(B, 20));
    }

    #[test]
    fn connecting_ignores_foreign_returned_messages() {
        let now = Instant::now();
        let mut c = ConnCore::new(sa(A, 5));
        c.connect(SynDest::Socket(sa(B, 1000)), &[], now).unwrap();
        outputs(&mut c);
        let mut other = build_direct(sa(A, 5), sa(B, 999), &SendOpts::default(), b"x").unwrap();
        Header::new_unchecked(&mut other[..]).set_flag(field::DEST_DROPPABLE, false);
        let ret = reverse(&other, ErrorCode::NoPort, B).unwrap();
        assert_eq!(
            c.on_message(ret.freeze(), OWN_CAPABILITIES, now),
            Verdict::Dropped
        );
        assert_eq!(c.state(), ConnState::Connecting);
    }

    #[test]
    fn node_loss_ends_connection_with_no_node_after_queued_data() {
        let now = Instant::now();
        let (me, peer) = (sa(A, 10), sa(B, 20));
        let mut c = established(me, peer, OWN_CAPABILITIES, now);
        c.on_message(from_peer(me, peer, 0, b"before"), OWN_CAPABILITIES, now);
        let m = c.node_lost_msg(B).unwrap();
        let h = hdr(&m);
        assert_eq!((h.user(), h.header_len()), (user::CRITICAL, SHORT_H_SIZE));
        assert_eq!(h.errcode(), ErrorCode::NoNode as u8);
        assert_eq!((h.origport(), h.destport(), h.prevnode()), (20, 10, B));
        assert!(!c.node_lost(0x6300_0000, now));
        assert!(c.node_lost(B, now));
        assert_eq!(c.can_send(), Err(ConnError::NoNode));
        assert_eq!(c.read(), Some(Read::Data(Bytes::from_static(b"before"))));
        assert_eq!(c.read(), Some(Read::End(Err(ConnError::NoNode))));
        assert_eq!(c.read(), Some(Read::End(Err(ConnError::NoNode))));
        assert!(c.node_lost_msg(B).is_none());
    }

    #[test]
    fn peer_fin_codes_map_to_orderly_end_or_reset() {
        let now = Instant::now();
        let (me, peer) = (sa(A, 10), sa(B, 20));
        let mut c = established(me, peer, OWN_CAPABILITIES, now);
        c.on_message(from_peer(me, peer, 0, b"d"), OWN_CAPABILITIES, now);
        let fin = from_peer(me, peer, ErrorCode::ConnShutdown as u8, &[]);
        assert_eq!(c.on_message(fin, OWN_CAPABILITIES, now), Verdict::Queued);
        assert_eq!(c.can_send(), Err(ConnError::PeerShutdown));
        assert_eq!(c.read(), Some(Read::Data(Bytes::from_static(b"d"))));
        assert_eq!(c.read(), Some(Read::End(Ok(()))));
        assert_eq!(c.read(), Some(Read::End(Ok(()))), "the end is sticky");

        let mut c = established(me, peer, OWN_CAPABILITIES, now);
        let fin = from_peer(me, peer, ErrorCode::NoPort as u8, &[]);
        c.on_message(fin, OWN_CAPABILITIES, now);
        assert_eq!(c.read(), Some(Read::End(Err(ConnError::Reset))));
        // After the end, anything from the peer is rejected (and not returned: it has errcode).
        let late = from_peer(me, peer, 0, b"late");
        assert_eq!(
            c.on_message(late, OWN_CAPABILITIES, now),
            Verdict::Rejected(ErrorCode::NoPort)
        );
    }

    #[test]
    fn close_with_unread_message_rejects_it_back_as_fin() {
        let now = Instant::now();
        let (me, peer) = (sa(A, 10), sa(B, 20));
        let mut c = established(me, peer, OWN_CAPABILITIES, now);
        c.on_message(from_peer(me, peer, 0, b"unread"), OWN_CAPABILITIES, now);
        c.shutdown(ErrorCode::NoPort);
        let (to, fin) = only_msg(&mut c);
        assert_eq!(to, B);
        let h = hdr(&fin);
        assert_eq!(h.errcode(), ErrorCode::NoPort as u8);
        assert_eq!(h.payload(), b"unread");
        assert_eq!((h.origport(), h.destport()), (10, 20));
    }

    #[test]
    fn receive_queue_over_limit_rejects_with_overload() {
        let now = Instant::now();
        let (me, peer) = (sa(A, 10), sa(B, 20));
        let mut c = established(me, peer, OWN_CAPABILITIES, now);
        let big = vec![0u8; 60000];
        let mut n = 0;
        loop {
            match c.on_message(from_peer(me, peer, 0, &big), OWN_CAPABILITIES, now) {
                Verdict::Queued => n += 1,
                v => {
                    assert_eq!(v, Verdict::Rejected(ErrorCode::Overload));
                    break;
                }
            }
            assert!(n < 100);
        }
        assert!(c.rx_mem() < RCVBUF_DEFAULT);
        assert_eq!(n, RCVBUF_DEFAULT / truesize(60024));
        let (_, ret) = only_msg(&mut c);
        assert_eq!(hdr(&ret).errcode(), ErrorCode::Overload as u8);
    }

    #[test]
    fn malformed_and_unknown_messages_are_dropped_and_counted() {
        let now = Instant::now();
        let (me, peer) = (sa(A, 10), sa(B, 20));
        let mut c = established(me, peer, OWN_CAPABILITIES, now);
        assert_eq!(
            c.on_message(Bytes::from_static(&[1, 2, 3]), 0, now),
            Verdict::Dropped
        );
        let mut junk = BytesMut::from(&conn_ack(me, peer, 0, 0)[..]);
        Header::new_unchecked(&mut junk[..]).set(field::MTYPE, 5);
        assert_eq!(c.on_message(junk.freeze(), 0, now), Verdict::Dropped);
        // An ack from someone else is ignored.
        let foreign = conn_ack(me, sa(B, 99), 1, 1);
        assert_eq!(c.on_message(foreign, 0, now), Verdict::Dropped);
        assert_eq!(c.stats().dropped, 3);
        assert!(outputs(&mut c).is_empty());
        assert_eq!(
            c.write(&vec![0u8; 66001]).err(),
            Some(ConnError::TooLarge(66001))
        );
    }

    #[test]
    fn zero_rtt_syn_data_is_first_read_of_accepted_socket_and_counts_its_header() {
        let now = Instant::now();
        let mut l = ConnCore::new(sa(B, 1000));
        l.listen().unwrap();
        let mut c = ConnCore::new(sa(A, 5));
        c.connect(SynDest::Socket(sa(B, 1000)), &[7u8; 2000], now)
            .unwrap();
        // 2000 + 32 bytes: 2 blocks.
        assert_eq!(c.snt_unacked(), 2);
        let (_, syn) = only_msg(&mut c);
        assert!(hdr(&syn).flag(field::SYN));
        assert!(!hdr(&syn).flag(field::DEST_DROPPABLE));
        l.on_message(syn.freeze(), OWN_CAPABILITIES, now);
        let mut s = l.accept(sa(B, 1001), OWN_CAPABILITIES, now).unwrap();
        outputs(&mut s);
        assert_eq!(s.read(), Some(Read::Data(Bytes::from(vec![7u8; 2000]))));
        assert_eq!(s.rcv_unacked(), 2);
    }

    #[test]
    fn returned_conn_ack_resets_connection() {
        let now = Instant::now();
        let (me, peer) = (sa(A, 10), sa(B, 20));
        let mut c = established(me, peer, OWN_CAPABILITIES, now);
        let mut own_ack = ConnCore::new(me);
        own_ack.peer = peer;
        let ack = own_ack.proto_msg(ConnMgrType::Ack, 3, 512);
        // The peer's node has no such port any more: the ack comes back with NO_PORT.
        let ret = reverse(&ack, ErrorCode::NoPort, B).unwrap();
        assert_eq!(
            c.on_message(ret.freeze(), OWN_CAPABILITIES, now),
            Verdict::Queued
        );
        assert_eq!(c.can_send(), Err(ConnError::Reset));
        assert_eq!(c.read(), Some(Read::End(Err(ConnError::Reset))));
    }

    /// An established stream (Nagle on when `caps` has it), link mss 1460.
    fn stream(me: SocketAddr, peer: SocketAddr, caps: u16, now: Instant) -> ConnCore {
        let mut c = established(me, peer, caps, now);
        c.set_stream(true);
        c.set_max_pkt(1460);
        c
    }

    fn nagle_ack(me: SocketAddr, peer: SocketAddr, n: u16) -> Bytes {
        let mut m = BytesMut::from(&conn_ack(me, peer, n, 512)[..]);
        Header::new_unchecked(&mut m[..]).set_flag(field::BIT18, true);
        m.freeze()
    }

    fn data_msgs(c: &mut ConnCore) -> Vec<BytesMut> {
        outputs(c)
            .into_iter()
            .map(|o| match o {
                Output::ToNode(_, m) => m,
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    fn payload(m: &[u8]) -> &[u8] {
        let h = hdr(m);
        &m[h.header_len()..h.size()]
    }

    #[test]
    fn stream_nagle_starts_at_the_fifth_write_and_holds_until_the_nagle_ack() {
        let now = Instant::now();
        let (me, peer) = (sa(A, 10), sa(B, 20));
        let mut c = stream(me, peer, OWN_CAPABILITIES, now);
        assert_eq!(c.max_nagle(), 1460);
        // Four writes go out as they come (`nagle_start` = 4).
        for i in 0..4u8 {
            c.write(&[i; 10]).unwrap();
            let m = data_msgs(&mut c);
            assert_eq!(m.len(), 1);
            assert!(!hdr(&m[0]).flag(field::BIT18));
        }
        // The fifth is appended to a fresh buffer, which goes out at once asking for an ack.
        c.write(b"fifth").unwrap();
        let m = data_msgs(&mut c);
        assert_eq!(m.len(), 1);
        assert!(hdr(&m[0]).flag(field::BIT18));
        assert_eq!(payload(&m[0]), b"fifth");
        // While that ack is awaited, writes are held in one buffer.
        let before = c.snt_unacked();
        for i in 0..100u8 {
            c.write(&[i; 10]).unwrap();
        }
        assert!(data_msgs(&mut c).is_empty());
        assert_eq!(c.nagle_held(), 1);
        assert_eq!(c.snt_unacked(), before, "held data is not counted yet");
        // The nagle ack pushes them: one 1024-byte message, asking for the next ack.
        c.on_message(nagle_ack(me, peer, 0), OWN_CAPABILITIES, now);
        let m = data_msgs(&mut c);
        assert_eq!(m.len(), 1);
        assert!(hdr(&m[0]).flag(field::BIT18));
        let want: Vec<u8> = (0..100u8).flat_map(|i| [i; 10]).collect();
        assert_eq!(payload(&m[0]), &want[..]);
        assert_eq!(hdr(&m[0]).size(), SHORT_H_SIZE + 1000);
        assert_eq!(c.snt_unacked(), before + 2, "1024 bytes: 2 blocks");
        let st = c.stats();
        assert_eq!((st.tx_msgs, st.nagled, st.tx_bytes), (6, 101, 1045));
    }

    #[test]
    fn nagle_buffers_fill_to_the_mss_and_go_out_past_64_blocks() {
        let now = Instant::now();
        let (me, peer) = (sa(A, 10), sa(B, 20));
        let mut c = stream(me, peer, OWN_CAPABILITIES, now);
        for _ in 0..5 {
            c.write(&[7; 100]).unwrap();
        }
        data_msgs(&mut c);
        let mut written = 0usize;
        let mut sent = Vec::new();
        // 1000-byte writes: 1460-byte buffers of 2 blocks each; held until 64 blocks.
        while sent.is_empty() {
            c.write(&[9; 1000]).unwrap();
            written += 1000;
            sent = data_msgs(&mut c);
            assert!(written < 100_000, "never pushed");
        }
        let total: usize = sent.iter().map(|m| payload(m).len()).sum();
        assert_eq!(total, written);
        assert!(sent.iter().all(|m| m.len() <= 1460));
        assert!(sent[..sent.len() - 1].iter().all(|m| m.len() == 1460));
        let blocks: u32 = sent.iter().map(|m| blocks(m.len())).sum();
        assert!(blocks > NAGLE_MAX_BACKLOG, "{blocks}");
        // Still expecting the first ack: none of these asks for another.
        assert!(sent.iter().all(|m| !hdr(m).flag(field::BIT18)));
    }

    #[test]
    fn a_nagle_round_of_single_writes_doubles_the_start() {
        let now = Instant::now();
        let (me, peer) = (sa(A, 10), sa(B, 20));
        let mut c = stream(me, peer, OWN_CAPABILITIES, now);
        let mut rounds = Vec::new();
        for _ in 0..3 {
            // Writes until one asks for an ack, then the ack: one write per message.
            let mut n = 0;
            loop {
                c.write(b"x").unwrap();
                n += 1;
                if data_msgs(&mut c).iter().any(|m| hdr(m).flag(field::BIT18)) {
                    break;
                }
            }
            rounds.push(n);
            c.on_message(nagle_ack(me, peer, 0), OWN_CAPABILITIES, now);
            assert!(data_msgs(&mut c).is_empty());
        }
        assert_eq!(rounds, vec![5, 9, 17]);
    }

    #[test]
    fn peer_message_and_shutdown_push_held_data_in_order() {
        let now = Instant::now();
        let (me, peer) = (sa(A, 10), sa(B, 20));
        let mut c = stream(me, peer, OWN_CAPABILITIES, now);
        for _ in 0..5 {
            c.write(b"a").unwrap();
        }
        data_msgs(&mut c);
        c.write(b"held1").unwrap();
        assert!(data_msgs(&mut c).is_empty());
        // Data from the peer pushes what is held (and restarts the count of one-way writes).
        c.on_message(from_peer(me, peer, 0, b"reply"), OWN_CAPABILITIES, now);
        let m = data_msgs(&mut c);
        assert_eq!(m.len(), 1);
        assert_eq!(payload(&m[0]), b"held1");
        for i in 0..4u8 {
            c.write(&[i]).unwrap();
            assert_eq!(data_msgs(&mut c).len(), 1, "write {i} after the reply");
        }
        c.write(b"held2").unwrap();
        c.write(b"held3").unwrap();
        assert!(data_msgs(&mut c).is_empty());
        // shutdown(): held data, then the FIN.
        c.shutdown(ErrorCode::ConnShutdown);
        let m = data_msgs(&mut c);
        assert_eq!(m.len(), 2);
        assert_eq!(payload(&m[0]), b"held2held3");
        assert_eq!(hdr(&m[1]).errcode(), ErrorCode::ConnShutdown as u8);
    }

    #[test]
    fn no_nagle_for_seqpacket_nodelay_or_a_peer_without_the_capability() {
        let now = Instant::now();
        let (me, peer) = (sa(A, 10), sa(B, 20));
        let mut seq = established(me, peer, OWN_CAPABILITIES, now);
        seq.set_max_pkt(1460);
        let mut nodelay = stream(me, peer, OWN_CAPABILITIES, now);
        nodelay.set_nodelay(true);
        let mut old = stream(me, peer, OWN_CAPABILITIES & !caps::NAGLE, now);
        for c in [&mut seq, &mut nodelay, &mut old] {
            assert_eq!(c.max_nagle(), 0);
            for _ in 0..50 {
                c.write(b"small").unwrap();
                let m = data_msgs(c);
                assert_eq!(m.len(), 1);
                assert!(!hdr(&m[0]).flag(field::BIT18));
            }
            assert_eq!(c.stats().nagled, 0);
        }
        // Toward our own node the buffer is 1500 bytes.
        let mut local = stream(me, sa(A, 30), OWN_CAPABILITIES, now);
        local.set_max_pkt(tipc_transport::wire::MAX_MSG_SIZE);
        assert_eq!(local.max_nagle(), NAGLE_LOCAL);
    }

    #[test]
    fn nagled_stream_arrives_intact_and_the_reader_answers_each_ack_request() {
        let now = Instant::now();
        let (me, peer) = (sa(A, 10), sa(B, 20));
        let mut w = stream(me, peer, OWN_CAPABILITIES, now);
        let mut r = stream(peer, me, OWN_CAPABILITIES, now);
        let mut want = Vec::new();
        let mut got = Vec::new();
        let mut msgs = 0;
        for i in 0..2000u32 {
            let chunk = i.to_be_bytes().repeat(1 + (i % 7) as usize);
            want.extend_from_slice(&chunk);
            w.write(&chunk).unwrap();
            if i % 50 != 49 {
                continue;
            }
            // Every 50 writes, what is in flight is delivered and read, and the reader's
            // answers (nagle acks) go back: one round trip per 50 writes.
            for m in data_msgs(&mut w) {
                msgs += 1;
                r.on_message(m.freeze(), OWN_CAPABILITIES, now);
            }
            while let Some(Read::Data(d)) = r.read() {
                got.extend_from_slice(&d);
            }
            for a in data_msgs(&mut r) {
                w.on_message(a.freeze(), OWN_CAPABILITIES, now);
            }
        }
        w.shutdown(ErrorCode::ConnShutdown);
        for m in data_msgs(&mut w) {
            msgs += (hdr(&m).errcode() == 0) as u64;
            r.on_message(m.freeze(), OWN_CAPABILITIES, now);
        }
        while let Some(Read::Data(d)) = r.read() {
            got.extend_from_slice(&d);
        }
        assert_eq!(r.read(), Some(Read::End(Ok(()))));
        assert_eq!(got, want);
        assert!(msgs <= 2000 / 50 + 10, "{msgs} messages for 2000 writes");
        assert_eq!(w.stats().tx_msgs, msgs);
    }
}
