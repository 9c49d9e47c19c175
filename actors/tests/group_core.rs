//! The group core ([`GroupCore`], kernel `group.c`): membership (§10.1) and windows (§10.3)
//! through the public API: admission in either order, member events at their sync points,
//! leave and node loss, LOOPBACK and MEMBER_EVTS, the window arithmetic of the spec's
//! examples (716, 735, RECLAIM at the 13th sender, REMIT), PENDING and its promotion, and the
//! receive-buffer formula.

mod group_common;

use bytes::Bytes;
use group_common::*;
use tipc_actors::addr::{Scope, SocketAddr};
use tipc_actors::group::{
    blocks, max_active, rcvbuf_limit, GroupConfig, GroupCore, GroupDest, GroupError,
    GroupSendError, MemberState, Transmit, ADV_ACTIVE, ADV_IDLE, ADV_UNIT,
};
use tipc_transport::wire::{DataType, GroupProtoType};

const T: u32 = 4711;

fn own() -> SocketAddr {
    sa(GA, 1)
}

fn state(g: &GroupCore, m: SocketAddr) -> Option<MemberState> {
    g.member(m).map(|i| i.state)
}

/// A unicast from `s` arrives and is read (one block).
fn read_one(g: &mut GroupCore, s: SocketAddr) -> Vec<(SocketAddr, GroupProtoType, u16, u16)> {
    g.handle_data(ucast(s, own(), T, 0, b"m"));
    events(g);
    g.handle_read(s, 1);
    protos(&transmits(g))
}

/// `n` admitted members on gb..gd, ports 100.., instance = port.
fn group_of(n: u32) -> (GroupCore, Vec<SocketAddr>) {
    let nodes = [GB, GC, GD];
    let peers: Vec<(SocketAddr, u32)> = (0..n)
        .map(|i| (sa(nodes[i as usize % 3], 100 + i), 100 + i))
        .collect();
    let g = joined(own(), cfg(T, 1, false), &peers, 65);
    (g, peers.into_iter().map(|p| p.0).collect())
}

#[test]
fn config_from_request_follows_tipc_sk_join() {
    assert_eq!(
        GroupConfig::from_request(63, 1, 2, 0),
        Err(GroupError::Reserved(63))
    );
    assert_eq!(
        GroupConfig::from_request(64, 1, 4, 0),
        Err(GroupError::BadScope(4))
    );
    for (raw, scope) in [
        (0, Scope::Cluster),
        (1, Scope::Cluster),
        (2, Scope::Cluster),
    ] {
        assert_eq!(
            GroupConfig::from_request(64, 1, raw, 0).map(|c| c.scope),
            Ok(scope)
        );
    }
    let c = GroupConfig::from_request(64, 9, 3, 0x3 | 0x10).expect("valid");
    assert_eq!(
        (c.scope, c.loopback, c.member_events, c.instance),
        (Scope::Node, true, true, 9)
    );
    assert!(GroupCore::new(own(), GroupConfig::new(10, 1)).is_err());
    let mut g = GroupCore::new(own(), GroupConfig::new(T, 1)).expect("core");
    g.join([]).expect("join");
    assert_eq!(g.join([]), Err(GroupError::AlreadyJoined));
}

#[test]
fn member_binding_first_is_published_then_joined_by_its_join() {
    let gb = sa(GB, 2);
    let mut g = GroupCore::new(own(), cfg(T, 1, true)).expect("core");
    g.join([]).expect("join");
    g.handle_member_published(gb, 2);
    assert_eq!(state(&g, gb), Some(MemberState::Published));
    assert_eq!(
        protos(&transmits(&mut g)),
        [(gb, GroupProtoType::Join, 0, 0)]
    );
    // Data before its JOIN is dropped: it is not admitted yet.
    g.handle_data(bcast(gb, own(), T, 0, b"early"));
    assert_eq!(g.stats().non_member, 1);
    g.handle_proto(&proto(gb, own(), GroupProtoType::Join, 0, 65));
    assert_eq!(state(&g, gb), Some(MemberState::Joined));
    assert_eq!(
        protos(&transmits(&mut g)),
        [(gb, GroupProtoType::Adv, 0, 65)]
    );
    assert_eq!(summary(&events(&mut g)), ["+2"]);
    let m = g.member(gb).expect("member");
    assert_eq!((m.window, m.advertised, m.instance), (65, 65, 2));
}

#[test]
fn member_join_first_is_joining_then_joined_by_its_binding() {
    let gb = sa(GB, 2);
    let mut g = GroupCore::new(own(), cfg(T, 1, true)).expect("core");
    g.join([]).expect("join");
    g.handle_proto(&proto(gb, own(), GroupProtoType::Join, 7, 0));
    assert_eq!(state(&g, gb), Some(MemberState::Joining));
    assert!(transmits(&mut g).is_empty());
    assert!(events(&mut g).is_empty());
    g.handle_data(bcast(gb, own(), T, 7, b"early"));
    assert_eq!(g.stats().non_member, 1, "JOINING: not admitted");
    assert!(matches!(
        g.send(GroupDest::Member(gb), Bytes::from("x")),
        Err(GroupSendError::NoDestination(_))
    ));
    g.handle_member_published(gb, 2);
    assert_eq!(state(&g, gb), Some(MemberState::Joined));
    assert_eq!(
        protos(&transmits(&mut g)),
        [(gb, GroupProtoType::Join, 0, 65)]
    );
    assert_eq!(summary(&events(&mut g)), ["+2"]);
    assert_eq!(g.member(gb).map(|m| m.bc_rcv_nxt), Some(7));
}

#[test]
fn member_up_is_queued_at_bc_syncpt_before_the_member_data() {
    let gb = sa(GB, 2);
    let mut g = GroupCore::new(own(), cfg(T, 1, true)).expect("core");
    g.join([(gb, 2)]).expect("join");
    // gb had sent 2 broadcasts before we joined: its JOIN says syncpt 2.
    g.handle_proto(&proto(gb, own(), GroupProtoType::Join, 2, 65));
    g.handle_data(bcast(gb, own(), T, 1, b"old"));
    g.handle_data(bcast(gb, own(), T, 2, b"new"));
    assert_eq!(summary(&events(&mut g)), ["+2", "new"]);
    assert_eq!(g.stats().stale, 1);
}

#[test]
fn member_down_after_leave_follows_every_bcast_sent_before_leaving() {
    let gb = sa(GB, 2);
    let mut g = joined(own(), cfg(T, 1, true), &[(gb, 2)], 65);
    for (s, p) in [(0, "x0"), (1, "x1"), (2, "x2")] {
        g.handle_data(bcast(gb, own(), T, s, p.as_bytes()));
    }
    // The LEAVE overtakes x3 and x4, which went on the broadcast link.
    g.handle_proto(&proto(gb, own(), GroupProtoType::Leave, 5, 0));
    assert_eq!(state(&g, gb), Some(MemberState::Leaving));
    assert_eq!(summary(&events(&mut g)), ["x0", "x1", "x2"]);
    g.handle_data(bcast(gb, own(), T, 4, b"x4"));
    assert!(events(&mut g).is_empty());
    g.handle_data(bcast(gb, own(), T, 3, b"x3"));
    assert_eq!(summary(&events(&mut g)), ["x3", "x4", "-2"]);
    assert_eq!(g.member_count(), 0, "deleted with its WITHDRAWN event");
    g.handle_data(bcast(gb, own(), T, 5, b"late"));
    assert_eq!(g.stats().non_member, 1);
}

#[test]
fn withdrawn_binding_while_node_up_waits_for_the_leave() {
    let gb = sa(GB, 2);
    let mut g = joined(own(), cfg(T, 1, true), &[(gb, 2)], 65);
    g.handle_member_withdrawn(gb, 2);
    assert_eq!(state(&g, gb), Some(MemberState::Leaving));
    assert!(events(&mut g).is_empty(), "no event until the LEAVE");
    assert!(matches!(
        g.send(GroupDest::Member(gb), Bytes::from("x")),
        Err(GroupSendError::NoDestination(_))
    ));
    g.handle_proto(&proto(gb, own(), GroupProtoType::Leave, 0, 0));
    assert_eq!(summary(&events(&mut g)), ["-2"]);
    assert_eq!(g.member_count(), 0);
}

#[test]
fn node_down_queues_member_down_at_bc_rcv_nxt_and_drops_joining_members() {
    let gb = sa(GB, 2);
    let gb3 = sa(GB, 3);
    let gc = sa(GC, 4);
    let mut g = joined(own(), cfg(T, 1, true), &[(gb, 2), (gc, 4)], 65);
    g.handle_proto(&proto(gb3, own(), GroupProtoType::Join, 0, 0));
    g.handle_data(bcast(gb, own(), T, 0, b"d1"));
    g.handle_data(bcast(gb, own(), T, 1, b"d2"));
    assert_eq!(g.member_count(), 3);
    g.handle_node_down(GB);
    assert_eq!(summary(&events(&mut g)), ["d1", "d2", "-2"]);
    assert_eq!(g.member_count(), 1, "gb deleted by its event, gb:3 dropped");
    assert_eq!(state(&g, gc), Some(MemberState::Joined));
    // The purge's withdrawals that follow change nothing.
    g.handle_member_withdrawn(gb, 2);
    assert!(events(&mut g).is_empty());
    assert_eq!(g.rcvbuf(), rcvbuf_limit(1));
}

#[test]
fn withdrawal_before_node_down_gets_its_event_at_node_down() {
    let gb = sa(GB, 2);
    let mut g = joined(own(), cfg(T, 1, true), &[(gb, 2)], 65);
    g.handle_member_withdrawn(gb, 2);
    assert!(events(&mut g).is_empty());
    g.handle_node_down(GB);
    assert_eq!(summary(&events(&mut g)), ["-2"]);
    assert_eq!(g.member_count(), 0);
}

#[test]
fn without_member_events_the_events_are_sequenced_but_not_delivered() {
    let gb = sa(GB, 2);
    let mut g = joined(own(), cfg(T, 1, false), &[(gb, 2)], 65);
    g.handle_data(bcast(gb, own(), T, 0, b"x0"));
    g.handle_proto(&proto(gb, own(), GroupProtoType::Leave, 2, 0));
    assert_eq!(summary(&events(&mut g)), ["x0"]);
    assert_eq!(g.member_count(), 1, "LEAVING until its event is due");
    g.handle_data(bcast(gb, own(), T, 1, b"x1"));
    assert_eq!(summary(&events(&mut g)), ["x1"]);
    assert_eq!(g.member_count(), 0);
    assert_eq!(g.stats().events_suppressed, 2, "UP and DOWN");
}

#[test]
fn loopback_member_of_itself_joins_and_acks_its_own_broadcast_locally() {
    let me = own();
    let c = GroupConfig {
        loopback: true,
        member_events: true,
        ..GroupConfig::new(T, 1)
    };
    let mut g = GroupCore::new(me, c).expect("core");
    g.join([]).expect("join");
    g.handle_member_published(me, 1);
    assert!(
        transmits(&mut g).is_empty(),
        "JOIN/ADV with itself stay local"
    );
    assert_eq!(state(&g, me), Some(MemberState::Joined));
    assert_eq!(summary(&events(&mut g)), ["+1"]);
    assert_eq!(g.member_count(), 1);
    assert_eq!(g.rcvbuf(), rcvbuf_limit(1));
    g.send(GroupDest::Broadcast, Bytes::from("self"))
        .expect("bcast");
    let t = transmits(&mut g);
    let Transmit::Members {
        nodes,
        msg,
        ack_required,
        ..
    } = &t[0]
    else {
        panic!("bcast");
    };
    assert_eq!((nodes.as_slice(), *ack_required), (&[GA][..], true));
    assert_eq!(g.bc_ackers(), 1);
    // The local multicast delivery brings it back; the ACK to itself is handled inside.
    g.handle_data(msg.clone());
    assert_eq!(summary(&events(&mut g)), ["self"]);
    assert!(transmits(&mut g).is_empty());
    assert_eq!(g.bc_ackers(), 0);
    assert!(g.stats().proto_local >= 3);
    g.send(GroupDest::Anycast(1), Bytes::from("any"))
        .expect("anycast to itself");
    assert!(matches!(
        &transmits(&mut g)[0],
        Transmit::Node { node: GA, .. }
    ));
}

#[test]
fn without_loopback_own_binding_is_ignored_and_a_lone_member_reaches_nobody() {
    let me = own();
    let mut g = GroupCore::new(me, cfg(T, 1, true)).expect("core");
    g.join([(me, 1)]).expect("join");
    g.handle_member_published(me, 1);
    assert_eq!(g.member_count(), 0);
    assert_eq!(g.rcvbuf(), 47_124_480);
    for d in [
        GroupDest::Broadcast,
        GroupDest::Anycast(1),
        GroupDest::Multicast(1),
    ] {
        assert!(
            matches!(
                g.send(d, Bytes::from("x")),
                Err(GroupSendError::NoDestination(_))
            ),
            "{d:?}"
        );
    }
}

#[test]
fn leave_sends_leave_to_every_member_whatever_its_state_then_ignores_input() {
    let gb = sa(GB, 2);
    let gc = sa(GC, 3);
    let gd = sa(GD, 4);
    let ge = sa(GD, 5);
    let mut g = joined(own(), cfg(T, 1, true), &[(gb, 2), (gc, 3)], 65);
    g.handle_member_published(gd, 4); // PUBLISHED
    g.handle_proto(&proto(ge, own(), GroupProtoType::Join, 0, 0)); // JOINING
    g.handle_member_withdrawn(gc, 3); // LEAVING
    transmits(&mut g);
    g.send(GroupDest::Member(gb), Bytes::from("u")).expect("u");
    transmits(&mut g);
    g.leave();
    let mut l = protos(&transmits(&mut g));
    l.sort_by_key(|p| p.0);
    assert_eq!(
        l,
        [
            (gb, GroupProtoType::Leave, 0, 0),
            (gc, GroupProtoType::Leave, 0, 0),
            (gd, GroupProtoType::Leave, 0, 0),
            (ge, GroupProtoType::Leave, 0, 0),
        ]
    );
    assert!(!g.is_joined());
    g.handle_proto(&proto(gb, own(), GroupProtoType::Adv, 0, 10));
    g.handle_data(bcast(gb, own(), T, 0, b"x"));
    assert!(transmits(&mut g).is_empty() && events(&mut g).is_empty());
    assert!(matches!(
        g.send(GroupDest::Broadcast, Bytes::from("x")),
        Err(GroupSendError::NotJoined(_))
    ));
}

#[test]
fn node_scope_group_ignores_protocol_messages_from_other_nodes() {
    let local = sa(GA, 2);
    let c = GroupConfig {
        scope: Scope::Node,
        ..GroupConfig::new(T, 1)
    };
    let mut g = GroupCore::new(own(), c).expect("core");
    g.join([(local, 2)]).expect("join");
    transmits(&mut g);
    g.handle_proto(&proto(sa(GB, 9), own(), GroupProtoType::Join, 0, 65));
    assert_eq!(g.member_count(), 1);
    assert_eq!(g.stats().ignored, 1);
    g.handle_proto(&proto(local, own(), GroupProtoType::Join, 0, 65));
    assert_eq!(state(&g, local), Some(MemberState::Joined));
    transmits(&mut g);
    g.send(GroupDest::Member(local), Bytes::from("x"))
        .expect("send");
    let m = only_node_msg(&transmits(&mut g));
    assert_eq!((word(&m, 1) >> 19) & 3, 3, "lookup_scope = node");
}

#[test]
fn window_constants_blocks_max_active_and_rcvbuf_follow_the_formulas() {
    assert_eq!((ADV_UNIT, ADV_IDLE, ADV_ACTIVE), (65, 65, 780));
    assert_eq!(blocks(44), 1);
    assert_eq!(blocks(44 + 979), 1);
    assert_eq!(blocks(44 + 980), 2);
    assert_eq!(blocks(44 + 20000), 20);
    assert_eq!(blocks(44 + 66000), 65);
    assert_eq!(max_active(0), 16);
    assert_eq!(max_active(134), 16);
    assert_eq!(max_active(135), 17);
    assert_eq!(max_active(511), 64);
    assert_eq!(max_active(5000), 64);
    assert_eq!(rcvbuf_limit(0), 47_124_480);
    for n in 1..20 {
        assert_eq!(rcvbuf_limit(n) - rcvbuf_limit(n - 1), 266_240, "{n}");
    }
    assert_eq!(rcvbuf_limit(21), (16 * 780 + (22 - 16) * 65) * 4096);
}

#[test]
fn rcvbuf_follows_binding_events_not_join_or_leave_messages() {
    let mut g = GroupCore::new(own(), cfg(T, 1, false)).expect("core");
    g.join([(sa(GB, 2), 2)]).expect("join");
    assert_eq!(g.rcvbuf(), rcvbuf_limit(1));
    g.handle_proto(&proto(sa(GC, 3), own(), GroupProtoType::Join, 0, 0));
    assert_eq!(g.member_count(), 2);
    assert_eq!(g.rcvbuf(), rcvbuf_limit(1), "a JOIN does not recompute");
    g.handle_member_published(sa(GC, 3), 3);
    assert_eq!(g.rcvbuf(), rcvbuf_limit(2));
}

#[test]
fn joined_member_read_goes_active_with_adv_716_after_one_block() {
    let (mut g, m) = group_of(1);
    assert_eq!(
        read_one(&mut g, m[0]),
        [(m[0], GroupProtoType::Adv, 0, 716)]
    );
    assert_eq!(state(&g, m[0]), Some(MemberState::Active));
    assert_eq!(g.active_count(), 1);
}

#[test]
fn reclaim_targets_the_least_recently_read_active_member() {
    let (mut g, m) = group_of(14);
    for s in &m[..12] {
        read_one(&mut g, *s);
    }
    // Reading m[0] again moves it to the tail: m[1] is now the oldest.
    assert!(read_one(&mut g, m[0]).is_empty(), "777 > 585");
    let p = read_one(&mut g, m[12]);
    assert_eq!(
        p,
        [
            (m[12], GroupProtoType::Adv, 0, 716),
            (m[1], GroupProtoType::Reclaim, 0, 0)
        ]
    );
    assert_eq!(state(&g, m[1]), Some(MemberState::Reclaiming));
    // A REMIT from a member that is not RECLAIMING is ignored.
    g.handle_proto(&proto(m[2], own(), GroupProtoType::Remit, 780, 0));
    assert_eq!(state(&g, m[2]), Some(MemberState::Active));
}

#[test]
fn remit_below_advertised_goes_remitted_until_reads_bring_it_to_65() {
    let (mut g, m) = group_of(13);
    for s in &m[..12] {
        read_one(&mut g, *s);
    }
    // Three more messages from m[0] are in flight (arrived, unread) when it is reclaimed.
    for _ in 0..3 {
        g.handle_data(ucast(m[0], own(), T, 0, b"m"));
    }
    events(&mut g);
    read_one(&mut g, m[12]);
    assert_eq!(state(&g, m[0]), Some(MemberState::Reclaiming));
    assert_eq!(g.active_count(), 13);
    // Its window was 64 + 716 - 3 = 777 when the RECLAIM came.
    g.handle_proto(&proto(m[0], own(), GroupProtoType::Remit, 777, 0));
    let i = g.member(m[0]).expect("m0");
    assert_eq!((i.state, i.advertised), (MemberState::Remitted, 65 + 3));
    g.handle_read(m[0], 1);
    g.handle_read(m[0], 1);
    assert_eq!(state(&g, m[0]), Some(MemberState::Remitted));
    g.handle_read(m[0], 1);
    assert_eq!(state(&g, m[0]), Some(MemberState::Joined));
    assert_eq!(g.active_count(), 12);
    assert!(
        transmits(&mut g).is_empty(),
        "at 65: no ADV, nobody PENDING"
    );
}

#[test]
fn read_past_max_active_goes_pending_and_a_remit_promotes_the_oldest_pending() {
    let (mut g, m) = group_of(18);
    assert_eq!(g.max_active(), 16);
    for s in &m[..17] {
        assert_eq!(read_one(&mut g, *s)[0].1, GroupProtoType::Adv);
    }
    assert_eq!(g.active_count(), 17, "12 ACTIVE and 5 RECLAIMING");
    let p = read_one(&mut g, m[17]);
    assert_eq!(
        p,
        [(m[5], GroupProtoType::Reclaim, 0, 0)],
        "PENDING: no ADV"
    );
    assert_eq!(state(&g, m[17]), Some(MemberState::Pending));
    assert_eq!(g.member(m[17]).map(|i| i.advertised), Some(64));
    // m[0] remits all it was given: JOINED, and m[17] becomes ACTIVE with its ADV.
    g.handle_proto(&proto(m[0], own(), GroupProtoType::Remit, 780, 0));
    assert_eq!(state(&g, m[0]), Some(MemberState::Joined));
    assert_eq!(state(&g, m[17]), Some(MemberState::Active));
    assert_eq!(
        protos(&transmits(&mut g)),
        [(m[17], GroupProtoType::Adv, 0, 716)]
    );
    assert_eq!(g.active_count(), 17);
}

#[test]
fn with_no_active_member_to_reclaim_the_oldest_pending_reverts_to_joined() {
    let (mut g, m) = group_of(30);
    for s in &m[..29] {
        read_one(&mut g, *s);
    }
    // 17 counted active, all RECLAIMING now; m[17..29] PENDING.
    assert!(m[..17]
        .iter()
        .all(|s| state(&g, *s) == Some(MemberState::Reclaiming)));
    let p = read_one(&mut g, m[29]);
    assert_eq!(p, [(m[17], GroupProtoType::Adv, 0, 1)], "65 - 64");
    assert_eq!(state(&g, m[17]), Some(MemberState::Joined));
    assert_eq!(state(&g, m[29]), Some(MemberState::Pending));
}

#[test]
fn mcast_for_another_instance_is_accounted_at_arrival_not_delivered() {
    let gb = sa(GB, 2);
    let mut g = joined(own(), cfg(T, 1, true), &[(gb, 2)], 65);
    let m = data(gb, own(), DataType::GrpMcast, T, 7, 0, true, &[0; 2000]);
    g.handle_data(m);
    assert!(events(&mut g).is_empty());
    assert_eq!(g.stats().other_instance, 1);
    let p = protos(&transmits(&mut g));
    // Answered (ack request) and accounted as a 2-block read: JOINED -> ACTIVE, 780 - 63.
    assert_eq!(
        p,
        [
            (gb, GroupProtoType::Ack, 1, 0),
            (gb, GroupProtoType::Adv, 0, 717)
        ]
    );
    assert_eq!(g.member(gb).map(|i| i.bc_rcv_nxt), Some(1));
    let mine = data(gb, own(), DataType::GrpMcast, T, 1, 1, false, b"mine");
    g.handle_data(mine);
    assert_eq!(summary(&events(&mut g)), ["mine"]);
}

#[test]
fn reclaim_is_answered_with_remit_of_own_window_then_window_is_65() {
    let gb = sa(GB, 2);
    let mut g = joined(own(), cfg(T, 1, false), &[(gb, 2)], 65);
    g.handle_proto(&proto(gb, own(), GroupProtoType::Adv, 0, 700));
    g.send(GroupDest::Member(gb), Bytes::from(vec![0; 3000]))
        .expect("send");
    transmits(&mut g);
    assert_eq!(g.member(gb).map(|i| i.window), Some(765 - 3));
    g.handle_proto(&proto(gb, own(), GroupProtoType::Reclaim, 0, 0));
    assert_eq!(
        protos(&transmits(&mut g)),
        [(gb, GroupProtoType::Remit, 762, 0)]
    );
    assert_eq!(g.member(gb).map(|i| i.window), Some(65));
}

#[test]
fn blocked_unicast_pushes_adv_unless_the_member_is_fully_advertised() {
    let gb = sa(GB, 2);
    let mut g = joined(own(), cfg(T, 1, false), &[(gb, 2)], 1);
    // JOINED with advertised 65: fully advertised, no ADV while blocked.
    let big = Bytes::from(vec![0; 2000]);
    assert!(matches!(
        g.send(GroupDest::Member(gb), big.clone()),
        Err(GroupSendError::Congested(_))
    ));
    assert!(transmits(&mut g).is_empty());
    assert!(!g.is_open());
    // ACTIVE (780 advertised after the first read), then a 5-block read leaves 775: no
    // top-up on reading (775 > 585), but the blocked sender pushes the missing 5.
    read_one(&mut g, gb);
    g.handle_data(ucast(gb, own(), T, 0, &[0; 5000]));
    events(&mut g);
    g.handle_read(gb, 5);
    transmits(&mut g);
    assert_eq!(g.member(gb).map(|i| i.advertised), Some(775));
    assert!(matches!(
        g.send(GroupDest::Member(gb), big.clone()),
        Err(GroupSendError::Congested(_))
    ));
    assert_eq!(
        protos(&transmits(&mut g)),
        [(gb, GroupProtoType::Adv, 0, 5)]
    );
    g.handle_proto(&proto(gb, own(), GroupProtoType::Adv, 0, 64));
    assert!(g.poll_wakeup());
    assert!(g.is_open());
    g.send(GroupDest::Member(gb), big).expect("window 65");
}
