//! Fuzz target: arbitrary bytes into the encryption-header parser and the whole decrypt path
//! (`Ehdr::new_checked`, `EhdrRepr::parse` and re-emit, `Crypto::receive` with keys in every
//! slot kind, `KeyDistrRepr::parse`, `Key::parse`). Nothing may panic; every refused envelope is
//! counted exactly once.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;
use tipc_transport::crypto::{Crypto, CryptoConfig, Ehdr, EhdrRepr, Key, KeyDistrRepr, KeyTarget};
use tipc_transport::NodeId;

const A: u32 = 0x0100_1001;
const B: u32 = 0x0100_1002;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = Ehdr::new_checked(data) {
        let r = EhdrRepr::parse(&e).expect("checked header parses");
        let mut out = vec![0u8; r.buffer_len()];
        assert_eq!(r.emit(&mut out), e.header_len());
        let again = EhdrRepr::parse(&Ehdr::new_unchecked(&out[..])).expect("re-parse");
        assert_eq!(again, r);
    }
    let _ = KeyDistrRepr::parse(data);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = Key::parse(s);
    }

    // A keyed node that knows peer A, holding a master key, a cluster key and a per-node RX key.
    let t0 = Instant::now();
    let mut cfg = CryptoConfig::new(B, NodeId::from_str_id("b").expect("id"));
    cfg.rekeying = None;
    let mut b = Crypto::new(cfg, ChaCha8Rng::seed_from_u64(1));
    b.add_peer(t0, A, NodeId::from_str_id("a").expect("id"));
    let key = |s: &str| Key::parse(s).expect("key");
    b.set_key(t0, key("this_is_a_master_key"), KeyTarget::Master)
        .expect("master");
    b.set_key(t0, key("this_is_a_key16_salt"), KeyTarget::Cluster)
        .expect("cluster");
    b.set_key(
        t0,
        key("0x000102030405060708090a0b0c0d0e0f101112131415161718191a1b"),
        KeyTarget::Node(NodeId::from_str_id("a").expect("id")),
    )
    .expect("per-node");
    let before = b.stats().dropped_total();
    let r = b.receive(t0, Bytes::copy_from_slice(data));
    let after = b.stats().dropped_total();
    match r {
        Ok(_) => assert_eq!(after, before),
        Err(_) => assert_eq!(after, before + 1),
    }
    // Also the same bytes behind a valid short header from A, so the AEAD path always runs.
    let mut env = vec![0xe1, 0x50, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    env.extend_from_slice(&A.to_be_bytes());
    env.extend_from_slice(data);
    if let Some(&k) = data.first() {
        env[1] = (env[1] & 0x3f) | (k & 0xc0); // any tx_key
    }
    let _ = b.decrypt(t0, &env);
    while b.poll_event().is_some() {}
});
