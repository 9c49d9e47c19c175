//! The group core ([`GroupCore`], kernel `group.c` and the group sends of `socket.c`):
//! receive ordering (§10.4 "Receive ordering") and the send-side decisions (§10.4 modes,
//! `bc_snd_nxt`, the forced replicast and its acks, anycast's choice, multicast to one).

mod group_common;

use bytes::Bytes;
use group_common::*;
use tipc_actors::addr::SocketAddr;
use tipc_actors::group::{
    GroupCore, GroupDest, GroupEvent, GroupSendError, Method, Transmit, MAX_PAYLOAD,
};
use tipc_transport::wire::{DataType, GroupProtoType, Header};

const T: u32 = 4711;

fn own() -> SocketAddr {
    sa(GA, 1)
}

/// (grp_bc_seqno, ack request, w9, message type) of a data message.
fn fields(msg: &[u8]) -> (u16, bool, u32, u8) {
    (
        (word(msg, 10) >> 16) as u16,
        word(msg, 10) & 1 == 1,
        word(msg, 9),
        (word(msg, 1) >> 29) as u8,
    )
}

/// A data message, with (ack request, forced method) when it went to the member nodes.
type DataOut = (Bytes, Option<(bool, Option<Method>)>);

fn data_msgs(t: &[Transmit]) -> Vec<DataOut> {
    t.iter()
        .filter_map(|t| match t {
            Transmit::Node { msg, .. } if msg.len() >= 44 && msg[0] >> 1 & 0xF < 4 => {
                Some((msg.clone(), None))
            }
            Transmit::Members {
                msg,
                ack_required,
                forced,
                ..
            } => Some((msg.clone(), Some((*ack_required, *forced)))),
            _ => None,
        })
        .collect()
}

fn acks_from(g: &mut GroupCore, peers: &[SocketAddr], acked: u16) {
    for p in peers {
        g.handle_proto(&proto(*p, own(), GroupProtoType::Ack, acked, 0));
    }
}

#[test]
fn unicast_sent_after_broadcasts_is_delivered_after_them() {
    let gb = sa(GB, 2);
    let mut g = joined(own(), cfg(T, 1, false), &[(gb, 2)], 65);
    g.handle_data(ucast(gb, own(), T, 2, b"u"));
    g.handle_data(bcast(gb, own(), T, 1, b"b1"));
    assert!(events(&mut g).is_empty(), "both wait for b0");
    assert_eq!(g.member(gb).map(|m| m.deferred), Some(2));
    g.handle_data(bcast(gb, own(), T, 0, b"b0"));
    assert_eq!(summary(&events(&mut g)), ["b0", "b1", "u"]);
}

#[test]
fn broadcasts_arriving_out_of_order_are_sorted_by_seqno() {
    let gb = sa(GB, 2);
    let mut g = joined(own(), cfg(T, 1, false), &[(gb, 2)], 65);
    // Sent: b0 u(1) b1 b2 u(3) b3; the unicast link carried the unicasts and b0, b2;
    // the broadcast link b1 and b3, which arrive last, b3 before b1.
    for (m, s) in [("b0", 0), ("u1", 1), ("b2", 2), ("u3", 3)] {
        let msg = if m.starts_with('u') {
            ucast(gb, own(), T, s, m.as_bytes())
        } else {
            bcast(gb, own(), T, s, m.as_bytes())
        };
        g.handle_data(msg);
    }
    assert_eq!(summary(&events(&mut g)), ["b0", "u1"]);
    g.handle_data(bcast(gb, own(), T, 3, b"b3"));
    g.handle_data(bcast(gb, own(), T, 1, b"b1"));
    assert_eq!(summary(&events(&mut g)), ["b1", "b2", "u3", "b3"]);
    assert_eq!(
        g.member(gb).map(|m| (m.bc_rcv_nxt, m.deferred)),
        Some((4, 0))
    );
}

#[test]
fn data_below_bc_rcv_nxt_is_dropped_and_counted() {
    let gb = sa(GB, 2);
    let mut g = joined(own(), cfg(T, 1, false), &[(gb, 2)], 65);
    g.handle_data(bcast(gb, own(), T, 0, b"b0"));
    g.handle_data(bcast(gb, own(), T, 1, b"b1"));
    g.handle_data(bcast(gb, own(), T, 0, b"again"));
    g.handle_data(ucast(gb, own(), T, 1, b"old"));
    g.handle_data(ucast(gb, own(), T, 2, b"fine"));
    assert_eq!(summary(&events(&mut g)), ["b0", "b1", "fine"]);
    assert_eq!(g.stats().stale, 2);
}

#[test]
fn data_from_non_members_and_malformed_data_are_counted_and_dropped() {
    let gb = sa(GB, 2);
    let mut g = joined(own(), cfg(T, 1, false), &[(gb, 2)], 65);
    g.handle_data(bcast(sa(GC, 9), own(), T, 0, b"who"));
    assert_eq!(g.stats().non_member, 1);
    // Not a group type; wrong header size; an error code; garbage.
    let named = data(gb, own(), DataType::Named, T, 0, 0, false, b"x");
    g.handle_data(named);
    let mut short = bcast(gb, own(), T, 0, b"x").to_vec();
    Header::new_unchecked(&mut short[..]).set_header_len(40);
    g.handle_data(Bytes::from(short));
    let mut err = bcast(gb, own(), T, 0, b"x").to_vec();
    Header::new_unchecked(&mut err[..]).set_errcode(2);
    g.handle_data(Bytes::from(err));
    g.handle_message(Bytes::from_static(&[0xff; 7]));
    assert_eq!(g.stats().malformed, 4);
    assert!(events(&mut g).is_empty());
}

#[test]
fn ack_request_is_answered_with_bc_rcv_nxt_after_the_broadcast() {
    let gb = sa(GB, 2);
    let mut g = GroupCore::new(own(), cfg(T, 1, false)).expect("core");
    g.join([(gb, 2)]).expect("join");
    g.handle_proto(&proto(gb, own(), GroupProtoType::Join, 5, 65));
    transmits(&mut g);
    g.handle_data(data(gb, own(), DataType::GrpBcast, T, 0, 5, true, b"b5"));
    assert_eq!(
        protos(&transmits(&mut g)),
        [(gb, GroupProtoType::Ack, 6, 0)]
    );
}

#[test]
fn every_data_message_carries_current_bc_snd_nxt_which_only_broadcasts_advance() {
    let gb = sa(GB, 2);
    let gc = sa(GC, 3);
    let mut g = joined(own(), cfg(T, 1, false), &[(gb, 2), (gc, 2)], 65);
    g.send(GroupDest::Member(gb), Bytes::from("u")).expect("u");
    g.send(GroupDest::Broadcast, Bytes::from("b")).expect("b");
    acks_from(&mut g, &[gb, gc], 1);
    g.send(GroupDest::Anycast(2), Bytes::from("a")).expect("a");
    g.send(GroupDest::Multicast(2), Bytes::from("m"))
        .expect("m");
    acks_from(&mut g, &[gb, gc], 2);
    g.send(GroupDest::Member(gc), Bytes::from("u2"))
        .expect("u2");
    let seqnos: Vec<(u16, u8)> = data_msgs(&transmits(&mut g))
        .iter()
        .map(|(m, _)| (fields(m).0, fields(m).3))
        .collect();
    assert_eq!(seqnos, [(0, 7), (0, 5), (1, 7), (1, 6), (2, 7)]);
    assert_eq!(g.bc_snd_nxt(), 2);
}

#[test]
fn first_broadcast_after_join_and_after_any_unicast_is_forced_replicast_with_ack() {
    let gb = sa(GB, 2);
    let gc = sa(GC, 3);
    let peers = [gb, gc];
    let mut g = joined(own(), cfg(T, 1, false), &[(gb, 2), (gc, 3)], 65);
    let forced = Some((true, Some(Method::Replicast)));
    let free = Some((false, None));
    let mut seen = Vec::new();
    let bc = |g: &mut GroupCore, d: GroupDest| {
        g.send(d, Bytes::from("x")).expect("send");
        let t = data_msgs(&transmits(g));
        let last = t.last().expect("data").1;
        if last == forced {
            let acked = g.bc_snd_nxt();
            acks_from(g, &peers, acked);
        }
        last
    };
    seen.push(bc(&mut g, GroupDest::Broadcast)); // after join
    seen.push(bc(&mut g, GroupDest::Broadcast));
    seen.push(bc(&mut g, GroupDest::Member(gb))); // unicast
    seen.push(bc(&mut g, GroupDest::Broadcast));
    seen.push(bc(&mut g, GroupDest::Anycast(3))); // anycast
    seen.push(bc(&mut g, GroupDest::Broadcast));
    seen.push(bc(&mut g, GroupDest::Multicast(2))); // mcast to one: unicast
    seen.push(bc(&mut g, GroupDest::Broadcast));
    seen.push(bc(&mut g, GroupDest::Broadcast));
    assert_eq!(
        seen,
        [forced, free, None, forced, None, forced, None, forced, free]
    );
    g.force_method(Method::Broadcast);
    g.send(GroupDest::Broadcast, Bytes::from("x")).expect("b");
    assert_eq!(
        data_msgs(&transmits(&mut g))[0].1,
        Some((false, Some(Method::Broadcast)))
    );
    g.force_method(Method::Replicast);
    g.send(GroupDest::Broadcast, Bytes::from("x")).expect("b");
    assert_eq!(data_msgs(&transmits(&mut g))[0].1, forced);
}

#[test]
fn broadcast_waits_for_every_owed_ack_but_unicast_does_not() {
    let gb = sa(GB, 2);
    let gc = sa(GC, 3);
    let gd = sa(GD, 4);
    let mut g = joined(own(), cfg(T, 1, false), &[(gb, 2), (gc, 3), (gd, 4)], 65);
    g.send(GroupDest::Broadcast, Bytes::from("b0")).expect("b0");
    assert_eq!(g.bc_ackers(), 3);
    let refused = g.send(GroupDest::Broadcast, Bytes::from("b1"));
    assert_eq!(
        refused,
        Err(GroupSendError::Congested(Bytes::from("b1"))),
        "payload handed back"
    );
    assert!(matches!(
        g.send(GroupDest::Multicast(3), Bytes::from("m")),
        Ok(())
    ));
    assert_eq!(g.bc_ackers(), 3, "mcast to one is a unicast: not held");
    // Wrong seqno, a duplicate, and an ACK from a non-member are ignored.
    g.handle_proto(&proto(gb, own(), GroupProtoType::Ack, 7, 0));
    g.handle_proto(&proto(gb, own(), GroupProtoType::Ack, 1, 0));
    g.handle_proto(&proto(gb, own(), GroupProtoType::Ack, 1, 0));
    g.handle_proto(&proto(sa(GC, 77), own(), GroupProtoType::Ack, 1, 0));
    assert_eq!(g.bc_ackers(), 2);
    g.handle_proto(&proto(gc, own(), GroupProtoType::Ack, 1, 0));
    assert!(!g.poll_wakeup());
    // gd leaves without acking: its deletion releases the broadcast.
    g.handle_proto(&proto(gd, own(), GroupProtoType::Leave, 0, 0));
    assert_eq!(g.member_count(), 2);
    assert_eq!(g.bc_ackers(), 0);
    assert!(g.poll_wakeup());
    g.send(GroupDest::Broadcast, Bytes::from("b1")).expect("b1");
}

#[test]
fn anycast_round_robins_over_the_members_of_the_instance() {
    let gb = sa(GB, 2);
    let gc = sa(GC, 3);
    let gd = sa(GD, 4);
    let mut g = joined(own(), cfg(T, 1, false), &[(gc, 2), (gb, 2), (gd, 9)], 65);
    let mut to = Vec::new();
    for _ in 0..4 {
        g.send(GroupDest::Anycast(2), Bytes::from("a")).expect("a");
        let m = only_node_msg(&transmits(&mut g));
        to.push(sa(word(&m, 7), word(&m, 5)));
    }
    assert_eq!(to, [gc, gb, gc, gb]);
}

#[test]
fn anycast_prefers_a_member_whose_window_fits() {
    let gb = sa(GB, 2);
    let gc = sa(GC, 3);
    let mut g = GroupCore::new(own(), cfg(T, 1, false)).expect("core");
    g.join([(gb, 2), (gc, 2)]).expect("join");
    g.handle_proto(&proto(gb, own(), GroupProtoType::Join, 0, 1));
    g.handle_proto(&proto(gc, own(), GroupProtoType::Join, 0, 65));
    transmits(&mut g);
    for _ in 0..3 {
        g.send(GroupDest::Anycast(2), Bytes::from(vec![0; 3000]))
            .expect("send");
        let t = transmits(&mut g);
        // gb (window 1, JOINED fully advertised: no ADV) is skipped for gc.
        assert_eq!(only_node_msg(&t)[28..32], gc.node.to_be_bytes());
    }
}

#[test]
fn anycast_blocked_on_every_member_waits_on_the_first_it_chose() {
    let gb = sa(GB, 2);
    let gc = sa(GC, 3);
    let mut g = joined(own(), cfg(T, 1, false), &[(gb, 2), (gc, 2)], 1);
    let big = Bytes::from(vec![0; 3000]);
    assert!(matches!(
        g.send(GroupDest::Anycast(2), big.clone()),
        Err(GroupSendError::Congested(_))
    ));
    // gc opens first; the send still waits on gb, the member it chose.
    g.handle_proto(&proto(gc, own(), GroupProtoType::Adv, 0, 100));
    assert!(matches!(
        g.send(GroupDest::Anycast(2), big.clone()),
        Err(GroupSendError::Congested(_))
    ));
    g.handle_proto(&proto(gb, own(), GroupProtoType::Adv, 0, 100));
    g.send(GroupDest::Anycast(2), big).expect("gb opened");
    let m = only_node_msg(&transmits(&mut g));
    assert_eq!(sa(word(&m, 7), word(&m, 5)), gb);
}

#[test]
fn anycast_to_members_not_receiving_gives_up_after_three_lookups() {
    let gb = sa(GB, 2);
    let mut g = joined(own(), cfg(T, 1, false), &[(gb, 2)], 65);
    // LEAVE came, binding not yet withdrawn: found by the lookup, not a receiver.
    g.handle_proto(&proto(gb, own(), GroupProtoType::Leave, 1, 0));
    assert_eq!(g.member_count(), 1);
    assert!(matches!(
        g.send(GroupDest::Anycast(2), Bytes::from("a")),
        Err(GroupSendError::NoDestination(_))
    ));
}

#[test]
fn multicast_to_exactly_one_member_is_sent_as_unicast() {
    let gb = sa(GB, 2);
    let gc = sa(GC, 3);
    let mut g = joined(own(), cfg(T, 1, false), &[(gb, 2), (gc, 3)], 65);
    g.send(GroupDest::Multicast(3), Bytes::from("m"))
        .expect("m");
    let m = only_node_msg(&transmits(&mut g));
    assert_eq!(fields(&m).3, 7, "GRP_UCAST");
    assert_eq!(sa(word(&m, 7), word(&m, 5)), gc);
    assert!(matches!(
        g.send(GroupDest::Multicast(5), Bytes::from("m")),
        Err(GroupSendError::NoDestination(_))
    ));
}

#[test]
fn broadcast_blocked_by_the_smallest_window_pushes_adv_to_that_member() {
    let gb = sa(GB, 2);
    let gc = sa(GC, 3);
    let mut g = joined(own(), cfg(T, 1, false), &[(gb, 2)], 65);
    // gc's binding arrives: PUBLISHED, window 0, until its JOIN.
    g.handle_member_published(gc, 3);
    transmits(&mut g);
    assert!(matches!(
        g.send(GroupDest::Broadcast, Bytes::from("b")),
        Err(GroupSendError::Congested(_))
    ));
    assert_eq!(
        protos(&transmits(&mut g)),
        [(gc, GroupProtoType::Adv, 0, 0)]
    );
    // An ADV(0) from gc (its own blocked sender) does not open it, nor wake us.
    g.handle_proto(&proto(gc, own(), GroupProtoType::Adv, 0, 0));
    assert!(!g.poll_wakeup());
    assert!(matches!(
        g.send(GroupDest::Broadcast, Bytes::from("b")),
        Err(GroupSendError::Congested(_))
    ));
    transmits(&mut g);
    g.handle_proto(&proto(gc, own(), GroupProtoType::Join, 0, 65));
    assert!(g.poll_wakeup());
    g.send(GroupDest::Broadcast, Bytes::from("b")).expect("b");
    assert_eq!(g.member(gc).map(|m| m.window), Some(64));
    assert_eq!(g.member(gb).map(|m| m.window), Some(64));
}

#[test]
fn send_refusals_hand_the_payload_back() {
    let mut g = GroupCore::new(own(), cfg(T, 1, false)).expect("core");
    let p = Bytes::from("p");
    assert_eq!(
        g.send(GroupDest::Broadcast, p.clone()),
        Err(GroupSendError::NotJoined(p.clone()))
    );
    g.join([(sa(GB, 2), 2)]).expect("join");
    let big = Bytes::from(vec![0; MAX_PAYLOAD + 1]);
    assert_eq!(
        g.send(GroupDest::Broadcast, big.clone()),
        Err(GroupSendError::TooLarge(big))
    );
    assert_eq!(
        g.send(GroupDest::Member(sa(0, 0)), p.clone())
            .map_err(|e| e.into_payload()),
        Err(p.clone())
    );
    assert!(matches!(
        g.send(GroupDest::Member(sa(GB, 3)), p),
        Err(GroupSendError::NoDestination(_))
    ));
}

#[test]
fn data_header_carries_the_socket_template() {
    let gb = sa(GB, 2);
    let mut g = joined(own(), cfg(T, 1, false), &[(gb, 2)], 65);
    g.set_importance(2);
    g.set_src_droppable(true);
    g.send(GroupDest::Member(gb), Bytes::from("u")).expect("u");
    g.send(GroupDest::Broadcast, Bytes::from("b")).expect("b");
    let t = data_msgs(&transmits(&mut g));
    let (u, b) = (&t[0].0, &t[1].0);
    for m in [u, b] {
        let h = Header::new_checked(&m[..]).expect("valid");
        assert_eq!(h.user(), 2);
        assert_eq!(h.header_len(), 44);
        assert!(h.dest_droppable());
        assert_eq!(h.lookup_scope(), 2);
        assert_eq!(h.nametype(), T);
        assert_eq!((h.orignode(), h.origport(), h.prevnode()), (GA, 1, GA));
    }
    let hu = Header::new_checked(&u[..]).expect("valid");
    assert!(hu.src_droppable(), "bit 18 on the unicast");
    assert_eq!((hu.destnode(), hu.destport()), (GB, 2));
    let hb = Header::new_checked(&b[..]).expect("valid");
    assert!(!hb.is_rcast(), "the broadcast layer sets it");
    assert_eq!((hb.destnode(), hb.destport()), (0, 0));
}

#[test]
fn received_message_carries_both_sender_addresses() {
    let gb = sa(GB, 2);
    let mut g = joined(own(), cfg(T, 1, false), &[(gb, 42)], 65);
    g.handle_data(ucast(gb, own(), T, 0, b"hello"));
    let e = events(&mut g);
    let GroupEvent::Message(m) = &e[0] else {
        panic!("data");
    };
    assert_eq!(m.from, gb);
    assert_eq!((m.service.type_, m.service.instance), (T, 42));
    assert_eq!(&m.payload()[..], b"hello");
    assert_eq!(m.blocks(), 1);
}

#[test]
fn abandoned_anycast_looks_up_afresh() {
    let gb = sa(GB, 2);
    let gc = sa(GC, 3);
    let mut g = joined(own(), cfg(T, 1, false), &[(gb, 2), (gc, 2)], 1);
    let big = Bytes::from(vec![0; 3000]);
    assert!(g.send(GroupDest::Anycast(2), big.clone()).is_err());
    g.abandon_send();
    g.handle_proto(&proto(gc, own(), GroupProtoType::Adv, 0, 100));
    transmits(&mut g);
    g.send(GroupDest::Anycast(2), big).expect("gc fits");
    let m = only_node_msg(&transmits(&mut g));
    assert_eq!(sa(word(&m, 7), word(&m, 5)), gc);
}
