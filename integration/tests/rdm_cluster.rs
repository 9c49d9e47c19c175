//! Datagram (RDM) sockets on three transport nodes over UDP on 127.0.0.1: anycast round robin,
//! range multicast, unbound names, returned messages (NO_PORT, OVERLOAD) and droppable ones.

use std::collections::HashMap;
use std::time::Duration;
use tipc_actors::addr::{Scope, ServiceAddr, ServiceRange, SocketAddr};
use tipc_actors::sock::dgram::{DgramError, DgramSocket};
use tipc_actors::TransportNode;
use tipc_integration::cluster::udp_cluster;
use tipc_transport::wire::ErrorCode;

async fn cluster() -> Vec<TransportNode> {
    udp_cluster("r", 3).await
}

fn r(type_: u32, lower: u32, upper: u32) -> ServiceRange {
    ServiceRange::new(type_, lower, upper).unwrap()
}

async fn recv_t(s: &DgramSocket, ms: u64) -> Option<tipc_actors::socket::Received> {
    tokio::time::timeout(Duration::from_millis(ms), s.recv())
        .await
        .ok()
        .flatten()
}

/// Wait until every node's table has `n` bindings of `type_`.
async fn settle(nodes: &[TransportNode], type_: u32, n: usize) {
    for _ in 0..100 {
        let mut ok = true;
        for x in nodes {
            ok &= x
                .nametable()
                .await
                .iter()
                .filter(|p| p.range.type_() == type_)
                .count()
                == n;
        }
        if ok {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("bindings of type {type_} did not converge");
}

#[actix_rt::test]
async fn anycast_spreads_round_robin_and_multicast_reaches_overlapping_bindings_once() {
    let nodes = cluster().await;
    let mut servers = Vec::new();
    for n in &nodes {
        let mut s = n.dgram_socket();
        s.bind(r(6000, 1, 1), Scope::Cluster).await.unwrap();
        servers.push(s);
    }
    let mut m1 = nodes[1].dgram_socket();
    m1.bind(r(6001, 5, 9), Scope::Cluster).await.unwrap();
    let mut m2 = nodes[2].dgram_socket();
    m2.bind(r(6001, 8, 20), Scope::Cluster).await.unwrap();
    settle(&nodes, 6000, 3).await;
    settle(&nodes, 6001, 2).await;

    let client = nodes[0].dgram_socket();
    for i in 0..30u32 {
        client
            .send_to_service(
                ServiceAddr {
                    type_: 6000,
                    instance: 1,
                },
                &i.to_be_bytes(),
            )
            .await
            .unwrap();
    }
    let mut counts = HashMap::new();
    for (k, s) in servers.iter().enumerate() {
        while let Some(m) = recv_t(s, 300).await {
            assert_eq!(m.from, client.addr());
            *counts.entry(k).or_insert(0) += 1;
        }
    }
    assert_eq!(
        counts,
        HashMap::from([(0, 10), (1, 10), (2, 10)]),
        "round robin over 3 nodes"
    );

    // [0, 7] overlaps only 5..9; [9, 9] overlaps both; each reached socket gets one copy.
    client.send_to_range(r(6001, 0, 7), b"low").await.unwrap();
    client.send_to_range(r(6001, 9, 9), b"nine").await.unwrap();
    let mut got1 = Vec::new();
    while let Some(m) = recv_t(&m1, 300).await {
        got1.push(m.data.to_vec());
    }
    let mut got2 = Vec::new();
    while let Some(m) = recv_t(&m2, 300).await {
        got2.push(m.data.to_vec());
    }
    assert_eq!(got1, vec![b"low".to_vec(), b"nine".to_vec()]);
    assert_eq!(got2, vec![b"nine".to_vec()]);

    assert_eq!(
        client
            .send_to_service(
                ServiceAddr {
                    type_: 6999,
                    instance: 1
                },
                b"x"
            )
            .await,
        Err(DgramError::NoDestination)
    );
    assert_eq!(
        client.send_to_range(r(6999, 0, 10), b"x").await,
        Err(DgramError::NoDestination)
    );
}

#[actix_rt::test]
async fn rejected_messages_come_back_when_returnable_and_vanish_when_droppable() {
    let nodes = cluster().await;
    let mut client = nodes[0].dgram_socket();
    let gone = nodes[1].dgram_socket();
    let dead = gone.addr();
    gone.close().await;

    // Droppable (the default): nothing comes back.
    client.send_to_socket(dead, b"drop me").await.unwrap();
    assert!(recv_t(&client, 300).await.is_none());

    // Returnable: NO_PORT, with the original destination and the data.
    client.set_returnable(true);
    client.send_to_socket(dead, b"come back").await.unwrap();
    let m = recv_t(&client, 2000).await.expect("returned message");
    let ret = m.returned.expect("marked returned");
    assert_eq!(ret.error, ErrorCode::NoPort);
    assert_eq!(
        ret.dest,
        SocketAddr {
            node: nodes[1].addr(),
            port: dead.port
        }
    );
    assert_eq!(&m.data[..], b"come back");

    // Overload: a socket that never reads, with the smallest buffer, flooded from another node.
    let sink = nodes[2].dgram_socket();
    sink.set_rcvbuf(512 * 1024).await.unwrap();
    let data = vec![0u8; 4000];
    for _ in 0..400 {
        client.send_to_socket(sink.addr(), &data).await.unwrap();
    }
    let mut overload = 0;
    while let Some(m) = recv_t(&client, 500).await {
        if m.returned.map(|r| r.error) == Some(ErrorCode::Overload) {
            overload += 1;
            assert!(
                m.data.len() <= 1024,
                "returned data truncated to 1024 bytes"
            );
        }
    }
    assert!(
        overload > 200,
        "a full socket must return the excess: {overload} returned"
    );
}

#[actix_rt::test]
async fn recv_batch_returns_every_queued_message_in_order() {
    let nodes = cluster().await;
    let rx = nodes[1].dgram_socket();
    let tx = nodes[0].dgram_socket();
    for i in 0..50u32 {
        tx.send_to_socket(rx.addr(), &i.to_be_bytes())
            .await
            .unwrap();
    }
    let mut got = Vec::new();
    while got.len() < 50 {
        let b = tokio::time::timeout(Duration::from_secs(2), rx.recv_batch(16))
            .await
            .expect("batch");
        assert!(!b.is_empty() && b.len() <= 16);
        got.extend(
            b.into_iter()
                .map(|m| u32::from_be_bytes(m.data[..4].try_into().unwrap())),
        );
    }
    assert_eq!(got, (0..50).collect::<Vec<u32>>());
}

#[actix_rt::test]
async fn burst_far_beyond_the_link_window_arrives_once_in_order() {
    let nodes = cluster().await;
    let rx = nodes[1].dgram_socket();
    rx.set_rcvbuf(16 << 20).await.unwrap();
    let mut tx = nodes[0].dgram_socket();
    // MEDIUM: backlog limit 200 packets. 40 kB messages are 3 fragments each, so one barrier
    // window of 64 posts (192 packets) on top of the 50-packet window overruns it.
    tx.set_importance(1).unwrap();
    const N: u32 = 1_000;
    let dest = rx.addr();
    let sender = actix_rt::spawn(async move {
        let mut data = vec![0u8; 40_000];
        for i in 0..N {
            data[..4].copy_from_slice(&i.to_be_bytes());
            tx.send_to_socket(dest, &data).await.unwrap();
        }
        tx
    });
    let mut next = 0u32;
    while next < N {
        let b = tokio::time::timeout(Duration::from_secs(10), rx.recv_batch(1024))
            .await
            .unwrap_or_else(|_| panic!("stalled at {next}"));
        for m in b {
            assert!(
                m.returned.is_none(),
                "nothing may come back: {:?}",
                m.returned
            );
            assert_eq!(u32::from_be_bytes(m.data[..4].try_into().unwrap()), next);
            next += 1;
        }
    }
    let _tx = sender.await.unwrap();
    let links = nodes[0].links().await;
    let congs: u64 = links.iter().map(|l| l.link.stats.link_congs).sum();
    eprintln!("link congestion episodes: {congs}");
    assert!(
        congs > 0,
        "the burst must have congested the link (test exercises parking)"
    );
}

#[actix_rt::test]
async fn messages_queued_for_a_node_that_died_come_back_with_no_node() {
    use tipc_integration::cluster::{free_udp_ports, udp_node};
    let ports = free_udp_ports(2);
    let a = udp_node("da", ports[0], &[ports[1]]);
    // Node b lives on its own arbiter (thread) so that it can die without a word.
    let arb = actix_rt::Arbiter::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let (pb, pa) = (ports[1], ports[0]);
    arb.spawn(async move {
        let b = udp_node("db", pb, &[pa]);
        let s = b.dgram_socket();
        let _ = tx.send(s.addr());
        // Keep node b and its socket alive until the arbiter stops.
        std::future::pending::<()>().await;
        drop((b, s));
    });
    let dest = rx.await.unwrap();
    let mut ev = a.events();
    tokio::time::timeout(Duration::from_secs(5), async {
        while !matches!(ev.recv().await, Ok(tipc_actors::NodeEvent::NodeUp(_))) {}
    })
    .await
    .expect("link up");
    arb.stop();
    tokio::time::sleep(Duration::from_millis(50)).await;

    let mut s = a.dgram_socket();
    s.set_returnable(true);
    for i in 0..100u32 {
        let mut data = vec![0u8; 1000];
        data[..4].copy_from_slice(&i.to_be_bytes());
        s.send_to_socket(dest, &data).await.unwrap();
    }
    let mut returned = 0;
    while returned < 100 {
        let m = tokio::time::timeout(Duration::from_secs(5), s.recv())
            .await
            .unwrap_or_else(|_| panic!("only {returned} of 100 came back"))
            .unwrap();
        let r = m.returned.expect("only returned messages can arrive");
        assert_eq!(r.error, ErrorCode::NoNode);
        assert_eq!(r.dest, dest);
        returned += 1;
    }
}

/// A binding withdrawn while messages to it are in flight: every message is accounted for.
/// Those that reached the socket before it closed come back NO_PORT (returnable, queued at
/// close), those that arrive after find no socket and no binding on the secondary lookup and
/// come back NO_NAME; once the withdrawal reaches the sender its sends fail locally.
#[actix_rt::test]
async fn messages_racing_a_withdrawal_come_back_with_no_port_or_no_name() {
    let nodes = cluster().await;
    let mut server = nodes[1].dgram_socket();
    server.bind(r(6100, 7, 7), Scope::Cluster).await.unwrap();
    settle(&nodes, 6100, 1).await;
    let mut client = nodes[0].dgram_socket();
    client.set_returnable(true);
    let name = ServiceAddr {
        type_: 6100,
        instance: 7,
    };
    let (close_tx, close_rx) = tokio::sync::oneshot::channel::<()>();
    let closer = actix_rt::spawn(async move {
        let _ = close_rx.await;
        server.close().await;
    });
    let mut close_tx = Some(close_tx);
    let mut sent = 0u32;
    loop {
        match client.send_to_service(name, &sent.to_be_bytes()).await {
            Ok(()) => sent += 1,
            Err(DgramError::NoDestination) => break,
            Err(e) => panic!("unexpected send error {e:?}"),
        }
        if sent == 300 {
            if let Some(tx) = close_tx.take() {
                let _ = tx.send(());
            }
        }
        assert!(sent < 1_000_000, "the withdrawal never reached the sender");
    }
    closer.await.unwrap();
    let mut codes: HashMap<ErrorCode, u32> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    while (seen.len() as u32) < sent {
        let m = recv_t(&client, 3000).await.unwrap_or_else(|| {
            panic!(
                "{} of {sent} came back: {codes:?} (silent loss)",
                seen.len()
            )
        });
        let ret = m.returned.expect("only returned messages can arrive");
        let i = u32::from_be_bytes(m.data[..4].try_into().unwrap());
        assert!(seen.insert(i), "message {i} returned twice");
        *codes.entry(ret.error).or_default() += 1;
    }
    eprintln!("sent {sent}, returned {codes:?}");
    assert!(
        codes
            .keys()
            .all(|c| matches!(c, ErrorCode::NoPort | ErrorCode::NoName)),
        "{codes:?}"
    );
    assert!(
        codes.get(&ErrorCode::NoName).copied().unwrap_or(0) > 0,
        "no message arrived after the socket closed: {codes:?} of {sent}"
    );
}

/// SOCK_DGRAM sockets: the same three address types and the same returns as RDM (the kernel
/// differs only in a header bit no one reads), between DGRAM and RDM sockets on other nodes.
#[actix_rt::test]
async fn dgram_sockets_do_unicast_anycast_multicast_and_returns_like_rdm() {
    use tipc_actors::sock::dgram::DgramKind;
    let nodes = cluster().await;
    let mut a = nodes[1].datagram_socket(DgramKind::Dgram);
    let mut b = nodes[2].dgram_socket();
    a.bind(r(6200, 1, 1), Scope::Cluster).await.unwrap();
    b.bind(r(6200, 2, 2), Scope::Cluster).await.unwrap();
    settle(&nodes, 6200, 2).await;
    let mut c = nodes[0].datagram_socket(DgramKind::Dgram);
    assert_eq!(c.kind(), DgramKind::Dgram);
    assert_eq!(b.kind(), DgramKind::Rdm);
    // Anycast to the DGRAM socket, multicast to both, unicast to the RDM one.
    let svc = ServiceAddr {
        type_: 6200,
        instance: 1,
    };
    c.send_to_service(svc, b"any").await.unwrap();
    c.send_to_range(r(6200, 0, 9), b"multi").await.unwrap();
    c.send_to_socket(b.addr(), b"uni").await.unwrap();
    let mut at_a = Vec::new();
    while let Some(m) = recv_t(&a, 500).await {
        assert_eq!(m.from, c.addr());
        at_a.push(m.data);
    }
    let mut at_b = Vec::new();
    while let Some(m) = recv_t(&b, 500).await {
        at_b.push(m.data);
    }
    // The multicast goes to two remote nodes of three: on the broadcast link, which is not
    // ordered against the socket's unicasts on the unicast links (as in the kernel; only
    // groups order across modes). Each arrives once.
    at_a.sort();
    at_b.sort();
    assert_eq!(at_a, vec![&b"any"[..], &b"multi"[..]]);
    assert_eq!(at_b, vec![&b"multi"[..], &b"uni"[..]]);
    // A reply from the DGRAM server reaches the DGRAM client.
    a.send_to_socket(c.addr(), b"reply").await.unwrap();
    assert_eq!(&recv_t(&c, 2000).await.expect("reply").data[..], b"reply");
    // Dropped by default, returned when asked.
    let gone = nodes[1].datagram_socket(DgramKind::Dgram);
    let dead = gone.addr();
    gone.close().await;
    c.send_to_socket(dead, b"x").await.unwrap();
    assert!(recv_t(&c, 300).await.is_none());
    c.set_returnable(true);
    c.send_to_socket(dead, b"y").await.unwrap();
    let m = recv_t(&c, 2000).await.expect("returned");
    assert_eq!(m.returned.map(|r| r.error), Some(ErrorCode::NoPort));
    assert!(a.unbind(r(6200, 1, 1)).await);
    assert!(b.unbind(r(6200, 2, 2)).await);
}

#[actix_rt::test]
async fn range_multicast_to_three_nodes_goes_on_the_broadcast_link_in_order() {
    let nodes = udp_cluster("m", 4).await;
    let mut rx = Vec::new();
    for n in &nodes[1..] {
        let mut s = n.dgram_socket();
        s.bind(r(6100, 0, 10), Scope::Cluster).await.unwrap();
        s.set_rcvbuf(4 << 20).await.unwrap();
        rx.push(s);
    }
    settle(&nodes, 6100, 3).await;
    let (before, peers) = nodes[0].bcast_stats();
    assert_eq!(peers, 3);
    let tx = nodes[0].dgram_socket();
    for i in 0..100u32 {
        tx.send_to_range(r(6100, 5, 5), &i.to_be_bytes())
            .await
            .unwrap();
    }
    for s in &rx {
        for i in 0..100u32 {
            let m = recv_t(s, 3000).await.expect("multicast");
            assert_eq!(&m.data[..], &i.to_be_bytes(), "in order, none missing");
        }
    }
    // Three remote nodes of four (more than 1 + 4/10): the broadcast link.
    let (after, _) = nodes[0].bcast_stats();
    // Each a packet, or bundled into one behind a full window.
    let carried = (after.tx_packets - before.tx_packets) + (after.tx_bundled - before.tx_bundled);
    assert_eq!(carried, 100);
}

#[actix_rt::test]
async fn range_multicast_switching_between_replicast_and_broadcast_keeps_send_order() {
    let nodes = udp_cluster("w", 4).await;
    // Node 1 is in both ranges; nodes 2 and 3 only in the wide one.
    let mut a = nodes[1].dgram_socket();
    a.bind(r(6300, 0, 10), Scope::Cluster).await.unwrap();
    a.set_rcvbuf(4 << 20).await.unwrap();
    let mut others = Vec::new();
    for n in &nodes[2..] {
        let mut s = n.dgram_socket();
        s.bind(r(6300, 5, 10), Scope::Cluster).await.unwrap();
        s.set_rcvbuf(4 << 20).await.unwrap();
        others.push(s);
    }
    settle(&nodes, 6300, 3).await;
    let tx = nodes[0].dgram_socket();
    // Every node advertises TIPC_MCAST_RBCTL: each change of method is synchronised.
    for i in 0..100u32 {
        let range = if i % 2 == 0 {
            r(6300, 1, 1)
        } else {
            r(6300, 0, 10)
        };
        tx.send_to_range(range, &i.to_be_bytes()).await.unwrap();
    }
    for i in 0..100u32 {
        let m = recv_t(&a, 3000).await.expect("multicast at node 1");
        assert_eq!(
            &m.data[..],
            &i.to_be_bytes(),
            "in send order across switches"
        );
    }
    for s in &others {
        for i in (1..100u32).step_by(2) {
            let m = recv_t(s, 3000).await.expect("multicast");
            assert_eq!(&m.data[..], &i.to_be_bytes());
        }
        assert!(recv_t(s, 100).await.is_none(), "no dummy delivered");
    }
    assert!(recv_t(&a, 100).await.is_none(), "no dummy delivered");
}
