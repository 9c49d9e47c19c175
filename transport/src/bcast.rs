//! The broadcast send link (kernel `bcast.c` and the broadcast half of `link.c`:
//! `tipc_bcast_xmit`, `tipc_link_bc_ack_rcv`, `tipc_link_bc_nack_rcv`, `tipc_link_add_bc_peer`,
//! `tipc_link_remove_bc_peer`, `tipc_bearer_bc_xmit`), sans-IO. Spec §5.1, §5.2.
//!
//! One [`BcastLink`] per node carries messages to every peer node at once: each packet is
//! sent once with the bearers' broadcast address (the owner puts [`BcastLink::poll_transmit`]'s
//! frames on every bearer that can broadcast) and is released only when **every** peer
//! (`acker`) acknowledged it. The packets are stamped as the kernel's broadcast link stamps
//! them: their own 16-bit seqno space from 1, `non_seq = 1`, w5 = the network id, the ack
//! fields 0; messages above the MTU go as MSG_FRAGMENTER fragments.
//!
//! Inputs, from the peers (their unicast links carry the broadcast state, §5.2):
//! [`BcastLink::add_peer`] at a node's first link up (it acks everything sent so far),
//! [`BcastLink::peer_ready`] once acks from it count (`bc_peer_is_up`: our bc-init reached it
//! and it acknowledged a unicast packet), [`BcastLink::handle_ack`] with each `bcast_ack` it
//! sends, [`BcastLink::handle_nack`] with a STATE's `bc_gap`, [`BcastLink::remove_peer`] when
//! the node is lost. Every peer's `last_bcast` field is [`BcastLink::last_bcast`].
//!
//! Memory is bounded: [`BC_WINDOW`] packets in flight and [`BACKLOG_LIMIT`] waiting; a send
//! beyond that is refused with the message handed back ([`BcastSendError::Congested`]).
//! A packet is retransmitted (on a NACK) at most once per [`RETRANSMIT_SPACING`].

use crate::peer::PeerEvent;
use crate::wire::{self, Header, Seqno, INT_H_SIZE};
use crate::NodeAddr;
use bytes::{Bytes, BytesMut};
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Packets in flight (`BCLINK_WIN_DEFAULT`).
pub const BC_WINDOW: usize = 50;
/// Packets waiting behind the window; more are refused.
pub const BACKLOG_LIMIT: usize = 4 * BC_WINDOW;
/// A packet is retransmitted at most once per this interval (`TIPC_BC_RETR_LIM`).
pub const RETRANSMIT_SPACING: Duration = Duration::from_millis(10);

/// Settings of a broadcast send link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BcastConfig {
    /// Our node address (each packet's prevnode).
    pub own_addr: NodeAddr,
    /// The network id (each packet's w5).
    pub net_id: u32,
    /// The smallest MTU of the bearers that broadcast.
    pub mtu: usize,
}

/// Why [`BcastLink::send`] refused a message; each variant hands it back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BcastSendError {
    /// The window and the backlog are full: retry once acks came.
    #[error("broadcast link congested")]
    Congested(BytesMut),
    /// There is no peer to broadcast to.
    #[error("no broadcast peers")]
    NoPeers(BytesMut),
    /// Not a valid TIPC message, or too large to fragment.
    #[error("invalid message")]
    Invalid(BytesMut),
}

/// Counters of the broadcast send link (`tipc link stat show broadcast-link`, TX side).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BcastStats {
    /// Packets sent (first transmissions).
    pub tx_packets: u64,
    /// Messages sent in fragments.
    pub tx_fragmented: u64,
    /// Fragments sent.
    pub tx_fragments: u64,
    /// Packets retransmitted.
    pub retransmitted: u64,
    /// NACKs received.
    pub nacks: u64,
    /// Acks that moved a peer's acknowledged point.
    pub acks: u64,
    /// Sends refused for a full backlog.
    pub congested: u64,
    /// Messages put into a waiting packet with others.
    pub tx_bundled: u64,
    /// Packets that became bundles.
    pub tx_bundles: u64,
    /// The most packets queued (in flight and waiting) at once.
    pub max_queue: usize,
    /// Packets queued now (in flight and waiting).
    pub queued: usize,
}

#[derive(Debug, Clone, Copy)]
struct Acker {
    acked: Seqno,
    ready: bool,
}

#[derive(Debug)]
struct Pkt {
    seqno: Seqno,
    frame: Bytes,
    sent_at: Option<Instant>,
}

/// The node's broadcast send link (see the module docs).
#[derive(Debug)]
pub struct BcastLink {
    cfg: BcastConfig,
    snd_nxt: Seqno,
    transmq: VecDeque<Pkt>,
    backlog: VecDeque<BytesMut>,
    ackers: BTreeMap<NodeAddr, Acker>,
    out: VecDeque<Bytes>,
    stats: BcastStats,
}

impl BcastLink {
    /// A link with no peers; the first packet will be seqno 1.
    pub fn new(cfg: BcastConfig) -> BcastLink {
        BcastLink {
            cfg,
            snd_nxt: Seqno(1),
            transmq: VecDeque::new(),
            backlog: VecDeque::new(),
            ackers: BTreeMap::new(),
            out: VecDeque::new(),
            stats: BcastStats::default(),
        }
    }

    /// The last seqno sent (`snd_nxt - 1`; 0 before the first): every peer's `last_bcast`.
    pub fn last_bcast(&self) -> u16 {
        self.snd_nxt.sub(1).0
    }

    /// The largest message sent unfragmented.
    pub fn mss(&self) -> usize {
        crate::crypto::max_inner_len(self.cfg.mtu).saturating_sub(INT_H_SIZE)
    }

    /// Change the MTU (the smallest of the broadcasting bearers): later sends use it.
    pub fn set_mtu(&mut self, mtu: usize) {
        self.cfg.mtu = mtu;
    }

    /// The peers the link broadcasts to.
    pub fn peers(&self) -> impl Iterator<Item = NodeAddr> + '_ {
        self.ackers.keys().copied()
    }

    /// Packets sent and not yet acknowledged by every peer.
    pub fn in_flight(&self) -> usize {
        self.transmq.len()
    }

    /// Packets waiting behind the window.
    pub fn backlog_len(&self) -> usize {
        self.backlog.len()
    }

    /// Would a send be refused now?
    pub fn is_congested(&self) -> bool {
        self.backlog.len() >= BACKLOG_LIMIT
    }

    /// Counters (and what is queued now).
    pub fn stats(&self) -> BcastStats {
        BcastStats {
            queued: self.transmq.len() + self.backlog.len(),
            ..self.stats
        }
    }

    /// A peer node came up (`tipc_link_add_bc_peer`): it is taken to have everything sent so
    /// far; what is sent from now on waits for its acks. Its acks count once
    /// [`peer_ready`](Self::peer_ready) is called.
    pub fn add_peer(&mut self, peer: NodeAddr) {
        self.ackers.insert(
            peer,
            Acker {
                acked: self.snd_nxt.sub(1),
                ready: false,
            },
        );
    }

    /// [`add_peer`](Self::add_peer), the peer taken to have everything up to `last` (the
    /// `last_bcast` our bc-init told it: [`crate::peer::Peer::bc_init_last`]); what it
    /// needs after that stays queued until it acks.
    pub fn add_peer_at(&mut self, peer: NodeAddr, last: u16) {
        let cur = self.snd_nxt.sub(1);
        let last = Seqno(last);
        self.ackers.insert(
            peer,
            Acker {
                acked: if last.more(cur) { cur } else { last },
                ready: false,
            },
        );
    }

    /// The broadcast half of a peer's event (`node.c`'s calls into `bcast.c`): a node up
    /// adds it (from the `last_bcast` of its bc-init, `bc_init_last`), a node down removes
    /// it, [`PeerEvent::BcastReady`] makes its acks count, [`PeerEvent::BcastAck`] acks and
    /// NACKs. Other events change nothing. True if the link's state changed.
    pub fn handle_peer_event(
        &mut self,
        now: Instant,
        peer: NodeAddr,
        ev: &PeerEvent,
        bc_init_last: u16,
    ) -> bool {
        match *ev {
            PeerEvent::NodeUp => self.add_peer_at(peer, bc_init_last),
            PeerEvent::NodeDown => self.remove_peer(peer),
            PeerEvent::BcastReady => self.peer_ready(peer),
            PeerEvent::BcastAck { ack, gap: 0 } => self.handle_ack(peer, ack),
            PeerEvent::BcastAck { ack, gap } => self.handle_nack(now, peer, ack, gap),
            _ => return false,
        }
        true
    }

    /// Acks from `peer` count from now on (`bc_peer_is_up`).
    pub fn peer_ready(&mut self, peer: NodeAddr) {
        if let Some(a) = self.ackers.get_mut(&peer) {
            a.ready = true;
        }
    }

    /// A peer node was lost (`tipc_link_remove_bc_peer`): what only it held back is released.
    /// With the last peer gone, everything queued is dropped and the seqno space starts
    /// again at 1.
    pub fn remove_peer(&mut self, peer: NodeAddr) {
        if self.ackers.remove(&peer).is_none() {
            return;
        }
        if self.ackers.is_empty() {
            self.transmq.clear();
            self.backlog.clear();
            self.snd_nxt = Seqno(1);
            return;
        }
        self.release();
        self.advance();
    }

    /// `peer` acknowledged our broadcasts up to `ack` (a `bcast_ack` without
    /// `bc_ack_invalid`). Acks of a peer not ready, older than its last, or beyond what was
    /// sent are ignored.
    pub fn handle_ack(&mut self, peer: NodeAddr, ack: u16) {
        let ack = Seqno(ack);
        let last = self.snd_nxt.sub(1);
        let Some(a) = self.ackers.get_mut(&peer) else {
            return;
        };
        if !a.ready || !ack.more(a.acked) || ack.more(last) {
            return;
        }
        a.acked = ack;
        self.stats.acks += 1;
        self.release();
        self.advance();
    }

    /// `peer` acknowledged up to `ack` and misses the `gap` packets after it (a STATE's
    /// `bc_gap`): those still queued are retransmitted, each at most once per
    /// [`RETRANSMIT_SPACING`].
    pub fn handle_nack(&mut self, now: Instant, peer: NodeAddr, ack: u16, gap: u16) {
        self.handle_ack(peer, ack);
        if gap == 0 || !self.ackers.get(&peer).is_some_and(|a| a.ready) {
            return;
        }
        self.stats.nacks += 1;
        let from = Seqno(ack).next();
        let to = from.add(gap - 1);
        for p in self.transmq.iter_mut() {
            if p.seqno.less(from) || p.seqno.more(to) {
                continue;
            }
            if p.sent_at
                .is_some_and(|t| now.duration_since(t) < RETRANSMIT_SPACING)
            {
                continue;
            }
            p.sent_at = Some(now);
            self.stats.retransmitted += 1;
            self.out.push_back(p.frame.clone());
        }
    }

    /// Queue a complete message for every peer (fragmented if larger than
    /// [`mss`](Self::mss)). The message's own header is kept; the link writes seqno,
    /// `non_seq`, w5 and prevnode into each packet.
    pub fn send(&mut self, now: Instant, msg: BytesMut) -> Result<(), BcastSendError> {
        if self.ackers.is_empty() {
            return Err(BcastSendError::NoPeers(msg));
        }
        let size = match Header::new_checked(&msg[..]) {
            Ok(h) if h.size() == msg.len() => h.size(),
            _ => return Err(BcastSendError::Invalid(msg)),
        };
        if self.is_congested() {
            self.stats.congested += 1;
            return Err(BcastSendError::Congested(msg));
        }
        if size <= self.mss() {
            // Behind a full window, small messages share a packet (§4.10, as the unicast
            // link's backlog).
            let waits = self.transmq.len() >= BC_WINDOW || !self.backlog.is_empty();
            let usr = Header::new_unchecked(&msg[..]).user();
            if !(waits && wire::can_bundle(usr, size, self.mss()) && self.try_bundle(&msg)) {
                self.backlog.push_back(msg);
            }
        } else {
            let mut frags = Vec::new();
            if wire::fragment(&msg, self.cfg.mtu, &mut frags).is_err() {
                return Err(BcastSendError::Invalid(msg));
            }
            self.stats.tx_fragmented += 1;
            self.stats.tx_fragments += frags.len() as u64;
            self.backlog
                .extend(frags.into_iter().map(|f| BytesMut::from(&f[..])));
        }
        self.advance_at(Some(now));
        let q = self.transmq.len() + self.backlog.len();
        self.stats.max_queue = self.stats.max_queue.max(q);
        Ok(())
    }

    /// The next frame to broadcast, in order.
    ///
    /// Call repeatedly until it returns `None`, after every [`send`](Self::send),
    /// [`handle_ack`](Self::handle_ack), [`handle_nack`](Self::handle_nack) and
    /// [`remove_peer`](Self::remove_peer).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        self.out.pop_front()
    }

    /// Put `msg` into the last waiting packet (making it a bundle) if it fits.
    fn try_bundle(&mut self, msg: &[u8]) -> bool {
        let mss = self.mss();
        let Some(tail) = self.backlog.back_mut() else {
            return false;
        };
        let is_bundle = Header::new_unchecked(&tail[..]).user() == wire::user::MSG_BUNDLER;
        let builder = if is_bundle {
            wire::BundleBuilder::from_bytes_mut(std::mem::take(tail)).ok()
        } else {
            let first_ok =
                wire::can_bundle(Header::new_unchecked(&tail[..]).user(), tail.len(), mss)
                    && wire::BundleBuilder::would_fit(tail.len(), msg.len(), mss);
            if !first_ok {
                return false;
            }
            wire::BundleBuilder::new(tail, 0).ok()
        };
        let Some(mut b) = builder else {
            return false;
        };
        let ok = b.push(msg, mss).is_ok();
        *tail = b.into_bytes_mut();
        if ok {
            self.stats.tx_bundled += 1;
            if !is_bundle {
                self.stats.tx_bundles += 1;
            }
        }
        ok
    }

    /// Release every packet all peers acknowledged.
    fn release(&mut self) {
        let Some(min) = self
            .ackers
            .values()
            .map(|a| a.acked)
            .reduce(|x, y| if x.less(y) { x } else { y })
        else {
            return;
        };
        while self.transmq.front().is_some_and(|p| !p.seqno.more(min)) {
            self.transmq.pop_front();
        }
    }

    fn advance(&mut self) {
        self.advance_at(None);
    }

    /// Move packets from the backlog into the window, stamped and queued for transmission.
    fn advance_at(&mut self, now: Option<Instant>) {
        while self.transmq.len() < BC_WINDOW {
            let Some(pkt) = self.backlog.pop_front() else {
                return;
            };
            let seqno = self.snd_nxt;
            self.snd_nxt = self.snd_nxt.next();
            let frame = self.stamp(pkt, seqno);
            self.stats.tx_packets += 1;
            self.out.push_back(frame.clone());
            self.transmq.push_back(Pkt {
                seqno,
                frame,
                sent_at: now,
            });
        }
    }

    /// A packet as the broadcast link sends it (`tipc_link_xmit` on the broadcast link,
    /// `tipc_bearer_bc_xmit`).
    fn stamp(&self, mut b: BytesMut, seqno: Seqno) -> Bytes {
        let mut h = Header::new_unchecked(&mut b[..]);
        h.set_seqno(seqno.0);
        h.set_ack(0);
        h.set_bcast_ack(0);
        h.set_non_seq(true);
        h.set_prevnode(self.cfg.own_addr);
        h.set_destport(self.cfg.net_id);
        b.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OWN: NodeAddr = 0x0100_0001;
    const A: NodeAddr = 0x0100_0002;
    const B: NodeAddr = 0x0100_0003;

    fn link() -> BcastLink {
        BcastLink::new(BcastConfig {
            own_addr: OWN,
            net_id: 4711,
            mtu: 1500,
        })
    }

    /// A 44-byte-header MCAST message with `n` bytes of data.
    fn msg(n: usize) -> BytesMut {
        let mut b = BytesMut::zeroed(wire::MCAST_H_SIZE + n);
        let mut h = Header::new_unchecked(&mut b[..]);
        h.set(wire::field::VERSION, 2);
        h.set_user(0);
        h.set_header_len(wire::MCAST_H_SIZE);
        h.set_size(wire::MCAST_H_SIZE + n);
        h.set_mtype(wire::DataType::Mcast as u8);
        h.set_orignode(OWN);
        b
    }

    fn drain(l: &mut BcastLink) -> Vec<Bytes> {
        std::iter::from_fn(|| l.poll_transmit()).collect()
    }

    #[test]
    fn broadcast_packets_are_stamped_with_their_own_seqnos_net_id_and_non_seq() {
        let mut l = link();
        let now = Instant::now();
        assert!(matches!(
            l.send(now, msg(10)),
            Err(BcastSendError::NoPeers(_))
        ));
        l.add_peer(A);
        assert_eq!(l.last_bcast(), 0);
        for _ in 0..3 {
            l.send(now, msg(10)).unwrap();
        }
        let out = drain(&mut l);
        assert_eq!(out.len(), 3);
        for (i, f) in out.iter().enumerate() {
            let h = Header::new_checked(&f[..]).unwrap();
            assert_eq!(h.seqno(), i as u16 + 1);
            assert!(h.non_seq());
            assert_eq!(h.destport(), 4711);
            assert_eq!(h.prevnode(), OWN);
            assert_eq!(h.size(), f.len());
        }
        assert_eq!(l.last_bcast(), 3);
    }

    #[test]
    fn broadcast_packet_is_released_only_when_every_ready_peer_acked_it() {
        let mut l = link();
        let now = Instant::now();
        l.add_peer(A);
        l.add_peer(B);
        for _ in 0..5 {
            l.send(now, msg(10)).unwrap();
        }
        let _ = drain(&mut l);
        // Not ready yet: acks do not count.
        l.handle_ack(A, 5);
        assert_eq!(l.in_flight(), 5);
        l.peer_ready(A);
        l.peer_ready(B);
        l.handle_ack(A, 5);
        assert_eq!(l.in_flight(), 5, "B has acked nothing");
        l.handle_ack(B, 3);
        assert_eq!(l.in_flight(), 2);
        // Older, and beyond what was sent: ignored.
        l.handle_ack(B, 2);
        l.handle_ack(B, 9);
        assert_eq!(l.in_flight(), 2);
        l.handle_ack(B, 5);
        assert_eq!(l.in_flight(), 0);
    }

    #[test]
    fn broadcast_window_holds_a_backlog_and_refuses_beyond_it() {
        let mut l = link();
        let now = Instant::now();
        l.add_peer(A);
        l.peer_ready(A);
        // 800-byte messages: two do not fit one packet, nothing is bundled.
        let mut sent = 0;
        loop {
            match l.send(now, msg(800)) {
                Ok(()) => sent += 1,
                Err(BcastSendError::Congested(m)) => {
                    assert_eq!(m.len(), wire::MCAST_H_SIZE + 800);
                    break;
                }
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(sent, BC_WINDOW + BACKLOG_LIMIT);
        assert_eq!(drain(&mut l).len(), BC_WINDOW);
        // An ack moves the window: as many more go out.
        l.handle_ack(A, 20);
        assert_eq!(drain(&mut l).len(), 20);
        assert_eq!(l.in_flight(), BC_WINDOW);
        assert!(l.send(now, msg(800)).is_ok());
    }

    #[test]
    fn broadcast_messages_behind_a_full_window_share_packets_in_order() {
        let mut l = link();
        let now = Instant::now();
        l.add_peer(A);
        l.peer_ready(A);
        for i in 0..BC_WINDOW + 100 {
            let mut m = msg(10);
            m[wire::MCAST_H_SIZE] = i as u8;
            l.send(now, m).unwrap();
        }
        assert_eq!(drain(&mut l).len(), BC_WINDOW);
        assert!(l.backlog_len() < 10, "{} packets wait", l.backlog_len());
        l.handle_ack(A, BC_WINDOW as u16);
        let mut seen = Vec::new();
        for f in drain(&mut l) {
            for m in wire::extract(&f) {
                let m = m.unwrap();
                seen.push(m[wire::MCAST_H_SIZE]);
            }
        }
        let want: Vec<u8> = (BC_WINDOW..BC_WINDOW + 100).map(|i| i as u8).collect();
        assert_eq!(seen, want);
        // Every message is a packet or went into one.
        let st = l.stats();
        assert_eq!(st.tx_bundled + (st.tx_packets - BC_WINDOW as u64), 100);
    }

    #[test]
    fn broadcast_nack_retransmits_the_gap_at_most_once_per_spacing() {
        let mut l = link();
        let t0 = Instant::now();
        l.add_peer(A);
        l.peer_ready(A);
        for _ in 0..6 {
            l.send(t0, msg(10)).unwrap();
        }
        let _ = drain(&mut l);
        let t1 = t0 + RETRANSMIT_SPACING;
        l.handle_nack(t1, A, 2, 2);
        let re = drain(&mut l);
        let seqnos: Vec<u16> = re
            .iter()
            .map(|f| Header::new_checked(&f[..]).unwrap().seqno())
            .collect();
        assert_eq!(seqnos, [3, 4]);
        assert_eq!(l.in_flight(), 4, "1 and 2 released by the NACK's ack");
        l.handle_nack(t1 + Duration::from_millis(1), A, 2, 2);
        assert!(drain(&mut l).is_empty(), "too soon");
        l.handle_nack(t1 + RETRANSMIT_SPACING, A, 2, 2);
        assert_eq!(drain(&mut l).len(), 2);
        assert_eq!(l.stats().retransmitted, 4);
    }

    #[test]
    fn broadcast_peer_added_late_owes_nothing_sent_before_and_a_lost_peer_releases() {
        let mut l = link();
        let now = Instant::now();
        l.add_peer(A);
        l.peer_ready(A);
        for _ in 0..3 {
            l.send(now, msg(10)).unwrap();
        }
        l.add_peer(B);
        l.peer_ready(B);
        l.handle_ack(A, 3);
        assert_eq!(l.in_flight(), 0, "B came after 1..=3");
        l.send(now, msg(10)).unwrap();
        l.handle_ack(A, 4);
        assert_eq!(l.in_flight(), 1, "B holds 4");
        l.remove_peer(B);
        assert_eq!(l.in_flight(), 0);
        l.remove_peer(A);
        assert_eq!(l.last_bcast(), 0, "the seqno space starts again");
    }

    #[test]
    fn broadcast_large_message_goes_in_fragments_that_reassemble() {
        let mut l = link();
        let now = Instant::now();
        l.add_peer(A);
        l.peer_ready(A);
        let big = msg(5000);
        let orig = big.clone().freeze();
        l.send(now, big).unwrap();
        let out = drain(&mut l);
        assert_eq!(out.len(), 4);
        let mut r = wire::Reassembler::new();
        let mut whole = None;
        for (i, f) in out.into_iter().enumerate() {
            let h = Header::new_checked(&f[..]).unwrap();
            assert_eq!(h.seqno(), i as u16 + 1);
            assert!(f.len() <= 1500);
            // The receiver reassembles what the link delivers in order.
            whole = r.push(f).unwrap();
        }
        assert_eq!(whole.as_deref(), Some(&orig[..]));
        assert_eq!(l.stats().tx_fragments, 4);
    }
}
