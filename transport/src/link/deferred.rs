//! The deferred queue of a receiver (kernel `link.c`: `l->deferdq`, `__tipc_skb_queue_sorted`),
//! spec §4.5: packets that arrived ahead of a gap, by unwrapped seqno, until the gap fills.
//!
//! Unlike the kernel's, it is bounded in bytes ([`MAX_DEFERRED_BYTES`]) as well as by the
//! receive window, and it holds copies: a packet received in a large receive buffer (a 64 KiB
//! UDP slot) would otherwise keep the whole buffer alive for as long as it waits. Used by the
//! unicast link, by a failed link's receive state during failover, and by a peer's broadcast
//! receive state.

use bytes::Bytes;
use std::collections::BTreeMap;

/// Most bytes one deferred queue holds. Packets that would go beyond are dropped (counted by
/// the owner); they were never acknowledged, so the sender sends them again.
pub const MAX_DEFERRED_BYTES: usize = 4 << 20;

/// Why [`Deferred::insert`] did not take a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// A packet with that seqno is held already.
    Duplicate,
    /// The queue holds [`MAX_DEFERRED_BYTES`].
    Full,
}

/// Packets held for a gap, keyed by unwrapped seqno, bounded in bytes.
#[derive(Debug, Default)]
pub(crate) struct Deferred {
    q: BTreeMap<u64, Bytes>,
    bytes: usize,
}

impl Deferred {
    /// Hold a copy of `pkt` under `key`. A packet already held under `key` is kept, and a
    /// packet that would take the queue beyond [`MAX_DEFERRED_BYTES`] is refused: a packet
    /// once held is never dropped (a gap ACK block may have told the peer we have it).
    pub(crate) fn insert(&mut self, key: u64, pkt: &[u8]) -> Result<(), Refused> {
        if self.q.contains_key(&key) {
            return Err(Refused::Duplicate);
        }
        if self.bytes + pkt.len() > MAX_DEFERRED_BYTES {
            return Err(Refused::Full);
        }
        self.bytes += pkt.len();
        self.q.insert(key, Bytes::copy_from_slice(pkt));
        Ok(())
    }

    /// Take the packet held under `key`.
    pub(crate) fn remove(&mut self, key: u64) -> Option<Bytes> {
        let p = self.q.remove(&key)?;
        self.bytes -= p.len();
        Some(p)
    }

    /// The lowest key held.
    pub(crate) fn first_key(&self) -> Option<u64> {
        self.q.keys().next().copied()
    }

    /// The keys held, in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = u64> + '_ {
        self.q.keys().copied()
    }

    /// Packets held.
    pub(crate) fn len(&self) -> usize {
        self.q.len()
    }

    /// Nothing held?
    pub(crate) fn is_empty(&self) -> bool {
        self.q.is_empty()
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    /// Drop everything.
    pub(crate) fn clear(&mut self) {
        self.q.clear();
        self.bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deferred_insert_copies_and_refuses_beyond_the_byte_bound() {
        let mut d = Deferred::default();
        // A small packet cut from a large buffer is held on its own.
        let big = Bytes::from(vec![7u8; 64 * 1024]);
        d.insert(1, &big[..100]).unwrap();
        assert_eq!(d.bytes(), 100);
        drop(big);
        assert_eq!(d.remove(1).map(|p| p.len()), Some(100));
        let pkt = vec![0u8; 8200];
        let fit = MAX_DEFERRED_BYTES / pkt.len();
        for k in 0..fit as u64 {
            d.insert(k, &pkt).unwrap();
        }
        assert_eq!(d.insert(fit as u64, &pkt), Err(Refused::Full));
        assert_eq!(d.insert(0, &pkt), Err(Refused::Duplicate));
        assert!(d.bytes() <= MAX_DEFERRED_BYTES);
        assert_eq!(d.len(), fit);
        assert_eq!(d.first_key(), Some(0));
        d.clear();
        assert!(d.is_empty() && d.bytes() == 0);
    }
}
