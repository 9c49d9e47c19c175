//! The multicast method of a datagram socket (§5.4, `tipc_bcast_select_xmit_method`):
//! replicast or the broadcast link, kept for 5 s once chosen unless every node synchronises a
//! switch; and the receiving socket's hold-back across a switch (`tipc_mcast_filter_msg`).

use bytes::{Bytes, BytesMut};
use std::time::{Duration, Instant};
use tipc_actors::addr::{ServiceRange, SocketAddr};
use tipc_actors::socket::mcast::McastFilter;
use tipc_actors::socket::{build_mcast, mcast_sync, McastMethod, SendOpts, METHOD_EXPIRE};
use tipc_transport::wire::Header;

#[test]
fn mcast_method_picks_replicast_up_to_a_tenth_of_the_cluster_and_broadcast_above() {
    let t = Instant::now();
    let pick = |remote, cluster| {
        McastMethod::default()
            .select(t, remote, cluster, true, true, false)
            .0
    };
    // 4 nodes: 1 + 4/10 = 1 remote node goes by replicast, 2 and more by broadcast.
    assert!(pick(1, 4));
    assert!(!pick(2, 4));
    // 30 nodes: up to 4 remote nodes by replicast.
    assert!(pick(4, 30));
    assert!(!pick(5, 30));
}

#[test]
fn mcast_method_is_kept_for_five_seconds_without_rbctl_and_switches_with_sync_with_it() {
    let t = Instant::now();
    let mut m = McastMethod::default();
    assert_eq!(
        m.select(t, 3, 4, true, true, false),
        (false, false),
        "broadcast"
    );
    // One remote node now, within 5 s: still broadcast (no switch to synchronise).
    assert_eq!(
        m.select(t + Duration::from_secs(4), 1, 4, true, true, false),
        (false, false)
    );
    // 5 s after the last send: replicast.
    let later = t + Duration::from_secs(4) + METHOD_EXPIRE;
    assert_eq!(m.select(later, 1, 4, true, true, false), (true, false));
    // With RBCTL everywhere: switched at once, and the switch is synchronised.
    let mut m = McastMethod::default();
    assert_eq!(
        m.select(t, 1, 4, true, true, true),
        (true, true),
        "from the initial broadcast"
    );
    assert_eq!(m.select(t, 1, 4, true, true, true), (true, false));
    assert_eq!(m.select(t, 3, 4, true, true, true), (false, true));
}

#[test]
fn mcast_method_replicasts_without_broadcast_and_broadcasts_for_peers_without_replicast() {
    let t = Instant::now();
    assert!(
        McastMethod::default()
            .select(t, 9, 10, false, true, false)
            .0,
        "cannot broadcast"
    );
    assert!(
        !McastMethod::default()
            .select(t, 1, 10, true, false, false)
            .0,
        "a peer lacks TIPC_BCAST_RCAST"
    );
}

const FROM: SocketAddr = SocketAddr {
    node: 0x0100_0002,
    port: 77,
};

/// Multicast number `n` from FROM, sent by replicast or not, with SYN (a switch) or not.
fn mc(n: u8, rcast: bool) -> BytesMut {
    let mut m = build_mcast(FROM, ServiceRange::single(5000, 1), &SendOpts::RDM, &[n]).unwrap();
    Header::new_unchecked(&mut m[..]).set_is_rcast(rcast);
    m
}

fn run(f: &mut McastFilter, msgs: Vec<Bytes>) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for m in msgs {
        f.filter(m, &mut |b: Bytes| {
            let h = Header::new_checked(&b[..]).unwrap();
            assert_eq!(h.errcode(), 0, "a dummy was delivered");
            out.push(h.payload().to_vec())
        });
    }
    out
}

#[test]
fn mcast_filter_holds_the_new_path_until_the_old_path_dummy_and_keeps_send_order() {
    // Sent: 1, 2 by broadcast; then a switch to replicast: dummy (broadcast), 3 (SYN,
    // replicast), 4 (replicast).
    let (m1, m2) = (mc(1, false).freeze(), mc(2, false).freeze());
    let mut m3 = mc(3, true);
    let dummy = mcast_sync(&mut m3).unwrap().freeze();
    let (m3, m4) = (m3.freeze(), mc(4, true).freeze());
    // The new path overtakes the old one: 3 and 4 arrive before 2 and the dummy.
    let mut f = McastFilter::default();
    let got = run(
        &mut f,
        vec![
            m1.clone(),
            m3.clone(),
            m4.clone(),
            m2.clone(),
            dummy.clone(),
        ],
    );
    assert_eq!(got, [vec![1], vec![2], vec![3], vec![4]]);
    assert_eq!(f.held(), 0);
    // In order: nothing is held.
    let mut f = McastFilter::default();
    let got = run(&mut f, vec![m1, m2, dummy, m3, m4]);
    assert_eq!(got, [vec![1], vec![2], vec![3], vec![4]]);
    assert_eq!((f.held(), f.dummies), (0, 1));
}
