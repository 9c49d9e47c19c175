//! A sliding replay window over the envelope's 64-bit sequence number. Not in the kernel
//! (spec tipc-crypto.md §15.3 "Replay window: none", §15.8): one window is kept per peer and
//! key slot, checked only after the tag verified, and reset when the key changes or the peer
//! goes down.
//!
//! The kernel draws one counter per TX key for all destinations and message kinds, so a peer
//! sees large gaps, and its asynchronous crypto and clones reorder packets a little. Gaps only
//! move the window forward; reordering is tolerated within [`REPLAY_WINDOW`] sequence numbers
//! (not packets). The size is generous because the distance between two packets to one peer,
//! counted in seqnos, grows with the sender's traffic to all its other peers.

use super::error::CryptoDrop;

/// Window size in sequence numbers.
pub const REPLAY_WINDOW: u64 = 4096;

const WORDS: usize = (REPLAY_WINDOW / 64) as usize;

/// Accepted sequence numbers near the highest one seen (RFC 6479-style ring of bits).
#[derive(Clone, PartialEq, Eq)]
pub struct ReplayWindow {
    /// Highest accepted sequence number; meaningful once `started`.
    top: u64,
    started: bool,
    bits: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for ReplayWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplayWindow")
            .field("top", &self.top)
            .field("started", &self.started)
            .finish_non_exhaustive()
    }
}

impl ReplayWindow {
    /// An empty window: the first sequence number is accepted whatever its value.
    pub const fn new() -> Self {
        ReplayWindow {
            top: 0,
            started: false,
            bits: [0; WORDS],
        }
    }

    /// Forget everything (new key, or the peer restarted its counter).
    pub fn reset(&mut self) {
        *self = Self::new();
    }

    /// Highest accepted sequence number, if any.
    pub fn top(&self) -> Option<u64> {
        self.started.then_some(self.top)
    }

    fn slot(seq: u64) -> (usize, u64) {
        let i = seq % REPLAY_WINDOW;
        ((i / 64) as usize, 1u64 << (i % 64))
    }

    /// Would `seq` be accepted? [`CryptoDrop::Replayed`] if it was accepted before,
    /// [`CryptoDrop::TooOld`] if it lies `REPLAY_WINDOW` or more below the highest accepted one.
    /// Does not record it: call [`ReplayWindow::commit`] once the packet is fully accepted.
    pub fn check(&self, seq: u64) -> Result<(), CryptoDrop> {
        if !self.started || seq > self.top {
            return Ok(());
        }
        if self.top - seq >= REPLAY_WINDOW {
            return Err(CryptoDrop::TooOld);
        }
        let (w, m) = Self::slot(seq);
        if self.bits[w] & m != 0 {
            Err(CryptoDrop::Replayed)
        } else {
            Ok(())
        }
    }

    /// Record `seq` as accepted (after a successful [`ReplayWindow::check`]), sliding the window
    /// forward when `seq` is the new highest.
    pub fn commit(&mut self, seq: u64) {
        if !self.started {
            self.started = true;
            self.top = seq;
            self.bits = [0; WORDS];
        } else if seq > self.top {
            let d = seq - self.top;
            if d >= REPLAY_WINDOW {
                self.bits = [0; WORDS];
            } else {
                // Clear the bits of top+1..=seq: whole words when aligned, else bit by bit.
                let mut s = self.top + 1;
                while s <= seq {
                    let (w, m) = Self::slot(s);
                    if s.is_multiple_of(64) && seq - s >= 63 {
                        self.bits[w] = 0;
                        s += 64;
                    } else {
                        self.bits[w] &= !m;
                        s += 1;
                    }
                }
            }
            self.top = seq;
        } else if self.top - seq >= REPLAY_WINDOW {
            return;
        }
        let (w, m) = Self::slot(seq);
        self.bits[w] |= m;
    }

    /// [`ReplayWindow::check`] then [`ReplayWindow::commit`].
    pub fn accept(&mut self, seq: u64) -> Result<(), CryptoDrop> {
        self.check(seq)?;
        self.commit(seq);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_window_accepts_first_and_rejects_duplicate() {
        let mut w = ReplayWindow::new();
        assert_eq!(w.accept(18), Ok(()));
        assert_eq!(w.accept(18), Err(CryptoDrop::Replayed));
        assert_eq!(w.top(), Some(18));
    }

    #[test]
    fn replay_window_accepts_reordered_within_window() {
        let mut w = ReplayWindow::new();
        w.accept(100).unwrap();
        w.accept(90).unwrap();
        w.accept(101).unwrap();
        w.accept(95).unwrap();
        assert_eq!(w.accept(90), Err(CryptoDrop::Replayed));
        assert_eq!(w.accept(95), Err(CryptoDrop::Replayed));
    }

    #[test]
    fn replay_window_rejects_too_old_after_large_gap() {
        let mut w = ReplayWindow::new();
        w.accept(1).unwrap();
        w.accept(1 + REPLAY_WINDOW * 3).unwrap();
        assert_eq!(w.accept(2), Err(CryptoDrop::TooOld));
        assert_eq!(w.accept(REPLAY_WINDOW * 2 + 2), Ok(()));
    }

    #[test]
    fn replay_window_slide_clears_reused_bits() {
        let mut w = ReplayWindow::new();
        w.accept(10).unwrap();
        // Seq 10 + WINDOW maps to the same bit as 10: it must not be taken as a replay.
        w.accept(10 + REPLAY_WINDOW).unwrap();
        w.accept(10 + REPLAY_WINDOW + 64 * 3 + 5).unwrap();
        assert_eq!(w.accept(10 + REPLAY_WINDOW + 64), Ok(()));
    }

    #[test]
    fn replay_window_reset_forgets_history() {
        let mut w = ReplayWindow::new();
        w.accept(1_000_000).unwrap();
        w.reset();
        assert_eq!(w.accept(1), Ok(()));
    }
}
