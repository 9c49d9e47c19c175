//! A FAILOVER tunnel packet the peer's link sent in its previous session, still in flight when
//! our node restarted and the link was re-established at once (spec §4.4, §4.12; kernel
//! `tipc_link_rcv`, `tipc_link_tnl_rcv`): two [`Link`]s driven by hand, frame by frame.
//!
//! The old session had received nothing on this link (its standby link), so the tunnel packet
//! acknowledges 0, which is possible in the new session too: the ack check of a stale data
//! packet (`link_stale_session.rs`) lets it pass. Held in the deferred queue in the place of
//! the new session's packet with its seqno, it had that packet dropped as a duplicate and
//! acknowledged, never delivered nor returned, and was itself delivered as a failover of the
//! parallel link (found by the simulation, `sim_chaos`, 4 nodes and 2 bearers, with a
//! discovery change that re-establishes such links within a round trip).

mod common;

use bytes::BytesMut;
use common::{cfg, data_msg, exchange, frames, number, user_of};
use std::time::{Duration, Instant};
use tipc_transport::link::{Link, LinkEvent};
use tipc_transport::wire::{user, Header, TunnelRepr, TunnelType};

/// The sender of the tunnel packets (its node fails a parallel link over to this one).
const S: u32 = 0x0100_1001;
/// The receiver, which restarts.
const R: u32 = 0x0100_1002;

/// A FAILOVER message for the parallel link (peer bearer 0) carrying data message `n`.
fn failover_msg(n: u64) -> BytesMut {
    let inner = data_msg(S, R, n);
    let r = TunnelRepr {
        mtype: TunnelType::Failover,
        bcast_ack: 0,
        ack: 0,
        seqno: 0,
        prevnode: S,
        fragm_no: 0,
        nof_fragms: 0,
        bearer_id: 0,
        orignode: S,
        destnode: R,
        msgcnt: 3,
        data: &inner,
    };
    let mut b = BytesMut::zeroed(r.buffer_len());
    r.emit(&mut b);
    b
}

/// What the link delivered since the last call: data messages by number, tunnel messages as
/// `None`.
fn delivered(l: &mut Link) -> Vec<Option<u64>> {
    let mut v = Vec::new();
    while let Some(ev) = l.poll_event() {
        match ev {
            LinkEvent::Deliver(m) => v.push(Some(number(&m))),
            LinkEvent::Tunnel(_) => v.push(None),
            _ => {}
        }
    }
    v
}

#[test]
fn stale_failover_tunnel_packet_of_previous_session_does_not_displace_new_sessions_packet() {
    let now = Instant::now() + Duration::from_secs(1);
    let mut s = Link::new(cfg(S, R, 1, 100), now);
    let mut r = Link::new(cfg(R, S, 1, 200), now);
    s.send_setup(now);
    r.send_setup(now);
    exchange(&mut s, &mut r, now);
    assert!(s.is_up() && r.is_up());

    // Old session: `s` sends 4 data packets (delivered) and then fails its parallel link over
    // to this one: 3 FAILOVER packets, seqnos 5..=7, in flight. `r` never sent a packet here.
    for n in 0..4 {
        s.send(now, data_msg(S, R, n)).unwrap();
    }
    exchange(&mut s, &mut r, now);
    assert_eq!(delivered(&mut r), (0..4).map(Some).collect::<Vec<_>>());
    for n in 10..13 {
        s.send(now, failover_msg(n)).unwrap();
    }
    let stale = frames(&mut s);
    assert_eq!(stale.len(), 3);
    assert!(stale.iter().all(|f| user_of(f) == user::TUNNEL_PROTOCOL));
    let h = Header::new_checked(&stale[0][..]).unwrap();
    assert_eq!(
        (h.seqno(), h.ack()),
        (5, 0),
        "old session: seqno 5, acks nothing"
    );

    // `r` restarts: a new instance, a new session; its RESET reaches `s`, the link comes up
    // again at once. `r2` sent nothing yet, so ack 0 is what the new session expects.
    let mut r2 = Link::new(cfg(R, S, 1, 300), now);
    r2.send_setup(now);
    exchange(&mut s, &mut r2, now);
    assert!(s.is_up() && r2.is_up(), "re-established at once");
    delivered(&mut r2);

    // New session: `s` sends 7 data packets; the stale FAILOVER packet with seqno 5 arrives
    // first.
    for n in 100..107 {
        s.send(now, data_msg(S, R, n)).unwrap();
    }
    let fresh = frames(&mut s);
    assert_eq!(fresh.len(), 7);
    r2.handle_packet(now, stale[0].clone());
    let snap = r2.snapshot();
    assert_eq!(
        snap.deferred_len, 0,
        "the old session's tunnel packet must not hold seqno 5 of the new session"
    );
    assert_eq!(snap.stats.stale, 1);
    for f in fresh {
        r2.handle_packet(now, f);
    }
    assert_eq!(
        delivered(&mut r2),
        (100..107).map(Some).collect::<Vec<_>>(),
        "all 7 new messages delivered, in order, and no failover of the old session"
    );
    // The other stale packets change nothing either.
    for f in &stale[1..] {
        r2.handle_packet(now, f.clone());
    }
    assert!(delivered(&mut r2).is_empty());
    exchange(&mut s, &mut r2, now);
    r2.send_state(now);
    exchange(&mut s, &mut r2, now);
    assert_eq!(s.snapshot().transmq_len, 0);
    assert!(s.is_up() && r2.is_up());
}

#[test]
fn failover_tunnel_packet_of_current_session_is_delivered() {
    let now = Instant::now() + Duration::from_secs(1);
    let mut s = Link::new(cfg(S, R, 1, 100), now);
    let mut r = Link::new(cfg(R, S, 1, 200), now);
    s.send_setup(now);
    r.send_setup(now);
    exchange(&mut s, &mut r, now);
    // Reset and re-established once, so the sessions moved on from their first values.
    let mut r2 = Link::new(cfg(R, S, 1, 300), now);
    r2.send_setup(now);
    exchange(&mut s, &mut r2, now);
    assert!(s.is_up() && r2.is_up());
    delivered(&mut r2);
    s.send(now, data_msg(S, R, 1)).unwrap();
    s.send(now, failover_msg(2)).unwrap();
    s.send(now, data_msg(S, R, 3)).unwrap();
    exchange(&mut s, &mut r2, now);
    assert_eq!(delivered(&mut r2), vec![Some(1), None, Some(3)]);
    assert_eq!(r2.snapshot().stats.stale, 0);
}
