//! Fuzz target: a sequence of arbitrary packets (length-prefixed chunks of the input) into a
//! peer whose link is established, interleaved with timer ticks and sends. Nothing may panic,
//! and the peer's queues stay bounded.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};
use tipc_transport::peer::{classify, BearerParams, NeighborSighting, Peer, Route};
use tipc_transport::wire::{Header, LinkProtoRepr, LinkProtoType, MediaAddr, BASIC_H_SIZE};
use tipc_transport::NodeId;

fn proto(mtype: LinkProtoType, from: u32, to: u32, session: u16, dest_session: u16) -> Bytes {
    let name = [b'x'; 16];
    let r = LinkProtoRepr {
        mtype,
        keepalive: false,
        seq_gap: if mtype == LinkProtoType::Activate {
            1
        } else {
            0
        },
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
        max_pkt: 375,
        tolerance: 0,
        data: &name,
    };
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(&mut b);
    b.into()
}

fuzz_target!(|data: &[u8]| {
    let t0 = Instant::now();
    let a = NodeId::from_str_id("a").unwrap();
    let b = NodeId::from_str_id("b").unwrap();
    let (aa, ba) = (a.hash(), b.hash());
    let mut p = Peer::new(ba, b, aa, a, 0x7f);
    let bearer = BearerParams {
        id: 0,
        if_name: "f0".into(),
        mtu: 1500,
        encap_hlen: 0,
        tolerance: Duration::from_millis(1500),
        priority: 10,
        min_win: 50,
        max_win: 50,
    };
    let seen = NeighborSighting {
        media_addr: MediaAddr::Mem(1),
        id: a,
        caps: 0x7f,
        signature: 1,
        is_request: false,
    };
    p.handle_discovery(t0, &bearer, &seen, 100);
    // Establish: the peer resets, then activates with our session.
    p.handle_packet(t0, 0, proto(LinkProtoType::Reset, aa, ba, 7, 0));
    p.handle_packet(t0, 0, proto(LinkProtoType::Activate, aa, ba, 7, 100));
    let mut out = BytesMut::new();
    let mut now = t0;
    let mut rest = data;
    let mut n = 0u64;
    while rest.len() >= 2 {
        let len = (u16::from_be_bytes([rest[0], rest[1]]) as usize).min(rest.len() - 2);
        let chunk = Bytes::copy_from_slice(&rest[2..2 + len]);
        rest = &rest[2 + len..];
        match classify(ba, &chunk) {
            Ok(Route::Unicast(_)) => p.handle_packet(now, 0, chunk),
            Ok(Route::Broadcast(_)) => p.handle_broadcast(now, chunk),
            _ => {}
        }
        n += 1;
        if n.is_multiple_of(3) {
            let len = BASIC_H_SIZE + (n as usize * 37) % 3000;
            let mut m = BytesMut::zeroed(len);
            let mut h = Header::new_unchecked(&mut m[..]);
            h.init(0, 3, BASIC_H_SIZE, len, ba);
            h.set_destnode(aa);
            let _ = p.send(now, m, 1);
        }
        if n.is_multiple_of(5) {
            now += Duration::from_millis(100);
            p.handle_timeout(now);
        }
        out.clear();
        while p.poll_transmit(&mut out).is_some() {}
        while p.poll_event().is_some() {}
        for (_, l) in p.links() {
            assert!(l.transmq_len + l.backlog_len + l.deferred_len < 20_000);
        }
    }
});
