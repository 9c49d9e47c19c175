//! Keyed clusters in the deterministic simulation (`tipc_integration::sim`, invariant 9): every
//! frame is sealed and opened through the actors' crypto glue (`tipc_actors::crypto::NodeCrypto`),
//! key distributions travel over the links, and the crypto timers run on the virtual clock.
//! Every step checks the invariants of the module docs (delivery, queues, link loss and
//! recovery, nothing in clear, every crypto drop explained by the wire). A failure prints
//! `sim seed=N step=K`; rerun one seed with
//! `SIM_SEED=N cargo test -p tipc-integration --test sim_crypto`.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;
use tipc_integration::sim::{
    seeds, CryptoTotals, FaultRule, LogKind, Sim, SimConfig, SimCrypto, SimKeys,
};
use tipc_transport::crypto::CryptoDrop;

fn cfg(nodes: usize, keys: SimKeys, rekeying: Option<Duration>) -> SimConfig {
    SimConfig {
        nodes,
        crypto: Some(SimCrypto { keys, rekeying }),
        ..SimConfig::default()
    }
}

fn bring_up(sim: &mut Sim) {
    let seed = sim.seed();
    assert!(
        sim.run_until(Duration::from_secs(30), |s| s.all_up()),
        "seed {seed}: keyed cluster never came up"
    );
}

/// `count` more messages per ordered pair, all sent and acknowledged within 120 s.
fn send_and_finish(sim: &mut Sim, count: u64) {
    let seed = sim.seed();
    sim.send_all_pairs(count);
    assert!(
        sim.run_until(Duration::from_secs(120), |s| s.traffic_done()),
        "seed {seed}: traffic not done after {:?}",
        sim.elapsed()
    );
}

/// Every flow of the cluster delivered `count` messages, all in order.
fn assert_all_delivered(sim: &Sim, count: u64) {
    let (seed, n) = (sim.seed(), sim.config().nodes);
    for a in 0..n {
        for b in (0..n).filter(|&b| b != a) {
            let f = sim.flow(a, b);
            assert_eq!(f.delivered, count, "seed {seed}: {a}->{b}");
            assert_eq!(f.last, Some(count - 1), "seed {seed}: {a}->{b}");
        }
    }
}

fn link_downs(sim: &Sim) -> usize {
    sim.log()
        .iter()
        .filter(|e| matches!(e.kind, LogKind::LinkDown(..)))
        .count()
}

/// The crypto really ran: frames sealed and opened, none sent in clear.
fn assert_sealed(sim: &Sim) -> CryptoTotals {
    let t = sim.crypto_totals();
    let seed = sim.seed();
    assert!(
        t.tx_ok > 0 && t.glue.sealed_sent > 0,
        "seed {seed}: nothing sealed: {t:?}"
    );
    assert!(
        t.rx_ok > 0 && t.glue.envelopes_rx > 0,
        "seed {seed}: nothing opened: {t:?}"
    );
    assert_eq!(t.glue.clear_sent, 0, "seed {seed}: frames in clear: {t:?}");
    assert_eq!(t.rx_clear, 0, "seed {seed}: plaintext accepted: {t:?}");
    t
}

fn report(what: &str, sim: &Sim, t: &CryptoTotals) {
    let drops: Vec<(CryptoDrop, u64)> = CryptoDrop::ALL
        .iter()
        .map(|&r| (r, t.dropped(r)))
        .filter(|&(_, n)| n > 0)
        .collect();
    eprintln!(
        "{what} seed {}: t={:?} sealed {} opened {} probes {} keys sent {} received {} \
         switches {} drops {drops:?} wire {:?}",
        sim.seed(),
        sim.elapsed(),
        t.tx_ok,
        t.rx_ok,
        t.tx_probes,
        t.keys_sent,
        t.keys_received,
        t.switches,
        t.glue
    );
}

#[test]
fn cluster_key_four_nodes_deliver_exactly_once_in_order_under_loss_and_reordering() {
    for seed in seeds(1..6) {
        let mut sim = Sim::new(cfg(4, SimKeys::Cluster, None), seed);
        sim.set_default_rule(FaultRule::lossy(0.2, 0.05, 0.2));
        bring_up(&mut sim);
        send_and_finish(&mut sim, 400);
        assert_all_delivered(&sim, 400);
        assert_eq!(link_downs(&sim), 0, "seed {seed}: {:?}", sim.log());
        let t = assert_sealed(&sim);
        // A cluster key and no tampering: nothing fails authentication; replays only where
        // the wire duplicated.
        for r in [
            CryptoDrop::DecryptFailed,
            CryptoDrop::NoKey,
            CryptoDrop::PlaintextRefused,
        ] {
            assert_eq!(t.dropped(r), 0, "seed {seed}: {r:?} {t:?}");
        }
        assert!(
            t.glue.wire_dups > 0,
            "seed {seed}: the wire duplicated nothing"
        );
        report("cluster", &sim, &t);
    }
}

#[test]
fn cluster_key_corrupted_and_garbled_envelopes_are_dropped_and_never_delivered() {
    for seed in seeds(10..16) {
        let mut sim = Sim::new(cfg(3, SimKeys::Cluster, None), seed);
        sim.set_default_rule(FaultRule {
            corrupt: 0.02,
            garble: 0.02,
            ..FaultRule::lossy(0.05, 0.02, 0.1)
        });
        bring_up(&mut sim);
        // Invariant 1 stays on with garbling: under crypto any flipped byte is caught.
        send_and_finish(&mut sim, 300);
        assert_all_delivered(&sim, 300);
        let t = assert_sealed(&sim);
        assert!(t.glue.wire_tampered > 0, "seed {seed}: nothing tampered");
        assert!(
            t.dropped(CryptoDrop::DecryptFailed) > 0,
            "seed {seed}: tampering never caught by the tag: {t:?}"
        );
        report("tampered", &sim, &t);
    }
}

#[test]
fn master_key_cluster_exchanges_session_keys_over_links_and_delivers_traffic() {
    for seed in seeds(20..26) {
        let mut sim = Sim::new(cfg(3, SimKeys::Master, None), seed);
        sim.set_default_rule(FaultRule::lossy(0.1, 0.02, 0.1));
        bring_up(&mut sim);
        send_and_finish(&mut sim, 300);
        // Past the TX lasting time: every node switched to its session key.
        sim.run_for(Duration::from_secs(20));
        assert_all_delivered(&sim, 300);
        assert_eq!(link_downs(&sim), 0, "seed {seed}: {:?}", sim.log());
        let t = assert_sealed(&sim);
        // Each node gets the session key of both others, unicast over the link.
        assert!(
            t.keys_received >= 6,
            "seed {seed}: keys not exchanged: {t:?}"
        );
        assert!(t.glue.keys_sent_unicast >= 6, "seed {seed}: {t:?}");
        assert!(t.switches > 0, "seed {seed}: no key activated: {t:?}");
        for i in 0..3 {
            let tx = sim
                .node(i)
                .and_then(|n| n.crypto())
                .map(|c| c.with(|c| c.tx_state()));
            assert!(
                tx.is_some_and(|s| s.active != 0),
                "seed {seed}: node {i} still sends under the master key: {tx:?}"
            );
        }
        report("master", &sim, &t);
    }
}

#[test]
fn rekeying_during_traffic_under_loss_loses_nothing() {
    for seed in seeds(30..34) {
        let mut sim = Sim::new(cfg(3, SimKeys::Master, Some(Duration::from_secs(15))), seed);
        sim.set_default_rule(FaultRule::lossy(0.1, 0.02, 0.1));
        bring_up(&mut sim);
        // Traffic in waves across several rekeying intervals.
        for wave in 1..=4u64 {
            sim.send_all_pairs(150);
            assert!(
                sim.run_until(Duration::from_secs(60), |s| s.traffic_done()),
                "seed {seed}: wave {wave} not done after {:?}",
                sim.elapsed()
            );
            sim.run_for(Duration::from_secs(12));
            assert_all_delivered(&sim, 150 * wave);
        }
        assert_eq!(link_downs(&sim), 0, "seed {seed}: {:?}", sim.log());
        let t = assert_sealed(&sim);
        // Rekeyed keys are broadcast on the broadcast link and activated.
        assert!(
            t.glue.keys_sent_bcast >= 3,
            "seed {seed}: no rekeying: {t:?}"
        );
        assert!(
            t.switches >= 6,
            "seed {seed}: rekeyed keys not activated: {t:?}"
        );
        report("rekeying", &sim, &t);
    }
}

/// After a crash and restart, `count` more messages per ordered pair: every flow delivers
/// them (what the crash took is allowed to miss, invariant 1 checks the rest).
fn more_traffic_gets_through(sim: &mut Sim, count: u64) {
    let (seed, n) = (sim.seed(), sim.config().nodes);
    let pairs: Vec<(usize, usize)> = (0..n)
        .flat_map(|a| (0..n).filter(move |&b| b != a).map(move |b| (a, b)))
        .collect();
    let before: Vec<u64> = pairs
        .iter()
        .map(|&(a, b)| sim.flow(a, b).delivered)
        .collect();
    sim.send_all_pairs(count);
    let done = sim.run_until(Duration::from_secs(120), |s| {
        pairs
            .iter()
            .zip(&before)
            .all(|(&(a, b), &d)| s.flow(a, b).delivered >= d + count)
    });
    assert!(
        done,
        "seed {seed}: traffic after the restart not through by {:?}",
        sim.elapsed()
    );
}

#[test]
fn crashed_and_restarted_keyed_node_recovers_links_and_traffic() {
    let keys = [SimKeys::Cluster, SimKeys::Master].into_iter().cycle();
    for (seed, keys) in seeds(40..48).into_iter().zip(keys) {
        let mut sim = Sim::new(cfg(3, keys, None), seed);
        sim.set_default_rule(FaultRule::lossy(0.05, 0.02, 0.1));
        bring_up(&mut sim);
        sim.send_all_pairs(200);
        sim.run_for(Duration::from_millis(300));
        sim.crash(2);
        sim.run_for(Duration::from_secs(3));
        sim.restart(2);
        // Invariant 4 holds the restarted node to the recovery bound.
        bring_up(&mut sim);
        more_traffic_gets_through(&mut sim, 100);
        let t = assert_sealed(&sim);
        report("restart", &sim, &t);
    }
}

/// A quick restart (before the peers notice the crash) meets their replay windows of the
/// previous instance: what is dropped there is counted as such and the node still recovers.
#[test]
fn keyed_node_restarted_before_its_peers_notice_recovers() {
    let keys = [SimKeys::Cluster, SimKeys::Master].into_iter().cycle();
    for (seed, keys) in seeds(50..58).into_iter().zip(keys) {
        let mut sim = Sim::new(cfg(3, keys, None), seed);
        bring_up(&mut sim);
        sim.send_all_pairs(100);
        sim.run_for(Duration::from_millis(200));
        sim.crash(1);
        sim.run_for(Duration::from_millis(100));
        sim.restart(1);
        bring_up(&mut sim);
        more_traffic_gets_through(&mut sim, 100);
        let t = assert_sealed(&sim);
        report("quick restart", &sim, &t);
    }
}

/// The random fault schedules of `sim_chaos` (partitions, crashes, restarts, loss,
/// duplication, reordering) on a keyed cluster, then every node restarted if down and the
/// cluster brought up: every invariant, invariant 9 included, holds throughout. Even seeds
/// run a cluster key, odd ones the master key with rekeying every 20 s (rekeying runs with
/// the master key only: a node restarted with nothing but the configured cluster key cannot
/// talk to peers that rekeyed away from it, as they dropped the cluster key at their switch,
/// as the kernel does; the master key is what lets a node rejoin).
fn keyed_chaos(seed: u64) {
    let (keys, rekeying) = if seed.is_multiple_of(2) {
        (SimKeys::Cluster, None)
    } else {
        (SimKeys::Master, Some(Duration::from_secs(20)))
    };
    let nodes = 3;
    let mut sim = Sim::new(cfg(nodes, keys, rekeying), seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5eed);
    sim.set_default_rule(FaultRule::lossy(0.1, 0.05, 0.1));
    for _ in 0..8 {
        sim.send_all_pairs(200);
        let n = rng.next_u32() as usize % nodes;
        match rng.next_u32() % 4 {
            0 => sim.isolate(n),
            1 => sim.partition(n, (n + 1) % nodes),
            2 => sim.crash(n),
            _ => {}
        }
        sim.run_for(Duration::from_millis(200 + (rng.next_u32() % 3000) as u64));
        sim.heal();
        for i in 0..nodes {
            if sim.node(i).is_none() && rng.next_u32() % 2 == 0 {
                sim.restart(i);
            }
        }
        sim.run_for(Duration::from_millis((rng.next_u32() % 4000) as u64));
    }
    for i in 0..nodes {
        sim.restart(i);
    }
    bring_up(&mut sim);
    let t = assert_sealed(&sim);
    report("chaos", &sim, &t);
}

#[test]
fn keyed_chaos_schedules_keep_every_invariant() {
    for seed in seeds(60..68) {
        keyed_chaos(seed);
    }
}

/// Found by this simulation (seed 197 of `keyed_chaos`): node 0 and node 1 never re-link after
/// a partition (no node-up, so no node-down that would reset node 1's replay windows for node
/// 0), node 0 crashes and restarts, and its new instance's sequence numbers must still be
/// accepted by node 1. With a random start they were below the old instance's half the time
/// and every envelope (discovery included) was dropped as too old, for good; the node now
/// starts them from the clock (`CryptoConfig::started_us`, the simulation's virtual wall clock).
#[test]
fn keyed_chaos_restarted_peer_is_heard_again_by_a_peer_that_never_saw_it_go_down() {
    for seed in seeds([197]) {
        keyed_chaos(seed);
    }
}

#[test]
fn keyed_cluster_run_is_reproducible_from_its_seed() {
    let run = || {
        let mut sim = Sim::new(cfg(3, SimKeys::Master, Some(Duration::from_secs(15))), 77);
        sim.set_default_rule(FaultRule::lossy(0.1, 0.05, 0.1));
        sim.send_all_pairs(200);
        sim.run_for(Duration::from_secs(40));
        (
            sim.log().to_vec(),
            sim.frames_sent(),
            sim.steps(),
            sim.crypto_totals(),
        )
    };
    let (a, b) = (run(), run());
    assert!(a.3.keys_received > 0 && a.3.tx_ok > 0, "{:?}", a.3);
    assert_eq!(a, b);
}
