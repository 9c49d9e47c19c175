//! Communication groups on transport nodes over UDP on 127.0.0.1 (in one process): the four
//! modes, per-sender order across modes, member events, closed groups, flow control that
//! holds a fast sender back instead of dropping, and leaving.

use std::collections::HashMap;
use std::time::Duration;
use tipc_actors::addr::{ServiceAddr, SocketAddr};
use tipc_actors::group::GroupDest;
use tipc_actors::sock::group::{GroupMember, GroupRecv, GroupSendError, GroupSpec, Mode};
use tipc_actors::TransportNode;
use tipc_integration::cluster::udp_cluster;

const T: u32 = 4242;

async fn recv_t(m: &GroupMember, ms: u64) -> Option<GroupRecv> {
    tokio::time::timeout(Duration::from_millis(ms), m.recv())
        .await
        .ok()
        .flatten()
}

/// Wait until every member sees `n` other members up (panics after 5 s).
async fn settle(members: &[&GroupMember], n: usize) {
    for _ in 0..500 {
        if members.iter().all(|m| m.members_up() == n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let seen: Vec<usize> = members.iter().map(|m| m.members_up()).collect();
    panic!("members did not converge to {n} each: {seen:?}");
}

/// The data messages of `m` until `want` have come (events skipped), panicking after `ms`
/// of silence.
async fn messages(m: &GroupMember, want: usize, ms: u64) -> Vec<(SocketAddr, Mode, String)> {
    let mut v = Vec::new();
    while v.len() < want {
        match recv_t(m, ms).await {
            Some(GroupRecv::Message {
                from, mode, data, ..
            }) => v.push((from, mode, String::from_utf8_lossy(&data).into_owned())),
            Some(_) => {}
            None => panic!("{} of {want} messages, then silence", v.len()),
        }
    }
    v
}

async fn join(n: &TransportNode, instance: u32) -> GroupMember {
    n.join(GroupSpec::new(T, instance)).await.expect("join")
}

#[actix_rt::test]
async fn group_members_on_three_nodes_get_all_four_modes_in_send_order() {
    let nodes = udp_cluster("g", 3).await;
    let a = join(&nodes[0], 1).await;
    let b = join(&nodes[1], 2).await;
    let c = join(&nodes[2], 2).await;
    let d = join(&nodes[2], 3).await;
    settle(&[&a, &b, &c, &d], 3).await;

    // From a: broadcast, multicast to instance 2, anycast to instance 3, unicast to b,
    // interleaved; 200 rounds, read while sent (a window holds about 20 rounds).
    let rounds = 200;
    let mut expect_b = Vec::new();
    let mut expect_c = Vec::new();
    let mut expect_d = Vec::new();
    for i in 0..rounds {
        expect_b.extend([format!("b{i}"), format!("m{i}"), format!("u{i}")]);
        expect_c.extend([format!("b{i}"), format!("m{i}")]);
        expect_d.extend([format!("b{i}"), format!("a{i}")]);
    }
    let sender = async {
        let step = Duration::from_secs(5);
        let t = |f| tokio::time::timeout(step, f);
        for i in 0..rounds {
            t(a.send(GroupDest::Broadcast, format!("b{i}").into()))
                .await
                .expect("bcast")
                .unwrap();
            t(a.send(GroupDest::Multicast(2), format!("m{i}").into()))
                .await
                .expect("mcast")
                .unwrap();
            t(a.send(GroupDest::Anycast(3), format!("a{i}").into()))
                .await
                .expect("anycast")
                .unwrap();
            t(a.send(GroupDest::Member(b.addr()), format!("u{i}").into()))
                .await
                .expect("ucast")
                .unwrap();
        }
    };
    let (_, got_b, got_c, got_d) = tokio::join!(
        sender,
        messages(&b, expect_b.len(), 5000),
        messages(&c, expect_c.len(), 5000),
        messages(&d, expect_d.len(), 5000)
    );
    for (m, got, expect) in [
        (&b, got_b, expect_b),
        (&c, got_c, expect_c),
        (&d, got_d, expect_d),
    ] {
        assert!(got.iter().all(|(from, _, _)| *from == a.addr()));
        let texts: Vec<String> = got.iter().map(|(_, _, t)| t.clone()).collect();
        assert_eq!(texts, expect, "member {}", m.addr());
        for (_, mode, t) in &got {
            let want = match t.as_bytes()[0] {
                b'b' => Mode::Broadcast,
                b'm' => Mode::Multicast,
                _ => Mode::Unicast,
            };
            assert_eq!(*mode, want, "{t} at {}", m.addr());
        }
        assert!(
            recv_t(m, 50).await.is_none(),
            "nothing more at {}",
            m.addr()
        );
    }
    assert_eq!(a.stats().core.malformed, 0);
}

#[actix_rt::test]
async fn group_member_events_report_join_and_leave_after_the_last_message() {
    let nodes = udp_cluster("e", 2).await;
    let a = nodes[0]
        .join(GroupSpec::new(T, 1).with_events())
        .await
        .unwrap();
    let b = join(&nodes[1], 7).await;
    match recv_t(&a, 3000).await {
        Some(GroupRecv::MemberUp { member, sock }) => {
            assert_eq!(
                member,
                ServiceAddr {
                    type_: T,
                    instance: 7
                }
            );
            assert_eq!(sock, b.addr());
        }
        other => panic!("expected MEMBER_UP, got {other:?}"),
    }
    settle(&[&a, &b], 1).await;
    for i in 0..20 {
        b.broadcast(format!("x{i}")).await.unwrap();
    }
    let baddr = b.addr();
    b.leave();
    let got = messages(&a, 20, 2000).await;
    assert_eq!(got.last().map(|g| g.2.as_str()), Some("x19"));
    match recv_t(&a, 3000).await {
        Some(GroupRecv::MemberDown { member, sock }) => {
            assert_eq!(member.instance, 7);
            assert_eq!(sock, baddr);
        }
        other => panic!("expected MEMBER_DOWN, got {other:?}"),
    }
}

#[actix_rt::test]
async fn group_is_closed_to_a_socket_that_is_not_a_member() {
    let nodes = udp_cluster("c", 2).await;
    let a = join(&nodes[0], 1).await;
    let b = join(&nodes[1], 2).await;
    settle(&[&a, &b], 1).await;
    // A plain datagram socket sends to the member's socket address and to its service.
    let outsider = nodes[0].dgram_socket();
    let _ = outsider.send_to_socket(b.addr(), b"intruder").await;
    let _ = outsider
        .send_to_service(
            ServiceAddr {
                type_: T,
                instance: 2,
            },
            b"intruder",
        )
        .await;
    a.unicast(b.addr(), "member").await.unwrap();
    let got = messages(&b, 1, 2000).await;
    assert_eq!(got[0].2, "member");
    assert!(recv_t(&b, 200).await.is_none());
    // Both were counted where they were dropped: they are not group messages.
    let s = b.stats().core;
    assert_eq!(s.malformed + s.non_member, 2, "{s:?}");
    assert_eq!(s.delivered, 1);
}

#[actix_rt::test]
async fn group_sender_is_held_back_by_a_slow_reader_and_nothing_is_lost() {
    let nodes = udp_cluster("f", 2).await;
    let a = join(&nodes[0], 1).await;
    let b = join(&nodes[1], 2).await;
    settle(&[&a, &b], 1).await;
    // try_ sends until the window closes: the message comes back.
    let mut sent = 0u32;
    let blocked = loop {
        match a.try_unicast(b.addr(), vec![7u8; 1000]) {
            Ok(()) => sent += 1,
            Err(GroupSendError::Congested(m)) => break m,
            Err(e) => panic!("{e}"),
        }
        assert!(sent < 10_000, "window never closed");
    };
    assert_eq!(blocked.len(), 1000);
    // Then a waiting sender completes as the reader reads.
    let total = sent + 500;
    let sender = async {
        for _ in 0..500 {
            a.unicast(b.addr(), vec![7u8; 1000]).await.unwrap();
        }
    };
    let reader = async {
        let mut n = 0u32;
        let mut counts: HashMap<Mode, u32> = HashMap::new();
        while n < total {
            match recv_t(&b, 3000).await {
                Some(GroupRecv::Message { mode, data, .. }) => {
                    assert_eq!(data.len(), 1000);
                    *counts.entry(mode).or_default() += 1;
                    n += 1;
                }
                Some(_) => {}
                None => panic!("{n} of {total}, then silence"),
            }
        }
        n
    };
    let ((), n) = tokio::join!(sender, reader);
    assert_eq!(n, total);
    let s = b.stats();
    assert_eq!(s.driver.rcvbuf_dropped, 0);
    assert!(
        s.driver.max_queued_bytes <= 66 * 1024 * 12,
        "queue peaked at {} bytes",
        s.driver.max_queued_bytes
    );
}

#[actix_rt::test]
async fn group_broadcasts_in_a_row_go_on_the_broadcast_link_and_arrive_in_order() {
    let nodes = udp_cluster("b", 3).await;
    let a = join(&nodes[0], 1).await;
    let b = join(&nodes[1], 2).await;
    let c = join(&nodes[2], 3).await;
    settle(&[&a, &b, &c], 2).await;
    let (before, peers) = nodes[0].bcast_stats();
    assert_eq!(peers, 2);
    let sender = async {
        for i in 0..100 {
            a.broadcast(format!("b{i}")).await.unwrap();
        }
    };
    let (_, gb, gc) = tokio::join!(sender, messages(&b, 100, 3000), messages(&c, 100, 3000));
    let want: Vec<String> = (0..100).map(|i| format!("b{i}")).collect();
    for got in [gb, gc] {
        let texts: Vec<String> = got.into_iter().map(|(_, _, t)| t).collect();
        assert_eq!(texts, want);
    }
    // The first went by replicast with an ack request, the others on the broadcast link
    // (a packet each, or bundled into one behind a full window).
    let (after, _) = nodes[0].bcast_stats();
    let carried = (after.tx_packets - before.tx_packets) + (after.tx_bundled - before.tx_bundled);
    assert!(carried >= 90, "{carried} messages on the broadcast link");
}
