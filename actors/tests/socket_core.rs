//! Rules of the datagram socket core: message building limits, the receive queue
//! (`tipc_sk_filter_rcv`, `rcvbuf_limit`), rejection (`tipc_msg_reverse`) and secondary lookup
//! (`tipc_msg_lookup_dest`).
//!
//! Spec: tipc-protocol.md §2.6, §8.2, §9.1, §9.2, §9.3.

use std::cell::Cell;

use bytes::Bytes;
use tipc_actors::addr::{Scope, ServiceAddr, ServiceRange, SocketAddr};
use tipc_actors::name_table::{BindingTable, Publication};
use tipc_actors::socket::rcv::{sk_mcast_rcv, DropCause, RcvEnv, Verdict};
use tipc_actors::socket::{
    build_direct, build_mcast, build_named, lookup_dest, reject_or_reroute, reverse, truesize,
    Offer, RecvQueue, Returned, SendOpts, SocketError, MAX_FORWARD_SIZE, RCVBUF_MAX, RCVBUF_MIN,
};
use tipc_transport::wire::{DataRepr, DataType, ErrorCode, Header, MAX_USER_MSG_SIZE};

const ME: u32 = 0x0100_0001;
const PEER: u32 = 0x0100_0002;
const THIRD: u32 = 0x0100_0003;

fn me(port: u32) -> SocketAddr {
    SocketAddr { node: ME, port }
}
fn peer(port: u32) -> SocketAddr {
    SocketAddr { node: PEER, port }
}

/// A data message from PEER:7 to ME:9 with the given type, header size and payload.
fn raw(mtype: DataType, hsize: usize, dest_droppable: bool, syn: bool, payload: &[u8]) -> Vec<u8> {
    let r = DataRepr {
        hsize,
        importance: 0,
        mtype,
        non_seq: false,
        dest_droppable,
        bit18: false,
        syn,
        errcode: 0,
        reroute_cnt: 0,
        lookup_scope: 0,
        bcast_ack: 0,
        ack: 0,
        seqno: 0,
        prevnode: PEER,
        origport: 7,
        destport: 9,
        orignode: PEER,
        destnode: ME,
        name_type: 0,
        name_instance: 0,
        name_upper: 0,
        grp_bc_seqno: 0,
        grp_bc_ack_req: false,
        payload,
    };
    let mut b = vec![0; r.buffer_len()];
    r.emit(&mut b);
    b
}

fn direct_from_peer(imp: u8, droppable: bool, len: usize) -> Bytes {
    let opts = SendOpts {
        importance: imp,
        dest_droppable: droppable,
        src_droppable: false,
    };
    build_direct(peer(7), me(9), &opts, &vec![0xAB; len])
        .expect("build")
        .freeze()
}

fn hdr(b: &[u8]) -> Header<&[u8]> {
    Header::new_checked(b).expect("valid message")
}

// ---------------------------------------------------------------- building

#[test]
fn build_direct_accepts_max_user_msg_size() {
    let m = build_direct(me(1), peer(2), &SendOpts::RDM, &vec![0; MAX_USER_MSG_SIZE]);
    assert_eq!(m.expect("66000 is allowed").len(), 32 + MAX_USER_MSG_SIZE);
}

#[test]
fn build_rejects_payload_over_66000() {
    let data = vec![0; MAX_USER_MSG_SIZE + 1];
    let err = SocketError::TooLarge(MAX_USER_MSG_SIZE + 1);
    assert_eq!(
        build_direct(me(1), peer(2), &SendOpts::RDM, &data),
        Err(err)
    );
    let name = ServiceAddr {
        type_: 100,
        instance: 1,
    };
    assert_eq!(
        build_named(me(1), name, peer(2), Scope::Cluster, &SendOpts::RDM, &data),
        Err(err)
    );
    let range = ServiceRange::new(100, 1, 2).unwrap();
    assert_eq!(build_mcast(me(1), range, &SendOpts::RDM, &data), Err(err));
}

#[test]
fn build_rejects_importance_over_critical() {
    let opts = SendOpts {
        importance: 4,
        ..SendOpts::RDM
    };
    assert_eq!(
        build_direct(me(1), peer(2), &opts, b"x"),
        Err(SocketError::BadImportance(4))
    );
}

#[test]
fn build_mcast_rejects_inverted_range() {
    // A ServiceRange cannot hold lower > upper: the error arises where the range is built.
    assert_eq!(
        ServiceRange::new(100, 5, 4)
            .map_err(SocketError::from)
            .and_then(|range| build_mcast(me(1), range, &SendOpts::RDM, b"x")),
        Err(SocketError::BadRange)
    );
}

#[test]
fn build_dgram_sets_src_droppable_and_importance() {
    let opts = SendOpts {
        importance: 2,
        ..SendOpts::DGRAM
    };
    let m = build_direct(me(1), peer(2), &opts, b"x").expect("build");
    let h = hdr(&m);
    assert!(h.src_droppable());
    assert!(h.dest_droppable());
    assert_eq!(h.user(), 2);
    assert_eq!((h.prevnode(), h.orignode(), h.origport()), (ME, ME, 1));
}

#[test]
fn build_named_deferred_has_port_zero_and_node_scope() {
    let name = ServiceAddr {
        type_: 100,
        instance: 3,
    };
    let dest = SocketAddr {
        node: PEER,
        port: 0,
    };
    let m = build_named(me(1), name, dest, Scope::Node, &SendOpts::RDM, b"x").expect("build");
    let h = hdr(&m);
    assert_eq!((h.destnode(), h.destport()), (PEER, 0));
    assert_eq!(h.lookup_scope(), 3);
    assert_eq!((h.nametype(), h.nameinst()), (100, 3));
}

// ---------------------------------------------------------------- receive queue

#[test]
fn recv_queue_delivers_direct_with_source_and_zero_copy_data() {
    let mut q = RecvQueue::new();
    let m = direct_from_peer(1, true, 10);
    assert_eq!(q.offer(m.clone(), ME), Offer::Accepted);
    let rx = q.recv().expect("queued");
    assert_eq!(rx.from, peer(7));
    assert_eq!(rx.dest, None);
    assert_eq!(rx.mtype, DataType::Direct);
    assert_eq!(rx.importance, 1);
    assert_eq!(rx.returned, None);
    assert_eq!(&rx.data[..], &[0xAB; 10]);
    // Zero copy: the payload points into the received buffer.
    assert_eq!(rx.data.as_ptr(), m[32..].as_ptr());
    assert!(q.recv().is_none());
}

#[test]
fn recv_queue_reports_destname_for_named_and_mcast() {
    let mut q = RecvQueue::new();
    let name = ServiceAddr {
        type_: 1000,
        instance: 5,
    };
    let n = build_named(peer(7), name, me(9), Scope::Cluster, &SendOpts::RDM, b"n");
    let range = ServiceRange::new(1000, 10, 19).unwrap();
    let mc = build_mcast(peer(7), range, &SendOpts::RDM, b"m");
    assert_eq!(q.offer(n.expect("named").freeze(), ME), Offer::Accepted);
    assert_eq!(q.offer(mc.expect("mcast").freeze(), ME), Offer::Accepted);
    let a = q.recv().expect("named");
    assert_eq!(a.dest, Some(ServiceRange::single(1000, 5)));
    let b = q.recv().expect("mcast");
    assert_eq!(b.dest, Some(range));
    assert_eq!(&b.data[..], b"m");
}

#[test]
fn recv_queue_rejects_conn_msg_with_no_port_and_returns_it() {
    let mut q = RecvQueue::new();
    let m = raw(DataType::Conn, 24, false, false, b"hello");
    match q.offer(Bytes::from(m), ME) {
        Offer::Rejected { error, returned } => {
            assert_eq!(error, ErrorCode::NoPort);
            let r = returned.expect("not droppable: returned");
            let h = hdr(&r);
            assert_eq!(h.errcode(), ErrorCode::NoPort as u8);
            assert_eq!(h.header_len(), 32);
            assert_eq!((h.destnode(), h.destport(), h.origport()), (PEER, 7, 9));
        }
        other => panic!("expected rejection, got {other:?}"),
    }
    assert!(q.is_empty());
    assert_eq!(q.stats().rejected_no_port, 1);
}

#[test]
fn recv_queue_rejects_group_messages_with_no_port() {
    for t in [
        DataType::GrpBcast,
        DataType::GrpMcast,
        DataType::GrpUcast,
        DataType::GrpMemberEvt,
    ] {
        let mut q = RecvQueue::new();
        let m = raw(t, 44, true, false, b"g");
        assert_eq!(
            q.offer(Bytes::from(m), ME),
            Offer::Rejected {
                error: ErrorCode::NoPort,
                returned: None
            },
            "{t:?}"
        );
        assert!(q.is_empty());
    }
}

#[test]
fn recv_queue_drops_malformed_and_non_data() {
    let mut q = RecvQueue::new();
    assert_eq!(
        q.offer(Bytes::from_static(&[0x41, 0, 0]), ME),
        Offer::Dropped
    );
    // A CONN_MANAGER (user 8) message: 40-byte header.
    let mut cm = raw(DataType::Direct, 40, false, false, b"");
    Header::new_unchecked(&mut cm[..]).set_user(8);
    assert_eq!(q.offer(Bytes::from(cm), ME), Offer::Dropped);
    // A NAMED_MSG with a 32-byte header has no name.
    let short_named = raw(DataType::Named, 32, false, false, b"x");
    assert_eq!(q.offer(Bytes::from(short_named), ME), Offer::Dropped);
    assert_eq!(q.stats().dropped_malformed, 2);
    assert_eq!(q.stats().dropped_not_data, 1);
    assert!(q.is_empty());
}

/// A MCAST_MSG from PEER naming `{1000, lower, upper}` as the wire says, inverted or not.
fn mcast_naming(lower: u32, upper: u32) -> Vec<u8> {
    let mut m = build_mcast(
        peer(7),
        ServiceRange::new(1000, 0, 0).unwrap(),
        &SendOpts::RDM,
        b"m",
    )
    .unwrap()
    .to_vec();
    let mut h = Header::new_unchecked(&mut m[..]);
    h.set_nameinst(lower);
    h.set_nameupper(upper);
    m
}

#[test]
fn recv_queue_drops_mcast_with_inverted_range_as_malformed() {
    let mut q = RecvQueue::new();
    assert_eq!(
        q.offer(Bytes::from(mcast_naming(50, 10)), ME),
        Offer::Dropped
    );
    assert_eq!(q.stats().dropped_malformed, 1);
    assert!(q.is_empty());
    assert_eq!(
        q.offer(Bytes::from(mcast_naming(10, 50)), ME),
        Offer::Accepted
    );
    assert_eq!(
        q.recv().and_then(|r| r.dest),
        Some(ServiceRange::new(1000, 10, 50).unwrap())
    );
}

struct OneTable(BindingTable);

impl RcvEnv for OneTable {
    fn own(&self) -> u32 {
        ME
    }
    fn has_port(&self, port: u32) -> bool {
        port == 5
    }
    fn with_table<R>(&mut self, f: impl FnOnce(&mut BindingTable) -> R) -> R {
        f(&mut self.0)
    }
}

#[test]
fn mcast_dispatch_drops_inverted_range_as_malformed() {
    let mut env = OneTable(BindingTable::new(ME));
    let publ = Publication {
        range: ServiceRange::new(1000, 0, 100).unwrap(),
        scope: Scope::Cluster,
        node: ME,
        port: 5,
        key: 6,
    };
    env.0.publish(publ).unwrap();
    let verdicts = |env: &mut OneTable, m: Vec<u8>| {
        let mut v = Vec::new();
        sk_mcast_rcv(env, Bytes::from(m), &mut |x| v.push(x));
        v
    };
    let v = verdicts(&mut env, mcast_naming(50, 10));
    assert!(
        matches!(v[..], [Verdict::Drop(DropCause::Malformed)]),
        "{v:?}"
    );
    let v = verdicts(&mut env, mcast_naming(10, 50));
    assert!(matches!(v[..], [Verdict::Port(5, _)]), "{v:?}");
}

#[test]
fn recv_queue_overloads_low_at_rcvbuf_and_medium_at_twice() {
    let mut q = RecvQueue::new();
    q.set_rcvbuf(RCVBUF_MIN).expect("valid size");
    let len = 1000;
    let ts = truesize(32 + len);
    let fit = (RCVBUF_MIN - 1) / ts; // largest n with n * ts < limit
    for i in 0..fit {
        assert_eq!(
            q.offer(direct_from_peer(0, true, len), ME),
            Offer::Accepted,
            "message {i}"
        );
    }
    assert_eq!(q.queued_bytes(), fit * ts);
    assert_eq!(
        q.offer(direct_from_peer(0, true, len), ME),
        Offer::Rejected {
            error: ErrorCode::Overload,
            returned: None
        }
    );
    assert_eq!(q.stats().rejected_overload, 1);
    // MEDIUM has twice the limit.
    assert_eq!(q.offer(direct_from_peer(1, true, len), ME), Offer::Accepted);
    // Reading frees space for LOW again.
    q.recv().expect("queued");
    q.recv().expect("queued");
    assert_eq!(q.offer(direct_from_peer(0, true, len), ME), Offer::Accepted);
    assert_eq!(q.len(), fit);
}

#[test]
fn recv_queue_overload_returns_non_droppable_message() {
    let mut q = RecvQueue::new();
    q.set_rcvbuf(RCVBUF_MIN).expect("valid size");
    while q.offer(direct_from_peer(0, true, 2000), ME) == Offer::Accepted {}
    match q.offer(direct_from_peer(0, false, 2000), ME) {
        Offer::Rejected {
            error: ErrorCode::Overload,
            returned: Some(r),
        } => {
            let h = hdr(&r);
            assert_eq!(h.errcode(), ErrorCode::Overload as u8);
            assert_eq!(h.payload().len(), MAX_FORWARD_SIZE);
        }
        other => panic!("expected overload with returned message, got {other:?}"),
    }
}

#[test]
fn recv_queue_accepts_returned_message_with_system_importance() {
    let mut q = RecvQueue::new();
    q.set_rcvbuf(RCVBUF_MIN).expect("valid size");
    while q.offer(direct_from_peer(3, true, 60_000), ME) == Offer::Accepted {}
    // Our own message to PEER:7 came back: it is accepted beyond the CRITICAL limit.
    let ours = build_direct(
        me(9),
        peer(7),
        &SendOpts {
            dest_droppable: false,
            ..SendOpts::RDM
        },
        b"oops",
    )
    .expect("build");
    let ret = reverse(&ours, ErrorCode::NoPort, PEER).expect("returnable");
    assert_eq!(q.offer(ret.freeze(), ME), Offer::Accepted);
    let mut last = None;
    while let Some(rx) = q.recv() {
        last = Some(rx);
    }
    let rx = last.expect("returned message");
    assert_eq!(
        rx.returned,
        Some(Returned {
            error: ErrorCode::NoPort,
            dest: peer(7)
        })
    );
    assert_eq!(rx.from, peer(7));
    assert_eq!(&rx.data[..], b"oops");
}

#[test]
fn recv_queue_close_returns_non_droppable_messages_only() {
    let mut q = RecvQueue::new();
    assert_eq!(q.offer(direct_from_peer(0, true, 5), ME), Offer::Accepted);
    assert_eq!(q.offer(direct_from_peer(0, false, 5), ME), Offer::Accepted);
    let out = q.close(ME);
    assert_eq!(out.len(), 1);
    assert_eq!(hdr(&out[0]).errcode(), ErrorCode::NoPort as u8);
    assert!(q.is_empty());
    assert_eq!(q.queued_bytes(), 0);
}

#[test]
fn recv_queue_set_rcvbuf_enforces_bounds() {
    let mut q = RecvQueue::new();
    assert_eq!(q.rcvbuf(), 2 << 20);
    assert_eq!(
        q.set_rcvbuf(RCVBUF_MIN - 1),
        Err(SocketError::BadRcvbuf(RCVBUF_MIN - 1))
    );
    assert_eq!(
        q.set_rcvbuf(RCVBUF_MAX + 1),
        Err(SocketError::BadRcvbuf(RCVBUF_MAX + 1))
    );
    q.set_rcvbuf(RCVBUF_MAX).expect("max is allowed");
    assert_eq!(q.limit(3), RCVBUF_MAX << 3);
    assert_eq!(q.limit(4), RCVBUF_MAX << 4);
}

#[test]
fn truesize_rounds_up_and_is_monotonic() {
    assert_eq!(truesize(33), 64 + 576);
    assert_eq!(truesize(1000), 1024 + 576);
    assert_eq!(truesize(4097), 8192 + 576);
    let mut prev = 0;
    for len in (0..70_000).step_by(97) {
        let t = truesize(len);
        assert!(t >= len && t >= prev, "len {len}");
        prev = t;
    }
}

// ---------------------------------------------------------------- reverse

#[test]
fn reverse_widens_short_header_and_swaps_addresses() {
    let mut m = raw(DataType::Conn, 24, false, false, b"abc");
    Header::new_unchecked(&mut m[..]).set_non_seq(true);
    let r = reverse(&m, ErrorCode::ConnShutdown, ME).expect("returned");
    let h = hdr(&r);
    assert_eq!(h.header_len(), 32);
    assert_eq!(h.size(), 35);
    assert_eq!(h.payload(), b"abc");
    assert!(!h.non_seq());
    assert_eq!(h.errcode(), ErrorCode::ConnShutdown as u8);
    assert_eq!((h.origport(), h.destport()), (9, 7));
    assert_eq!((h.prevnode(), h.orignode(), h.destnode()), (ME, ME, PEER));
}

#[test]
fn reverse_truncates_data_to_1024_bytes() {
    let m = raw(DataType::Direct, 32, false, false, &[7; 5000]);
    let r = reverse(&m, ErrorCode::NoPort, ME).expect("returned");
    assert_eq!(r.len(), 32 + MAX_FORWARD_SIZE);
    assert_eq!(hdr(&r).size(), 32 + MAX_FORWARD_SIZE);
}

#[test]
fn reverse_drops_data_of_syn_only_on_overload() {
    let m = raw(DataType::Named, 40, false, true, b"syn data");
    let r = reverse(&m, ErrorCode::Overload, ME).expect("returned");
    assert_eq!(r.len(), 40);
    let r = reverse(&m, ErrorCode::NoPort, ME).expect("returned");
    assert_eq!(hdr(&r).payload(), b"syn data");
}

#[test]
fn reverse_refuses_droppable_errored_and_malformed() {
    let d = raw(DataType::Direct, 32, true, false, b"x");
    assert_eq!(reverse(&d, ErrorCode::NoPort, ME), None);
    let mut e = raw(DataType::Direct, 32, false, false, b"x");
    Header::new_unchecked(&mut e[..]).set_errcode(4);
    assert_eq!(reverse(&e, ErrorCode::NoPort, ME), None);
    assert_eq!(reverse(&[0u8; 10], ErrorCode::NoPort, ME), None);
}

// ---------------------------------------------------------------- secondary lookup

fn named_to_port0(reroute: u8, scope: Scope) -> Vec<u8> {
    let name = ServiceAddr {
        type_: 1000,
        instance: 4,
    };
    let opts = SendOpts {
        dest_droppable: false,
        ..SendOpts::RDM
    };
    let mut m = build_named(peer(7), name, me(0), scope, &opts, b"q")
        .expect("build")
        .to_vec();
    Header::new_unchecked(&mut m[..]).set_reroute_cnt(reroute);
    m
}

#[test]
fn lookup_dest_forwards_off_node_and_sets_prevnode() {
    let mut m = named_to_port0(0, Scope::Cluster);
    let seen = Cell::new(None);
    let dest = SocketAddr {
        node: THIRD,
        port: 55,
    };
    let got = lookup_dest(&mut m, ME, |n, s| {
        seen.set(Some((n, s)));
        Some(dest)
    });
    assert_eq!(got, Ok(dest));
    assert_eq!(
        seen.get(),
        Some((
            ServiceAddr {
                type_: 1000,
                instance: 4
            },
            Scope::Cluster
        ))
    );
    let h = hdr(&m);
    assert_eq!(h.reroute_cnt(), 1);
    assert_eq!((h.destnode(), h.destport()), (THIRD, 55));
    assert_eq!(h.prevnode(), ME);
    assert_eq!(h.orignode(), PEER);
}

#[test]
fn lookup_dest_keeps_prevnode_for_local_socket_and_passes_node_scope() {
    let mut m = named_to_port0(0, Scope::Node);
    let got = lookup_dest(&mut m, ME, |_, s| {
        assert_eq!(s, Scope::Node);
        Some(me(77))
    });
    assert_eq!(got, Ok(me(77)));
    let h = hdr(&m);
    assert_eq!(h.prevnode(), PEER);
    assert_eq!((h.destnode(), h.destport()), (ME, 77));
}

#[test]
fn lookup_dest_gives_no_name_when_rerouted_or_unbound() {
    let mut m = named_to_port0(1, Scope::Cluster);
    let before = m.clone();
    assert_eq!(
        lookup_dest(&mut m, ME, |_, _| Some(me(5))),
        Err(ErrorCode::NoName)
    );
    assert_eq!(m, before, "unchanged on failure");
    let mut m = named_to_port0(0, Scope::Cluster);
    assert_eq!(lookup_dest(&mut m, ME, |_, _| None), Err(ErrorCode::NoName));
}

#[test]
fn lookup_dest_gives_no_port_for_direct_and_errored_messages() {
    let mut d = raw(DataType::Direct, 32, false, false, b"x");
    assert_eq!(
        lookup_dest(&mut d, ME, |_, _| Some(me(5))),
        Err(ErrorCode::NoPort)
    );
    let mut e = named_to_port0(0, Scope::Cluster);
    Header::new_unchecked(&mut e[..]).set_errcode(1);
    assert_eq!(
        lookup_dest(&mut e, ME, |_, _| Some(me(5))),
        Err(ErrorCode::NoPort)
    );
}

#[test]
fn reject_or_reroute_returns_no_name_to_sender() {
    let m = named_to_port0(0, Scope::Cluster);
    let (node, r) = reject_or_reroute(&m, ME, |_, _| None).expect("returned");
    assert_eq!(node, PEER);
    let h = hdr(&r);
    assert_eq!(h.errcode(), ErrorCode::NoName as u8);
    assert_eq!((h.destnode(), h.destport()), (PEER, 7));
}

#[test]
fn reject_or_reroute_forwards_found_destination() {
    let m = named_to_port0(0, Scope::Cluster);
    let dest = SocketAddr {
        node: THIRD,
        port: 3,
    };
    let (node, r) = reject_or_reroute(&m, ME, |_, _| Some(dest)).expect("rerouted");
    assert_eq!(node, THIRD);
    assert_eq!(hdr(&r).destport(), 3);
    assert_eq!(hdr(&r).errcode(), 0);
}

#[test]
fn reject_or_reroute_returns_direct_with_no_port_and_drops_droppable() {
    let d = raw(DataType::Direct, 32, false, false, b"x");
    let (node, r) = reject_or_reroute(&d, ME, |_, _| Some(me(5))).expect("returned");
    assert_eq!(node, PEER);
    assert_eq!(hdr(&r).errcode(), ErrorCode::NoPort as u8);
    let dd = raw(DataType::Direct, 32, true, false, b"x");
    assert_eq!(reject_or_reroute(&dd, ME, |_, _| None), None);
}
