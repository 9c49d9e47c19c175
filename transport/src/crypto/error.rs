//! Error and drop-reason types of the crypto core (kernel `crypto.c` return codes: `-ENOKEY`,
//! `-EBADMSG`, `-EKEYREJECTED`, `-EBUSY`), spec tipc-crypto.md §15.

/// Why an incoming or outgoing packet was dropped by the crypto layer. Every variant has its own
/// counter in [`super::CryptoStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoDrop {
    /// Not an envelope (version field is not 7); only returned by `decrypt`, not counted there.
    #[error("not an encrypted envelope")]
    NotEnvelope,
    /// The encryption header is truncated, or no ciphertext byte follows it (§15.2 checks 1-2).
    #[error("bad encryption header")]
    BadHeader,
    /// A short-form envelope from an address that is not a known peer (§15.2 check 3).
    #[error("envelope from an unknown node")]
    UnknownPeer,
    /// No key for the envelope's `tx_key` (kernel `-ENOKEY`, counter `nokeys`).
    #[error("no key to decrypt with")]
    NoKey,
    /// The AES-GCM tag did not verify (kernel `-EBADMSG`, counter `badmsgs`).
    #[error("decryption failed (bad tag)")]
    DecryptFailed,
    /// The sequence number was already accepted under this key (not a kernel check).
    #[error("replayed sequence number")]
    Replayed,
    /// The sequence number is older than the replay window (not a kernel check).
    #[error("sequence number below the replay window")]
    TooOld,
    /// The decrypted packet failed TIPC header validation ("Packet dropped after decryption!").
    #[error("decrypted packet is not a valid TIPC message")]
    BadInner,
    /// The decrypted packet contradicts its envelope (sender address, identity or user, §15.8).
    #[error("envelope and inner packet disagree")]
    Inconsistent,
    /// A plaintext packet from a peer while we hold keys and the policy refuses plaintext.
    #[error("plaintext refused")]
    PlaintextRefused,
    /// Outgoing: no usable TX key for this packet (kernel `-ENOKEY` on TX).
    #[error("no TX key for this packet")]
    NoTxKey,
    /// Outgoing: the key's sequence number wrapped, the key was revoked (kernel "key is revoked").
    #[error("TX key revoked (sequence number exhausted)")]
    KeyRevoked,
    /// Outgoing: the packet to encrypt is not a valid TIPC message.
    #[error("outgoing packet is not a valid TIPC message")]
    BadOutgoing,
}

impl CryptoDrop {
    /// Every reason, in counter order.
    pub const ALL: [CryptoDrop; 13] = [
        CryptoDrop::NotEnvelope,
        CryptoDrop::BadHeader,
        CryptoDrop::UnknownPeer,
        CryptoDrop::NoKey,
        CryptoDrop::DecryptFailed,
        CryptoDrop::Replayed,
        CryptoDrop::TooOld,
        CryptoDrop::BadInner,
        CryptoDrop::Inconsistent,
        CryptoDrop::PlaintextRefused,
        CryptoDrop::NoTxKey,
        CryptoDrop::KeyRevoked,
        CryptoDrop::BadOutgoing,
    ];

    /// Index of this reason's counter (its position in [`CryptoDrop::ALL`]).
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Why key material or a key setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Key material (AES key plus 4-byte salt) must be 20, 28 or 36 bytes (`EKEYREJECTED`).
    #[error("incorrect key length {0} (20, 28 or 36 octets?)")]
    BadLength(usize),
    /// The algorithm name is not `gcm(aes)` (`ENOTSUPP`).
    #[error("algorithm not supported: {0:?}")]
    BadAlgorithm(String),
    /// An empty key, or an argument list `tipc node set key` would not accept.
    #[error("bad key setting: {0}")]
    BadSyntax(&'static str),
    /// A `nodeid` that is neither a 16-character identity nor up to 32 hex digits.
    #[error("bad node identity {0:?}")]
    BadNodeId(String),
}

/// Why a key could not be installed (`tipc node set key` errors).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CryptoError {
    /// The key set already holds an active and a passive key, or a pending key in use
    /// (kernel `-EBUSY`).
    #[error("no free key slot (active and passive in use, or pending key in use)")]
    Busy,
    /// The key material was refused.
    #[error(transparent)]
    Key(#[from] KeyError),
}

/// Why a MSG_CRYPTO KEY_DISTR message was refused (kernel `tipc_crypto_key_rcv` checks, made
/// stricter as spec §15.8 item 5 asks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyDistrError {
    /// The message arrived in clear (CVE fix 271351d255b0: only decrypted MSG_CRYPTO counts).
    #[error("plaintext MSG_CRYPTO")]
    Plaintext,
    /// The sender is not a known peer.
    #[error("KEY_DISTR from an unknown node")]
    UnknownPeer,
    /// Not a valid TIPC header, or not user 14 type 0 with a 40-byte header.
    #[error("not a KEY_DISTR message")]
    NotKeyDistr,
    /// `size`, `keylen` and the buffer length disagree (the CVE-2021-43267 checks).
    #[error("bad KEY_DISTR length")]
    BadLength,
    /// `keylen` is not 20, 28 or 36.
    #[error("bad key length in KEY_DISTR")]
    BadKeyLength,
    /// `alg_name` is not `gcm(aes)` followed by NULs.
    #[error("unsupported algorithm in KEY_DISTR")]
    BadAlgorithm,
    /// The mode is neither 1 (cluster) nor 2 (per node).
    #[error("bad key mode in KEY_DISTR")]
    BadMode,
    /// Same `key_gen` as the last key received from this peer, or a received key still waits
    /// to be attached (kernel "key existed").
    #[error("key already received")]
    Duplicate,
    /// Key exchange is disabled by configuration (`key_exchange_enabled = 0`).
    #[error("key exchange disabled")]
    Disabled,
}
