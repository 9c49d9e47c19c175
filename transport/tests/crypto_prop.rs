//! Property tests for TIPC encryption (tipc-crypto.md §15.2, §15.3, §15.8): ehdr emit/parse
//! round trips, seal/open round trips for every key size and mode, any single flipped bit
//! refused and counted, the replay window against a naive model, and parsers that never panic.

use bytes::Bytes;
use proptest::prelude::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::time::Instant;
use tipc_transport::crypto::*;
use tipc_transport::wire::{Header, BASIC_H_SIZE};
use tipc_transport::NodeId;

const A: u32 = 0x0100_1001;
const B: u32 = 0x0100_1002;

fn origin(long: bool) -> impl Strategy<Value = (u8, EhdrOrigin)> {
    if long {
        any::<[u8; 16]>()
            .prop_map(|id| (13u8, EhdrOrigin::Id(NodeId(id))))
            .boxed()
    } else {
        ((0u8..16).prop_filter("not 13", |u| *u != 13), any::<u32>())
            .prop_map(|(u, a)| (u, EhdrOrigin::Addr(a)))
            .boxed()
    }
}

fn ehdr_repr() -> impl Strategy<Value = EhdrRepr> {
    (
        any::<bool>().prop_flat_map(origin),
        any::<[bool; 5]>(),
        0u8..4,
        0u8..4,
        any::<u64>(),
    )
        .prop_map(
            |((user, origin), f, tx_key, rx_key_active, seqno)| EhdrRepr {
                user,
                destined: f[0],
                tx_key,
                rx_key_active,
                keepalive: f[1],
                master_key: f[2],
                rx_nokey: f[3],
                seqno,
                origin,
            },
        )
}

fn key_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::sample::select(vec![20usize, 28, 36])
        .prop_flat_map(|n| proptest::collection::vec(any::<u8>(), n))
}

fn mode() -> impl Strategy<Value = KeyMode> {
    prop::sample::select(vec![KeyMode::Cluster, KeyMode::PerNode])
}

fn data(len: usize) -> Bytes {
    let mut m = vec![0xa5u8; BASIC_H_SIZE + len];
    let mut h = Header::new_unchecked(&mut m[..]);
    h.init(0, 3, BASIC_H_SIZE, BASIC_H_SIZE + len, A);
    h.set_orignode(A);
    h.set_destnode(B);
    m.into()
}

/// A keyed pair: a and b know each other and share a cluster key of `kb`.
fn pair(kb: &[u8]) -> (Crypto, Crypto, Instant) {
    let t0 = Instant::now();
    let mk = |addr, name| {
        let mut cfg = CryptoConfig::new(addr, NodeId::from_str_id(name).unwrap());
        cfg.rekeying = None;
        Crypto::new(cfg, ChaCha8Rng::seed_from_u64(u64::from(addr)))
    };
    let (mut a, mut b) = (mk(A, "a"), mk(B, "b"));
    a.add_peer(t0, B, NodeId::from_str_id("b").unwrap());
    b.add_peer(t0, A, NodeId::from_str_id("a").unwrap());
    for n in [&mut a, &mut b] {
        n.set_key(t0, Key::from_bytes(kb).unwrap(), KeyTarget::Cluster)
            .unwrap();
    }
    (a, b, t0)
}

proptest! {
    #[test]
    fn ehdr_repr_round_trips_through_emit_and_parse(r in ehdr_repr()) {
        let mut buf = vec![0u8; r.buffer_len() + TAG_SIZE + 1];
        let n = r.emit(&mut buf);
        prop_assert_eq!(n, if r.user == 13 { EHDR_CFG_SIZE } else { EHDR_SIZE });
        let e = Ehdr::new_checked(&buf[..]).unwrap();
        prop_assert_eq!(e.header_len(), n);
        prop_assert_eq!(EhdrRepr::parse(&e).unwrap(), r);
    }

    #[test]
    fn ehdr_parse_then_emit_keeps_bytes_but_reserved(mut b in proptest::collection::vec(any::<u8>(), 45..64)) {
        b[0] = 0xe0 | (b[0] & 0x1f);
        let e = Ehdr::new_checked(&b[..]).unwrap();
        let r = EhdrRepr::parse(&e).unwrap();
        let mut out = vec![0u8; r.buffer_len()];
        r.emit(&mut out);
        let mut want = b[..r.buffer_len()].to_vec();
        want[1] &= 0xfe; // reserved_1
        want[2] = 0;
        want[3] = 0;
        prop_assert_eq!(out, want);
    }

    #[test]
    fn ehdr_parsers_never_panic_on_arbitrary_bytes(b in proptest::collection::vec(any::<u8>(), 0..80)) {
        let e = Ehdr::new_unchecked(&b[..]);
        let _ = (e.user(), e.seqno(), e.addr(), e.id(), e.header(), e.payload());
        if let Ok(e) = Ehdr::new_checked(&b[..]) {
            prop_assert!(EhdrRepr::parse(&e).is_ok());
        }
    }

    #[test]
    fn aead_open_inverts_seal_for_every_key_size_and_mode(
        kb in key_bytes(), m in mode(), r in ehdr_repr(),
        inner in proptest::collection::vec(any::<u8>(), 1..300), dest in any::<u32>(),
    ) {
        let aead = Aead::new(Key::from_bytes(&kb).unwrap(), m).unwrap();
        let env = aead.seal(&r, dest, &inner).unwrap();
        prop_assert_eq!(env.len(), envelope_len(r.buffer_len(), inner.len()));
        prop_assert_eq!(env.len() % 4, 0);
        let plain = aead.open(&env, dest).unwrap();
        prop_assert_eq!(&plain[..inner.len()], &inner[..]);
        prop_assert!(plain[inner.len()..].iter().all(|&x| x == 0));
        prop_assert!(plain.len() - inner.len() < 4);
    }

    #[test]
    fn aead_open_fails_on_any_flipped_bit(
        kb in key_bytes(), m in mode(), r in ehdr_repr(),
        inner in proptest::collection::vec(any::<u8>(), 1..100), bit in any::<prop::sample::Index>(),
    ) {
        let aead = Aead::new(Key::from_bytes(&kb).unwrap(), m).unwrap();
        let mut env = aead.seal(&r, B, &inner).unwrap();
        let i = bit.index(env.len() * 8);
        // Reserved ehdr bits are authenticated too: every bit counts.
        env[i / 8] ^= 1 << (i % 8);
        prop_assert!(aead.open(&env, B).is_err(), "bit {} accepted", i);
    }

    #[test]
    fn crypto_any_flipped_bit_is_refused_and_counted(
        kb in key_bytes(), len in 0usize..200, bit in any::<prop::sample::Index>(),
    ) {
        let (mut a, mut b, t0) = pair(&kb);
        let s = a.encrypt(t0, data(len), Some(B)).unwrap();
        let mut env = s.frame.to_vec();
        let i = bit.index(env.len() * 8);
        env[i / 8] ^= 1 << (i % 8);
        let before = b.stats().dropped_total();
        prop_assert!(b.receive(t0, Bytes::from(env)).is_err(), "bit {} accepted", i);
        prop_assert_eq!(b.stats().dropped_total(), before + 1);
        // The untouched envelope still decrypts.
        prop_assert_eq!(b.decrypt(t0, &s.frame).unwrap().packet, data(len));
    }

    #[test]
    fn crypto_round_trip_delivers_exact_packet(kb in key_bytes(), lens in proptest::collection::vec(0usize..1500, 1..20)) {
        let (mut a, mut b, t0) = pair(&kb);
        for len in lens {
            let s = a.encrypt(t0, data(len), Some(B)).unwrap();
            let d = b.decrypt(t0, &s.frame).unwrap();
            prop_assert_eq!(d.packet, data(len));
            prop_assert_eq!(d.peer, Some(A));
        }
        prop_assert_eq!(b.stats().dropped_total(), 0);
    }

    #[test]
    fn replay_window_matches_naive_model(seqs in proptest::collection::vec(
        prop_oneof![0u64..200, 0u64..20_000, Just(u64::MAX - 1)], 1..300)) {
        let mut w = ReplayWindow::new();
        let mut seen = BTreeSet::new();
        let mut top: Option<u64> = None;
        for s in seqs {
            let want = match top {
                None => Ok(()),
                Some(t) if s > t => Ok(()),
                Some(t) if t - s >= REPLAY_WINDOW => Err(CryptoDrop::TooOld),
                Some(_) if seen.contains(&s) => Err(CryptoDrop::Replayed),
                Some(_) => Ok(()),
            };
            prop_assert_eq!(w.accept(s), want, "seq {}", s);
            if want.is_ok() {
                seen.insert(s);
                top = Some(top.map_or(s, |t| t.max(s)));
            }
        }
    }

    #[test]
    fn key_parse_never_panics_and_accepts_only_kernel_lengths(s in ".{0,80}") {
        if let Ok(k) = Key::parse(&s) {
            prop_assert!([20, 28, 36].contains(&k.len()));
        }
    }

    #[test]
    fn key_parse_hex_round_trips_material(kb in key_bytes()) {
        let hex: String = kb.iter().map(|b| format!("{b:02X}")).collect();
        let k = Key::parse(&format!("0x{hex}")).unwrap();
        prop_assert_eq!(k.material(), &kb[..]);
        prop_assert_eq!(k.salt().to_vec(), kb[kb.len() - 4..].to_vec());
    }

    #[test]
    fn key_distr_round_trips_and_never_panics(
        kb in key_bytes(), gen in any::<u16>(), per_node in any::<bool>(),
        junk in proptest::collection::vec(any::<u8>(), 0..140),
    ) {
        let r = KeyDistrRepr {
            prevnode: A, orignode: A, destnode: B, non_seq: false, key_gen: gen,
            mode: if per_node { KeyMode::PerNode } else { KeyMode::Cluster },
            key: Key::from_bytes(&kb).unwrap(),
        };
        let b = r.to_bytes();
        prop_assert_eq!(KeyDistrRepr::parse(&b).unwrap(), r);
        let _ = KeyDistrRepr::parse(&junk);
        // Junk behind a valid header: any keylen value must be handled.
        let mut j = b[..40].to_vec();
        j.extend_from_slice(&junk);
        let _ = KeyDistrRepr::parse(&j);
    }
}
