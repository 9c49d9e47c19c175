//! Golden vectors for TIPC encryption: the bytes captured from Linux 6.1 in
//! tipc-crypto.md §15.7 (an encrypted STATE over UDP, a discovery header and its IV, a KEY_DISTR
//! header), decrypted and re-encrypted byte for byte, through the AEAD alone and through the
//! whole [`Crypto`] core.

use bytes::Bytes;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::time::{Duration, Instant};
use tipc_transport::crypto::*;
use tipc_transport::wire::{Header, LinkProtoRepr, LinkProtoType};
use tipc_transport::NodeId;

const CA: u32 = 0x6361_0000;
const CB: u32 = 0x6362_0000;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

/// §15.7: the 76-byte UDP payload from "cb" (10.99.0.12) to "ca".
fn captured_state() -> Vec<u8> {
    hex("ef580000 00000000 00000012 63620000
         5d14da1b 10aee128 c3b567df 683b918d 3ec05d8a 59372043
         43bb1eb6 04d394b8 072b6d70 63faa072 e650c256
         b7cabe70 b6a196a5 5d7b2c8f 08083b8b")
}

/// §15.7: the plaintext STATE inside it.
fn captured_plain() -> Vec<u8> {
    hex(
        "4f48002c 00000000 00020003 63620000 00000003 56711001 63620000 63610000
         00000000 00000000 00040000",
    )
}

fn cluster_key() -> Key {
    Key::parse("0x746869735F69735F615F6B657931365F73616C74").unwrap()
}

fn id(s: &str) -> NodeId {
    NodeId::from_str_id(s).unwrap()
}

fn node(addr: u32, name: &str) -> Crypto {
    let mut cfg = CryptoConfig::new(addr, id(name));
    cfg.random_initial_seqno = false;
    cfg.rekeying = None;
    Crypto::new(cfg, ChaCha8Rng::seed_from_u64(u64::from(addr)))
}

#[test]
fn golden_state_decrypts_to_captured_plaintext() {
    let env = captured_state();
    assert_eq!(env.len(), 76);
    let aead = Aead::new(cluster_key(), KeyMode::Cluster).unwrap();
    let plain = aead.open(&env, CA).unwrap();
    assert_eq!(&plain[..], &captured_plain()[..]);
    let h = Header::new_checked(&plain[..]).unwrap();
    let r = LinkProtoRepr::parse(&h).unwrap();
    assert_eq!(r.mtype, LinkProtoType::State);
    assert!(r.keepalive && r.probe);
    assert_eq!((r.ack, r.seqno, r.session), (2, 3, 0x5671));
    assert_eq!((r.prevnode, r.orignode, r.destnode), (CB, CB, CA));
}

#[test]
fn golden_state_iv_matches_spec_derivation() {
    let aead = Aead::new(cluster_key(), KeyMode::Cluster).unwrap();
    let env = captured_state();
    assert_eq!(
        aead.iv(&env[..16], CA).to_vec(),
        hex("73610e17 00000000 00000012")
    );
}

#[test]
fn golden_state_reencrypts_to_captured_bytes() {
    let env = captured_state();
    let e = Ehdr::new_checked(&env[..]).unwrap();
    let r = EhdrRepr::parse(&e).unwrap();
    assert_eq!(
        (r.user, r.destined, r.tx_key, r.rx_key_active, r.seqno),
        (7, true, 1, 1, 18)
    );
    assert!(r.keepalive && !r.master_key && !r.rx_nokey);
    assert_eq!(r.origin, EhdrOrigin::Addr(CB));
    let aead = Aead::new(cluster_key(), KeyMode::Cluster).unwrap();
    let sealed = aead.seal(&r, CA, &captured_plain()).unwrap();
    assert_eq!(&sealed[..], &env[..]);
}

#[test]
fn golden_state_decrypts_through_crypto_core() {
    let t0 = Instant::now();
    let mut ca = node(CA, "ca");
    ca.add_peer(t0, CB, id("cb"));
    ca.set_key(t0, cluster_key(), KeyTarget::Cluster).unwrap();
    let d = ca.decrypt(t0, &captured_state()).unwrap();
    assert_eq!(&d.packet[..], &captured_plain()[..]);
    assert_eq!((d.peer, d.tx_key, d.seqno), (Some(CB), 1, 18));
    // K's cluster key was cloned into cb's RX slot 1 (§15.4 RX step 4), pending until the tick.
    assert_eq!(ca.rx_state(CB).unwrap().pending, 1);
    // The same envelope again is a replay.
    assert_eq!(ca.decrypt(t0, &captured_state()), Err(CryptoDrop::Replayed));
    assert_eq!(ca.stats().dropped(CryptoDrop::Replayed), 1);
    assert_eq!(ca.peer_stats(CB).unwrap().dropped(CryptoDrop::Replayed), 1);
}

/// "cb"'s core, told what the capture shows (cluster key in TX slot 1, counter at 17, "ca"'s
/// slot-1 packets decrypted), seals the captured STATE to exactly the captured bytes.
#[test]
fn golden_state_reproduced_by_crypto_core() {
    let t0 = Instant::now();
    let mut ca = node(CA, "ca");
    let mut cb = node(CB, "cb");
    ca.add_peer(t0, CB, id("cb"));
    cb.add_peer(t0, CA, id("ca"));
    assert_eq!(ca.set_key(t0, cluster_key(), KeyTarget::Cluster), Ok(1));
    assert_eq!(cb.set_key(t0, cluster_key(), KeyTarget::Cluster), Ok(1));
    // A plaintext STATE from ca to cb, so that cb learns ca's key slot 1.
    let from_ca: Bytes = {
        let mut p = captured_plain();
        p[12..16].copy_from_slice(&CA.to_be_bytes()); // prevnode
        p[24..28].copy_from_slice(&CA.to_be_bytes()); // orignode
        p[28..32].copy_from_slice(&CB.to_be_bytes()); // destnode
        Bytes::from(p)
    };
    let s = ca.encrypt(t0, from_ca.clone(), Some(CB)).unwrap();
    assert_eq!(s.tx_key, Some(1));
    let d = cb.decrypt(t0, &s.frame).unwrap();
    assert_eq!(d.packet, from_ca);
    let t1 = t0 + Duration::from_millis(400);
    cb.handle_timeout(t1);
    assert_eq!(cb.rx_state(CA).unwrap().active, 1);
    assert!(cb.set_tx_seqno(1, 17));
    let s = cb
        .encrypt(t1, Bytes::from(captured_plain()), Some(CA))
        .unwrap();
    assert_eq!(s.probe, None);
    assert_eq!(&s.frame[..], &captured_state()[..]);
}

#[test]
fn golden_discovery_header_iv_uses_reversed_identity() {
    // §15.7: the long form from "ca", tx 1, seqno 1, id "ca"; IV 73610d17 00000000 00000001.
    let h = hex("fa400000 00000000 00000001 63610000 00000000 00000000 00000000");
    let e = Ehdr::new_unchecked(&h[..]);
    assert_eq!(
        (e.user(), e.header_len(), e.tx_key(), e.seqno()),
        (13, 28, 1, 1)
    );
    assert_eq!(e.id(), Some(id("ca")));
    let aead = Aead::new(cluster_key(), KeyMode::Cluster).unwrap();
    assert_eq!(aead.iv(&h, 0).to_vec(), hex("73610d17 00000000 00000001"));
    let r = EhdrRepr::parse(&e).unwrap();
    let mut out = [0u8; EHDR_CFG_SIZE];
    r.emit(&mut out);
    assert_eq!(&out[..], &h[..]);
}

#[test]
fn golden_key_distr_envelope_header_fields() {
    // §15.7: "e0040000 00000000 00000040 6d610000": user 0, D 0, tx 0, M 1, seqno 0x40.
    let h = hex("e0040000 00000000 00000040 6d610000");
    let r = EhdrRepr::parse(&Ehdr::new_unchecked(&h[..])).unwrap();
    assert_eq!(
        (r.user, r.destined, r.tx_key, r.master_key),
        (0, false, 0, true)
    );
    assert_eq!((r.seqno, r.origin), (0x40, EhdrOrigin::Addr(0x6d61_0000)));
}

#[test]
fn golden_key_distr_plaintext_installs_key_in_peer_rx() {
    // §15.7: the broadcast KEY_DISTR (prevnode 0x6d610000) carrying the cluster key.
    let mut msg = hex(
        "5d500060 00000000 00000001 6d610000 31220001 00001267 6d610000 00000000
                       00000000 00000000 67636d28 61657329",
    );
    msg.extend_from_slice(&[0u8; 24]);
    msg.extend_from_slice(&hex("00000014"));
    msg.extend_from_slice(b"this_is_a_key16_salt");
    let t0 = Instant::now();
    let mut n = node(0x6d62_0000, "mb");
    n.add_peer(t0, 0x6d61_0000, id("ma"));
    assert_eq!(
        n.handle_key_distr(t0, 0x6d61_0000, &msg, false),
        Err(KeyDistrError::Plaintext)
    );
    assert_eq!(n.handle_key_distr(t0, 0x6d61_0000, &msg, true), Ok(()));
    assert_eq!(n.rx_state(0x6d61_0000).unwrap().pending, 1);
    assert_eq!(
        n.handle_key_distr(t0, 0x6d61_0000, &msg, true),
        Err(KeyDistrError::Duplicate)
    );
    assert_eq!(n.stats().keys_refused, 2);
}
