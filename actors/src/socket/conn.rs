//! Connection-oriented socket core (SOCK_STREAM / SOCK_SEQPACKET), sans-IO (kernel
//! `net/tipc/socket.c`: `tipc_sk_filter_connect`, `tipc_sk_finish_conn`, `tipc_accept`,
//! `tipc_sk_build_ack`, `tipc_sk_conn_proto_rcv`, `tipc_sk_check_probing_state`,
//! `__tipc_shutdown`, `rcvbuf_limit`; `node.c: node_lost_contact`).
//!
//! Spec: tipc-protocol.md §2.5 (CONN_MANAGER overlay), §2.6 (error codes), §9.2 (rejection),
//! §9.3 (receive limit), §9.4 (setup), §9.5 (flow control), §9.6 (nagle ack), §9.7 (probing,
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
    /// Data messages sent.
    pub tx_msgs: u64,
    /// Data bytes sent.
    pub tx_bytes: u64,
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
    rx: VecDeque<RxItem>,
    rx_mem: usize,
    /// The end reason once DISCONNECTING (`Ok` = peer shutdown).
    end: Option<Result<(), ConnError>>,
    /// The end was already reported by `read`.
    end_read: bool,
    syn: Option<(SynDest, Bytes)>,
    connect_deadline: Option<Instant>,
    retry_at: Option<Instant>,
    probe_at: Option<Instant>,
    probe_unacked: bool,
    rng: u32,
    out: VecDeque<Output>,
    stats: ConnStats,
}

impl ConnCore {
    /// A fresh socket (OPEN) at `own`, sending with `importance` (0..=3, clamped).
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
            rx: VecDeque::new(),
            rx_mem: 0,
            end: None,
            end_read: false,
            syn: None,
            connect_deadline: None,
            retry_at: None,
            probe_at: None,
            probe_unacked: false,
            rng: own.port ^ own.node ^ 0x9e37_79b9 | 1,
            out: VecDeque::new(),
            stats: ConnStats::default(),
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
    /// Set the importance of our messages (`TIPC_IMPORTANCE`), clamped to 0..=3.
    pub fn set_importance(&mut self, imp: u8) {
        self.importance = imp.min(3);
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
    /// is kept for an OVERLOAD retry. The connect timer starts.
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
        self.connect_deadline = Some(now + CONN_TIMEOUT);
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
        if !self.block_fc {
            self.rcv_win = FLOWCTL_MSG_WIN;
            self.snd_win = FLOWCTL_MSG_WIN;
        }
    }

    fn abort(&mut self, why: Result<(), ConnError>) {
        self.state = ConnState::Disconnecting;
        self.end.get_or_insert(why);
        self.syn = None;
        self.connect_deadline = None;
        self.retry_at = None;
        self.probe_at = None;
    }

    /// One data message (`CONN_MSG`, 24-byte header) with `data`, counted into `snt_unacked`.
    /// The caller checks [`ConnCore::can_send`] first (the kernel waits before each message,
    /// so the window may be overshot by one message).
    pub fn build_data(&mut self, data: &[u8]) -> Result<(NodeAddr, BytesMut), ConnError> {
        if self.state != ConnState::Established {
            return Err(self.can_send().err().unwrap_or(ConnError::BadState));
        }
        if data.len() > MAX_USER_MSG_SIZE {
            return Err(ConnError::TooLarge(data.len()));
        }
        let msg = self.short_msg(self.importance, 0, data);
        self.snt_unacked += self.inc(data.len() + SHORT_H_SIZE);
        self.stats.tx_msgs += 1;
        self.stats.tx_bytes += data.len() as u64;
        Ok((self.peer.node, msg))
    }

    /// A 24-byte-header CONN_MSG from us to the peer (`tipc_msg_create` with `SHORT_H_SIZE`).
    fn short_msg(&self, importance: u8, err: u8, data: &[u8]) -> BytesMut {
        let mut buf = BytesMut::zeroed(SHORT_H_SIZE + data.len());
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
        buf[SHORT_H_SIZE..].copy_from_slice(data);
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
                let ms =
                    100 + xorshift(&mut self.rng) as u64 % (CONN_TIMEOUT.as_millis() as u64 / 4);
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
    /// data the end is reported once; then `None`.
    pub fn read(&mut self) -> Option<Read> {
        if self.state == ConnState::Listen {
            return None;
        }
        let item = match self.rx.pop_front() {
            Some(i) => i,
            None => {
                if self.end_read {
                    return None;
                }
                let end = self.end?;
                self.end_read = true;
                return Some(Read::End(end));
            }
        };
        self.rx_mem -= item.truesize;
        let h = Header::new_unchecked(&item.msg[..]);
        if h.errcode() != 0 {
            // The end marker: report it (once), drop what follows.
            self.rx.clear();
            self.rx_mem = 0;
            self.end_read = true;
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
        self.state != ConnState::Listen
            && (!self.rx.is_empty() || (self.end.is_some() && !self.end_read))
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
        c.importance = h.user().min(3);
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
