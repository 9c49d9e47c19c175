//! Neighbour discovery, one [`Discoverer`] per bearer (kernel `discover.c`, and the decision table
//! of `node.c: tipc_node_check_dest`). Spec: tipc-protocol.md §1.1 (addresses, address trial),
//! §3.2 (message layout), §3.3 (receive processing), §3.4 (timing), §6 (capabilities), §12.
//!
//! The core is sans-IO: it never reads a clock and never touches a socket. The bearer driver
//!
//! * feeds every LINK_CONFIG frame to [`Discoverer::handle_frame`] and passes the returned
//!   [`Neighbor`] to the node layer, which applies [`check_dest`] and, when that says `respond`
//!   and the neighbour's message was a request, calls [`Discoverer::respond`];
//! * tells the core how many working links the bearer has ([`Discoverer::set_up_links`]);
//! * calls [`Discoverer::handle_timeout`] when [`Discoverer::poll_timeout`] is reached;
//! * after each of those calls drains [`Discoverer::poll_transmit`] until it returns `None`.
//!
//! # Address trial
//!
//! The kernel's duplicate-address trial (§1.1: `DSC_TRIAL_MSG`, `DSC_TRIAL_FAIL_MSG`) is **not
//! implemented**. We use a fixed node address, normally the identity hash
//! ([`NodeId::hash`]), and send `DSC_REQ` from the start. Trial and trial-fail messages from other
//! nodes are counted ([`DropReason::AddressTrial`]) and dropped: we never answer a trial, so we
//! never suggest an address to a node in its trial and never object to a duplicate. The kernel
//! accepts REQ/RESP from any non-zero, non-own address, so this is interoperable as long as the
//! configured address is unique in the cluster.

use std::collections::VecDeque;
use std::mem::discriminant;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::addr::{NodeAddr, NodeId};
use crate::caps::NODE_ID128;
use crate::media::Dest;
use crate::wire::{user, DiscRepr, DiscType, Header, MediaAddr, DISC_MSG_SIZE};
use crate::BearerId;

/// First interval between requests, and the interval after the last link went down
/// (`TIPC_DISC_INIT`, §3.4).
pub const DISC_INIT: Duration = Duration::from_millis(125);
/// Largest interval while the bearer has no working link (`TIPC_DISC_FAST`).
pub const DISC_FAST: Duration = Duration::from_millis(1000);
/// Largest interval once the bearer has a working link (`TIPC_DISC_SLOW`).
pub const DISC_SLOW: Duration = Duration::from_millis(60_000);
/// The default of the most peer nodes a node keeps ([`admit_new_peer`]): far above practical
/// cluster sizes, low enough that discovery messages from made-up nodes cannot exhaust
/// memory.
pub const DEFAULT_MAX_PEERS: usize = 4096;

/// May a discovery message from a node we have no peer object for create one, with `known`
/// peer objects and a limit of `max_peers`? (The kernel has no limit: every discovery message
/// naming a new address creates a node, until memory runs out.) A refusal is counted by the
/// caller; the node is created when it asks again after others were forgotten.
pub fn admit_new_peer(known: usize, max_peers: usize) -> bool {
    known < max_peers
}

/// Responses to strangers (peers that never answered on their link, see
/// [`crate::peer::DiscoveryOutcome::stranger`]) a bearer sends in a burst.
pub const STRANGER_RESP_BURST: u32 = 128;
/// Responses to strangers a bearer sends per second once the burst is spent: a flood of
/// requests from made-up neighbours gets far fewer frames back than it sent.
pub const STRANGER_RESP_PER_SEC: u32 = 32;

/// Least time between two log lines about discovery messages carrying our own address.
pub const DUPLICATE_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Frames the transmit queue holds before newer ones are dropped (and counted), so that a driver
/// that never drains cannot make the core grow without bound.
pub const MAX_QUEUED_TRANSMITS: usize = 64;

/// The node-number part of a legacy `Z.C.N` address (`TIPC_NODE_MASK`, kernel `tipc_node()`).
const NODE_MASK: u32 = 0x0FFF;

/// Configuration of one bearer's discoverer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryConfig {
    /// Network (cluster) id, w4 of every discovery message (default 4711).
    pub net_id: u32,
    /// Our node address (w3, `prevnode`). Must be non-zero; normally `own_id.hash()`.
    pub own_addr: NodeAddr,
    /// Our 16-byte node identity (bytes 60..76).
    pub own_id: NodeId,
    /// Capabilities we advertise (w1 bits 27-15), see [`crate::OWN_CAPABILITIES`].
    pub caps: u16,
    /// Our 16-bit random node signature (w1 bits 15-0; bit 15 is overwritten by `caps & 1`).
    pub signature: u16,
    /// The bearer this discoverer runs on.
    pub bearer_id: BearerId,
    /// This bearer's own media address (w5..w12 of what we send; a frame carrying it is ours).
    pub media_addr: MediaAddr,
    /// The bearer domain: 0 = the whole cluster, otherwise the one node address we accept.
    pub domain: u32,
    /// The peer net hash we advertise (w13); any value is acceptable to a kernel.
    pub net_hash: u32,
}

/// A neighbour announced by an accepted discovery message, for the node layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Neighbor {
    /// The bearer the message arrived on.
    pub bearer_id: BearerId,
    /// The neighbour's media address, taken from the message's media-info field (not the frame
    /// source): unicast traffic to the neighbour goes there.
    pub media_addr: MediaAddr,
    /// The neighbour's node address (`prevnode`).
    pub addr: NodeAddr,
    /// The neighbour's identity: bytes 60..76 if it has `TIPC_NODE_ID128`, else
    /// [`NodeId::from_addr`] of its address, as the kernel does.
    pub id: NodeId,
    /// The neighbour's capabilities (w1 bits 27-15).
    pub caps: u16,
    /// The neighbour's signature, exactly as read (w1 bits 15-0).
    pub signature: u16,
    /// The message was a `DSC_REQ` (only requests are ever answered).
    pub is_request: bool,
}

/// What the node layer does with an accepted discovery message (§3.3 step 6,
/// `node.c: tipc_node_check_dest`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DestDecision {
    /// Send a `DSC_RESP` (only if the message was a request: [`Discoverer::respond`]).
    pub respond: bool,
    /// Store the message's media address as this bearer's link address.
    pub accept_addr: bool,
    /// Reset the link on this bearer (or create it, if there is none).
    pub reset_link: bool,
    /// Store the message's signature as the peer's signature.
    pub store_signature: bool,
    /// Another node uses the peer's address: log a duplicate alert and ignore the message.
    pub dup_alert: bool,
}

/// §3.3 step 6 as a pure function: `sig_match` (S) the signature equals the stored one,
/// `addr_match` (A) the media address equals the one stored for this bearer's link, `link_up` (L)
/// the link on this bearer is up.
pub fn check_dest(sig_match: bool, addr_match: bool, link_up: bool) -> DestDecision {
    let d = DestDecision::default();
    match (sig_match, addr_match, link_up) {
        // Normal: nothing to do.
        (true, true, true) => d,
        (true, true, false) => DestDecision { respond: true, ..d },
        // Someone else claims the peer's address while its link works.
        (true, false, true) | (false, false, true) => DestDecision {
            dup_alert: true,
            ..d
        },
        (true, false, false) => DestDecision {
            accept_addr: true,
            respond: true,
            reset_link: true,
            ..d
        },
        // Peer restarted and the link is still up ("delayed rediscovery").
        (false, true, true) => DestDecision {
            store_signature: true,
            ..d
        },
        (false, true, false) => DestDecision {
            store_signature: true,
            respond: true,
            ..d
        },
        // A new peer instance at a new media address.
        (false, false, false) => DestDecision {
            store_signature: true,
            accept_addr: true,
            respond: true,
            reset_link: true,
            dup_alert: false,
        },
    }
}

/// Why [`Discoverer::handle_frame`] dropped a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// Not a valid TIPC message (header checks, header size, type 4..7, or `TIPC_NODE_ID128`
    /// advertised in a message too short to carry the identity).
    Malformed,
    /// A valid message of another user than LINK_CONFIG.
    NotDiscovery,
    /// The media-info field cannot be decoded, or names another kind of media than this bearer's
    /// (the kernel's "corrupt discovery message").
    BadMediaAddr,
    /// The media address is broadcast or multicast ("corrupt discovery message").
    BroadcastMediaAddr,
    /// The media address is this bearer's own: our own message looped back.
    OwnMediaAddr,
    /// The network id differs from ours.
    NetIdMismatch,
    /// A `DSC_TRIAL`/`DSC_TRIAL_FAIL`: the address trial is not implemented (module docs).
    AddressTrial,
    /// `prevnode` is our own address or 0 (the kernel logs a duplicate alert).
    DuplicateAddr,
    /// The message's destination domain is neither 0 nor our address.
    DestDomain,
    /// Our bearer domain is neither 0 nor the sender's address.
    BearerDomain,
}

/// Counters of one discoverer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DiscoveryStats {
    /// `DSC_REQ` messages queued for transmission.
    pub req_sent: u64,
    /// `DSC_RESP` messages queued for transmission.
    pub resp_sent: u64,
    /// Frames given to [`Discoverer::handle_frame`].
    pub received: u64,
    /// Frames returned as a [`Neighbor`].
    pub accepted: u64,
    /// Frames not queued because the transmit queue was full ([`MAX_QUEUED_TRANSMITS`]).
    pub tx_overflow: u64,
    /// Responses to strangers not sent: over [`STRANGER_RESP_BURST`] and
    /// [`STRANGER_RESP_PER_SEC`] ([`Discoverer::respond_to`]).
    pub resp_limited: u64,
    /// Drops: [`DropReason::Malformed`].
    pub drop_malformed: u64,
    /// Drops: [`DropReason::NotDiscovery`].
    pub drop_not_discovery: u64,
    /// Drops: [`DropReason::BadMediaAddr`].
    pub drop_bad_media_addr: u64,
    /// Drops: [`DropReason::BroadcastMediaAddr`].
    pub drop_broadcast_media_addr: u64,
    /// Drops: [`DropReason::OwnMediaAddr`].
    pub drop_own_media_addr: u64,
    /// Drops: [`DropReason::NetIdMismatch`].
    pub drop_net_id: u64,
    /// Drops: [`DropReason::AddressTrial`].
    pub drop_address_trial: u64,
    /// Drops: [`DropReason::DuplicateAddr`].
    pub drop_duplicate_addr: u64,
    /// Drops: [`DropReason::DestDomain`].
    pub drop_dest_domain: u64,
    /// Drops: [`DropReason::BearerDomain`].
    pub drop_bearer_domain: u64,
}

impl DiscoveryStats {
    /// The counter for one drop reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        *self.counter(reason)
    }

    /// The sum of all drop counters.
    pub fn total_dropped(&self) -> u64 {
        self.drop_malformed
            + self.drop_not_discovery
            + self.drop_bad_media_addr
            + self.drop_broadcast_media_addr
            + self.drop_own_media_addr
            + self.drop_net_id
            + self.drop_address_trial
            + self.drop_duplicate_addr
            + self.drop_dest_domain
            + self.drop_bearer_domain
    }

    fn counter(&self, reason: DropReason) -> &u64 {
        match reason {
            DropReason::Malformed => &self.drop_malformed,
            DropReason::NotDiscovery => &self.drop_not_discovery,
            DropReason::BadMediaAddr => &self.drop_bad_media_addr,
            DropReason::BroadcastMediaAddr => &self.drop_broadcast_media_addr,
            DropReason::OwnMediaAddr => &self.drop_own_media_addr,
            DropReason::NetIdMismatch => &self.drop_net_id,
            DropReason::AddressTrial => &self.drop_address_trial,
            DropReason::DuplicateAddr => &self.drop_duplicate_addr,
            DropReason::DestDomain => &self.drop_dest_domain,
            DropReason::BearerDomain => &self.drop_bearer_domain,
        }
    }

    fn count_drop(&mut self, reason: DropReason) {
        let c = match reason {
            DropReason::Malformed => &mut self.drop_malformed,
            DropReason::NotDiscovery => &mut self.drop_not_discovery,
            DropReason::BadMediaAddr => &mut self.drop_bad_media_addr,
            DropReason::BroadcastMediaAddr => &mut self.drop_broadcast_media_addr,
            DropReason::OwnMediaAddr => &mut self.drop_own_media_addr,
            DropReason::NetIdMismatch => &mut self.drop_net_id,
            DropReason::AddressTrial => &mut self.drop_address_trial,
            DropReason::DuplicateAddr => &mut self.drop_duplicate_addr,
            DropReason::DestDomain => &mut self.drop_dest_domain,
            DropReason::BearerDomain => &mut self.drop_bearer_domain,
        };
        *c += 1;
    }
}

/// The discovery state machine of one bearer (kernel `struct tipc_discoverer`).
///
/// Sends `DSC_REQ` to [`Dest::Broadcast`] at [`DISC_INIT`], doubling the interval up to
/// [`DISC_FAST`] (no working link) or [`DISC_SLOW`] (at least one), validates received
/// discovery messages (§3.3 steps 1-5) and builds `DSC_RESP` messages on demand.
#[derive(Debug)]
pub struct Discoverer {
    cfg: DiscoveryConfig,
    /// The request, built once; every transmission is a cheap clone.
    request: Bytes,
    /// Current interval; `None` once sending stopped because the one node of the bearer domain
    /// was found (kernel `TIPC_DISC_INACTIVE`).
    interval: Option<Duration>,
    /// When the next request is due.
    next: Option<Instant>,
    /// The first request (at creation) is sent without doubling the interval.
    first_sent: bool,
    up_links: usize,
    transmits: VecDeque<(Dest, Bytes)>,
    /// When a message with our own address was last logged.
    dup_logged_at: Option<Instant>,
    /// Responses to strangers that may still be sent now, and when the count was last
    /// refilled.
    stranger_tokens: u32,
    stranger_refill: Option<Instant>,
    stats: DiscoveryStats,
}

impl Discoverer {
    /// A discoverer for one bearer. The first `DSC_REQ` is due at `now` (the kernel sends it at
    /// bearer enable); call [`handle_timeout`](Self::handle_timeout) then.
    pub fn new(cfg: DiscoveryConfig, now: Instant) -> Self {
        let request = build_msg(&cfg, DiscType::Request, cfg.domain);
        Discoverer {
            cfg,
            request,
            interval: Some(DISC_INIT),
            next: Some(now),
            first_sent: false,
            up_links: 0,
            transmits: VecDeque::new(),
            dup_logged_at: None,
            stranger_tokens: STRANGER_RESP_BURST,
            stranger_refill: None,
            stats: DiscoveryStats::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DiscoveryConfig {
        &self.cfg
    }

    /// The request message we broadcast (76 bytes, as `tipc_disc_init_msg` builds it).
    pub fn request(&self) -> &Bytes {
        &self.request
    }

    /// The current interval between requests; `None` if sending stopped (bearer domain found).
    pub fn interval(&self) -> Option<Duration> {
        self.interval
    }

    /// Working links on this bearer, as last given to [`set_up_links`](Self::set_up_links).
    pub fn up_links(&self) -> usize {
        self.up_links
    }

    /// Validate a received discovery message: §3.3 steps 1-5 (media address decodable, of this
    /// bearer's kind, not broadcast and not our own; same network id; not an address trial;
    /// `prevnode` neither ours nor 0; destination domain 0 or our address; our bearer domain 0
    /// or the sender's address). Returns the neighbour for the node layer, which applies step 6
    /// ([`check_dest`]). Every drop is counted in [`stats`](Self::stats); nothing panics.
    ///
    /// `msg` is the TIPC message (trailing padding allowed). `now` paces the log line of a
    /// duplicate address (at most one per [`DUPLICATE_LOG_INTERVAL`]).
    pub fn handle_frame(&mut self, now: Instant, msg: &[u8]) -> Option<Neighbor> {
        self.stats.received += 1;
        match self.validate(msg) {
            Ok(n) => {
                self.stats.accepted += 1;
                Some(n)
            }
            Err(reason) => {
                self.stats.count_drop(reason);
                let log_dup = reason == DropReason::DuplicateAddr
                    && self
                        .dup_logged_at
                        .is_none_or(|t| now.duration_since(t) >= DUPLICATE_LOG_INTERVAL);
                if log_dup {
                    self.dup_logged_at = Some(now);
                    tracing::warn!(
                        bearer = self.cfg.bearer_id,
                        "discovery message from a node using our own address (or 0) dropped \
                         (logged at most every {:?})",
                        DUPLICATE_LOG_INTERVAL
                    );
                } else {
                    tracing::debug!(
                        bearer = self.cfg.bearer_id,
                        ?reason,
                        "discovery frame dropped"
                    );
                }
                None
            }
        }
    }

    fn validate(&self, msg: &[u8]) -> Result<Neighbor, DropReason> {
        let h = Header::new_checked(msg).map_err(|_| DropReason::Malformed)?;
        if h.user() != user::LINK_CONFIG {
            return Err(DropReason::NotDiscovery);
        }
        let repr = DiscRepr::parse(&h).map_err(|_| DropReason::Malformed)?;
        let has_id = repr.caps & NODE_ID128 != 0;
        if has_id && h.size() < DISC_MSG_SIZE {
            return Err(DropReason::Malformed);
        }
        // Step 1: the media address.
        let maddr = repr.media_addr().map_err(|_| DropReason::BadMediaAddr)?;
        if discriminant(&maddr) != discriminant(&self.cfg.media_addr) {
            return Err(DropReason::BadMediaAddr);
        }
        if maddr.is_broadcast() {
            return Err(DropReason::BroadcastMediaAddr);
        }
        if maddr == self.cfg.media_addr {
            return Err(DropReason::OwnMediaAddr);
        }
        // Step 2.
        if repr.net_id != self.cfg.net_id {
            return Err(DropReason::NetIdMismatch);
        }
        // Step 3: we have a fixed address and take no part in trials.
        let is_request = match repr.mtype {
            DiscType::Request => true,
            DiscType::Response => false,
            DiscType::Trial | DiscType::TrialFail => return Err(DropReason::AddressTrial),
        };
        // Step 4 (`in_own_node`: own address or 0).
        let src = repr.prevnode;
        if src == 0 || src == self.cfg.own_addr {
            return Err(DropReason::DuplicateAddr);
        }
        // Step 5, non-legacy `tipc_in_scope`: a domain is 0 or exactly the address.
        if repr.dest_domain != 0 && repr.dest_domain != self.cfg.own_addr {
            return Err(DropReason::DestDomain);
        }
        if self.cfg.domain != 0 && self.cfg.domain != src {
            return Err(DropReason::BearerDomain);
        }
        let id = if has_id {
            NodeId(repr.node_id)
        } else {
            NodeId::from_addr(src)
        };
        Ok(Neighbor {
            bearer_id: self.cfg.bearer_id,
            media_addr: maddr,
            addr: src,
            id,
            caps: repr.caps,
            signature: repr.signature,
            is_request,
        })
    }

    /// Queue a `DSC_RESP` to `to`: dest domain = `to.addr`, sent unicast to `to.media_addr` (the
    /// address inside its request). The node layer calls this when [`check_dest`] says `respond`.
    /// Does nothing if `to` came from a response (responses are never answered, §3.3 step 8) or
    /// from another bearer.
    pub fn respond(&mut self, to: &Neighbor) {
        if !to.is_request || to.bearer_id != self.cfg.bearer_id {
            tracing::debug!(
                peer = to.addr,
                "not answering a response or another bearer's peer"
            );
            return;
        }
        let msg = build_msg(&self.cfg, DiscType::Response, to.addr);
        if self.queue(Dest::Unicast(to.media_addr), msg) {
            self.stats.resp_sent += 1;
        }
    }

    /// [`respond`](Self::respond), rate-limited when `stranger`: the neighbour never answered
    /// on its link, so the media address inside its request is unverified and anyone may have
    /// written it there. At most [`STRANGER_RESP_BURST`] such responses at once and
    /// [`STRANGER_RESP_PER_SEC`] after that; the others are counted
    /// ([`DiscoveryStats::resp_limited`]) and not sent (a real neighbour asks again). Returns
    /// whether a response was queued.
    pub fn respond_to(&mut self, now: Instant, to: &Neighbor, stranger: bool) -> bool {
        if !to.is_request || to.bearer_id != self.cfg.bearer_id {
            return false;
        }
        if stranger {
            self.refill_stranger_tokens(now);
            if self.stranger_tokens == 0 {
                self.stats.resp_limited += 1;
                return false;
            }
            self.stranger_tokens -= 1;
        }
        let before = self.stats.resp_sent;
        self.respond(to);
        self.stats.resp_sent > before
    }

    fn refill_stranger_tokens(&mut self, now: Instant) {
        let Some(last) = self.stranger_refill else {
            self.stranger_refill = Some(now);
            return;
        };
        let per_token = Duration::from_secs(1) / STRANGER_RESP_PER_SEC;
        let n = now.saturating_duration_since(last).as_nanos() / per_token.as_nanos();
        if n > 0 {
            let n = n.min(STRANGER_RESP_BURST as u128) as u32;
            self.stranger_tokens = (self.stranger_tokens + n).min(STRANGER_RESP_BURST);
            self.stranger_refill = Some(if self.stranger_tokens == STRANGER_RESP_BURST {
                now
            } else {
                last + per_token * n
            });
        }
    }

    /// Tell the core how many working links this bearer has now. The interval cap is
    /// [`DISC_FAST`] with no links and [`DISC_SLOW`] with some (applied at the next expiry);
    /// when the last link goes down and the interval had grown beyond [`DISC_FAST`] (or sending
    /// had stopped), discovery restarts: next request at `now + DISC_INIT` (§3.4,
    /// `tipc_disc_remove_dest`).
    pub fn set_up_links(&mut self, now: Instant, n: usize) {
        let before = self.up_links;
        self.up_links = n;
        if before > 0 && n == 0 {
            let restart = match self.interval {
                None => true,
                Some(i) => i > DISC_FAST,
            };
            if restart {
                self.interval = Some(DISC_INIT);
                self.next = Some(now + DISC_INIT);
            }
        }
    }

    /// Run the timer: if the next request is due, queue it and schedule the one after
    /// (`tipc_disc_timeout`). Calling it early does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let (Some(due), Some(mut interval)) = (self.next, self.interval) else {
            return;
        };
        if now < due {
            return;
        }
        // Stop searching once the one node the bearer domain names is found. The kernel tests
        // the node part of a legacy Z.C.N domain (`tipc_node(domain)`); we mirror that.
        if self.cfg.domain & NODE_MASK != 0 && self.up_links > 0 {
            self.interval = None;
            self.next = None;
            return;
        }
        if self.first_sent {
            let cap = if self.up_links > 0 {
                DISC_SLOW
            } else {
                DISC_FAST
            };
            interval = (interval * 2).min(cap);
        }
        self.first_sent = true;
        self.interval = Some(interval);
        self.next = Some(now + interval);
        if self.queue(Dest::Broadcast, self.request.clone()) {
            self.stats.req_sent += 1;
        }
    }

    /// Returns the next time at which [`handle_timeout`](Self::handle_timeout) should be
    /// called; `None` if sending stopped (the one node of the bearer domain was found).
    ///
    /// The value returned may change after any `handle_timeout` or
    /// [`set_up_links`](Self::set_up_links) call; call it again after each call into the core.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next
    }

    /// Returns the next frame to send, with its destination.
    ///
    /// Call repeatedly until it returns `None`; call again after any `handle_*` or
    /// [`respond`](Self::respond) call.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(Dest, Bytes)> {
        self.transmits.pop_front()
    }

    /// Counters: sent, received, accepted, and one per drop reason.
    pub fn stats(&self) -> &DiscoveryStats {
        &self.stats
    }

    fn queue(&mut self, dest: Dest, msg: Bytes) -> bool {
        if self.transmits.len() >= MAX_QUEUED_TRANSMITS {
            self.stats.tx_overflow += 1;
            return false;
        }
        self.transmits.push_back((dest, msg));
        true
    }
}

/// Build a discovery message as `discover.c: tipc_disc_init_msg` (+ `tipc_disc_msg_xmit`) does.
fn build_msg(cfg: &DiscoveryConfig, mtype: DiscType, dest_domain: u32) -> Bytes {
    let repr = DiscRepr {
        mtype,
        caps: cfg.caps,
        signature: cfg.signature,
        non_seq: true,
        dest_domain,
        prevnode: cfg.own_addr,
        net_id: cfg.net_id,
        media_info: cfg.media_addr.to_media_info(),
        net_hash: cfg.net_hash,
        suggested: 0,
        node_id: cfg.own_id.0,
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    let n = repr.emit(&mut buf);
    buf.truncate(n);
    Bytes::from(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn cfg() -> DiscoveryConfig {
        let id = NodeId::from_str_id("host").expect("valid id");
        DiscoveryConfig {
            net_id: 4711,
            own_addr: id.hash(),
            own_id: id,
            caps: crate::OWN_CAPABILITIES,
            signature: 0x1234,
            bearer_id: 0,
            media_addr: MediaAddr::Udp("10.0.0.1:6118".parse::<SocketAddr>().expect("addr")),
            domain: 0,
            net_hash: 7,
        }
    }

    #[test]
    fn new_request_due_at_creation() {
        let t0 = Instant::now();
        let d = Discoverer::new(cfg(), t0);
        assert_eq!(d.poll_timeout(), Some(t0));
        assert_eq!(d.interval(), Some(DISC_INIT));
    }

    #[test]
    fn handle_timeout_early_sends_nothing() {
        let t0 = Instant::now();
        let mut d = Discoverer::new(cfg(), t0);
        d.handle_timeout(t0);
        assert!(d.poll_transmit().is_some());
        d.handle_timeout(t0 + Duration::from_millis(124));
        assert!(d.poll_transmit().is_none());
        assert_eq!(d.stats().req_sent, 1);
    }

    #[test]
    fn transmit_queue_is_bounded_when_never_drained() {
        let t0 = Instant::now();
        let mut d = Discoverer::new(cfg(), t0);
        let mut t = t0;
        for _ in 0..(MAX_QUEUED_TRANSMITS + 5) {
            d.handle_timeout(t);
            t += DISC_SLOW;
        }
        assert_eq!(d.transmits.len(), MAX_QUEUED_TRANSMITS);
        assert_eq!(d.stats().tx_overflow, 5);
    }

    fn request_from(addr: NodeAddr) -> Neighbor {
        Neighbor {
            bearer_id: 0,
            media_addr: MediaAddr::Udp("10.0.0.9:6118".parse::<SocketAddr>().expect("addr")),
            addr,
            id: NodeId::from_addr(addr),
            caps: crate::OWN_CAPABILITIES,
            signature: 1,
            is_request: true,
        }
    }

    #[test]
    fn respond_to_strangers_is_rate_limited_others_are_not() {
        let t0 = Instant::now();
        let mut d = Discoverer::new(cfg(), t0);
        let mut sent = 0;
        for i in 0..1000u32 {
            sent += d.respond_to(t0, &request_from(0x100 + i), true) as u32;
            while d.poll_transmit().is_some() {}
        }
        assert_eq!(sent, STRANGER_RESP_BURST);
        assert_eq!(d.stats().resp_limited, 1000 - STRANGER_RESP_BURST as u64);
        // A known peer is answered whatever the budget.
        assert!(d.respond_to(t0, &request_from(0x42), false));
        while d.poll_transmit().is_some() {}
        // One second later: STRANGER_RESP_PER_SEC more.
        let t1 = t0 + Duration::from_secs(1);
        let mut later = 0;
        for i in 0..1000u32 {
            later += d.respond_to(t1, &request_from(0x5000 + i), true) as u32;
            while d.poll_transmit().is_some() {}
        }
        assert_eq!(later, STRANGER_RESP_PER_SEC);
        // Responses are never answered, whoever sent them.
        let mut resp = request_from(0x77);
        resp.is_request = false;
        assert!(!d.respond_to(t1 + Duration::from_secs(60), &resp, true));
    }

    #[test]
    fn stats_dropped_reads_each_counter() {
        let mut s = DiscoveryStats::default();
        s.count_drop(DropReason::BearerDomain);
        s.count_drop(DropReason::BearerDomain);
        s.count_drop(DropReason::Malformed);
        assert_eq!(s.dropped(DropReason::BearerDomain), 2);
        assert_eq!(s.dropped(DropReason::Malformed), 1);
        assert_eq!(s.dropped(DropReason::DestDomain), 0);
        assert_eq!(s.total_dropped(), 3);
    }
}
