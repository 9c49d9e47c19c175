//! The multicast method of a datagram socket (§5.4, `tipc_bcast_select_xmit_method`):
//! replicast or the broadcast link, kept for 5 s once chosen.

use std::time::{Duration, Instant};
use tipc_actors::socket::{McastMethod, METHOD_EXPIRE};

#[test]
fn mcast_method_picks_replicast_up_to_a_tenth_of_the_cluster_and_broadcast_above() {
    let t = Instant::now();
    let mut m = McastMethod::default();
    // 4 nodes: 1 + 4/10 = 1 remote node goes by replicast, 2 and more by broadcast.
    assert!(m.select(t, 1, 4, true, true));
    let mut m = McastMethod::default();
    assert!(!m.select(t, 2, 4, true, true));
    // 30 nodes: up to 4 remote nodes by replicast.
    let mut m = McastMethod::default();
    assert!(m.select(t, 4, 30, true, true));
    let mut m = McastMethod::default();
    assert!(!m.select(t, 5, 30, true, true));
}

#[test]
fn mcast_method_is_kept_for_five_seconds_then_chosen_again() {
    let t = Instant::now();
    let mut m = McastMethod::default();
    assert!(!m.select(t, 3, 4, true, true), "broadcast");
    // One remote node now, within 5 s: still broadcast (no switch to synchronise).
    assert!(!m.select(t + Duration::from_secs(4), 1, 4, true, true));
    // 5 s after the last send: replicast.
    let later = t + Duration::from_secs(4) + METHOD_EXPIRE;
    assert!(m.select(later, 1, 4, true, true));
}

#[test]
fn mcast_method_replicasts_without_broadcast_and_broadcasts_for_peers_without_replicast() {
    let t = Instant::now();
    let mut m = McastMethod::default();
    assert!(m.select(t, 9, 10, false, true), "cannot broadcast");
    let mut m = McastMethod::default();
    assert!(
        !m.select(t, 1, 10, true, false),
        "a peer lacks TIPC_BCAST_RCAST"
    );
}
