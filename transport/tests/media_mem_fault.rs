//! In-memory media and the seeded fault injector.

use bytes::Bytes;
use std::time::Duration;
use tipc_transport::media::fault::Faulted;
use tipc_transport::media::{
    Dest, FaultConfig, FaultInjector, FaultyMedia, Media, MediaAddr, MemNetwork, RxFrame, TxFrame,
};

fn frame(dest: Dest, data: &[u8]) -> TxFrame {
    TxFrame::new(dest, Bytes::copy_from_slice(data))
}

async fn recv_some<M: Media>(m: &M) -> Vec<RxFrame> {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), m.recv_batch(&mut out))
        .await
        .expect("timed out")
        .expect("recv failed");
    out
}

/// Nothing arrives within 50 ms.
async fn assert_silent<M: Media>(m: &M) {
    let mut out = Vec::new();
    let r = tokio::time::timeout(Duration::from_millis(50), m.recv_batch(&mut out)).await;
    assert!(r.is_err(), "unexpected frames: {out:?}");
}

#[tokio::test]
async fn mem_unicast_reaches_only_destination() {
    let net = MemNetwork::new();
    let (a, b, c) = (net.attach(1), net.attach(2), net.attach(3));
    a.send_batch(&[frame(Dest::Unicast(MediaAddr::Mem(2)), b"hi")])
        .await
        .unwrap();
    let got = recv_some(&b).await;
    assert_eq!(got.len(), 1);
    assert_eq!(&got[0].data[..], b"hi");
    assert_eq!(got[0].src, MediaAddr::Mem(1));
    assert_silent(&c).await;
    assert_silent(&a).await;
}

#[tokio::test]
async fn mem_broadcast_reaches_all_but_sender() {
    let net = MemNetwork::new();
    let (a, b, c) = (net.attach(1), net.attach(2), net.attach(3));
    a.send_batch(&[frame(Dest::Broadcast, b"all")])
        .await
        .unwrap();
    for m in [&b, &c] {
        let got = recv_some(m).await;
        assert_eq!(&got[0].data[..], b"all");
    }
    assert_silent(&a).await;
}

#[tokio::test]
async fn mem_full_queue_drops_and_counts() {
    let net = MemNetwork::with_config(4, 1500);
    let (a, b) = (net.attach(1), net.attach(2));
    let frames: Vec<TxFrame> = (0..10u8)
        .map(|i| frame(Dest::Unicast(MediaAddr::Mem(2)), &[i]))
        .collect();
    a.send_batch(&frames).await.unwrap();
    let got = recv_some(&b).await;
    let firsts: Vec<u8> = got.iter().map(|f| f.data[0]).collect();
    assert_eq!(firsts, vec![0, 1, 2, 3]);
    let s = b.stats();
    assert_eq!((s.received, s.dropped_overflow), (4, 6));
    assert_eq!(a.stats().sent, 10);
}

#[tokio::test]
async fn mem_unknown_destination_is_counted_not_an_error() {
    let net = MemNetwork::new();
    let a = net.attach(1);
    a.send_batch(&[frame(Dest::Unicast(MediaAddr::Mem(99)), b"x")])
        .await
        .unwrap();
    assert_eq!(a.stats().dropped_unknown, 1);
}

#[tokio::test]
async fn mem_oversize_frame_is_refused() {
    let net = MemNetwork::with_config(8, 100);
    let (a, b) = (net.attach(1), net.attach(2));
    let err = a
        .send_batch(&[
            frame(Dest::Unicast(MediaAddr::Mem(2)), &[0; 101]),
            frame(Dest::Unicast(MediaAddr::Mem(2)), &[1; 10]),
        ])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    // The frame after the refused one still went out.
    assert_eq!(recv_some(&b).await[0].data.len(), 10);
}

#[tokio::test]
async fn mem_reattached_id_detaches_old_endpoint() {
    let net = MemNetwork::new();
    let old = net.attach(5);
    let _new = net.attach(5);
    let mut out = Vec::new();
    let err = old.recv_batch(&mut out).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotConnected);
}

fn run(cfg: FaultConfig, seed: u64, n: u32) -> (Vec<Faulted<u32>>, FaultInjector<u32>) {
    let mut inj = FaultInjector::new(cfg, seed);
    let mut out = Vec::new();
    for i in 0..n {
        inj.process(i, Bytes::from(i.to_be_bytes().to_vec()), &mut out);
    }
    (out, inj)
}

#[test]
fn fault_drop_rate_within_two_percent_over_10000() {
    let cfg = FaultConfig {
        drop: 0.2,
        ..Default::default()
    };
    for seed in [1, 2, 3, 0xDEAD_BEEF] {
        let (out, inj) = run(cfg, seed, 10_000);
        let dropped = inj.stats().dropped;
        assert!(
            (1800..=2200).contains(&dropped),
            "seed {seed}: {dropped} dropped"
        );
        assert_eq!(out.len() as u64, 10_000 - dropped);
    }
}

#[test]
fn fault_same_seed_gives_same_sequence() {
    let cfg = FaultConfig {
        drop: 0.2,
        duplicate: 0.1,
        reorder: 0.1,
        corrupt: 0.05,
        delay: Some((Duration::from_millis(1), Duration::from_millis(9))),
    };
    let (x, _) = run(cfg, 42, 2000);
    let (y, _) = run(cfg, 42, 2000);
    let (z, _) = run(cfg, 43, 2000);
    assert_eq!(x, y);
    assert_ne!(x, z);
}

#[test]
fn fault_reorder_swaps_neighbours() {
    let cfg = FaultConfig {
        reorder: 1.0,
        ..Default::default()
    };
    let (out, _) = run(cfg, 7, 6);
    let order: Vec<u32> = out.iter().map(|f| f.meta).collect();
    assert_eq!(order, vec![1, 0, 3, 2, 5, 4]);
}

#[test]
fn fault_duplicate_emits_twice() {
    let cfg = FaultConfig {
        duplicate: 1.0,
        ..Default::default()
    };
    let (out, inj) = run(cfg, 7, 3);
    let order: Vec<u32> = out.iter().map(|f| f.meta).collect();
    assert_eq!(order, vec![0, 0, 1, 1, 2, 2]);
    assert_eq!(inj.stats().duplicated, 3);
}

#[test]
fn fault_corrupt_changes_exactly_one_byte() {
    let cfg = FaultConfig {
        corrupt: 1.0,
        ..Default::default()
    };
    let (out, _) = run(cfg, 9, 500);
    for f in out {
        let orig = f.meta.to_be_bytes();
        let diff = f.data.iter().zip(orig).filter(|(a, b)| **a != *b).count();
        assert_eq!(diff, 1, "frame {}", f.meta);
    }
}

#[test]
fn fault_delay_within_configured_range() {
    let (lo, hi) = (Duration::from_millis(5), Duration::from_millis(10));
    let cfg = FaultConfig {
        delay: Some((lo, hi)),
        ..Default::default()
    };
    let (out, _) = run(cfg, 11, 200);
    assert!(out.iter().all(|f| f.delay >= lo && f.delay <= hi));
    assert!(out.iter().any(|f| f.delay != out[0].delay));
}

#[tokio::test]
async fn faulty_mem_drops_twenty_percent_of_10000() {
    let net = MemNetwork::with_config(20_000, 1500);
    let a = net.attach(1);
    let cfg = FaultConfig {
        drop: 0.2,
        ..Default::default()
    };
    let b = FaultyMedia::new(net.attach(2), cfg, 2024);
    let frames: Vec<TxFrame> = (0..10_000u32)
        .map(|i| frame(Dest::Unicast(MediaAddr::Mem(2)), &i.to_be_bytes()))
        .collect();
    a.send_batch(&frames).await.unwrap();
    let mut got = Vec::new();
    while b.stats().seen < 10_000 {
        tokio::time::timeout(Duration::from_secs(5), b.recv_batch(&mut got))
            .await
            .expect("timed out")
            .unwrap();
    }
    let dropped = b.stats().dropped;
    assert!((1800..=2200).contains(&dropped), "{dropped} dropped");
    assert_eq!(got.len() as u64, 10_000 - dropped);
    // Survivors keep their order.
    let ids: Vec<u32> = got
        .iter()
        .map(|f| u32::from_be_bytes([f.data[0], f.data[1], f.data[2], f.data[3]]))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
}

#[tokio::test]
async fn faulty_media_delays_received_frames() {
    let net = MemNetwork::new();
    let a = net.attach(1);
    let d = Duration::from_millis(30);
    let cfg = FaultConfig {
        delay: Some((d, d)),
        ..Default::default()
    };
    let b = FaultyMedia::new(net.attach(2), cfg, 1);
    let start = tokio::time::Instant::now();
    a.send_batch(&[frame(Dest::Unicast(MediaAddr::Mem(2)), b"late")])
        .await
        .unwrap();
    let got = recv_some(&b).await;
    assert_eq!(&got[0].data[..], b"late");
    assert!(start.elapsed() >= d, "arrived after {:?}", start.elapsed());
    assert_eq!(b.stats().delayed, 1);
}

#[tokio::test]
async fn faulty_media_send_faults_apply_to_sent_frames() {
    let net = MemNetwork::new();
    let cfg = FaultConfig {
        duplicate: 1.0,
        ..Default::default()
    };
    let a = FaultyMedia::new(net.attach(1), FaultConfig::default(), 5).with_tx_faults(cfg, 5);
    let b = net.attach(2);
    a.send_batch(&[frame(Dest::Unicast(MediaAddr::Mem(2)), b"two")])
        .await
        .unwrap();
    let got = recv_some(&b).await;
    assert_eq!(got.len(), 2);
    assert_eq!(a.tx_stats().map(|s| s.duplicated), Some(1));
    assert_eq!(a.stats().seen, 0);
}
