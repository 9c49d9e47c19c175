//! The unicast link endpoint (kernel `link.c`), spec §4.3–§4.11 and §5.2.
//!
//! A [`Link`] is a sans-IO state machine: the owner (a [`crate::peer::Peer`]) feeds it packets
//! received on its bearer ([`Link::handle_packet`]), calls [`Link::handle_timeout`] when
//! [`Link::poll_timeout`] expires, queues messages with [`Link::send`], and drains
//! [`Link::poll_transmit`] and [`Link::poll_event`] after every call.
//!
//! What it implements: the endpoint FSM of §4.4 (RESET/ACTIVATE/STATE, sessions and
//! `dest_session`), 16-bit sequencing with wrap-around, piggybacked and explicit acks (every 16
//! packets), the deferred queue with NACKs at 3, 19, 35…, retransmission driven by STATE
//! (`ack`/`seq_gap`, at most once per packet per millisecond), the congestion window of §4.11, the
//! per-importance backlog with bundling (§4.10) and congestion reported to the sender, socket-level
//! fragmentation and one reassembly per link (§4.9), probes and supervision (§4.7), MTU
//! negotiation (§4.8), the STATE sequence counter (`TIPC_LINK_PROTO_SEQNO`) and the broadcast
//! fields of §5.2 (`bcast_ack`, `bc_ack_invalid`, `last_bcast`).
//!
//! Supervision is stricter than the kernel's tick counting: the link fails when nothing has been
//! received for `tolerance` (the kernel allows up to `abort_limit + 1` silent ticks, about 2 s),
//! and a link that heard nothing for a tick interval probes every `tolerance / 16` until it
//! hears from the peer (the kernel probes once per tick).
//!
//! The code is split by concern, each file one `impl Link` block beside its counterpart in
//! `link.c`: `fsm` (endpoint FSM, RESET/ACTIVATE/STATE messages, timers and supervision), `tx`
//! (send, backlog, bundling, fragmenting, window, transmit), `rx` (receive, deferred queue,
//! acks, gap ACK blocks, reassembly) and `failover` (the failed link's side of §4.12).

pub use deferred::MAX_DEFERRED_BYTES;

use crate::wire::{self, Seqno, IF_NAME_LEN, INT_H_SIZE};
use crate::NodeAddr;
use bytes::{Bytes, BytesMut};
pub(crate) use deferred::{Deferred, Refused};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

mod deferred;
mod failover;
mod fsm;
mod rx;
mod tx;

/// Default link tolerance (`TIPC_DEF_LINK_TOL`).
pub const DEFAULT_TOLERANCE: Duration = Duration::from_millis(1500);
/// Smallest accepted tolerance in ms.
pub const MIN_TOLERANCE_MS: u32 = 50;
/// Largest accepted tolerance in ms.
pub const MAX_TOLERANCE_MS: u32 = 30000;
/// Default link priority.
pub const DEFAULT_PRIORITY: u8 = 10;
/// Largest link priority.
pub const MAX_PRIORITY: u8 = 31;
/// Explicit ack after this many packets received without sending (`TIPC_MIN_LINK_WIN`).
pub const ACK_INTERVAL: u16 = 16;
/// Receive window: packets beyond `rcv_nxt + 8191` are dropped.
pub const RCV_WINDOW: u16 = 8191;
/// A packet is retransmitted at most once per this interval (`TIPC_UC_RETR_TIME`).
pub const RETRANSMIT_SPACING: Duration = Duration::from_millis(1);
/// Half the sequence number space less one: an ack up to this far behind `snd_nxt - 1` is
/// behind it in serial arithmetic.
const HALF_SEQNO_SPACE: u16 = u16::MAX / 2;
/// Smallest bearer MTU (`MAX_H_SIZE + INT_H_SIZE`).
pub const MIN_MTU: usize = 100;
/// Window floor for `ssthresh`.
const SSTHRESH_FLOOR: u16 = 300;
/// Number of importance levels with a backlog (LOW..=SYSTEM).
pub const IMPORTANCE_LEVELS: usize = 5;
/// The backlog level of tunnel messages (after the importance levels).
const TUNNEL_LEVEL: usize = IMPORTANCE_LEVELS;

/// Link configuration, from the bearer (spec §3.1, §12).
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// Own node address.
    pub own_addr: NodeAddr,
    /// Peer node address.
    pub peer_addr: NodeAddr,
    /// Peer capabilities (from discovery).
    pub peer_caps: u16,
    /// The link name as the kernel forms it, `own:if-peer:if` (peer if completed at RESET).
    pub name: String,
    /// Own bearer's interface name (sent in RESET/ACTIVATE).
    pub if_name: String,
    /// Own bearer id (0..3).
    pub bearer_id: u8,
    /// Bearer MTU we advertise (`max_pkt`).
    pub mtu: usize,
    /// Encapsulation overhead of the bearer, for the minimum-MTU check (28 for UDP/IPv4).
    pub encap_hlen: usize,
    /// Link tolerance.
    pub tolerance: Duration,
    /// Link priority.
    pub priority: u8,
    /// Minimum (and initial) congestion window.
    pub min_win: u16,
    /// Maximum congestion window.
    pub max_win: u16,
    /// Initial own session number (random).
    pub session: u16,
}

/// Link endpoint states (§4.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkState {
    /// Up.
    Established,
    /// Waiting for the peer's ACTIVATE or STATE.
    Establishing,
    /// Down, sending RESET.
    Reset,
    /// Taken down locally, waiting for the node to reset it.
    Resetting,
    /// The peer reset, waiting for the node to reset us.
    PeerReset,
    /// Failover in progress (two-link nodes only).
    FailingOver,
    /// Synchronising with a parallel link (two-link nodes only).
    Synching,
}

impl LinkState {
    /// The kernel's hex code for the state.
    pub fn code(&self) -> u32 {
        match self {
            LinkState::Established => 0xe,
            LinkState::Establishing => 0xe0,
            LinkState::Reset => 0x100,
            LinkState::Resetting => 0x2000,
            LinkState::PeerReset => 0xd0000,
            LinkState::FailingOver => 0xf00000,
            LinkState::Synching => 0xc000000,
        }
    }
}

/// FSM events (kernel `link.h`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FsmEvent {
    PeerReset,
    Failure,
    Reset,
    Establish,
}

/// Why a link went down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DownReason {
    /// Nothing received for the tolerance.
    Timeout,
    /// The peer reset its endpoint (RESET, or ACTIVATE while we were up).
    PeerReset,
    /// The peer is stopping (RESET with `peer_stopping`).
    PeerStopping,
    /// A packet could not be retransmitted successfully within 10 × tolerance.
    RetransmitFailure,
    /// A fragment arrived out of order (reassembly failed).
    ReassemblyFailure,
    /// The peer changed the link priority.
    PriorityChange,
    /// The SYSTEM-importance backlog overflowed.
    Overflow,
    /// Taken down locally (bearer disabled, node stopping).
    Local,
    /// The peer node restarted (or lost contact with us and started a new node session): the
    /// node layer resets every link still held by the old instance (`node.c` restart rules).
    PeerRestarted,
    /// The peer failed this link over to a parallel one (a FAILOVER tunnel message for it
    /// arrived there, §4.12).
    Failover,
}

/// Something the owner must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// The link came up.
    Up,
    /// The link went down and is re-establishing. What its send queues held waits in
    /// [`Link::take_failed`] (for failover over a parallel link, or to be returned).
    Down(DownReason),
    /// A complete message arrived in order (unbundled, reassembled), for the node layer.
    Deliver(Bytes),
    /// The peer's broadcast-link init message (BCAST_PROTOCOL on the unicast link, §5.2).
    BcInit {
        /// The peer's broadcast `snd_nxt - 1`.
        last_bcast: u16,
    },
    /// A backlog level that was congested has room again: senders of this importance may resume.
    Unblocked(u8),
    /// A message that was queued but not sent when the link went down (returned to the owner so
    /// it can be rejected to its sender, never lost silently).
    Purged(Bytes),
    /// A TUNNEL_PROTOCOL message arrived in order (failover or synch of a parallel link).
    Tunnel(Bytes),
}

/// Result of a successful [`Link::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    /// Accepted; no congestion.
    Accepted,
    /// Accepted, but the message's importance level is congested: the sender should wait for
    /// [`LinkEvent::Unblocked`] before sending more of that importance.
    Congested,
}

/// Why [`Link::send`] refused a message. The message is handed back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The backlog for this importance is full even counting one message of oversubscription.
    #[error("link congested")]
    Congested(BytesMut),
    /// The link is not up.
    #[error("link not up")]
    NotUp(BytesMut),
    /// The message is not a valid TIPC message or is larger than MAX_MSG_SIZE.
    #[error("invalid message")]
    Invalid(BytesMut),
}

/// Link statistics, as `tipc link stat show` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LinkStats {
    /// Sequenced packets received in order.
    pub rx_packets: u64,
    /// Fragments received.
    pub rx_fragments: u64,
    /// Messages reassembled from fragments.
    pub rx_fragmented: u64,
    /// Bundles received.
    pub rx_bundles: u64,
    /// Messages received in bundles.
    pub rx_bundled: u64,
    /// Sequenced packets sent (first transmission).
    pub tx_packets: u64,
    /// Fragments sent.
    pub tx_fragments: u64,
    /// Messages sent as fragments.
    pub tx_fragmented: u64,
    /// Bundles sent.
    pub tx_bundles: u64,
    /// Messages sent in bundles.
    pub tx_bundled: u64,
    /// STATE messages received.
    pub rx_states: u64,
    /// Probes received.
    pub rx_probes: u64,
    /// NACKs received (STATE with a gap).
    pub rx_nacks: u64,
    /// Packets placed in the deferred queue.
    pub deferred: u64,
    /// Duplicate packets dropped.
    pub duplicates: u64,
    /// STATE messages sent.
    pub tx_states: u64,
    /// Probes sent.
    pub tx_probes: u64,
    /// Of them, tail-loss probes (packets unacknowledged after a pause in sending).
    pub tail_probes: u64,
    /// NACKs sent.
    pub tx_nacks: u64,
    /// Explicit acks sent.
    pub tx_acks: u64,
    /// Packets retransmitted.
    pub retransmitted: u64,
    /// Times a backlog level became congested.
    pub link_congs: u64,
    /// Largest send queue (transmit + backlog) seen.
    pub max_queue: u64,
    /// Protocol messages ignored (bad session, blocked state, malformed).
    pub proto_ignored: u64,
    /// Packets dropped because the link was not up.
    pub dropped_not_up: u64,
    /// Sequenced packets dropped because the peer sent them in a previous session: their
    /// `ack` names packets this session never sent, or (tunnel packets) they carry another
    /// session than the peer's current one.
    pub stale: u64,
    /// Messages returned to the owner after a reset.
    pub purged: u64,
    /// Malformed packets or bundled messages dropped.
    pub rx_malformed: u64,
    /// Packets the peer reported held in its deferred queue (gap ACK blocks) before its
    /// cumulative ack reached them: not retransmitted.
    pub gap_acked: u64,
    /// Packets ahead of a gap not held because the deferred queue had [`MAX_DEFERRED_BYTES`]
    /// (not acknowledged: the peer sends them again).
    pub deferred_overflow: u64,
}

/// A snapshot of a link for management output.
#[derive(Debug, Clone)]
pub struct LinkSnapshot {
    /// Link name.
    pub name: String,
    /// State.
    pub state: LinkState,
    /// Current MTU.
    pub mtu: usize,
    /// Priority.
    pub priority: u8,
    /// Tolerance in ms.
    pub tolerance_ms: u32,
    /// Current window.
    pub window: u16,
    /// Packets in the transmit queue.
    pub transmq_len: usize,
    /// Packets in the backlog.
    pub backlog_len: usize,
    /// Packets in the deferred queue.
    pub deferred_len: usize,
    /// Bytes in the deferred queue (at most [`MAX_DEFERRED_BYTES`]).
    pub deferred_bytes: usize,
    /// Bytes the failover receive state holds (a failed link's deferred packets, kept from
    /// its reset until the failover, or the decision that none follows, ends it).
    pub failover_bytes: usize,
    /// The peer's bearer id (from its RESET/ACTIVATE).
    pub peer_bearer_id: u8,
    /// Failing over to a parallel link (down and blocked until the peer's tunnel arrived).
    pub failing_over: bool,
    /// Counters.
    pub stats: LinkStats,
}

#[derive(Debug)]
struct TxPkt {
    seqno: Seqno,
    /// The packet, or its header when `body` holds the rest.
    buf: Bytes,
    /// The rest of the packet, by reference (a fragment's slice of its message), or empty.
    body: Bytes,
    /// The peer holds it in its deferred queue (a gap ACK block said so): not sent again.
    /// Unlike the kernel we keep it, and count it in the window, until the cumulative ack
    /// passes it: if the peer's deferred queue is lost (its restart, the node lost) it is
    /// returned to its sender or failed over like any unacknowledged packet.
    sacked: bool,
    /// Earliest time of the next retransmission.
    next_retr: Option<Instant>,
    /// Time of the first retransmission (for the retransmit-failure rule).
    first_retr: Option<Instant>,
}

#[derive(Debug)]
enum Outgoing {
    /// A packet of the transmit queue, by seqno (stamped with the current acks when emitted).
    Seq(Seqno),
    /// A link protocol message built at the time of the decision.
    Proto(BytesMut),
}

/// A queued packet: still open for bundling, or a fragment (its header and the slice of its
/// message it carries, never bundled).
#[derive(Debug)]
enum Frame {
    Open(BytesMut),
    Parts(Bytes, Bytes),
}

impl Frame {
    /// The packet, or its header for a fragment.
    fn head(&self) -> &[u8] {
        match self {
            Frame::Open(b) => b,
            Frame::Parts(h, _) => h,
        }
    }
    fn into_parts(self) -> (Bytes, Bytes) {
        match self {
            Frame::Open(b) => (b.freeze(), Bytes::new()),
            Frame::Parts(h, b) => (h, b),
        }
    }
}

/// Room for a protocol message's data: the interface name, or a gap ACK record.
const PROTO_DATA_MAX: usize = if IF_NAME_LEN > wire::GAP_ACK_RECORD_MAX {
    IF_NAME_LEN
} else {
    wire::GAP_ACK_RECORD_MAX
};

/// Packets larger than this go out as their header (copied, to be stamped) and the rest by
/// reference ([`Link::poll_transmit_parts`]).
const SPLIT_MIN: usize = 512;

/// The receive state of a link that went down, kept while the peer fails its traffic over to
/// a parallel link (§4.12): the tunnelled copies of what it sent here are delivered against it
/// (`drop_point`, the deferred queue and the reassembly the kernel's `tipc_link_tnl_prepare`
/// moves to the tunnel link).
#[derive(Debug)]
struct FailoverRx {
    /// The next seqno of the failed link to deliver; older ones were delivered already.
    drop_point: Seqno,
    /// `drop_point` unwrapped: keys `deferred`.
    drop_abs: u64,
    deferred: Deferred,
    reasm: wire::Reassembler,
}

impl FailoverRx {
    fn fresh() -> FailoverRx {
        FailoverRx {
            drop_point: Seqno(1),
            drop_abs: 1,
            deferred: Deferred::default(),
            reasm: wire::Reassembler::new(),
        }
    }
}

#[derive(Debug, Default)]
struct Backlog {
    len: usize,
    limit: usize,
    congested: bool,
}

/// One unicast link endpoint.
#[derive(Debug)]
pub struct Link {
    cfg: LinkConfig,
    name: String,
    state: LinkState,
    in_session: bool,
    session: u16,
    peer_session: u16,
    peer_bearer_id: u8,
    tolerance: Duration,
    priority: u8,
    mtu: usize,
    // sequencing
    snd_nxt: Seqno,
    /// Packets sent in this session (since the last reset), at most [`HALF_SEQNO_SPACE`]:
    /// the acks the peer can send in it are `snd_nxt - 1` and the ones this far behind it.
    sent_in_session: u16,
    rcv_nxt: Seqno,
    /// `rcv_nxt` as an unwrapped counter, keys the deferred queue.
    rcv_nxt_abs: u64,
    rcv_unacked: u16,
    snd_nxt_state: Seqno,
    rcv_nxt_state: Seqno,
    // queues
    transmq: VecDeque<TxPkt>,
    backlogq: VecDeque<(u8, Frame)>,
    /// Per importance level, and one more for tunnel messages ([`TUNNEL_LEVEL`]).
    backlog: [Backlog; IMPORTANCE_LEVELS + 1],
    /// Index into `backlogq` of the packet open for bundling, if it is the tail.
    bundle_open: bool,
    /// Corked ([`Link::set_cork`]): small messages are bundled into `staged` instead of
    /// going out one packet each.
    corked: bool,
    /// The packet being filled while corked, with the importance of its first message.
    staged: Option<(u8, Frame)>,
    deferdq: Deferred,
    reasm: wire::Reassembler,
    /// What the last reset took from the send queues, in order, seqnos written.
    failed_tx: Vec<Bytes>,
    /// The seqno the next packet would have had at the last reset.
    failed_next: Seqno,
    /// The receive state at the last reset.
    failed_rx: Option<FailoverRx>,
    /// Failing over: down and blocked until the node layer ends it.
    failover: Option<FailoverRx>,
    /// Buffers of the fragments this link builds.
    frag_pool: wire::ChunkPool,
    outq: VecDeque<Outgoing>,
    events: VecDeque<LinkEvent>,
    // congestion control
    window: u16,
    ssthresh: u16,
    cong_acks: u16,
    checkpoint: Seqno,
    // supervision
    silent_intv_cnt: u32,
    rst_cnt: u32,
    last_rx: Instant,
    /// When we last sent a probe.
    last_probe: Instant,
    /// When we last sent a message or the peer last acknowledged packets (the tail-loss
    /// probe counts from here).
    last_progress: Instant,
    /// The tail-loss probe of the current pause was sent.
    tail_probed: bool,
    next_tick: Instant,
    // broadcast fields (maintained by the node)
    bcast_ack: u16,
    bc_synced: bool,
    last_bcast: u16,
    /// Broadcast packets missing after `bcast_ack` (NACK carried in STATE w8).
    bc_gap: u16,
    /// Broadcast packets were received that no packet of ours has acked yet.
    bc_unacked: bool,
    stats: LinkStats,
}

impl Link {
    /// Create a link in state RESET (the kernel creates it RESETTING and resets it at once).
    pub fn new(cfg: LinkConfig, now: Instant) -> Link {
        let min_win = cfg.min_win.clamp(16, 8191);
        let max_win = cfg.max_win.clamp(min_win, 8191);
        let mut l = Link {
            name: cfg.name.clone(),
            state: LinkState::Reset,
            in_session: false,
            session: cfg.session,
            peer_session: 0,
            peer_bearer_id: 0,
            tolerance: cfg.tolerance,
            priority: cfg.priority,
            mtu: cfg.mtu,
            snd_nxt: Seqno(1),
            sent_in_session: 0,
            rcv_nxt: Seqno(1),
            rcv_nxt_abs: 1,
            rcv_unacked: 0,
            snd_nxt_state: Seqno(1),
            rcv_nxt_state: Seqno(1),
            transmq: VecDeque::new(),
            backlogq: VecDeque::new(),
            backlog: Default::default(),
            bundle_open: false,
            corked: false,
            staged: None,
            deferdq: Deferred::default(),
            reasm: wire::Reassembler::new(),
            failed_tx: Vec::new(),
            failed_next: Seqno(1),
            failed_rx: None,
            failover: None,
            frag_pool: wire::ChunkPool::new(),
            outq: VecDeque::new(),
            events: VecDeque::new(),
            window: min_win,
            ssthresh: max_win,
            cong_acks: 0,
            checkpoint: Seqno(1),
            silent_intv_cnt: 0,
            rst_cnt: 0,
            last_rx: now,
            last_probe: now,
            last_progress: now,
            tail_probed: false,
            next_tick: now,
            bcast_ack: 0,
            bc_synced: false,
            last_bcast: 0,
            bc_gap: 0,
            bc_unacked: false,
            stats: LinkStats::default(),
            cfg,
        };
        l.cfg.min_win = min_win;
        l.cfg.max_win = max_win;
        l.set_queue_limits();
        l
    }

    fn set_queue_limits(&mut self) {
        let w = self.cfg.min_win as usize;
        for (i, b) in self.backlog.iter_mut().enumerate().take(4) {
            b.limit = w * 2 * (i + 1);
        }
        // SYSTEM: room for a full name-table bulk (65535 items of 20 bytes).
        self.backlog[4].limit = (65535 / (self.mtu / 20).max(1)).max(1);
        self.backlog[TUNNEL_LEVEL].limit = usize::MAX;
    }

    // ------------------------------------------------------------------ accessors

    /// The link name.
    pub fn name(&self) -> &str {
        &self.name
    }
    /// Current state.
    pub fn state(&self) -> LinkState {
        self.state
    }
    /// Is the link up (ESTABLISHED or SYNCHING)?
    pub fn is_up(&self) -> bool {
        matches!(self.state, LinkState::Established | LinkState::Synching)
    }
    /// Current link MTU.
    pub fn mtu(&self) -> usize {
        self.mtu
    }
    /// The next seqno this link expects from the peer (everything before it was delivered).
    pub fn rcv_nxt(&self) -> Seqno {
        self.rcv_nxt
    }
    /// Largest packet the link builds: the MTU less the room an encryption envelope takes
    /// ([`crate::crypto::max_inner_len`]), reserved whether or not a key is set, as a kernel
    /// built with `CONFIG_TIPC_CRYPTO` does (tipc-crypto.md §15.6 "Link MTU").
    pub fn max_packet(&self) -> usize {
        crate::crypto::max_inner_len(self.mtu)
    }
    /// Largest message sent without fragmenting (`tipc_link_mss`): [`Link::max_packet`]
    /// minus a tunnel header.
    pub fn mss(&self) -> usize {
        self.max_packet() - INT_H_SIZE
    }
    /// Current tolerance.
    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }
    /// Current priority.
    pub fn priority(&self) -> u8 {
        self.priority
    }
    /// Own bearer id.
    pub fn bearer_id(&self) -> u8 {
        self.cfg.bearer_id
    }
    /// The peer's bearer id (from RESET/ACTIVATE).
    pub fn peer_bearer_id(&self) -> u8 {
        self.peer_bearer_id
    }
    /// Counters.
    pub fn stats(&self) -> &LinkStats {
        &self.stats
    }
    /// Reset the counters.
    pub fn reset_stats(&mut self) {
        self.stats = LinkStats::default();
    }
    /// Update the peer's capabilities (discovery re-announces them).
    pub fn set_peer_caps(&mut self, caps: u16) {
        self.cfg.peer_caps = caps;
    }
    /// Packets queued for sending (transmit queue plus backlog).
    pub fn queued(&self) -> usize {
        self.transmq.len() + self.backlogq.len() + usize::from(self.staged.is_some())
    }
    /// Is this importance level congested?
    pub fn is_congested(&self, importance: u8) -> bool {
        self.backlog
            .get(importance as usize)
            .is_some_and(|b| b.congested)
    }
    /// A snapshot for management output.
    pub fn snapshot(&self) -> LinkSnapshot {
        LinkSnapshot {
            name: self.name.clone(),
            state: self.state,
            mtu: self.mtu,
            priority: self.priority,
            tolerance_ms: self.tolerance.as_millis() as u32,
            window: self.window,
            transmq_len: self.transmq.len(),
            backlog_len: self.backlogq.len(),
            deferred_len: self.deferdq.len(),
            deferred_bytes: self.deferdq.bytes(),
            failover_bytes: self
                .failover
                .as_ref()
                .or(self.failed_rx.as_ref())
                .map_or(0, |f| f.deferred.bytes() + f.reasm.pending_len()),
            peer_bearer_id: self.peer_bearer_id,
            failing_over: self.failover.is_some(),
            stats: self.stats,
        }
    }

    /// Set the broadcast fields written into every packet (§5.2): `bcast_ack` is the last
    /// in-order broadcast packet received from the peer; `synced` says whether our broadcast
    /// receive state for the peer is initialised (else `bc_ack_invalid` is set and the
    /// `redundant_link` bit is clear); `last_bcast` is our own broadcast `snd_nxt - 1`.
    pub fn set_bcast_state(&mut self, bcast_ack: u16, synced: bool, last_bcast: u16) {
        if bcast_ack != self.bcast_ack {
            self.bc_unacked = true;
        }
        self.bcast_ack = bcast_ack;
        self.bc_synced = synced;
        self.last_bcast = last_bcast;
    }

    /// Broadcast receive state from the node: `gap` packets are missing after `bcast_ack`
    /// (sent as `bc_gap` in STATE messages, a broadcast NACK).
    pub fn set_bcast_gap(&mut self, gap: u16) {
        self.bc_gap = gap & 0x3FF;
    }

    /// Returns the next event for the owner.
    ///
    /// Call repeatedly until it returns `None`; call again after any `handle_*` call (the
    /// crate's `handle_failover` included) or command ([`Link::send`] can take the link down,
    /// [`Link::shutdown`] and [`Link::force_reset`] do).
    #[must_use]
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }
}
