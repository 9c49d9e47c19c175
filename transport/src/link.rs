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

use crate::wire::{
    self, field, user, Header, LinkProtoRepr, LinkProtoType, Seqno, IF_NAME_LEN, INT_H_SIZE,
};
use crate::NodeAddr;
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

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
    /// Messages returned to the owner after a reset.
    pub purged: u64,
    /// Malformed packets or bundled messages dropped.
    pub rx_malformed: u64,
    /// Packets the peer reported held in its deferred queue (gap ACK blocks) before its
    /// cumulative ack reached them: not retransmitted.
    pub gap_acked: u64,
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
    deferred: BTreeMap<u64, Bytes>,
    reasm: wire::Reassembler,
}

impl FailoverRx {
    fn fresh() -> FailoverRx {
        FailoverRx {
            drop_point: Seqno(1),
            drop_abs: 1,
            deferred: BTreeMap::new(),
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
    deferdq: BTreeMap<u64, Bytes>,
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
            deferdq: BTreeMap::new(),
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
    /// Largest message sent without fragmenting (`tipc_link_mss`): MTU minus a tunnel header.
    pub fn mss(&self) -> usize {
        self.mtu - INT_H_SIZE
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

    /// Send a STATE now (an explicit ack of broadcast packets, or a broadcast NACK), if up.
    pub fn send_state(&mut self, now: Instant) {
        if self.is_up() {
            self.build_proto(LinkProtoType::State, false, false, 0, now);
        }
    }

    // ------------------------------------------------------------------ timers

    fn tick_interval(&self) -> Duration {
        (self.tolerance / 4).min(Duration::from_millis(500))
    }

    /// Interval between probes of a silent link: `tolerance / 16` (about 12 probes before the
    /// link fails, so that even at 30 % loss each way a live peer is heard in time).
    fn silent_probe_interval(&self) -> Duration {
        (self.tolerance / 16).max(Duration::from_millis(1))
    }

    /// When the next extra probe of a silent link is due: once nothing was received for a tick
    /// interval, every [`Link::silent_probe_interval`] after the last probe.
    fn silent_probe_at(&self) -> Option<Instant> {
        if !self.is_up() {
            return None;
        }
        let silent_from = self.last_rx + self.tick_interval();
        Some(silent_from.max(self.last_probe + self.silent_probe_interval()))
    }

    /// When to call [`Link::handle_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut t = self.next_tick;
        if self.is_up() {
            t = t.min(self.last_rx + self.tolerance);
        }
        if let Some(p) = self.silent_probe_at() {
            t = t.min(p);
        }
        Some(t)
    }

    /// Drive timers: the periodic tick (RESET/ACTIVATE/STATE sending, probing, window checks),
    /// the extra probes of a silent link and the supervision deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_up() && now >= self.last_rx + self.tolerance {
            self.fail(now, DownReason::Timeout);
            return;
        }
        if now >= self.next_tick {
            self.tick(now);
            self.next_tick = now + self.tick_interval();
        } else if self.silent_probe_at().is_some_and(|t| now >= t) {
            // Silent for a tick: the kernel probes only at ticks (and fails after about
            // `abort_limit + 1` silent ones); under heavy loss a live peer may then not be heard
            // within the tolerance, so probe more often in between. A probe is an ordinary
            // STATE (the peer answers it and NACKs what we miss), so this stays compatible.
            self.build_proto(LinkProtoType::State, true, false, 0, now);
        }
    }

    /// The kernel's `tipc_link_timeout`.
    fn tick(&mut self, now: Instant) {
        if self.failover.is_some() {
            return;
        }
        match self.state {
            LinkState::Established | LinkState::Synching => {
                let state = self.rcv_unacked > 0 || self.bc_unacked || !self.transmq.is_empty();
                // Every link is monitored in clusters below the monitoring threshold.
                let mut probe = self.silent_intv_cnt > 0;
                self.silent_intv_cnt += 1;
                probe |= !self.deferdq.is_empty();
                if self.snd_nxt == self.checkpoint {
                    self.update_cwin(0, false);
                    probe = true;
                }
                self.checkpoint = self.snd_nxt;
                if state || probe {
                    self.build_proto(LinkProtoType::State, probe, false, 0, now);
                }
            }
            LinkState::Reset => {
                let setup = self.rst_cnt <= 4 || (self.rst_cnt + 1).is_multiple_of(16);
                self.rst_cnt += 1;
                if setup {
                    self.build_proto(LinkProtoType::Reset, false, false, 0, now);
                }
            }
            LinkState::Establishing => {
                self.build_proto(LinkProtoType::Activate, false, false, 0, now);
            }
            _ => {}
        }
    }

    // ------------------------------------------------------------------ FSM

    fn fsm(&mut self, evt: FsmEvent) -> bool {
        use FsmEvent as E;
        use LinkState as S;
        let mut down = false;
        self.state = match (self.state, evt) {
            (S::Resetting, E::PeerReset) => S::PeerReset,
            (S::Resetting, E::Reset) => S::Reset,
            (S::Reset, E::PeerReset) => S::Establishing,
            (S::PeerReset, E::Reset) => S::Establishing,
            (S::Establishing, E::Establish) => S::Established,
            (S::Establishing, E::Reset) => S::Reset,
            (S::Established | S::Synching, E::PeerReset) => {
                down = true;
                S::PeerReset
            }
            (S::Established | S::Synching, E::Failure) => {
                down = true;
                S::Resetting
            }
            (S::Established | S::Synching, E::Reset) => S::Reset,
            (s, _) => s,
        };
        down
    }

    /// Link went down: node-level glue of `__tipc_node_link_down` for a single link: RESET
    /// event, queues purged, a RESET (or ACTIVATE) sent at once.
    fn went_down(&mut self, now: Instant, reason: DownReason) {
        self.fsm(FsmEvent::Reset);
        self.reset(now);
        self.events.push_back(LinkEvent::Down(reason));
        if reason == DownReason::PeerReset {
            // The caller stores the peer's new session first and then answers with ACTIVATE.
            return;
        }
        let mtyp = if self.state == LinkState::Establishing {
            LinkProtoType::Activate
        } else {
            LinkProtoType::Reset
        };
        self.build_proto(mtyp, false, false, 0, now);
        // `tipc_link_build_reset_msg`: the first RESET after we took the link down tells the
        // peer we are stopping, so a peer that still thinks the link works resets at once.
        if mtyp == LinkProtoType::Reset {
            self.mark_last_stopping();
        }
    }

    fn mark_last_stopping(&mut self) {
        if let Some(Outgoing::Proto(buf)) = self.outq.back_mut() {
            let mut h = Header::new_unchecked(&mut buf[..]);
            h.set_flag(field::PEER_STOPPING, true);
        }
    }

    fn fail(&mut self, now: Instant, reason: DownReason) {
        if self.fsm(FsmEvent::Failure) {
            self.went_down(now, reason);
        }
    }

    fn link_up(&mut self, now: Instant) {
        self.fsm(FsmEvent::Establish);
        if !self.is_up() {
            return;
        }
        self.last_rx = now;
        self.silent_intv_cnt = 0;
        self.next_tick = now + self.tick_interval();
        self.checkpoint = self.snd_nxt;
        // "Ensure that a STATE message goes first."
        self.rcv_unacked = 0;
        self.stats.tx_acks += 1;
        self.build_proto(LinkProtoType::State, false, false, 0, now);
        self.events.push_back(LinkEvent::Up);
    }

    /// `tipc_link_reset`: empty all queues, restart sequencing, new session.
    fn reset(&mut self, now: Instant) {
        self.in_session = false;
        self.peer_session = self.peer_session.wrapping_sub(1);
        self.session = self.session.wrapping_add(1);
        self.mtu = self.cfg.mtu;
        self.set_queue_limits();
        // What was sent and not acknowledged, then the backlog, then a packet being filled
        // under a cork: in order, each with its seqno (the unsent ones numbered on from
        // `snd_nxt`, as failover numbers them), for the node layer to tunnel or return.
        self.failed_tx.clear();
        for p in self.transmq.drain(..) {
            self.failed_tx.push(with_seqno(&p.buf, &p.body, p.seqno));
        }
        let mut next = self.snd_nxt;
        let unsent = self.backlogq.drain(..).map(|(_, b)| b);
        for f in unsent.chain(self.staged.take().map(|(_, f)| f)) {
            let (head, body) = f.into_parts();
            self.failed_tx.push(with_seqno(&head, &body, next));
            next = next.next();
        }
        self.failed_next = next;
        self.stats.purged += self.failed_tx.len() as u64;
        self.failed_rx = Some(FailoverRx {
            drop_point: self.rcv_nxt,
            drop_abs: self.rcv_nxt_abs,
            deferred: std::mem::take(&mut self.deferdq),
            reasm: std::mem::take(&mut self.reasm),
        });
        for b in self.backlog.iter_mut() {
            b.len = 0;
            if b.congested {
                b.congested = false;
            }
        }
        for imp in 0..4u8 {
            self.events.push_back(LinkEvent::Unblocked(imp));
        }
        self.bundle_open = false;
        self.outq.clear();
        self.rcv_unacked = 0;
        self.snd_nxt = Seqno(1);
        self.rcv_nxt = Seqno(1);
        self.rcv_nxt_abs = 1;
        self.snd_nxt_state = Seqno(1);
        self.rcv_nxt_state = Seqno(1);
        self.silent_intv_cnt = 0;
        self.rst_cnt = 0;
        self.window = self.cfg.min_win;
        self.ssthresh = self.cfg.max_win;
        self.cong_acks = 0;
        self.checkpoint = Seqno(1);
        self.bc_synced = false;
        self.bc_gap = 0;
        self.bc_unacked = false;
        self.next_tick = now + self.tick_interval();
    }

    /// Take the link down locally (bearer disabled or node stopping): the peer is told with a
    /// RESET carrying `peer_stopping`, so it resets at once instead of waiting for the tolerance.
    pub fn shutdown(&mut self, now: Instant) {
        let was_up = self.is_up();
        if was_up {
            self.fsm(FsmEvent::Failure);
            self.fsm(FsmEvent::Reset);
            self.reset(now);
            self.events.push_back(LinkEvent::Down(DownReason::Local));
        }
        self.build_proto(LinkProtoType::Reset, false, false, 0, now);
        self.mark_last_stopping();
    }

    /// The node layer tells the link the peer node was lost on another path (or the link must
    /// restart): force it down.
    pub fn force_reset(&mut self, now: Instant, reason: DownReason) {
        if self.is_up() {
            self.fail(now, reason);
        }
    }

    // ------------------------------------------------------------------ protocol messages

    fn build_proto(
        &mut self,
        mtyp: LinkProtoType,
        probe: bool,
        probe_reply: bool,
        rcvgap: u16,
        now: Instant,
    ) {
        if matches!(
            self.state,
            LinkState::Resetting | LinkState::PeerReset | LinkState::FailingOver
        ) {
            return;
        }
        if !self.is_up() && mtyp == LinkProtoType::State {
            return;
        }
        let mut rcvgap = rcvgap;
        if probe || probe_reply {
            if let Some((&k, _)) = self.deferdq.iter().next() {
                rcvgap = (k - self.rcv_nxt_abs) as u16;
            }
        }
        // RESET/ACTIVATE carry the interface name; a STATE to a peer with TIPC_GAP_ACK_BLOCK
        // its gap ACK record.
        let mut data = [0u8; PROTO_DATA_MAX];
        let dlen = if mtyp != LinkProtoType::State {
            let n = self.cfg.if_name.len().min(IF_NAME_LEN - 1);
            data[..n].copy_from_slice(&self.cfg.if_name.as_bytes()[..n]);
            IF_NAME_LEN
        } else if self.cfg.peer_caps & crate::caps::GAP_ACK_BLOCK != 0 {
            // Unicast blocks only with a NACK, as the kernel builds them.
            let (nxt, abs) = (self.rcv_nxt, self.rcv_nxt_abs);
            let held = self
                .deferdq
                .keys()
                .filter(|_| rcvgap & 0x1FFF != 0)
                .map(|&k| nxt.add((k - abs) as u16));
            wire::build_gap_ack_record(held, &mut data)
        } else {
            0
        };
        let mut r = LinkProtoRepr {
            mtype: mtyp,
            keepalive: false,
            seq_gap: 0,
            bcast_ack: self.bcast_ack,
            ack: self.rcv_nxt.sub(1).0,
            seqno: self.snd_nxt.add(u16::MAX / 2).0,
            prevnode: self.cfg.own_addr,
            last_bcast: self.last_bcast,
            next_sent: self.snd_nxt.0,
            session: self.session,
            bc_ack_invalid: !self.bc_synced,
            peer_stopping: false,
            redundant_link: self.bc_synced,
            bearer_id: self.cfg.bearer_id,
            priority: 0,
            net_plane: 0,
            probe: false,
            orignode: self.cfg.own_addr,
            destnode: self.cfg.peer_addr,
            bc_gap: 0,
            max_pkt: 0,
            tolerance: 0,
            data: &data[..dlen],
        };
        if mtyp == LinkProtoType::State {
            if self.cfg.peer_caps & crate::caps::LINK_PROTO_SEQNO != 0 {
                r.seqno = self.snd_nxt_state.0;
                self.snd_nxt_state = self.snd_nxt_state.next();
            }
            r.seq_gap = rcvgap & 0x1FFF;
            r.bc_gap = self.bc_gap;
            r.probe = probe;
            r.keepalive = probe || probe_reply;
            self.stats.tx_states += 1;
            self.rcv_unacked = 0;
        } else {
            if mtyp == LinkProtoType::Activate {
                r.seq_gap = 1; // dest_session_valid
                r.bcast_ack = self.peer_session;
            }
            r.max_pkt = (self.cfg.mtu / 4).min(0xFFFF) as u16;
        }
        if probe {
            self.stats.tx_probes += 1;
            self.last_probe = now;
        }
        if rcvgap != 0 {
            self.stats.tx_nacks += 1;
        }
        let mut buf = [0u8; INT_H_SIZE + PROTO_DATA_MAX];
        let len = r.emit(&mut buf);
        if mtyp == LinkProtoType::State {
            self.bc_unacked = false;
        }
        self.outq
            .push_back(Outgoing::Proto(BytesMut::from(&buf[..len])));
    }

    fn validate_proto(&self, r: &LinkProtoRepr<'_>) -> bool {
        match r.mtype {
            LinkProtoType::Reset => {
                !self.in_session || Seqno(r.session).more(Seqno(self.peer_session))
            }
            LinkProtoType::Activate => {
                !self.in_session || !Seqno(r.session).less(Seqno(self.peer_session))
            }
            LinkProtoType::State => {
                if !self.in_session || r.session != self.peer_session {
                    return false;
                }
                if !self.is_up() && r.ack != 0 {
                    return false;
                }
                if self.cfg.peer_caps & crate::caps::LINK_PROTO_SEQNO == 0 {
                    return true;
                }
                !Seqno(r.seqno).less(self.rcv_nxt_state)
            }
        }
    }

    fn proto_rcv(&mut self, now: Instant, r: &LinkProtoRepr<'_>) {
        if matches!(
            self.state,
            LinkState::Resetting | LinkState::PeerReset | LinkState::FailingOver
        ) || !self.validate_proto(r)
        {
            self.stats.proto_ignored += 1;
            return;
        }
        let peers_tol = r.tolerance as u32;
        let peers_prio = r.priority;
        match r.mtype {
            LinkProtoType::Reset | LinkProtoType::Activate => {
                let min_mtu = MIN_MTU + self.cfg.encap_hlen;
                if r.mtu() < min_mtu || r.data.len() < IF_NAME_LEN {
                    self.stats.proto_ignored += 1;
                    return;
                }
                self.complete_name(r.if_name());
                if (MIN_TOLERANCE_MS..=MAX_TOLERANCE_MS).contains(&peers_tol) {
                    self.tolerance = Duration::from_millis(peers_tol as u64);
                }
                if peers_prio > self.priority && peers_prio <= MAX_PRIORITY {
                    self.priority = peers_prio;
                }
                if r.peer_stopping {
                    self.fail(now, DownReason::PeerStopping);
                    return;
                }
                if let Some(ds) = r.dest_session() {
                    if ds != self.session {
                        if Seqno(self.session).less(Seqno(ds)) {
                            self.session = ds.wrapping_add(1);
                        }
                        return;
                    }
                }
                let mut up = false;
                if (r.mtype == LinkProtoType::Reset || !self.is_up())
                    && self.fsm(FsmEvent::PeerReset)
                {
                    self.went_down(now, DownReason::PeerReset);
                }
                if r.mtype == LinkProtoType::Activate && self.state == LinkState::Establishing {
                    up = true;
                }
                self.peer_session = r.session;
                self.in_session = true;
                self.peer_bearer_id = r.bearer_id;
                if self.mtu > r.mtu() {
                    self.mtu = r.mtu();
                    self.set_queue_limits();
                }
                if self.state == LinkState::Establishing && !up {
                    // Answer a RESET at once with ACTIVATE rather than waiting for the tick.
                    self.build_proto(LinkProtoType::Activate, false, false, 0, now);
                }
                if up {
                    self.link_up(now);
                }
            }
            LinkProtoType::State => {
                // `tipc_get_gap_ack_blks`: a capable peer's STATE starts its data with the
                // record; one whose length runs past the data is dropped whole.
                let mut blocks: &[u8] = &[];
                if self.cfg.peer_caps & crate::caps::GAP_ACK_BLOCK != 0 {
                    match wire::gap_ack_blocks(r.data) {
                        Some(uc) => blocks = uc,
                        None => {
                            self.stats.proto_ignored += 1;
                            return;
                        }
                    }
                }
                self.rcv_nxt_state = Seqno(r.seqno).next();
                if (MIN_TOLERANCE_MS..=MAX_TOLERANCE_MS).contains(&peers_tol) {
                    self.tolerance = Duration::from_millis(peers_tol as u64);
                }
                if peers_prio != 0 && peers_prio != self.priority && peers_prio <= MAX_PRIORITY {
                    self.priority = peers_prio;
                    self.fail(now, DownReason::PriorityChange);
                    return;
                }
                self.silent_intv_cnt = 0;
                self.last_rx = now;
                self.stats.rx_states += 1;
                if r.probe {
                    self.stats.rx_probes += 1;
                }
                if !self.is_up() {
                    if self.state == LinkState::Establishing {
                        self.link_up(now);
                    }
                    return;
                }
                let peers_snd_nxt = Seqno(r.next_sent);
                let reply = r.probe;
                let mut rcvgap = 0;
                if (reply || r.keepalive)
                    && peers_snd_nxt.more(self.rcv_nxt)
                    && self.deferdq.is_empty()
                {
                    rcvgap = peers_snd_nxt.diff(self.rcv_nxt);
                }
                if rcvgap != 0 || reply {
                    self.build_proto(LinkProtoType::State, false, reply, rcvgap, now);
                }
                if r.seq_gap != 0 {
                    self.stats.rx_nacks += 1;
                }
                self.advance_transmq(now, Seqno(r.ack), r.seq_gap, blocks);
            }
        }
    }

    fn complete_name(&mut self, peer_if: &[u8]) {
        if let Some(pos) = self.name.rfind(':') {
            let s = String::from_utf8_lossy(peer_if);
            if !s.is_empty() && self.name[pos + 1..] != *s {
                self.name.truncate(pos + 1);
                self.name.push_str(&s);
            }
        }
    }

    // ------------------------------------------------------------------ receive

    /// Process a packet received on this link's bearer from the peer. The caller has validated
    /// the header (`Header::new_checked`), checked `destnode` and routed it by `prevnode`.
    pub fn handle_packet(&mut self, now: Instant, pkt: Bytes) {
        if self.failover.is_some() {
            // Blocked while failing over (`tipc_link_is_blocked`): what the peer still sends
            // here belongs to the old session, or reopens the link too early.
            self.stats.dropped_not_up += 1;
            return;
        }
        let Ok(h) = Header::new_checked(&pkt[..]) else {
            self.stats.proto_ignored += 1;
            return;
        };
        if h.user() == user::LINK_PROTOCOL {
            match LinkProtoRepr::parse(&h) {
                Ok(r) => self.proto_rcv(now, &r),
                Err(_) => self.stats.proto_ignored += 1,
            }
            return;
        }
        if !self.is_up() {
            if self.state == LinkState::Establishing {
                self.link_up(now);
            }
            self.stats.dropped_not_up += 1;
            return;
        }
        let seqno = Seqno(h.seqno());
        let ack = Seqno(h.ack());
        let size = h.size();
        self.silent_intv_cnt = 0;
        self.last_rx = now;
        let win_lim = self.rcv_nxt.add(RCV_WINDOW);
        if seqno.less(self.rcv_nxt) || seqno.more(win_lim) {
            self.stats.duplicates += 1;
            // Release what the piggybacked ack covers anyway.
            self.advance_transmq(now, ack, 0, &[]);
            return;
        }
        self.advance_transmq(now, ack, 0, &[]);
        if !self.is_up() {
            return;
        }
        let pkt = pkt.slice(..size);
        if seqno != self.rcv_nxt {
            let key = self.rcv_nxt_abs + seqno.diff(self.rcv_nxt) as u64;
            if self.deferdq.contains_key(&key) {
                self.stats.duplicates += 1;
                return;
            }
            self.deferdq.insert(key, pkt);
            self.stats.deferred += 1;
            let n = self.deferdq.len();
            if n >= 3 && (n - 3).is_multiple_of(16) {
                let first = *self.deferdq.keys().next().unwrap_or(&key);
                let gap = (first - self.rcv_nxt_abs) as u16;
                self.build_proto(LinkProtoType::State, false, false, gap, now);
            }
            return;
        }
        self.accept_in_order(now, pkt);
        while self.is_up() {
            let Some(p) = self.deferdq.remove(&self.rcv_nxt_abs) else {
                break;
            };
            self.accept_in_order(now, p);
        }
    }

    /// The dummy packet the kernel's failover always tunnels (`tipc_link_tnl_prepare`: a
    /// DIRECT_MSG with `NO_PORT` and no data).
    pub fn failover_dummy(own: NodeAddr, peer: NodeAddr, seqno: Seqno) -> Bytes {
        let mut b = BytesMut::zeroed(wire::BASIC_H_SIZE);
        let mut h = Header::new_unchecked(&mut b[..]);
        h.init(
            user::LOW,
            wire::DataType::Direct as u8,
            wire::BASIC_H_SIZE,
            wire::BASIC_H_SIZE,
            own,
        );
        h.set(field::ERRCODE, wire::ErrorCode::NoPort as u32);
        h.set(field::ORIGNODE, own);
        h.set(field::DESTNODE, peer);
        h.set_seqno(seqno.0);
        b.freeze()
    }

    fn accept_in_order(&mut self, now: Instant, pkt: Bytes) {
        self.rcv_nxt = self.rcv_nxt.next();
        self.rcv_nxt_abs += 1;
        self.stats.rx_packets += 1;
        self.rcv_unacked += 1;
        self.input(now, pkt);
        if self.is_up() && self.rcv_unacked >= ACK_INTERVAL {
            self.stats.tx_acks += 1;
            self.build_proto(LinkProtoType::State, false, false, 0, now);
        }
    }

    /// Deliver one in-sequence packet: unbundle, reassemble, intercept link-level users.
    fn input(&mut self, now: Instant, pkt: Bytes) {
        self.input_with(now, pkt, false);
    }

    /// [`Link::input`]; `failover`: a packet of this (failed) link tunnelled over another,
    /// reassembled with the failed link's fragments.
    fn input_with(&mut self, now: Instant, pkt: Bytes, failover: bool) {
        let Ok(h) = Header::new_checked(&pkt[..]) else {
            self.stats.rx_malformed += 1;
            return;
        };
        let usr = h.user();
        let last_bcast = h.get(field::LAST_BCAST) as u16;
        match usr {
            user::MSG_BUNDLER => {
                self.stats.rx_bundles += 1;
                for m in wire::extract(&pkt) {
                    match m {
                        Ok(m) => {
                            self.stats.rx_bundled += 1;
                            self.deliver(m);
                        }
                        Err(_) => self.stats.rx_malformed += 1,
                    }
                }
            }
            user::MSG_FRAGMENTER => {
                self.stats.rx_fragments += 1;
                let reasm = match self.failover.as_mut() {
                    Some(f) if failover => &mut f.reasm,
                    _ => &mut self.reasm,
                };
                match reasm.push(pkt) {
                    Ok(Some(msg)) => {
                        self.stats.rx_fragmented += 1;
                        self.deliver(msg);
                    }
                    Ok(None) => {}
                    Err(_) => self.fail(now, DownReason::ReassemblyFailure),
                }
            }
            user::BCAST_PROTOCOL => {
                self.events.push_back(LinkEvent::BcInit { last_bcast });
            }
            user::TUNNEL_PROTOCOL if !failover => self.deliver(pkt),
            user::TUNNEL_PROTOCOL => self.stats.proto_ignored += 1,
            _ => self.deliver(pkt),
        }
    }

    fn deliver(&mut self, msg: Bytes) {
        let tunnel = Header::new_unchecked(&msg[..]).user() == user::TUNNEL_PROTOCOL;
        self.events.push_back(if tunnel {
            LinkEvent::Tunnel(msg)
        } else {
            LinkEvent::Deliver(msg)
        });
    }

    // ------------------------------------------------------------------ failover (§4.12)

    /// What the last reset took from the send queues: packets sent and not acknowledged,
    /// then the unsent ones, in order, each with its seqno in w2 (empty after the first
    /// call); and the seqno the next packet would have had.
    pub fn take_failed(&mut self) -> (Vec<Bytes>, Seqno) {
        (std::mem::take(&mut self.failed_tx), self.failed_next)
    }

    /// The node layer fails this (down) link over to a parallel one: the peer's tunnelled
    /// copies of what it sent here are delivered ([`Link::failover_rcv`]) against the
    /// receive state of the last reset (a link that was never up delivers from seqno 1, as
    /// the kernel's `tipc_link_failover_prepare`). Until [`Link::end_failover`] the link
    /// ignores everything it receives and sends nothing, so it cannot come up too early.
    pub fn begin_failover(&mut self) {
        if self.failover.is_none() {
            self.failover = Some(self.failed_rx.take().unwrap_or_else(FailoverRx::fresh));
        }
    }

    /// Failing over (between [`Link::begin_failover`] and [`Link::end_failover`])?
    pub fn is_failing_over(&self) -> bool {
        self.failover.is_some()
    }

    /// The failover is over: the link may be set up again.
    pub fn end_failover(&mut self) {
        self.failover = None;
        self.failed_rx = None;
    }

    /// A packet the peer had sent on this link, tunnelled over a parallel one: delivered in
    /// this link's order, once (older than the drop point: delivered before, dropped; ahead of
    /// it: held until the gap fills). The failover's dummy packet is dropped.
    pub fn failover_rcv(&mut self, now: Instant, pkt: Bytes) {
        let Ok(h) = Header::new_checked(&pkt[..]) else {
            self.stats.rx_malformed += 1;
            return;
        };
        let seqno = Seqno(h.seqno());
        let size = h.size();
        let Some(f) = self.failover.as_mut() else {
            self.stats.proto_ignored += 1;
            return;
        };
        if seqno.less(f.drop_point) || seqno.more(f.drop_point.add(RCV_WINDOW)) {
            self.stats.duplicates += 1;
            return;
        }
        let pkt = pkt.slice(..size);
        if seqno != f.drop_point {
            let key = f.drop_abs + seqno.diff(f.drop_point) as u64;
            if f.deferred.insert(key, pkt).is_some() {
                self.stats.duplicates += 1;
            }
            return;
        }
        let mut next = Some(pkt);
        while let Some(p) = next {
            let Some(f) = self.failover.as_mut() else {
                return;
            };
            f.drop_point = f.drop_point.next();
            f.drop_abs += 1;
            let key = f.drop_abs;
            if !is_failover_dummy(&p) {
                self.stats.rx_packets += 1;
                self.input_with(now, p, true);
            }
            next = self.failover.as_mut().and_then(|f| f.deferred.remove(&key));
        }
    }

    // ------------------------------------------------------------------ acks and retransmission

    /// `tipc_link_advance_transmq` for unicast: release up to `acked` and retransmit the `gap`
    /// packets after it; with gap ACK blocks (`blocks`: the record's unicast `{ack, gap}`
    /// pairs, big-endian), also mark each island the peer holds up to a block's `ack` as held
    /// ([`TxPkt::sacked`]) and retransmit the block's `gap` packets after it. Blocks that do
    /// not rise within what we sent are ignored.
    fn advance_transmq(&mut self, now: Instant, acked: Seqno, gap: u16, blocks: &[u8]) {
        let mut released = 0u16;
        while let Some(p) = self.transmq.front() {
            if p.seqno.less_eq(acked) {
                released += 1;
                self.transmq.pop_front();
            } else {
                break;
            }
        }
        let block = |b: &[u8]| {
            (
                Seqno(u16::from_be_bytes([b[0], b[1]])),
                u16::from_be_bytes([b[2], b[3]]),
            )
        };
        let sent = self.snd_nxt.sub(1);
        let mut floor = acked.add(gap);
        let blocks_ok = blocks.chunks_exact(4).all(|b| {
            let (ack, gap) = block(b);
            let ok = floor.less(ack) && ack.less_eq(sent);
            floor = ack.add(gap);
            ok
        });
        let blocks = if blocks_ok { blocks } else { &[] };
        let mut retransmitted = false;
        if gap != 0 || !blocks.is_empty() {
            let tol10 = self.tolerance * 10;
            let mut failure = false;
            let mut resend = Vec::new();
            let mut holes = std::iter::once((acked, gap)).chain(blocks.chunks_exact(4).map(block));
            let (mut nacked, mut ngap) = holes.next().unwrap_or((acked, gap));
            'walk: for p in self.transmq.iter_mut() {
                loop {
                    if p.seqno.less_eq(nacked) {
                        // In an island the peer holds: not sent again.
                        if !p.sacked {
                            p.sacked = true;
                            self.stats.gap_acked += 1;
                        }
                        continue 'walk;
                    }
                    if p.seqno.less_eq(nacked.add(ngap)) {
                        break;
                    }
                    match holes.next() {
                        Some((a, g)) => (nacked, ngap) = (a, g),
                        None => break 'walk,
                    }
                }
                if p.next_retr.is_some_and(|t| now < t) {
                    continue;
                }
                if let Some(first) = p.first_retr {
                    if now.duration_since(first) > tol10 {
                        failure = true;
                        break;
                    }
                } else {
                    p.first_retr = Some(now);
                }
                p.next_retr = Some(now + RETRANSMIT_SPACING);
                resend.push(p.seqno);
            }
            if failure {
                self.fail(now, DownReason::RetransmitFailure);
                return;
            }
            for s in resend {
                self.stats.retransmitted += 1;
                self.outq.push_back(Outgoing::Seq(s));
                retransmitted = true;
            }
        }
        if retransmitted {
            self.update_cwin(0, true);
        }
        if released > 0 {
            self.update_cwin(released, false);
            self.advance_backlog();
        }
    }

    fn update_cwin(&mut self, released: u16, retransmitted: bool) {
        if retransmitted {
            self.ssthresh = (self.window / 2).max(SSTHRESH_FLOOR);
            self.window = self.ssthresh.min(self.window);
            return;
        }
        if released == 0 {
            self.ssthresh = (self.window / 2).max(SSTHRESH_FLOOR);
            self.window = self.cfg.min_win;
            return;
        }
        let txq_len = self.transmq.len();
        let cwin = self.window;
        if txq_len + self.backlogq.len() < cwin as usize {
            return;
        }
        if let Some(p) = self.transmq.front() {
            if self.snd_nxt.diff(p.seqno) as usize != txq_len {
                return;
            }
        }
        self.cong_acks = self.cong_acks.saturating_add(released);
        if cwin <= self.ssthresh {
            self.window = (cwin + released).min(self.cfg.max_win);
            self.cong_acks = 0;
            return;
        }
        if self.cong_acks < cwin {
            return;
        }
        self.window = (cwin + 1).min(self.cfg.max_win);
        self.cong_acks = 0;
    }

    // ------------------------------------------------------------------ send

    /// Queue a complete TIPC message (header included) for reliable, ordered delivery. Messages
    /// larger than [`Link::mss`] are fragmented. Small messages that find the window full are
    /// bundled. The link writes `seqno`, `ack` and `bcast_ack`.
    pub fn send(&mut self, now: Instant, msg: BytesMut) -> Result<SendStatus, SendError> {
        let _ = now;
        if !self.is_up() {
            return Err(SendError::NotUp(msg));
        }
        let (imp, size, usr) = match Header::new_checked(&msg[..]) {
            Ok(h) if h.size() == msg.len() => (wire::importance(&h) as usize, h.size(), h.user()),
            _ => return Err(SendError::Invalid(msg)),
        };
        // A failover's tunnel messages (SYSTEM importance in the kernel) are queued apart and
        // without a limit: they carry the failed link's queue, which its own limits bounded.
        // (The kernel counts them as SYSTEM: a long queue overflows that level and the rest
        // of the failover is dropped.)
        let imp = if usr == user::TUNNEL_PROTOCOL {
            TUNNEL_LEVEL
        } else {
            imp.min(IMPORTANCE_LEVELS - 1)
        };
        let b = &self.backlog[imp];
        if b.len >= b.limit {
            if imp == IMPORTANCE_LEVELS - 1 {
                // The kernel resets the link when the SYSTEM level overflows.
                self.fail(now, DownReason::Overflow);
                return Err(SendError::NotUp(msg));
            }
            if b.len >= b.limit + b.limit / 2 {
                // The sender ignored congestion: refuse, keep memory bounded.
                return Err(SendError::Congested(msg));
            }
        }
        // A tunnel message may fill the MTU: its own header is the tunnel header the mss
        // leaves room for (the node fragments a packet too large for it, §4.12).
        let fits = size <= self.mss() || (usr == user::TUNNEL_PROTOCOL && size <= self.mtu);
        if !fits {
            self.unstage();
            if let Err(msg) = self.send_fragmented(msg, imp as u8) {
                return Err(SendError::Invalid(msg));
            }
        } else if self.corked {
            self.stage(msg, imp as u8);
        } else {
            self.enqueue(Frame::Open(msg), imp as u8);
        }
        let b = &mut self.backlog[imp];
        let status = if b.len >= b.limit && imp < IMPORTANCE_LEVELS - 1 {
            if !b.congested {
                b.congested = true;
                self.stats.link_congs += 1;
            }
            SendStatus::Congested
        } else {
            SendStatus::Accepted
        };
        let q = self.queued() as u64;
        if q > self.stats.max_queue {
            self.stats.max_queue = q;
        }
        Ok(status)
    }

    /// Cork or uncork the link. While corked, messages that [`Link::send`] accepts and that
    /// can be bundled are packed into one packet (a `MSG_BUNDLER` once there are two) instead
    /// of one packet each, whether or not the window has room: a burst produced in one go (a
    /// connection's ACK, its first reply and its FIN) leaves as one datagram. Uncorking (or
    /// a message that cannot be bundled) releases the packet into the send queue, in order.
    /// The kernel bundles only behind a full window; its receiver opens any bundle.
    pub fn set_cork(&mut self, on: bool) {
        self.corked = on;
        if !on {
            self.unstage();
        }
    }

    /// While corked: add `msg` to the staged packet, or start a new one.
    fn stage(&mut self, msg: BytesMut, imp: u8) {
        let mss = self.mss();
        let (usr, len) = (Header::new_unchecked(&msg[..]).user(), msg.len());
        if !wire::can_bundle(usr, len, mss) {
            self.unstage();
            self.enqueue(Frame::Open(msg), imp);
            return;
        }
        if let Some((_, tail)) = self.staged.as_mut() {
            if Self::try_bundle(tail, &msg, mss, self.cfg.peer_addr) {
                self.stats.tx_bundled += 1;
                return;
            }
        }
        self.unstage();
        self.staged = Some((imp, Frame::Open(msg)));
    }

    /// Release the staged packet into the send queue.
    fn unstage(&mut self) {
        if let Some((imp, f)) = self.staged.take() {
            self.enqueue(f, imp);
        }
    }

    /// Fragment `msg` (§4.9) into packets of the mss: each a 40-byte header and a slice of
    /// the message, so no byte of it is copied. The message comes back if it cannot be.
    fn send_fragmented(&mut self, msg: BytesMut, imp: u8) -> Result<(), BytesMut> {
        let mut frags = Vec::new();
        // A 24-byte (connection) header has no destnode word: the fragments must still name
        // the peer, or its destination check drops them (the kernel's socket header template
        // carries destnode beyond the short header).
        let short = Header::new_unchecked(&msg[..]).header_len() < wire::BASIC_H_SIZE;
        let dest = short.then_some(self.cfg.peer_addr);
        let mss = self.mss();
        let msg = msg.freeze();
        if wire::fragment_parts(&msg, mss, dest, &mut self.frag_pool, &mut frags).is_err() {
            return Err(BytesMut::from(&msg[..]));
        }
        self.stats.tx_fragmented += 1;
        for (head, body) in frags {
            self.stats.tx_fragments += 1;
            self.enqueue(Frame::Parts(head, body), imp);
        }
        Ok(())
    }

    fn enqueue(&mut self, msg: Frame, imp: u8) {
        if self.backlogq.is_empty() && self.transmq.len() < self.window as usize {
            let (head, body) = msg.into_parts();
            self.push_transmq(head, body);
            return;
        }
        // Window full: bundle into the backlog tail if possible (§4.10). (A fragment is never
        // bundled: its user is MSG_FRAGMENTER.)
        let mss = self.mss();
        let (usr, len) = {
            let b = msg.head();
            (Header::new_unchecked(b).user(), b.len())
        };
        let bundleable = wire::can_bundle(usr, len, mss);
        if bundleable && self.bundle_open {
            if let Some((timp, tail)) = self.backlogq.back_mut() {
                if *timp == imp && Self::try_bundle(tail, msg.head(), mss, self.cfg.peer_addr) {
                    self.stats.tx_bundled += 1;
                    return;
                }
            }
        }
        self.backlog[imp as usize].len += 1;
        self.bundle_open = bundleable;
        self.backlogq.push_back((imp, msg));
    }

    /// Append `msg` to the backlog tail, turning the tail into a bundle first if needed.
    fn try_bundle(tail: &mut Frame, msg: &[u8], mss: usize, dest: NodeAddr) -> bool {
        let Frame::Open(cur) = tail else {
            return false;
        };
        let cur: &[u8] = cur;
        let is_bundle = Header::new_unchecked(cur).user() == user::MSG_BUNDLER;
        let builder = if is_bundle {
            let Frame::Open(b) = std::mem::replace(tail, Frame::Open(BytesMut::new())) else {
                return false;
            };
            wire::BundleBuilder::from_bytes_mut(b).ok()
        } else {
            if !wire::BundleBuilder::would_fit(cur.len(), msg.len(), mss) {
                return false;
            }
            wire::BundleBuilder::new(cur, dest).ok()
        };
        let Some(mut builder) = builder else {
            return false;
        };
        let ok = builder.push(msg, mss).is_ok();
        *tail = Frame::Open(builder.into_bytes_mut());
        ok
    }

    fn push_transmq(&mut self, buf: Bytes, body: Bytes) {
        let seqno = self.snd_nxt;
        self.snd_nxt = self.snd_nxt.next();
        if Header::new_unchecked(&buf[..]).user() == user::MSG_BUNDLER {
            self.stats.tx_bundles += 1;
        }
        self.stats.tx_packets += 1;
        self.transmq.push_back(TxPkt {
            seqno,
            buf,
            body,
            sacked: false,
            next_retr: None,
            first_retr: None,
        });
        self.outq.push_back(Outgoing::Seq(seqno));
    }

    /// `tipc_link_advance_backlog`: move packets from the backlog into the window.
    fn advance_backlog(&mut self) {
        while self.transmq.len() < self.window as usize {
            let Some((imp, buf)) = self.backlogq.pop_front() else {
                break;
            };
            if self.backlogq.is_empty() {
                self.bundle_open = false;
            }
            let b = &mut self.backlog[imp as usize];
            b.len = b.len.saturating_sub(1);
            if b.congested && b.len < b.limit {
                b.congested = false;
                self.events.push_back(LinkEvent::Unblocked(imp));
            }
            let (head, body) = buf.into_parts();
            self.push_transmq(head, body);
        }
    }

    // ------------------------------------------------------------------ output

    /// Append the next packet to send to `out`; returns its length, or `None` when there is
    /// nothing to send. Sequenced packets are stamped with the current `ack` and `bcast_ack`.
    pub fn poll_transmit(&mut self, out: &mut BytesMut) -> Option<usize> {
        let (len, body) = self.poll_transmit_parts(out)?;
        out.extend_from_slice(&body);
        Some(len + body.len())
    }

    /// [`Link::poll_transmit`] without copying large payloads: appends the packet's first
    /// `len` bytes (its header, stamped, or the whole of a small packet) to `out` and returns
    /// `len` and the rest of the packet by reference (often empty). The packet is the two
    /// put together.
    pub fn poll_transmit_parts(&mut self, out: &mut BytesMut) -> Option<(usize, Bytes)> {
        loop {
            let o = self.outq.pop_front()?;
            match o {
                Outgoing::Proto(buf) => {
                    out.extend_from_slice(&buf);
                    return Some((buf.len(), Bytes::new()));
                }
                Outgoing::Seq(s) => {
                    let Some(front) = self.transmq.front() else {
                        continue;
                    };
                    let idx = s.diff(front.seqno) as usize;
                    if s.less(front.seqno) || idx >= self.transmq.len() {
                        continue; // released meanwhile
                    }
                    let ack = self.rcv_nxt.sub(1).0;
                    let bcast_ack = self.bcast_ack;
                    let p = &self.transmq[idx];
                    if p.sacked {
                        continue; // the peer has it
                    }
                    let (head, body) = if p.body.is_empty() && p.buf.len() > SPLIT_MIN {
                        let hlen = Header::new_unchecked(&p.buf[..]).header_len();
                        (&p.buf[..hlen], p.buf.slice(hlen..))
                    } else {
                        (&p.buf[..], p.body.clone())
                    };
                    let start = out.len();
                    out.extend_from_slice(head);
                    {
                        let mut h = Header::new_unchecked(&mut out[start..]);
                        h.set_seqno(s.0);
                        h.set_ack(ack);
                        h.set_bcast_ack(bcast_ack);
                    }
                    // Every sequenced packet acks what we received, broadcast included.
                    self.rcv_unacked = 0;
                    self.bc_unacked = false;
                    return Some((head.len(), body));
                }
            }
        }
    }

    /// Is anything waiting in [`Link::poll_transmit`]?
    pub fn has_transmit(&self) -> bool {
        !self.outq.is_empty()
    }

    /// Next event for the owner.
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }
}

/// A copy of the packet `head` + `body` with `seqno` in w2.
fn with_seqno(head: &[u8], body: &[u8], seqno: Seqno) -> Bytes {
    let mut b = BytesMut::with_capacity(head.len() + body.len());
    b.extend_from_slice(head);
    b.extend_from_slice(body);
    Header::new_unchecked(&mut b[..]).set_seqno(seqno.0);
    b.freeze()
}

/// Is `pkt` the failover dummy ([`Link::failover_dummy`])?
fn is_failover_dummy(pkt: &[u8]) -> bool {
    Header::new_checked(pkt).is_ok_and(|h| {
        h.user() <= user::CRITICAL
            && h.mtype() == wire::DataType::Direct as u8
            && h.errcode() != 0
            && h.destport() == 0
            && h.payload().is_empty()
    })
}
