//! Key slots and their states (kernel `crypto.c: struct tipc_key, tipc_crypto_key_attach,
//! tipc_crypto_key_try_align, key_next`), spec tipc-crypto.md §15.4.
//!
//! A [`KeySet`] holds the session-key slots 1..=3 of a TX crypto (own keys) or of one peer's RX
//! crypto, and records which slot is pending, active and passive (0 = none). The master key
//! (slot 0) lives outside, as in the kernel.

/// Highest session-key slot (`KEY_MAX`).
pub const KEY_MAX: u8 = 3;

/// The slot after `k`: 1 → 2 → 3 → 1 (`key_next`).
pub fn key_next(k: u8) -> u8 {
    (k % KEY_MAX) + 1
}

/// Which slots are pending, active and passive (0 = none).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct KeyState {
    /// A new key not yet in use by everyone.
    pub pending: u8,
    /// The key in use.
    pub active: u8,
    /// The previous key, still accepted for a while (RX).
    pub passive: u8,
}

impl KeyState {
    /// Is `slot` (1..=3) one of the three?
    pub fn holds(&self, slot: u8) -> bool {
        slot != 0 && (slot == self.pending || slot == self.active || slot == self.passive)
    }
}

/// Session-key slots 1..=3 with their state.
#[derive(Debug)]
pub struct KeySet<K> {
    slots: [Option<K>; 3],
    state: KeyState,
}

impl<K> Default for KeySet<K> {
    fn default() -> Self {
        KeySet {
            slots: [None, None, None],
            state: KeyState::default(),
        }
    }
}

impl<K> KeySet<K> {
    /// The current state.
    pub fn state(&self) -> KeyState {
        self.state
    }

    /// Replace the state (the kernel's `tipc_crypto_key_set_state`). Slots no state refers to
    /// keep their key until [`KeySet::remove`].
    pub fn set_state(&mut self, s: KeyState) {
        self.state = s;
    }

    /// The key in `slot` (1..=3).
    pub fn get(&self, slot: u8) -> Option<&K> {
        self.slots.get(usize::from(slot).checked_sub(1)?)?.as_ref()
    }

    /// The key in `slot` (1..=3), mutably.
    pub fn get_mut(&mut self, slot: u8) -> Option<&mut K> {
        self.slots
            .get_mut(usize::from(slot).checked_sub(1)?)?
            .as_mut()
    }

    /// Take the key out of `slot` and clear that slot from the state.
    pub fn remove(&mut self, slot: u8) -> Option<K> {
        let k = self
            .slots
            .get_mut(usize::from(slot).checked_sub(1)?)?
            .take();
        for s in [
            &mut self.state.pending,
            &mut self.state.active,
            &mut self.state.passive,
        ] {
            if *s == slot {
                *s = 0;
            }
        }
        k
    }

    /// Drop every key.
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Does any slot hold a key?
    pub fn is_empty(&self) -> bool {
        self.slots.iter().all(Option::is_none)
    }

    /// Slots holding a key, with the key.
    pub fn iter(&self) -> impl Iterator<Item = (u8, &K)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, k)| Some((i as u8 + 1, k.as_ref()?)))
    }

    /// Attach `key` (the kernel's `tipc_crypto_key_attach` for a session key). `pos` is a
    /// wanted slot (0 = none); `pending_in_use` says whether the current pending key has users.
    /// Returns the slot used, or the key back when the set is busy (`-EBUSY`): active and passive
    /// both set, or a pending key in use.
    pub fn attach(&mut self, key: K, pos: u8, pending_in_use: bool) -> Result<u8, K> {
        let mut s = self.state;
        if s.active != 0 && s.passive != 0 {
            return Err(key);
        }
        let slot = if s.pending != 0 {
            if pending_in_use {
                return Err(key);
            }
            // Replace the unused pending key; it is aligned when a packet needs it.
            s.pending
        } else if pos != 0 && pos <= KEY_MAX && s.active != 0 && pos != key_next(s.active) {
            s.passive = pos;
            pos
        } else if pos != 0 && pos <= KEY_MAX && s.active == 0 && s.passive == 0 {
            s.pending = pos;
            pos
        } else {
            s.pending = key_next(if s.active != 0 { s.active } else { s.passive });
            s.pending
        };
        self.slots[usize::from(slot) - 1] = Some(key);
        self.state = s;
        Ok(slot)
    }

    /// Move an unused pending key (and the passive key with it) so that the pending key sits in
    /// `new_pending` (`tipc_crypto_key_try_align`). True if the pending key is now there.
    pub fn try_align(&mut self, new_pending: u8, pending_in_use: bool) -> bool {
        let s = self.state;
        if !(1..=KEY_MAX).contains(&new_pending) {
            return false;
        }
        if s.pending == new_pending {
            return true;
        }
        if s.active != 0 || s.pending == 0 || pending_in_use {
            return false;
        }
        let pend = self.slots[usize::from(s.pending) - 1].take();
        let mut new_passive = 0;
        let mut pass = None;
        if s.passive != 0 {
            pass = self.slots[usize::from(s.passive) - 1].take();
            let x = (i16::from(s.passive) - i16::from(s.pending) + i16::from(new_pending))
                % i16::from(KEY_MAX);
            new_passive = if x <= 0 { x + i16::from(KEY_MAX) } else { x } as u8;
        }
        // A key in the target slots that no state names is dropped, as the kernel overwrites.
        self.slots = [None, None, None];
        self.slots[usize::from(new_pending) - 1] = pend;
        if new_passive != 0 {
            self.slots[usize::from(new_passive) - 1] = pass;
        }
        self.state = KeyState {
            pending: new_pending,
            active: 0,
            passive: new_passive,
        };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_next_cycles_one_to_three() {
        assert_eq!(
            [key_next(1), key_next(2), key_next(3), key_next(0)],
            [2, 3, 1, 1]
        );
    }

    #[test]
    fn key_set_first_key_lands_pending_in_slot_one() {
        let mut k = KeySet::default();
        assert_eq!(k.attach("a", 0, false), Ok(1));
        assert_eq!(k.state().pending, 1);
        // An unused pending key is replaced in place.
        assert_eq!(k.attach("b", 0, false), Ok(1));
        assert_eq!(k.get(1), Some(&"b"));
        // A pending key in use: busy.
        assert_eq!(k.attach("c", 0, true), Err("c"));
    }

    #[test]
    fn key_set_next_slot_follows_active() {
        let mut k = KeySet::default();
        k.attach("a", 0, false).unwrap();
        k.set_state(KeyState {
            pending: 0,
            active: 1,
            passive: 0,
        });
        assert_eq!(k.attach("b", 0, false), Ok(2));
        assert_eq!(k.state().pending, 2);
        k.set_state(KeyState {
            pending: 0,
            active: 2,
            passive: 1,
        });
        assert_eq!(k.attach("c", 0, false), Err("c"));
    }

    #[test]
    fn key_set_attach_at_position_when_empty() {
        let mut k = KeySet::default();
        assert_eq!(k.attach("a", 3, false), Ok(3));
        assert_eq!(k.state().pending, 3);
    }

    #[test]
    fn key_set_align_moves_pending_and_passive() {
        let mut k = KeySet::default();
        k.attach("p", 0, false).unwrap(); // pending 1
        k.slots[1] = Some("old");
        k.set_state(KeyState {
            pending: 1,
            active: 0,
            passive: 2,
        });
        assert!(k.try_align(3, false));
        assert_eq!(k.state().pending, 3);
        assert_eq!(k.get(3), Some(&"p"));
        // passive moves by the same offset: 2 - 1 + 3 = 4 -> 1.
        assert_eq!(k.state().passive, 1);
        assert_eq!(k.get(1), Some(&"old"));
        assert_eq!(k.get(2), None);
    }

    #[test]
    fn key_set_align_refused_with_active_key() {
        let mut k = KeySet::default();
        k.attach("a", 0, false).unwrap();
        k.set_state(KeyState {
            pending: 0,
            active: 1,
            passive: 0,
        });
        k.attach("b", 0, false).unwrap();
        assert!(!k.try_align(3, false));
    }
}
