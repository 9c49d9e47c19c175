//! TIPC encryption, sans-IO (kernel `net/tipc/crypto.c`, `crypto.h`), spec
//! `shared/spec/tipc-crypto.md` §15.
//!
//! Once a node holds a key, every packet a bearer sends is wrapped in an envelope:
//! `ehdr (16 or 28 bytes, clear, authenticated) | AES-GCM ciphertext of the whole TIPC packet,
//! padded to 4 | 16-byte tag`. This module is the core of that, with no I/O and no clock:
//!
//! * [`ehdr`]: the encryption header view and repr (§15.2);
//! * [`aead`]: the AES-GCM construction, IV and associated data (§15.3), on RustCrypto `aes-gcm`;
//! * [`key`]: key material, `tipc node set key` parsing (§15.3, §15.9);
//! * [`slots`]: key slots 1..3 and their pending/active/passive states (§15.4);
//! * [`distr`]: the MSG_CRYPTO KEY_DISTR message, with the CVE-2021-43267 checks (§15.5, §15.8);
//! * [`replay`]: a per-peer, per-key replay window (not in the kernel, §15.8);
//! * [`engine`]: [`Crypto`], the node's TX keys and per-peer RX keys: key choice, key exchange,
//!   rekeying, state timers, and the counters of [`stats`].
//!
//! It is not wired into bearers or links yet. The intended use, as in the kernel:
//! * encrypt every frame just before the bearer sends it ([`Crypto::encrypt`], with the peer's
//!   address for unicast-link packets and `None` for discovery and the broadcast link), at
//!   every (re)transmission: an envelope is never cached, so each copy gets a new sequence
//!   number;
//! * on receive, before TIPC header validation, [`Crypto::receive`]; a MSG_CRYPTO delivered by a
//!   link goes to [`Crypto::handle_key_distr`] with the "arrived decrypted" flag carried along;
//! * build inner packets no larger than [`max_inner_len`] of the bearer MTU;
//! * call [`Crypto::add_peer`] / [`Crypto::peer_down`] / [`Crypto::remove_peer`] from node
//!   events, drive [`Crypto::handle_timeout`], and send the KEY_DISTR messages of
//!   [`CryptoEvent::SendKey`] on the named link.

pub mod aead;
pub mod distr;
pub mod ehdr;
pub mod engine;
pub mod error;
pub mod key;
pub mod replay;
pub mod slots;
pub mod stats;

pub use aead::{envelope_len, Aead, IV_SIZE};
pub use distr::{KeyDistrRepr, KEY_DISTR_MSG};
pub use ehdr::{
    is_envelope, Ehdr, EhdrOrigin, EhdrRepr, EHDR_CFG_SIZE, EHDR_SIZE, EMSG_OVERHEAD, TAG_SIZE,
};
pub use engine::{
    envelope_overhead, max_inner_len, Crypto, CryptoConfig, CryptoEvent, Decrypted, Received,
    Sealed,
};
pub use error::{CryptoDrop, CryptoError, KeyDistrError, KeyError};
pub use key::{parse_node_id, Key, KeyMode, KeySetting, KeyTarget, Rekeying};
pub use replay::{ReplayWindow, REPLAY_WINDOW};
pub use slots::{KeySet, KeyState};
pub use stats::CryptoStats;
