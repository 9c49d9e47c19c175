//! The receive path of a link (kernel `link.c`: `tipc_link_rcv`, `tipc_link_input`,
//! `tipc_link_advance_transmq`), spec §4.5 (sequence numbers, acks, NACKs, the deferred queue,
//! gap ACK blocks), §4.6 (retransmission), §4.9 (reassembly) and §4.10 (unbundling).

use super::{
    DownReason, Link, LinkEvent, LinkState, Outgoing, Refused, ACK_INTERVAL, RCV_WINDOW,
    RETRANSMIT_SPACING,
};
use crate::wire::{self, field, user, Header, LinkProtoRepr, LinkProtoType, Seqno};
use bytes::Bytes;
use std::time::Instant;

impl Link {
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
        let ack = Seqno(h.ack());
        if !self.ack_in_session(ack) {
            // It acknowledges packets this session never sent, so the peer sent it in an
            // earlier session (to our previous session, or to our node's previous instance)
            // and it arrived after the link was re-established: a link reset by a restarted
            // peer comes up again within a round trip, while the old session's packets are
            // still in flight. Accepted, its `ack` would release packets the peer never
            // received (lost without being returned to their senders), and the packet itself
            // would be delivered, or held in the deferred queue in the place of the new
            // session's packet with its seqno. The kernel (`tipc_link_rcv`) cannot tell, data
            // packets carry no session: it accepts such a packet when its seqno falls in the
            // receive window. We drop it whole, before it can bring an ESTABLISHING link up
            // (there, with nothing sent, only `ack` 0 is possible, as `tipc_link_validate_msg`
            // requires of a STATE). A stale packet whose `ack` happens to be possible in the
            // new session is not caught.
            self.stats.stale += 1;
            return;
        }
        if h.user() == user::TUNNEL_PROTOCOL && !self.tunnel_in_session(&h) {
            // A tunnel packet (FAILOVER, SYNCH) the peer's link sent in an earlier session:
            // the failover of a parallel link, begun over this link while it still served
            // the old session (the peer's previous instance, or ours), arrives after the link
            // was re-established. Its `ack` (often 0, the old session had received nothing
            // here) is possible in the new session, so the check above lets it pass; it would
            // then be held in the place of the new session's packet with its seqno (that one
            // dropped as a duplicate, acknowledged, lost without being returned), and, once
            // delivered, take the parallel link down as a failover that is not happening.
            // The kernel cannot tell (its tunnel header carries no session): we stamp our
            // link's session in the tunnel header ([`field::TUNNEL_SESSION`]) and drop a
            // packet stamped with another than the peer's current one. From a kernel peer
            // (no stamp) the hole remains.
            self.stats.stale += 1;
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
            match self.deferdq.insert(key, &pkt) {
                Ok(()) => {}
                Err(Refused::Duplicate) => {
                    self.stats.duplicates += 1;
                    return;
                }
                Err(Refused::Full) => {
                    self.stats.deferred_overflow += 1;
                    return;
                }
            }
            self.stats.deferred += 1;
            let n = self.deferdq.len();
            if n >= 3 && (n - 3).is_multiple_of(16) {
                let first = self.deferdq.first_key().unwrap_or(key);
                let gap = (first - self.rcv_nxt_abs) as u16;
                self.build_proto(LinkProtoType::State, false, false, gap, now);
            }
            return;
        }
        self.accept_in_order(now, pkt);
        while self.is_up() {
            let Some(p) = self.deferdq.remove(self.rcv_nxt_abs) else {
                break;
            };
            self.accept_in_order(now, p);
        }
    }

    /// Could the peer have sent `ack` in this session: is it at most our `snd_nxt - 1`, and
    /// no further behind it than the packets this session sent (it starts at `snd_nxt = 1`,
    /// the peer's `rcv_nxt - 1 = 0`)?
    fn ack_in_session(&self, ack: Seqno) -> bool {
        self.snd_nxt.sub(1).diff(ack) <= self.sent_in_session
    }

    /// Could the peer's link have sent this tunnel packet in the current session: unstamped
    /// (a kernel peer, or a session whose stamp would be 0), or stamped with the peer's
    /// session as its RESET or ACTIVATE announced it? Before a session is known nothing is
    /// accepted anyway.
    fn tunnel_in_session<T: AsRef<[u8]>>(&self, h: &Header<T>) -> bool {
        let stamp = h.get(field::TUNNEL_SESSION) as u16;
        !self.in_session || stamp == 0 || stamp == self.peer_session.wrapping_add(1)
    }

    /// The stamp of our tunnel packets ([`field::TUNNEL_SESSION`]): our session plus one.
    pub(super) fn tunnel_stamp(&self) -> u16 {
        self.session.wrapping_add(1)
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
    pub(super) fn input_with(&mut self, now: Instant, pkt: Bytes, failover: bool) {
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

    // ------------------------------------------------------------------ acks and retransmission

    /// `tipc_link_advance_transmq` for unicast: release up to `acked` and retransmit the `gap`
    /// packets after it; with gap ACK blocks (`blocks`: the record's unicast `{ack, gap}`
    /// pairs, big-endian), also mark each island the peer holds up to a block's `ack` as held
    /// ([`TxPkt::sacked`]) and retransmit the block's `gap` packets after it. Blocks that do
    /// not rise within what we sent are ignored.
    pub(super) fn advance_transmq(&mut self, now: Instant, acked: Seqno, gap: u16, blocks: &[u8]) {
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
            self.last_progress = now;
            self.tail_probed = false;
            self.update_cwin(released, false);
            self.advance_backlog();
        }
    }
}
