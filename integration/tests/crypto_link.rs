//! Encryption between two of our transport nodes in one process, over real UDP sockets on
//! 127.0.0.1 (tipc-crypto.md §15): a cluster key on both brings the link up with every frame
//! sealed; duplicated (replayed) and corrupted (tampered) frames from the seeded fault
//! injector, and envelopes and plaintext from a stranger's socket, are dropped and counted by
//! the crypto and never delivered; a node with another key or none never gets a link.

use bytes::BytesMut;
use std::net::UdpSocket;
use std::time::{Duration, Instant};
use tipc_actors::{NodeEvent, TransportConfig, TransportNode};
use tipc_transport::crypto::{CryptoDrop, Key, KeySetting, KeyTarget};
use tipc_transport::media::{FaultConfig, FaultyMedia, UdpConfig, UdpMedia, UdpRemote};
use tipc_transport::wire::{Header, BASIC_H_SIZE};
use tipc_transport::NodeId;

const KEY: &str = "this_is_a_key16_salt";
const OTHER_KEY: &str = "that_is_a_key16_salt";

fn key(k: &str) -> KeySetting {
    KeySetting {
        key: Some(Key::parse(k).expect("key")),
        target: KeyTarget::Cluster,
        rekeying: None,
    }
}

/// A node on 127.0.0.1:`port` discovering `peer`, with `key` set before its bearer is
/// enabled, its receive path through the fault injector.
fn node(
    id: &str,
    port: u16,
    peer: u16,
    key_text: Option<&str>,
    faults: FaultConfig,
) -> TransportNode {
    let keys: Vec<KeySetting> = key_text.into_iter().map(key).collect();
    node_keyed(id, port, peer, keys, faults)
}

/// [`node`] with any keys, set before the bearer is enabled.
fn node_keyed(
    id: &str,
    port: u16,
    peer: u16,
    keys: Vec<KeySetting>,
    faults: FaultConfig,
) -> TransportNode {
    let udp = UdpMedia::bind(UdpConfig {
        local: format!("127.0.0.1:{port}").parse().unwrap(),
        remote: UdpRemote::Replicast(vec![format!("127.0.0.1:{peer}").parse().unwrap()]),
        mtu: None,
        name: "udp0".into(),
    })
    .expect("bind");
    let mut cfg = TransportConfig::new(NodeId::from_str_id(id).unwrap());
    cfg.seed = Some(port as u64);
    let n = TransportNode::new(cfg);
    for k in keys {
        n.set_key(k).expect("set key");
    }
    n.enable_bearer(FaultyMedia::new(udp, faults, port as u64), "udp0", 50)
        .expect("bearer");
    n
}

fn msg(from: u32, to: u32, seq: u64) -> BytesMut {
    let len = BASIC_H_SIZE + 64;
    let mut b = BytesMut::zeroed(len);
    let mut h = Header::new_unchecked(&mut b[..]);
    h.init(0, 3, BASIC_H_SIZE, len, from);
    h.set_orignode(from);
    h.set_destnode(to);
    h.set_origport(7);
    h.set_destport(9);
    b[BASIC_H_SIZE..BASIC_H_SIZE + 8].copy_from_slice(&seq.to_be_bytes());
    // The rest of the payload is a function of the sequence number: a tampered message that
    // got through would not match.
    for (i, x) in b[BASIC_H_SIZE + 8..].iter_mut().enumerate() {
        *x = (seq as u8).wrapping_mul(31).wrapping_add(i as u8);
    }
    b
}

async fn wait_up(n: &TransportNode, within: Duration) -> bool {
    let mut ev = n.events();
    if n.nodes().await.iter().any(|p| p.up) {
        return true;
    }
    tokio::time::timeout(within, async {
        loop {
            match ev.recv().await {
                Ok(NodeEvent::NodeUp(_)) => return,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    std::future::pending::<()>().await
                }
                _ => {}
            }
        }
    })
    .await
    .is_ok()
}

#[actix_rt::test]
async fn keyed_link_under_replay_and_tampering_delivers_every_message_once_intact_and_counts_drops()
{
    const COUNT: u64 = 20_000;
    let faults = FaultConfig {
        drop: 0.02,
        duplicate: 0.1,
        reorder: 0.02,
        corrupt: 0.1,
        delay: None,
    };
    let p = tipc_integration::cluster::free_udp_ports(2);
    let a = node("ka", p[0], p[1], Some(KEY), faults);
    let b = node("kb", p[1], p[0], Some(KEY), faults);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    b.set_delivery(tx);
    assert!(wait_up(&a, Duration::from_secs(10)).await, "keyed link up");
    let mut downs = a.events();
    let sender = {
        let a = a.clone();
        let (fa, fb) = (a.addr(), b.addr());
        tokio::spawn(async move {
            for i in 0..COUNT {
                a.send_wait(fb, msg(fa, fb, i), 7).await.expect("send");
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut next = 0u64;
    while next < COUNT {
        let left = deadline.saturating_duration_since(Instant::now());
        let d = tokio::time::timeout(left, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out at {next} of {COUNT}"))
            .expect("delivery channel");
        let m = &d.msg;
        let expect = msg(a.addr(), b.addr(), next);
        assert_eq!(
            &m[BASIC_H_SIZE..],
            &expect[BASIC_H_SIZE..],
            "message {next}"
        );
        next += 1;
    }
    sender.await.expect("sender");
    while let Ok(ev) = downs.try_recv() {
        assert!(
            !matches!(ev, NodeEvent::LinkDown { .. }),
            "link went down: {ev:?}"
        );
    }
    let ca = a.crypto_info();
    let cb = b.crypto_info();
    assert!(ca.sealing && cb.sealing);
    assert!(ca.stats.tx_ok > 0 && cb.stats.rx_ok > 0, "{ca:?} {cb:?}");
    // Every frame b accepted was an envelope: nothing in clear.
    assert_eq!(cb.stats.rx_clear, 0, "{:?}", cb.stats);
    // The injector on b's receive path duplicated and corrupted some of a's frames: each
    // duplicate that reached the link layer would have been a replay, each corrupted frame a
    // tampered envelope. The crypto dropped them before the link saw them.
    let replayed = cb.stats.dropped(CryptoDrop::Replayed);
    let tampered = cb.stats.dropped_total() - replayed;
    assert!(replayed > 0, "{:?}", cb.stats);
    assert!(
        cb.stats.dropped(CryptoDrop::DecryptFailed) > 0,
        "{:?}",
        cb.stats
    );
    println!(
        "a sealed {}, b opened {}, b dropped {} replayed and {} tampered",
        ca.stats.tx_ok, cb.stats.rx_ok, replayed, tampered
    );
}

/// The envelope captured from Linux 6.1 (tipc-crypto.md §15.7), replayed from a stranger's
/// socket, a made-up envelope, and a plaintext data packet: all dropped and counted.
#[actix_rt::test]
async fn keyed_node_drops_and_counts_stranger_envelopes_and_plaintext() {
    let p = tipc_integration::cluster::free_udp_ports(2);
    let none = FaultConfig::default();
    let a = node("sa", p[0], p[1], Some(KEY), none);
    let b = node("sb", p[1], p[0], Some(KEY), none);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    b.set_delivery(tx);
    assert!(wait_up(&b, Duration::from_secs(10)).await, "keyed link up");
    let before = b.crypto_info().stats;
    let stranger = UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = format!("127.0.0.1:{}", p[1]);
    // Plaintext data from a's address.
    let m = msg(a.addr(), b.addr(), 1);
    stranger.send_to(&m, &to).unwrap();
    // An envelope sealed with another key, claiming to come from a.
    let mut other = tipc_transport::crypto::Crypto::new(
        tipc_transport::crypto::CryptoConfig::new(a.addr(), a.id()),
        rand_chacha::ChaCha8Rng::seed_from_u64(7),
    );
    let now = std::time::Instant::now();
    other
        .set_key(now, Key::parse(OTHER_KEY).unwrap(), KeyTarget::Cluster)
        .unwrap();
    let forged = other
        .encrypt(now, m.clone().freeze(), Some(b.addr()))
        .unwrap();
    stranger.send_to(&forged.frame, &to).unwrap();
    // The same envelope with one ciphertext byte flipped.
    let mut flipped = forged.frame.to_vec();
    flipped[20] ^= 1;
    stranger.send_to(&flipped, &to).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = b.crypto_info().stats;
    assert_eq!(
        after.dropped(CryptoDrop::PlaintextRefused) - before.dropped(CryptoDrop::PlaintextRefused),
        1,
        "{after:?}"
    );
    assert_eq!(
        after.dropped(CryptoDrop::DecryptFailed) - before.dropped(CryptoDrop::DecryptFailed),
        2,
        "{after:?}"
    );
    assert!(rx.try_recv().is_err(), "something was delivered");
    assert!(
        b.nodes().await.iter().all(|n| n.up),
        "the real link stayed up"
    );
}

#[actix_rt::test]
async fn node_with_another_key_or_none_never_gets_a_link_and_attempts_are_counted() {
    let none = FaultConfig::default();
    let p = tipc_integration::cluster::free_udp_ports(4);
    let a = node("wa", p[0], p[1], Some(KEY), none);
    let b = node("wb", p[1], p[0], Some(OTHER_KEY), none);
    let c = node("wc", p[2], p[3], Some(KEY), none);
    let d = node("wd", p[3], p[2], None, none);
    tokio::time::sleep(Duration::from_secs(3)).await;
    for n in [&a, &b, &c, &d] {
        assert!(
            n.nodes().await.iter().all(|p| !p.up),
            "a link came up without the same key"
        );
    }
    let sa = a.crypto_info().stats;
    assert!(
        sa.dropped(CryptoDrop::DecryptFailed) > 0,
        "{sa:?} {:?}",
        b.crypto_info()
    );
    // The keyless node's discovery is accepted in clear, as the kernel accepts it (c knows
    // d, link down); d cannot open c's envelopes, so it never answers with link traffic.
    let sc = c.crypto_info().stats;
    assert!(sc.rx_clear > 0 && sc.rx_ok == 0, "{sc:?}");
    let sd = d.crypto_info().stats;
    assert!(sd.dropped(CryptoDrop::NoKey) > 0, "{sd:?}");
}

use rand_core::SeedableRng;

/// Master key on both nodes and a session key of each: the session keys are exchanged by
/// unicast KEY_DISTR (each node fails the other's probe clones and reports N=1) and the link
/// stays up.
#[actix_rt::test]
async fn master_key_nodes_exchange_their_session_keys() {
    let none = FaultConfig::default();
    let p = tipc_integration::cluster::free_udp_ports(2);
    let master = "this_is_a_master_key";
    let keys = |s: &str| {
        vec![
            KeySetting {
                key: Some(Key::parse(master).unwrap()),
                target: KeyTarget::Master,
                rekeying: None,
            },
            key(s),
        ]
    };
    let a = node_keyed("ma", p[0], p[1], keys("a_session_key16_salt"), none);
    let b = node_keyed("mb", p[1], p[0], keys("b_session_key16_salt"), none);
    assert!(wait_up(&a, Duration::from_secs(10)).await, "link up");
    let deadline = Instant::now() + Duration::from_secs(8);
    loop {
        let (sa, sb) = (a.crypto_info().stats, b.crypto_info().stats);
        if sa.keys_received >= 1 && sb.keys_received >= 1 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "keys not exchanged: {sa:?} {sb:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
