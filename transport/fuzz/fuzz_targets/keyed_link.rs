//! Fuzz target: packet sequences into an established link whose frames pass through the
//! sans-IO crypto first, as a keyed node receives them (`Crypto::receive`, then `classify` and
//! `Peer::handle_packet`). Node A and node B share a cluster key; B's peer object for A has an
//! established link (set up by sealed RESET and ACTIVATE). The input is a script mixing:
//! well-formed data packets from A sealed by A's crypto (near the link's next seqno),
//! arbitrary inner packets sealed by A, earlier envelopes with bytes flipped, cut or added,
//! replays of earlier envelopes, plaintext, timer ticks, and sends from B (sealed by B's
//! crypto, opened by A's). Checked after every step:
//! * B accepts no plaintext (`Received::Clear`);
//! * every envelope B accepts is one A sealed, byte for byte, and was not accepted before: a
//!   tampered, forged or replayed envelope never reaches the link;
//! * every refusal is counted once in B's drop counters;
//! * every frame B's crypto seals, A's crypto opens;
//! * the link's queues stay bounded.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tipc_transport::crypto::{Crypto, CryptoConfig, Key, KeyTarget, Received};
use tipc_transport::peer::{classify, BearerParams, NeighborSighting, Peer, Route};
use tipc_transport::wire::{Header, LinkProtoRepr, LinkProtoType, MediaAddr, BASIC_H_SIZE};
use tipc_transport::NodeId;

/// Reads the script: each call takes bytes from the front, zeros once the input is used up.
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn bytes(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
    fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }
    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) << 8 | u16::from(self.u8())
    }
}

fn proto(mtype: LinkProtoType, from: u32, to: u32, session: u16, dest_session: u16) -> Bytes {
    let name = [b'x'; 16];
    let r = LinkProtoRepr {
        mtype,
        keepalive: false,
        seq_gap: if mtype == LinkProtoType::Activate {
            1
        } else {
            0
        },
        bcast_ack: dest_session,
        ack: 0,
        seqno: 32768,
        prevnode: from,
        last_bcast: 0,
        next_sent: 1,
        session,
        bc_ack_invalid: true,
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
        data: &name,
    };
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(&mut b);
    b.into()
}

fn data_packet(from: u32, to: u32, seqno: u16, ack: u16, len: usize) -> BytesMut {
    let mut m = BytesMut::zeroed(BASIC_H_SIZE + len);
    let mut h = Header::new_unchecked(&mut m[..]);
    h.init(0, 3, BASIC_H_SIZE, BASIC_H_SIZE + len, from);
    h.set_orignode(from);
    h.set_destnode(to);
    h.set_seqno(seqno);
    h.set_ack(ack);
    m
}

/// Executions so far in this process: each uses a cluster key of its own. With one fixed key
/// the envelopes are the same in every execution, and libFuzzer's comparison dictionary
/// carries valid envelopes from earlier executions into later ones: genuine envelopes of the
/// key, which an attacker without the key could not make, reported as forgeries. (A single
/// input re-run in a fresh process is still deterministic.)
static RUN: AtomicU64 = AtomicU64::new(0);

fn crypto(
    own: u32,
    id: NodeId,
    peer: u32,
    peer_id: NodeId,
    seed: u64,
    t0: Instant,
    run: u64,
) -> Crypto {
    let mut cfg = CryptoConfig::new(own, id);
    cfg.rekeying = None;
    let mut c = Crypto::new(cfg, ChaCha8Rng::seed_from_u64(seed));
    c.add_peer(t0, peer, peer_id);
    let mut material = *b"this_is_a_key16_salt";
    material[..8].copy_from_slice(&run.to_le_bytes());
    let key = Key::from_bytes(&material).expect("key");
    c.set_key(t0, key, KeyTarget::Cluster).expect("cluster key");
    while c.poll_event().is_some() {}
    c
}

/// Node B: its crypto and its peer object for A, and what the checks need to remember.
struct Node {
    a: u32,
    b: u32,
    crypto: Crypto,
    peer: Peer,
    /// Every envelope A's crypto sealed.
    sealed: HashSet<Bytes>,
    /// Every envelope B's crypto accepted.
    accepted: HashSet<Bytes>,
    /// Recent envelopes, for tampering and replays.
    history: Vec<Bytes>,
}

impl Node {
    /// A frame arrives at B from the network.
    fn receive(&mut self, now: Instant, frame: Bytes) {
        let before = self.crypto.stats().dropped_total();
        let r = self.crypto.receive(now, frame.clone());
        let after = self.crypto.stats().dropped_total();
        let d = match r {
            Ok(Received::Decrypted(d)) => d,
            // Discovery in clear is accepted, as the kernel accepts it (it never brings a
            // link up with a keyless node); nothing else in clear.
            Ok(Received::Clear(f)) => {
                let discovery = Header::new_checked(&f[..])
                    .is_ok_and(|h| h.user() == tipc_transport::wire::user::LINK_CONFIG);
                assert!(discovery, "a keyed node accepted plaintext");
                assert_eq!(after, before);
                return;
            }
            Err(_) => {
                assert_eq!(after, before + 1, "a refusal is counted once");
                return;
            }
        };
        assert_eq!(after, before);
        assert!(
            self.sealed.contains(&frame),
            "accepted an envelope A never sealed"
        );
        assert!(self.accepted.insert(frame), "accepted an envelope twice");
        match classify(self.b, &d.packet) {
            Ok(Route::Unicast(from)) if from == self.a => self.peer.handle_packet(now, 0, d.packet),
            Ok(Route::Broadcast(from)) if from == self.a => {
                self.peer.handle_broadcast(now, d.packet)
            }
            _ => {}
        }
    }

    fn remember(&mut self, env: &Bytes) {
        self.sealed.insert(env.clone());
        if self.history.len() == 32 {
            self.history.remove(0);
        }
        self.history.push(env.clone());
    }
}

/// A seals `inner` for B; the envelopes go to B in the order the crypto gives them.
fn seal_and_deliver(a: &mut Crypto, node: &mut Node, now: Instant, inner: Bytes) {
    let Ok(s) = a.encrypt(now, inner, Some(node.b)) else {
        return;
    };
    let frames: Vec<Bytes> = s.frames().cloned().collect();
    for f in frames {
        node.remember(&f);
        node.receive(now, f);
    }
}

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let a_id = NodeId::from_str_id("a").expect("id");
    let b_id = NodeId::from_str_id("b").expect("id");
    let (aa, ba) = (a_id.hash(), b_id.hash());
    let run = RUN.fetch_add(1, Ordering::Relaxed);
    let mut ca = crypto(aa, a_id, ba, b_id, 1, t0, run);
    let mut node = Node {
        a: aa,
        b: ba,
        crypto: crypto(ba, b_id, aa, a_id, 2, t0, run),
        peer: Peer::new(ba, b_id, aa, a_id, 0x7f),
        sealed: HashSet::new(),
        accepted: HashSet::new(),
        history: Vec::new(),
    };
    let bearer = BearerParams {
        id: 0,
        if_name: "f0".into(),
        mtu: 1500,
        encap_hlen: 0,
        tolerance: Duration::from_millis(1500),
        priority: 10,
        min_win: 50,
        max_win: 50,
    };
    let seen = NeighborSighting {
        media_addr: MediaAddr::Mem(1),
        id: a_id,
        caps: 0x7f,
        signature: 1,
        is_request: false,
    };
    node.peer.handle_discovery(t0, &bearer, &seen, 100);
    // Establish: A resets, then activates with B's session, both sealed.
    seal_and_deliver(
        &mut ca,
        &mut node,
        t0,
        proto(LinkProtoType::Reset, aa, ba, 7, 0),
    );
    seal_and_deliver(
        &mut ca,
        &mut node,
        t0,
        proto(LinkProtoType::Activate, aa, ba, 7, 100),
    );

    let mut now = t0;
    let mut next_seqno: u16 = 1;
    let mut s = Script(data);
    let mut out = BytesMut::new();
    let mut steps = 0;
    while !s.0.is_empty() && steps < 256 {
        steps += 1;
        let op = s.u8();
        match op % 8 {
            // A well-formed data packet from A near the link's next seqno.
            0 | 1 => {
                let delta = (s.u8() as i8) / 16;
                let seqno = next_seqno.wrapping_add(delta as u16);
                if delta == 0 {
                    next_seqno = next_seqno.wrapping_add(1);
                }
                let len = usize::from(s.u8()) * 4;
                let ack = s.u16();
                let m = data_packet(aa, ba, seqno, ack, len);
                seal_and_deliver(&mut ca, &mut node, now, m.freeze());
            }
            // Any inner packet, sealed by A.
            2 => {
                let len = usize::from(s.u16() % 2048);
                let inner = Bytes::copy_from_slice(s.bytes(len));
                seal_and_deliver(&mut ca, &mut node, now, inner);
            }
            // An earlier envelope, tampered with.
            3 => {
                if node.history.is_empty() {
                    continue;
                }
                let i = usize::from(s.u8()) % node.history.len();
                let mut env = node.history[i].to_vec();
                for _ in 0..=s.u8() % 4 {
                    let pos = usize::from(s.u16());
                    let how = s.u8();
                    match how % 4 {
                        0 => env.truncate(pos % (env.len() + 1)),
                        1 => env.push(how),
                        _ if env.is_empty() => {}
                        _ => {
                            let p = pos % env.len();
                            env[p] ^= how | 1;
                        }
                    }
                }
                node.receive(now, Bytes::from(env));
            }
            // A replay of an earlier envelope.
            4 => {
                if node.history.is_empty() {
                    continue;
                }
                let i = usize::from(s.u8()) % node.history.len();
                let env = node.history[i].clone();
                node.receive(now, env);
            }
            // Plaintext: arbitrary bytes, or a well-formed data packet in clear.
            5 => {
                let f = if op & 0x80 != 0 {
                    let len = usize::from(s.u16() % 2048);
                    Bytes::copy_from_slice(s.bytes(len))
                } else {
                    data_packet(aa, ba, next_seqno, 0, 8).freeze()
                };
                node.receive(now, f);
            }
            // Time passes.
            6 => {
                now += Duration::from_millis(u64::from(s.u8()) * 20);
                node.peer.handle_timeout(now);
                node.crypto.handle_timeout(now);
                ca.handle_timeout(now);
            }
            // B sends to A.
            _ => {
                let len = usize::from(s.u16() % 4000);
                let m = data_packet(ba, aa, 0, 0, len);
                let _ = node.peer.send(now, m, 1);
            }
        }
        // What B's link sends goes out sealed by B's crypto; A's crypto must open it.
        loop {
            out.clear();
            if node.peer.poll_transmit(&mut out).is_none() {
                break;
            }
            let frame = out.split().freeze();
            let sealed = node
                .crypto
                .encrypt(now, frame, Some(aa))
                .expect("B's crypto seals what B's link sends");
            for f in sealed.frames() {
                match ca.receive(now, f.clone()) {
                    Ok(Received::Decrypted(_)) => {}
                    other => panic!("A cannot open what B sealed: {other:?}"),
                }
            }
        }
        while node.peer.poll_event().is_some() {}
        while node.crypto.poll_event().is_some() {}
        while ca.poll_event().is_some() {}
        for (_, l) in node.peer.links() {
            assert!(l.transmq_len + l.backlog_len + l.deferred_len < 20_000);
        }
    }
});
