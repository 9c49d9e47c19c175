//! Our link endpoint against real kernel frames: playing node "b" (0x62000000) of the capture
//! in tests/vectors/udp (kernel 6.1, nodes a and b on UDP), we feed a's messages in capture order
//! and compare what we send with what the kernel b sent.

use bytes::{Bytes, BytesMut};
use std::time::{Duration, Instant};
use tipc_transport::peer::{BearerParams, NeighborSighting, Peer, PeerEvent};
use tipc_transport::wire::{user, Header, LinkProtoRepr, LinkProtoType, MediaAddr};
use tipc_transport::NodeId;

fn vector(prefix: &str) -> Bytes {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/vectors/udp");
    let path = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .unwrap_or_else(|| panic!("vector {prefix} missing"));
    let text = std::fs::read_to_string(path).unwrap();
    let hex: String = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.chars())
        .filter(|c| c.is_ascii_hexdigit())
        .collect();
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect::<Vec<u8>>()
        .into()
}

fn drain(p: &mut Peer) -> Vec<Bytes> {
    let mut out = BytesMut::new();
    let mut v = Vec::new();
    while let Some(t) = p.poll_transmit(&mut out) {
        assert_eq!(t.dest, MediaAddr::Udp("10.99.0.11:6118".parse().unwrap()));
        v.push(out.split_to(t.len).freeze());
    }
    v
}

fn proto(b: &Bytes) -> LinkProtoRepr<'_> {
    let h = Header::new_checked(&b[..]).unwrap();
    LinkProtoRepr::parse(&h).unwrap()
}

#[test]
fn link_establishes_with_kernel_frames_and_emits_kernel_identical_messages() {
    let t0 = Instant::now();
    let a = NodeId::from_str_id("a").unwrap();
    let b = NodeId::from_str_id("b").unwrap();
    let mut p = Peer::new(b.hash(), b, a.hash(), a, 0x0FFF);
    let bearer = BearerParams {
        id: 0,
        if_name: "udp1".into(),
        mtu: 14000,
        encap_hlen: 28,
        tolerance: Duration::from_millis(1500),
        priority: 10,
        min_win: 50,
        max_win: 50,
    };
    let seen = NeighborSighting {
        media_addr: MediaAddr::Udp("10.99.0.11:6118".parse().unwrap()),
        id: a,
        caps: 0x0FFF,
        signature: 0xf1aa,
        is_request: false,
    };
    // b's session in the capture was 12438.
    assert!(p.handle_discovery(t0, &bearer, &seen, 12438).link_created);
    p.handle_timeout(t0);
    let out = drain(&mut p);
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0],
        vector("015-"),
        "our first RESET equals the kernel's byte for byte"
    );

    // a's RESET: we go ESTABLISHING and answer with ACTIVATE at once.
    p.handle_packet(t0, 0, vector("014-"));
    let out = drain(&mut p);
    assert_eq!(out.len(), 1);
    let r = proto(&out[0]);
    assert_eq!(r.mtype, LinkProtoType::Activate);
    assert_eq!(r.dest_session(), Some(18706));
    assert_eq!(r.session, 12438);
    assert!(!r.redundant_link && r.bc_ack_invalid);

    // a's ACTIVATE (dest_session = our session): link up; a STATE first, then our bc-init as
    // sequenced packet 1, identical to the kernel's.
    p.handle_packet(t0, 0, vector("017-"));
    let evs: Vec<PeerEvent> = std::iter::from_fn(|| p.poll_event()).collect();
    assert!(evs
        .iter()
        .any(|e| matches!(e, PeerEvent::LinkUp { name, .. } if name == "b:udp1-a:udp1")));
    assert!(evs.contains(&PeerEvent::NodeUp));
    let out = drain(&mut p);
    assert_eq!(out.len(), 2, "STATE then bc-init");
    let st = proto(&out[0]);
    let k = vector("018-");
    let ks = proto(&k);
    assert_eq!(st.mtype, LinkProtoType::State);
    assert_eq!(
        (st.seqno, st.next_sent, st.ack),
        (ks.seqno, ks.next_sent, ks.ack)
    );
    // With TIPC_GAP_ACK_BLOCK on both sides the STATE carries the (empty) gap-ack record:
    // the whole message equals the kernel's.
    assert_eq!(st.data, &[0, 4, 0, 0][..]);
    assert_eq!(out[0], k, "our STATE equals the kernel's byte for byte");
    assert_eq!(
        out[1],
        vector("019-"),
        "our bc-init equals the kernel's byte for byte"
    );

    // a's bc-init and name-table bulk arrive in sequence: bc state synced, bulk delivered.
    p.handle_packet(t0, 0, vector("022-"));
    p.handle_packet(t0, 0, vector("023-"));
    p.handle_packet(t0, 0, vector("024-"));
    let evs: Vec<PeerEvent> = std::iter::from_fn(|| p.poll_event()).collect();
    let delivered: Vec<&Bytes> = evs
        .iter()
        .filter_map(|e| match e {
            PeerEvent::Deliver(m) | PeerEvent::NameDistr(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(delivered.len(), 1);
    assert_eq!(
        Header::new_checked(&delivered[0][..]).unwrap().user(),
        user::NAME_DISTRIBUTOR
    );
    drain(&mut p);

    // a's probe: we reply at once with a STATE marked keepalive, now "peer up" and bc valid,
    // acking a's two packets.
    p.handle_packet(t0 + Duration::from_millis(400), 0, vector("029-"));
    let out = drain(&mut p);
    assert_eq!(out.len(), 1);
    let r = proto(&out[0]);
    assert_eq!(r.mtype, LinkProtoType::State);
    assert!(r.keepalive && !r.probe);
    assert_eq!(r.ack, 2);
    assert!(r.redundant_link && !r.bc_ack_invalid);
    let h = Header::new_checked(&out[0][..]).unwrap();
    assert_eq!(h.destnode(), a.hash());
    assert!(p.is_up());
}

fn proto_msg(mtype: LinkProtoType, from: u32, to: u32, session: u16, dest_session: u16) -> Bytes {
    let name = *b"udp1\0\0\0\0\0\0\0\0\0\0\0\0";
    let r = LinkProtoRepr {
        mtype,
        keepalive: false,
        seq_gap: u16::from(mtype == LinkProtoType::Activate),
        bcast_ack: dest_session,
        ack: 0,
        seqno: 32768,
        prevnode: from,
        last_bcast: 0,
        next_sent: 1,
        session,
        bc_ack_invalid: true,
        peer_stopping: false,
        redundant_link: false,
        bearer_id: 0,
        priority: 0,
        net_plane: 0,
        probe: false,
        orignode: from,
        destnode: to,
        bc_gap: 0,
        max_pkt: 3500,
        tolerance: 0,
        data: &name,
    };
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(&mut b);
    b.into()
}

fn named_seqno(m: &Bytes) -> u32 {
    u32::from(Header::new_checked(&m[..]).unwrap().named_seqno())
}

/// Node b's broadcast link (name-table updates captured with non_seq = 1, w5 = netid): we play
/// node a, synchronise from b's bc-init, sequence b's broadcast packets, deliver them in order,
/// ack them in `bcast_ack` and NACK a gap with `bc_gap`.
#[test]
fn broadcast_packets_from_kernel_are_sequenced_acked_and_nacked() {
    let t0 = Instant::now();
    let a = NodeId::from_str_id("a").unwrap();
    let b = NodeId::from_str_id("b").unwrap();
    let (aa, ba) = (a.hash(), b.hash());
    let mut p = Peer::new(aa, a, ba, b, 0x0FFF);
    let bearer = BearerParams {
        id: 0,
        if_name: "udp1".into(),
        mtu: 14000,
        encap_hlen: 28,
        tolerance: Duration::from_millis(1500),
        priority: 10,
        min_win: 50,
        max_win: 50,
    };
    let seen = NeighborSighting {
        media_addr: MediaAddr::Udp("10.99.0.11:6118".parse().unwrap()),
        id: b,
        caps: 0x0FFF,
        signature: 1,
        is_request: false,
    };
    p.handle_discovery(t0, &bearer, &seen, 500);
    p.handle_packet(t0, 0, proto_msg(LinkProtoType::Reset, ba, aa, 9, 0));
    p.handle_packet(t0, 0, proto_msg(LinkProtoType::Activate, ba, aa, 9, 500));
    assert!(p.is_up());
    // Before b's bc-init, broadcast packets are dropped.
    p.handle_broadcast(t0, vector("112-"));
    assert_eq!(p.stats().bcast_dropped, 1);
    // b's bc-init: sequenced unicast packet 1, last_bcast 0.
    let mut init = BytesMut::zeroed(40);
    {
        let mut h = Header::new_unchecked(&mut init[..]);
        h.init(user::BCAST_PROTOCOL, 0, 40, 40, ba);
        h.set_orignode(ba);
        h.set_destnode(aa);
        h.set_seqno(1);
        h.set_bc_ack_invalid(true);
    }
    p.handle_packet(t0, 0, init.freeze());
    while p.poll_event().is_some() {}
    drain(&mut p);

    // Out of order: 2 waits for 1; both then arrive in order.
    p.handle_broadcast(t0, vector("113-"));
    assert!(p.poll_event().is_none());
    p.handle_broadcast(t0, vector("112-"));
    p.handle_broadcast(t0, vector("122-"));
    let got: Vec<u32> = std::iter::from_fn(|| p.poll_event())
        .filter_map(|e| match e {
            PeerEvent::Deliver(m) | PeerEvent::NameDistr(m) => Some(named_seqno(&m)),
            _ => None,
        })
        .collect();
    assert_eq!(got, vec![1, 2, 3]);

    // A packet for another network is dropped.
    let mut other = BytesMut::from(&vector("122-")[..]);
    Header::new_unchecked(&mut other[..]).set_destport(4712);
    p.handle_broadcast(t0, other.freeze());
    assert_eq!(p.stats().bcast_dropped, 2);

    // 4 and 5 missing: the third deferred packet triggers a STATE with bc_gap 2, bcast_ack 3.
    drain(&mut p);
    p.handle_broadcast(t0, vector("145-"));
    p.handle_broadcast(t0, vector("146-"));
    assert!(drain(&mut p).is_empty());
    p.handle_broadcast(t0, vector("147-"));
    let out = drain(&mut p);
    assert_eq!(out.len(), 1, "one NACK");
    let r = proto(&out[0]);
    assert_eq!(r.mtype, LinkProtoType::State);
    assert_eq!((r.bcast_ack, r.bc_gap), (3, 2));
    assert!(!r.bc_ack_invalid);
    assert_eq!(p.stats().bcast_rx, 3);
    assert_eq!(p.stats().bcast_deferred, 4);
}
