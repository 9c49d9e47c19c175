//! Connection sockets (SOCK_STREAM / SOCK_SEQPACKET) in the deterministic simulation
//! (`tipc_integration::sim`, invariant 7; spec §9.4–9.7, issue 4): `ConnCore` sockets glued to
//! the simulated peers, with writers streaming numbered data, readers (some slow) checking every
//! byte, and an orderly shutdown at the end. Every step checks the invariants; a failure prints
//! `sim seed=N step=K`, rerun one seed with
//! `SIM_SEED=N cargo test -p tipc-integration --test sim_conn` (add `SIM_TRACE=1` for a trace).

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::time::Duration;
use tipc_actors::addr::ServiceRange;
use tipc_actors::socket::conn::ConnError;
use tipc_integration::sim::{
    seeds, ConnKind, ConnSpec, FaultRule, ReadPace, Sim, SimConfig, SimConn, SimCrypto, SimKeys,
    SimListener,
};
use tipc_transport::peer::PeerStats;

fn cfg(nodes: usize, names: bool) -> SimConfig {
    SimConfig {
        nodes,
        names,
        conns: true,
        ..SimConfig::default()
    }
}

fn bring_up(sim: &mut Sim) {
    let seed = sim.seed();
    assert!(
        sim.run_until(Duration::from_secs(30), |s| s.all_up()),
        "sim seed={seed}: cluster never came up"
    );
}

/// A stream and a seqpacket listener on every node (bound to a service with the name glue).
fn listeners(sim: &mut Sim) -> Vec<[SimListener; 2]> {
    (0..sim.config().nodes)
        .map(|n| {
            [ConnKind::Stream, ConnKind::Seqpacket].map(|kind| {
                let range = ServiceRange::single(5000 + kind as u32, n as u32);
                sim.conn_listen(n, kind, Some(range)).expect("listener")
            })
        })
        .collect()
}

/// A slow reader: 2 reads every 20 ms (about 150 KB/s of 1.5 KB chunks).
fn slow() -> ReadPace {
    ReadPace::slow(Duration::from_millis(20), 2)
}

/// `count` connections between varying pairs: stream and seqpacket, 0-RTT and connect-style,
/// by name (with the name glue) and by socket address, client or server closing, some slow
/// readers. Connection 0 is a large stream (700 KB) to a very slow reader (about 6 KB/s): it
/// must fill the window.
fn open_mix(
    sim: &mut Sim,
    ls: &[[SimListener; 2]],
    count: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<usize> {
    let nodes = sim.config().nodes;
    let names = sim.config().names;
    (0..count)
        .map(|i| {
            let client = i % nodes;
            let server = (client + 1 + (i / nodes) % (nodes - 1)) % nodes;
            let kind = if i % 2 == 0 {
                ConnKind::Stream
            } else {
                ConnKind::Seqpacket
            };
            let (up, down) = match (i, kind) {
                (0, _) => (700_000, 5_000),
                (_, ConnKind::Stream) => (20_000 + rng.next_u32() as u64 % 40_000, 10_000),
                (_, ConnKind::Seqpacket) => (20 + rng.next_u32() as u64 % 40, 15),
            };
            let spec = ConnSpec {
                client,
                listener: ls[server][kind as usize],
                by_name: names && i % 3 != 2,
                zero_rtt: i % 4 < 2,
                up,
                down,
                server_closes: i % 3 == 1,
                client_pace: if i % 5 == 4 { slow() } else { ReadPace::EAGER },
                server_pace: match i {
                    // Slower than a link at 30 % loss: the window must hold the writer back.
                    0 => ReadPace::slow(Duration::from_millis(500), 2),
                    _ if i % 3 == 0 => slow(),
                    _ => ReadPace::EAGER,
                },
            };
            sim.conn_open(spec).expect("connection opens")
        })
        .collect()
}

fn settle(sim: &mut Sim, limit: Duration) {
    let seed = sim.seed();
    let done = sim.run_until(limit, |s| s.conns_settled());
    let open: Vec<_> = sim
        .conns()
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.completed() && !c.aborted())
        .map(|(i, c)| (i, c.ends.clone()))
        .collect();
    assert!(
        done,
        "sim seed={seed}: connections not settled within {limit:?}: {open:#?}"
    );
}

fn assert_all_completed(sim: &Sim) {
    let seed = sim.seed();
    for (i, c) in sim.conns().iter().enumerate() {
        assert!(
            c.completed(),
            "sim seed={seed}: connection {i} did not complete: {:#?}",
            c.ends
        );
        for e in &c.ends {
            assert_eq!(e.rx, e.rx_target, "sim seed={seed}: connection {i}");
            assert_eq!(e.tx, e.tx_target, "sim seed={seed}: connection {i}");
        }
    }
}

fn lossy_run(seed: u64, nodes: usize, names: bool) {
    lossy_run_bearers(seed, nodes, names, 1)
}

fn lossy_run_bearers(seed: u64, nodes: usize, names: bool, bearers: usize) {
    lossy_run_cfg(
        seed,
        SimConfig {
            bearers,
            ..cfg(nodes, names)
        },
    );
}

fn lossy_run_cfg(seed: u64, config: SimConfig) -> Sim {
    let names = config.names;
    let mut sim = Sim::new(config, seed);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc0);
    bring_up(&mut sim);
    let ls = listeners(&mut sim);
    if names {
        let bound = sim.converge_bound();
        assert!(
            sim.run_until(bound, |s| s.names_converged()),
            "sim seed={seed}"
        );
    }
    sim.set_default_rule(FaultRule::lossy(0.3, 0.05, 0.1));
    let ids = open_mix(&mut sim, &ls, 6, &mut rng);
    settle(&mut sim, Duration::from_secs(300));
    assert_all_completed(&sim);
    // Stream writers ran ahead of the peer's answers: Nagle packed some of their writes.
    let nagled: u64 = sim
        .conns()
        .iter()
        .flat_map(|c| c.ends.iter())
        .filter_map(|e| sim.node(e.node)?.conn(e.port?))
        .map(|c| c.stats().nagled)
        .sum();
    assert!(nagled > 0, "sim seed={seed}: no stream write was nagled");
    let big = &sim.conns()[ids[0]];
    assert!(
        big.ends[0].window_stalls > 0,
        "sim seed={seed}: the slow reader never held the writer back"
    );
    sim
}

/// Sanity: without faults, every kind of connection completes with its orderly close.
#[test]
fn conn_mix_completes_without_faults() {
    for seed in seeds(0..3) {
        let mut sim = Sim::new(cfg(3, true), seed);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        bring_up(&mut sim);
        let ls = listeners(&mut sim);
        let bound = sim.converge_bound();
        assert!(sim.run_until(bound, |s| s.names_converged()));
        open_mix(&mut sim, &ls, 8, &mut rng);
        settle(&mut sim, Duration::from_secs(300));
        assert_all_completed(&sim);
    }
}

/// The acceptance run, 2 nodes: 20 seeds at 30 % loss (plus duplication and reordering),
/// six concurrent connections by socket address (stream and seqpacket, 0-RTT and connect,
/// a slow reader filling the window): every byte and message arrives once, in order, intact,
/// and both sides see the orderly close.
#[test]
fn conn_two_nodes_deliver_every_byte_in_order_at_30_percent_loss() {
    for seed in seeds(0..20) {
        lossy_run(seed, 2, false);
    }
}

/// The acceptance run, 3 nodes with the name glue (named SYNs): 20 seeds at 30 % loss.
#[test]
fn conn_three_nodes_deliver_every_byte_in_order_at_30_percent_loss() {
    for seed in seeds(100..120) {
        lossy_run(seed, 3, true);
    }
}

/// The fault in [`conn_lost_peer_aborts_with_no_node_and_others_go_on`].
#[derive(Debug, Clone, Copy)]
enum Loss {
    Crash,
    Partition,
}

/// Connections between every pair of 3 nodes (both kinds, both setups, large enough to be
/// running at the fault), at 10 % loss; then node 2 crashes, or nodes 0 and 2 are cut apart
/// for twice the tolerance and healed. Invariant 7 requires the connections to the lost node
/// to end within the tolerance (+ one tick); here each such end must read its remaining data
/// and then `NoNode`, while every other connection completes with its orderly close.
fn lost_peer_run(seed: u64, loss: Loss) {
    let mut sim = Sim::new(cfg(3, false), seed);
    bring_up(&mut sim);
    let ls = listeners(&mut sim);
    sim.set_default_rule(FaultRule::lossy(0.1, 0.02, 0.05));
    let mut ids = Vec::new();
    for (i, (client, server)) in [(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)]
        .into_iter()
        .enumerate()
    {
        let kind = if i % 2 == 0 {
            ConnKind::Stream
        } else {
            ConnKind::Seqpacket
        };
        // Sized to be still running at the fault (checked below).
        let (up, down) = match kind {
            ConnKind::Stream => (8_000_000, 1_000_000),
            ConnKind::Seqpacket => (6000, 1000),
        };
        let spec = ConnSpec {
            client,
            listener: ls[server][kind as usize],
            by_name: false,
            zero_rtt: i % 3 == 0,
            up,
            down,
            server_closes: i % 2 == 1,
            client_pace: ReadPace::EAGER,
            server_pace: if i % 3 == 1 { slow() } else { ReadPace::EAGER },
        };
        ids.push(sim.conn_open(spec).expect("connection opens"));
    }
    assert!(
        sim.run_until(Duration::from_secs(30), |s| ids
            .iter()
            .all(|&id| s.conn_established(id))),
        "sim seed={seed}: connections not set up"
    );
    sim.run_for(Duration::from_millis(500));
    let lost = |c: &SimConn| {
        let nodes = (c.ends[0].node, c.ends[1].node);
        match loss {
            Loss::Crash => nodes.0 == 2 || nodes.1 == 2,
            Loss::Partition => nodes == (0, 2) || nodes == (2, 0),
        }
    };
    assert!(
        sim.conns()
            .iter()
            .filter(|c| lost(c))
            .all(|c| !c.completed()),
        "sim seed={seed}: connections finished before the fault; make them larger"
    );
    let fault_at = sim.elapsed();
    match loss {
        Loss::Crash => sim.crash(2),
        Loss::Partition => {
            sim.partition(0, 2);
            let cut = sim.config().tolerance * 2;
            sim.run_for(cut);
            sim.heal();
        }
    }
    settle(&mut sim, Duration::from_secs(300));
    for (i, c) in sim.conns().iter().enumerate() {
        if lost(c) {
            for e in c.ends.iter().filter(|e| !e.gone) {
                assert_eq!(
                    e.end,
                    Some(Err(ConnError::NoNode)),
                    "sim seed={seed}: connection {i} end at node {}: {e:?}",
                    e.node
                );
                let late = e.ended_at.map(|t| t - fault_at);
                assert!(
                    late.is_some_and(|d| d <= sim.down_bound()),
                    "sim seed={seed}: connection {i} ended {late:?} after the fault, bound {:?}",
                    sim.down_bound()
                );
            }
        } else {
            assert!(
                c.completed(),
                "sim seed={seed}: connection {i} did not complete: {:#?}",
                c.ends
            );
        }
    }
}

/// A crash, and a partition longer than the tolerance: connections to the lost node abort
/// with `NoNode` within the tolerance; the others complete.
#[test]
fn conn_lost_peer_aborts_with_no_node_and_others_go_on() {
    for seed in seeds(200..210) {
        lost_peer_run(seed, Loss::Crash);
        lost_peer_run(seed, Loss::Partition);
    }
}

/// Random fault schedules (crash, restart, partition, isolation) at 10 % loss while
/// connections come and go between random pairs: invariant 7 holds throughout (every end is
/// orderly or has a lost peer behind it, in time), and once the cluster is healed every
/// connection has completed or aborted.
#[test]
fn conn_chaos_every_connection_completes_or_aborts_for_a_cause() {
    for seed in seeds(300..316) {
        conn_chaos(seed, 1);
    }
}

/// FAILOVER messages received by every live node so far (link failover between two bearers).
fn tunnelled(sim: &Sim, nodes: usize) -> u64 {
    (0..nodes)
        .flat_map(|a| (0..nodes).map(move |b| (a, b)))
        .filter_map(|(a, b)| sim.node(a)?.peer(sim.addr(b)))
        .map(|p| p.stats().tunnel_rx)
        .sum()
}

/// The chaos schedules with two bearers per node pair.
#[test]
fn conn_chaos_two_bearers_every_connection_completes_or_aborts_for_a_cause() {
    let mut tunnelled = 0;
    for seed in seeds(400..408) {
        tunnelled += conn_chaos(seed, 2);
    }
    // The partitions cut single links too: their queues failed over to the other link.
    assert!(tunnelled > 0, "no link ever failed over");
}

/// Returns the FAILOVER messages the nodes received (counted before the final restarts).
fn conn_chaos(seed: u64, bearers: usize) -> u64 {
    let nodes = 3;
    let mut sim = Sim::new(
        SimConfig {
            bearers,
            ..cfg(nodes, false)
        },
        seed,
    );
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xc4a0);
    bring_up(&mut sim);
    sim.set_default_rule(FaultRule::lossy(0.1, 0.05, 0.1));
    let mut ls: Vec<Option<[SimListener; 2]>> = vec![None; nodes];
    for _ in 0..6 {
        for (n, l) in ls.iter_mut().enumerate() {
            if l.is_none() && sim.node(n).is_some() {
                *l = Some(
                    [ConnKind::Stream, ConnKind::Seqpacket]
                        .map(|k| sim.conn_listen(n, k, None).expect("listener")),
                );
            }
        }
        for _ in 0..3 {
            let client = rng.next_u32() as usize % nodes;
            let server = (client + 1 + rng.next_u32() as usize % (nodes - 1)) % nodes;
            let Some(l) = ls[server] else { continue };
            if !(sim.peer_up(client, server) && sim.peer_up(server, client)) {
                continue;
            }
            let kind = if rng.next_u32() % 2 == 0 {
                ConnKind::Stream
            } else {
                ConnKind::Seqpacket
            };
            let (up, down) = match kind {
                ConnKind::Stream => (rng.next_u32() as u64 % 200_000, 20_000),
                ConnKind::Seqpacket => (rng.next_u32() as u64 % 150, 20),
            };
            sim.conn_open(ConnSpec {
                client,
                listener: l[kind as usize],
                by_name: false,
                zero_rtt: rng.next_u32() % 2 == 0,
                up,
                down,
                server_closes: rng.next_u32() % 2 == 0,
                client_pace: ReadPace::EAGER,
                server_pace: if rng.next_u32() % 3 == 0 {
                    slow()
                } else {
                    ReadPace::EAGER
                },
            })
            .expect("connection opens");
        }
        sim.run_for(Duration::from_millis((rng.next_u32() % 2000) as u64));
        let n = rng.next_u32() as usize % nodes;
        match rng.next_u32() % 4 {
            0 => sim.isolate(n),
            1 => sim.partition(n, (n + 1) % nodes),
            2 => {
                sim.crash(n);
                ls[n] = None;
            }
            _ => {}
        }
        sim.run_for(Duration::from_millis(200 + (rng.next_u32() % 3000) as u64));
        sim.heal();
        for (i, l) in ls.iter_mut().enumerate() {
            if sim.node(i).is_none() && rng.next_u32() % 2 == 0 {
                sim.restart(i);
                *l = None;
            }
        }
        sim.run_for(Duration::from_millis((rng.next_u32() % 3000) as u64));
    }
    let tunnelled = tunnelled(&sim, nodes);
    for i in 0..nodes {
        sim.restart(i);
    }
    sim.heal();
    settle(&mut sim, Duration::from_secs(600));
    assert!(
        sim.conns().iter().any(|c| c.completed()),
        "sim seed={seed}: no connection completed"
    );
    tunnelled
}

/// The 2-node acceptance run with two bearers per pair: each connection's messages use one
/// link (by port), both links lose 30 %.
#[test]
fn conn_two_bearers_deliver_every_byte_in_order_at_30_percent_loss() {
    for seed in seeds(500..520) {
        lossy_run_bearers(seed, 2, false, 2);
    }
}

/// The 30 % loss run on a keyed cluster of 3 nodes with two bearers per pair and the name
/// glue (connections by name and by address): every frame sealed and opened (invariant 9),
/// the master key's session keys exchanged over the links and rekeyed every 20 s; every
/// connection completes with every byte once and in order.
#[test]
fn conn_keyed_two_bearers_deliver_every_byte_in_order_at_30_percent_loss() {
    for seed in seeds(520..524) {
        let sim = lossy_run_cfg(
            seed,
            SimConfig {
                bearers: 2,
                crypto: Some(SimCrypto {
                    keys: SimKeys::Master,
                    rekeying: Some(Duration::from_secs(20)),
                }),
                ..cfg(3, true)
            },
        );
        let t = sim.crypto_totals();
        assert!(t.tx_ok > 0 && t.keys_received > 0, "seed {seed}: {t:?}");
    }
}

/// Two bearers of unequal MTU (9000 and 1500) at 10 % loss (with duplication and reordering),
/// one segment failing at a time for longer than the tolerance (the next one only once the
/// links are all back): the nodes stay up, each cut
/// link's unacknowledged packets fail over to the other link (the large link's in tunnel
/// fragments), and every connection completes with every byte once and in order.
#[test]
fn conn_two_bearers_of_unequal_mtu_survive_segment_failures_at_10_percent_loss() {
    let mut total = PeerStats::default();
    for seed in seeds(440..450) {
        let mut sim = Sim::new(
            SimConfig {
                bearers: 2,
                first_mtu: Some(9000),
                ..cfg(2, false)
            },
            seed,
        );
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5e9);
        bring_up(&mut sim);
        let ls = listeners(&mut sim);
        sim.set_default_rule(FaultRule::lossy(0.1, 0.05, 0.1));
        open_mix(&mut sim, &ls, 6, &mut rng);
        for round in 0..4 {
            sim.run_for(Duration::from_millis(300 + (rng.next_u32() % 1500) as u64));
            sim.cut_segment((round % 2) as u8);
            sim.run_for(Duration::from_millis(2000 + (rng.next_u32() % 2000) as u64));
            assert!(
                sim.peer_up(0, 1) && sim.peer_up(1, 0),
                "sim seed={seed}: node lost"
            );
            sim.heal_segments();
            // The other segment fails only once this one's link is back: once the failover
            // ended, which at this loss can take a while (a few hundred tunnel messages, the
            // holes repaired by one NACK round each, as without gap-ack blocks in the kernel).
            if !sim.run_until(Duration::from_secs(120), |s| s.all_up()) {
                let state: Vec<String> = (0..2)
                    .filter_map(|a| {
                        let p = sim.node(a)?.peer(sim.addr(1 - a))?;
                        Some(format!("node {a}: {:?} {:?}", p.stats(), p.links()))
                    })
                    .collect();
                panic!("sim seed={seed}: link not back after the cut: {state:#?}");
            }
        }
        settle(&mut sim, Duration::from_secs(300));
        assert_all_completed(&sim);
        for a in 0..2 {
            let s = *sim
                .node(a)
                .and_then(|n| n.peer(sim.addr(1 - a)))
                .expect("peer")
                .stats();
            total.failovers += s.failovers;
            total.tunnel_fragmented += s.tunnel_fragmented;
            total.tunnel_reassembled += s.tunnel_reassembled;
            total.tunnel_reasm_errors += s.tunnel_reasm_errors;
        }
    }
    eprintln!("segment failures, 10 seeds: {total:?}");
    assert!(total.failovers > 0, "{total:?}");
    assert!(
        total.tunnel_fragmented > 0,
        "nothing failed over in fragments: {total:?}"
    );
    assert!(total.tunnel_reassembled > 0, "{total:?}");
    assert_eq!(total.tunnel_reasm_errors, 0, "{total:?}");
}
