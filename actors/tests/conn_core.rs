//! The connection socket core [`ConnCore`] (kernel `net/tipc/socket.c`, the connection half;
//! spec tipc-protocol.md §9.4–9.7) through its public API: setup, flow control, Nagle, probing,
//! shutdown and node loss, byte for byte against kernel frames where there are some.
//!
//! The messages a peer sends are built here with the transport's header API ([`conn_msg`],
//! [`conn_mgr`]) the way a peer's core builds them; `peer_message_builders_match_kernel_vectors`
//! checks them against the kernel's frames.

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tipc_actors::addr::{ServiceAddr, SocketAddr};
use tipc_actors::socket::conn::{
    ConnCore, ConnError, ConnState, Output, Read, SynDest, Verdict, ADV_WIN, CONN_PROBING_INTV,
    CONN_TIMEOUT, FLOWCTL_BLK_SZ, FLOWCTL_MSG_WIN, INITIAL_WIN, NAGLE_LOCAL, NAGLE_MAX_BACKLOG,
};
use tipc_actors::socket::{build_direct, reverse, truesize, SendOpts, RCVBUF_DEFAULT};
use tipc_transport::caps;
use tipc_transport::wire::{
    user, ConnMgrRepr, ConnMgrType, DataType, ErrorCode, Header, SHORT_H_SIZE,
};
use tipc_transport::{NodeAddr, OWN_CAPABILITIES};

const A: NodeAddr = 0x6100_0000;
const B: NodeAddr = 0x6200_0000;
const LEGACY: u16 = OWN_CAPABILITIES & !(caps::BLOCK_FLOWCTL | caps::SYN_BIT);

fn sa(node: NodeAddr, port: u32) -> SocketAddr {
    SocketAddr { node, port }
}

/// A kernel vector with the link-stamped fields (w1 bits 15-0, w2) zeroed.
fn vector(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/../transport/tests/vectors/eth/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).expect("vector");
    let hex: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    let mut v: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    v[6..12].fill(0);
    v
}

fn outputs(c: &mut ConnCore) -> Vec<Output> {
    let mut v = Vec::new();
    while let Some(o) = c.poll_output() {
        v.push(o);
    }
    v
}

fn only_msg(c: &mut ConnCore) -> (NodeAddr, BytesMut) {
    let mut o = outputs(c);
    assert_eq!(o.len(), 1, "{o:?}");
    match o.remove(0) {
        Output::ToNode(n, m) => (n, m),
        other => panic!("unexpected {other:?}"),
    }
}

fn hdr(m: &[u8]) -> Header<&[u8]> {
    Header::new_checked(m).expect("valid")
}

/// A CONN_MSG from `from` to `to` with a 24-byte header (`tipc_msg_create` with
/// `SHORT_H_SIZE`), as the sending socket's core builds it.
fn conn_msg(from: SocketAddr, to: SocketAddr, importance: u8, err: u8, data: &[u8]) -> BytesMut {
    let mut buf = BytesMut::zeroed(SHORT_H_SIZE);
    buf.extend_from_slice(data);
    let mut h = Header::new_unchecked(&mut buf[..]);
    h.init(
        importance,
        DataType::Conn as u8,
        SHORT_H_SIZE,
        SHORT_H_SIZE + data.len(),
        from.node,
    );
    h.set_errcode(err);
    h.set_origport(from.port);
    h.set_destport(to.port);
    buf
}

/// A CONN_MANAGER message from `from` to `to` (40 bytes, nodes and ports set), as the sending
/// socket's core builds it.
fn conn_mgr(
    from: SocketAddr,
    to: SocketAddr,
    mtype: ConnMgrType,
    conn_ack: u16,
    adv_win: u16,
) -> BytesMut {
    let r = ConnMgrRepr {
        mtype,
        dest_droppable: false,
        nagle_ack: false,
        errcode: 0,
        bcast_ack: 0,
        ack: 0,
        seqno: 0,
        prevnode: from.node,
        origport: from.port,
        destport: to.port,
        orignode: from.node,
        destnode: to.node,
        conn_ack,
        adv_win,
        data: &[],
    };
    let mut buf = BytesMut::zeroed(r.buffer_len());
    r.emit(&mut buf);
    buf
}

/// Flow-control blocks of a message of `len` bytes (`msg_blocks`).
fn blocks(len: usize) -> u32 {
    (len / FLOWCTL_BLK_SZ) as u32 + 1
}

/// Client at `c` connected (by a direct SYN, then the peer's ACK) to server `s`.
fn established(c: SocketAddr, s: SocketAddr, caps: u16, now: Instant) -> ConnCore {
    let mut core = ConnCore::new(c);
    core.connect(SynDest::Socket(s), &[], now).unwrap();
    outputs(&mut core);
    let ack = conn_msg(s, c, 0, 0, &[]);
    assert_eq!(
        core.handle_message(ack.freeze(), caps, now),
        Verdict::Consumed
    );
    assert_eq!(core.state(), ConnState::Established);
    core
}

/// A message from the peer `s` to `c` as the peer's core would build it.
fn from_peer(c: SocketAddr, s: SocketAddr, err: u8, data: &[u8]) -> Bytes {
    conn_msg(s, c, 0, err, data).freeze()
}

fn conn_ack(c: SocketAddr, s: SocketAddr, n: u16, adv: u16) -> Bytes {
    conn_mgr(s, c, ConnMgrType::Ack, n, adv).freeze()
}

#[test]
fn peer_message_builders_match_kernel_vectors() {
    let (a, b) = (sa(A, 0x0e20_9a8e), sa(B, 0x86ae_c7bb));
    let ack = conn_msg(b, a, 0, 0, &[]);
    assert_eq!(&ack[..], &vector("070-data-low-conn-b2a-empty.hex")[..]);
    let data = conn_msg(b, a, 0, 0, b"ifirst");
    assert_eq!(&data[..], &vector("071-data-low-conn-b2a.hex")[..]);
    let (a, b) = (sa(A, 0x7b7c_24ee), sa(B, 0x6d5c_ae2e));
    let fin = conn_msg(a, b, user::CRITICAL, ErrorCode::ConnShutdown as u8, &[]);
    assert_eq!(
        &fin[..],
        &vector("129-data-critical-conn-a2b-err-conn_shutdown.hex")[..]
    );
    let (b, a) = (sa(B, 0x6376_7181), sa(A, 0xb97e_9214));
    let conn_ack = conn_mgr(b, a, ConnMgrType::Ack, 40, 512);
    assert_eq!(
        &conn_ack[..],
        &vector("076-conn-manager-conn-ack-b2a.hex")[..]
    );
}

#[test]
fn connect_named_syn_matches_kernel_vector() {
    let now = Instant::now();
    let mut c = ConnCore::new(sa(A, 0x7b7c_24ee));
    c.connect(
        SynDest::Service(ServiceAddr {
            type_: 2000,
            instance: 1,
        }),
        &[],
        now,
    )
    .unwrap();
    assert_eq!(c.state(), ConnState::Connecting);
    let mut o = outputs(&mut c);
    let Some(Output::Lookup(name, mut syn)) = o.pop() else {
        panic!("expected a lookup");
    };
    assert_eq!(name.type_, 2000);
    // The name table stamps the lookup result.
    let mut h = Header::new_unchecked(&mut syn[..]);
    h.set_destnode(B);
    h.set_destport(0xdd9a_5e82);
    assert_eq!(&syn[..], &vector("126-data-low-named-a2b-syn.hex")[..]);
}

#[test]
fn accept_ack_and_data_match_kernel_vectors() {
    let now = Instant::now();
    let mut l = ConnCore::new(sa(B, 1000));
    l.listen().unwrap();
    let mut client = ConnCore::new(sa(A, 0x0e20_9a8e));
    client
        .connect(SynDest::Socket(sa(B, 1000)), &[], now)
        .unwrap();
    let (_, syn) = only_msg(&mut client);
    assert_eq!(
        l.handle_message(syn.freeze(), OWN_CAPABILITIES, now),
        Verdict::Queued
    );
    assert_eq!(l.backlog(), 1);
    assert_eq!(l.peek_request(), Some(sa(A, 0x0e20_9a8e)));
    let mut s = l.accept(sa(B, 0x86ae_c7bb), OWN_CAPABILITIES, now).unwrap();
    assert_eq!(l.backlog(), 0);
    assert_eq!(s.state(), ConnState::Established);
    let (to, ack) = only_msg(&mut s);
    assert_eq!(to, A);
    assert_eq!(&ack[..], &vector("070-data-low-conn-b2a-empty.hex")[..]);
    s.write(b"ifirst").unwrap();
    let (to, data) = only_msg(&mut s);
    assert_eq!(to, A);
    assert_eq!(&data[..], &vector("071-data-low-conn-b2a.hex")[..]);
    // The client completes with the accepted socket (not the listener).
    assert_eq!(
        client.handle_message(ack.freeze(), OWN_CAPABILITIES, now),
        Verdict::Consumed
    );
    assert_eq!(client.state(), ConnState::Established);
    assert_eq!(client.peer(), sa(B, 0x86ae_c7bb));
}

#[test]
fn accept_of_named_request_records_the_service_asked_for() {
    let now = Instant::now();
    let name = ServiceAddr {
        type_: 18_888,
        instance: 17,
    };
    let mut client = ConnCore::new(sa(A, 5));
    client.connect(SynDest::Service(name), b"q", now).unwrap();
    let mut o = outputs(&mut client);
    let Some(Output::Lookup(n, mut syn)) = o.pop() else {
        panic!("a named SYN is resolved by its sender: {o:?}");
    };
    assert_eq!(n, name);
    {
        let mut h = Header::new_unchecked(&mut syn[..]);
        h.set_destnode(B);
        h.set_destport(1000);
    }
    let mut l = ConnCore::new(sa(B, 1000));
    l.listen().unwrap();
    l.handle_message(syn.freeze(), OWN_CAPABILITIES, now);
    let s = l.accept(sa(B, 1001), OWN_CAPABILITIES, now).unwrap();
    assert_eq!(s.dest_name(), Some(name));
    assert_eq!(client.dest_name(), None);
    // By socket address: no name.
    let mut c2 = ConnCore::new(sa(A, 6));
    c2.connect(SynDest::Socket(sa(B, 1000)), &[], now).unwrap();
    let (_, syn) = only_msg(&mut c2);
    l.handle_message(syn.freeze(), OWN_CAPABILITIES, now);
    let s2 = l.accept(sa(B, 1002), OWN_CAPABILITIES, now).unwrap();
    assert_eq!(s2.dest_name(), None);
}

#[test]
fn shutdown_fin_matches_kernel_vector() {
    let now = Instant::now();
    let mut c = established(
        sa(A, 0x7b7c_24ee),
        sa(B, 0x6d5c_ae2e),
        OWN_CAPABILITIES,
        now,
    );
    c.shutdown(ErrorCode::ConnShutdown);
    assert_eq!(c.state(), ConnState::Disconnecting);
    let (to, fin) = only_msg(&mut c);
    assert_eq!(to, B);
    assert_eq!(
        &fin[..],
        &vector("129-data-critical-conn-a2b-err-conn_shutdown.hex")[..]
    );
    assert_eq!(c.can_send(), Err(ConnError::Closed));
    // A second shutdown sends nothing.
    c.shutdown(ErrorCode::NoPort);
    assert!(outputs(&mut c).is_empty());
}

#[test]
fn read_acks_after_consuming_rcv_win_quarter_matching_kernel_vector() {
    let now = Instant::now();
    let (me, peer) = (sa(B, 0x6376_7181), sa(A, 0xb97e_9214));
    let mut c = established(me, peer, OWN_CAPABILITIES, now);
    let big = vec![0x55u8; 20000];
    for _ in 0..2 {
        assert_eq!(
            c.handle_message(from_peer(me, peer, 0, &big), OWN_CAPABILITIES, now),
            Verdict::Queued
        );
    }
    // Counted when read, not on arrival.
    assert!(outputs(&mut c).is_empty());
    assert_eq!(c.read(), Some(Read::Data(Bytes::from(big.clone()))));
    assert_eq!(c.rcv_unacked(), 20);
    assert!(outputs(&mut c).is_empty());
    assert_eq!(c.read(), Some(Read::Data(Bytes::from(big))));
    // 40 blocks >= 128 / 4: CONN_ACK conn_ack=40, adv_win=512.
    let (to, ack) = only_msg(&mut c);
    assert_eq!(to, A);
    assert_eq!(&ack[..], &vector("076-conn-manager-conn-ack-b2a.hex")[..]);
    assert_eq!(c.rcv_unacked(), 0);
    assert_eq!(c.rcv_win(), ADV_WIN);
}

#[test]
fn send_blocks_when_window_exceeded_and_ack_reopens_it() {
    let now = Instant::now();
    let (me, peer) = (sa(A, 10), sa(B, 20));
    let mut c = established(me, peer, OWN_CAPABILITIES, now);
    assert_eq!(c.snd_win(), INITIAL_WIN);
    let chunk = vec![0u8; 1000]; // 1024 bytes with the header: 2 blocks.
    let mut sent = 0;
    while c.can_send() == Ok(true) {
        c.write(&chunk).unwrap();
        sent += 1;
    }
    assert_eq!(c.snt_unacked(), 130);
    assert_eq!(sent, 65);
    // An ack for more than was sent is ignored.
    c.handle_message(conn_ack(me, peer, 131, 512), OWN_CAPABILITIES, now);
    assert_eq!(c.snt_unacked(), 130);
    assert_eq!(c.snd_win(), INITIAL_WIN);
    c.handle_message(conn_ack(me, peer, 40, 512), OWN_CAPABILITIES, now);
    assert_eq!(c.snt_unacked(), 90);
    assert_eq!(c.snd_win(), 512);
    assert_eq!(c.can_send(), Ok(true));
    assert_eq!(c.stats().acks_rcvd, 2);
}

#[test]
fn legacy_peer_uses_message_counting_and_no_adv_win() {
    let now = Instant::now();
    let (me, peer) = (sa(A, 10), sa(B, 20));
    let mut c = established(me, peer, LEGACY, now);
    assert!(!c.block_flowctl());
    assert_eq!(
        (c.snd_win(), c.rcv_win()),
        (FLOWCTL_MSG_WIN, FLOWCTL_MSG_WIN)
    );
    c.write(&[0u8; 60000]).unwrap();
    assert_eq!(outputs(&mut c).len(), 1);
    assert_eq!(c.snt_unacked(), 1);
    for _ in 0..128 {
        c.handle_message(from_peer(me, peer, 0, b"x"), LEGACY, now);
    }
    for i in 0..128 {
        assert!(matches!(c.read(), Some(Read::Data(_))));
        let o = outputs(&mut c);
        if i < 127 {
            assert!(o.is_empty());
        } else {
            let Some(Output::ToNode(_, ack)) = o.into_iter().next() else {
                panic!("no ack after 128 messages");
            };
            let h = hdr(&ack);
            assert_eq!(h.conn_ack(), 128);
            assert_eq!(h.adv_win(), 0);
        }
    }
    // A legacy ack never changes the window.
    c.handle_message(conn_ack(me, peer, 1, 77), LEGACY, now);
    assert_eq!((c.snt_unacked(), c.snd_win()), (0, FLOWCTL_MSG_WIN));
}

#[test]
fn ack_required_gets_immediate_nagle_ack() {
    let now = Instant::now();
    let (me, peer) = (sa(A, 10), sa(B, 20));
    let mut c = established(me, peer, OWN_CAPABILITIES, now);
    let mut m = BytesMut::from(&from_peer(me, peer, 0, b"abc")[..]);
    Header::new_unchecked(&mut m[..]).set_ack_required(true);
    assert_eq!(
        c.handle_message(m.freeze(), OWN_CAPABILITIES, now),
        Verdict::Queued
    );
    let (to, ack) = only_msg(&mut c);
    assert_eq!(to, B);
    let h = hdr(&ack);
    assert_eq!(h.user(), user::CONN_MANAGER);
    assert_eq!(h.mtype(), ConnMgrType::Ack as u8);
    assert!(h.nagle_ack());
}

#[test]
fn probe_is_answered_with_reversed_probe_reply() {
    let now = Instant::now();
    let (me, peer) = (sa(A, 10), sa(B, 20));
    let mut c = established(me, peer, OWN_CAPABILITIES, now);
    let probe = conn_mgr(peer, me, ConnMgrType::Probe, 0, 0).freeze();
    assert_eq!(
        c.handle_message(probe, OWN_CAPABILITIES, now),
        Verdict::Consumed
    );
    let (to, rep) = only_msg(&mut c);
    assert_eq!(to, B);
    let h = hdr(&rep);
    assert_eq!(h.user(), user::CONN_MANAGER);
    assert_eq!(h.mtype(), ConnMgrType::ProbeReply as u8);
    assert_eq!((h.origport(), h.destport()), (10, 20));
    assert_eq!((h.orignode(), h.destnode()), (A, B));
    assert_eq!(h.errcode(), 0);
}

#[test]
fn unanswered_probe_aborts_after_a_probing_interval() {
    let now = Instant::now();
    let (me, peer) = (sa(A, 10), sa(B, 20));
    let mut c = established(me, peer, OWN_CAPABILITIES, now);
    assert_eq!(c.poll_timeout(), Some(now + CONN_PROBING_INTV));
    c.handle_timeout(now + CONN_PROBING_INTV);
    let (_, probe) = only_msg(&mut c);
    assert_eq!(hdr(&probe).mtype(), ConnMgrType::Probe as u8);
    // Answered: the next interval probes again.
    let reply = conn_mgr(peer, me, ConnMgrType::ProbeReply, 0, 0).freeze();
    c.handle_message(reply, OWN_CAPABILITIES, now);
    c.handle_timeout(now + 2 * CONN_PROBING_INTV);
    assert_eq!(outputs(&mut c).len(), 1);
    assert_eq!(c.state(), ConnState::Established);
    // Unanswered: aborted.
    c.handle_timeout(now + 3 * CONN_PROBING_INTV);
    assert_eq!(c.state(), ConnState::Disconnecting);
    assert_eq!(c.can_send(), Err(ConnError::Aborted));
    assert_eq!(c.read(), Some(Read::End(Err(ConnError::Aborted))));
}

#[test]
fn established_rejects_message_from_wrong_port_or_node_with_no_port() {
    let now = Instant::now();
    let (me, peer) = (sa(A, 10), sa(B, 20));
    let mut c = established(me, peer, OWN_CAPABILITIES, now);
    let wrong_port = from_peer(me, sa(B, 21), 0, b"x");
    assert_eq!(
        c.handle_message(wrong_port, OWN_CAPABILITIES, now),
        Verdict::Rejected(ErrorCode::NoPort)
    );
    let (to, ret) = only_msg(&mut c);
    assert_eq!(to, B);
    let h = hdr(&ret);
    assert_eq!(h.errcode(), ErrorCode::NoPort as u8);
    assert_eq!(h.header_len(), 32);
    assert_eq!(h.destport(), 21);
    let wrong_node = from_peer(me, sa(0x6300_0000, 20), 0, b"x");
    assert_eq!(
        c.handle_message(wrong_node, OWN_CAPABILITIES, now),
        Verdict::Rejected(ErrorCode::NoPort)
    );
    assert_eq!(c.state(), ConnState::Established);
    assert_eq!(c.rx_len(), 0);
}

#[test]
fn listener_requires_syn_only_from_syn_bit_peers() {
    let now = Instant::now();
    let mut l = ConnCore::new(sa(B, 1000));
    l.listen().unwrap();
    let plain = build_direct(sa(A, 5), sa(B, 1000), &SendOpts::default(), b"hi").unwrap();
    let mut plain_ret = plain.clone();
    Header::new_unchecked(&mut plain_ret[..]).set_dest_droppable(false);
    assert_eq!(
        l.handle_message(plain_ret.clone().freeze(), OWN_CAPABILITIES, now),
        Verdict::Rejected(ErrorCode::NoPort)
    );
    assert_eq!(outputs(&mut l).len(), 1);
    // A legacy peer's plain message is a request.
    assert_eq!(
        l.handle_message(plain_ret.freeze(), LEGACY, now),
        Verdict::Queued
    );
    // Connection messages and returned messages are never requests.
    let cm = conn_msg(sa(A, 6), sa(B, 1000), 0, 0, b"x").freeze();
    assert_eq!(
        l.handle_message(cm, LEGACY, now),
        Verdict::Rejected(ErrorCode::NoPort)
    );
    let mut returned = plain.clone();
    {
        let mut h = Header::new_unchecked(&mut returned[..]);
        h.set_errcode(ErrorCode::NoName as u8);
        h.set_syn(true);
    }
    assert_eq!(
        l.handle_message(returned.freeze(), LEGACY, now),
        Verdict::Rejected(ErrorCode::NoPort)
    );
    assert_eq!(outputs(&mut l).len(), 1, "only the CONN_MSG is returned");
    assert_eq!(l.backlog(), 1);
    // The legacy request gets a legacy connection.
    let s = l.accept(sa(B, 1001), LEGACY, now).unwrap();
    assert!(!s.block_flowctl());
}

#[test]
fn listener_close_rejects_pending_requests() {
    let now = Instant::now();
    let mut l = ConnCore::new(sa(B, 1000));
    l.listen().unwrap();
    let mut c = ConnCore::new(sa(A, 5));
    c.connect(SynDest::Socket(sa(B, 1000)), b"data", now)
        .unwrap();
    let (_, syn) = only_msg(&mut c);
    l.handle_message(syn.freeze(), OWN_CAPABILITIES, now);
    l.shutdown(ErrorCode::NoPort);
    let (to, ret) = only_msg(&mut l);
    assert_eq!(to, A);
    assert_eq!(hdr(&ret).errcode(), ErrorCode::NoPort as u8);
    // The client sees its SYN refused.
    assert_eq!(
        c.handle_message(ret.freeze(), OWN_CAPABILITIES, now),
        Verdict::Consumed
    );
    assert_eq!(c.state(), ConnState::Disconnecting);
    assert_eq!(c.can_send(), Err(ConnError::Refused(ErrorCode::NoPort)));
}

#[test]
fn overloaded_syn_is_retried_after_random_delay_and_keeps_data() {
    let now = Instant::now();
    let mut c = ConnCore::new(sa(A, 5));
    c.connect(SynDest::Socket(sa(B, 1000)), b"zero-rtt", now)
        .unwrap();
    assert_eq!(c.snt_unacked(), 1);
    let (_, syn) = only_msg(&mut c);
    let ret = reverse(&syn, ErrorCode::Overload, B).unwrap();
    assert!(hdr(&ret).payload().is_empty(), "OVERLOAD drops SYN data");
    assert_eq!(
        c.handle_message(ret.freeze(), OWN_CAPABILITIES, now),
        Verdict::Consumed
    );
    assert_eq!(c.state(), ConnState::Connecting);
    let t = c.poll_timeout().unwrap();
    let d = t - now;
    assert!(
        d >= Duration::from_millis(100) && d < Duration::from_millis(2100),
        "{d:?}"
    );
    c.handle_timeout(t);
    let (to, again) = only_msg(&mut c);
    assert_eq!(to, B);
    assert_eq!(&again[..], &syn[..]);
}

#[test]
fn connect_times_out_after_eight_seconds() {
    let now = Instant::now();
    let mut c = ConnCore::new(sa(A, 5));
    c.connect(SynDest::Socket(sa(B, 1000)), &[], now).unwrap();
    assert_eq!(
        c.connect(SynDest::Socket(sa(B, 1000)), &[], now),
        Err(ConnError::BadState)
    );
    c.handle_timeout(now + Duration::from_millis(7999));
    assert_eq!(c.state(), ConnState::Connecting);
    c.handle_timeout(now + CONN_TIMEOUT);
    assert_eq!(c.can_send(), Err(ConnError::Timeout));
}

#[test]
fn connect_times_out_after_the_timeout_set_on_the_socket() {
    let now = Instant::now();
    let mut c = ConnCore::new(sa(A, 5));
    c.set_conn_timeout(Duration::from_millis(300));
    c.connect(SynDest::Socket(sa(B, 1000)), &[], now).unwrap();
    assert_eq!(c.poll_timeout(), Some(now + Duration::from_millis(300)));
    c.handle_timeout(now + Duration::from_millis(299));
    assert_eq!(c.state(), ConnState::Connecting);
    c.handle_timeout(now + Duration::from_millis(300));
    assert_eq!(c.can_send(), Err(ConnError::Timeout));
}

#[test]
fn zero_rtt_connect_waits_past_the_connect_timeout() {
    let now = Instant::now();
    let mut c = ConnCore::new(sa(A, 5));
    c.connect(SynDest::Socket(sa(B, 1000)), b"data", now)
        .unwrap();
    let (_, syn) = only_msg(&mut c);
    assert_eq!(c.poll_timeout(), None);
    c.handle_timeout(now + 10 * CONN_TIMEOUT);
    assert_eq!(c.state(), ConnState::Connecting);
    // The ACK arrives late: established, the SYN data counted until acknowledged.
    let mut l = ConnCore::new(sa(B, 1000));
    l.listen().unwrap();
    l.handle_message(syn.freeze(), OWN_CAPABILITIES, now);
    let mut s = l.accept(sa(B, 1001), OWN_CAPABILITIES, now).unwrap();
    let (_, ack) = only_msg(&mut s);
    let late = now + 10 * CONN_TIMEOUT;
    assert_eq!(
        c.handle_message(ack.freeze(), OWN_CAPABILITIES, late),
        Verdict::Consumed
    );
    assert_eq!(c.state(), ConnState::Established);
    assert_eq!(c.snt_unacked(), 1);
    assert_eq!(c.can_send(), Ok(true));
}

#[test]
fn named_zero_rtt_connect_fails_with_no_node_when_resolved_node_is_lost() {
    let now = Instant::now();
    let name = ServiceAddr {
        type_: 5000,
        instance: 1,
    };
    let mut c = ConnCore::new(sa(A, 5));
    c.connect(SynDest::Service(name), b"data", now).unwrap();
    assert!(matches!(outputs(&mut c)[..], [Output::Lookup(..)]));
    assert!(!c.handle_node_lost(B, now), "destination not known yet");
    c.syn_sent_to(B);
    assert!(!c.handle_node_lost(0x6300_0000, now));
    assert_eq!(c.state(), ConnState::Connecting);
    assert!(c.handle_node_lost(B, now));
    assert_eq!(c.can_send(), Err(ConnError::NoNode));
    // Once connected, a later resolution changes nothing.
    let mut e = established(sa(A, 6), sa(B, 20), OWN_CAPABILITIES, now);
    e.syn_sent_to(0x6300_0000);
    assert_eq!(e.peer(), sa(B, 20));
}

#[test]
fn connecting_ignores_foreign_returned_messages() {
    let now = Instant::now();
    let mut c = ConnCore::new(sa(A, 5));
    c.connect(SynDest::Socket(sa(B, 1000)), &[], now).unwrap();
    outputs(&mut c);
    let mut other = build_direct(sa(A, 5), sa(B, 999), &SendOpts::default(), b"x").unwrap();
    Header::new_unchecked(&mut other[..]).set_dest_droppable(false);
    let ret = reverse(&other, ErrorCode::NoPort, B).unwrap();
    assert_eq!(
        c.handle_message(ret.freeze(), OWN_CAPABILITIES, now),
        Verdict::Dropped
    );
    assert_eq!(c.state(), ConnState::Connecting);
}

#[test]
fn node_loss_ends_connection_with_no_node_after_queued_data() {
    let now = Instant::now();
    let (me, peer) = (sa(A, 10), sa(B, 20));
    let mut c = established(me, peer, OWN_CAPABILITIES, now);
    c.handle_message(from_peer(me, peer, 0, b"before"), OWN_CAPABILITIES, now);
    let m = c.node_lost_msg(B).unwrap();
    let h = hdr(&m);
    assert_eq!((h.user(), h.header_len()), (user::CRITICAL, SHORT_H_SIZE));
    assert_eq!(h.errcode(), ErrorCode::NoNode as u8);
    assert_eq!((h.origport(), h.destport(), h.prevnode()), (20, 10, B));
    assert!(!c.handle_node_lost(0x6300_0000, now));
    assert!(c.handle_node_lost(B, now));
    assert_eq!(c.can_send(), Err(ConnError::NoNode));
    assert_eq!(c.read(), Some(Read::Data(Bytes::from_static(b"before"))));
    assert_eq!(c.read(), Some(Read::End(Err(ConnError::NoNode))));
    assert_eq!(c.read(), Some(Read::End(Err(ConnError::NoNode))));
    assert!(c.node_lost_msg(B).is_none());
}

#[test]
fn peer_fin_codes_map_to_orderly_end_or_reset() {
    let now = Instant::now();
    let (me, peer) = (sa(A, 10), sa(B, 20));
    let mut c = established(me, peer, OWN_CAPABILITIES, now);
    c.handle_message(from_peer(me, peer, 0, b"d"), OWN_CAPABILITIES, now);
    let fin = from_peer(me, peer, ErrorCode::ConnShutdown as u8, &[]);
    assert_eq!(
        c.handle_message(fin, OWN_CAPABILITIES, now),
        Verdict::Queued
    );
    assert_eq!(c.can_send(), Err(ConnError::PeerShutdown));
    assert_eq!(c.read(), Some(Read::Data(Bytes::from_static(b"d"))));
    assert_eq!(c.read(), Some(Read::End(Ok(()))));
    assert_eq!(c.read(), Some(Read::End(Ok(()))), "the end is sticky");

    let mut c = established(me, peer, OWN_CAPABILITIES, now);
    let fin = from_peer(me, peer, ErrorCode::NoPort as u8, &[]);
    c.handle_message(fin, OWN_CAPABILITIES, now);
    assert_eq!(c.read(), Some(Read::End(Err(ConnError::Reset))));
    // After the end, anything from the peer is rejected (and not returned: it has errcode).
    let late = from_peer(me, peer, 0, b"late");
    assert_eq!(
        c.handle_message(late, OWN_CAPABILITIES, now),
        Verdict::Rejected(ErrorCode::NoPort)
    );
}

#[test]
fn close_with_unread_message_rejects_it_back_as_fin() {
    let now = Instant::now();
    let (me, peer) = (sa(A, 10), sa(B, 20));
    let mut c = established(me, peer, OWN_CAPABILITIES, now);
    c.handle_message(from_peer(me, peer, 0, b"unread"), OWN_CAPABILITIES, now);
    c.shutdown(ErrorCode::NoPort);
    let (to, fin) = only_msg(&mut c);
    assert_eq!(to, B);
    let h = hdr(&fin);
    assert_eq!(h.errcode(), ErrorCode::NoPort as u8);
    assert_eq!(h.payload(), b"unread");
    assert_eq!((h.origport(), h.destport()), (10, 20));
}

#[test]
fn receive_queue_over_limit_rejects_with_overload() {
    let now = Instant::now();
    let (me, peer) = (sa(A, 10), sa(B, 20));
    let mut c = established(me, peer, OWN_CAPABILITIES, now);
    let big = vec![0u8; 60000];
    let mut n = 0;
    loop {
        match c.handle_message(from_peer(me, peer, 0, &big), OWN_CAPABILITIES, now) {
            Verdict::Queued => n += 1,
            v => {
                assert_eq!(v, Verdict::Rejected(ErrorCode::Overload));
                break;
            }
        }
        assert!(n < 100);
    }
    assert!(c.rx_mem() < RCVBUF_DEFAULT);
    assert_eq!(n, RCVBUF_DEFAULT / truesize(60024));
    let (_, ret) = only_msg(&mut c);
    assert_eq!(hdr(&ret).errcode(), ErrorCode::Overload as u8);
}

#[test]
fn malformed_and_unknown_messages_are_dropped_and_counted() {
    let now = Instant::now();
    let (me, peer) = (sa(A, 10), sa(B, 20));
    let mut c = established(me, peer, OWN_CAPABILITIES, now);
    assert_eq!(
        c.handle_message(Bytes::from_static(&[1, 2, 3]), 0, now),
        Verdict::Dropped
    );
    let mut junk = BytesMut::from(&conn_ack(me, peer, 0, 0)[..]);
    Header::new_unchecked(&mut junk[..]).set_mtype(5);
    assert_eq!(c.handle_message(junk.freeze(), 0, now), Verdict::Dropped);
    // An ack from someone else is ignored.
    let foreign = conn_ack(me, sa(B, 99), 1, 1);
    assert_eq!(c.handle_message(foreign, 0, now), Verdict::Dropped);
    assert_eq!(c.stats().dropped, 3);
    assert!(outputs(&mut c).is_empty());
    assert_eq!(
        c.write(&vec![0u8; 66001]).err(),
        Some(ConnError::TooLarge(66001))
    );
}

#[test]
fn zero_rtt_syn_data_is_first_read_of_accepted_socket_and_counts_its_header() {
    let now = Instant::now();
    let mut l = ConnCore::new(sa(B, 1000));
    l.listen().unwrap();
    let mut c = ConnCore::new(sa(A, 5));
    c.connect(SynDest::Socket(sa(B, 1000)), &[7u8; 2000], now)
        .unwrap();
    // 2000 + 32 bytes: 2 blocks.
    assert_eq!(c.snt_unacked(), 2);
    let (_, syn) = only_msg(&mut c);
    assert!(hdr(&syn).syn());
    assert!(!hdr(&syn).dest_droppable());
    l.handle_message(syn.freeze(), OWN_CAPABILITIES, now);
    let mut s = l.accept(sa(B, 1001), OWN_CAPABILITIES, now).unwrap();
    outputs(&mut s);
    assert_eq!(s.read(), Some(Read::Data(Bytes::from(vec![7u8; 2000]))));
    assert_eq!(s.rcv_unacked(), 2);
}

#[test]
fn returned_conn_ack_resets_connection() {
    let now = Instant::now();
    let (me, peer) = (sa(A, 10), sa(B, 20));
    let mut c = established(me, peer, OWN_CAPABILITIES, now);
    let ack = conn_mgr(me, peer, ConnMgrType::Ack, 3, 512);
    // The peer's node has no such port any more: the ack comes back with NO_PORT.
    let ret = reverse(&ack, ErrorCode::NoPort, B).unwrap();
    assert_eq!(
        c.handle_message(ret.freeze(), OWN_CAPABILITIES, now),
        Verdict::Queued
    );
    assert_eq!(c.can_send(), Err(ConnError::Reset));
    assert_eq!(c.read(), Some(Read::End(Err(ConnError::Reset))));
}

/// An established stream (Nagle on when `caps` has it), link mss 1460.
fn stream(me: SocketAddr, peer: SocketAddr, caps: u16, now: Instant) -> ConnCore {
    let mut c = established(me, peer, caps, now);
    c.set_stream(true);
    c.set_max_pkt(1460);
    c
}

fn nagle_ack(me: SocketAddr, peer: SocketAddr, n: u16) -> Bytes {
    let mut m = BytesMut::from(&conn_ack(me, peer, n, 512)[..]);
    Header::new_unchecked(&mut m[..]).set_nagle_ack(true);
    m.freeze()
}

fn data_msgs(c: &mut ConnCore) -> Vec<BytesMut> {
    outputs(c)
        .into_iter()
        .map(|o| match o {
            Output::ToNode(_, m) => m,
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn payload(m: &[u8]) -> &[u8] {
    let h = hdr(m);
    &m[h.header_len()..h.size()]
}

#[test]
fn stream_nagle_starts_at_the_fifth_write_and_holds_until_the_nagle_ack() {
    let now = Instant::now();
    let (me, peer) = (sa(A, 10), sa(B, 20));
    let mut c = stream(me, peer, OWN_CAPABILITIES, now);
    assert_eq!(c.max_nagle(), 1460);
    // Four writes go out as they come (`nagle_start` = 4).
    for i in 0..4u8 {
        c.write(&[i; 10]).unwrap();
        let m = data_msgs(&mut c);
        assert_eq!(m.len(), 1);
        assert!(!hdr(&m[0]).ack_required());
    }
    // The fifth is appended to a fresh buffer, which goes out at once asking for an ack.
    c.write(b"fifth").unwrap();
    let m = data_msgs(&mut c);
    assert_eq!(m.len(), 1);
    assert!(hdr(&m[0]).ack_required());
    assert_eq!(payload(&m[0]), b"fifth");
    // While that ack is awaited, writes are held in one buffer.
    let before = c.snt_unacked();
    for i in 0..100u8 {
        c.write(&[i; 10]).unwrap();
    }
    assert!(data_msgs(&mut c).is_empty());
    assert_eq!(c.nagle_held(), 1);
    assert_eq!(c.snt_unacked(), before, "held data is not counted yet");
    // The nagle ack pushes them: one 1024-byte message, asking for the next ack.
    c.handle_message(nagle_ack(me, peer, 0), OWN_CAPABILITIES, now);
    let m = data_msgs(&mut c);
    assert_eq!(m.len(), 1);
    assert!(hdr(&m[0]).ack_required());
    let want: Vec<u8> = (0..100u8).flat_map(|i| [i; 10]).collect();
    assert_eq!(payload(&m[0]), &want[..]);
    assert_eq!(hdr(&m[0]).size(), SHORT_H_SIZE + 1000);
    assert_eq!(c.snt_unacked(), before + 2, "1024 bytes: 2 blocks");
    let st = c.stats();
    assert_eq!((st.tx_msgs, st.nagled, st.tx_bytes), (6, 101, 1045));
}

#[test]
fn nagle_buffers_fill_to_the_mss_and_go_out_past_64_blocks() {
    let now = Instant::now();
    let (me, peer) = (sa(A, 10), sa(B, 20));
    let mut c = stream(me, peer, OWN_CAPABILITIES, now);
    for _ in 0..5 {
        c.write(&[7; 100]).unwrap();
    }
    data_msgs(&mut c);
    let mut written = 0usize;
    let mut sent = Vec::new();
    // 1000-byte writes: 1460-byte buffers of 2 blocks each; held until 64 blocks.
    while sent.is_empty() {
        c.write(&[9; 1000]).unwrap();
        written += 1000;
        sent = data_msgs(&mut c);
        assert!(written < 100_000, "never pushed");
    }
    let total: usize = sent.iter().map(|m| payload(m).len()).sum();
    assert_eq!(total, written);
    assert!(sent.iter().all(|m| m.len() <= 1460));
    assert!(sent[..sent.len() - 1].iter().all(|m| m.len() == 1460));
    let blocks: u32 = sent.iter().map(|m| blocks(m.len())).sum();
    assert!(blocks > NAGLE_MAX_BACKLOG, "{blocks}");
    // Still expecting the first ack: none of these asks for another.
    assert!(sent.iter().all(|m| !hdr(m).ack_required()));
}

#[test]
fn a_nagle_round_of_single_writes_doubles_the_start() {
    let now = Instant::now();
    let (me, peer) = (sa(A, 10), sa(B, 20));
    let mut c = stream(me, peer, OWN_CAPABILITIES, now);
    let mut rounds = Vec::new();
    for _ in 0..3 {
        // Writes until one asks for an ack, then the ack: one write per message.
        let mut n = 0;
        loop {
            c.write(b"x").unwrap();
            n += 1;
            if data_msgs(&mut c).iter().any(|m| hdr(m).ack_required()) {
                break;
            }
        }
        rounds.push(n);
        c.handle_message(nagle_ack(me, peer, 0), OWN_CAPABILITIES, now);
        assert!(data_msgs(&mut c).is_empty());
    }
    assert_eq!(rounds, vec![5, 9, 17]);
}

#[test]
fn peer_message_and_shutdown_push_held_data_in_order() {
    let now = Instant::now();
    let (me, peer) = (sa(A, 10), sa(B, 20));
    let mut c = stream(me, peer, OWN_CAPABILITIES, now);
    for _ in 0..5 {
        c.write(b"a").unwrap();
    }
    data_msgs(&mut c);
    c.write(b"held1").unwrap();
    assert!(data_msgs(&mut c).is_empty());
    // Data from the peer pushes what is held (and restarts the count of one-way writes).
    c.handle_message(from_peer(me, peer, 0, b"reply"), OWN_CAPABILITIES, now);
    let m = data_msgs(&mut c);
    assert_eq!(m.len(), 1);
    assert_eq!(payload(&m[0]), b"held1");
    for i in 0..4u8 {
        c.write(&[i]).unwrap();
        assert_eq!(data_msgs(&mut c).len(), 1, "write {i} after the reply");
    }
    c.write(b"held2").unwrap();
    c.write(b"held3").unwrap();
    assert!(data_msgs(&mut c).is_empty());
    // shutdown(): held data, then the FIN.
    c.shutdown(ErrorCode::ConnShutdown);
    let m = data_msgs(&mut c);
    assert_eq!(m.len(), 2);
    assert_eq!(payload(&m[0]), b"held2held3");
    assert_eq!(hdr(&m[1]).errcode(), ErrorCode::ConnShutdown as u8);
}

#[test]
fn no_nagle_for_seqpacket_nodelay_or_a_peer_without_the_capability() {
    let now = Instant::now();
    let (me, peer) = (sa(A, 10), sa(B, 20));
    let mut seq = established(me, peer, OWN_CAPABILITIES, now);
    seq.set_max_pkt(1460);
    let mut nodelay = stream(me, peer, OWN_CAPABILITIES, now);
    nodelay.set_nodelay(true);
    let mut old = stream(me, peer, OWN_CAPABILITIES & !caps::NAGLE, now);
    for c in [&mut seq, &mut nodelay, &mut old] {
        assert_eq!(c.max_nagle(), 0);
        for _ in 0..50 {
            c.write(b"small").unwrap();
            let m = data_msgs(c);
            assert_eq!(m.len(), 1);
            assert!(!hdr(&m[0]).ack_required());
        }
        assert_eq!(c.stats().nagled, 0);
    }
    // Toward our own node the buffer is 1500 bytes.
    let mut local = stream(me, sa(A, 30), OWN_CAPABILITIES, now);
    local.set_max_pkt(tipc_transport::wire::MAX_MSG_SIZE);
    assert_eq!(local.max_nagle(), NAGLE_LOCAL);
}

#[test]
fn nagled_stream_arrives_intact_and_the_reader_answers_each_ack_request() {
    let now = Instant::now();
    let (me, peer) = (sa(A, 10), sa(B, 20));
    let mut w = stream(me, peer, OWN_CAPABILITIES, now);
    let mut r = stream(peer, me, OWN_CAPABILITIES, now);
    let mut want = Vec::new();
    let mut got = Vec::new();
    let mut msgs = 0;
    for i in 0..2000u32 {
        let chunk = i.to_be_bytes().repeat(1 + (i % 7) as usize);
        want.extend_from_slice(&chunk);
        w.write(&chunk).unwrap();
        if i % 50 != 49 {
            continue;
        }
        // Every 50 writes, what is in flight is delivered and read, and the reader's
        // answers (nagle acks) go back: one round trip per 50 writes.
        for m in data_msgs(&mut w) {
            msgs += 1;
            r.handle_message(m.freeze(), OWN_CAPABILITIES, now);
        }
        while let Some(Read::Data(d)) = r.read() {
            got.extend_from_slice(&d);
        }
        for a in data_msgs(&mut r) {
            w.handle_message(a.freeze(), OWN_CAPABILITIES, now);
        }
    }
    w.shutdown(ErrorCode::ConnShutdown);
    for m in data_msgs(&mut w) {
        msgs += (hdr(&m).errcode() == 0) as u64;
        r.handle_message(m.freeze(), OWN_CAPABILITIES, now);
    }
    while let Some(Read::Data(d)) = r.read() {
        got.extend_from_slice(&d);
    }
    assert_eq!(r.read(), Some(Read::End(Ok(()))));
    assert_eq!(got, want);
    assert!(msgs <= 2000 / 50 + 10, "{msgs} messages for 2000 writes");
    assert_eq!(w.stats().tx_msgs, msgs);
}

#[test]
fn refused_error_names_the_code_in_words() {
    assert_eq!(
        ConnError::Refused(ErrorCode::NoPort).to_string(),
        "connection refused (no port)"
    );
    assert_eq!(
        ConnError::Refused(ErrorCode::Overload).to_string(),
        "connection refused (overload)"
    );
}
