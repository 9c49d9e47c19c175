//! Behaviour of the crypto core between two or three of our own nodes: key choice, activation,
//! master key and key exchange, rekeying, replay window, and every drop reason being counted
//! (tipc-crypto.md §15.3–§15.8).

use bytes::Bytes;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::{Duration, Instant};
use tipc_transport::crypto::*;
use tipc_transport::wire::{
    DiscRepr, DiscType, Header, LinkProtoRepr, LinkProtoType, BASIC_H_SIZE, MEDIA_INFO_SIZE,
};
use tipc_transport::NodeId;

const A: u32 = 0x0100_1001;
const B: u32 = 0x0100_1002;
const C: u32 = 0x0100_1003;

fn id(s: &str) -> NodeId {
    NodeId::from_str_id(s).unwrap()
}

fn node(addr: u32, name: &str) -> Crypto {
    let mut cfg = CryptoConfig::new(addr, id(name));
    cfg.rekeying = None;
    Crypto::new(cfg, ChaCha8Rng::seed_from_u64(u64::from(addr)))
}

/// Nodes a, b (and c) that know each other.
fn pair() -> (Crypto, Crypto, Instant) {
    let t0 = Instant::now();
    let (mut a, mut b) = (node(A, "a"), node(B, "b"));
    a.add_peer(t0, B, id("b"));
    b.add_peer(t0, A, id("a"));
    (a, b, t0)
}

fn key(s: &str) -> Key {
    Key::parse(s).unwrap()
}

fn state(from: u32, to: u32, keepalive: bool) -> Bytes {
    proto(LinkProtoType::State, from, to, keepalive)
}

fn proto(mtype: LinkProtoType, from: u32, to: u32, keepalive: bool) -> Bytes {
    let r = LinkProtoRepr {
        mtype,
        keepalive,
        seq_gap: 0,
        bcast_ack: 0,
        ack: 0,
        seqno: 1,
        prevnode: from,
        last_bcast: 0,
        next_sent: 1,
        session: 7,
        bc_ack_invalid: false,
        peer_stopping: false,
        redundant_link: false,
        bearer_id: 0,
        priority: 0,
        net_plane: 0,
        probe: false,
        orignode: from,
        destnode: to,
        bc_gap: 0,
        max_pkt: 375,
        tolerance: 0,
        data: &[],
    };
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(&mut b);
    b.into()
}

fn data(from: u32, to: u32, len: usize) -> Bytes {
    let mut m = vec![0x5au8; BASIC_H_SIZE + len];
    let mut h = Header::new_unchecked(&mut m[..]);
    h.init(0, 3, BASIC_H_SIZE, BASIC_H_SIZE + len, from);
    h.set_orignode(from);
    h.set_destnode(to);
    m.into()
}

fn disc(from: u32, name: &str) -> Bytes {
    let r = DiscRepr {
        mtype: DiscType::Request,
        caps: 0x7ff,
        signature: 0x1234,
        non_seq: true,
        dest_domain: 0,
        prevnode: from,
        net_id: 4711,
        media_info: [0; MEDIA_INFO_SIZE],
        net_hash: 0,
        suggested: 0,
        node_id: id(name).0,
    };
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(&mut b);
    b.into()
}

/// Exchange one STATE each way and tick both, `n` times, `step` apart. Returns the time.
fn chat(a: &mut Crypto, b: &mut Crypto, mut now: Instant, n: usize, step: Duration) -> Instant {
    for _ in 0..n {
        let s = a.encrypt(now, state(A, B, false), Some(B)).unwrap();
        for f in s.frames() {
            let _ = b.decrypt(now, f);
        }
        let s = b.encrypt(now, state(B, A, false), Some(A)).unwrap();
        for f in s.frames() {
            let _ = a.decrypt(now, f);
        }
        now += step;
        a.handle_timeout(now);
        b.handle_timeout(now);
    }
    now
}

fn ehdr_of(frame: &[u8]) -> EhdrRepr {
    EhdrRepr::parse(&Ehdr::new_checked(frame).unwrap()).unwrap()
}

#[test]
fn crypto_sends_clear_without_any_key() {
    let (mut a, _, t0) = pair();
    let p = data(A, B, 10);
    let s = a.encrypt(t0, p.clone(), Some(B)).unwrap();
    assert_eq!((s.frame, s.tx_key), (p, None));
    assert_eq!(a.stats().tx_clear, 1);
    assert!(!a.is_enabled());
}

#[test]
fn crypto_cluster_key_pair_activates_and_reports_rx_slot() {
    let (mut a, mut b, t0) = pair();
    let k = "this_is_a_key16_salt";
    assert_eq!(a.set_key(t0, key(k), KeyTarget::Cluster), Ok(1));
    assert_eq!(b.set_key(t0, key(k), KeyTarget::Cluster), Ok(1));
    let t = chat(&mut a, &mut b, t0, 40, Duration::from_millis(375));
    // Both RX sides activated slot 1, both report it, and after 10 s stable TX is active too.
    assert_eq!(a.rx_state(B).unwrap().active, 1);
    assert_eq!(a.peer_rx_active(B), Some(1));
    assert_eq!(a.tx_state().active, 1);
    assert_eq!(b.tx_state().active, 1);
    let s = a.encrypt(t, data(A, B, 100), Some(B)).unwrap();
    let e = ehdr_of(&s.frame);
    assert_eq!(
        (e.user, e.destined, e.tx_key, e.rx_key_active),
        (0, true, 1, 1)
    );
    assert_eq!(s.frame.len(), envelope_len(EHDR_SIZE, BASIC_H_SIZE + 100));
    let d = b.decrypt(t, &s.frame).unwrap();
    assert_eq!(d.packet, data(A, B, 100));
    assert_eq!(b.stats().dropped_total(), 0);
    let mut events = Vec::new();
    while let Some(e) = a.poll_event() {
        events.push(e);
    }
    assert!(events.contains(&CryptoEvent::TxKeyActivated { slot: 1 }));
    assert!(events.contains(&CryptoEvent::RxKeyActivated { peer: B, slot: 1 }));
}

#[test]
fn crypto_decrypt_wrong_key_counts_decrypt_failed() {
    let (mut a, mut b, t0) = pair();
    a.set_key(t0, key("this_is_a_key16_salt"), KeyTarget::Cluster)
        .unwrap();
    b.set_key(t0, key("this_is_another_salt"), KeyTarget::Cluster)
        .unwrap();
    let s = a.encrypt(t0, state(A, B, false), Some(B)).unwrap();
    assert_eq!(b.decrypt(t0, &s.frame), Err(CryptoDrop::DecryptFailed));
    assert_eq!(b.stats().dropped(CryptoDrop::DecryptFailed), 1);
    assert_eq!(
        b.peer_stats(A).unwrap().dropped(CryptoDrop::DecryptFailed),
        1
    );
}

#[test]
fn crypto_decrypt_unknown_sender_counts_unknown_peer() {
    let (mut a, _, t0) = pair();
    let mut c = node(C, "c");
    let k = "this_is_a_key16_salt";
    a.set_key(t0, key(k), KeyTarget::Cluster).unwrap();
    c.set_key(t0, key(k), KeyTarget::Cluster).unwrap();
    let s = a.encrypt(t0, state(A, C, false), Some(C)).unwrap();
    assert_eq!(c.decrypt(t0, &s.frame), Err(CryptoDrop::UnknownPeer));
    assert_eq!(c.stats().dropped(CryptoDrop::UnknownPeer), 1);
}

#[test]
fn crypto_decrypt_discovery_from_unknown_identity_with_cluster_key() {
    let (mut a, _, t0) = pair();
    let mut c = node(C, "c");
    let k = "this_is_a_key16_salt";
    a.set_key(t0, key(k), KeyTarget::Cluster).unwrap();
    c.set_key(t0, key(k), KeyTarget::Cluster).unwrap();
    let s = a.encrypt(t0, disc(A, "a"), None).unwrap();
    let e = ehdr_of(&s.frame);
    assert_eq!(
        (e.user, e.destined, e.origin),
        (13, false, EhdrOrigin::Id(id("a")))
    );
    assert_eq!(s.frame.len(), EHDR_CFG_SIZE + 76 + TAG_SIZE);
    let d = c.decrypt(t0, &s.frame).unwrap();
    assert_eq!((d.peer, d.id), (None, Some(id("a"))));
    assert_eq!(d.packet, disc(A, "a"));
}

#[test]
fn crypto_receive_refuses_plaintext_once_keyed_unless_configured() {
    let (_, mut b, t0) = pair();
    assert!(matches!(
        b.receive(t0, state(A, B, false)),
        Ok(Received::Clear(_))
    ));
    b.set_key(t0, key("this_is_a_key16_salt"), KeyTarget::Cluster)
        .unwrap();
    assert_eq!(
        b.receive(t0, state(A, B, false)),
        Err(CryptoDrop::PlaintextRefused)
    );
    assert_eq!(b.stats().dropped(CryptoDrop::PlaintextRefused), 1);
    let mut cfg = CryptoConfig::new(A, id("a"));
    cfg.accept_plaintext = true;
    let mut a = Crypto::new(cfg, ChaCha8Rng::seed_from_u64(1));
    a.set_key(t0, key("this_is_a_key16_salt"), KeyTarget::Cluster)
        .unwrap();
    assert!(matches!(
        a.receive(t0, state(B, A, false)),
        Ok(Received::Clear(_))
    ));
}

#[test]
fn crypto_replay_dropped_and_accepted_again_after_peer_down() {
    let (mut a, mut b, t0) = pair();
    let k = "this_is_a_key16_salt";
    a.set_key(t0, key(k), KeyTarget::Cluster).unwrap();
    b.set_key(t0, key(k), KeyTarget::Cluster).unwrap();
    let s1 = a.encrypt(t0, state(A, B, false), Some(B)).unwrap();
    let s2 = a.encrypt(t0, state(A, B, true), Some(B)).unwrap();
    b.decrypt(t0, &s1.frame).unwrap();
    b.decrypt(t0, &s2.frame).unwrap();
    assert_eq!(b.decrypt(t0, &s1.frame), Err(CryptoDrop::Replayed));
    assert_eq!(b.decrypt(t0, &s2.frame), Err(CryptoDrop::Replayed));
    assert_eq!(b.stats().dropped(CryptoDrop::Replayed), 2);
    b.peer_down(A);
    assert!(b.decrypt(t0, &s1.frame).is_ok());
    assert_eq!(b.stats().replay_resets, 1);
}

#[test]
fn crypto_replay_too_old_when_far_below_window() {
    let (mut a, mut b, t0) = pair();
    let k = "this_is_a_key16_salt";
    a.set_key(t0, key(k), KeyTarget::Cluster).unwrap();
    b.set_key(t0, key(k), KeyTarget::Cluster).unwrap();
    let old = a.encrypt(t0, state(A, B, false), Some(B)).unwrap();
    let seq = a.tx_seqno(1).unwrap();
    assert!(a.set_tx_seqno(1, seq + REPLAY_WINDOW + 10));
    let new = a.encrypt(t0, state(A, B, false), Some(B)).unwrap();
    b.decrypt(t0, &new.frame).unwrap();
    assert_eq!(b.decrypt(t0, &old.frame), Err(CryptoDrop::TooOld));
    assert_eq!(b.stats().dropped(CryptoDrop::TooOld), 1);
}

#[test]
fn crypto_replay_protection_off_accepts_duplicates() {
    let t0 = Instant::now();
    let mut cfg = CryptoConfig::new(B, id("b"));
    cfg.replay_protection = false;
    let mut b = Crypto::new(cfg, ChaCha8Rng::seed_from_u64(2));
    let mut a = node(A, "a");
    a.add_peer(t0, B, id("b"));
    b.add_peer(t0, A, id("a"));
    let k = "this_is_a_key16_salt";
    a.set_key(t0, key(k), KeyTarget::Cluster).unwrap();
    b.set_key(t0, key(k), KeyTarget::Cluster).unwrap();
    let s = a.encrypt(t0, state(A, B, false), Some(B)).unwrap();
    b.decrypt(t0, &s.frame).unwrap();
    assert!(b.decrypt(t0, &s.frame).is_ok());
}

#[test]
fn crypto_master_key_only_uses_slot_zero_with_m_bit() {
    let (mut a, mut b, t0) = pair();
    let m = "this_is_a_master_key";
    assert_eq!(a.set_key(t0, key(m), KeyTarget::Master), Ok(0));
    b.set_key(t0, key(m), KeyTarget::Master).unwrap();
    for p in [disc(A, "a"), state(A, B, false), data(A, B, 3)] {
        let dest = (Header::new_checked(&p[..]).unwrap().user() != 13).then_some(B);
        let s = a.encrypt(t0, p.clone(), dest).unwrap();
        let e = ehdr_of(&s.frame);
        assert_eq!((e.tx_key, e.master_key), (0, true));
        assert_eq!(b.decrypt(t0, &s.frame).unwrap().packet, p);
    }
    // No master key on the receiver: NoKey, counted.
    let mut c = node(C, "c");
    c.add_peer(t0, A, id("a"));
    let s = a.encrypt(t0, state(A, C, false), Some(C)).unwrap();
    assert_eq!(c.decrypt(t0, &s.frame), Err(CryptoDrop::NoKey));
    assert_eq!(c.stats().dropped(CryptoDrop::NoKey), 1);
}

/// §15.5: a node with master and session key, a joiner with the master key only. The joiner
/// cannot read session traffic, reports N=1, gets a unicast KEY_DISTR under the master key, and
/// then reads the session key's traffic.
#[test]
fn crypto_master_joiner_gets_session_key_by_unicast_key_distr() {
    let (mut a, mut b, t0) = pair();
    let m = "this_is_a_master_key";
    a.set_key(t0, key(m), KeyTarget::Master).unwrap();
    b.set_key(t0, key(m), KeyTarget::Master).unwrap();
    a.set_key(t0, key("this_is_a_key16_salt"), KeyTarget::Cluster)
        .unwrap();
    // a broadcast the new key (b is not on a's broadcast link in this test: drop it).
    assert!(matches!(
        a.poll_event(),
        Some(CryptoEvent::SendKey { dest: None, .. })
    ));
    // a: pending 1 and master; a STATE to b goes under the master key (no active key).
    let s = a.encrypt(t0, state(A, B, false), Some(B)).unwrap();
    assert_eq!(s.tx_key, Some(0));
    assert!(s.probe.is_some(), "a probe clone under the pending key");
    b.decrypt(t0, &s.frame).unwrap();
    assert_eq!(
        b.decrypt(t0, s.probe.as_ref().unwrap()),
        Err(CryptoDrop::NoKey)
    );
    // b reports N=1 in its next D=1 packet; a schedules a unicast KEY_DISTR 0.5-2.5 s later.
    let s = b.encrypt(t0, state(B, A, false), Some(A)).unwrap();
    assert!(ehdr_of(&s.frame).rx_nokey);
    a.decrypt(t0, &s.frame).unwrap();
    let due = a.poll_timeout().unwrap();
    assert!(due <= t0 + Duration::from_millis(2500));
    let mut now = t0;
    let mut msg = None;
    while msg.is_none() && now < t0 + Duration::from_secs(3) {
        now += Duration::from_millis(125);
        a.handle_timeout(now);
        while let Some(e) = a.poll_event() {
            if let CryptoEvent::SendKey {
                dest: Some(B),
                msg: m,
            } = e
            {
                msg = Some(m);
            }
        }
    }
    let msg = msg.expect("unicast KEY_DISTR");
    assert!(now >= t0 + Duration::from_millis(500));
    // The KEY_DISTR is vital: sealed with the master key.
    let s = a.encrypt(now, msg, Some(B)).unwrap();
    assert_eq!(s.tx_key, Some(0));
    let d = b.decrypt(now, &s.frame).unwrap();
    assert_eq!(b.handle_key_distr(now, A, &d.packet, true), Ok(()));
    // Now b reads a's session traffic (probe clones under slot 1).
    let s = a.encrypt(now, state(A, B, false), Some(B)).unwrap();
    let probe = s.probe.expect("probe under the pending key");
    assert_eq!(ehdr_of(&probe).tx_key, 1);
    assert!(b.decrypt(now, &probe).is_ok());
    assert_eq!(b.rx_state(A).unwrap().pending, 1);
}

#[test]
fn crypto_rekeying_now_distributes_per_node_key_that_peer_decrypts() {
    let (mut a, mut b, t0) = pair();
    let k = "this_is_a_key16_salt";
    a.set_key(t0, key(k), KeyTarget::Cluster).unwrap();
    b.set_key(t0, key(k), KeyTarget::Cluster).unwrap();
    while a.poll_event().is_some() {}
    let now = chat(&mut a, &mut b, t0, 40, Duration::from_millis(375));
    assert_eq!(a.tx_state().active, 1);
    a.set_rekeying(now, Rekeying::Now);
    a.handle_timeout(now);
    assert_eq!(a.tx_state().pending, 2);
    let msg = loop {
        match a.poll_event() {
            Some(CryptoEvent::SendKey { dest: None, msg }) => break msg,
            Some(_) => continue,
            None => panic!("no KEY_DISTR broadcast"),
        }
    };
    let repr = KeyDistrRepr::parse(&msg).unwrap();
    assert_eq!((repr.mode, repr.key.len()), (KeyMode::PerNode, 20));
    // Carried over the broadcast link, sealed with the active key (D=0).
    let s = a.encrypt(now, msg, None).unwrap();
    assert_eq!(s.tx_key, Some(1));
    let d = b.decrypt(now, &s.frame).unwrap();
    b.handle_key_distr(now, A, &d.packet, true).unwrap();
    // A probe with the new per-node key (IV from the destination address) decrypts at b.
    let s = a.encrypt(now, state(A, B, false), Some(B)).unwrap();
    let probe = s.probe.expect("probe with the pending key");
    assert_eq!(ehdr_of(&probe).tx_key, 2);
    assert!(b.decrypt(now, &probe).is_ok());
    // Converges: both sides use slot 2 after enough chatter.
    let now = chat(&mut a, &mut b, now, 60, Duration::from_millis(375));
    assert_eq!(a.tx_state().active, 2);
    assert_eq!(b.rx_state(A).unwrap().active, 2);
    let s = a.encrypt(now, data(A, B, 1), None).unwrap();
    assert_eq!(ehdr_of(&s.frame).tx_key, 2);
    assert!(b.decrypt(now, &s.frame).is_ok(), "D=0 per-node IV");
}

#[test]
fn crypto_per_node_keys_preset_for_unknown_peer_attach_on_add() {
    let t0 = Instant::now();
    let (mut a, mut b) = (node(A, "a"), node(B, "b"));
    let ka = "a_has_its_own_key_20";
    a.set_key(t0, key(ka), KeyTarget::Node(id("a"))).unwrap();
    // b learns a's TX key before it knows a.
    assert_eq!(b.set_key(t0, key(ka), KeyTarget::Node(id("a"))), Ok(0));
    assert!(!b.is_enabled(), "RX-only keys leave TX in clear");
    a.add_peer(t0, B, id("b"));
    b.add_peer(t0, A, id("a"));
    assert_eq!(b.rx_state(A).unwrap().pending, 1);
    let s = a.encrypt(t0, state(A, B, false), Some(B)).unwrap();
    assert_eq!(b.decrypt(t0, &s.frame).unwrap().packet, state(A, B, false));
    // b sends in clear, and a accepts plaintext? a is keyed and refuses it by default.
    let back = b.encrypt(t0, state(B, A, false), Some(A)).unwrap();
    assert_eq!(back.tx_key, None);
    assert_eq!(a.receive(t0, back.frame), Err(CryptoDrop::PlaintextRefused));
}

#[test]
fn crypto_tx_seqno_wrap_revokes_key() {
    let (mut a, _, t0) = pair();
    a.set_key(t0, key("this_is_a_key16_salt"), KeyTarget::Cluster)
        .unwrap();
    while a.poll_event().is_some() {}
    assert!(a.set_tx_seqno(1, u64::MAX));
    assert_eq!(
        a.encrypt(t0, data(A, B, 1), Some(B)),
        Err(CryptoDrop::KeyRevoked)
    );
    assert_eq!(a.poll_event(), Some(CryptoEvent::KeyRevoked { slot: 1 }));
    assert_eq!(a.stats().dropped(CryptoDrop::KeyRevoked), 1);
    assert_eq!(a.tx_state(), KeyState::default());
}

#[test]
fn crypto_first_seqno_is_one_without_random_start() {
    let t0 = Instant::now();
    let mut cfg = CryptoConfig::new(A, id("a"));
    cfg.random_initial_seqno = false;
    let mut a = Crypto::new(cfg, ChaCha8Rng::seed_from_u64(3));
    a.set_key(t0, key("this_is_a_key16_salt"), KeyTarget::Cluster)
        .unwrap();
    let s = a.encrypt(t0, disc(A, "a"), None).unwrap();
    assert_eq!(ehdr_of(&s.frame).seqno, 1);
    // With the default, the counter starts at a random value below 2^62.
    let (mut r, _, _) = pair();
    r.set_key(t0, key("this_is_a_key16_salt"), KeyTarget::Cluster)
        .unwrap();
    assert!(r.tx_seqno(1).unwrap() < 1 << 62);
}

/// Node a restarted (same key, same address) before b saw it go down: b's replay window still
/// holds the old instance's numbers. Started from the clock, the new instance's numbers are
/// above them, so b hears it at once; two random starts put it below half the time.
#[test]
fn crypto_restarted_node_with_clock_start_is_accepted_by_peer_window_of_old_instance() {
    let t0 = Instant::now();
    let k = "this_is_a_key16_salt";
    let started = 1_790_000_000_000_000u64;
    let instance = |started_us: u64, seed: u64| {
        let mut cfg = CryptoConfig::new(A, id("a"));
        cfg.rekeying = None;
        cfg.started_us = started_us;
        let mut a = Crypto::new(cfg, ChaCha8Rng::seed_from_u64(seed));
        a.add_peer(t0, B, id("b"));
        a.set_key(t0, key(k), KeyTarget::Cluster).unwrap();
        a
    };
    let mut b = node(B, "b");
    b.add_peer(t0, A, id("a"));
    b.set_key(t0, key(k), KeyTarget::Cluster).unwrap();
    // The old instance sent a great deal (its counter far above its start).
    let mut old = instance(started, 1);
    let first = old.tx_seqno(1).unwrap();
    assert_eq!(first >> 10, started, "the start is the clock, shifted");
    assert!(old.set_tx_seqno(1, first + 500_000_000));
    let s = old.encrypt(t0, state(A, B, false), Some(B)).unwrap();
    b.decrypt(t0, &s.frame).unwrap();
    // Restarted 1 s later, with a random part that is as low as it can be.
    let mut new = (0..64)
        .map(|seed| instance(started + 1_000_000, seed))
        .min_by_key(|a| a.tx_seqno(1).unwrap())
        .unwrap();
    let s = new.encrypt(t0, state(A, B, false), Some(B)).unwrap();
    assert!(b.decrypt(t0, &s.frame).is_ok(), "{:?}", b.stats());
    assert_eq!(b.stats().dropped(CryptoDrop::TooOld), 0);
    // Without the clock, a new random start below the old instance's counter is too old.
    let low = (0..64)
        .map(|seed| instance(0, seed))
        .find(|a| a.tx_seqno(1).unwrap() + REPLAY_WINDOW < first)
        .expect("a random start below the old one");
    let mut low = low;
    let s = low.encrypt(t0, state(A, B, false), Some(B)).unwrap();
    assert_eq!(b.decrypt(t0, &s.frame), Err(CryptoDrop::TooOld));
}

#[test]
fn crypto_inner_prevnode_differs_from_ehdr_counts_inconsistent() {
    let (_, mut b, t0) = pair();
    let k = "this_is_a_key16_salt";
    b.set_key(t0, key(k), KeyTarget::Cluster).unwrap();
    let aead = Aead::new(key(k), KeyMode::Cluster).unwrap();
    let r = EhdrRepr {
        user: 7,
        destined: true,
        tx_key: 1,
        rx_key_active: 0,
        keepalive: false,
        master_key: false,
        rx_nokey: false,
        seqno: 9,
        origin: EhdrOrigin::Addr(A),
    };
    // Inner STATE claims to be from C.
    let env = aead.seal(&r, B, &state(C, B, false)).unwrap();
    assert_eq!(b.decrypt(t0, &env), Err(CryptoDrop::Inconsistent));
    // ehdr user 0 around a STATE.
    let env = aead
        .seal(&EhdrRepr { user: 0, ..r }, B, &state(A, B, false))
        .unwrap();
    assert_eq!(b.decrypt(t0, &env), Err(CryptoDrop::Inconsistent));
    // Garbage inside a valid envelope.
    let env = aead
        .seal(&EhdrRepr { user: 0, ..r }, B, &[0xff; 40])
        .unwrap();
    assert_eq!(b.decrypt(t0, &env), Err(CryptoDrop::BadInner));
    assert_eq!(b.stats().dropped(CryptoDrop::Inconsistent), 2);
    assert_eq!(b.stats().dropped(CryptoDrop::BadInner), 1);
}

#[test]
fn crypto_truncated_envelope_counts_bad_header() {
    let (_, mut b, t0) = pair();
    b.set_key(t0, key("this_is_a_key16_salt"), KeyTarget::Cluster)
        .unwrap();
    let mut env = vec![0u8; 32];
    env[0] = 0xe1;
    assert_eq!(b.decrypt(t0, &env), Err(CryptoDrop::BadHeader));
    assert_eq!(b.decrypt(t0, &[0x4f; 40]), Err(CryptoDrop::NotEnvelope));
    assert_eq!(b.stats().dropped(CryptoDrop::BadHeader), 1);
    assert_eq!(b.stats().dropped_total(), 1);
}

#[test]
fn crypto_flush_keys_returns_to_clear() {
    let (mut a, _, t0) = pair();
    a.set_key(t0, key("this_is_a_key16_salt"), KeyTarget::Cluster)
        .unwrap();
    assert!(a.is_enabled());
    a.flush_keys();
    assert!(!a.is_enabled());
    let s = a.encrypt(t0, data(A, B, 1), Some(B)).unwrap();
    assert_eq!(s.tx_key, None);
}

#[test]
fn crypto_max_inner_len_keeps_envelope_within_mtu() {
    for mtu in [1280usize, 1500, 14000, 9000, 1501, 1502, 1503] {
        let n = max_inner_len(mtu);
        assert!(envelope_len(EHDR_SIZE, n) <= mtu, "{mtu}");
        assert!(envelope_len(EHDR_SIZE, n + 4) > mtu, "{mtu}");
    }
}

#[test]
fn crypto_key_distr_refused_from_unknown_or_in_clear() {
    let (mut a, mut b, t0) = pair();
    a.set_key(t0, key("this_is_a_key16_salt"), KeyTarget::Cluster)
        .unwrap();
    let Some(CryptoEvent::SendKey { msg, .. }) = a.poll_event() else {
        panic!("no KEY_DISTR");
    };
    assert_eq!(
        b.handle_key_distr(t0, A, &msg, false),
        Err(KeyDistrError::Plaintext)
    );
    assert_eq!(
        b.handle_key_distr(t0, C, &msg, true),
        Err(KeyDistrError::UnknownPeer)
    );
    let mut bad = msg.to_vec();
    bad[72..76].copy_from_slice(&36u32.to_be_bytes());
    assert_eq!(
        b.handle_key_distr(t0, A, &bad, true),
        Err(KeyDistrError::BadLength)
    );
    assert_eq!(b.handle_key_distr(t0, A, &msg, true), Ok(()));
    assert_eq!(b.stats().keys_refused, 3);
}

/// Both nodes hold the master key and a session key of their own (the kernel's "master +
/// session" on both sides): each fails the other's probe clones, reports N=1, and gets the
/// other's session key by unicast KEY_DISTR.
#[test]
fn crypto_master_key_pair_with_own_session_keys_exchange_them_both_ways() {
    let (mut a, mut b, t0) = pair();
    let m = "this_is_a_master_key";
    for (c, s) in [
        (&mut a, "a_session_key16_salt"),
        (&mut b, "b_session_key16_salt"),
    ] {
        c.set_key(t0, key(m), KeyTarget::Master).unwrap();
        c.set_key(t0, key(s), KeyTarget::Cluster).unwrap();
        while c.poll_event().is_some() {}
    }
    let mut now = t0;
    let (mut to_a, mut to_b) = (None, None);
    for _ in 0..40 {
        now = chat(&mut a, &mut b, now, 1, Duration::from_millis(125));
        while let Some(e) = a.poll_event() {
            if let CryptoEvent::SendKey { dest: Some(B), msg } = e {
                to_b = Some(msg);
            }
        }
        while let Some(e) = b.poll_event() {
            if let CryptoEvent::SendKey { dest: Some(A), msg } = e {
                to_a = Some(msg);
            }
        }
    }
    assert!(to_b.is_some(), "a never sent its key: {:?}", a.stats());
    assert!(to_a.is_some(), "b never sent its key: {:?}", b.stats());
}

/// Found by the keyed_link fuzz target: failed envelopes (anyone can send them) get a peer's
/// RX key removed; the key comes back as a clone of our TX cluster key, and must come back
/// with its replay history, so an old envelope replayed then is still refused.
#[test]
fn crypto_replay_refused_after_failures_removed_the_rx_key() {
    let (mut a, mut b, t0) = pair();
    for c in [&mut a, &mut b] {
        c.set_key(t0, key("this_is_a_key16_salt"), KeyTarget::Cluster)
            .unwrap();
        while c.poll_event().is_some() {}
    }
    let first = a.encrypt(t0, data(A, B, 20), Some(B)).unwrap().frame;
    b.decrypt(t0, &first).unwrap();
    let second = a.encrypt(t0, data(A, B, 20), Some(B)).unwrap().frame;
    b.decrypt(t0, &second).unwrap();
    let mut now = t0;
    // No success for a while: the active key goes back to pending with no users.
    for _ in 0..12 {
        now += Duration::from_millis(375);
        b.handle_timeout(now);
    }
    // Forged envelopes for slot 1 from a's address: each failure takes a user off.
    for i in 0..11u8 {
        let mut f = second.to_vec();
        let n = f.len();
        f[n - 1] ^= i + 1;
        assert!(b.decrypt(now, &f).is_err());
    }
    for _ in 0..4 {
        now += Duration::from_millis(375);
        b.handle_timeout(now);
    }
    assert_eq!(b.decrypt(now, &first), Err(CryptoDrop::Replayed));
    assert_eq!(b.decrypt(now, &second), Err(CryptoDrop::Replayed));
    // a's new traffic still opens.
    let third = a.encrypt(now, data(A, B, 20), Some(B)).unwrap().frame;
    assert!(b.decrypt(now, &third).is_ok());
}
