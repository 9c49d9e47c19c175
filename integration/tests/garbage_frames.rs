//! A live node fed random, truncated and corrupted frames on its UDP port keeps its link up,
//! keeps delivering real traffic exactly once and in order, and counts every frame it dropped.

use bytes::BytesMut;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;
use tipc_actors::{NodeEvent, TransportConfig, TransportNode};
use tipc_transport::media::{UdpConfig, UdpMedia, UdpRemote};
use tipc_transport::wire::{Header, BASIC_H_SIZE};
use tipc_transport::NodeId;

const GARBAGE: u64 = 30_000;

fn node(id: &str, port: u16, peer: u16) -> TransportNode {
    let udp = UdpMedia::bind(UdpConfig {
        local: format!("127.0.0.1:{port}").parse().unwrap(),
        remote: UdpRemote::Replicast(vec![format!("127.0.0.1:{peer}").parse().unwrap()]),
        mtu: None,
        name: "udp0".into(),
    })
    .expect("bind");
    // A network id no captured kernel discovery message carries.
    let mut cfg = TransportConfig::new(NodeId::from_str_id(id).unwrap());
    cfg.net_id = 1234;
    let n = TransportNode::new(cfg);
    n.enable_bearer(udp, "udp0", 50).expect("bearer");
    n
}

/// Real kernel frames (golden vectors), as raw bytes.
fn vectors() -> Vec<Vec<u8>> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../transport/tests/vectors/udp"
    );
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).expect("vectors") {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "hex") {
            let text = std::fs::read_to_string(&p).unwrap();
            let hex: String = text
                .lines()
                .filter(|l| !l.starts_with('#'))
                .flat_map(|l| l.chars())
                .filter(|c| c.is_ascii_hexdigit())
                .collect();
            let bytes: Vec<u8> = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            v.push(bytes);
        }
    }
    assert!(v.len() > 50, "expected the captured vectors");
    v
}

fn garbage(rng: &mut ChaCha8Rng, vecs: &[Vec<u8>]) -> Vec<u8> {
    let pick = |rng: &mut ChaCha8Rng| vecs[rng.next_u32() as usize % vecs.len()].clone();
    match rng.next_u32() % 4 {
        // Pure noise.
        0 => {
            let mut b = vec![0u8; 1 + rng.next_u32() as usize % 1500];
            rng.fill_bytes(&mut b);
            b
        }
        // A real frame cut short.
        1 => {
            let mut b = pick(rng);
            let n = rng.next_u32() as usize % b.len().max(1);
            b.truncate(n.max(1));
            b
        }
        // A real frame with a few bytes changed.
        2 => {
            let mut b = pick(rng);
            for _ in 0..1 + rng.next_u32() % 4 {
                let i = rng.next_u32() as usize % b.len();
                b[i] ^= 1 << (rng.next_u32() % 8);
            }
            b
        }
        // Header fields out of range: bad version, header size, size.
        _ => {
            let mut b = pick(rng);
            match rng.next_u32() % 3 {
                0 => b[0] = (b[0] & 0x1F) | (((rng.next_u32() % 8) as u8) << 5),
                1 => b[0] = (b[0] & 0xFE) | 1,
                _ => b[2] ^= 0x7F,
            }
            b
        }
    }
}

fn msg(from: u32, to: u32, seq: u64) -> BytesMut {
    let len = BASIC_H_SIZE + 32;
    let mut b = BytesMut::zeroed(len);
    let mut h = Header::new_unchecked(&mut b[..]);
    h.init(0, 3, BASIC_H_SIZE, len, from);
    h.set_orignode(from);
    h.set_destnode(to);
    b[BASIC_H_SIZE..BASIC_H_SIZE + 8].copy_from_slice(&seq.to_be_bytes());
    b
}

#[actix_rt::test]
async fn node_fed_garbage_keeps_link_up_and_counts_drops() {
    let ports = tipc_integration::cluster::free_udp_ports(2);
    let (pa, pb) = (ports[0], ports[1]);
    let a = node("ga", pa, pb);
    let b = node("gb", pb, pa);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    a.set_delivery(tx);
    let mut ev = a.events();
    tokio::time::timeout(Duration::from_secs(5), async {
        while !matches!(ev.recv().await, Ok(NodeEvent::NodeUp(_))) {}
    })
    .await
    .expect("link up");

    // Real traffic b -> a during the attack.
    let (fa, fb) = (a.addr(), b.addr());
    let sender = b.clone();
    let traffic = actix_rt::spawn(async move {
        for i in 0..5_000u64 {
            sender.send_wait(fa, msg(fb, fa, i), 3).await.expect("send");
            if i % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });

    let vecs = vectors();
    let mut rng = ChaCha8Rng::seed_from_u64(0x6172_6261_6765);
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..GARBAGE {
        let g = garbage(&mut rng, &vecs);
        sock.send_to(&g, ("127.0.0.1", pa)).await.unwrap();
        if i % 200 == 0 {
            // Pace the flood so the socket buffer never overflows: every frame must be counted.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    let mut next = 0u64;
    while next < 5_000 {
        let d = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("traffic stalled at {next}"))
            .unwrap();
        let h = Header::new_checked(&d.msg[..]).unwrap();
        let seq = u64::from_be_bytes(h.payload()[..8].try_into().unwrap());
        assert_eq!(seq, next, "real traffic duplicated or reordered");
        next += 1;
    }
    traffic.await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    while let Ok(e) = ev.try_recv() {
        assert!(
            !matches!(e, NodeEvent::LinkDown { .. } | NodeEvent::NodeDown(_)),
            "garbage took the link down: {e:?}"
        );
    }
    let links = a.links().await;
    assert_eq!(links.len(), 1);
    assert!(matches!(
        links[0].link.state,
        tipc_transport::link::LinkState::Established
    ));
    let s = a.bearer_stats(0).await.expect("bearer stats");
    // Frames whose version field says "encryption envelope" (7) go to the crypto first, which
    // counts and drops what it cannot open (this node holds no key).
    let sealed = a.crypto_info().stats.dropped_total();
    let dropped = s.rx_malformed + s.rx_misrouted + s.rx_unknown_peer + s.disc_dropped + sealed;
    eprintln!("bearer stats after {GARBAGE} garbage frames: {s:?}, crypto dropped {sealed}");
    assert_eq!(
        dropped, GARBAGE,
        "every garbage frame must be counted as dropped: {s:?}"
    );
}
