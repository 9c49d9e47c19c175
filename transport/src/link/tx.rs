//! The send path of a link (kernel `link.c`: `tipc_link_xmit`, `tipc_link_advance_backlog`,
//! `tipc_link_update_cwin`, and `msg.c`'s bundling and fragmenting), spec §4.9
//! (fragmentation), §4.10 (bundling) and §4.11 (window and congestion control).

use super::{
    DownReason, Frame, Link, LinkEvent, Outgoing, SendError, SendStatus, TxPkt, HALF_SEQNO_SPACE,
    IMPORTANCE_LEVELS, SPLIT_MIN, SSTHRESH_FLOOR, TUNNEL_LEVEL,
};
use crate::wire::{self, field, user, Header, Seqno};
use crate::NodeAddr;
use bytes::{Bytes, BytesMut};
use std::time::Instant;

impl Link {
    // ------------------------------------------------------------------ window

    pub(super) fn update_cwin(&mut self, released: u16, retransmitted: bool) {
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
        self.last_progress = now;
        self.tail_probed = false;
        let fits =
            size <= self.mss() || (usr == user::TUNNEL_PROTOCOL && size <= self.max_packet());
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
        self.sent_in_session = (self.sent_in_session + 1).min(HALF_SEQNO_SPACE);
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
    pub(super) fn advance_backlog(&mut self) {
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

    /// Returns the next packet to send: appends it to `out` and returns its length, or `None`
    /// when there is nothing to send. Sequenced packets are stamped with the current `ack` and
    /// `bcast_ack`.
    ///
    /// Call repeatedly until it returns `None`; call again after any `handle_*` call or
    /// command ([`Link::send`], [`Link::set_cork`], [`Link::send_state`], [`Link::shutdown`],
    /// [`Link::force_reset`]).
    #[must_use]
    pub fn poll_transmit(&mut self, out: &mut BytesMut) -> Option<usize> {
        let (len, body) = self.poll_transmit_parts(out)?;
        out.extend_from_slice(&body);
        Some(len + body.len())
    }

    /// [`Link::poll_transmit`] without copying large payloads: appends the packet's first
    /// `len` bytes (its header, stamped, or the whole of a small packet) to `out` and returns
    /// `len` and the rest of the packet by reference (often empty). The packet is the two
    /// put together.
    ///
    /// Call repeatedly until it returns `None`; call again after any `handle_*` call or
    /// command, as [`Link::poll_transmit`].
    #[must_use]
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
                        if h.user() == user::TUNNEL_PROTOCOL {
                            h.set(field::TUNNEL_SESSION, u32::from(self.tunnel_stamp()));
                        }
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
}

/// A copy of the packet `head` + `body` with `seqno` in w2.
pub(super) fn with_seqno(head: &[u8], body: &[u8], seqno: Seqno) -> Bytes {
    let mut b = BytesMut::with_capacity(head.len() + body.len());
    b.extend_from_slice(head);
    b.extend_from_slice(body);
    Header::new_unchecked(&mut b[..]).set_seqno(seqno.0);
    b.freeze()
}
