//! A peer node and its links (kernel `node.c`), spec §3.3 (step 6–9), §4.1, §4.2, §4.12, §5.2, §5.5.
//!
//! One [`Peer`] per remote node owns that node's links (one per bearer, at most two working),
//! chooses among them for sending, keeps the broadcast bookkeeping a kernel peer needs (§5.5
//! items 1–4: our broadcast receive state from the peer's bc-init, `bcast_ack` in every packet,
//! our own bc-init sent as unicast seqno 1 at link-up, `last_bcast` from our broadcast link),
//! reports the peer's acks of our broadcasts ([`PeerEvent::BcastAck`],
//! [`PeerEvent::BcastReady`]) and turns link events into node events.
//!
//! # Peer restarts
//!
//! A node session (NodeUp … NodeDown) belongs to one instance of the peer. With two links a
//! peer can restart and bring one link up again before the other, still "up" toward the old
//! instance, times out; the node must then go down (bindings purged) and up again (bulk resent).
//! Three rules see to it:
//!
//! * **Node FSM, `SELF_DOWN_PEER_LEAVING`** (§4.2, `tipc_node_check_state`): a new peer object,
//!   or one whose last link we lost on our own, drops everything that says "up" until a RESET
//!   or ACTIVATE with `redundant_link` clear shows that the peer's side is down too. So a
//!   restarted node never joins the old node session its peer still holds (the kernel's rule).
//! * **Signature** (§3.3 step 6, `tipc_node_check_dest`): a discovery message with a new
//!   signature while the link on its bearer is up is only stored, as the kernel does ("delayed
//!   rediscovery"): discovery messages are not authenticated, so one spoofed message must not
//!   take a working node down. A real restart shows on the links themselves: the new
//!   instance's RESET resets them, or they time out, and the node FSM rule above keeps the new
//!   instance out of the old node session until then.
//! * **Second bc-init**: the peer sends its bc-init only on the first link of a node session
//!   (§5.2). One arriving while our broadcast receive state is already set up means the peer
//!   started a new session (restart, or it lost contact first): the other links are reset and
//!   the node goes down and up again on the link that carried it. So does a *first* bc-init
//!   while the node is up if the peer announced a new signature since the node came up: the
//!   old instance's bc-init never arrived (lost, and it restarted before retransmitting), so
//!   the rule above cannot see the restart, and the node would otherwise stay up on a new
//!   link to the new instance without either side's bulk (a first bc-init on another link
//!   than ours, with the signature unchanged, is the normal case of the peer's first link
//!   being another bearer). A new instance whose bc-init arrives before any of its discovery
//!   messages is still only caught when the stale links go.
//!
//! [`classify`] is the packet entry of `tipc_rcv` (§4.1): it decides whether a received frame
//! goes to discovery, to a peer's broadcast receive state or to a peer's unicast link.

mod bcast;
mod stats;

pub use stats::PeerStats;

use crate::discovery::check_dest;
use crate::link::{DownReason, Link, LinkConfig, LinkEvent, LinkSnapshot, SendError, SendStatus};
use crate::wire::{
    self, field, user, ErrorCode, Header, InputQueue, MediaAddr, Seqno, TunnelRepr, TunnelType,
    WireError, INT_H_SIZE,
};
use crate::{BearerId, NodeAddr, NodeId, MAX_BEARERS};
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The least time between two STATEs sent for broadcasts the peer has not acknowledged.
pub const BC_STATE_INTERVAL: Duration = Duration::from_millis(200);

/// Where a received frame goes (`tipc_rcv`, §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// A LINK_CONFIG message: to the bearer's discoverer.
    Discovery,
    /// A broadcast-link packet (`non_seq`, not LINK_CONFIG) from this node.
    Broadcast(NodeAddr),
    /// A unicast link packet from this node (by `prevnode`).
    Unicast(NodeAddr),
}

/// Why [`classify`] dropped a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DropReason {
    /// The header failed validation.
    #[error("malformed: {0}")]
    Malformed(WireError),
    /// A unicast packet for another node.
    #[error("destination is another node")]
    WrongDestination,
    /// `prevnode` is 0 or our own address.
    #[error("bad previous node")]
    BadPrevNode,
}

/// Classify a received frame (`tipc_rcv` steps 1–4).
pub fn classify(own_addr: NodeAddr, frame: &[u8]) -> Result<Route, DropReason> {
    let h = Header::new_checked(frame).map_err(DropReason::Malformed)?;
    if h.non_seq() {
        if h.user() == user::LINK_CONFIG {
            return Ok(Route::Discovery);
        }
        let from = h.prevnode();
        if from == 0 || from == own_addr {
            return Err(DropReason::BadPrevNode);
        }
        return Ok(Route::Broadcast(from));
    }
    if h.user() == user::LINK_CONFIG {
        return Ok(Route::Discovery);
    }
    if h.header_len() > wire::SHORT_H_SIZE && h.destnode() != own_addr {
        return Err(DropReason::WrongDestination);
    }
    let from = h.prevnode();
    if from == 0 || from == own_addr {
        return Err(DropReason::BadPrevNode);
    }
    Ok(Route::Unicast(from))
}

/// Parameters of one of our bearers, for creating links on it.
#[derive(Debug, Clone)]
pub struct BearerParams {
    /// Bearer id.
    pub id: BearerId,
    /// Interface name (after the media prefix of the bearer name: `udp1` in `udp:udp1`).
    pub if_name: String,
    /// Bearer MTU.
    pub mtu: usize,
    /// Encapsulation overhead (28 UDP/IPv4, 48 UDP/IPv6, 0 Ethernet).
    pub encap_hlen: usize,
    /// Link tolerance.
    pub tolerance: Duration,
    /// Link priority.
    pub priority: u8,
    /// Minimum window.
    pub min_win: u16,
    /// Maximum window.
    pub max_win: u16,
}

/// What discovery told us about a neighbour on one bearer (from [`crate::discovery`]).
#[derive(Debug, Clone, Copy)]
pub struct NeighborSighting {
    /// The peer's media address on this bearer (from inside the discovery message).
    pub media_addr: MediaAddr,
    /// The peer's node identity.
    pub id: NodeId,
    /// The peer's capabilities.
    pub caps: u16,
    /// The peer's signature.
    pub signature: u16,
    /// The message was a `DSC_REQ`: the driver answers it with a `DSC_RESP` if the outcome
    /// says `respond`, and that response is the one frame the message pays for while the
    /// peer is a stranger ([`Peer::handle_discovery`]). A harness that never sends responses
    /// passes `false`.
    pub is_request: bool,
}

/// Frames a link may send to a peer that never answered, per discovery message received from
/// it, at most this many saved up ([`Peer::handle_discovery`]).
pub const STRANGER_CREDIT_MAX: u8 = 4;

/// The outcome of [`Peer::handle_discovery`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiscoveryOutcome {
    /// Answer the request (if it was a request) with a DSC_RESP.
    pub respond: bool,
    /// The message looked like a duplicate node address (kernel "duplicate alert"): another
    /// node with the peer's address, or another media address for a working link. Refused
    /// and counted ([`PeerStats::duplicates`]).
    pub duplicate: bool,
    /// Log the duplicate alert: the first one, then at most one per
    /// [`DUPLICATE_LOG_INTERVAL`] per peer, so a flood cannot flood the log.
    pub log_duplicate: bool,
    /// A new link was created.
    pub link_created: bool,
    /// The peer has not answered on this bearer yet (no link packet from its media address):
    /// a response to it is unauthenticated traffic to a stranger, which the bearer's
    /// discoverer rate-limits ([`crate::discovery::Discoverer::respond_to`]).
    pub stranger: bool,
}

/// Least time between two logged duplicate alerts of one peer
/// ([`DiscoveryOutcome::log_duplicate`]).
pub const DUPLICATE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// A node with no working link for this long is forgotten (`NODE_CLEANUP_AFTER`,
/// `tipc_node_cleanup`): the owner drops the peer object ([`PeerEvent::Forget`]).
pub const NODE_CLEANUP_AFTER: Duration = Duration::from_secs(300);

/// Node-level events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerEvent {
    /// A link to the peer came up.
    LinkUp {
        /// Bearer.
        bearer: BearerId,
        /// Link name.
        name: String,
        /// The kernel's link id, `(peer_bearer_id << 16) | bearer_id`: the instance of the
        /// node-scope link-state binding `{2, peer, peer}` (§7.3).
        link_id: u32,
    },
    /// A link to the peer went down (only a link that was reported up).
    LinkDown {
        /// Bearer.
        bearer: BearerId,
        /// Link name.
        name: String,
        /// Why.
        reason: DownReason,
        /// The link id its [`PeerEvent::LinkUp`] carried.
        link_id: u32,
    },
    /// First link up: the peer node is reachable.
    NodeUp,
    /// Last link down: the peer node is lost.
    NodeDown,
    /// A message for the sockets (`inputq` of `tipc_data_input`: unicast data and
    /// CONN_MANAGER), in link order with every other delivery.
    Deliver(Bytes),
    /// A multicast or group message, or GROUP_PROTOCOL (`mc_inputq`), in link order.
    DeliverMcast(Bytes),
    /// A NAME_DISTRIBUTOR message (`namedq`), in link order.
    NameDistr(Bytes),
    /// A MSG_CRYPTO message (a key distribution, `tipc_crypto_msg_rcv`), for the node's
    /// [`crate::crypto::Crypto::handle_key_distr`].
    KeyDistr(Bytes),
    /// Senders of this importance may resume.
    Unblocked(u8),
    /// A message queued for the peer that a link dropped when it went down and that no
    /// other link could take: already reversed (`tipc_msg_reverse` with NO_NODE, in the name
    /// of the lost node), so it goes where its header says, back to its sender. Bundles are
    /// opened first. Droppable messages, fragments and protocol messages are not returned
    /// (counted in [`PeerStats::unreturned`]).
    Returned(BytesMut),
    /// The node had no working link for [`NODE_CLEANUP_AFTER`]: forget it (drop this peer
    /// object; a new discovery starts a fresh one).
    Forget,
    /// The peer acknowledged our broadcasts up to `ack` (a packet's `bcast_ack`, §5.2) and,
    /// from a STATE, misses the `gap` packets after it (`bc_gap`, a broadcast NACK). Reported
    /// when the ack moved or a gap is named; for the node's [`crate::bcast::BcastLink`].
    BcastAck {
        /// Last of our broadcast seqnos the peer has in order.
        ack: u16,
        /// Packets it misses after `ack` (0: none).
        gap: u16,
    },
    /// From now on the peer's broadcast acks count (`bc_peer_is_up`: its broadcast receive
    /// state for us is set up and it acknowledged our unicast packets). Once per node session.
    BcastReady,
}

/// A frame the owner must send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// Out of which bearer.
    pub bearer: BearerId,
    /// To which media address.
    pub dest: MediaAddr,
    /// Length of the frame (or of its first part, [`Peer::poll_transmit_parts`]) appended to
    /// the caller's buffer.
    pub len: usize,
}

/// A failover in progress (node FSM `NODE_FAILINGOVER`, §4.12): link `failed` went down while
/// another link kept the node up. What it had not got acknowledged was tunnelled to the peer
/// over the active link, and the peer's tunnelled copies of what it sent on `failed` are
/// delivered against `failed`'s receive state until the `msgcnt` announced have arrived.
#[derive(Debug, Clone, Copy)]
struct Failover {
    failed: usize,
    /// FAILOVER messages the peer announced (`msgcnt` of the first).
    expected: Option<u16>,
    received: u16,
}

/// Link synchronisation in progress (node FSM `NODE_SYNCHING`, §4.12): the peer's second link
/// `tnl` came up while `old` carried traffic, and the peer may now send on both. Nothing but
/// protocol messages is accepted on `tnl` until `old` has delivered up to `point`, so what the
/// peer moved to the new link is not delivered before what it sent earlier on the old one.
#[derive(Debug, Clone, Copy)]
struct Synch {
    tnl: usize,
    old: usize,
    point: Seqno,
}

/// A packet arriving in `TIPC_TUNNEL_ENHANCED` tunnel fragments (`reasm_tnlmsg`).
#[derive(Debug)]
struct TunnelReasm {
    /// The link the fragments arrive on.
    link: usize,
    /// The fragment number expected next.
    next: u16,
    buf: BytesMut,
}

#[derive(Debug)]
struct LinkSlot {
    link: Link,
    media: MediaAddr,
    /// A packet of the link came from `media`: the peer speaks TIPC there. Until then the
    /// peer is a stranger (anyone may send a discovery message naming any address), and the
    /// link sends only as many frames as discovery messages came from it (`credit`).
    answered: bool,
    /// Frames the link may still send to a stranger.
    credit: u8,
}

impl LinkSlot {
    fn new(link: Link, media: MediaAddr) -> LinkSlot {
        LinkSlot {
            link,
            media,
            answered: false,
            credit: 0,
        }
    }
}

/// One remote node: identity, capabilities, links, broadcast receive state.
#[derive(Debug)]
pub struct Peer {
    own_addr: NodeAddr,
    own_id: NodeId,
    addr: NodeAddr,
    id: NodeId,
    caps: u16,
    signature: Option<u16>,
    /// The peer's signature when the current node session began ([`PeerEvent::NodeUp`]): the
    /// instance our links were in session with then, as far as discovery told us.
    session_signature: Option<u16>,
    /// Node FSM `SELF_DOWN_PEER_LEAVING` (§4.2): our side of the node is down but the peer may
    /// still consider it up; everything that says "up" is dropped until a RESET or ACTIVATE
    /// with `redundant_link` clear shows that the peer has taken its side down too.
    peer_leaving: bool,
    /// Boxed: a peer has one link, or two, rarely three; a node object that never comes up
    /// (anyone can make one with a discovery message) then costs one link, not three.
    links: [Option<Box<LinkSlot>>; MAX_BEARERS],
    node_up: bool,
    bc_up: bool,
    bc_rcv_nxt: Seqno,
    /// `bc_rcv_nxt` unwrapped: keys the broadcast deferred queue.
    bc_rcv_abs: u64,
    bc_deferred: crate::link::Deferred,
    bc_reasm: wire::Reassembler,
    bc_rcv_unacked: u16,
    /// Our broadcast link's `snd_nxt - 1` (the `last_bcast` our links send).
    last_bcast: u16,
    /// The `last_bcast` of the last bc-init we sent.
    bc_init_last: u16,
    /// The last broadcast ack of the peer reported ([`PeerEvent::BcastAck`]).
    bc_peer_ack: Option<u16>,
    /// A STATE from the peer acknowledged a unicast packet in this node session.
    bc_state_acked: bool,
    /// [`PeerEvent::BcastReady`] was reported in this node session.
    bc_peer_ready: bool,
    /// The last STATE's broadcast NACK is suppressed next time.
    bc_nack_suppress: bool,
    /// When we last sent a STATE for our unacknowledged broadcasts.
    bc_state_at: Option<Instant>,
    net_id: u32,
    events: VecDeque<PeerEvent>,
    tx_rr: usize,
    active_link: Option<usize>,
    failover: Option<Failover>,
    synch: Option<Synch>,
    /// Reassembly of the peer's tunnel fragments.
    tnl_reasm: Option<TunnelReasm>,
    /// Reassembly of our own tunnel fragments coming back from a failed tunnel link.
    purge_reasm: Option<TunnelReasm>,
    lost_at: Option<Instant>,
    /// When a duplicate alert was last logged.
    dup_logged_at: Option<Instant>,
    stats: PeerStats,
}

impl Peer {
    /// A new peer object, with no links yet.
    pub fn new(own_addr: NodeAddr, own_id: NodeId, addr: NodeAddr, id: NodeId, caps: u16) -> Peer {
        Peer {
            own_addr,
            own_id,
            addr,
            id,
            caps,
            signature: None,
            session_signature: None,
            peer_leaving: true,
            links: Default::default(),
            node_up: false,
            bc_up: false,
            bc_rcv_nxt: Seqno(1),
            bc_rcv_abs: 1,
            bc_deferred: Default::default(),
            bc_reasm: wire::Reassembler::new(),
            bc_rcv_unacked: 0,
            last_bcast: 0,
            bc_init_last: 0,
            bc_peer_ack: None,
            bc_state_acked: false,
            bc_peer_ready: false,
            bc_nack_suppress: false,
            bc_state_at: None,
            net_id: 4711,
            events: VecDeque::new(),
            tx_rr: 0,
            active_link: None,
            failover: None,
            synch: None,
            tnl_reasm: None,
            purge_reasm: None,
            lost_at: None,
            dup_logged_at: None,
            stats: PeerStats::default(),
        }
    }

    /// Peer node address.
    pub fn addr(&self) -> NodeAddr {
        self.addr
    }
    /// Peer node identity.
    pub fn id(&self) -> NodeId {
        self.id
    }
    /// Peer capabilities.
    pub fn caps(&self) -> u16 {
        self.caps
    }
    /// Is the node up (at least one working link)?
    pub fn is_up(&self) -> bool {
        self.node_up
    }
    /// Counters.
    pub fn stats(&self) -> &PeerStats {
        &self.stats
    }
    /// Does the peer have a link on this bearer?
    pub fn has_link(&self, bearer: BearerId) -> bool {
        self.slot(bearer).is_some()
    }
    /// Is the link on this bearer up?
    pub fn link_up(&self, bearer: BearerId) -> bool {
        self.slot(bearer).is_some_and(|s| s.link.is_up())
    }
    /// Number of working links.
    pub fn up_links(&self) -> usize {
        self.links
            .iter()
            .flatten()
            .filter(|s| s.link.is_up())
            .count()
    }
    /// When the node lost its last link (for cleanup after 300 s).
    pub fn lost_at(&self) -> Option<Instant> {
        self.lost_at
    }
    /// The media address the link on `bearer` sends to (the one discovery accepted).
    pub fn link_media(&self, bearer: BearerId) -> Option<MediaAddr> {
        self.slot(bearer).map(|s| s.media)
    }
    /// Snapshots of all links.
    pub fn links(&self) -> Vec<(BearerId, LinkSnapshot)> {
        self.links
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i as BearerId, s.link.snapshot())))
            .collect()
    }
    /// Reset the counters of every link.
    pub fn reset_link_stats(&mut self) {
        for s in self.links.iter_mut().flatten() {
            s.link.reset_stats();
        }
    }

    fn slot(&self, bearer: BearerId) -> Option<&LinkSlot> {
        self.links.get(bearer as usize).and_then(|s| s.as_deref())
    }

    /// Discovery saw this peer on `bearer` (§3.3 step 6–7, `tipc_node_check_dest`). Creates the
    /// link when the address is accepted; `session` is a fresh random session for a new link.
    pub fn handle_discovery(
        &mut self,
        now: Instant,
        bearer: &BearerParams,
        n: &NeighborSighting,
        session: u16,
    ) -> DiscoveryOutcome {
        self.caps = n.caps;
        let idx = bearer.id as usize;
        if idx >= MAX_BEARERS {
            return DiscoveryOutcome::default();
        }
        // A node object is deleted if it has no working link for NODE_CLEANUP_AFTER since it
        // was created, not only since it was lost (the kernel's `delete_at`): otherwise every
        // discovery message naming a new address would leave a node forever.
        if !self.node_up && self.lost_at.is_none() {
            self.lost_at = Some(now);
        }
        for s in self.links.iter_mut().flatten() {
            s.link.set_peer_caps(n.caps);
        }
        let slot = self.links[idx].as_ref();
        let link_up = slot.is_some_and(|s| s.link.is_up());
        let addr_match = slot.is_some_and(|s| s.media == n.media_addr);
        let sig_match = self.signature == Some(n.signature);
        let d = check_dest(sig_match, addr_match, link_up);
        let mut out = DiscoveryOutcome {
            respond: d.respond,
            duplicate: d.dup_alert,
            log_duplicate: false,
            link_created: false,
            stranger: false,
        };
        if d.dup_alert {
            self.stats.duplicates += 1;
            out.log_duplicate = self
                .dup_logged_at
                .is_none_or(|t| now.duration_since(t) >= DUPLICATE_LOG_INTERVAL);
            if out.log_duplicate {
                self.dup_logged_at = Some(now);
            }
        }
        if d.store_signature {
            self.signature = Some(n.signature);
        }
        if !d.accept_addr {
            self.pay_for_discovery(now, idx, n, &mut out);
            return out;
        }
        if self.links[idx].is_none() {
            if self.links.iter().flatten().count() >= 2 {
                out.respond = false;
                return out;
            }
            let name = format!(
                "{}:{}-{}:unknown",
                self.own_id.to_id_string(),
                bearer.if_name,
                self.id.to_id_string()
            );
            let cfg = LinkConfig {
                own_addr: self.own_addr,
                peer_addr: self.addr,
                peer_caps: self.caps,
                name,
                if_name: bearer.if_name.clone(),
                bearer_id: bearer.id,
                mtu: bearer.mtu,
                encap_hlen: bearer.encap_hlen,
                tolerance: bearer.tolerance,
                priority: bearer.priority,
                min_win: bearer.min_win,
                max_win: bearer.max_win,
                session,
            };
            let mut link = Link::new(cfg, now);
            link.set_bcast_state(self.bc_rcv_nxt.sub(1).0, self.bc_up, self.last_bcast);
            self.links[idx] = Some(Box::new(LinkSlot::new(link, n.media_addr)));
            out.link_created = true;
        } else if let Some(s) = self.links[idx].as_mut() {
            if !s.media.same_endpoint(&n.media_addr) {
                // A new address has to answer before it is trusted.
                s.answered = false;
                s.credit = 0;
            }
            s.media = n.media_addr;
            if d.reset_link && s.link.is_up() {
                s.link.force_reset(now, DownReason::PeerReset);
            }
        }
        self.pay_for_discovery(now, idx, n, &mut out);
        self.drain_link(now, idx);
        out
    }

    /// A discovery message from the media address of the link on bearer `idx` pays for one
    /// frame to that address while the peer has not answered there: the response to a
    /// request, or else one frame of the link (a RESET). So a made-up neighbour never gets
    /// more frames from us than it sent (the kernel sends its RESETs to whatever address the
    /// message named, for as long as the node object lives).
    fn pay_for_discovery(
        &mut self,
        now: Instant,
        idx: usize,
        n: &NeighborSighting,
        out: &mut DiscoveryOutcome,
    ) {
        let Some(s) = self.links[idx].as_mut() else {
            return;
        };
        if s.answered || !s.media.same_endpoint(&n.media_addr) {
            return;
        }
        out.stranger = true;
        if !(out.respond && n.is_request) {
            s.credit = s.credit.saturating_add(1).min(STRANGER_CREDIT_MAX);
            // Spent at once (the RESET that was held back), not at the next tick.
            if s.link.state() == crate::link::LinkState::Reset {
                s.link.send_setup(now);
            }
        }
    }

    /// Remove the link on a bearer (bearer disabled): the peer is told (RESET with
    /// `peer_stopping`); call [`Peer::poll_transmit`] before dropping the bearer.
    pub fn shutdown_link(&mut self, now: Instant, bearer: BearerId) {
        let idx = bearer as usize;
        if let Some(s) = self.links.get_mut(idx).and_then(|s| s.as_mut()) {
            s.link.shutdown(now);
        }
        self.drain_link(now, idx);
    }

    /// Tell the peer we are stopping: every link sends RESET with `peer_stopping`.
    pub fn shutdown(&mut self, now: Instant) {
        for i in 0..MAX_BEARERS {
            self.shutdown_link(now, i as BearerId);
        }
    }

    /// Forget the link on a bearer after [`Peer::shutdown_link`] and draining its transmits.
    pub fn remove_link(&mut self, bearer: BearerId) {
        if let Some(s) = self.links.get_mut(bearer as usize) {
            *s = None;
        }
    }

    /// A unicast-link packet from this peer arrived on `bearer` from the media address `src`
    /// (the frame's source as the media saw it; already [`classify`]d). It is accepted only
    /// from the media address the link on that bearer was set up with (the one discovery
    /// accepted): any other source, even with this peer's address in `prevnode`, is a spoof,
    /// counted in [`PeerStats::spoofed_source`] and dropped. (The kernel accepts a packet from
    /// any source; one injected packet could then reset a link or desynchronise it.)
    pub fn handle_packet_from(
        &mut self,
        now: Instant,
        bearer: BearerId,
        src: &MediaAddr,
        pkt: Bytes,
    ) {
        match self.slot(bearer) {
            None => self.stats.no_link += 1,
            Some(s) if !s.media.same_endpoint(src) => self.stats.spoofed_source += 1,
            Some(_) => self.handle_packet(now, bearer, pkt),
        }
    }

    /// A broadcast-link packet from this peer arrived on `bearer` from the media address `src`:
    /// [`Peer::handle_broadcast`] if `src` is the media address of the peer's link on that
    /// bearer, otherwise counted in [`PeerStats::spoofed_source`] and dropped.
    pub fn handle_broadcast_from(
        &mut self,
        now: Instant,
        bearer: BearerId,
        src: &MediaAddr,
        pkt: Bytes,
    ) {
        if self
            .slot(bearer)
            .is_some_and(|s| s.media.same_endpoint(src))
        {
            self.handle_broadcast(now, pkt);
        } else {
            self.stats.spoofed_source += 1;
        }
    }

    /// A unicast-link packet from this peer arrived on `bearer` (already [`classify`]d), from
    /// a source the caller trusts to be the link's media address (an in-memory harness). A
    /// driver reading a real media calls [`Peer::handle_packet_from`].
    pub fn handle_packet(&mut self, now: Instant, bearer: BearerId, pkt: Bytes) {
        let idx = bearer as usize;
        let first = match self.links.get_mut(idx).and_then(|s| s.as_mut()) {
            Some(s) => !std::mem::replace(&mut s.answered, true),
            None => false,
        };
        self.packet_rcv(now, idx, pkt);
        if first {
            // The peer is there: the RESET held back goes now, not at the next tick (unless
            // the packet was the peer's RESET or ACTIVATE, which the link answered itself).
            if let Some(s) = self.links[idx].as_mut() {
                if s.link.state() == crate::link::LinkState::Reset {
                    s.link.send_setup(now);
                }
            }
        }
    }

    fn packet_rcv(&mut self, now: Instant, idx: usize, pkt: Bytes) {
        if !self.node_up && self.peer_leaving {
            // `tipc_node_check_state` in SELF_DOWN_PEER_LEAVING: a packet "says up" unless it
            // is a RESET or ACTIVATE with `redundant_link` clear. Such a packet means the peer
            // has lost contact too (PEER_LOST_CONTACT): from then on links may come up. This
            // keeps a restarted node from joining a node session its peer still holds with the
            // old instance.
            if let Ok(h) = Header::new_checked(&pkt[..]) {
                let says_up = h.user() != user::LINK_PROTOCOL
                    || h.mtype() == 0
                    || h.flag(field::REDUNDANT_LINK);
                if says_up {
                    self.stats.leaving_dropped += 1;
                    return;
                }
                self.peer_leaving = false;
            }
        }
        if self.synch_holds(idx, &pkt) {
            self.stats.synch_dropped += 1;
            return;
        }
        if self.links.get(idx).is_some_and(|s| s.is_some()) {
            self.bc_ack_rcv(now, &pkt);
        }
        match self.links.get_mut(idx).and_then(|s| s.as_mut()) {
            Some(s) => s.link.handle_packet(now, pkt),
            None => {
                self.stats.no_link += 1;
                return;
            }
        }
        self.drain_link(now, idx);
    }

    /// The network id broadcast-link packets must carry in w5 (default 4711).
    pub fn set_net_id(&mut self, net_id: u32) {
        self.net_id = net_id;
    }

    /// When to call [`Peer::handle_timeout`]: the earliest deadline of the links' timers and,
    /// while no link works, of the node cleanup ([`NODE_CLEANUP_AFTER`] after the node was
    /// lost). Call again after every `handle_*` call and `send`: any of them may move it.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let links = self
            .links
            .iter()
            .flatten()
            .filter_map(|s| s.link.poll_timeout())
            .min();
        match (links, self.forget_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// When the node is forgotten if no link comes up before (`tipc_node_cleanup`).
    fn forget_at(&self) -> Option<Instant> {
        if self.node_up {
            return None;
        }
        self.lost_at.map(|t| t + NODE_CLEANUP_AFTER)
    }

    /// Drive the links' timers and the node cleanup: events may follow ([`Peer::poll_event`]),
    /// [`PeerEvent::Forget`] once the node was lost for [`NODE_CLEANUP_AFTER`].
    pub fn handle_timeout(&mut self, now: Instant) {
        for i in 0..MAX_BEARERS {
            let due = self.links[i]
                .as_ref()
                .and_then(|s| s.link.poll_timeout())
                .is_some_and(|t| t <= now);
            if due {
                if let Some(s) = self.links[i].as_mut() {
                    s.link.handle_timeout(now);
                }
                self.drain_link(now, i);
            }
        }
        if self.forget_at().is_some_and(|t| t <= now) && self.up_links() == 0 {
            self.lost_at = None;
            self.events.push_back(PeerEvent::Forget);
        }
        // While the peer has not acknowledged all our broadcasts, a STATE at each timer run
        // (at most every BC_STATE_INTERVAL) tells it our `last_bcast`, so that it NACKs a
        // lost tail (the kernel's link timeout does the same).
        let unacked = self.node_up && self.bc_peer_ack.is_some_and(|a| a != self.last_bcast);
        let spaced = self
            .bc_state_at
            .is_none_or(|t| now.duration_since(t) >= BC_STATE_INTERVAL);
        if unacked && spaced {
            if let Some(i) = self.active_link {
                if let Some(s) = self.links[i].as_mut() {
                    s.link.send_state(now);
                    self.bc_state_at = Some(now);
                }
                self.drain_link(now, i);
            }
        }
    }

    /// A delivered message to its input queue's event (`tipc_data_input`).
    fn deliver(&mut self, m: Bytes) {
        let queue = Header::new_checked(&m[..])
            .ok()
            .and_then(|h| wire::input_queue(&h));
        let ev = match queue {
            Some(InputQueue::Sockets) => PeerEvent::Deliver(m),
            Some(InputQueue::Mcast) => PeerEvent::DeliverMcast(m),
            Some(InputQueue::Names) => PeerEvent::NameDistr(m),
            Some(InputQueue::Crypto) => PeerEvent::KeyDistr(m),
            None => {
                self.stats.bad_user += 1;
                return;
            }
        };
        self.events.push_back(ev);
    }

    /// A message a failed link dropped goes back to its sender ([`PeerEvent::Returned`]):
    /// bundles opened, each data message reversed with NO_NODE in the name of this peer, so
    /// that its sender sees the destination that could not be reached.
    fn give_back(&mut self, m: Bytes) {
        let usr = match Header::new_checked(&m[..]) {
            Ok(h) => h.user(),
            Err(_) => {
                self.stats.unreturned += 1;
                return;
            }
        };
        if usr == user::MSG_BUNDLER {
            for inner in wire::extract(&m) {
                match inner {
                    Ok(inner) => self.give_back(inner),
                    Err(_) => self.stats.unreturned += 1,
                }
            }
            return;
        }
        let ret = if usr <= user::CRITICAL {
            wire::reverse(&m, ErrorCode::NoNode, self.addr)
        } else {
            None
        };
        match ret {
            Some(r) => self.events.push_back(PeerEvent::Returned(r)),
            None => self.stats.unreturned += 1,
        }
    }

    /// The largest message that goes unfragmented over the active link (0 if none is up).
    pub fn mss(&self) -> usize {
        self.active(0)
            .map_or(0, |i| self.links[i].as_ref().map_or(0, |s| s.link.mss()))
    }

    /// The link all traffic uses. We send on one link at a time (we never send SYNCH), so a
    /// flow never changes link while older messages are in flight on the other one: traffic
    /// moves when the active link fails (its unacknowledged packets follow in FAILOVER
    /// messages, §4.12), or to a link of higher priority once nothing is in flight
    /// ([`Peer::promote`]).
    fn active(&self, _selector: u32) -> Option<usize> {
        self.active_link
            .filter(|&i| self.links[i].as_ref().is_some_and(|s| s.link.is_up()))
    }

    /// Choose a new active link among the working ones: the highest priority, then the lowest
    /// bearer id.
    fn choose_active(&mut self) {
        if self.active(0).is_some() {
            return;
        }
        self.active_link = self
            .links
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().filter(|s| s.link.is_up()).map(|s| (i, s)))
            .max_by_key(|(i, s)| (s.link.priority(), std::cmp::Reverse(*i)))
            .map(|(i, _)| i);
    }

    /// The kernel moves all traffic to a link of higher priority as soon as it comes up (its
    /// SYNCH keeps the peer from delivering out of order). We send no SYNCH, so traffic moves
    /// only when nothing is in flight on the current link: everything sent on it was
    /// acknowledged, so the peer has delivered it and nothing can be overtaken.
    fn promote(&mut self) {
        let Some(cur) = self.active(0) else {
            return;
        };
        fn up(s: &Option<Box<LinkSlot>>) -> Option<&LinkSlot> {
            s.as_deref().filter(|s| s.link.is_up())
        }
        let Some((best, prio)) = self
            .links
            .iter()
            .enumerate()
            .filter_map(|(i, s)| up(s).map(|s| (i, s.link.priority())))
            .max_by_key(|&(i, p)| (p, std::cmp::Reverse(i)))
        else {
            return;
        };
        let idle =
            up(&self.links[cur]).is_some_and(|s| s.link.queued() == 0 && s.link.priority() < prio);
        if best != cur && idle {
            self.active_link = Some(best);
        }
    }

    /// Send a complete message to the peer over the active link chosen by `selector` (the
    /// sender's port: equal-priority links share the load by its low bit).
    pub fn send(
        &mut self,
        now: Instant,
        msg: BytesMut,
        selector: u32,
    ) -> Result<SendStatus, SendError> {
        if self.up_links() > 1 {
            self.promote();
        }
        let Some(i) = self.active(selector) else {
            return Err(SendError::NotUp(msg));
        };
        let r = match self.links[i].as_mut() {
            Some(s) => s.link.send(now, msg),
            None => return Err(SendError::NotUp(msg)),
        };
        self.drain_link(now, i);
        r
    }

    /// Cork or uncork every link ([`crate::link::Link::set_cork`]): messages sent while
    /// corked are bundled into as few packets as fit; uncorking releases them.
    pub fn set_cork(&mut self, now: Instant, on: bool) {
        for i in 0..MAX_BEARERS {
            if let Some(s) = self.links[i].as_mut() {
                s.link.set_cork(on);
                self.drain_link(now, i);
            }
        }
    }

    /// Packets queued (sent and not yet acknowledged, plus backlog) on the link `selector`
    /// would use; 0 when no link is up.
    pub fn queued(&self, selector: u32) -> usize {
        self.active(selector)
            .and_then(|i| self.links[i].as_ref())
            .map_or(0, |s| s.link.queued())
    }

    /// Is this importance congested on the link `selector` would use?
    pub fn is_congested(&self, importance: u8, selector: u32) -> bool {
        self.active(selector)
            .and_then(|i| self.links[i].as_ref())
            .is_some_and(|s| s.link.is_congested(importance))
    }

    /// The next frame to send, appended to `out`, and where it goes.
    ///
    /// Call repeatedly until it returns `None`, after every `handle_*` call and every command
    /// ([`Peer::send`], [`Peer::set_cork`], [`Peer::shutdown_link`], [`Peer::shutdown`]); after
    /// `shutdown_link`, before the bearer is dropped.
    #[must_use]
    pub fn poll_transmit(&mut self, out: &mut BytesMut) -> Option<Transmit> {
        let (mut t, rest) = self.poll_transmit_parts(out)?;
        out.extend_from_slice(&rest);
        t.len += rest.len();
        Some(t)
    }

    /// [`Peer::poll_transmit`] without copying large payloads ([`Link::poll_transmit_parts`]):
    /// the frame is the `len` bytes appended to `out` followed by the returned bytes.
    ///
    /// Call it as [`Peer::poll_transmit`]: repeatedly until it returns `None`, after every
    /// `handle_*` call and every command.
    #[must_use]
    pub fn poll_transmit_parts(&mut self, out: &mut BytesMut) -> Option<(Transmit, Bytes)> {
        for k in 0..MAX_BEARERS {
            let i = (self.tx_rr + k) % MAX_BEARERS;
            if let Some(s) = self.links[i].as_mut() {
                while let Some((len, rest)) = s.link.poll_transmit_parts(out) {
                    if !s.answered {
                        if s.credit == 0 {
                            // Not paid for: dropped (a RESET or ACTIVATE; the link sends
                            // another at its next tick).
                            out.truncate(out.len() - len);
                            self.stats.stranger_suppressed += 1;
                            continue;
                        }
                        s.credit -= 1;
                    }
                    self.tx_rr = i;
                    let t = Transmit {
                        bearer: i as BearerId,
                        dest: s.media,
                        len,
                    };
                    return Some((t, rest));
                }
            }
        }
        None
    }

    /// The next node event, in order (deliveries in link order among the others).
    ///
    /// Call repeatedly until it returns `None`, after every `handle_*` call
    /// ([`Peer::handle_discovery`], [`Peer::handle_packet`], [`Peer::handle_broadcast`],
    /// [`Peer::handle_timeout`]) and every command that drives a link ([`Peer::send`],
    /// [`Peer::set_cork`], [`Peer::shutdown_link`], [`Peer::shutdown`]).
    #[must_use]
    pub fn poll_event(&mut self) -> Option<PeerEvent> {
        self.events.pop_front()
    }

    /// Link `idx` went down while the active link keeps the node up (`__tipc_node_link_down`
    /// with a working parallel link, `tipc_link_tnl_prepare` with FAILOVER_MSG): every packet
    /// it had not got acknowledged, then the unsent ones, and a dummy, go to the peer in
    /// FAILOVER messages over the active link, ahead of anything sent later; the peer delivers
    /// the ones it had not received, in order. `idx` stays down (blocked) until the peer's own
    /// tunnelled packets for it have arrived.
    fn start_failover(&mut self, now: Instant, idx: usize, mut pkts: Vec<Bytes>, next: Seqno) {
        let Some(t) = self.active_link else {
            for p in pkts {
                self.purged(now, idx, p);
            }
            return;
        };
        let Some(failed) = slot_link(&mut self.links, idx) else {
            return;
        };
        failed.begin_failover();
        let bearer_id = failed.peer_bearer_id();
        self.stats.failovers += 1;
        if self.failover.is_none_or(|f| f.failed != idx) {
            self.failover = Some(Failover {
                failed: idx,
                expected: None,
                received: 0,
            });
        }
        let tnl_mtu = slot_link(&mut self.links, t).map_or(0, |l| l.max_packet());
        let enhanced = self.caps & crate::caps::TUNNEL_ENHANCED != 0;
        // A packet too large for the tunnel link goes in tunnel fragments (the kernel's
        // `tipc_msg_fragment`); a peer without TUNNEL_ENHANCED could not reassemble them, so
        // there it is returned to its sender instead. `msgcnt` counts every tunnel message.
        pkts.push(Link::failover_dummy(self.own_addr, self.addr, next));
        let mut kept = Vec::with_capacity(pkts.len());
        let mut msgcnt = 0usize;
        for p in pkts {
            match wire::tunnel_fragments(p.len(), tnl_mtu) {
                None => msgcnt += 1,
                Some(f) if enhanced => msgcnt += f.len(),
                Some(_) => {
                    self.purged(now, idx, p);
                    continue;
                }
            }
            kept.push(p);
        }
        let msgcnt = msgcnt.min(u16::MAX as usize) as u16;
        for p in kept {
            let mut r = TunnelRepr {
                mtype: TunnelType::Failover,
                bcast_ack: 0,
                ack: 0,
                seqno: 0,
                prevnode: self.own_addr,
                fragm_no: 0,
                nof_fragms: 0,
                bearer_id,
                orignode: self.own_addr,
                destnode: self.addr,
                msgcnt,
                data: &p,
            };
            let mut sent = true;
            match wire::tunnel_fragments(p.len(), tnl_mtu) {
                None => sent &= self.send_tunnel(now, t, &r),
                Some(frags) => {
                    self.stats.tunnel_fragmented += 1;
                    r.nof_fragms = frags.len().min(u16::MAX as usize) as u16;
                    for (n, range) in frags.enumerate() {
                        r.fragm_no = (n + 1) as u16;
                        r.data = &p[range];
                        sent &= self.send_tunnel(now, t, &r);
                    }
                }
            }
            if !sent {
                // Not taken: returned to its sender like any purged message.
                self.purged(now, idx, p);
            }
        }
        self.drain_link(now, t);
    }

    /// Send one tunnel message over link `t`.
    fn send_tunnel(&mut self, now: Instant, t: usize, r: &TunnelRepr<'_>) -> bool {
        let mut buf = BytesMut::zeroed(r.buffer_len());
        r.emit(&mut buf);
        let ok = slot_link(&mut self.links, t).is_some_and(|l| l.send(now, buf).is_ok());
        if ok {
            self.stats.tunnel_tx += 1;
        }
        ok
    }

    /// `tipc_node_check_state` for link synchronisation (§4.12): should this packet, arriving
    /// on link `idx`, be dropped because the link is synching? A SYNCH that is the first packet
    /// of a new link while another link is up starts it; it ends once the old link has
    /// delivered everything up to the sync point (or either link goes down).
    fn synch_holds(&mut self, idx: usize, pkt: &[u8]) -> bool {
        // The common case, decided on the first word: no synch, not a tunnel message.
        let tunnel = pkt.len() >= 4 && Header::new_unchecked(pkt).user() == user::TUNNEL_PROTOCOL;
        if self.synch.is_none() && !tunnel {
            return false;
        }
        let Ok(h) = Header::new_checked(pkt) else {
            return false;
        };
        let usr = h.user();
        let synch_msg = usr == user::TUNNEL_PROTOCOL && h.mtype() == TunnelType::Synch as u8;
        if synch_msg && h.seqno() == 1 && self.synch.is_none() && self.failover.is_none() {
            let old = (0..MAX_BEARERS).find(|&j| j != idx && self.link_up(j as BearerId));
            if let (Some(old), true) = (old, self.node_up) {
                if let Some(point) = sync_point(&h, self.caps) {
                    self.stats.synchs += 1;
                    self.synch = Some(Synch {
                        tnl: idx,
                        old,
                        point,
                    });
                }
            }
        }
        let Some(s) = self.synch else {
            return false;
        };
        let Some(old) = self.links[s.old].as_ref().filter(|o| o.link.is_up()) else {
            self.synch = None;
            return false;
        };
        // We deliver as we receive: the old link's `rcv_nxt` is its delivery point.
        if old.link.rcv_nxt().more(s.point) {
            self.synch = None;
            return false;
        }
        idx == s.tnl && !synch_msg && usr != user::LINK_PROTOCOL
    }

    /// A TUNNEL_PROTOCOL message from the peer on link `j` (`tipc_node_check_state`,
    /// `tipc_link_tnl_rcv`). FAILOVER: the packet the peer had sent on the link its w5
    /// `bearer_id` names, whole or in tunnel fragments. If that link is still up here, the peer
    /// lost it first: it goes down now (and fails over our side of it); its copy is then
    /// delivered against that link's receive state. SYNCH carries nothing to deliver (its sync
    /// point was taken in [`Peer::handle_packet`]).
    fn tunnel_rcv(&mut self, now: Instant, j: usize, b: Bytes) {
        let Ok(h) = Header::new_checked(&b[..]) else {
            return;
        };
        let Ok(r) = TunnelRepr::parse(&h) else {
            return;
        };
        let pl = r.bearer_id as usize;
        if r.mtype != TunnelType::Failover || pl == j || pl >= MAX_BEARERS {
            return;
        }
        let Some(l) = slot_link(&mut self.links, pl) else {
            return;
        };
        self.stats.tunnel_rx += 1;
        if l.is_up() {
            l.force_reset(now, DownReason::Failover);
            self.drain_link(now, pl);
        }
        // "Half-failover" (`tipc_node_link_failover`): the failed link was already down here
        // before this link came up, so we never started a failover of our own and the peer
        // would wait for our tunnel forever. Send it the kernel's dummy FAILOVER
        // (`tipc_link_create_dummy_tnl_msg`: `msgcnt` 1, no packet of ours) so its failover
        // ends.
        let half = self.failover.is_none();
        let Some(l) = slot_link(&mut self.links, pl) else {
            return;
        };
        let failed_peer_bearer = l.peer_bearer_id();
        // The failed link was already down here before this link came up: deliver
        // everything (the kernel's `tipc_link_failover_prepare`).
        l.begin_failover();
        if half && self.link_up(j as BearerId) {
            let dummy = Link::failover_dummy(self.own_addr, self.addr, Seqno(0));
            let r = TunnelRepr {
                mtype: TunnelType::Failover,
                bcast_ack: 0,
                ack: 0,
                seqno: 0,
                prevnode: self.own_addr,
                fragm_no: 0,
                nof_fragms: 0,
                bearer_id: failed_peer_bearer,
                orignode: self.own_addr,
                destnode: self.addr,
                msgcnt: 1,
                data: &dummy,
            };
            self.send_tunnel(now, j, &r);
            self.drain_link(now, j);
        }
        let f = self.failover.get_or_insert(Failover {
            failed: pl,
            expected: None,
            received: 0,
        });
        let expected = *f.expected.get_or_insert(r.msgcnt);
        f.received = f.received.saturating_add(1);
        let done = f.received >= expected;
        let inner = if r.nof_fragms == 0 {
            (!r.data.is_empty()).then(|| b.slice(INT_H_SIZE..h.size()))
        } else {
            let (fragm_no, nof_fragms) = (r.fragm_no, r.nof_fragms);
            let data = b.slice(INT_H_SIZE..h.size());
            match reassemble(&mut self.tnl_reasm, j, fragm_no, nof_fragms, &data) {
                Ok(m) => {
                    self.stats.tunnel_reassembled += m.is_some() as u64;
                    m
                }
                Err(()) => {
                    self.stats.tunnel_reasm_errors += 1;
                    None
                }
            }
        };
        if let (Some(inner), Some(l)) = (inner, slot_link(&mut self.links, pl)) {
            l.handle_failover(now, inner);
        }
        if done {
            if let Some(l) = slot_link(&mut self.links, pl) {
                l.end_failover();
            }
            self.failover = None;
            self.tnl_reasm = None;
        }
        self.drain_link(now, pl);
    }

    /// A message the failed link `idx` had not got acknowledged, when there is no failover
    /// (the node is lost, or the peer restarted): returned to the owner, except name-table
    /// updates (NAME_DISTRIBUTOR) while another link keeps the node up: those are sent again
    /// over that link, or the peer's table would miss them for the rest of the node session
    /// (no node-down purge and bulk follows). A copy the peer did receive is applied twice in
    /// order, which a table keyed by (range, node, port, key) absorbs. The packets inside a
    /// FAILOVER message are handled the same way.
    fn purged(&mut self, now: Instant, idx: usize, b: Bytes) {
        let other = (0..MAX_BEARERS)
            .filter(|&j| j != idx && self.link_up(j as BearerId))
            .max_by_key(|&j| {
                let prio = self.links[j].as_ref().map_or(0, |s| s.link.priority());
                (prio, std::cmp::Reverse(j))
            });
        let Some(j) = other else {
            if Header::new_checked(&b[..]).is_ok_and(|h| h.user() == user::TUNNEL_PROTOCOL) {
                self.purged_tunnel(now, idx, b);
            } else {
                self.give_back(b);
            }
            return;
        };
        let usr = match Header::new_checked(&b[..]) {
            Ok(h) => h.user(),
            Err(_) => return,
        };
        match usr {
            user::TUNNEL_PROTOCOL => self.purged_tunnel(now, idx, b),
            user::NAME_DISTRIBUTOR => self.resend(now, j, b),
            user::MSG_BUNDLER => {
                for m in wire::extract(&b).flatten() {
                    let names = Header::new_checked(&m[..])
                        .is_ok_and(|h| h.user() == user::NAME_DISTRIBUTOR);
                    if names {
                        self.resend(now, j, m);
                    } else {
                        self.give_back(m);
                    }
                }
            }
            _ => self.give_back(b),
        }
    }

    /// A FAILOVER message that could not be delivered: its packet is purged in its place (a
    /// fragmented one once its last fragment comes by; they are purged in order).
    fn purged_tunnel(&mut self, now: Instant, idx: usize, b: Bytes) {
        let Ok(h) = Header::new_checked(&b[..]) else {
            return;
        };
        let Some((fragm_no, nof_fragms)) = TunnelRepr::parse(&h)
            .ok()
            .filter(|r| r.mtype == TunnelType::Failover)
            .map(|r| (r.fragm_no, r.nof_fragms))
        else {
            return;
        };
        let data = b.slice(INT_H_SIZE..h.size());
        let inner = if nof_fragms == 0 {
            (!data.is_empty()).then_some(data)
        } else {
            reassemble(&mut self.purge_reasm, idx, fragm_no, nof_fragms, &data)
                .ok()
                .flatten()
        };
        if let Some(inner) = inner {
            self.purged(now, idx, inner);
        }
    }

    fn resend(&mut self, now: Instant, j: usize, m: Bytes) {
        let sent = match self.links[j].as_mut() {
            Some(s) => s.link.send(now, BytesMut::from(&m[..])).is_ok(),
            None => false,
        };
        if !sent {
            self.give_back(m);
        }
        self.drain_link(now, j);
    }

    /// The first link is up: the node comes up, and our bc-init goes on that link (as unicast
    /// seqno 1 on a fresh link, §5.2, §5.5 item 3).
    fn node_established(&mut self, now: Instant, idx: usize) {
        self.node_up = true;
        self.peer_leaving = false;
        self.session_signature = self.signature;
        self.events.push_back(PeerEvent::NodeUp);
        self.bc_init_last = self.last_bcast;
        let init = self.bc_init_msg();
        if let Some(s) = self.links[idx].as_mut() {
            let _ = s.link.send(now, init);
        }
    }

    /// The node session ends (last link lost, or the peer restarted): broadcast receive state
    /// cleared, `NodeDown` reported. `peer_may_be_up`: the peer may still consider the node up
    /// (we lost contact on our own), so wait for it to take its side down (§4.2).
    fn node_lost(&mut self, now: Instant, peer_may_be_up: bool) {
        self.node_up = false;
        self.failover = None;
        self.synch = None;
        self.tnl_reasm = None;
        for s in self.links.iter_mut().flatten() {
            s.link.end_failover();
        }
        self.peer_leaving = peer_may_be_up;
        self.bc_up = false;
        self.bc_rcv_nxt = Seqno(1);
        self.bc_rcv_abs = 1;
        self.bc_deferred.clear();
        self.bc_reasm.reset();
        self.bc_rcv_unacked = 0;
        self.bc_peer_ack = None;
        self.bc_state_acked = false;
        self.bc_peer_ready = false;
        self.lost_at = Some(now);
        self.sync_bc_state();
        self.events.push_back(PeerEvent::NodeDown);
    }

    /// A bc-init arriving while no bc-init was taken in this node session is normally the
    /// peer's first one: its first link may be another than ours. But if the peer announced a
    /// new signature since the node came up, it is a new instance's: the old instance's
    /// bc-init never reached us (lost, then it restarted before a retransmission), and the
    /// links that brought the node up are in session with an instance that is gone. Without
    /// this the node stayed up across the restart and neither side's bulk reached the new
    /// instance. (The signature alone, from unauthenticated discovery, never takes a node
    /// down: a bc-init is a sequenced packet on a working link.) The cost of a wrong guess: if
    /// the node came up with a new instance before any of its discovery messages arrived (the
    /// old signature was stored then), its late signature followed by its first bc-init on
    /// another link than ours takes the node down and up once more, a needless flap that
    /// loses nothing.
    fn new_instance_init(&self) -> bool {
        self.node_up
            && !self.bc_up
            && self.session_signature.is_some()
            && self.signature != self.session_signature
    }

    /// The peer's instance changed: reset every working link except `keep` (the one already in
    /// the new session, if any). Resetting the last one takes the node down.
    fn reset_for_restart(&mut self, now: Instant, keep: Option<usize>) {
        self.stats.restarts += 1;
        for j in 0..MAX_BEARERS {
            if Some(j) == keep {
                continue;
            }
            if let Some(s) = self.links[j].as_mut() {
                s.link.force_reset(now, DownReason::PeerRestarted);
            }
            self.drain_link(now, j);
        }
    }

    fn sync_bc_state(&mut self) {
        let ack = self.bc_rcv_nxt.sub(1).0;
        for s in self.links.iter_mut().flatten() {
            s.link.set_bcast_state(ack, self.bc_up, self.last_bcast);
        }
    }

    /// Move link events up, applying the node-level glue of `node.c`.
    fn drain_link(&mut self, now: Instant, idx: usize) {
        loop {
            let Some(slot) = self.links[idx].as_mut() else {
                return;
            };
            let Some(ev) = slot.link.poll_event() else {
                return;
            };
            let name = slot.link.name().to_string();
            match ev {
                LinkEvent::Up => {
                    self.lost_at = None;
                    self.choose_active();
                    let link_id = link_id(slot_link(&mut self.links, idx), idx);
                    self.events.push_back(PeerEvent::LinkUp {
                        bearer: idx as BearerId,
                        name,
                        link_id,
                    });
                    if !self.node_up {
                        self.node_established(now, idx);
                    }
                }
                LinkEvent::Down(reason) => {
                    // Either link of a synchronisation going down ends it (a failover follows).
                    if self.synch.is_some_and(|s| s.tnl == idx || s.old == idx) {
                        self.synch = None;
                    }
                    if self.active_link == Some(idx) {
                        self.active_link = None;
                    }
                    self.choose_active();
                    let (failed, next) = slot_link(&mut self.links, idx)
                        .map(|l| l.take_failed())
                        .unwrap_or_default();
                    if self.node_up
                        && self.active_link.is_some()
                        && reason != DownReason::PeerRestarted
                    {
                        self.start_failover(now, idx, failed, next);
                    } else {
                        // No failover: the receive state kept for one is not needed.
                        if let Some(l) = slot_link(&mut self.links, idx) {
                            l.end_failover();
                        }
                        for p in failed {
                            self.purged(now, idx, p);
                        }
                    }
                    let link_id = link_id(slot_link(&mut self.links, idx), idx);
                    self.events.push_back(PeerEvent::LinkDown {
                        bearer: idx as BearerId,
                        name,
                        reason,
                        link_id,
                    });
                    if self.node_up && self.up_links() == 0 {
                        // The peer reset the last link itself: it knows (`PEER_LOST_CONTACT`).
                        self.node_lost(now, reason != DownReason::PeerReset);
                    } else if self.node_up {
                        // Still up through another link: RESET/ACTIVATE on this one say so
                        // (`redundant_link`, like the kernel's `node_up`).
                        self.sync_bc_state();
                    }
                }
                LinkEvent::BcInit { last_bcast } => {
                    if self.link_up(idx as BearerId) && (self.bc_up || self.new_instance_init()) {
                        // The peer sends its bc-init only on the first link of a node session
                        // (§5.2). A second one means the peer went down for us (it restarted, or
                        // its links timed out) while our other links kept the old session: they
                        // are stale. So does a first one from a new instance (see
                        // `new_instance_init`). Reset them and take the node down and up again
                        // on this link, so both sides purge and resend their name tables (§7.4).
                        self.reset_for_restart(now, Some(idx));
                        if self.node_up {
                            self.node_lost(now, false);
                        }
                        self.lost_at = None;
                        self.node_established(now, idx);
                        self.choose_active();
                    }
                    if !self.bc_up {
                        self.bc_up = true;
                        self.bc_rcv_nxt = Seqno(last_bcast).next();
                        self.bc_rcv_abs = 1;
                        self.bc_deferred.clear();
                        self.sync_bc_state();
                    }
                }
                LinkEvent::Deliver(b) => self.deliver(b),
                LinkEvent::Unblocked(i) => self.events.push_back(PeerEvent::Unblocked(i)),
                LinkEvent::Purged(b) => self.purged(now, idx, b),
                LinkEvent::Tunnel(b) => self.tunnel_rcv(now, idx, b),
            }
        }
    }
}

/// The kernel's link id of the link on bearer `idx`: `(peer_bearer_id << 16) | bearer_id`.
fn link_id(link: Option<&mut Link>, idx: usize) -> u32 {
    let peer_bearer = link.map_or(0, |l| l.peer_bearer_id());
    ((peer_bearer as u32) << 16) | idx as u32
}

fn slot_link(links: &mut [Option<Box<LinkSlot>>; MAX_BEARERS], idx: usize) -> Option<&mut Link> {
    links
        .get_mut(idx)
        .and_then(|s| s.as_mut())
        .map(|s| &mut s.link)
}

/// The sync point of a SYNCH message (§4.12): with `TIPC_TUNNEL_ENHANCED` the dummy's `syncpt`;
/// from a legacy peer, the seqno of the last packet it tunnels (first inner seqno + msgcnt - 1).
fn sync_point(h: &Header<&[u8]>, caps: u16) -> Option<Seqno> {
    let r = TunnelRepr::parse(h).ok()?;
    if caps & crate::caps::TUNNEL_ENHANCED != 0 {
        return Some(Seqno(r.syncpt()));
    }
    let inner = r.inner()?.ok()?;
    Some(Seqno(inner.seqno()).add(r.msgcnt).sub(1))
}

/// Add tunnel fragment `fragm_no` of `nof_fragms` (arriving on link `link`) to `slot`: the
/// whole packet once the last one is in, `Ok(None)` before. Fragments come in order over one
/// link; anything else (a gap, another link, a bad packet) abandons the reassembly.
fn reassemble(
    slot: &mut Option<TunnelReasm>,
    link: usize,
    fragm_no: u16,
    nof_fragms: u16,
    data: &[u8],
) -> Result<Option<Bytes>, ()> {
    if fragm_no == 1 {
        *slot = Some(TunnelReasm {
            link,
            next: 1,
            buf: BytesMut::with_capacity(data.len() * nof_fragms as usize),
        });
    }
    let Some(r) = slot
        .as_mut()
        .filter(|r| r.link == link && r.next == fragm_no)
    else {
        *slot = None;
        return Err(());
    };
    if r.buf.len() + data.len() > wire::MAX_MSG_SIZE + INT_H_SIZE {
        *slot = None;
        return Err(());
    }
    r.buf.extend_from_slice(data);
    r.next = r.next.wrapping_add(1);
    if fragm_no < nof_fragms {
        return Ok(None);
    }
    let Some(r) = slot.take() else {
        return Err(());
    };
    let whole = r.buf.freeze();
    match Header::new_checked(&whole[..]) {
        Ok(h) if h.size() == whole.len() => Ok(Some(whole)),
        _ => Err(()),
    }
}
