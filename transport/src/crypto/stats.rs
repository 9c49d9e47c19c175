//! Crypto counters (kernel `crypto.c: hstats[]`, printed by the `max_tfms` statistics dump),
//! spec tipc-crypto.md §15.4 "Counters" and §15.9. Unlike the kernel, every drop reason has
//! its own counter.

use super::error::CryptoDrop;

/// Counters of one crypto object: the whole node, or one peer's receive side.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CryptoStats {
    /// Envelopes sealed, clones included (kernel TX `ok`).
    pub tx_ok: u64,
    /// Packets sent in clear because no TX key exists.
    pub tx_clear: u64,
    /// Probe clones sealed with the pending key.
    pub tx_probes: u64,
    /// Grace clones sealed with the master key.
    pub tx_grace: u64,
    /// Envelopes decrypted and accepted (kernel RX `ok`).
    pub rx_ok: u64,
    /// Plaintext packets accepted.
    pub rx_clear: u64,
    /// Key activations, TX or RX (kernel `switches`).
    pub switches: u64,
    /// KEY_DISTR messages queued for sending.
    pub keys_sent: u64,
    /// KEY_DISTR messages accepted.
    pub keys_received: u64,
    /// KEY_DISTR messages refused (any [`super::KeyDistrError`]).
    pub keys_refused: u64,
    /// Keys revoked because their sequence number wrapped.
    pub revoked: u64,
    /// Replay windows reset because the peer went down.
    pub replay_resets: u64,
    drops: [u64; CryptoDrop::ALL.len()],
}

impl CryptoStats {
    /// Packets dropped for `reason`.
    pub fn dropped(&self, reason: CryptoDrop) -> u64 {
        self.drops.get(reason.index()).copied().unwrap_or(0)
    }

    /// Packets dropped for any reason except [`CryptoDrop::NotEnvelope`] (never counted).
    pub fn dropped_total(&self) -> u64 {
        self.drops.iter().sum()
    }

    /// Count one drop.
    pub(crate) fn drop_one(&mut self, reason: CryptoDrop) {
        if reason == CryptoDrop::NotEnvelope {
            return;
        }
        if let Some(c) = self.drops.get_mut(reason.index()) {
            *c += 1;
        }
    }
}
