//! The node's encryption glue (kernel `bearer.c`/`node.c` calls into `crypto.c`): one
//! [`Crypto`] core per node, shared by every bearer's send path and receive actor, the peer
//! actors (peer lifecycle, key distributions a link delivers) and the crypto driver
//! (`crate::actor::crypto`: timers, KEY_DISTR messages to send).
//!
//! * Sending: every frame a bearer sends is sealed just before it goes out
//!   ([`NodeCrypto::seal`], called by the send path), retransmissions included: an envelope
//!   is never cached, each copy gets its own sequence number (tipc-crypto.md §15.6).
//! * Receiving: frames are opened before the TIPC header is classified
//!   ([`NodeCrypto::open`], called by the bearer actor). What the core refuses (bad tag,
//!   replay, no key, plaintext on a keyed node) is counted there and dropped.
//!
//! Until a key is set both are one atomic load: an unkeyed node sends and receives in clear
//! without taking the lock (only a received envelope, which an unkeyed node cannot open, goes
//! to the core, to be counted).

use bytes::{Bytes, BytesMut};
use rand_core::{RngCore, SeedableRng};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tipc_transport::crypto::{
    is_envelope, Crypto, CryptoConfig, CryptoDrop, CryptoError, CryptoEvent, KeySetting, Received,
};
use tipc_transport::media::{RxFrame, TxFrame};
use tipc_transport::{MediaAddr, NodeAddr, NodeId};
use tokio::sync::Notify;

/// Least time between two log lines about dropped envelopes.
const WARN_INTERVAL: Duration = Duration::from_secs(10);

struct Inner {
    core: Crypto,
    /// When a drop was last logged.
    warned: Option<Instant>,
}

/// The node's crypto (see the module docs).
pub struct NodeCrypto {
    inner: Mutex<Inner>,
    /// The TX side holds a key: frames are sealed.
    sealing: AtomicBool,
    /// Plaintext is refused (but discovery): every received frame goes to the core.
    refusing: AtomicBool,
    /// Wakes the driver: keys changed or events are waiting.
    wake: Notify,
}

impl std::fmt::Debug for NodeCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCrypto")
            .field("sealing", &self.sealing.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl NodeCrypto {
    /// A node's crypto with no key. Its random numbers (initial sequence numbers, key
    /// generations, rekeying keys) come from the operating system.
    pub(crate) fn new(own_addr: NodeAddr, own_id: NodeId) -> NodeCrypto {
        let mut seed = [0u8; 32];
        if std::fs::File::open("/dev/urandom")
            .and_then(|mut f| std::io::Read::read_exact(&mut f, &mut seed))
            .is_err()
        {
            // Without the OS's randomness, keys made by rekeying would be predictable: mix
            // in what varies at least (time and process).
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            seed[..16].copy_from_slice(&t.to_le_bytes());
            seed[16..20].copy_from_slice(&std::process::id().to_le_bytes());
            tracing::warn!("no /dev/urandom: crypto random numbers are weak");
        }
        let rng = rand_chacha::ChaCha20Rng::from_seed(seed);
        let mut cfg = CryptoConfig::new(own_addr, own_id);
        // Sequence numbers that rise across restarts (a peer's replay window may still hold
        // the previous instance's).
        cfg.started_us = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(0));
        NodeCrypto::with_rng(cfg, rng)
    }

    /// A node's crypto with no key, configured by `cfg`, its random numbers (initial sequence
    /// numbers, key generations, rekeying keys) drawn from `rng`: the node uses the operating
    /// system's randomness, the deterministic simulation a seeded RNG.
    pub fn with_rng(cfg: CryptoConfig, rng: impl RngCore + Send + 'static) -> NodeCrypto {
        NodeCrypto {
            inner: Mutex::new(Inner {
                core: Crypto::new(cfg, rng),
                warned: None,
            }),
            sealing: AtomicBool::new(false),
            refusing: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publish the core's state to the fast paths.
    fn publish(&self, c: &Crypto) {
        self.sealing.store(c.is_enabled(), Ordering::Release);
        self.refusing
            .store(c.requires_envelope(), Ordering::Release);
    }

    /// Run `f` on the core (key commands, peer events, timers), then publish its state and
    /// wake the driver, which sends what `f` queued and re-arms the timer.
    pub fn with<R>(&self, f: impl FnOnce(&mut Crypto) -> R) -> R {
        let r = {
            let mut g = self.lock();
            let r = f(&mut g.core);
            self.publish(&g.core);
            r
        };
        self.wake.notify_one();
        r
    }

    /// [`NodeCrypto::with`] without waking the driver (the driver's own calls).
    pub(crate) fn with_quiet<R>(&self, f: impl FnOnce(&mut Crypto) -> R) -> R {
        let mut g = self.lock();
        let r = f(&mut g.core);
        self.publish(&g.core);
        r
    }

    /// Install a key as `tipc node set key` does: the key (if any) goes to its target, then
    /// the rekeying change (if any) applies. Returns the slot the key landed in (0: master,
    /// or a per-node key of a peer not known yet, kept until it is discovered).
    pub fn set_key(&self, now: Instant, s: KeySetting) -> Result<u8, CryptoError> {
        self.with(|c| {
            let slot = match s.key {
                Some(k) => c.set_key(now, k, s.target)?,
                None => 0,
            };
            if let Some(r) = s.rekeying {
                c.set_rekeying(now, r);
            }
            Ok(slot)
        })
    }

    /// One round of the crypto driver (kernel `tipc_crypto_timeout` and the work items):
    /// run the timers due at `now`, then hand back when to run again (`None`: nothing
    /// scheduled) and the events waiting ([`CryptoEvent::SendKey`]: KEY_DISTR messages to
    /// send on the named unicast link, or on the broadcast link). The driver task and the
    /// simulation call it; calling it before a deadline is harmless.
    pub fn drive(&self, now: Instant) -> (Option<Instant>, Vec<CryptoEvent>) {
        self.with_quiet(|core| {
            core.handle_timeout(now);
            let deadline = core.poll_timeout();
            (deadline, std::iter::from_fn(|| core.poll_event()).collect())
        })
    }

    /// When [`NodeCrypto::drive`] must next run (`None`: nothing scheduled).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.lock().core.poll_timeout()
    }

    /// Does the node seal what it sends?
    pub fn is_sealing(&self) -> bool {
        self.sealing.load(Ordering::Acquire)
    }

    /// Wait for [`NodeCrypto::with`] to have run (for the driver).
    pub(crate) async fn changed(&self) {
        self.wake.notified().await
    }

    /// Seal `frames` for sending (kernel `tipc_crypto_xmit`). `node` is the peer of the
    /// unicast link they belong to, `None` for discovery and the broadcast link. Frames the
    /// core refuses are dropped (counted by the core, [`CryptoDrop`]); the kernel's probe and
    /// grace copies go out just before their frame.
    pub fn seal(&self, now: Instant, frames: Vec<TxFrame>, node: Option<NodeAddr>) -> Vec<TxFrame> {
        if !self.sealing.load(Ordering::Acquire) {
            return frames;
        }
        let mut out = Vec::with_capacity(frames.len());
        let mut g = self.lock();
        for f in frames {
            let inner = if f.tail.is_empty() {
                f.data
            } else {
                let mut b = BytesMut::with_capacity(f.data.len() + f.tail.len());
                b.extend_from_slice(&f.data);
                b.extend_from_slice(&f.tail);
                b.freeze()
            };
            match g.core.encrypt(now, inner, node) {
                Ok(s) => out.extend(s.frames().map(|b| TxFrame::new(f.dest, b.clone()))),
                Err(e) => tracing::debug!(error = %e, "frame not sealed, dropped"),
            }
        }
        let publish = !g.core.is_enabled();
        if publish {
            // A key was revoked and none is left.
            self.publish(&g.core);
        }
        out
    }

    /// Open received `frames` in place (kernel `tipc_crypto_rcv`, before `tipc_rcv` looks at
    /// the header): envelopes are decrypted, plaintext passes unless the node refuses it;
    /// whatever the core refuses is removed (counted by the core).
    pub fn open(&self, now: Instant, frames: &mut Vec<RxFrame>) {
        if !self.refusing.load(Ordering::Acquire) && !frames.iter().any(|f| is_envelope(&f.data)) {
            return;
        }
        let mut g = self.lock();
        let mut first_drop: Option<(CryptoDrop, MediaAddr)> = None;
        frames.retain_mut(|f| match g.core.receive(now, f.data.clone()) {
            Ok(Received::Clear(b)) => {
                f.data = b;
                true
            }
            Ok(Received::Decrypted(d)) => {
                f.data = d.packet;
                true
            }
            Err(e) => {
                if first_drop.is_none() && e != CryptoDrop::PlaintextRefused {
                    first_drop = Some((e, f.src));
                }
                false
            }
        });
        if let Some((e, src)) = first_drop {
            if g.warned.is_none_or(|t| now >= t + WARN_INTERVAL) {
                g.warned = Some(now);
                tracing::warn!(from = %src, reason = %e, "encrypted frame dropped");
            }
        }
    }

    /// A MSG_CRYPTO message a link from `from` delivered: under a key it arrived encrypted
    /// (the node refuses link traffic in clear), otherwise it is refused as plaintext.
    pub fn key_distr(&self, now: Instant, from: NodeAddr, msg: &Bytes) {
        let r = self.with(|c| {
            let decrypted = c.requires_envelope();
            c.handle_key_distr(now, from, msg, decrypted)
        });
        match r {
            Ok(()) => tracing::info!(peer = %format!("{from:08x}"), "key received"),
            Err(e) => tracing::debug!(peer = %format!("{from:08x}"), error = %e, "key refused"),
        }
    }
}
