//! Two peers joined back to back by a lossy, reordering, duplicating in-memory wire, on a
//! virtual clock: link establishment, exactly-once in-order delivery, supervision.

use bytes::{Bytes, BytesMut};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tipc_transport::link::DownReason;
use tipc_transport::peer::{classify, BearerParams, NeighborSighting, Peer, PeerEvent, Route};
use tipc_transport::wire::{Header, MediaAddr, BASIC_H_SIZE};
use tipc_transport::{NodeId, OWN_CAPABILITIES};

struct Faults {
    loss: u32,
    dup: u32,
    reorder: u32,
}

/// A wire that loses, duplicates and reorders nothing.
const NO_FAULTS: Faults = Faults {
    loss: 0,
    dup: 0,
    reorder: 0,
};

struct Net {
    now: Instant,
    peers: [Peer; 2],
    addrs: [u32; 2],
    wire: VecDeque<(Instant, usize, Bytes)>,
    rng: ChaCha8Rng,
    faults: Faults,
    delivered: [Vec<u64>; 2],
    events: [Vec<PeerEvent>; 2],
    up: [bool; 2],
    partitioned: bool,
    /// Frames from node i are dropped.
    cut_from: [bool; 2],
    /// Data messages (by number) from node 0 lost on their first transmission.
    lose_once: Vec<u64>,
}

fn bearer(mtu: usize) -> BearerParams {
    BearerParams {
        id: 0,
        if_name: "mem0".into(),
        mtu,
        encap_hlen: 0,
        tolerance: Duration::from_millis(1500),
        priority: 10,
        min_win: 50,
        max_win: 50,
    }
}

impl Net {
    fn new(seed: u64, faults: Faults, mtu: usize) -> Net {
        let now = Instant::now();
        let ida = NodeId::from_str_id("na").unwrap();
        let idb = NodeId::from_str_id("nb").unwrap();
        let (a, b) = (ida.hash(), idb.hash());
        let mut pa = Peer::new(a, ida, b, idb, OWN_CAPABILITIES);
        let mut pb = Peer::new(b, idb, a, ida, OWN_CAPABILITIES);
        let sa = NeighborSighting {
            media_addr: MediaAddr::Mem(2),
            id: idb,
            caps: OWN_CAPABILITIES,
            signature: 7,
            is_request: false,
        };
        let sb = NeighborSighting {
            media_addr: MediaAddr::Mem(1),
            id: ida,
            caps: OWN_CAPABILITIES,
            signature: 9,
            is_request: false,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        assert!(
            pa.handle_discovery(now, &bearer(mtu), &sa, rng.next_u32() as u16)
                .link_created
        );
        assert!(
            pb.handle_discovery(now, &bearer(mtu), &sb, rng.next_u32() as u16)
                .link_created
        );
        Net {
            now,
            peers: [pa, pb],
            addrs: [a, b],
            wire: VecDeque::new(),
            rng,
            faults,
            delivered: [Vec::new(), Vec::new()],
            events: [Vec::new(), Vec::new()],
            up: [false, false],
            partitioned: false,
            cut_from: [false, false],
            lose_once: Vec::new(),
        }
    }

    fn chance(&mut self, pct: u32) -> bool {
        pct > 0 && self.rng.next_u32() % 100 < pct
    }

    fn flush(&mut self) {
        for i in 0..2 {
            let mut out = BytesMut::new();
            let mut frames = Vec::new();
            while let Some(t) = self.peers[i].poll_transmit(&mut out) {
                frames.push(out.split_to(t.len).freeze());
            }
            for f in frames {
                if self.partitioned || self.cut_from[i] || self.chance(self.faults.loss) {
                    continue;
                }
                if i == 0 && !self.lose_once.is_empty() {
                    let h = Header::new_checked(&f[..]).unwrap();
                    if h.user() == 0 {
                        let n = u64::from_be_bytes(h.payload()[..8].try_into().unwrap());
                        if let Some(k) = self.lose_once.iter().position(|&x| x == n) {
                            self.lose_once.swap_remove(k);
                            continue;
                        }
                    }
                }
                let delay = Duration::from_micros(100);
                let copies = if self.chance(self.faults.dup) { 2 } else { 1 };
                for _ in 0..copies {
                    let extra = if self.chance(self.faults.reorder) {
                        Duration::from_micros((self.rng.next_u32() % 2000) as u64)
                    } else {
                        Duration::ZERO
                    };
                    self.wire
                        .push_back((self.now + delay + extra, 1 - i, f.clone()));
                }
            }
            while let Some(ev) = self.peers[i].poll_event() {
                match &ev {
                    PeerEvent::Deliver(m) => {
                        let h = Header::new_checked(&m[..]).unwrap();
                        let p = h.payload();
                        self.delivered[i].push(u64::from_be_bytes(p[..8].try_into().unwrap()));
                    }
                    PeerEvent::NodeUp => self.up[i] = true,
                    PeerEvent::NodeDown => self.up[i] = false,
                    _ => {}
                }
                self.events[i].push(ev);
            }
        }
    }

    /// Advance to the next event (a frame arrival or a timer), at most until `limit`.
    fn step(&mut self, limit: Instant) -> bool {
        self.flush();
        let next_frame = self.wire.iter().map(|w| w.0).min();
        let next_timer = self.peers.iter().filter_map(|p| p.poll_timeout()).min();
        let next = match (next_frame, next_timer) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => a.or(b).unwrap_or(limit),
        };
        if next > limit {
            self.now = limit;
            return false;
        }
        self.now = self.now.max(next);
        let now = self.now;
        let mut i = 0;
        while i < self.wire.len() {
            if self.wire[i].0 <= now {
                let (_, to, f) = self.wire.remove(i).unwrap();
                match classify(self.addrs[to], &f) {
                    Ok(Route::Unicast(_)) => self.peers[to].handle_packet(now, 0, f),
                    other => panic!("unexpected route {other:?}"),
                }
            } else {
                i += 1;
            }
        }
        for p in self.peers.iter_mut() {
            if p.poll_timeout().is_some_and(|t| t <= now) {
                p.handle_timeout(now);
            }
        }
        self.flush();
        true
    }

    fn run_until(&mut self, d: Duration, mut cond: impl FnMut(&Net) -> bool) -> bool {
        let limit = self.now + d;
        while self.now < limit {
            if cond(self) {
                return true;
            }
            self.step(limit);
        }
        cond(self)
    }
}

fn data_msg(from: u32, to: u32, n: u64, size: usize) -> BytesMut {
    let len = BASIC_H_SIZE + size.max(8);
    let mut b = BytesMut::zeroed(len);
    let mut h = Header::new_unchecked(&mut b[..]);
    h.init(0, 3, BASIC_H_SIZE, len, from);
    h.set_orignode(from);
    h.set_destnode(to);
    h.set_origport(1);
    h.set_destport(2);
    b[BASIC_H_SIZE..BASIC_H_SIZE + 8].copy_from_slice(&n.to_be_bytes());
    b
}

#[test]
fn link_comes_up_within_one_second_without_loss() {
    let mut net = Net::new(1, NO_FAULTS, 1500);
    let start = net.now;
    assert!(net.run_until(Duration::from_secs(1), |n| n.up[0] && n.up[1]));
    assert!(
        net.now - start < Duration::from_millis(50),
        "took {:?}",
        net.now - start
    );
    let names: Vec<_> = net.peers[0]
        .links()
        .into_iter()
        .map(|(_, s)| s.name)
        .collect();
    assert_eq!(names, vec!["na:mem0-nb:mem0".to_string()]);
}

fn transfer(seed: u64, faults: Faults, count: u64, size: usize, mtu: usize) -> Net {
    let mut net = Net::new(seed, faults, mtu);
    assert!(
        net.run_until(Duration::from_secs(30), |n| n.up[0] && n.up[1]),
        "seed {seed}: link never came up"
    );
    let mut next = 0u64;
    let deadline = net.now + Duration::from_secs(600);
    while net.delivered[1].len() < count as usize && net.now < deadline {
        // Send while the link accepts; honour congestion like a socket would.
        while next < count && !net.peers[0].is_congested(0, 1) {
            let m = data_msg(net.addrs[0], net.addrs[1], next, size);
            match net.peers[0].send(net.now, m, 1) {
                Ok(_) => next += 1,
                Err(e) => panic!("seed {seed}: send failed: {e:?}"),
            }
        }
        let lim = net.now + Duration::from_millis(5);
        net.step(lim);
        for (_, s) in net.peers[0].links() {
            assert!(
                s.transmq_len + s.backlog_len <= 50 + 100 + 75,
                "seed {seed}: queue unbounded"
            );
        }
    }
    let got = &net.delivered[1];
    assert_eq!(
        got.len() as u64,
        count,
        "seed {seed}: delivered {} of {count}",
        got.len()
    );
    for (i, v) in got.iter().enumerate() {
        assert_eq!(
            *v, i as u64,
            "seed {seed}: out of order or duplicate at {i}"
        );
    }
    assert!(
        !net.events[0]
            .iter()
            .any(|e| matches!(e, PeerEvent::LinkDown { .. })),
        "seed {seed}: link went down during transfer"
    );
    net
}

#[test]
fn link_delivers_exactly_once_in_order_without_loss() {
    let net = transfer(2, NO_FAULTS, 20_000, 64, 1500);
    let s = net.peers[0].links()[0].1.stats;
    assert!(
        s.tx_bundles > 0,
        "small messages under a full window must be bundled"
    );
    assert_eq!(s.retransmitted, 0);
}

#[test]
fn link_delivers_exactly_once_in_order_under_loss_dup_reorder() {
    for seed in 0..5 {
        let net = transfer(
            100 + seed,
            Faults {
                loss: 20,
                dup: 5,
                reorder: 5,
            },
            5_000,
            64,
            1500,
        );
        let s = net.peers[0].links()[0].1.stats;
        assert!(
            s.retransmitted > 0,
            "seed {seed}: loss must cause retransmission"
        );
    }
}

#[test]
fn link_fragments_and_reassembles_large_messages_under_loss() {
    transfer(
        7,
        Faults {
            loss: 10,
            dup: 2,
            reorder: 2,
        },
        300,
        20_000,
        1500,
    );
}

#[test]
fn link_goes_down_within_tolerance_after_partition() {
    let mut net = Net::new(3, NO_FAULTS, 1500);
    assert!(net.run_until(Duration::from_secs(1), |n| n.up[0] && n.up[1]));
    // Idle for a while: probes keep it up.
    assert!(!net.run_until(Duration::from_secs(10), |n| !n.up[0] || !n.up[1]));
    net.partitioned = true;
    let cut = net.now;
    assert!(net.run_until(Duration::from_secs(5), |n| !n.up[0] && !n.up[1]));
    let took = net.now - cut;
    assert!(
        took <= Duration::from_millis(1500),
        "link lost after {took:?}"
    );
    assert!(net.events[0].iter().any(|e| matches!(
        e,
        PeerEvent::LinkDown {
            reason: DownReason::Timeout,
            ..
        }
    )));
    // Heal: the link comes back.
    net.partitioned = false;
    assert!(net.run_until(Duration::from_secs(3), |n| n.up[0] && n.up[1]));
}

#[test]
fn link_failure_tells_a_peer_that_still_hears_us_to_reset_at_once() {
    let mut net = Net::new(4, NO_FAULTS, 1500);
    assert!(net.run_until(Duration::from_secs(1), |n| n.up[0] && n.up[1]));
    // Frames from node 1 are lost: node 0 hears nothing, node 1 still hears node 0.
    net.cut_from[1] = true;
    let cut = net.now;
    assert!(net.run_until(Duration::from_secs(3), |n| !n.up[0] && !n.up[1]));
    // Node 0 timed out; its first RESET carried peer_stopping, so node 1 (which still heard
    // node 0) reset at once instead of waiting for its own tolerance.
    assert!(net.events[0].iter().any(|e| matches!(
        e,
        PeerEvent::LinkDown {
            reason: DownReason::Timeout,
            ..
        }
    )));
    assert!(net.events[1].iter().any(|e| matches!(
        e,
        PeerEvent::LinkDown {
            reason: DownReason::PeerStopping,
            ..
        }
    )));
    assert!(
        net.now - cut <= Duration::from_millis(1600),
        "took {:?}",
        net.now - cut
    );
}

#[test]
fn link_fragments_of_short_header_message_name_the_peer_and_arrive() {
    use tipc_transport::wire::SHORT_H_SIZE;
    let mut net = Net::new(3, NO_FAULTS, 1500);
    assert!(net.run_until(Duration::from_secs(1), |n| n.up[0] && n.up[1]));
    // A connection message: 24-byte header, no destnode word.
    let len = SHORT_H_SIZE + 20_000;
    let mut b = BytesMut::zeroed(len);
    let mut h = Header::new_unchecked(&mut b[..]);
    h.init(0, 0, SHORT_H_SIZE, len, net.addrs[0]);
    h.set_origport(1);
    h.set_destport(2);
    b[SHORT_H_SIZE..SHORT_H_SIZE + 8].copy_from_slice(&42u64.to_be_bytes());
    net.peers[0].send(net.now, b, 1).unwrap();
    assert!(net.run_until(Duration::from_secs(2), |n| !n.delivered[1].is_empty()));
    assert_eq!(net.delivered[1], vec![42]);
}

#[test]
fn link_probes_silent_peer_every_sixteenth_of_tolerance() {
    let mut net = Net::new(5, NO_FAULTS, 1500);
    assert!(net.run_until(Duration::from_secs(1), |n| n.up[0] && n.up[1]));
    let probes_before = net.peers[0].links()[0].1.stats.tx_probes;
    // Node 0 hears nothing more; it probes until the tolerance runs out.
    net.cut_from[1] = true;
    let cut = net.now;
    assert!(net.run_until(Duration::from_secs(3), |n| !n.up[0]));
    let probes = net.peers[0].links()[0].1.stats.tx_probes - probes_before;
    // Ticks alone (every 375 ms) give at most 4; from one tick of silence on, a probe goes
    // every 1500 / 16 ms, so a live peer has about a dozen chances to be heard.
    assert!(probes >= 10, "only {probes} probes in {:?}", net.now - cut);
    assert!(
        // Frames already in flight (100 µs) still arrive after the cut.
        net.now - cut <= Duration::from_millis(1501),
        "took {:?}",
        net.now - cut
    );
}

#[test]
fn link_with_traffic_stays_up_at_30_percent_loss_each_way() {
    for seed in 40..50 {
        let mut net = transfer(
            seed,
            Faults {
                loss: 30,
                dup: 0,
                reorder: 5,
            },
            500,
            64,
            1500,
        );
        // Then idle for a while at the same loss: probes alone must keep the link up.
        assert!(
            !net.run_until(Duration::from_secs(20), |n| !n.up[0] || !n.up[1]),
            "seed {seed}: idle link went down"
        );
        let downs = net.events[0]
            .iter()
            .chain(net.events[1].iter())
            .filter(|e| matches!(e, PeerEvent::LinkDown { .. }))
            .count();
        assert_eq!(downs, 0, "seed {seed}");
    }
}

/// Bursts sent under a cork (as the peer actor sends what was queued in one go) leave as
/// bundles even with room in the window, and still arrive exactly once and in order under
/// loss: small messages, messages too large to bundle and fragmented ones mixed, and bursts
/// large enough to fill the window so corked bundles go through the backlog (a bundle is
/// never put inside another one there).
#[test]
fn link_corked_bursts_leave_bundled_and_arrive_exactly_once_in_order_under_loss() {
    const COUNT: u64 = 3_000;
    // 1,380: too large to bundle, small enough to go unfragmented (mss 1,428 on a 1,500 MTU).
    let sizes = [64usize, 8, 300, 64, 1_380, 64, 4_000, 100];
    for seed in 0..4u64 {
        let mut net = Net::new(
            300 + seed,
            Faults {
                loss: 10,
                dup: 3,
                reorder: 3,
            },
            1500,
        );
        assert!(net.run_until(Duration::from_secs(30), |n| n.up[0] && n.up[1]));
        let mut next = 0u64;
        let deadline = net.now + Duration::from_secs(600);
        while net.delivered[1].len() < COUNT as usize && net.now < deadline {
            if next < COUNT && !net.peers[0].is_congested(0, 1) {
                let burst = 1 + net.rng.next_u32() as u64 % 60;
                let now = net.now;
                net.peers[0].set_cork(now, true);
                for _ in 0..burst.min(COUNT - next) {
                    let size = sizes[(next % sizes.len() as u64) as usize];
                    let m = data_msg(net.addrs[0], net.addrs[1], next, size);
                    net.peers[0]
                        .send(now, m, 1)
                        .unwrap_or_else(|e| panic!("seed {seed}: send failed: {e:?}"));
                    next += 1;
                }
                net.peers[0].set_cork(now, false);
                net.flush();
            }
            let lim = net.now + Duration::from_millis(5);
            net.step(lim);
        }
        let got = &net.delivered[1];
        assert_eq!(
            got.len() as u64,
            COUNT,
            "seed {seed}: delivered {}",
            got.len()
        );
        for (i, v) in got.iter().enumerate() {
            assert_eq!(
                *v, i as u64,
                "seed {seed}: out of order or duplicate at {i}"
            );
        }
        let s = net.peers[0].links()[0].1.stats;
        assert!(
            s.tx_bundles > 0 && s.tx_packets < COUNT,
            "seed {seed}: corked bursts must be bundled ({} packets, {} bundles)",
            s.tx_packets,
            s.tx_bundles
        );
    }
}

/// Gap ACK blocks (`TIPC_GAP_ACK_BLOCK`, both sides advertise it): with several holes in a
/// window, the receiver's NACK names every island it holds; the sender retransmits only the
/// holes, each once.
#[test]
fn link_gap_ack_blocks_release_islands_and_resend_only_the_holes() {
    let mut net = Net::new(3, NO_FAULTS, 1500);
    assert!(net.run_until(Duration::from_secs(1), |n| n.up[0] && n.up[1]));
    let lost = vec![2u64, 3, 7, 12, 13, 14, 30];
    net.lose_once = lost.clone();
    let now = net.now;
    for n in 0..40u64 {
        let m = data_msg(net.addrs[0], net.addrs[1], n, 100);
        net.peers[0].send(now, m, 1).expect("send");
    }
    assert!(net.run_until(Duration::from_secs(5), |n| n.delivered[1].len() == 40));
    assert_eq!(net.delivered[1], (0..40).collect::<Vec<u64>>());
    let (_, s) = net.peers[0].links().remove(0);
    assert_eq!(
        s.stats.retransmitted,
        lost.len() as u64,
        "retransmitted more than the holes: {:?}",
        s.stats
    );
    assert!(
        s.stats.gap_acked > 0,
        "no island reported held: {:?}",
        s.stats
    );
}

#[test]
fn peer_forgets_a_node_lost_for_the_cleanup_time_and_not_before() {
    use tipc_transport::peer::NODE_CLEANUP_AFTER;
    let mut net = Net::new(5, NO_FAULTS, 1500);
    assert!(net.run_until(Duration::from_secs(1), |n| n.up[0] && n.up[1]));
    net.partitioned = true;
    assert!(net.run_until(Duration::from_secs(5), |n| !n.up[0] && !n.up[1]));
    let lost = net.peers[0].lost_at().expect("lost_at set at node down");
    let forgets = |n: &Net| {
        n.events[0]
            .iter()
            .filter(|e| matches!(e, PeerEvent::Forget))
            .count()
    };
    // The links keep trying (RESETs) all along; the node is forgotten only at the deadline.
    let before = lost + NODE_CLEANUP_AFTER - Duration::from_millis(1);
    assert!(!net.run_until(before - net.now, |n| forgets(n) > 0));
    assert!(net.run_until(Duration::from_secs(1), |n| forgets(n) > 0));
    assert!(net.now >= lost + NODE_CLEANUP_AFTER);
    // Once.
    net.run_until(Duration::from_secs(10), |_| false);
    assert_eq!(forgets(&net), 1);
}
