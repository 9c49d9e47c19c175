//! A datagram socket's hold-back of multicasts across a sender's method switch, sans-IO
//! (kernel `bcast.c: tipc_mcast_filter_msg`), spec §5.4.
//!
//! When every node has `TIPC_MCAST_RBCTL`, a sender that switches between replicast and the
//! broadcast link sends a header-only dummy with SYN by the old method and the message with
//! SYN by the new one. A receiving socket holds the first SYN of a sender (and what follows it
//! on the same path) until its partner from the other path arrives: then it delivers the one
//! that carries data (the dummy is dropped) and what it held behind it. Messages from the old
//! path that are still arriving are delivered at once. Group messages never use SYN.

use bytes::Bytes;
use std::collections::VecDeque;
use tipc_transport::wire::{DataType, Header};

/// Messages one socket holds back at most; beyond it the oldest held are delivered as they
/// are (a sender whose partner SYN never comes must not pin memory).
pub const MAX_HELD: usize = 4096;

/// One socket's hold-back queue (see the module docs).
#[derive(Debug, Default)]
pub struct McastFilter {
    held: VecDeque<Bytes>,
    /// Dummies dropped after pairing (or when they were all a pair held).
    pub dummies: u64,
}

struct Meta {
    node: u32,
    port: u32,
    syn: bool,
    rcast: bool,
    data: bool,
    dummy: bool,
}

fn meta(m: &[u8]) -> Option<Meta> {
    let h = Header::new_checked(m).ok()?;
    if !h.is_data() || h.mtype() != DataType::Mcast as u8 {
        return None;
    }
    Some(Meta {
        node: h.orignode(),
        port: h.origport(),
        syn: h.syn(),
        rcast: h.is_rcast(),
        data: !h.payload().is_empty(),
        dummy: h.errcode() != 0,
    })
}

impl McastFilter {
    /// Messages held now.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// A message for the socket: what may be delivered now goes to `out`, in order. Anything
    /// other than a MCAST_MSG passes through.
    pub fn filter(&mut self, msg: Bytes, out: &mut impl FnMut(Bytes)) {
        let Some(m) = meta(&msg) else {
            return out(msg);
        };
        if !m.syn && self.held.is_empty() {
            return out(msg);
        }
        let same = |b: &Bytes| meta(b).is_some_and(|x| x.node == m.node && x.port == m.port);
        let Some(i) = self.held.iter().position(same) else {
            if m.syn {
                self.hold(msg, out);
            } else {
                out(msg);
            }
            return;
        };
        // Only multicasts are held; anything else would pass.
        let Some(first) = meta(&self.held[i]) else {
            return out(msg);
        };
        if !m.syn {
            // From the other path (sent before the switch): at once; from the same path as
            // the held SYN: behind it.
            if m.rcast != first.rcast {
                out(msg);
            } else {
                self.hold(msg, out);
            }
            return;
        }
        if m.rcast == first.rcast {
            // A second SYN on the same path: behind the first.
            return self.hold(msg, out);
        }
        // The partner: deliver the one with data, then what was held behind it.
        let Some(held) = self.held.remove(i) else {
            return out(msg);
        };
        self.dummies += 1;
        let keep_new = m.data || (!first.data && !m.dummy);
        out(if keep_new { msg } else { held });
        let mut j = i;
        while j < self.held.len() {
            match meta(&self.held[j]) {
                Some(x) if x.node == m.node && x.port == m.port => {
                    if x.syn {
                        break;
                    }
                    if let Some(b) = self.held.remove(j) {
                        out(b);
                    }
                }
                _ => j += 1,
            }
        }
    }

    fn hold(&mut self, msg: Bytes, out: &mut impl FnMut(Bytes)) {
        if self.held.len() >= MAX_HELD {
            if let Some(old) = self.held.pop_front() {
                out(old);
            }
        }
        self.held.push_back(msg);
    }
}
