//! Failover of a failed link's traffic over a parallel one, the failed link's side (kernel
//! `link.c`: `tipc_link_failover_prepare`, `tipc_link_tnl_prepare`, `tipc_link_tnl_rcv`),
//! spec §4.12. The tunnel itself is the node layer's ([`crate::peer`]).

use super::{FailoverRx, Link, Refused, RCV_WINDOW};
use crate::wire::{self, field, user, Header, Seqno};
use crate::NodeAddr;
use bytes::{Bytes, BytesMut};
use std::time::Instant;

impl Link {
    /// What the last reset took from the send queues: packets sent and not acknowledged,
    /// then the unsent ones, in order, each with its seqno in w2 (empty after the first
    /// call); and the seqno the next packet would have had.
    pub fn take_failed(&mut self) -> (Vec<Bytes>, Seqno) {
        (std::mem::take(&mut self.failed_tx), self.failed_next)
    }

    /// The node layer fails this (down) link over to a parallel one: the peer's tunnelled
    /// copies of what it sent here are delivered (by the node layer, `handle_failover`) against the
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
    pub(crate) fn handle_failover(&mut self, now: Instant, pkt: Bytes) {
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
            match f.deferred.insert(key, &pkt) {
                Ok(()) => {}
                Err(Refused::Duplicate) => self.stats.duplicates += 1,
                Err(Refused::Full) => self.stats.deferred_overflow += 1,
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
            next = self.failover.as_mut().and_then(|f| f.deferred.remove(key));
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
