//! The group core ([`GroupCore`], kernel `group.c`) against Linux 6.1 frames: every
//! GROUP_PROTOCOL message it builds equals the kernel's golden vector on the group fields
//! (w0, w1 bits 31-16, w3-w9; the link-stamped w1 bits 15-0 and w2 are 0 in ours), built in
//! the situation the kernel was in (same ports and nodes), and the kernel's frames fed in
//! drive the documented transitions.
//!
//! Vectors: tipc-protocol.md's `captures/groups/README.md` §2 (four 6.1.192 nodes ga..gd,
//! UDP bearer; copied below as hex), and the two-node conversations 080-093 and 140-147 of
//! `transport/tests/vectors/eth` (6.1.0-56).

mod group_common;

use bytes::Bytes;
use group_common::*;
use tipc_actors::group::{
    Cast, GroupCore, GroupDest, GroupEvent, GroupSendError, MemberState, Method, Transmit,
};
use tipc_actors::socket::replicast_copy;
use tipc_transport::wire::{GroupProtoType, Header};

// captures/groups/README.md §2, in its order.
/// s8-window #770, ga→gc: an existing member (3 bcasts sent) answers a newcomer whose JOIN
/// came before its binding.
const GRP_JOIN: &str =
    "534800280000001d004c003d676100003c8a13158241fe8567610000676300000000000000030041";
/// s1-join #249, gb→ga: the joining socket's JOIN (member still PUBLISHED).
const GRP_JOIN_ADV0: &str =
    "53480028000000010002000367620000f15f7cbc5fba51c567620000676100000000000000000000";
/// s5-leave #400, gb→ga: close() after 5 bcasts/mcasts.
const GRP_LEAVE: &str =
    "53480028200000120025002267620000165bcc264d91728b67620000676100000000000000050000";
/// s8-window #265, gb→ga: first 20-block message read, JOINED→ACTIVE.
const GRP_ADV: &str =
    "53480028400000220059005d67620000f3e9973bad394b33676200006761000000000000000002df";
/// s6-reclaim #244, gb:3→ga: a sender blocked on a member it holds as PUBLISHED.
const GRP_ADV_ADV0: &str =
    "5348002840000014002b002b67620000078547c18ae60b4767620000676100000000000000000000";
/// s2-bcast #364, gd→ga: answers the ack-request bcast with seqno 0.
const GRP_ACK: &str =
    "53480028600000050007000767640000bbbc980c414dd86267640000676100000000000000010000";
/// s6-reclaim #501, ga→gb:2 (oldest ACTIVE) when the 13th sender was read.
const GRP_RECLAIM: &str =
    "534800288000001a003a0039676100008ae60b471a04d6e467610000676200000000000000000000";
/// s6-reclaim #514, gb:2→ga: remitted = its window 780.
const GRP_REMIT: &str =
    "53480028a00000140039003b676200001a04d6e48ae60b47676200006761000000000000030c0000";
/// s2-bcast #413, ga→gb: unicast "u1" after 2 bcasts.
const GRP_UCAST: &str =
    "4168002ee0100005000a000a67610000414dd862d842f29467610000676200000000107400000000000200007531";
/// s5-leave #392, gb→ga: unicast "x4" right after a GRP_MCAST to instance 3 (stale w9).
const GRP_UCAST_STALE_W9: &str =
    "4168002ee01000120024002067620000165bcc264d91728b67620000676100000000107700000003000300007834";
/// s3-mcast #381, ga→gb: first mcast after join, replicast + ack request.
const GRP_MCAST_RCAST: &str = "416c002fc0100007000e001067610000beb3ffad0000000067610000676200000000107500000002000000016d6131";
/// s3-mcast #405, ga: second mcast, broadcast link.
const GRP_MCAST_BCLINK: &str = "4178002fc01000000000000b67610000beb3ffad0000126767610000000000000000107500000002000100006d6132";
/// s2-bcast #361, ga→gd: first bcast after join, replicast + ack request.
const GRP_BCAST_RCAST: &str =
    "416c002ea01000030006000767610000414dd8620000000067610000676400000000107400000000000000016231";
/// s2-bcast #388, ga: second bcast, broadcast link.
const GRP_BCAST_BCLINK: &str =
    "4178002ea01000000000000667610000414dd8620000126767610000000000000000107400000000000100006232";

/// The captures' network id, which the broadcast link writes into w5.
const NET_ID: u32 = 4711;

/// What the broadcast link does to a group broadcast (§5.4): non_seq, w5 = network id.
fn on_bclink(msg: &[u8]) -> Vec<u8> {
    let mut b = msg.to_vec();
    let mut h = Header::new_unchecked(&mut b[..]);
    h.set_non_seq(true);
    h.set_destport(NET_ID);
    b
}

fn members_msg(t: &Transmit) -> (&[u32], &Bytes, bool, Option<Method>) {
    match t {
        Transmit::Members {
            nodes,
            msg,
            ack_required,
            forced,
        } => (nodes, msg, *ack_required, *forced),
        other => panic!("not a group broadcast: {other:?}"),
    }
}

#[test]
fn peer_message_builders_match_kernel_vectors() {
    // The messages the tests feed as a peer's are the kernel's on the group fields.
    let ga = sa(GA, 0x414d_d862);
    let gd = sa(GD, 0xbbbc_980c);
    let ack = proto(gd, ga, GroupProtoType::Ack, 1, 0);
    assert_group_fields(&ack, &hex(GRP_ACK), "peer ACK");
    let b1 = data(
        ga,
        gd,
        tipc_transport::wire::DataType::GrpBcast,
        4212,
        0,
        0,
        true,
        b"b1",
    );
    assert_group_fields(&b1, &hex(GRP_BCAST_RCAST), "peer bcast");
}

#[test]
fn join_from_new_member_matches_kernel_join_with_zero_window() {
    let gb = sa(GB, 0xf15f_7cbc);
    let ga = sa(GA, 0x5fba_51c5);
    let mut g = GroupCore::new(gb, cfg(4201, 2, true)).expect("core");
    g.join([(ga, 1)]).expect("join");
    let t = transmits(&mut g);
    assert!(matches!(t[0], Transmit::Node { node: GA, .. }));
    assert_group_fields(&only_node_msg(&t), &hex(GRP_JOIN_ADV0), "GRP_JOIN adv 0");
    assert_eq!(g.member(ga).map(|m| m.state), Some(MemberState::Published));
}

#[test]
fn join_answering_newcomer_matches_kernel_join_with_syncpt_3_and_window_65() {
    let ga = sa(GA, 0x3c8a_1315);
    let gb = sa(GB, 0x0000_0077);
    let gc = sa(GC, 0x8241_fe85);
    let mut g = joined(ga, cfg(4229, 1, true), &[(gb, 2)], 65);
    for (i, p) in ["p1", "p2", "p3"].into_iter().enumerate() {
        g.send(GroupDest::Broadcast, Bytes::from(p)).expect("bcast");
        if i == 0 {
            g.handle_proto(&proto(gb, ga, GroupProtoType::Ack, 1, 0));
        }
    }
    transmits(&mut g);
    assert_eq!(g.bc_snd_nxt(), 3);
    // gc's JOIN comes before its binding: JOINING, nothing sent.
    g.handle_proto(&proto(gc, ga, GroupProtoType::Join, 0, 0));
    assert!(transmits(&mut g).is_empty());
    assert_eq!(g.member(gc).map(|m| m.state), Some(MemberState::Joining));
    g.handle_member_published(gc, 3);
    let t = transmits(&mut g);
    assert_group_fields(&only_node_msg(&t), &hex(GRP_JOIN), "GRP_JOIN syncpt 3");
    assert_eq!(g.member(gc).map(|m| m.state), Some(MemberState::Joined));
    assert_eq!(summary(&events(&mut g)), ["+2185363077"]);
}

/// s5-leave: gb:2 sends x1 x2 (bcast), x3 (mcast to instance 3: gc, gd), x4 (unicast to
/// ga), x5 x6 (bcast), then closes.
#[test]
fn unicast_after_mcast_and_leave_after_five_bcasts_match_kernel_frames() {
    let gb = sa(GB, 0x165b_cc26);
    let ga = sa(GA, 0x4d91_728b);
    let gc = sa(GC, 0x1111);
    let gd = sa(GD, 0x2222);
    let peers = [(ga, 1), (gc, 3), (gd, 3)];
    let mut g = joined(gb, cfg(4215, 2, true), &peers, 65);
    let acks = |g: &mut GroupCore, acked: u16| {
        for (p, _) in peers {
            g.handle_proto(&proto(p, gb, GroupProtoType::Ack, acked, 0));
        }
    };
    g.send(GroupDest::Broadcast, Bytes::from("x1")).expect("x1");
    acks(&mut g, 1);
    g.send(GroupDest::Broadcast, Bytes::from("x2")).expect("x2");
    g.send(GroupDest::Multicast(3), Bytes::from("x3"))
        .expect("x3");
    let t = transmits(&mut g);
    let (nodes, x3, ack, forced) = members_msg(&t[2]);
    assert_eq!(nodes, &[GA, GC, GD]);
    assert_eq!((ack, forced), (false, None));
    assert_eq!(word(x3, 9), 3);
    g.send(GroupDest::Member(ga), Bytes::from("x4"))
        .expect("x4");
    let x4 = only_node_msg(&transmits(&mut g));
    assert_group_fields(&x4, &hex(GRP_UCAST_STALE_W9), "GRP_UCAST stale w9");
    g.send(GroupDest::Broadcast, Bytes::from("x5")).expect("x5");
    let t = transmits(&mut g);
    assert_eq!(members_msg(&t[0]).3, Some(Method::Replicast));
    acks(&mut g, 4);
    g.send(GroupDest::Broadcast, Bytes::from("x6")).expect("x6");
    transmits(&mut g);
    g.leave();
    let t = transmits(&mut g);
    let leaves = protos(&t);
    assert_eq!(leaves.len(), 3, "a LEAVE to every member");
    assert!(leaves
        .iter()
        .all(|l| l.1 == GroupProtoType::Leave && l.2 == 5));
    let to_ga = t
        .iter()
        .find_map(|t| match t {
            Transmit::Node { node: GA, msg } => Some(msg.clone()),
            _ => None,
        })
        .expect("LEAVE to ga");
    assert_group_fields(&to_ga, &hex(GRP_LEAVE), "GRP_LEAVE syncpt 5");
}

#[test]
fn first_20_block_read_matches_kernel_adv_735_and_tops_up_with_200_at_the_11th() {
    let gb = sa(GB, 0xf3e9_973b);
    let ga = sa(GA, 0xad39_4b33);
    let mut g = joined(gb, cfg(4219, 2, true), &[(ga, 1)], 65);
    assert_eq!(g.member(ga).map(|m| m.advertised), Some(65));
    let big = vec![0x77u8; 20000];
    for _ in 0..11 {
        g.handle_data(ucast(ga, gb, 4219, 0, &big));
    }
    let ev = events(&mut g);
    assert_eq!(ev.len(), 11);
    let GroupEvent::Message(first) = &ev[0] else {
        panic!("data expected");
    };
    assert_eq!(first.blocks(), 20);
    g.handle_read(ga, first.blocks());
    let adv = only_node_msg(&transmits(&mut g));
    assert_group_fields(&adv, &hex(GRP_ADV), "GRP_ADV 735");
    assert_eq!(g.member(ga).map(|m| m.state), Some(MemberState::Active));
    for k in 2..=11 {
        g.handle_read(ga, 20);
        let p = protos(&transmits(&mut g));
        if k < 11 {
            assert!(p.is_empty(), "read {k}: {p:?}");
        } else {
            assert_eq!(p, [(ga, GroupProtoType::Adv, 0, 200)], "top-up at 580");
        }
    }
    assert_eq!(g.member(ga).map(|m| m.advertised), Some(780));
}

#[test]
fn sender_blocked_on_published_member_pushes_kernel_adv0_on_every_evaluation() {
    let gb3 = sa(GB, 0x0785_47c1);
    let ga = sa(GA, 0x8ae6_0b47);
    let mut g = GroupCore::new(gb3, cfg(4216, 3, false)).expect("core");
    g.join([(ga, 100)]).expect("join");
    transmits(&mut g);
    let r = g.send(GroupDest::Anycast(100), Bytes::from("first3"));
    assert!(matches!(r, Err(GroupSendError::Congested(_))));
    // Two lookups (the same member twice: round robin comes back to the first), two ADVs.
    let t = transmits(&mut g);
    assert_eq!(t.len(), 2);
    for t in &t {
        let Transmit::Node { msg, .. } = t else {
            panic!("node message");
        };
        assert_group_fields(msg, &hex(GRP_ADV_ADV0), "GRP_ADV adv 0");
    }
    // The retry waits on the chosen member: one evaluation, one more ADV(0) (three in all,
    // as captured).
    let r = g.send(GroupDest::Anycast(100), Bytes::from("first3"));
    assert!(matches!(r, Err(GroupSendError::Congested(_))));
    assert_eq!(
        protos(&transmits(&mut g)),
        [(ga, GroupProtoType::Adv, 0, 0)]
    );
    assert!(!g.poll_wakeup());
    // ga's JOIN brings its window: the sender may go.
    g.handle_proto(&proto(ga, gb3, GroupProtoType::Join, 0, 65));
    assert!(g.poll_wakeup());
    transmits(&mut g);
    g.send(GroupDest::Anycast(100), Bytes::from("first3"))
        .expect("window open");
    assert_eq!(g.member(ga).map(|m| m.window), Some(64));
}

/// s2-bcast from gd's side: the kernel's first broadcast (replicast, ack request) and
/// second one (broadcast link) fed in.
#[test]
fn kernel_bcasts_are_delivered_and_the_ack_request_answered_with_kernel_ack() {
    let gd = sa(GD, 0xbbbc_980c);
    let ga = sa(GA, 0x414d_d862);
    let mut g = joined(gd, cfg(4212, 4, true), &[(ga, 1)], 65);
    g.handle_data(Bytes::from(hex(GRP_BCAST_RCAST)));
    let t = transmits(&mut g);
    assert_group_fields(&only_node_msg(&t), &hex(GRP_ACK), "GRP_ACK");
    g.handle_data(Bytes::from(hex(GRP_BCAST_BCLINK)));
    assert!(transmits(&mut g).is_empty(), "no ack request, no ACK");
    let ev = events(&mut g);
    assert_eq!(summary(&ev), ["b1", "b2"]);
    let GroupEvent::Message(m) = &ev[0] else {
        panic!("data");
    };
    assert_eq!(
        (m.from, m.cast, m.service.type_),
        (ga, Cast::Broadcast, 4212)
    );
    assert_eq!(m.service.instance, 1);
    assert_eq!(g.member(ga).map(|m| m.bc_rcv_nxt), Some(2));
}

/// s6-reclaim: ga (instance 100) with 21 other members; 13 of them send one message each,
/// gb:2 first; reading the 13th makes gb:2 (the least recently read ACTIVE) RECLAIMING.
/// gb:2's own core answers with REMIT 780, and ga takes it: gb:2 back to JOINED.
#[test]
fn reclaim_at_13th_sender_and_remit_780_match_kernel_frames_and_transitions() {
    let ga = sa(GA, 0x8ae6_0b47);
    let gb2 = sa(GB, 0x1a04_d6e4);
    let nodes = [GB, GC, GD];
    let mut peers = vec![(gb2, 2)];
    for i in 1..=20u32 {
        peers.push((sa(nodes[i as usize % 3], 0x5000 + i), i + 2));
    }
    let mut g = joined(ga, cfg(4216, 100, false), &peers, 65);
    assert_eq!(g.max_active(), 16);
    for (n, (p, _)) in peers.iter().take(13).enumerate() {
        g.handle_data(ucast(*p, ga, 4216, 0, b"firstN"));
        g.handle_read(*p, 1);
        let t = transmits(&mut g);
        let pr = protos(&t);
        assert_eq!(pr[0], (*p, GroupProtoType::Adv, 0, 716), "sender {n}");
        if n < 12 {
            assert_eq!(pr.len(), 1);
        } else {
            assert_eq!(pr.len(), 2);
            assert_eq!(pr[1].0, gb2);
            let Transmit::Node { msg, .. } = &t[1] else {
                panic!("RECLAIM");
            };
            assert_group_fields(msg, &hex(GRP_RECLAIM), "GRP_RECLAIM");
        }
    }
    assert_eq!(
        g.member(gb2).map(|m| m.state),
        Some(MemberState::Reclaiming)
    );
    assert_eq!(g.active_count(), 13);

    // gb:2's side: admitted with ga's window 65, one anycast (64 left), ga's ADV 716 (780).
    let mut b = GroupCore::new(gb2, cfg(4216, 2, false)).expect("core");
    b.join([(ga, 100)]).expect("join");
    b.handle_proto(&proto(ga, gb2, GroupProtoType::Join, 0, 65));
    b.send(GroupDest::Anycast(100), Bytes::from("first2"))
        .expect("anycast");
    b.handle_proto(&proto(ga, gb2, GroupProtoType::Adv, 0, 716));
    transmits(&mut b);
    assert_eq!(b.member(ga).map(|m| m.window), Some(780));
    b.handle_proto(&proto(ga, gb2, GroupProtoType::Reclaim, 0, 0));
    let remit = only_node_msg(&transmits(&mut b));
    assert_group_fields(&remit, &hex(GRP_REMIT), "GRP_REMIT 780");
    assert_eq!(b.member(ga).map(|m| m.window), Some(65));

    g.handle_proto(&remit);
    let m = g.member(gb2).expect("member");
    assert_eq!((m.state, m.advertised), (MemberState::Joined, 65));
    assert_eq!(g.active_count(), 12);
    assert!(transmits(&mut g).is_empty(), "no PENDING member to promote");
}

/// s2-bcast from ga's side: b1 (replicast, ack request), acks, b2 (free method), u1.
#[test]
fn bcasts_and_unicast_after_join_match_kernel_frames() {
    let ga = sa(GA, 0x414d_d862);
    let gb = sa(GB, 0xd842_f294);
    let gc = sa(GC, 0x3333);
    let gd = sa(GD, 0xbbbc_980c);
    let peers = [(gb, 2), (gc, 3), (gd, 4)];
    let mut g = joined(ga, cfg(4212, 1, true), &peers, 65);
    g.send(GroupDest::Broadcast, Bytes::from("b1")).expect("b1");
    let t = transmits(&mut g);
    let (nodes, b1, ack, forced) = members_msg(&t[0]);
    assert_eq!(nodes, &[GB, GC, GD]);
    assert_eq!((ack, forced), (true, Some(Method::Replicast)));
    let copy = replicast_copy(b1, GD).expect("copy");
    assert_group_fields(&copy, &hex(GRP_BCAST_RCAST), "GRP_BCAST replicast");
    assert_eq!(g.bc_ackers(), 3);
    assert!(matches!(
        g.send(GroupDest::Broadcast, Bytes::from("b2")),
        Err(GroupSendError::Congested(_))
    ));
    for (p, _) in peers {
        g.handle_proto(&proto(p, ga, GroupProtoType::Ack, 1, 0));
    }
    assert!(g.poll_wakeup());
    g.send(GroupDest::Broadcast, Bytes::from("b2")).expect("b2");
    let t = transmits(&mut g);
    let (_, b2, ack, forced) = members_msg(&t[0]);
    assert_eq!((ack, forced), (false, None));
    assert_group_fields(&on_bclink(b2), &hex(GRP_BCAST_BCLINK), "GRP_BCAST bclink");
    g.send(GroupDest::Member(gb), Bytes::from("u1"))
        .expect("u1");
    let u1 = only_node_msg(&transmits(&mut g));
    assert_group_fields(&u1, &hex(GRP_UCAST), "GRP_UCAST");
    assert_eq!(g.bc_snd_nxt(), 2, "a unicast does not advance bc_snd_nxt");
}

/// s3-mcast: ga multicasts to instance 2 (gb, gc) with gd (instance 3) in the group.
#[test]
fn mcasts_to_all_member_nodes_match_kernel_frames() {
    let ga = sa(GA, 0xbeb3_ffad);
    let peers = [(sa(GB, 0x10), 2), (sa(GC, 0x20), 2), (sa(GD, 0x30), 3)];
    let mut g = joined(ga, cfg(4213, 1, true), &peers, 65);
    g.send(GroupDest::Multicast(2), Bytes::from("ma1"))
        .expect("ma1");
    let t = transmits(&mut g);
    let (nodes, ma1, ack, forced) = members_msg(&t[0]);
    assert_eq!(nodes, &[GB, GC, GD], "all member nodes, gd too");
    assert_eq!((ack, forced), (true, Some(Method::Replicast)));
    let copy = replicast_copy(ma1, GB).expect("copy");
    assert_group_fields(&copy, &hex(GRP_MCAST_RCAST), "GRP_MCAST replicast");
    assert_eq!(g.bc_ackers(), 3, "gd owes an ack too");
    for (p, _) in peers {
        g.handle_proto(&proto(p, ga, GroupProtoType::Ack, 1, 0));
    }
    g.send(GroupDest::Multicast(2), Bytes::from("ma2"))
        .expect("ma2");
    let t = transmits(&mut g);
    let (_, ma2, _, _) = members_msg(&t[0]);
    assert_group_fields(&on_bclink(ma2), &hex(GRP_MCAST_BCLINK), "GRP_MCAST bclink");
    for (p, _) in peers {
        assert_eq!(g.member(p).map(|m| m.window), Some(63), "{p}");
    }
}

/// One step of the eth conversations: our message equals the kernel frame on the group
/// fields.
fn step(ours: &[u8], prefix: &str) -> Vec<u8> {
    let k = eth_vector(prefix);
    assert_group_fields(ours, &k, prefix);
    k
}

/// Conversation 080-093 (eth): b is a member; a joins (b's binding known, so JOIN adv 0);
/// b sees a's JOIN before its binding and answers with JOIN adv 65; a broadcasts "hi"
/// (replicast, ack request), unicasts u, a, m (w10 keeps the ack-request bit of the
/// template); b acks, reads "hi" (ADV 716), echoes three unicasts; a reads one (ADV 716) and
/// leaves.
#[test]
fn two_cores_replay_kernel_conversation_080_to_093() {
    let a = sa(0x6100_0000, 0xf6a5_b8a5);
    let b = sa(0x6200_0000, 0x1832_c1b7);
    let mut cb = GroupCore::new(b, cfg(4242, 2, true)).expect("core b");
    cb.join([]).expect("join b");
    let mut ca = GroupCore::new(a, cfg(4242, 1, true)).expect("core a");
    ca.join([(b, 2)]).expect("join a");
    let k080 = step(&only_node_msg(&transmits(&mut ca)), "080-");
    cb.handle_proto(&k080);
    assert!(transmits(&mut cb).is_empty());
    cb.handle_member_published(a, 1);
    let k081 = step(&only_node_msg(&transmits(&mut cb)), "081-");
    ca.handle_proto(&k081);
    let k082 = step(&only_node_msg(&transmits(&mut ca)), "082-");
    cb.handle_proto(&k082);
    assert_eq!(summary(&events(&mut ca)), [format!("+{}", b.port)]);
    assert_eq!(summary(&events(&mut cb)), [format!("+{}", a.port)]);

    ca.send(GroupDest::Broadcast, Bytes::from("hi"))
        .expect("hi");
    let t = transmits(&mut ca);
    let (nodes, hi, _, _) = members_msg(&t[0]);
    assert_eq!(nodes, &[b.node]);
    let k083 = step(&replicast_copy(hi, b.node).expect("copy"), "083-");
    let mut k_ucasts = Vec::new();
    for (p, prefix) in [("u", "084-"), ("a", "085-"), ("m", "086-")] {
        ca.send(GroupDest::Member(b), Bytes::from(p))
            .expect("ucast");
        k_ucasts.push(step(&only_node_msg(&transmits(&mut ca)), prefix));
    }
    cb.handle_data(Bytes::from(k083));
    let k087 = step(&only_node_msg(&transmits(&mut cb)), "087-");
    for k in k_ucasts {
        cb.handle_data(Bytes::from(k));
    }
    assert!(transmits(&mut cb).is_empty());
    let got = events(&mut cb);
    assert_eq!(summary(&got), ["hi", "u", "a", "m"]);
    let GroupEvent::Message(first) = &got[0] else {
        panic!("data");
    };
    cb.handle_read(a, first.blocks());
    let k088 = step(&only_node_msg(&transmits(&mut cb)), "088-");
    for _ in 0..3 {
        cb.handle_read(a, 1);
    }
    assert!(transmits(&mut cb).is_empty(), "777 > 585: no top-up");
    let mut k_echo = Vec::new();
    for (p, prefix) in [("echo:hi", "089-"), ("echo:u", "090-"), ("echo:a", "091-")] {
        cb.send(GroupDest::Member(a), Bytes::from(p)).expect("echo");
        k_echo.push(step(&only_node_msg(&transmits(&mut cb)), prefix));
    }

    ca.handle_proto(&k087);
    assert_eq!(ca.bc_ackers(), 0);
    ca.handle_proto(&k088);
    assert_eq!(ca.member(b).map(|m| m.window), Some(61 + 716));
    for k in k_echo {
        ca.handle_data(Bytes::from(k));
    }
    assert_eq!(summary(&events(&mut ca)), ["echo:hi", "echo:u", "echo:a"]);
    ca.handle_read(b, 1);
    step(&only_node_msg(&transmits(&mut ca)), "092-");
    ca.leave();
    step(&only_node_msg(&transmits(&mut ca)), "093-");
}

/// Conversation 140-147 (eth): each side saw the other's binding first, so both JOINs carry
/// adv 0 and each answers the other's JOIN with ADV 65; then a broadcast, its ACK, the ADV
/// 716 after the read, and LEAVE syncpt 1.
#[test]
fn two_cores_replay_kernel_conversation_140_to_147() {
    let a = sa(0x6100_0000, 0xc701_5440);
    let b = sa(0x6200_0000, 0xc6ea_fa73);
    let mut cb = GroupCore::new(b, cfg(4242, 2, false)).expect("core b");
    cb.join([]).expect("join b");
    let mut ca = GroupCore::new(a, cfg(4242, 1, false)).expect("core a");
    ca.join([(b, 2)]).expect("join a");
    let k140 = step(&only_node_msg(&transmits(&mut ca)), "140-");
    cb.handle_member_published(a, 1);
    let k141 = step(&only_node_msg(&transmits(&mut cb)), "141-");
    cb.handle_proto(&k140);
    let k142 = step(&only_node_msg(&transmits(&mut cb)), "142-");
    ca.handle_proto(&k141);
    let k143 = step(&only_node_msg(&transmits(&mut ca)), "143-");
    ca.handle_proto(&k142);
    cb.handle_proto(&k143);
    assert!(
        events(&mut ca).is_empty() && events(&mut cb).is_empty(),
        "no MEMBER_EVTS"
    );
    ca.send(GroupDest::Broadcast, Bytes::from("hi"))
        .expect("hi");
    let t = transmits(&mut ca);
    let k144 = step(
        &replicast_copy(members_msg(&t[0]).1, b.node).expect("copy"),
        "144-",
    );
    cb.handle_data(Bytes::from(k144));
    let k145 = step(&only_node_msg(&transmits(&mut cb)), "145-");
    cb.handle_read(a, 1);
    let k146 = step(&only_node_msg(&transmits(&mut cb)), "146-");
    ca.handle_proto(&k145);
    ca.handle_proto(&k146);
    assert_eq!(ca.member(b).map(|m| m.window), Some(64 + 716));
    ca.leave();
    step(&only_node_msg(&transmits(&mut ca)), "147-");
}
