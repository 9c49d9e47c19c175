//! UDP media over real loopback sockets (127.0.0.1 and ::1).

use bytes::Bytes;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tipc_transport::media::udp::{IPV4_DEFAULT_MTU, IPV6_MTU};
use tipc_transport::media::{
    Dest, Media, MediaAddr, RxFrame, TxFrame, UdpConfig, UdpMedia, UdpRemote,
};

fn replicast(ip: &str, peers: Vec<SocketAddr>) -> io::Result<UdpMedia> {
    UdpMedia::bind(UdpConfig {
        local: format!("{ip}:0").parse().unwrap(),
        remote: UdpRemote::Replicast(peers),
        mtu: None,
        name: "t".into(),
    })
}

fn udp_addr(m: &UdpMedia) -> SocketAddr {
    match m.local_addr() {
        MediaAddr::Udp(sa) => sa,
        other => panic!("not a UDP address: {other}"),
    }
}

/// Receive until `n` frames have arrived (or fail after 5 s).
async fn recv_n(m: &UdpMedia, n: usize) -> Vec<RxFrame> {
    let mut out = Vec::new();
    while out.len() < n {
        tokio::time::timeout(Duration::from_secs(5), m.recv_batch(&mut out))
            .await
            .expect("timed out waiting for frames")
            .expect("recv failed");
    }
    out
}

fn frame(dest: Dest, data: Vec<u8>) -> TxFrame {
    TxFrame::new(dest, Bytes::from(data))
}

async fn unicast_both_ways(ip: &str) {
    let a = replicast(ip, vec![]).unwrap();
    let b = replicast(ip, vec![]).unwrap();
    assert_ne!(udp_addr(&a).port(), 0);
    a.send_batch(&[frame(Dest::Unicast(b.local_addr()), b"ping".to_vec())])
        .await
        .unwrap();
    let got = recv_n(&b, 1).await;
    assert_eq!(&got[0].data[..], b"ping");
    assert_eq!(got[0].src, a.local_addr());
    b.send_batch(&[frame(Dest::Unicast(a.local_addr()), b"pong".to_vec())])
        .await
        .unwrap();
    let got = recv_n(&a, 1).await;
    assert_eq!(&got[0].data[..], b"pong");
    assert_eq!(got[0].src, b.local_addr());
}

#[tokio::test]
async fn udp_replicast_unicast_both_ways_ipv4() {
    unicast_both_ways("127.0.0.1").await;
}

#[tokio::test]
async fn udp_replicast_unicast_both_ways_ipv6() {
    unicast_both_ways("[::1]").await;
}

#[tokio::test]
async fn udp_gso_batch_of_ten_equal_frames_arrives_as_ten() {
    let a = replicast("127.0.0.1", vec![]).unwrap();
    let b = replicast("127.0.0.1", vec![]).unwrap();
    assert!(a.max_gso_segments() > 1, "GSO not available here");
    let frames: Vec<TxFrame> = (0..10u8)
        .map(|i| frame(Dest::Unicast(b.local_addr()), vec![i; 1200]))
        .collect();
    a.send_batch(&frames).await.unwrap();
    let got = recv_n(&b, 10).await;
    assert_eq!(got.len(), 10);
    for (i, f) in got.iter().enumerate() {
        assert_eq!(f.data.len(), 1200);
        assert!(f.data.iter().all(|&x| x == i as u8), "frame {i} corrupted");
        assert_eq!(f.src, a.local_addr());
    }
}

/// Frames in two parts (a header and a payload by reference): alone (`sendmsg` with two
/// iovecs), inline, and in GSO batches with one-part frames: each arrives as one datagram,
/// the parts joined.
#[tokio::test]
async fn udp_two_part_frames_arrive_whole_alone_inline_and_in_gso_batches() {
    let a = replicast("127.0.0.1", vec![]).unwrap();
    let b = replicast("127.0.0.1", vec![]).unwrap();
    let to = Dest::Unicast(b.local_addr());
    let two = |i: u8, head: usize, tail: usize| TxFrame {
        dest: to,
        data: Bytes::from(vec![i; head]),
        tail: Bytes::from(vec![i ^ 0x80; tail]),
    };
    let check = |got: &[RxFrame], want: &[TxFrame]| {
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.data, w.contiguous());
        }
    };
    let alone = [two(1, 40, 1400)];
    a.send_batch(&alone).await.unwrap();
    check(&recv_n(&b, 1).await, &alone);
    let inline = [
        two(2, 40, 700),
        TxFrame::new(to, Bytes::from(vec![3u8; 100])),
    ];
    assert_eq!(a.try_send_now(&inline), 2);
    check(&recv_n(&b, 2).await, &inline);
    // Equal total sizes in one GSO train whatever the split; then a shorter last one.
    let mut batch: Vec<TxFrame> = (0..20u8)
        .map(|i| two(i, 40 + i as usize, 1360 - i as usize))
        .collect();
    batch.push(TxFrame::new(to, Bytes::from(vec![7u8; 1400])));
    batch.push(two(99, 40, 100));
    a.send_batch(&batch).await.unwrap();
    check(&recv_n(&b, batch.len()).await, &batch);
}

#[tokio::test]
async fn udp_mixed_sizes_batch_arrives_in_order() {
    let a = replicast("127.0.0.1", vec![]).unwrap();
    let b = replicast("127.0.0.1", vec![]).unwrap();
    let sizes = [1000usize, 1000, 500, 1000, 1000, 1000, 20, 7000, 7000];
    let frames: Vec<TxFrame> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| frame(Dest::Unicast(b.local_addr()), vec![i as u8; n]))
        .collect();
    a.send_batch(&frames).await.unwrap();
    let got = recv_n(&b, sizes.len()).await;
    let lens: Vec<usize> = got.iter().map(|f| f.data.len()).collect();
    assert_eq!(lens, sizes);
    for (i, f) in got.iter().enumerate() {
        assert!(f.data.iter().all(|&x| x == i as u8));
    }
}

/// A batch of many GSO groups to two destinations, interleaved (one `sendmmsg` for more
/// groups than it takes at once): every frame arrives, in order per destination, intact.
#[tokio::test]
async fn udp_batch_of_many_groups_to_two_peers_arrives_in_order_per_peer() {
    let a = replicast("127.0.0.1", vec![]).unwrap();
    let b = replicast("127.0.0.1", vec![]).unwrap();
    let c = replicast("127.0.0.1", vec![]).unwrap();
    // 150 runs of frames: 1 to 4 frames of 900 bytes (the last of a run sometimes shorter),
    // alternating between b and c: 150 groups, more than one `sendmmsg` takes.
    let mut frames = Vec::new();
    let mut want: [Vec<(u16, usize)>; 2] = [Vec::new(), Vec::new()];
    let mut k = 0u16;
    for run in 0..150usize {
        let to = run % 2;
        let dest = [b.local_addr(), c.local_addr()][to];
        for j in 0..(1 + run % 4) {
            let len = if j == run % 4 && run % 3 == 0 {
                300
            } else {
                900
            };
            let mut d = vec![(k % 251) as u8; len];
            d[..2].copy_from_slice(&k.to_be_bytes());
            frames.push(frame(Dest::Unicast(dest), d));
            want[to].push((k, len));
            k += 1;
        }
    }
    a.send_batch(&frames).await.unwrap();
    for (m, want) in [(&b, &want[0]), (&c, &want[1])] {
        let got = recv_n(m, want.len()).await;
        let seen: Vec<(u16, usize)> = got
            .iter()
            .map(|f| (u16::from_be_bytes([f.data[0], f.data[1]]), f.data.len()))
            .collect();
        assert_eq!(&seen, want);
        for f in &got {
            let k = u16::from_be_bytes([f.data[0], f.data[1]]);
            assert!(
                f.data[2..].iter().all(|&x| x == (k % 251) as u8),
                "frame {k}"
            );
        }
    }
}

#[tokio::test]
async fn udp_broadcast_reaches_every_replicast_peer() {
    let b = replicast("127.0.0.1", vec![]).unwrap();
    let c = replicast("127.0.0.1", vec![]).unwrap();
    let a = replicast("127.0.0.1", vec![udp_addr(&b)]).unwrap();
    a.add_replicast(udp_addr(&c));
    a.add_replicast(udp_addr(&c)); // duplicates are ignored
    assert_eq!(a.replicast().len(), 2);
    let frames: Vec<TxFrame> = (0..3u8)
        .map(|i| frame(Dest::Broadcast, vec![i; 300]))
        .collect();
    a.send_batch(&frames).await.unwrap();
    for m in [&b, &c] {
        let got = recv_n(m, 3).await;
        assert_eq!(got.len(), 3);
        for (i, f) in got.iter().enumerate() {
            assert_eq!(&f.data[..], &[i as u8; 300][..]);
        }
    }
}

#[tokio::test]
async fn udp_bind_reports_port_in_use() {
    let a = replicast("127.0.0.1", vec![]).unwrap();
    let err = UdpMedia::bind(UdpConfig {
        local: udp_addr(&a),
        remote: UdpRemote::Replicast(vec![]),
        mtu: None,
        name: "t".into(),
    })
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    let text = err.to_string();
    assert!(
        text.contains("already in use") && text.contains("127.0.0.1"),
        "{text}"
    );
}

#[tokio::test]
async fn udp_bind_reports_address_not_available() {
    // 192.0.2.0/24 (TEST-NET-1) is never assigned here.
    let err = UdpMedia::bind(UdpConfig {
        local: "192.0.2.1:6118".parse().unwrap(),
        remote: UdpRemote::Replicast(vec![]),
        mtu: None,
        name: "t".into(),
    })
    .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::AddrNotAvailable);
    assert!(err.to_string().contains("192.0.2.1"), "{err}");
}

#[tokio::test]
async fn udp_mtu_defaults_per_family_and_override() {
    // lo has MTU 65536, so IPv4 gets the 14000 cap.
    assert_eq!(
        replicast("127.0.0.1", vec![]).unwrap().mtu(),
        IPV4_DEFAULT_MTU
    );
    assert_eq!(replicast("[::1]", vec![]).unwrap().mtu(), IPV6_MTU);
    let m = UdpMedia::bind(UdpConfig {
        local: "127.0.0.1:0".parse().unwrap(),
        remote: UdpRemote::Replicast(vec![]),
        mtu: Some(1400),
        name: "x".into(),
    })
    .unwrap();
    assert_eq!(m.mtu(), 1400);
    assert_eq!(m.bearer_name(), "udp:x");
}

#[tokio::test]
async fn udp_bind_rejects_unicast_group_and_unspecified_local() {
    let bad_group = UdpMedia::bind(UdpConfig {
        local: "127.0.0.1:0".parse().unwrap(),
        remote: UdpRemote::Multicast("127.0.0.2:6118".parse().unwrap()),
        mtu: None,
        name: "t".into(),
    });
    assert_eq!(bad_group.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    let any = UdpMedia::bind(UdpConfig {
        local: "0.0.0.0:0".parse().unwrap(),
        remote: UdpRemote::Replicast(vec![]),
        mtu: None,
        name: "t".into(),
    });
    assert_eq!(any.unwrap_err().kind(), io::ErrorKind::InvalidInput);
}
