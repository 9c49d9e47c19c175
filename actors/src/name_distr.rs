//! Name distribution (kernel `name_distr.c`), a sans-IO core for one node.
//!
//! Spec: tipc-protocol.md §7 (NAME_DISTRIBUTOR, user 11): §7.1 items, §7.2 sending (bulk at
//! node-up, single updates), §7.3 receiving and ordering, §7.4 purge; header overlay §2.5.
//!
//! **Sending.** [`NameDistributor::bulk`] builds the link-up bulk for one peer;
//! [`NameDistributor::publish`] / [`NameDistributor::withdraw`] build one single update, with
//! `named_seqno = snd_nxt++`, as a template with `destnode = 0` that
//! [`stamp_destnode`] turns into one copy per up peer. Only cluster-scope publications are
//! distributed. The messages are complete 40-byte-header NAME_DISTRIBUTOR messages
//! (`prevnode = orignode = own`) for `Peer::send`; the link stamps seqno and acks.
//!
//! `snd_nxt` starts at 1: the kernel publishes the node-state binding `{0, own, own}` in
//! `tipc_net_finalize` before any peer exists, and `tipc_named_publish` consumes named seqno 0
//! for it (the message goes nowhere). Hence the kernel's first bulk carries `named_seqno = 1`
//! and its first single update seqno 1 (golden vectors udp/020 and udp/112).
//!
//! **Receiving.** Per peer node: `rcv_nxt`, an `open` flag and a queue, dequeued as
//! `tipc_named_dequeue`: a `last_bulk` message sets `rcv_nxt = named_seqno` and opens; bulk and
//! legacy (`non_legacy = 0`) messages are applied at once; a single is applied when open and
//! its seqno is `rcv_nxt` (then `rcv_nxt++`); an older one is dropped; a newer one waits.
//! One deliberate difference: before the peer's `last_bulk` nothing is dropped as old (the
//! kernel compares against an unset `rcv_nxt` of 0, dropping seqnos 32768..65535). The queue
//! holds at most [`MAX_PENDING`] waiting messages per peer; more are dropped and counted.
//! Items with `lower > upper` are dropped and counted (6.1.y stable kernels reject them too).
//! Unlike the kernel, a message is applied only if its `orignode` is the peer whose link
//! delivered it, never this node: a peer cannot publish or withdraw bindings in another node's
//! name (the items are counted in [`NameDistrStats::foreign_items`]).

use crate::addr::{Scope, ServiceRange};
use crate::name_table::{BindingError, BindingTable, Publication};
use bytes::BytesMut;
use std::collections::{HashMap, VecDeque};
use tipc_transport::wire::{
    DistrItem, Header, NameDistrRepr, NameDistrType, Seqno, INT_H_SIZE, ITEM_SIZE,
};
use tipc_transport::NodeAddr;

/// Messages one peer may have waiting for an earlier seqno or for its last bulk.
pub const MAX_PENDING: usize = 4096;

/// `bc_ack_invalid` (w5 bit 14), set in bulk messages.
const W5_BC_ACK_INVALID: u32 = 1 << 14;

/// A change to apply to the binding table, learned from a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// Insert this publication (always cluster scope).
    Publish(Publication),
    /// Remove the publication matching exactly.
    Withdraw {
        /// The exact range.
        range: ServiceRange,
        /// Publishing node (the message's orignode).
        node: NodeAddr,
        /// Port (informational: matching uses range, node and key).
        port: u32,
        /// Key.
        key: u32,
    },
}

/// Counters of dropped input.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NameDistrStats {
    /// Messages that failed to parse.
    pub malformed: u64,
    /// Items with `lower > upper`.
    pub bad_items: u64,
    /// Singles older than `rcv_nxt`.
    pub old_dropped: u64,
    /// Messages dropped because the peer's queue was full.
    pub overflow_dropped: u64,
    /// Messages applied.
    pub applied: u64,
    /// Items refused because their message names another publishing node (`orignode`) than
    /// the peer whose link delivered it, or this node: a peer speaks only for its own
    /// bindings (the kernel takes `orignode` as it comes).
    pub foreign_items: u64,
}

#[derive(Debug)]
struct Pending {
    mtype: NameDistrType,
    seqno: Seqno,
    bulk: bool,
    last_bulk: bool,
    legacy: bool,
    orignode: NodeAddr,
    items: Vec<DistrItem>,
}

#[derive(Debug, Default)]
struct PeerRx {
    rcv_nxt: Seqno,
    open: bool,
    queue: VecDeque<Pending>,
}

/// The name distributor of one node (see the module docs).
#[derive(Debug)]
pub struct NameDistributor {
    own: NodeAddr,
    snd_nxt: Seqno,
    peers: HashMap<NodeAddr, PeerRx>,
    stats: NameDistrStats,
}

/// Set w7 (destnode) of a message built by this module.
pub fn stamp_destnode(msg: &mut [u8], peer: NodeAddr) {
    if msg.len() >= INT_H_SIZE {
        Header::new_unchecked(msg).set_destnode(peer);
    }
}

fn item_of(p: &Publication) -> DistrItem {
    DistrItem {
        type_: p.range.type_(),
        lower: p.range.lower(),
        upper: p.range.upper(),
        port: p.port,
        key: p.key,
    }
}

impl NameDistributor {
    /// A distributor for node `own`, with `snd_nxt = 1` (see the module docs).
    pub fn new(own: NodeAddr) -> NameDistributor {
        NameDistributor {
            own,
            snd_nxt: Seqno(1),
            peers: HashMap::new(),
            stats: NameDistrStats::default(),
        }
    }

    /// This node's address.
    pub fn own(&self) -> NodeAddr {
        self.own
    }

    /// The seqno the next single update will carry.
    pub fn snd_nxt(&self) -> Seqno {
        self.snd_nxt
    }

    /// Drop counters.
    pub fn stats(&self) -> NameDistrStats {
        self.stats
    }

    fn build(
        &self,
        mtype: NameDistrType,
        items: &[DistrItem],
        bulk: bool,
        last_bulk: bool,
        named_seqno: Seqno,
        dest: NodeAddr,
    ) -> BytesMut {
        let repr = NameDistrRepr {
            mtype,
            non_seq: false,
            bulk,
            last_bulk,
            non_legacy: true,
            bcast_ack: 0,
            ack: 0,
            seqno: 0,
            prevnode: self.own,
            named_seqno: named_seqno.0,
            w5: if bulk { W5_BC_ACK_INVALID } else { 0 },
            orignode: self.own,
            destnode: dest,
            items: &[],
        };
        let mut buf = BytesMut::zeroed(INT_H_SIZE + items.len() * ITEM_SIZE);
        repr.emit_with_items(items, &mut buf);
        buf
    }

    /// The link-up bulk for `peer` (`tipc_named_node_up`): every cluster-scope publication of
    /// `own_publications` (in the given order; the node-state publication is put first if
    /// absent, so the bulk is never empty), as many items per message as fit in
    /// `mss - 40` rounded down to 20 bytes (at least one). All messages have `bulk`,
    /// `non_legacy` and `bc_ack_invalid`, `destnode = peer`; the last one also `last_bulk` and
    /// `named_seqno = snd_nxt`.
    pub fn bulk<'a>(
        &self,
        peer: NodeAddr,
        own_publications: impl IntoIterator<Item = &'a Publication>,
        mss: usize,
    ) -> Vec<BytesMut> {
        let ns = Publication::node_state(self.own);
        let mut items: Vec<DistrItem> = own_publications
            .into_iter()
            .filter(|p| p.scope == Scope::Cluster)
            .map(item_of)
            .collect();
        if !items.contains(&item_of(&ns)) {
            items.insert(0, item_of(&ns));
        }
        let per_msg = (mss.saturating_sub(INT_H_SIZE) / ITEM_SIZE).max(1);
        let n = items.len().div_ceil(per_msg);
        items
            .chunks(per_msg)
            .enumerate()
            .map(|(i, chunk)| {
                let last = i + 1 == n;
                let seqno = if last { self.snd_nxt } else { Seqno(0) };
                self.build(NameDistrType::Publication, chunk, true, last, seqno, peer)
            })
            .collect()
    }

    fn single(&mut self, mtype: NameDistrType, p: &Publication) -> Option<(Seqno, BytesMut)> {
        if p.scope != Scope::Cluster {
            return None;
        }
        let seqno = self.snd_nxt;
        self.snd_nxt = seqno.next();
        Some((
            seqno,
            self.build(mtype, &[item_of(p)], false, false, seqno, 0),
        ))
    }

    /// A single PUBLICATION for our own publication `p` (`tipc_named_publish`), or `None` for a
    /// node-scope one (not distributed, no seqno used). The template has `destnode = 0`: send
    /// one copy per up peer, each stamped with [`stamp_destnode`].
    pub fn publish(&mut self, p: &Publication) -> Option<(Seqno, BytesMut)> {
        self.single(NameDistrType::Publication, p)
    }

    /// A single WITHDRAWAL for our own publication `p` (`tipc_named_withdraw`); as
    /// [`publish`](Self::publish).
    pub fn withdraw(&mut self, p: &Publication) -> Option<(Seqno, BytesMut)> {
        self.single(NameDistrType::Withdrawal, p)
    }

    /// Handle a NAME_DISTRIBUTOR message received from peer `from` (its link delivered it).
    /// Returns the updates now applicable, in order; malformed input is counted and dropped,
    /// and so are the items of a message whose `orignode` is not `from` or is this node
    /// ([`NameDistrStats::foreign_items`]): a peer may publish and withdraw only its own
    /// bindings.
    pub fn handle_message(&mut self, from: NodeAddr, msg: &[u8]) -> Vec<Update> {
        let parsed = Header::new_checked(msg)
            .and_then(|h| NameDistrRepr::parse(&h))
            .map(|r| Pending {
                mtype: r.mtype,
                seqno: Seqno(r.named_seqno),
                bulk: r.bulk,
                last_bulk: r.last_bulk,
                legacy: !r.non_legacy,
                orignode: r.orignode,
                items: r.iter().collect(),
            });
        let Ok(m) = parsed else {
            self.stats.malformed += 1;
            return Vec::new();
        };
        let rx = self.peers.entry(from).or_default();
        if rx.queue.len() >= MAX_PENDING && !(m.bulk || m.legacy) {
            self.stats.overflow_dropped += 1;
            return Vec::new();
        }
        rx.queue.push_back(m);
        let mut out = Vec::new();
        while let Some(m) = Self::dequeue(rx, &mut self.stats) {
            self.stats.applied += 1;
            // Consumed in its place in the peer's named order (so later updates still
            // apply), but a message for another node's bindings changes nothing.
            if m.orignode != from || m.orignode == self.own {
                self.stats.foreign_items += m.items.len() as u64;
                continue;
            }
            for it in &m.items {
                let Ok(range) = ServiceRange::new(it.type_, it.lower, it.upper) else {
                    self.stats.bad_items += 1;
                    continue;
                };
                out.push(match m.mtype {
                    NameDistrType::Publication => Update::Publish(Publication {
                        range,
                        scope: Scope::Cluster,
                        node: m.orignode,
                        port: it.port,
                        key: it.key,
                    }),
                    NameDistrType::Withdrawal => Update::Withdraw {
                        range,
                        node: m.orignode,
                        port: it.port,
                        key: it.key,
                    },
                });
            }
        }
        out
    }

    /// One step of `tipc_named_dequeue`: walk the queue from its head.
    fn dequeue(rx: &mut PeerRx, stats: &mut NameDistrStats) -> Option<Pending> {
        let mut i = 0;
        while i < rx.queue.len() {
            let m = &rx.queue[i];
            if m.last_bulk {
                rx.rcv_nxt = m.seqno;
                rx.open = true;
            }
            if m.bulk || m.legacy {
                return rx.queue.remove(i);
            }
            if rx.open && m.seqno == rx.rcv_nxt {
                rx.rcv_nxt = rx.rcv_nxt.next();
                return rx.queue.remove(i);
            }
            if rx.open && m.seqno.less(rx.rcv_nxt) {
                rx.queue.remove(i);
                stats.old_dropped += 1;
                continue;
            }
            i += 1;
        }
        None
    }

    /// Contact with `peer` lost: forget its receive state and waiting messages. (Purge its
    /// bindings from the table with `BindingTable::purge_node`.)
    pub fn node_down(&mut self, peer: NodeAddr) {
        self.peers.remove(&peer);
    }

    /// Messages waiting from `peer`.
    pub fn pending(&self, peer: NodeAddr) -> usize {
        self.peers.get(&peer).map_or(0, |p| p.queue.len())
    }
}

/// Counters of a [`NameService`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NameServiceStats {
    /// NAME_DISTRIBUTOR messages received.
    pub distr_rx: u64,
    /// Updates from peers applied to the table.
    pub applied: u64,
    /// Updates from peers the table refused (duplicate, invalid, over the limit, unknown
    /// withdrawal).
    pub refused: u64,
    /// Bindings removed by purges at node-down.
    pub purged: u64,
}

/// The name distribution of one node as the kernel glues it to the binding table
/// (`name_table.c: tipc_nametbl_publish/withdraw`, `name_distr.c: tipc_named_node_up,
/// tipc_named_rcv, tipc_publ_notify`, `node.c` link-state publications), sans-IO: the table
/// is passed in to every call (the owner may keep it behind a lock, shared with lookups), and
/// the messages to send come out of [`NameService::poll_transmit`]. The name table actor and
/// the simulation both drive it.
///
/// * Our own cluster-scope publications and withdrawals go to every up peer as single
///   updates; node-scope ones stay local.
/// * At a peer's node-up it gets the bulk of our cluster-scope bindings, one item list per
///   message up to [`bulk_mss`] of the smallest bearer MTU; at its node-down its bindings are
///   purged and its distribution state forgotten.
/// * A peer's updates are applied in its named order ([`NameDistributor::handle_message`]).
/// * Each working link to a peer holds the node-scope link-state binding `{2, peer, peer}`
///   keyed by the kernel's link id.
#[derive(Debug)]
pub struct NameService {
    distr: NameDistributor,
    up_peers: std::collections::BTreeSet<NodeAddr>,
    out: VecDeque<(NodeAddr, BytesMut)>,
    stats: NameServiceStats,
}

/// The largest NAME_DISTRIBUTOR message of a bulk on bearers whose smallest MTU is `mtu`:
/// room for the message's header and a link-level header around it (a bundle or a tunnel).
pub fn bulk_mss(mtu: usize) -> usize {
    mtu.saturating_sub(2 * INT_H_SIZE)
}

impl NameService {
    /// The name service of node `own`, publishing our node-state binding `{0, own, own}` in
    /// `table` (the kernel does when the address is set). [`NameDistributor::new`] already
    /// spent its named seqno; it travels in every bulk.
    pub fn new(own: NodeAddr, table: &mut BindingTable) -> NameService {
        let _ = table.publish(Publication::node_state(own));
        NameService {
            distr: NameDistributor::new(own),
            up_peers: std::collections::BTreeSet::new(),
            out: VecDeque::new(),
            stats: NameServiceStats::default(),
        }
    }

    /// The distributor (its drop counters and pending queues).
    pub fn distributor(&self) -> &NameDistributor {
        &self.distr
    }

    /// Counters.
    pub fn stats(&self) -> NameServiceStats {
        self.stats
    }

    /// Peers whose node-up was handled and whose node-down was not.
    pub fn up_peers(&self) -> impl Iterator<Item = NodeAddr> + '_ {
        self.up_peers.iter().copied()
    }

    /// Publish a binding of a local socket; a cluster-scope one goes to every up peer.
    pub fn publish(
        &mut self,
        table: &mut BindingTable,
        p: Publication,
    ) -> Result<(), BindingError> {
        table.publish(p)?;
        if let Some((_, msg)) = self.distr.publish(&p) {
            self.send_to_up_peers(msg);
        }
        Ok(())
    }

    /// Withdraw a binding of a local socket (exact range, port and key); the withdrawal of a
    /// cluster-scope one goes to every up peer. `None` if there was no such binding.
    pub fn withdraw(
        &mut self,
        table: &mut BindingTable,
        range: ServiceRange,
        port: u32,
        key: u32,
    ) -> Option<Publication> {
        let p = table.withdraw(range, self.distr.own(), port, key)?;
        if let Some((_, msg)) = self.distr.withdraw(&p) {
            self.send_to_up_peers(msg);
        }
        Some(p)
    }

    fn send_to_up_peers(&mut self, msg: BytesMut) {
        for &peer in &self.up_peers {
            let mut copy = msg.clone();
            stamp_destnode(&mut copy, peer);
            self.out.push_back((peer, copy));
        }
    }

    /// The peer node came up: it gets the bulk of our cluster-scope bindings (in table order),
    /// in messages of at most [`bulk_mss`]`(min_bearer_mtu)` bytes.
    pub fn handle_node_up(&mut self, table: &BindingTable, peer: NodeAddr, min_bearer_mtu: usize) {
        self.up_peers.insert(peer);
        let own: Vec<Publication> = table
            .bindings_of_node(self.distr.own())
            .into_iter()
            .filter(|p| p.scope == Scope::Cluster)
            .collect();
        for msg in self.distr.bulk(peer, own.iter(), bulk_mss(min_bearer_mtu)) {
            self.out.push_back((peer, msg));
        }
    }

    /// The peer node was lost: its bindings are purged and its distribution state forgotten.
    pub fn handle_node_down(&mut self, table: &mut BindingTable, peer: NodeAddr) {
        self.up_peers.remove(&peer);
        self.distr.node_down(peer);
        self.stats.purged += table.purge_node(peer).len() as u64;
    }

    /// A link to the peer came up: the node-scope link-state binding with its link id.
    pub fn handle_link_up(&mut self, table: &mut BindingTable, peer: NodeAddr, link_id: u32) {
        let _ = table.publish(Publication::link_state(self.distr.own(), peer, link_id));
    }

    /// That link went down: its link-state binding is withdrawn.
    pub fn handle_link_down(&mut self, table: &mut BindingTable, peer: NodeAddr, link_id: u32) {
        let p = Publication::link_state(self.distr.own(), peer, link_id);
        let _ = table.withdraw(p.range, p.node, p.port, p.key);
    }

    /// A NAME_DISTRIBUTOR message the peer's link delivered: every update now applicable is
    /// applied, in order.
    pub fn handle_message(&mut self, table: &mut BindingTable, from: NodeAddr, msg: &[u8]) {
        self.stats.distr_rx += 1;
        for u in self.distr.handle_message(from, msg) {
            let ok = match u {
                Update::Publish(p) => table.publish(p).is_ok(),
                Update::Withdraw {
                    range,
                    node,
                    port,
                    key,
                } => table.withdraw(range, node, port, key).is_some(),
            };
            if ok {
                self.stats.applied += 1;
            } else {
                self.stats.refused += 1;
            }
        }
    }

    /// The next NAME_DISTRIBUTOR message to send and its peer node. Call repeatedly until it
    /// returns `None`, after every `publish`, `withdraw` and `handle_node_up`.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<(NodeAddr, BytesMut)> {
        self.out.pop_front()
    }
}
