//! The traffic application (invariant 1): numbered `DIRECT_MSG` messages per (src, dst) flow,
//! sent while the link is up and not congested, as a socket would; each delivered one checked
//! exactly once, in order and intact; a number may be skipped only if the sender's link gave
//! it back ([`tipc_transport::peer::PeerEvent::Returned`]) or the sender crashed.

use super::{RefState, Sim, DIRECT_MSG, RECORD_LEN, TRAFFIC_PORT_BASE};
use bytes::BytesMut;
use std::collections::BTreeSet;
use tipc_transport::link::{SendError, SendStatus};
use tipc_transport::wire::{user, Header, BASIC_H_SIZE};
use tipc_transport::NodeAddr;

/// One traffic flow (src -> dst) and what the invariants know about it.
#[derive(Debug, Clone, Default)]
pub struct Flow {
    /// Messages the application wants sent in total.
    pub target: u64,
    /// Next message number to send (= messages accepted by the link so far).
    pub next: u64,
    /// Messages delivered.
    pub delivered: u64,
    /// Highest number delivered.
    pub last: Option<u64>,
    /// Numbers the sender's link reported purged.
    pub purged: BTreeSet<u64>,
    /// Numbers below this may be missing: the sender crashed after sending them.
    pub lost_below: u64,
    /// Times a send was refused as congested.
    pub refused: u64,
}

impl Sim {
    // ------------------------------------------------------------------ traffic

    /// Ask node `src` to send `count` more numbered messages to node `dst`.
    pub fn send_stream(&mut self, src: usize, dst: usize, count: u64) {
        self.flows.entry((src, dst)).or_default().target += count;
    }
    /// Streams of `count` messages between every ordered pair of nodes.
    pub fn send_all_pairs(&mut self, count: u64) {
        for a in 0..self.cfg.nodes {
            for b in 0..self.cfg.nodes {
                if a != b {
                    self.send_stream(a, b, count);
                }
            }
        }
    }
    /// Has every flow delivered its target?
    pub fn traffic_done(&self) -> bool {
        self.flows.values().all(|f| f.delivered >= f.target)
    }

    pub(super) fn data_msg(&self, src: usize, dst: usize, seq: u64) -> BytesMut {
        let len = BASIC_H_SIZE + self.cfg.msg_size;
        let mut b = BytesMut::zeroed(len);
        let (sa, da) = (self.addrs[src], self.addrs[dst]);
        {
            let mut h = Header::new_unchecked(&mut b[..]);
            h.init(user::LOW, DIRECT_MSG, BASIC_H_SIZE, len, sa);
            h.set_orignode(sa);
            h.set_destnode(da);
            h.set_origport(TRAFFIC_PORT_BASE + src as u32);
            h.set_destport(TRAFFIC_PORT_BASE + dst as u32);
        }
        let p = &mut b[BASIC_H_SIZE..];
        p[0..4].copy_from_slice(&(src as u32).to_be_bytes());
        p[4..8].copy_from_slice(&(dst as u32).to_be_bytes());
        p[8..16].copy_from_slice(&seq.to_be_bytes());
        for (i, x) in p[RECORD_LEN..].iter_mut().enumerate() {
            *x = (seq as usize + i) as u8;
        }
        b
    }

    /// Send what the flows want, while the link is up and not congested (like a socket).
    pub(super) fn run_traffic(&mut self) {
        let keys: Vec<(usize, usize)> = self.flows.keys().copied().collect();
        let now = self.now;
        for (src, dst) in keys {
            let mut sent_any = false;
            while let Some(f) = self.flows.get(&(src, dst)) {
                if f.next >= f.target {
                    break;
                }
                let seq = f.next;
                let dst_addr = self.addrs[dst];
                let selector = TRAFFIC_PORT_BASE + src as u32;
                let msg = self.data_msg(src, dst, seq);
                let Some(peer) = self.nodes[src].as_mut().and_then(|n| n.peer_mut(dst_addr)) else {
                    break;
                };
                if !peer.is_up() || peer.is_congested(user::LOW, selector) {
                    break;
                }
                let r = peer.send(now, msg, selector);
                let f = self.flows.entry((src, dst)).or_default();
                match r {
                    Ok(SendStatus::Accepted) => {
                        f.next += 1;
                        sent_any = true;
                    }
                    Ok(SendStatus::Congested) => {
                        f.next += 1;
                        sent_any = true;
                        break;
                    }
                    Err(SendError::Congested(_)) => {
                        f.refused += 1;
                        break;
                    }
                    Err(SendError::NotUp(_)) => break,
                    Err(e) => self.violation(&format!("send {src}->{dst} #{seq} refused: {e}")),
                }
            }
            if sent_any {
                self.pump(src);
            }
        }
    }

    /// The (src, dst, seq) record of one of our data messages.
    pub(super) fn parse_record(m: &[u8]) -> Option<(NodeAddr, NodeAddr, usize, usize, u64)> {
        let h = Header::new_checked(m).ok()?;
        if h.user() != user::LOW || h.mtype() != DIRECT_MSG || h.header_len() != BASIC_H_SIZE {
            return None;
        }
        let p = h.payload();
        if p.len() < RECORD_LEN {
            return None;
        }
        let src = u32::from_be_bytes(p[0..4].try_into().ok()?) as usize;
        let dst = u32::from_be_bytes(p[4..8].try_into().ok()?) as usize;
        let seq = u64::from_be_bytes(p[8..16].try_into().ok()?);
        Some((h.orignode(), h.destnode(), src, dst, seq))
    }

    pub(super) fn on_deliver(&mut self, node: usize, peer: usize, m: &[u8]) {
        if !self.cfg.check_delivery {
            return;
        }
        let Some((orig, dest, src, dst, seq)) = Self::parse_record(m) else {
            self.violation(&format!(
                "node {node} got an unexpected message from {peer}: {} bytes",
                m.len()
            ));
        };
        if orig != self.addrs[peer] || dest != self.addrs[node] || src != peer || dst != node {
            self.violation(&format!(
                "node {node} got a message from {peer} naming {orig:#x}->{dest:#x} ({src}->{dst} #{seq})"
            ));
        }
        let expect = self.data_msg(src, dst, seq);
        if m.len() != expect.len() || m[BASIC_H_SIZE..] != expect[BASIC_H_SIZE..] {
            self.violation(&format!("{src}->{dst} #{seq}: payload damaged"));
        }
        let f = self.flows.entry((src, dst)).or_default().clone();
        if seq >= f.next {
            self.violation(&format!(
                "{src}->{dst} #{seq} delivered but never sent (next {})",
                f.next
            ));
        }
        if let Some(l) = f.last {
            if seq <= l {
                self.violation(&format!(
                    "{src}->{dst} #{seq} delivered after #{l}: duplicate or reordered"
                ));
            }
        }
        let from = f.last.map_or(0, |l| l + 1);
        for k in from.max(f.lost_below)..seq {
            if !f.purged.contains(&k) {
                self.violation(&format!(
                    "{src}->{dst} #{seq} delivered but #{k} was skipped without being purged"
                ));
            }
        }
        let f = self.flows.entry((src, dst)).or_default();
        f.last = Some(seq);
        f.delivered += 1;
    }

    /// One of node `node`'s messages came back from its link to `peer` (the link dropped it
    /// when it went down, [`tipc_transport::peer::PeerEvent::Returned`]): its number may be
    /// missing at the destination (or still be delivered once).
    pub(super) fn on_returned(&mut self, node: usize, peer: usize, m: &[u8]) {
        let seqs: Vec<_> = Self::parse_record(m).into_iter().collect();
        let refs: Vec<_> = Self::parse_ref(m).into_iter().collect();
        for (src, dst, id, _) in refs {
            if src != node || dst != peer {
                self.violation(&format!(
                    "node {node} purged a reference {src}->{dst} #{id} on its link to {peer}"
                ));
            }
            if let Some(r) = self.refs.get_mut(id as usize) {
                if r.state == RefState::Sent {
                    r.state = RefState::Purged;
                }
            }
        }
        for (_, _, src, dst, seq) in seqs {
            if src != node || dst != peer {
                self.violation(&format!(
                    "node {node} purged a message {src}->{dst} on its link to {peer}"
                ));
            }
            self.flows.entry((src, dst)).or_default().purged.insert(seq);
        }
    }
}
