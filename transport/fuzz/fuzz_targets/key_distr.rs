//! Fuzz target: the MSG_CRYPTO KEY_DISTR message (`crypto::distr`, tipc-crypto.md §15.5) and
//! what a node does with one (`Crypto::handle_key_distr`).
//!
//! The first input byte holds flags (bit 0: the message arrived decrypted; bit 1: it claims to
//! come from an unknown node; bit 2: the receiver holds a cluster key of its own; bit 3: hand it
//! over twice), the rest is the message. Checked:
//! * what `KeyDistrRepr::parse` accepts re-emits to `buffer_len` bytes that parse to the same
//!   repr;
//! * `handle_key_distr` refuses plaintext, unknown senders and every message the parser refuses,
//!   with that parser error, and counts each call once (received or refused);
//! * an accepted key is not accepted a second time (`Duplicate`);
//! * once a cluster-mode key is accepted, a packet the sender seals with that key decrypts.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::{Duration, Instant};
use tipc_transport::crypto::{
    Crypto, CryptoConfig, Key, KeyDistrError, KeyDistrRepr, KeyMode, KeyTarget, Received,
};
use tipc_transport::wire::{Header, BASIC_H_SIZE};
use tipc_transport::NodeId;

const A: u32 = 0x0100_1001;
const B: u32 = 0x0100_1002;
const STRANGER: u32 = 0x0100_1003;

fn id(s: &str) -> NodeId {
    NodeId::from_str_id(s).expect("id")
}

fn crypto(own: u32, own_id: &str, seed: u64) -> Crypto {
    let mut cfg = CryptoConfig::new(own, id(own_id));
    cfg.rekeying = None;
    Crypto::new(cfg, ChaCha8Rng::seed_from_u64(seed))
}

fn counted(c: &Crypto) -> u64 {
    c.stats().keys_received + c.stats().keys_refused
}

fn data_packet(from: u32, to: u32) -> Bytes {
    let len = BASIC_H_SIZE + 8;
    let mut m = BytesMut::zeroed(len);
    let mut h = Header::new_unchecked(&mut m[..]);
    h.init(0, 0, BASIC_H_SIZE, len, from);
    h.set_orignode(from);
    h.set_destnode(to);
    m.freeze()
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, msg)) = data.split_first() else {
        return;
    };
    let parsed = KeyDistrRepr::parse(msg);
    if let Ok(r) = &parsed {
        let out = r.to_bytes();
        assert_eq!(out.len(), r.buffer_len());
        let again = KeyDistrRepr::parse(&out).expect("re-emitted KEY_DISTR parses");
        assert_eq!(&again, r);
    }

    let decrypted = flags & 1 != 0;
    let from = if flags & 2 != 0 { STRANGER } else { A };
    let t0 = Instant::now();
    let mut b = crypto(B, "b", 2);
    b.add_peer(t0, A, id("a"));
    if flags & 4 != 0 {
        let k = Key::parse("this_is_a_key16_salt").expect("key");
        b.set_key(t0, k, KeyTarget::Cluster).expect("cluster key");
    }
    let before = counted(&b);
    let r = b.handle_key_distr(t0, from, msg, decrypted);
    assert_eq!(counted(&b), before + 1, "each KEY_DISTR counted once");
    if !decrypted {
        assert_eq!(r, Err(KeyDistrError::Plaintext));
    } else if from != A {
        assert_eq!(r, Err(KeyDistrError::UnknownPeer));
    } else {
        match &parsed {
            Err(e) => assert_eq!(r, Err(*e)),
            Ok(repr) if repr.prevnode != A => assert_eq!(r, Err(KeyDistrError::UnknownPeer)),
            Ok(_) => assert_eq!(r, Ok(())),
        }
    }
    if flags & 8 != 0 {
        let again = b.handle_key_distr(t0, from, msg, decrypted);
        assert!(again.is_err(), "a key is accepted once");
        if r.is_ok() {
            assert_eq!(again, Err(KeyDistrError::Duplicate));
        }
    }

    // The key now works: A seals with it, B opens.
    if let (Ok(()), Ok(repr)) = (&r, &parsed) {
        if repr.mode == KeyMode::Cluster && flags & 4 == 0 {
            let mut a = crypto(A, "a", 1);
            a.add_peer(t0, B, id("b"));
            a.set_key(t0, repr.key.clone(), KeyTarget::Cluster)
                .expect("the distributed key installs");
            let sealed = a.encrypt(t0, data_packet(A, B), Some(B)).expect("sealed");
            match b.receive(t0, sealed.frame) {
                Ok(Received::Decrypted(d)) => assert_eq!(d.peer, Some(A)),
                other => panic!("a packet sealed with the distributed key: {other:?}"),
            }
        }
    }
    let mut now = t0;
    for _ in 0..3 {
        now += Duration::from_secs(6);
        b.handle_timeout(now);
        while b.poll_event().is_some() {}
    }
});
