//! Communication groups in the deterministic simulation (`tipc_integration::sim`, invariant 8;
//! spec §10, issue 12): member sockets on 3 and 5 nodes send numbered messages in the four
//! modes while their windows allow, readers (one slow) check order, addressing, member events,
//! drops and memory every step, and at the end every message between members that stayed in
//! contact was read. Under 30 % loss, a partition and a crash, for 20 seeds each. A failure
//! prints `sim seed=N step=K`; rerun one seed with
//! `SIM_SEED=N cargo test -p tipc-integration --test sim_groups` (add `SIM_TRACE=1`).

use std::time::Duration;
use tipc_actors::group::GroupConfig;
use tipc_integration::sim::{seeds, FaultRule, ReadPace, Sim, SimConfig, SimCrypto, SimKeys};

const T: u32 = 4711;

fn cfg(nodes: usize) -> SimConfig {
    SimConfig {
        nodes,
        names: true,
        groups: true,
        ..SimConfig::default()
    }
}

/// Two members per node (instances 0, 1, 2, 0, ...), member 1 a slow reader; returns once
/// every member admitted every other (panics after 60 s of virtual time).
fn members(sim: &mut Sim) -> usize {
    let seed = sim.seed();
    assert!(
        sim.run_until(Duration::from_secs(30), |s| s.all_up()),
        "sim seed={seed}: cluster never came up"
    );
    let nodes = sim.config().nodes;
    let total = 2 * nodes;
    for id in 0..total {
        let pace = if id == 1 {
            ReadPace::slow(Duration::from_millis(10), 4)
        } else {
            ReadPace::EAGER
        };
        let cfg = GroupConfig::new(T, id as u32 % 3);
        sim.group_join(id % nodes, cfg, pace).expect("join");
    }
    let all = |s: &Sim| s.members().iter().all(|m| m.sees(s, total - 1));
    assert!(
        sim.run_until(Duration::from_secs(60), all),
        "sim seed={seed}: members never all up"
    );
    total
}

/// Let the senders finish and the readers drain (panics after `limit`).
fn finish(sim: &mut Sim, limit: Duration) {
    let seed = sim.seed();
    let done = sim.run_until(limit, |s| !s.group_sending() && s.group_unread() == 0);
    assert!(
        done,
        "sim seed={seed}: group traffic not done after {limit:?} (unread {})\n{}",
        sim.group_unread(),
        sim.group_debug()
    );
    // Whatever is still on the links arrives.
    sim.run_for(Duration::from_secs(5));
    assert_eq!(sim.group_unread(), 0, "sim seed={seed}");
}

#[test]
fn sim_group_mixed_modes_are_read_in_order_and_complete_without_faults() {
    for seed in seeds(1..=3) {
        let mut sim = Sim::new(cfg(3), seed);
        let total = members(&mut sim);
        for id in 0..total {
            sim.group_send(id, 400);
        }
        finish(&mut sim, Duration::from_secs(120));
        sim.group_check_complete();
        let sent: u64 = sim.members().iter().map(|m| m.sent).sum();
        let read: u64 = sim.members().iter().map(|m| m.read).sum();
        assert!(
            sent >= 2000 && read > sent,
            "seed {seed}: sent {sent} read {read}"
        );
        // The slow reader held its senders back: its queue stayed within the windows.
        assert!(sim.max_group_queue() <= sim.group_queue_bound());
        eprintln!(
            "seed {seed}: sent {sent}, read {read}, max unread {}",
            sim.max_group_queue()
        );
    }
}

fn chaos(nodes: usize, seed: u64) {
    chaos_cfg(cfg(nodes), seed);
}

fn chaos_cfg(config: SimConfig, seed: u64) -> Sim {
    let nodes = config.nodes;
    let mut sim = Sim::new(config, seed);
    let total = members(&mut sim);
    sim.set_default_rule(FaultRule::lossy(0.3, 0.01, 0.05));
    for id in 0..total {
        sim.group_send(id, 150);
    }
    sim.run_for(Duration::from_millis(700));
    // A partition between nodes 0 and 1 for 3 s, then a crash of the last node.
    sim.partition(0, 1);
    sim.run_for(Duration::from_secs(3));
    sim.heal();
    sim.run_for(Duration::from_secs(2));
    sim.crash(nodes - 1);
    for id in 0..total {
        sim.group_send(id, 50);
    }
    finish(&mut sim, Duration::from_secs(300));
    sim.group_check_complete();
    let read: u64 = sim.members().iter().map(|m| m.read).sum();
    let sent: u64 = sim.members().iter().map(|m| m.sent).sum();
    let refused: u64 = sim.members().iter().map(|m| m.no_dest).sum();
    eprintln!(
        "{nodes} nodes seed {seed}: sent {sent} (refused {refused}), read {read}, max unread {}, t {:?}",
        sim.max_group_queue(),
        sim.elapsed()
    );
    assert!(read > sent, "seed {seed}: sent {sent}, read {read}");
    sim
}

#[test]
fn sim_group_invariants_hold_under_loss_partition_and_crash_with_3_nodes() {
    for seed in seeds(100..120) {
        chaos(3, seed);
    }
}

#[test]
fn sim_group_invariants_hold_under_loss_partition_and_crash_with_5_nodes() {
    for seed in seeds(200..220) {
        chaos(5, seed);
    }
}

/// The same schedule on a keyed cluster (invariant 9: every frame sealed and opened): even
/// seeds a cluster key, odd ones the master key with session keys rekeyed every 20 s.
#[test]
fn sim_group_keyed_invariants_hold_under_loss_partition_and_crash_with_3_nodes() {
    for seed in seeds(120..126) {
        let (keys, rekeying) = if seed.is_multiple_of(2) {
            (SimKeys::Cluster, None)
        } else {
            (SimKeys::Master, Some(Duration::from_secs(20)))
        };
        let config = SimConfig {
            crypto: Some(SimCrypto { keys, rekeying }),
            ..cfg(3)
        };
        let t = chaos_cfg(config, seed).crypto_totals();
        assert!(t.tx_ok > 0 && t.rx_ok > 0, "seed {seed}: {t:?}");
    }
}
