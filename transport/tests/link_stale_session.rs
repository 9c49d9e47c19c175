//! A data packet the peer sent in its previous link session, still in flight when a restarted
//! peer reset the link and the link was re-established at once (spec §4.4, §4.5; kernel
//! `tipc_link_rcv`, `tipc_link_advance_transmq`): two [`Link`]s driven by hand, frame by frame.
//!
//! Data packets carry no session. The stale packet's `ack` counts packets of the old session;
//! applied to the new one it released packets the peer never received, which were then neither
//! delivered nor returned to their senders (found by the simulation, `sim_chaos`, with a
//! discovery change that re-establishes such links within a round trip).

mod common;

use bytes::Bytes;
use common::{cfg, data_msg, exchange, frames, number, user_of};
use std::time::{Duration, Instant};
use tipc_transport::link::{Link, LinkEvent, LinkState};
use tipc_transport::wire::Header;

const A: u32 = 0x0100_1001;
const B: u32 = 0x0100_1002;

fn is_data(f: &Bytes) -> bool {
    user_of(f) == 0
}

/// The numbers of the data messages delivered since the last call, in order.
fn delivered(l: &mut Link) -> Vec<u64> {
    let mut v = Vec::new();
    while let Some(ev) = l.poll_event() {
        if let LinkEvent::Deliver(m) = ev {
            v.push(number(&m));
        }
    }
    v
}

/// Link `a` up with `b`'s first instance, which acknowledged 40 packets of `a` and then sent
/// a fourth data packet to `a` that is still in flight (returned, not delivered); then `b`'s
/// new instance (a fresh link, new session) sends its RESET, which reaches `a`.
fn old_session_then_peer_reset(now: Instant) -> (Link, Link, Bytes) {
    let mut a = Link::new(cfg(A, B, 0, 100), now);
    let mut b = Link::new(cfg(B, A, 0, 200), now);
    a.send_setup(now);
    b.send_setup(now);
    exchange(&mut a, &mut b, now);
    assert!(a.is_up() && b.is_up());
    for n in 0..40 {
        a.send(now, data_msg(A, B, n)).unwrap();
    }
    for n in 0..3 {
        b.send(now, data_msg(B, A, n)).unwrap();
    }
    exchange(&mut a, &mut b, now);
    assert_eq!(delivered(&mut b), (0..40).collect::<Vec<_>>());
    assert_eq!(delivered(&mut a), vec![0, 1, 2]);
    b.send(now, data_msg(B, A, 3)).unwrap();
    let stale: Vec<Bytes> = frames(&mut b).into_iter().filter(is_data).collect();
    assert_eq!(stale.len(), 1);
    let h = Header::new_checked(&stale[0][..]).unwrap();
    assert_eq!(
        (h.seqno(), h.ack()),
        (4, 40),
        "old session: seqno 4, acks a's 40 packets"
    );

    // `b` restarts: a new instance, a new session, its RESET reaches `a`.
    let mut b2 = Link::new(cfg(B, A, 0, 300), now);
    b2.send_setup(now);
    for f in frames(&mut b2) {
        a.handle_packet(now, f);
    }
    assert_eq!(
        a.state(),
        LinkState::Establishing,
        "reset by the peer's new session"
    );
    (a, b2, stale[0].clone())
}

#[test]
fn stale_packet_of_previous_session_does_not_release_new_sessions_packets() {
    let now = Instant::now() + Duration::from_secs(1);
    let (mut a, mut b2, stale) = old_session_then_peer_reset(now);
    exchange(&mut a, &mut b2, now);
    assert!(a.is_up() && b2.is_up(), "re-established at once");
    delivered(&mut a);

    // `a` sends 10 messages in the new session; they are in flight when the old session's
    // packet arrives.
    for n in 100..110 {
        a.send(now, data_msg(A, B, n)).unwrap();
    }
    let in_flight = frames(&mut a);
    assert_eq!(a.snapshot().transmq_len, 10);
    a.handle_packet(now, stale);
    let s = a.snapshot();
    assert_eq!(
        s.transmq_len, 10,
        "the old session's ack 40 must not release the new session's packets 1..=10"
    );
    assert_eq!(s.deferred_len, 0, "nor is the old session's packet held");
    assert_eq!(s.stats.stale, 1);
    assert!(delivered(&mut a).is_empty());

    // Only now do the 10 packets reach the peer's new instance: all delivered, all acked.
    for f in in_flight {
        b2.handle_packet(now, f);
    }
    exchange(&mut a, &mut b2, now);
    assert_eq!(delivered(&mut b2), (100..110).collect::<Vec<_>>());
    b2.send_state(now);
    exchange(&mut a, &mut b2, now);
    assert_eq!(a.snapshot().transmq_len, 0);
    assert!(
        delivered(&mut a).is_empty(),
        "the stale message is never delivered"
    );
    assert!(a.is_up() && b2.is_up());
}

#[test]
fn stale_packet_of_previous_session_does_not_bring_an_establishing_link_up() {
    let now = Instant::now() + Duration::from_secs(1);
    let (mut a, mut b2, stale) = old_session_then_peer_reset(now);
    // `a` answered the RESET with ACTIVATE (not delivered yet); the old packet arrives first.
    a.handle_packet(now, stale);
    assert_eq!(a.state(), LinkState::Establishing);
    assert_eq!(a.snapshot().stats.stale, 1);
    exchange(&mut a, &mut b2, now);
    assert!(a.is_up() && b2.is_up());
    assert!(delivered(&mut a).is_empty());
}
