//! The broadcast half of a peer (kernel `node.c` and `link.c` around the broadcast link,
//! `bcast.c: tipc_bcast_rcv, tipc_bcast_ack_rcv, tipc_bcast_sync_rcv`), spec §5.1, §5.2,
//! §5.5: our broadcast receive state for the peer (its packets sequenced, acked and NACKed),
//! the peer's acks of our broadcasts reported ([`PeerEvent::BcastAck`],
//! [`PeerEvent::BcastReady`]), our `last_bcast` and bc-init.

use super::{Peer, PeerEvent};
use crate::wire::{self, field, user, Header, Seqno, INT_H_SIZE};
use crate::MAX_BEARERS;
use bytes::{Bytes, BytesMut};
use std::time::Instant;

impl Peer {
    /// Our broadcast link's last seqno ([`crate::bcast::BcastLink::last_bcast`]), written
    /// as `last_bcast` into our LINK_PROTOCOL messages and bc-init (§5.2): the peer finds a
    /// lost tail of our broadcasts by it. Set it whenever it changed, before the peer runs.
    pub fn set_last_bcast(&mut self, last: u16) {
        if last != self.last_bcast {
            self.last_bcast = last;
            self.sync_bc_state();
        }
    }

    /// Our broadcast receive state for the peer: set up (its bc-init came), the next seqno
    /// expected, packets deferred.
    pub fn bc_rcv_state(&self) -> (bool, u16, usize) {
        (self.bc_up, self.bc_rcv_nxt.0, self.bc_deferred.len())
    }

    /// The `last_bcast` our bc-init of this node session told the peer: it has our
    /// broadcasts up to there ([`crate::bcast::BcastLink::add_peer_at`]).
    pub fn bc_init_last(&self) -> u16 {
        self.bc_init_last
    }

    /// The peer's `last_bcast` in a STATE (`tipc_link_bc_sync_rcv`): if it sent broadcast
    /// packets we have not received (a gap before deferred ones, or a lost tail that no
    /// later packet reveals), NACK them through `bc_gap`; as the kernel, every other such
    /// STATE (`BC_NACK_SND_SUPPRESS`).
    pub(super) fn bc_tail_check(&mut self, now: Instant, peers_last: Seqno) {
        let have = self.bc_rcv_nxt.sub(1);
        if !self.bc_up || !peers_last.more(have) || peers_last.diff(have) > crate::link::RCV_WINDOW
        {
            return;
        }
        if std::mem::take(&mut self.bc_nack_suppress) {
            return;
        }
        let gap = if self.bc_deferred.is_empty() {
            peers_last.diff(have).min(0x3FF)
        } else {
            self.bc_gap()
        };
        if let Some(i) = self.active_link {
            if let Some(s) = self.links[i].as_mut() {
                s.link.set_bcast_gap(gap);
                s.link.send_state(now);
                self.bc_nack_suppress = true;
            }
        }
    }

    /// The broadcast acks a packet from the peer carries (`tipc_rcv`'s calls of
    /// `tipc_bcast_ack_rcv` and, for LINK_PROTOCOL, `tipc_bcast_sync_rcv`): every packet's
    /// `bcast_ack` unless its user marks it invalid; a STATE's also with its `bc_gap`; other
    /// LINK_PROTOCOL messages carry none (ACTIVATE reuses the field).
    pub(super) fn bc_ack_rcv(&mut self, now: Instant, pkt: &[u8]) {
        if !self.node_up {
            return;
        }
        let Ok(h) = Header::new_checked(pkt) else {
            return;
        };
        let usr = h.user();
        let invalid = matches!(
            usr,
            user::BCAST_PROTOCOL | user::NAME_DISTRIBUTOR | user::LINK_PROTOCOL
        ) && h.flag(field::BC_ACK_INVALID);
        let mut gap = 0;
        if usr == user::LINK_PROTOCOL {
            if h.mtype() != 0 {
                return;
            }
            if h.ack() != 0 {
                self.bc_state_acked = true;
            }
            gap = h.get(field::BC_GAP) as u16;
            self.bc_tail_check(now, Seqno(h.get(field::LAST_BCAST) as u16));
        }
        if !self.bc_peer_ready && self.bc_up && self.bc_state_acked {
            self.bc_peer_ready = true;
            self.events.push_back(PeerEvent::BcastReady);
            // An ack seen before it counted is reported again.
            self.bc_peer_ack = None;
        }
        if invalid {
            return;
        }
        let ack = h.bcast_ack();
        if gap > 0 || self.bc_peer_ack != Some(ack) {
            self.bc_peer_ack = Some(ack);
            self.events.push_back(PeerEvent::BcastAck { ack, gap });
        }
    }

    /// A broadcast-link packet from this peer (§5.1, §5.5 item 5): sequenced in the peer's
    /// broadcast seqno space, acked through `bcast_ack` on our unicast packets (an explicit
    /// STATE after 16 packets, spread over receivers by address as the kernel does), NACKed
    /// through `bc_gap` in a STATE when packets are missing.
    pub fn handle_broadcast(&mut self, now: Instant, pkt: Bytes) {
        let Ok(h) = Header::new_checked(&pkt[..]) else {
            self.stats.bcast_dropped += 1;
            return;
        };
        // Legacy broadcast NACKs (BCAST_PROTOCOL, non_seq) concern our own broadcasts: we send
        // none. Packets with another network id, or before the peer's bc-init, are dropped.
        if h.user() == user::BCAST_PROTOCOL || h.destport() != self.net_id || !self.bc_up {
            self.stats.bcast_dropped += 1;
            return;
        }
        let seqno = Seqno(h.seqno());
        let size = h.size();
        if seqno.less(self.bc_rcv_nxt) || seqno.more(self.bc_rcv_nxt.add(crate::link::RCV_WINDOW)) {
            self.stats.bcast_dropped += 1;
            return;
        }
        let pkt = pkt.slice(..size);
        if seqno != self.bc_rcv_nxt {
            let key = self.bc_rcv_abs + seqno.diff(self.bc_rcv_nxt) as u64;
            // A duplicate, or beyond the deferred queue's byte bound (NACKed again later).
            if self.bc_deferred.insert(key, &pkt).is_err() {
                self.stats.bcast_dropped += 1;
                return;
            }
            self.stats.bcast_deferred += 1;
            let n = self.bc_deferred.len();
            // NACK at 3, 19, 35 ... deferred packets, like the unicast link.
            if n >= 3 && (n - 3).is_multiple_of(16) {
                self.bc_nack(now);
            }
            return;
        }
        self.bc_accept(now, pkt);
        while let Some(p) = self.bc_deferred.remove(self.bc_rcv_abs) {
            self.bc_accept(now, p);
        }
        let gap = self.bc_gap();
        let ack = self.bc_rcv_nxt.sub(1).0;
        let explicit = self.bc_rcv_unacked >= crate::link::ACK_INTERVAL
            && ((self.bc_rcv_nxt.0 as u32 ^ self.own_addr) & 0xF) == 0xF;
        if explicit {
            self.bc_rcv_unacked = 0;
        }
        for i in 0..MAX_BEARERS {
            if let Some(s) = self.links[i].as_mut() {
                s.link.set_bcast_state(ack, true, self.last_bcast);
                s.link.set_bcast_gap(gap);
            }
            if explicit && Some(i) == self.active_link {
                if let Some(s) = self.links[i].as_mut() {
                    s.link.send_state(now);
                }
            }
        }
    }

    pub(super) fn bc_gap(&self) -> u16 {
        self.bc_deferred
            .first_key()
            .map_or(0, |k| (k - self.bc_rcv_abs).min(0x3FF) as u16)
    }

    pub(super) fn bc_nack(&mut self, now: Instant) {
        let gap = self.bc_gap();
        if let Some(i) = self.active_link {
            if let Some(s) = self.links[i].as_mut() {
                s.link.set_bcast_gap(gap);
                s.link.send_state(now);
            }
        }
    }

    pub(super) fn bc_accept(&mut self, _now: Instant, pkt: Bytes) {
        self.bc_rcv_nxt = self.bc_rcv_nxt.next();
        self.bc_rcv_abs += 1;
        self.bc_rcv_unacked += 1;
        self.stats.bcast_rx += 1;
        let usr = Header::new_unchecked(&pkt[..]).user();
        match usr {
            user::MSG_BUNDLER => {
                for m in wire::extract(&pkt) {
                    match m {
                        Ok(m) => self.deliver(m),
                        Err(_) => self.stats.bcast_dropped += 1,
                    }
                }
            }
            user::MSG_FRAGMENTER => match self.bc_reasm.push(pkt) {
                Ok(Some(m)) => self.deliver(m),
                Ok(None) => {}
                Err(_) => self.stats.bcast_dropped += 1,
            },
            _ => self.deliver(pkt),
        }
    }

    /// The broadcast-init message (`tipc_link_build_bc_init_msg`, §5.2): BCAST_PROTOCOL STATE,
    /// `last_bcast` = our broadcast `snd_nxt - 1` (0 before our first broadcast),
    /// `bc_ack_invalid` set.
    pub(super) fn bc_init_msg(&self) -> BytesMut {
        let (own, peer) = (self.own_addr, self.addr);
        let mut b = BytesMut::zeroed(INT_H_SIZE);
        let mut h = Header::new_unchecked(&mut b[..]);
        h.init(user::BCAST_PROTOCOL, 0, INT_H_SIZE, INT_H_SIZE, own);
        h.set(field::ORIGNODE, own);
        h.set(field::DESTNODE, peer);
        let ack = self.bc_rcv_nxt.sub(1).0;
        h.set(field::LAST_BCAST, self.last_bcast as u32);
        h.set_bcast_ack(ack);
        h.set(field::BCGAP_AFTER, ack as u32);
        h.set(field::BCGAP_TO, ack as u32);
        h.set_flag(field::BC_ACK_INVALID, true);
        b
    }
}
