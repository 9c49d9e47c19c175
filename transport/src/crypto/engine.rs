//! The node's crypto state: own TX keys, one RX key set per peer, key exchange, rekeying and the
//! replay windows (kernel `crypto.c: tipc_crypto_xmit, tipc_crypto_rcv, tipc_crypto_timeout,
//! tipc_crypto_key_synch, tipc_crypto_key_rcv, tipc_crypto_work_tx/rx`), spec tipc-crypto.md
//! §15.4–§15.6.
//!
//! Sans-IO like the other cores: the caller passes `now`, feeds packets to [`Crypto::encrypt`]
//! (just before the bearer sends) and [`Crypto::receive`]/[`Crypto::decrypt`] (just after the
//! bearer receives, before the TIPC header is validated), calls [`Crypto::handle_timeout`] at
//! [`Crypto::poll_timeout`], and drains [`Crypto::poll_event`] (KEY_DISTR messages to send on a
//! link, activation notices). Randomness comes from the RNG given to [`Crypto::new`].

use super::aead::Aead;
use super::distr::KeyDistrRepr;
use super::ehdr::{
    Ehdr, EhdrOrigin, EhdrRepr, EHDR_CFG_SIZE, EHDR_SIZE, EHDR_USER_CONFIG, EHDR_USER_STATE,
    EMSG_OVERHEAD,
};
use super::error::{CryptoDrop, CryptoError, KeyDistrError};
use super::key::{Key, KeyMode, KeyTarget, Rekeying};
use super::replay::ReplayWindow;
use super::slots::{key_next, KeySet, KeyState};
use super::stats::CryptoStats;
use crate::addr::{NodeAddr, NodeId, NODE_ID_LEN};
use crate::wire::{user, Header, BASIC_H_SIZE};
use bytes::Bytes;
use rand_core::RngCore;
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// Period of the crypto state machine (the kernel runs it from the node timer, 375 ms with
/// links).
pub const CRYPTO_TICK: Duration = Duration::from_millis(375);
/// TX pending → active needs the user counts stable this long (`TIPC_TX_LASTING_TIME`).
pub const TX_LASTING_TIME: Duration = Duration::from_secs(10);
/// Grace period after a peer's N=1 (`TIPC_TX_GRACE_PERIOD`).
pub const TX_GRACE_PERIOD: Duration = Duration::from_secs(5);
/// RX active key without a successful decryption this long goes back to pending
/// (`TIPC_RX_ACTIVE_LIM`).
pub const RX_ACTIVE_LIM: Duration = Duration::from_secs(3);
/// RX passive key lifetime after a switch (`TIPC_RX_PASSIVE_LIM`).
pub const RX_PASSIVE_LIM: Duration = Duration::from_secs(15);
/// Default rekeying interval (`TIPC_REKEYING_INTV_DEF`, one day).
pub const REKEYING_INTV_DEF: Duration = Duration::from_secs(1440 * 60);
/// Delay between retries of a busy key attach, and the key-distribution cooldown per peer.
pub const KEY_RETRY: Duration = Duration::from_secs(5);
/// Retired replay windows kept per peer.
const RETIRED_MAX: usize = 3;
/// Net failures after which a pending or passive RX key is dropped.
const RX_FAIL_LIMIT: i32 = -10;

/// Largest inner packet that fits `mtu` once encrypted with the short header
/// (`mtu - 32`, rounded down to 4). Discovery (76 bytes) costs 28 + 76 + 16.
pub fn max_inner_len(mtu: usize) -> usize {
    mtu.saturating_sub(EMSG_OVERHEAD) & !3
}

/// Settings of a node's crypto.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CryptoConfig {
    /// Own node address (IV of per-node keys, inner destnode checks).
    pub own_addr: NodeAddr,
    /// Own node identity (long-form headers, `nodeid` keys).
    pub own_id: NodeId,
    /// Automatic rekeying interval; `None` disables it (`tipc node set key rekeying 0`).
    pub rekeying: Option<Duration>,
    /// Send and accept KEY_DISTR messages (`net.tipc.key_exchange_enabled`).
    pub key_exchange: bool,
    /// Drop envelopes whose sequence number was seen (or is too old) under the same key.
    pub replay_protection: bool,
    /// Accept plaintext packets from peers even while our TX crypto holds keys (the kernel
    /// does). With `false`, plaintext is accepted only while we have no TX key.
    pub accept_plaintext: bool,
    /// Start each new TX key's sequence number away from 0, so a restart that re-installs the
    /// same key does not reuse nonces (§15.3): from the clock ([`CryptoConfig::started_us`]) when
    /// it is known, else at a random value below 2^62. `false` starts at 0 as the kernel does
    /// (first packet seqno 1).
    pub random_initial_seqno: bool,
    /// Wall-clock time the node started, in microseconds since the Unix epoch, given by the
    /// caller (the core reads no clock); 0 when unknown. With it, a new TX key's sequence
    /// numbers start at `started_us << 10` plus 10 random bits, so they keep rising across
    /// restarts (the previous instance would have had to send over 1,024 packets per
    /// microsecond to get there first). A peer's replay window, which may still hold the
    /// previous instance's numbers when the node comes back before the peer saw it go down,
    /// then accepts the new instance at once; a random start would be refused as too old half
    /// the time, until that peer declared the node down (never, when their link was down
    /// already).
    pub started_us: u64,
}

/// Bits of random below the start time in an initial sequence number
/// ([`CryptoConfig::started_us`]).
const SEQNO_CLOCK_SHIFT: u32 = 10;
/// Latest start time used as is (about the year 2112), so that the initial sequence number
/// stays below 2^62, far from the counter's wrap.
const MAX_STARTED_US: u64 = (1 << (62 - SEQNO_CLOCK_SHIFT)) - 1;

impl CryptoConfig {
    /// Defaults for a node: kernel rekeying interval, key exchange on, replay protection on,
    /// plaintext refused once keyed, random initial sequence numbers (`started_us` unknown:
    /// set it to have them rise across restarts).
    pub fn new(own_addr: NodeAddr, own_id: NodeId) -> CryptoConfig {
        CryptoConfig {
            own_addr,
            own_id,
            rekeying: Some(REKEYING_INTV_DEF),
            key_exchange: true,
            replay_protection: true,
            accept_plaintext: false,
            random_initial_seqno: true,
            started_us: 0,
        }
    }
}

/// What [`Crypto::encrypt`] produced: the packet to send, and up to two extra copies the
/// kernel's rules ask for. Send them in the order of [`Sealed::frames`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// The packet: an envelope, or the input unchanged when no TX key exists.
    pub frame: Bytes,
    /// A copy sealed with the pending key (a "probe", §15.4 TX step 2).
    pub probe: Option<Bytes>,
    /// A copy sealed with the master key (a "grace" clone, §15.4 TX step 3).
    pub grace: Option<Bytes>,
    /// Slot of the key that sealed `frame`, `None` when sent in clear.
    pub tx_key: Option<u8>,
}

impl Sealed {
    /// The frames to hand to the bearer, clones first (as the kernel sends them).
    pub fn frames(&self) -> impl Iterator<Item = &Bytes> {
        self.probe
            .iter()
            .chain(self.grace.iter())
            .chain(std::iter::once(&self.frame))
    }
}

/// A decrypted, authenticated and validated packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    /// The inner TIPC v2 packet (`msg_size` bytes: the pad is removed).
    pub packet: Bytes,
    /// The sender, when it is a known peer.
    pub peer: Option<NodeAddr>,
    /// The sender's identity from a long-form header (LINK_CONFIG).
    pub id: Option<NodeId>,
    /// Slot of the key that decrypted it (0 = master).
    pub tx_key: u8,
    /// The envelope's sequence number.
    pub seqno: u64,
}

/// A received packet that may go on to the TIPC receive path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    /// A plaintext packet the policy accepts (it is not authenticated).
    Clear(Bytes),
    /// A decrypted envelope.
    Decrypted(Decrypted),
}

/// Something the node must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CryptoEvent {
    /// Send this MSG_CRYPTO KEY_DISTR message (a plaintext TIPC packet, link fields 0) on the
    /// unicast link to `dest`, or on the broadcast link when `dest` is `None`. It is encrypted
    /// by [`Crypto::encrypt`] like any other packet.
    SendKey {
        /// Destination node, or `None` for the broadcast link.
        dest: Option<NodeAddr>,
        /// The message.
        msg: Bytes,
    },
    /// A TX key became active (kernel "TX: key\[N\] is activated").
    TxKeyActivated {
        /// The slot.
        slot: u8,
    },
    /// A peer's RX key became active (kernel "RX(peer): key\[N\] is activated").
    RxKeyActivated {
        /// The peer.
        peer: NodeAddr,
        /// The slot.
        slot: u8,
    },
    /// A TX key's sequence number wrapped and the key was removed ("key is revoked").
    KeyRevoked {
        /// The slot.
        slot: u8,
    },
}

struct TxKey {
    aead: Aead,
    seqno: u64,
    gen: u16,
}

struct RxKey {
    aead: Aead,
    users: i32,
    window: ReplayWindow,
}

impl RxKey {
    fn new(aead: Aead) -> RxKey {
        RxKey {
            aead,
            users: 0,
            window: ReplayWindow::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Distr {
    Idle,
    Scheduled(Instant),
    Completed(Instant),
}

/// One peer's receive side (the kernel's RX `struct tipc_crypto`).
struct PeerCrypto {
    id: NodeId,
    /// Boxed: a known peer without keys (most of them, on an unkeyed node) costs little.
    keys: KeySet<Box<RxKey>>,
    /// Replay windows of RX keys the state machine removed, with their key (at most
    /// [`RETIRED_MAX`]): a key that comes back (cloned again from our TX cluster key, or
    /// distributed again) keeps its history, so a removal never reopens old envelopes.
    retired: Vec<(Key, Box<ReplayWindow>)>,
    /// Replay window of the master key, made on the first envelope under it (a peer costs
    /// little until then).
    master_window: Option<Box<ReplayWindow>>,
    /// Which of our TX keys the peer reports decrypting with (`peer_rx_active`).
    peer_rx_active: u8,
    /// The peer's M bit.
    key_master: bool,
    /// We lacked a key for its packets: report N=1.
    nokey: bool,
    /// A received key waiting to be attached, and when to retry.
    skey: Option<(Key, KeyMode)>,
    skey_retry: Option<Instant>,
    last_key_gen: Option<u16>,
    distr: Distr,
    /// Last successful decryption (`timer1`) and last state switch (`timer2`).
    timer1: Option<Instant>,
    timer2: Option<Instant>,
    stats: CryptoStats,
}

impl PeerCrypto {
    fn new(id: NodeId) -> PeerCrypto {
        PeerCrypto {
            id,
            keys: KeySet::default(),
            retired: Vec::new(),
            master_window: None,
            peer_rx_active: 0,
            key_master: false,
            nokey: false,
            skey: None,
            skey_retry: None,
            last_key_gen: None,
            distr: Distr::Idle,
            timer1: None,
            timer2: None,
            stats: CryptoStats::default(),
        }
    }

    /// An RX key for `aead`, with the replay history of the same key if it was retired.
    fn rx_key(&mut self, aead: Aead) -> RxKey {
        let mut k = RxKey::new(aead);
        if let Some(i) = self.retired.iter().position(|(key, _)| key == k.aead.key()) {
            k.window = *self.retired.swap_remove(i).1;
        }
        k
    }

    /// Remove the RX key in `slot`, keeping its replay history.
    fn retire(&mut self, slot: u8) {
        if let Some(k) = self.keys.remove(slot) {
            let k = *k;
            if self.retired.len() == RETIRED_MAX {
                self.retired.remove(0);
            }
            self.retired
                .push((k.aead.key().clone(), Box::new(k.window)));
        }
    }

    /// The retired replay history of `key`, if any.
    fn retired_window(&self, key: &Key) -> Option<&ReplayWindow> {
        self.retired
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, w)| &**w)
    }

    fn pending_in_use(&self) -> bool {
        let p = self.keys.state().pending;
        self.keys.get(p).is_some_and(|k| k.users > 0)
    }
}

/// Which key opened an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Opener {
    /// Our TX master key.
    Master,
    /// The peer's RX key in this slot.
    Rx(u8),
    /// Our TX cluster key in this slot (to be cloned into the peer's RX at `tx_key`).
    TxCluster(u8),
    /// A per-node key preset for a node not known yet (discovery only).
    Preset,
}

/// A node's crypto: see the module documentation.
pub struct Crypto {
    cfg: CryptoConfig,
    master: Option<TxKey>,
    tx: KeySet<TxKey>,
    key_gen: u16,
    legacy_user: bool,
    /// When the TX users last changed (`tx->timer1`).
    tx_users_changed: Option<Instant>,
    /// Last N=1 from a peer (`tx->timer2`).
    grace_from: Option<Instant>,
    rekey_at: Option<Instant>,
    peers: HashMap<NodeAddr, PeerCrypto>,
    ids: HashMap<NodeId, NodeAddr>,
    presets: HashMap<NodeId, Key>,
    next_tick: Option<Instant>,
    events: VecDeque<CryptoEvent>,
    stats: CryptoStats,
    rng: Box<dyn RngCore + Send>,
}

impl std::fmt::Debug for Crypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Crypto")
            .field("own_addr", &self.cfg.own_addr)
            .field("master", &self.master.is_some())
            .field("tx", &self.tx.state())
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl Crypto {
    /// A crypto with no key: everything passes in clear until a key is set.
    pub fn new(cfg: CryptoConfig, mut rng: impl RngCore + Send + 'static) -> Crypto {
        let key_gen = rng.next_u32() as u16;
        Crypto {
            cfg,
            master: None,
            tx: KeySet::default(),
            key_gen,
            legacy_user: false,
            tx_users_changed: None,
            grace_from: None,
            rekey_at: None,
            peers: HashMap::new(),
            ids: HashMap::new(),
            presets: HashMap::new(),
            next_tick: None,
            events: VecDeque::new(),
            stats: CryptoStats::default(),
            rng: Box::new(rng),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &CryptoConfig {
        &self.cfg
    }

    /// Change the own address (after an address trial or `node set address`).
    pub fn set_own_addr(&mut self, addr: NodeAddr) {
        self.cfg.own_addr = addr;
    }

    /// Does the TX crypto hold any key (the kernel's `tx->working`)? Then every packet is
    /// encrypted.
    pub fn is_enabled(&self) -> bool {
        self.master.is_some() || !self.tx.is_empty()
    }

    /// Is plaintext refused (except discovery)? True while the TX crypto holds a key and
    /// [`CryptoConfig::accept_plaintext`] is off. Then whatever a link delivers arrived
    /// encrypted: a MSG_CRYPTO it delivers counts as decrypted
    /// ([`Crypto::handle_key_distr`]).
    pub fn requires_envelope(&self) -> bool {
        self.is_enabled() && !self.cfg.accept_plaintext
    }

    /// Own TX slot states (pending, active, passive).
    pub fn tx_state(&self) -> KeyState {
        self.tx.state()
    }

    /// Does the TX crypto hold a master key?
    pub fn has_master_key(&self) -> bool {
        self.master.is_some()
    }

    /// A peer's RX slot states, if the peer is known.
    pub fn rx_state(&self, peer: NodeAddr) -> Option<KeyState> {
        self.peers.get(&peer).map(|p| p.keys.state())
    }

    /// Which of our TX keys the peer last reported using (`rx_key_active` of its D=1 packets).
    pub fn peer_rx_active(&self, peer: NodeAddr) -> Option<u8> {
        self.peers.get(&peer).map(|p| p.peer_rx_active)
    }

    /// Node-wide counters (TX and RX, every peer included).
    pub fn stats(&self) -> &CryptoStats {
        &self.stats
    }

    /// One peer's receive counters.
    pub fn peer_stats(&self, peer: NodeAddr) -> Option<&CryptoStats> {
        self.peers.get(&peer).map(|p| &p.stats)
    }

    /// The next TX sequence number of `slot` minus one (its counter), if the slot holds a key.
    pub fn tx_seqno(&self, slot: u8) -> Option<u64> {
        self.tx_key(slot).map(|k| k.seqno)
    }

    /// Set the counter of TX `slot` (the next packet carries `seqno + 1`): restore a persisted
    /// counter after a restart. False if the slot is empty.
    pub fn set_tx_seqno(&mut self, slot: u8, seqno: u64) -> bool {
        match self.tx_key_mut(slot) {
            Some(k) => {
                k.seqno = seqno;
                true
            }
            None => false,
        }
    }

    fn tx_key(&self, slot: u8) -> Option<&TxKey> {
        if slot == 0 {
            self.master.as_ref()
        } else {
            self.tx.get(slot)
        }
    }

    fn tx_key_mut(&mut self, slot: u8) -> Option<&mut TxKey> {
        if slot == 0 {
            self.master.as_mut()
        } else {
            self.tx.get_mut(slot)
        }
    }

    // ---------------------------------------------------------------------------------------
    // Peers

    /// A peer node is known (discovery created it). Per-node keys preset for its identity are
    /// attached to its RX now.
    pub fn add_peer(&mut self, now: Instant, addr: NodeAddr, id: NodeId) {
        if let Some(old) = self.peers.get(&addr).map(|p| p.id) {
            if old != id {
                self.ids.remove(&old);
            }
        }
        self.ids.insert(id, addr);
        self.peers
            .entry(addr)
            .or_insert_with(|| PeerCrypto::new(id));
        if let Some(key) = self.presets.remove(&id) {
            if let Some(p) = self.peers.get_mut(&addr) {
                p.skey = Some((key, KeyMode::PerNode));
                p.skey_retry = Some(now);
            }
            self.attach_skey(now, addr);
        }
        self.arm_tick(now);
    }

    /// The peer went down (its last link failed): forget its replay history, since a restarted
    /// peer starts its sequence numbers again (the kernel's restart at 1).
    pub fn peer_down(&mut self, addr: NodeAddr) {
        if let Some(p) = self.peers.get_mut(&addr) {
            p.master_window = None;
            p.retired.clear();
            for slot in 1..=3 {
                if let Some(k) = p.keys.get_mut(slot) {
                    k.window.reset();
                }
            }
            p.stats.replay_resets += 1;
            self.stats.replay_resets += 1;
        }
    }

    /// Forget a peer and its keys.
    pub fn remove_peer(&mut self, addr: NodeAddr) {
        if let Some(p) = self.peers.remove(&addr) {
            self.ids.remove(&p.id);
        }
    }

    // ---------------------------------------------------------------------------------------
    // Keys

    /// Install a key as `tipc node set key` does (§15.4 "Where keys come from"). Returns the slot
    /// it landed in (0 = master); for a peer not known yet the key waits for
    /// [`Crypto::add_peer`] and 0 is returned. A non-master TX key is broadcast in a KEY_DISTR
    /// ([`CryptoEvent::SendKey`]) when key exchange is on, and arms rekeying.
    pub fn set_key(
        &mut self,
        now: Instant,
        key: Key,
        target: KeyTarget,
    ) -> Result<u8, CryptoError> {
        let slot = match target {
            KeyTarget::Master => {
                let aead = Aead::new(key, KeyMode::Cluster)?;
                self.key_gen = self.key_gen.wrapping_add(1);
                let seqno = self.initial_seqno();
                self.master = Some(TxKey {
                    aead,
                    seqno,
                    gen: self.key_gen,
                });
                for p in self.peers.values_mut() {
                    p.master_window = None;
                }
                0
            }
            KeyTarget::Cluster => self.attach_tx(now, key, KeyMode::Cluster)?,
            KeyTarget::Node(id) if id == self.cfg.own_id => {
                self.attach_tx(now, key, KeyMode::PerNode)?
            }
            KeyTarget::Node(id) => {
                let Some(&addr) = self.ids.get(&id) else {
                    self.presets.insert(id, key);
                    return Ok(0);
                };
                let aead = Aead::new(key, KeyMode::PerNode)?;
                let p = self.peers.get_mut(&addr).ok_or(CryptoError::Busy)?;
                let in_use = p.pending_in_use();
                let k = Box::new(p.rx_key(aead));
                let slot = p.keys.attach(k, 0, in_use).map_err(|_| CryptoError::Busy)?;
                p.nokey = false;
                self.arm_tick(now);
                return Ok(slot);
            }
        };
        if self.rekey_at.is_none() {
            self.rekey_at = self.cfg.rekeying.filter(|d| !d.is_zero()).map(|d| now + d);
        }
        self.arm_tick(now);
        Ok(slot)
    }

    fn initial_seqno(&mut self) -> u64 {
        if !self.cfg.random_initial_seqno {
            return 0;
        }
        let r = self.rng.next_u64();
        match self.cfg.started_us {
            0 => r >> 2,
            t => {
                (t.min(MAX_STARTED_US) << SEQNO_CLOCK_SHIFT) | (r & ((1 << SEQNO_CLOCK_SHIFT) - 1))
            }
        }
    }

    fn tx_users(&self, slot: u8) -> usize {
        if slot == 0 {
            return 0;
        }
        self.peers
            .values()
            .filter(|p| p.peer_rx_active == slot)
            .count()
    }

    /// Attach a session key to our TX and broadcast it.
    fn attach_tx(&mut self, now: Instant, key: Key, mode: KeyMode) -> Result<u8, CryptoError> {
        let aead = Aead::new(key, mode)?;
        let in_use = self.tx_users(self.tx.state().pending) > 0;
        let seqno = self.initial_seqno();
        let gen = self.key_gen.wrapping_add(1);
        let slot = self
            .tx
            .attach(TxKey { aead, seqno, gen }, 0, in_use)
            .map_err(|_| CryptoError::Busy)?;
        self.key_gen = gen;
        self.tx_users_changed = Some(now);
        self.distribute(slot, None);
        Ok(slot)
    }

    /// Queue a KEY_DISTR of TX `slot` to `dest` (None: broadcast).
    fn distribute(&mut self, slot: u8, dest: Option<NodeAddr>) {
        if !self.cfg.key_exchange {
            return;
        }
        let Some(k) = self.tx.get(slot) else {
            return;
        };
        let r = KeyDistrRepr {
            prevnode: self.cfg.own_addr,
            orignode: self.cfg.own_addr,
            destnode: dest.unwrap_or(0),
            non_seq: dest.is_none(),
            key_gen: k.gen,
            mode: k.aead.mode(),
            key: k.aead.key().clone(),
        };
        self.stats.keys_sent += 1;
        self.events.push_back(CryptoEvent::SendKey {
            dest,
            msg: r.to_bytes().freeze(),
        });
    }

    /// Change the rekeying interval or rekey now (`tipc node set key rekeying N|now`).
    pub fn set_rekeying(&mut self, now: Instant, r: Rekeying) {
        match r {
            Rekeying::Now => self.rekey_at = Some(now),
            Rekeying::Minutes(0) => {
                self.cfg.rekeying = None;
                self.rekey_at = None;
            }
            Rekeying::Minutes(m) => {
                let d = Duration::from_secs(u64::from(m) * 60);
                self.cfg.rekeying = Some(d);
                self.rekey_at = Some(now + d);
            }
        }
        self.arm_tick(now);
    }

    /// Drop every key, TX and RX (`tipc node flush key`): packets go out in clear again.
    pub fn flush_keys(&mut self) {
        self.master = None;
        self.tx.clear();
        self.presets.clear();
        self.rekey_at = None;
        self.legacy_user = false;
        for p in self.peers.values_mut() {
            p.keys.clear();
            p.master_window = None;
            p.skey = None;
            p.skey_retry = None;
            p.peer_rx_active = 0;
            p.nokey = false;
            p.distr = Distr::Idle;
        }
    }

    /// A MSG_CRYPTO message delivered by a link from peer `from`. `decrypted` must say whether
    /// it arrived inside an envelope (the kernel's `skb->decrypted`): plaintext key messages are
    /// refused. On success the key waits in the peer's RX until it can be attached (at once
    /// unless the slots are busy), then is aligned by the first packet sealed with it.
    pub fn handle_key_distr(
        &mut self,
        now: Instant,
        from: NodeAddr,
        msg: &[u8],
        decrypted: bool,
    ) -> Result<(), KeyDistrError> {
        let r = self.key_distr_checks(from, msg, decrypted);
        let r = r.and_then(|repr| {
            let p = self
                .peers
                .get_mut(&from)
                .ok_or(KeyDistrError::UnknownPeer)?;
            p.last_key_gen = Some(repr.key_gen);
            p.skey = Some((repr.key, repr.mode));
            p.skey_retry = Some(now);
            p.nokey = false;
            p.stats.keys_received += 1;
            Ok(())
        });
        match r {
            Ok(()) => {
                self.stats.keys_received += 1;
                self.attach_skey(now, from);
                self.arm_tick(now);
            }
            Err(_) => {
                self.stats.keys_refused += 1;
                if let Some(p) = self.peers.get_mut(&from) {
                    p.stats.keys_refused += 1;
                }
            }
        }
        r
    }

    fn key_distr_checks(
        &self,
        from: NodeAddr,
        msg: &[u8],
        decrypted: bool,
    ) -> Result<KeyDistrRepr, KeyDistrError> {
        if !self.cfg.key_exchange {
            return Err(KeyDistrError::Disabled);
        }
        if !decrypted {
            return Err(KeyDistrError::Plaintext);
        }
        let p = self.peers.get(&from).ok_or(KeyDistrError::UnknownPeer)?;
        let repr = KeyDistrRepr::parse(msg)?;
        if repr.prevnode != from {
            return Err(KeyDistrError::UnknownPeer);
        }
        if p.skey.is_some() || (p.last_key_gen == Some(repr.key_gen) && !p.keys.is_empty()) {
            return Err(KeyDistrError::Duplicate);
        }
        Ok(repr)
    }

    /// Try to attach a peer's waiting key; on `Busy` retry after [`KEY_RETRY`].
    fn attach_skey(&mut self, now: Instant, addr: NodeAddr) {
        let Some(p) = self.peers.get_mut(&addr) else {
            return;
        };
        if p.skey_retry.is_some_and(|t| now < t) {
            return;
        }
        let Some((key, mode)) = p.skey.take() else {
            return;
        };
        let aead = match Aead::new(key.clone(), mode) {
            Ok(a) => a,
            Err(_) => return,
        };
        let in_use = p.pending_in_use();
        let k = p.rx_key(aead);
        match p.keys.attach(Box::new(k), 0, in_use) {
            Ok(_) => {
                p.skey_retry = None;
                p.nokey = false;
            }
            Err(_) => {
                p.skey = Some((key, mode));
                p.skey_retry = Some(now + KEY_RETRY);
            }
        }
    }

    // ---------------------------------------------------------------------------------------
    // TX

    /// Encrypt one outgoing packet (kernel `tipc_crypto_xmit`). `inner` is a whole TIPC v2
    /// packet. `dest` is the peer of the unicast link it goes out on (D=1), or `None` for
    /// discovery, the broadcast link and other packets sent without a node (D=0).
    ///
    /// Without any TX key the packet is returned unchanged. Errors are counted:
    /// [`CryptoDrop::NoTxKey`], [`CryptoDrop::KeyRevoked`], [`CryptoDrop::BadOutgoing`].
    pub fn encrypt(
        &mut self,
        now: Instant,
        inner: Bytes,
        dest: Option<NodeAddr>,
    ) -> Result<Sealed, CryptoDrop> {
        if !self.is_enabled() {
            self.stats.tx_clear += 1;
            return Ok(Sealed {
                frame: inner,
                probe: None,
                grace: None,
                tx_key: None,
            });
        }
        let r = self.encrypt_keyed(now, &inner, dest);
        if let Err(e) = r {
            self.stats.drop_one(e);
        }
        r
    }

    fn encrypt_keyed(
        &mut self,
        now: Instant,
        inner: &[u8],
        dest: Option<NodeAddr>,
    ) -> Result<Sealed, CryptoDrop> {
        let h = Header::new_checked(inner).map_err(|_| CryptoDrop::BadOutgoing)?;
        let inner = h.message();
        let (iuser, itype) = (h.user(), h.mtype());
        let is_state = iuser == user::LINK_PROTOCOL && itype == 0;
        let vital = iuser == user::LINK_CONFIG
            || (iuser == user::LINK_PROTOCOL && itype == 1)
            || (iuser == user::MSG_CRYPTO && itype == 0);
        let peer = dest.and_then(|d| self.peers.get(&d));
        let st = self.tx.state();
        let grace_on = self.grace_from.is_some_and(|t| now < t + TX_GRACE_PERIOD);
        let (mut probe, mut grace) = (None, false);
        let chosen = 'choice: {
            if st.pending != 0 {
                let p = st.pending;
                if self.master.is_none() && st.active == 0 {
                    break 'choice Some(p);
                }
                if peer.is_some_and(|r| r.peer_rx_active == p) {
                    break 'choice Some(p);
                }
                if iuser == user::LINK_CONFIG || iuser == user::LINK_PROTOCOL {
                    probe = Some(p);
                }
            }
            if self.master.is_some() {
                if st.active == 0 {
                    break 'choice Some(0);
                }
                if vital || grace_on {
                    match peer {
                        Some(r) if r.key_master && r.peer_rx_active == 0 => break 'choice Some(0),
                        Some(_) => {}
                        None if !self.legacy_user => break 'choice Some(0),
                        None => grace = true,
                    }
                }
            }
            (st.active != 0).then_some(st.active)
        };
        let slot = chosen.ok_or(CryptoDrop::NoTxKey)?;
        let ehdr_user = if iuser == user::LINK_CONFIG {
            EHDR_USER_CONFIG
        } else if is_state {
            EHDR_USER_STATE
        } else {
            0
        };
        let (rx_key_active, rx_nokey) = match peer {
            Some(r) => (r.keys.state().active, r.nokey),
            None => (0, false),
        };
        let destined = dest.is_some();
        let origin = if ehdr_user == EHDR_USER_CONFIG {
            EhdrOrigin::Id(self.cfg.own_id)
        } else {
            EhdrOrigin::Addr(h.prevnode())
        };
        let mut ehdr = EhdrRepr {
            user: ehdr_user,
            destined,
            tx_key: 0,
            rx_key_active: if destined { rx_key_active } else { 0 },
            keepalive: is_state && h.word(0) & (1 << 19) != 0,
            master_key: self.master.is_some(),
            rx_nokey: destined && rx_nokey,
            seqno: 0,
            origin,
        };
        let d = dest.unwrap_or(0);
        let probe = match probe {
            Some(p) => {
                let b = self.seal_with(p, &mut ehdr, d, inner)?;
                self.stats.tx_probes += 1;
                Some(b)
            }
            None => None,
        };
        let grace = if grace {
            let b = self.seal_with(0, &mut ehdr, d, inner)?;
            self.stats.tx_grace += 1;
            Some(b)
        } else {
            None
        };
        let frame = self.seal_with(slot, &mut ehdr, d, inner)?;
        Ok(Sealed {
            frame,
            probe,
            grace,
            tx_key: Some(slot),
        })
    }

    fn seal_with(
        &mut self,
        slot: u8,
        ehdr: &mut EhdrRepr,
        dest: NodeAddr,
        inner: &[u8],
    ) -> Result<Bytes, CryptoDrop> {
        let k = self.tx_key_mut(slot).ok_or(CryptoDrop::NoTxKey)?;
        k.seqno = k.seqno.wrapping_add(1);
        if k.seqno == 0 {
            if slot == 0 {
                self.master = None;
            } else {
                self.tx.remove(slot);
            }
            self.stats.revoked += 1;
            self.events.push_back(CryptoEvent::KeyRevoked { slot });
            return Err(CryptoDrop::KeyRevoked);
        }
        ehdr.tx_key = slot;
        ehdr.seqno = k.seqno;
        let b = k.aead.seal(ehdr, dest, inner)?;
        self.stats.tx_ok += 1;
        Ok(b.freeze())
    }

    // ---------------------------------------------------------------------------------------
    // RX

    /// Route one received frame: envelopes are decrypted ([`Crypto::decrypt`]); plaintext is
    /// accepted unless our TX crypto holds keys and `accept_plaintext` is off
    /// ([`CryptoDrop::PlaintextRefused`], counted).
    pub fn receive(&mut self, now: Instant, frame: Bytes) -> Result<Received, CryptoDrop> {
        if !super::ehdr::is_envelope(&frame) {
            // Discovery in clear is accepted as the kernel accepts it (a keyed node answers it
            // encrypted, so a keyless neighbour is seen but never gets a link).
            let discovery =
                Header::new_checked(&frame[..]).is_ok_and(|h| h.user() == user::LINK_CONFIG);
            if self.requires_envelope() && !discovery {
                self.stats.drop_one(CryptoDrop::PlaintextRefused);
                return Err(CryptoDrop::PlaintextRefused);
            }
            self.stats.rx_clear += 1;
            return Ok(Received::Clear(frame));
        }
        self.decrypt(now, &frame).map(Received::Decrypted)
    }

    /// Decrypt one envelope (kernel `tipc_crypto_rcv` and `tipc_crypto_rcv_complete`), then
    /// validate the inner packet, check it against the envelope and the replay window, and only
    /// then apply the envelope's key-state bits. Every error but
    /// [`CryptoDrop::NotEnvelope`] is counted, node-wide and for the peer when it is known.
    pub fn decrypt(&mut self, now: Instant, envelope: &[u8]) -> Result<Decrypted, CryptoDrop> {
        let mut peer = None;
        let r = self.decrypt_inner(now, envelope, &mut peer);
        if let Err(e) = r {
            self.stats.drop_one(e);
            if let Some(p) = peer.and_then(|a| self.peers.get_mut(&a)) {
                p.stats.drop_one(e);
            }
        }
        r
    }

    fn decrypt_inner(
        &mut self,
        now: Instant,
        envelope: &[u8],
        peer_out: &mut Option<NodeAddr>,
    ) -> Result<Decrypted, CryptoDrop> {
        let e = Ehdr::new_checked(envelope)?;
        let eh = EhdrRepr::parse(&e)?;
        let peer = match eh.origin {
            EhdrOrigin::Addr(a) => {
                if !self.peers.contains_key(&a) {
                    return Err(CryptoDrop::UnknownPeer);
                }
                Some(a)
            }
            EhdrOrigin::Id(id) => self.ids.get(&id).copied(),
        };
        *peer_out = peer;
        let (plain, opener) = self.open(envelope, &eh, peer)?;
        // Inner validation (§15.3 receive step 3) and consistency (§15.8 item 4).
        let h = Header::new_checked(&plain[..]).map_err(|_| CryptoDrop::BadInner)?;
        check_consistency(&eh, &h)?;
        let size = h.size();
        // Replay window, checked only now that the tag verified.
        if self.cfg.replay_protection {
            if let Some(p) = peer.and_then(|a| self.peers.get(&a)) {
                let w = match opener {
                    Opener::Master => p.master_window.as_deref(),
                    Opener::Rx(s) => p.keys.get(s).map(|k| &k.window),
                    Opener::TxCluster(s) => {
                        self.tx.get(s).and_then(|k| p.retired_window(k.aead.key()))
                    }
                    Opener::Preset => None,
                };
                if let Some(w) = w {
                    w.check(eh.seqno)?;
                }
            }
        }
        // Accepted: commit the window, key users and clones, then the ehdr bits.
        let id = match eh.origin {
            EhdrOrigin::Id(id) => Some(id),
            EhdrOrigin::Addr(_) => None,
        };
        if let Some(addr) = peer {
            self.accept_from(now, addr, &eh, opener, &h);
        }
        self.stats.rx_ok += 1;
        let mut packet = plain;
        packet.truncate(size);
        Ok(Decrypted {
            packet: packet.freeze(),
            peer,
            id,
            tx_key: eh.tx_key,
            seqno: eh.seqno,
        })
    }

    /// Pick the key and open the envelope (kernel RX key choice, §15.4).
    fn open(
        &mut self,
        envelope: &[u8],
        eh: &EhdrRepr,
        peer: Option<NodeAddr>,
    ) -> Result<(bytes::BytesMut, Opener), CryptoDrop> {
        let own = self.cfg.own_addr;
        let tx_key = eh.tx_key;
        if tx_key == 0 {
            let Some(m) = &self.master else {
                self.mark_nokey(peer, tx_key);
                return Err(CryptoDrop::NoKey);
            };
            return m.aead.open(envelope, own).map(|b| (b, Opener::Master));
        }
        if let Some(p) = peer.and_then(|a| self.peers.get_mut(&a)) {
            let in_use = p.pending_in_use();
            if p.keys.state().holds(tx_key) || p.keys.try_align(tx_key, in_use) {
                if let Some(k) = p.keys.get_mut(tx_key) {
                    return match k.aead.open(envelope, own) {
                        Ok(b) => Ok((b, Opener::Rx(tx_key))),
                        Err(e) => {
                            k.users = k.users.saturating_sub(1);
                            Err(e)
                        }
                    };
                }
            }
        }
        // Fall back to our own TX cluster keys: pending, active, passive, at most two tries.
        let st = self.tx.state();
        let mut tried = 0;
        for slot in [st.pending, st.active, st.passive] {
            if slot == 0 || tried == 2 {
                continue;
            }
            let Some(k) = self.tx.get(slot) else {
                continue;
            };
            if k.aead.mode() != KeyMode::Cluster {
                continue;
            }
            tried += 1;
            if let Ok(b) = k.aead.open(envelope, own) {
                return Ok((b, Opener::TxCluster(slot)));
            }
        }
        // A discovery message from a node not known yet whose per-node key was set in
        // advance (`set key KEY nodeid ID`; the kernel creates the node then): D=0, so its IV
        // needs no address.
        if peer.is_none() {
            if let EhdrOrigin::Id(id) = eh.origin {
                if let Some(key) = self.presets.get(&id) {
                    let aead =
                        Aead::new(key.clone(), KeyMode::PerNode).map_err(|_| CryptoDrop::NoKey)?;
                    return aead.open(envelope, own).map(|b| (b, Opener::Preset));
                }
            }
        }
        if tried > 0 {
            // As the kernel's last round (`tipc_crypto_key_pick_tx` has nothing left): no key
            // of the peer's opened it, so report N=1 and the peer distributes its key.
            self.mark_nokey(peer, tx_key);
            return Err(CryptoDrop::DecryptFailed);
        }
        self.mark_nokey(peer, tx_key);
        Err(CryptoDrop::NoKey)
    }

    /// No key for a known peer's packet: report N=1, unless a received key waits to be attached
    /// or the slot after `tx_key` already holds a key.
    fn mark_nokey(&mut self, peer: Option<NodeAddr>, tx_key: u8) {
        if let Some(p) = peer.and_then(|a| self.peers.get_mut(&a)) {
            if p.skey.is_none() && p.keys.get(key_next(tx_key)).is_none() {
                p.nokey = true;
            }
        }
    }

    fn accept_from<T: AsRef<[u8]>>(
        &mut self,
        now: Instant,
        addr: NodeAddr,
        eh: &EhdrRepr,
        opener: Opener,
        h: &Header<T>,
    ) {
        let own = self.cfg.own_addr;
        let tx_session = !self.tx.is_empty();
        let replay = self.cfg.replay_protection;
        let mut clone = None;
        if let Opener::TxCluster(s) = opener {
            clone = self.tx.get(s).and_then(|k| k.aead.clone_key().ok());
        }
        let Some(p) = self.peers.get_mut(&addr) else {
            return;
        };
        match opener {
            Opener::Master => {
                if replay {
                    p.master_window
                        .get_or_insert_with(Default::default)
                        .commit(eh.seqno);
                }
            }
            Opener::Rx(s) => {
                if let Some(k) = p.keys.get_mut(s) {
                    k.users = 1;
                    if replay {
                        k.window.commit(eh.seqno);
                    }
                }
                p.timer1 = Some(now);
            }
            Opener::TxCluster(_) => {
                if let Some(aead) = clone {
                    let in_use = p.pending_in_use();
                    let mut k = p.rx_key(aead);
                    k.users = 1;
                    if replay {
                        k.window.commit(eh.seqno);
                    }
                    if p.keys.attach(Box::new(k), eh.tx_key, in_use).is_ok() {
                        p.timer1 = Some(now);
                    }
                }
            }
            // Never with a known peer (the preset is attached to it by `add_peer`).
            Opener::Preset => {}
        }
        p.stats.rx_ok += 1;
        // tipc_crypto_key_synch: act on the ehdr bits, now that the packet is authentic.
        p.key_master = eh.master_key;
        if !eh.master_key {
            self.legacy_user = true;
        }
        if !eh.destined || h.header_len() < BASIC_H_SIZE || h.destnode() != own {
            return;
        }
        if eh.rx_nokey {
            self.grace_from = Some(now);
            if tx_session && p.distr == Distr::Idle {
                let delay = 500 * (1 + u64::from(self.rng.next_u32() % 5));
                p.distr = Distr::Scheduled(now + Duration::from_millis(delay));
            }
        } else {
            p.distr = Distr::Idle;
        }
        if tx_session && p.peer_rx_active != eh.rx_key_active {
            p.peer_rx_active = eh.rx_key_active;
            self.tx_users_changed = Some(now);
        }
        self.arm_tick(now);
    }

    // ---------------------------------------------------------------------------------------
    // Timers and events

    fn arm_tick(&mut self, now: Instant) {
        if self.next_tick.is_none() {
            self.next_tick = Some(now + CRYPTO_TICK);
        }
    }

    /// When [`Crypto::handle_timeout`] must next be called (`None`: nothing scheduled). Poll
    /// again after every call into the crypto.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let distr = self.peers.values().filter_map(|p| match p.distr {
            Distr::Scheduled(t) | Distr::Completed(t) => Some(t),
            Distr::Idle => None,
        });
        self.next_tick
            .into_iter()
            .chain(self.rekey_at)
            .chain(distr)
            .min()
    }

    /// Run the timers due at `now`: key distributions, rekeying, and (every [`CRYPTO_TICK`])
    /// the TX and RX key-state machine of `tipc_crypto_timeout`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.run_distributions(now);
        if self.rekey_at.is_some_and(|t| now >= t) {
            self.rekey(now);
        }
        if self.next_tick.is_some_and(|t| now >= t) {
            self.tick_tx(now);
            let addrs: Vec<NodeAddr> = self.peers.keys().copied().collect();
            for a in addrs {
                self.tick_rx(now, a);
                self.attach_skey(now, a);
            }
            let busy = self.is_enabled()
                || !self.presets.is_empty()
                || self
                    .peers
                    .values()
                    .any(|p| !p.keys.is_empty() || p.skey.is_some());
            self.next_tick = busy.then_some(now + CRYPTO_TICK);
        }
    }

    /// Drain the next event.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<CryptoEvent> {
        self.events.pop_front()
    }

    fn run_distributions(&mut self, now: Instant) {
        let newest = {
            let s = self.tx.state();
            if s.pending != 0 {
                s.pending
            } else {
                s.active
            }
        };
        let mut due = Vec::new();
        for (&a, p) in self.peers.iter_mut() {
            match p.distr {
                Distr::Scheduled(t) if now >= t => {
                    p.distr = Distr::Completed(now + KEY_RETRY);
                    due.push(a);
                }
                Distr::Completed(t) if now >= t => p.distr = Distr::Idle,
                _ => {}
            }
        }
        due.sort_unstable();
        for a in due {
            self.distribute(newest, Some(a));
        }
    }

    fn rekey(&mut self, now: Instant) {
        self.rekey_at = self.cfg.rekeying.filter(|d| !d.is_zero()).map(|d| now + d);
        if self.tx.state().pending != 0 {
            return;
        }
        let active = self.tx.state().active;
        let len = match self.tx.get(active).or(self.master.as_ref()) {
            Some(k) => k.aead.key().len(),
            None => return,
        };
        let Ok(key) = Key::random(&mut *self.rng, len) else {
            return;
        };
        // Busy slots: try again at the next interval, as the kernel does.
        let _ = self.attach_tx(now, key, KeyMode::PerNode);
    }

    /// TX pending → active (§15.4): no users left on the active key, at least one on the
    /// pending key, and the counts stable for [`TX_LASTING_TIME`].
    fn tick_tx(&mut self, now: Instant) {
        let s = self.tx.state();
        if s.pending == 0 || (s.active != 0 && self.tx_users(s.active) > 0) {
            return;
        }
        if self.tx_users(s.pending) == 0 {
            return;
        }
        if self
            .tx_users_changed
            .is_some_and(|t| now < t + TX_LASTING_TIME)
        {
            return;
        }
        let old = s.active;
        self.tx.set_state(KeyState {
            pending: 0,
            active: s.pending,
            passive: s.passive,
        });
        if old != 0 {
            self.tx.remove(old);
        }
        self.stats.switches += 1;
        self.events
            .push_back(CryptoEvent::TxKeyActivated { slot: s.pending });
    }

    /// One peer's RX state machine: one transition per tick, as `tipc_crypto_timeout`.
    fn tick_rx(&mut self, now: Instant, addr: NodeAddr) {
        let Some(p) = self.peers.get_mut(&addr) else {
            return;
        };
        let mut s = p.keys.state();
        let users = |p: &PeerCrypto, slot: u8| p.keys.get(slot).map_or(0, |k| k.users);
        // Pending with a user -> active; the old active becomes passive.
        if s.pending != 0 && users(p, s.pending) > 0 {
            if s.active != 0 {
                s.passive = s.active;
            }
            s.active = s.pending;
            s.pending = 0;
            p.keys.set_state(s);
            p.timer2 = Some(now);
            p.stats.switches += 1;
            self.stats.switches += 1;
            self.events.push_back(CryptoEvent::RxKeyActivated {
                peer: addr,
                slot: s.active,
            });
            return;
        }
        // Pending that keeps failing -> removed.
        if s.pending != 0 && users(p, s.pending) <= RX_FAIL_LIMIT {
            p.retire(s.pending);
            return;
        }
        // Active without recent success, or without users -> pending.
        if s.active != 0 {
            let recent = p.timer1.is_some_and(|t| now < t + RX_ACTIVE_LIM);
            if !recent || users(p, s.active) <= 0 {
                if s.pending != 0 {
                    s.passive = s.active;
                } else {
                    s.pending = s.active;
                }
                let pend = s.pending;
                s.active = 0;
                p.keys.set_state(s);
                if let Some(k) = p.keys.get_mut(pend) {
                    k.users = 0;
                }
                p.timer2 = Some(now);
                return;
            }
        }
        // Passive outdated or failing -> freed.
        if s.passive != 0 {
            let young = p.timer2.is_some_and(|t| now < t + RX_PASSIVE_LIM);
            if !young || users(p, s.passive) <= RX_FAIL_LIMIT {
                p.retire(s.passive);
            }
        }
    }
}

/// §15.8 item 4: the envelope and the inner packet must agree (stricter than the kernel).
fn check_consistency<T: AsRef<[u8]>>(eh: &EhdrRepr, h: &Header<T>) -> Result<(), CryptoDrop> {
    let (iuser, itype) = (h.user(), h.mtype());
    let expected = if iuser == user::LINK_CONFIG {
        EHDR_USER_CONFIG
    } else if iuser == user::LINK_PROTOCOL && itype == 0 {
        EHDR_USER_STATE
    } else {
        0
    };
    if eh.user != expected {
        return Err(CryptoDrop::Inconsistent);
    }
    match eh.origin {
        EhdrOrigin::Addr(a) if a != h.prevnode() => Err(CryptoDrop::Inconsistent),
        EhdrOrigin::Id(id) => {
            // A discovery message carries the identity in bytes 60..76 when it has them.
            let b = h.message();
            match b.get(60..60 + NODE_ID_LEN) {
                Some(x) if x != id.0 => Err(CryptoDrop::Inconsistent),
                _ => Ok(()),
            }
        }
        EhdrOrigin::Addr(_) => Ok(()),
    }
}

/// Sizes an envelope adds, for MTU planning: 16 + 16 for the short form plus up to 3 pad bytes,
/// 28 + 16 for discovery.
pub const fn envelope_overhead(long_form: bool) -> usize {
    if long_form {
        EHDR_CFG_SIZE + super::ehdr::TAG_SIZE
    } else {
        EHDR_SIZE + super::ehdr::TAG_SIZE + 3
    }
}
