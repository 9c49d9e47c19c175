//! A peer's counters (kernel `node.c`/`link.c` statistics kept per node).

/// Counters of a peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Packets for a bearer without a link.
    pub no_link: u64,
    /// Broadcast-link packets received in sequence.
    pub bcast_rx: u64,
    /// Broadcast-link packets dropped (wrong network id, receive state not synchronised,
    /// duplicate, malformed).
    pub bcast_dropped: u64,
    /// Broadcast-link packets held for a gap.
    pub bcast_deferred: u64,
    /// Discovery duplicate alerts.
    pub duplicates: u64,
    /// Peer restarts detected (a second broadcast init in one node session); every link to
    /// the old instance was reset.
    pub restarts: u64,
    /// Failovers: a link went down while another kept the node up, and its queue went over
    /// to the other in FAILOVER tunnel messages.
    pub failovers: u64,
    /// FAILOVER messages sent (one per packet of the failed link, plus the dummy).
    pub tunnel_tx: u64,
    /// FAILOVER messages received.
    pub tunnel_rx: u64,
    /// Packets too large for the tunnel link sent in `TIPC_TUNNEL_ENHANCED` fragments.
    pub tunnel_fragmented: u64,
    /// Packets received in tunnel fragments and reassembled.
    pub tunnel_reassembled: u64,
    /// Tunnel fragments that could not be reassembled (out of order, malformed).
    pub tunnel_reasm_errors: u64,
    /// Link synchronisations (the peer's SYNCH when a parallel link came up, §4.12).
    pub synchs: u64,
    /// Packets dropped on a synching link before the other link reached the sync point
    /// (not acknowledged: the peer sends them again).
    pub synch_dropped: u64,
    /// Packets dropped while the node was down and the peer still considered it up
    /// (`SELF_DOWN_PEER_LEAVING`, §4.2).
    pub leaving_dropped: u64,
    /// Messages a failed link dropped that could not be returned to their sender (droppable,
    /// fragments, protocol messages).
    pub unreturned: u64,
    /// Delivered messages of a user no input queue takes (dropped, as the kernel's
    /// "illegal msg type").
    pub bad_user: u64,
    /// Packets naming this peer (`prevnode`) that came from another media address than the one
    /// its link on that bearer was set up with: spoofed, dropped
    /// ([`Peer::handle_packet_from`](super::Peer::handle_packet_from), [`Peer::handle_broadcast_from`](super::Peer::handle_broadcast_from)).
    pub spoofed_source: u64,
    /// Link frames (RESET, ACTIVATE) not sent to a peer that never answered, beyond the one
    /// frame each of its discovery messages pays for: a node is never a reflector
    /// ([`Peer::handle_discovery`](super::Peer::handle_discovery)).
    pub stranger_suppressed: u64,
}

impl PeerStats {
    /// Add `o`'s counters to these (totals over peers, forgotten ones included).
    pub fn add(&mut self, o: &PeerStats) {
        self.no_link += o.no_link;
        self.bcast_rx += o.bcast_rx;
        self.bcast_dropped += o.bcast_dropped;
        self.bcast_deferred += o.bcast_deferred;
        self.duplicates += o.duplicates;
        self.restarts += o.restarts;
        self.failovers += o.failovers;
        self.tunnel_tx += o.tunnel_tx;
        self.tunnel_rx += o.tunnel_rx;
        self.tunnel_fragmented += o.tunnel_fragmented;
        self.tunnel_reassembled += o.tunnel_reassembled;
        self.tunnel_reasm_errors += o.tunnel_reasm_errors;
        self.synchs += o.synchs;
        self.synch_dropped += o.synch_dropped;
        self.leaving_dropped += o.leaving_dropped;
        self.unreturned += o.unreturned;
        self.bad_user += o.bad_user;
        self.spoofed_source += o.spoofed_source;
        self.stranger_suppressed += o.stranger_suppressed;
    }
}
