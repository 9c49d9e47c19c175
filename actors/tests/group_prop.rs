//! Property tests of the group core ([`GroupCore`]), deterministic-seeded:
//!
//! * one sender and three receiver cores, with a unicast link and a broadcast link per
//!   receiver (each FIFO, interleaved at random) and random reads: whatever the arrival order
//!   the links allow, each receiver gets exactly the messages meant for it, in send order,
//!   and no receiver is ever sent more than it advertised;
//! * hostile input (random bytes, mutated messages, random protocol messages from members
//!   and strangers) is counted and dropped, never a panic, and the queues stay bounded.
//!
//! Spec: tipc-protocol.md §10.3, §10.4, §5.4 (a forced replicast goes on the unicast link;
//! a free broadcast may take either path).

mod group_common;

use std::collections::VecDeque;

use bytes::Bytes;
use group_common::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use tipc_actors::addr::SocketAddr;
use tipc_actors::group::{
    GroupCore, GroupDest, GroupEvent, GroupSendError, Method, Transmit, ADV_ACTIVE, MAX_DEFERRED,
};
use tipc_actors::socket::replicast_copy;
use tipc_transport::wire::{DataType, GroupProtoType, Header};

const T: u32 = 4300;

fn runner(cases: u32) -> TestRunner {
    let cfg = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    TestRunner::new_with_rng(cfg, TestRng::deterministic_rng(RngAlgorithm::ChaCha))
}

fn sender() -> SocketAddr {
    sa(GA, 1)
}

/// Receivers: two with instance 2, one with instance 3.
fn receivers() -> [(SocketAddr, u32); 3] {
    [(sa(GB, 2), 2), (sa(GC, 3), 2), (sa(GD, 4), 3)]
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Bcast,
    Ucast(usize),
    Anycast2,
    Mcast2,
    Mcast3,
}

const SIZES: [usize; 5] = [1, 100, 1500, 5000, 20000];

fn ops() -> impl Strategy<Value = Vec<(Op, usize)>> {
    let op = prop_oneof![
        2 => Just(Op::Bcast),
        2 => (0usize..3).prop_map(Op::Ucast),
        1 => Just(Op::Anycast2),
        1 => Just(Op::Mcast2),
        1 => Just(Op::Mcast3),
    ];
    prop::collection::vec((op, 0usize..SIZES.len()), 1..40)
}

/// The simulated cluster.
struct Sim {
    a: GroupCore,
    r: Vec<GroupCore>,
    /// A → receiver i over the unicast link, and over the broadcast link.
    uni: Vec<VecDeque<Bytes>>,
    bcl: Vec<VecDeque<Bytes>>,
    /// Receiver i → A.
    back: Vec<VecDeque<Bytes>>,
    /// Delivered, not yet read, per receiver.
    unread: Vec<VecDeque<(SocketAddr, u16)>>,
    /// Ids delivered per receiver, and those it should get, in send order.
    got: Vec<Vec<u32>>,
    want: Vec<Vec<u32>>,
}

fn index_of(node: u32) -> usize {
    receivers()
        .iter()
        .position(|(s, _)| s.node == node)
        .expect("receiver node")
}

impl Sim {
    fn new() -> Sim {
        let mut a = GroupCore::new(sender(), cfg(T, 1, false)).expect("a");
        a.join(receivers()).expect("join a");
        let mut r = Vec::new();
        for (own, inst) in receivers() {
            let mut g = GroupCore::new(own, cfg(T, inst, false)).expect("r");
            let mut others = vec![(sender(), 1)];
            others.extend(receivers().into_iter().filter(|(s, _)| *s != own));
            g.join(others).expect("join r");
            r.push(g);
        }
        let mut s = Sim {
            a,
            r,
            uni: vec![VecDeque::new(); 3],
            bcl: vec![VecDeque::new(); 3],
            back: vec![VecDeque::new(); 3],
            unread: vec![VecDeque::new(); 3],
            got: vec![Vec::new(); 3],
            want: vec![Vec::new(); 3],
        };
        // Admission: every JOIN reaches its member (the receivers' JOINs among themselves
        // are answered directly; only the sender's traffic is under test).
        s.pump_a(false);
        for i in 0..3 {
            s.pump_r(i);
        }
        s.settle();
        s
    }

    /// Move the sender's transmits onto the links; `bclink` chooses the path of a free
    /// broadcast.
    fn pump_a(&mut self, bclink: bool) -> Vec<Transmit> {
        let t = transmits(&mut self.a);
        for x in &t {
            match x {
                Transmit::Node { node, msg } => self.uni[index_of(*node)].push_back(msg.clone()),
                Transmit::Members {
                    nodes, msg, forced, ..
                } => {
                    for n in nodes {
                        let i = index_of(*n);
                        if *forced == Some(Method::Replicast) || !bclink {
                            let c = replicast_copy(msg, *n).expect("copy");
                            self.uni[i].push_back(c.freeze());
                        } else {
                            self.bcl[i].push_back(msg.clone());
                        }
                    }
                }
            }
        }
        t
    }

    /// Receiver i's transmits: to the sender onto its back link; to the other receivers
    /// delivered at once.
    fn pump_r(&mut self, i: usize) {
        for t in transmits(&mut self.r[i]) {
            let Transmit::Node { node, msg } = t else {
                panic!("receivers only answer");
            };
            if node == GA {
                self.back[i].push_back(msg);
            } else {
                let j = index_of(node);
                self.r[j].handle_message(msg);
                self.pump_r(j);
            }
        }
        for e in events(&mut self.r[i]) {
            if let GroupEvent::Message(m) = e {
                let id = u32::from_be_bytes(m.payload()[..4].try_into().expect("id"));
                self.got[i].push(id);
                self.unread[i].push_back((m.from, m.blocks()));
            }
        }
    }

    /// Deliver everything of the admission phase.
    fn settle(&mut self) {
        for _ in 0..10 {
            for i in 0..3 {
                while let Some(m) = self.uni[i].pop_front() {
                    self.r[i].handle_message(m);
                    self.pump_r(i);
                }
                while let Some(m) = self.back[i].pop_front() {
                    self.a.handle_message(m);
                    self.pump_a(false);
                }
            }
        }
        let _ = self.a.poll_wakeup();
    }

    /// Try to send op `id`; true if it went.
    fn send(&mut self, id: u32, op: Op, size: usize, bclink: bool) -> bool {
        let mut p = vec![0u8; SIZES[size].max(4)];
        p[..4].copy_from_slice(&id.to_be_bytes());
        let dest = match op {
            Op::Bcast => GroupDest::Broadcast,
            Op::Ucast(i) => GroupDest::Member(receivers()[i].0),
            Op::Anycast2 => GroupDest::Anycast(2),
            Op::Mcast2 => GroupDest::Multicast(2),
            Op::Mcast3 => GroupDest::Multicast(3),
        };
        let r = self.a.send(dest, Bytes::from(p));
        let t = self.pump_a(bclink);
        match r {
            Ok(()) => {
                let data = t.iter().rev().find(|t| match t {
                    Transmit::Members { .. } => true,
                    Transmit::Node { msg, .. } => msg[0] >> 1 & 0xF < 4,
                });
                match data.expect("data message") {
                    Transmit::Node { node, .. } => self.want[index_of(*node)].push(id),
                    Transmit::Members { .. } => {
                        for (i, (_, inst)) in receivers().iter().enumerate() {
                            if !matches!(op, Op::Mcast2) || *inst == 2 {
                                self.want[i].push(id);
                            }
                        }
                    }
                }
                true
            }
            Err(GroupSendError::Congested(_)) => false,
            Err(e) => panic!("send {id}: {e:?}"),
        }
    }

    /// One action; false if it had nothing to do.
    fn act(&mut self, a: u8) -> bool {
        let i = (a % 3) as usize;
        match a / 3 {
            0 => match self.uni[i].pop_front() {
                Some(m) => {
                    self.r[i].handle_message(m);
                    self.pump_r(i);
                    true
                }
                None => false,
            },
            1 => match self.bcl[i].pop_front() {
                Some(m) => {
                    self.r[i].handle_data(m);
                    self.pump_r(i);
                    true
                }
                None => false,
            },
            2 => match self.back[i].pop_front() {
                Some(m) => {
                    self.a.handle_message(m);
                    self.pump_a(false);
                    true
                }
                None => false,
            },
            _ => match self.unread[i].pop_front() {
                Some((from, blocks)) => {
                    self.r[i].handle_read(from, blocks);
                    self.pump_r(i);
                    true
                }
                None => false,
            },
        }
    }

    fn check_windows(&self) {
        for g in &self.r {
            let adv = g.member(sender()).expect("sender").advertised;
            assert!(adv <= ADV_ACTIVE, "sender overran: advertised {adv}");
        }
    }
}

fn run_sim(ops: &[(Op, usize)], choices: &[u8]) -> Sim {
    let mut s = Sim::new();
    let mut next = 0usize;
    let try_send = |s: &mut Sim, bclink: bool, next: &mut usize| {
        if let Some(&(op, size)) = ops.get(*next) {
            if s.send(*next as u32, op, size, bclink) {
                *next += 1;
            }
        }
    };
    // Each choice: 0-3 send (odd: a free broadcast takes the broadcast link), 4-15 one of
    // the twelve link and read actions.
    for &c in choices {
        match c % 16 {
            k @ 0..=3 => try_send(&mut s, k % 2 == 1, &mut next),
            k => {
                s.act(k - 4);
            }
        }
        s.check_windows();
    }
    // Then drain: every action in turn until nothing is left.
    for round in 0.. {
        assert!(round < 100_000, "no progress: sent {next} of {}", ops.len());
        let before = next;
        try_send(&mut s, round % 2 == 0, &mut next);
        let mut busy = next != before;
        for a in 0..12 {
            while s.act(a) {
                busy = true;
                s.check_windows();
            }
        }
        if !busy && next == ops.len() {
            break;
        }
    }
    s
}

#[test]
fn any_link_interleaving_delivers_each_receiver_its_messages_in_send_order() {
    let strategy = (ops(), prop::collection::vec(any::<u8>(), 0..400));
    runner(96)
        .run(&strategy, |(ops, choices)| {
            let s = run_sim(&ops, &choices);
            for i in 0..3 {
                prop_assert_eq!(&s.got[i], &s.want[i], "receiver {}", i);
                let st = s.r[i].stats();
                prop_assert_eq!(st.stale + st.non_member + st.malformed, 0);
            }
            let total: usize = s.want.iter().map(|w| w.len()).sum();
            prop_assert!(total >= ops.len());
            Ok(())
        })
        .expect("property");
}

#[test]
fn fixed_scenario_with_big_messages_blocks_and_recovers() {
    // 30 broadcasts of 20 000 bytes (20 blocks): the idle window (65) blocks the sender
    // after three; reads and ADVs move it on; everything arrives in order.
    let ops: Vec<(Op, usize)> = (0..30).map(|_| (Op::Bcast, 4)).collect();
    let s = run_sim(&ops, &[]);
    for i in 0..3 {
        assert_eq!(s.got[i], (0..30).collect::<Vec<u32>>());
    }
}

/// A joined core with one admitted member (gb) and a valid message of each kind from it.
fn target() -> (GroupCore, Vec<Vec<u8>>) {
    let own = sa(GA, 1);
    let gb = sa(GB, 2);
    let g = joined(own, cfg(T, 1, true), &[(gb, 2)], 65);
    let mut msgs = Vec::new();
    for t in [
        GroupProtoType::Join,
        GroupProtoType::Leave,
        GroupProtoType::Adv,
        GroupProtoType::Ack,
        GroupProtoType::Reclaim,
        GroupProtoType::Remit,
    ] {
        msgs.push(proto(gb, own, t, 3, 40));
    }
    for t in [DataType::GrpBcast, DataType::GrpMcast, DataType::GrpUcast] {
        msgs.push(data(gb, own, t, T, 1, 0, true, b"payload").to_vec());
    }
    (g, msgs)
}

#[test]
fn random_bytes_are_counted_malformed_and_never_panic() {
    let strategy = prop::collection::vec(any::<u8>(), 0..200);
    runner(512)
        .run(&strategy, |bytes| {
            let (mut g, _) = target();
            let b = Bytes::from(bytes);
            g.handle_message(b.clone());
            g.handle_proto(&b);
            g.handle_data(b);
            let st = g.stats();
            prop_assert!(st.malformed + st.ignored + st.non_member + st.stale >= 2);
            Ok(())
        })
        .expect("property");
}

#[test]
fn mutated_messages_never_panic_and_the_core_keeps_working() {
    let strategy = (
        0usize..9,
        prop::collection::vec((0usize..60, any::<u8>()), 1..8),
    );
    runner(1024)
        .run(&strategy, |(which, flips)| {
            let (mut g, msgs) = target();
            let mut m = msgs[which].clone();
            for (at, v) in flips {
                if let Some(b) = m.get_mut(at) {
                    *b ^= v;
                }
            }
            g.handle_message(Bytes::from(m));
            transmits(&mut g);
            events(&mut g);
            // Still a working member socket.
            let r = g.send(GroupDest::Member(sa(GB, 2)), Bytes::from("x"));
            prop_assert!(!matches!(r, Err(GroupSendError::NotJoined(_))));
            Ok(())
        })
        .expect("property");
}

#[test]
fn hostile_protocol_and_data_sequences_stay_bounded() {
    let msg = (
        0u8..8,
        0u32..4,
        any::<u16>(),
        any::<u16>(),
        any::<bool>(),
        0usize..3,
    );
    let strategy = prop::collection::vec(msg, 1..300);
    runner(128)
        .run(&strategy, |seq| {
            let own = sa(GA, 1);
            let (mut g, _) = target();
            for (kind, who, hi, lo, flag, size) in seq {
                let from = sa(GB, 2 + who);
                let b = match kind {
                    0..=5 => {
                        let t = GroupProtoType::from_u8(kind).expect("type");
                        Bytes::from(proto(from, own, t, hi, lo))
                    }
                    6 => data(
                        from,
                        own,
                        DataType::GrpBcast,
                        T,
                        0,
                        hi,
                        flag,
                        &[0; 3][..size],
                    ),
                    _ => data(from, own, DataType::GrpUcast, T, 0, hi, flag, b"u"),
                };
                g.handle_message(b);
                if flag {
                    g.handle_member_published(from, u32::from(lo));
                }
                if lo % 7 == 0 {
                    g.handle_read(from, lo % 70);
                }
                if hi % 97 == 0 {
                    g.handle_node_down(GB);
                }
                let _ = g.send(GroupDest::Broadcast, Bytes::from("b"));
                let _ = g.send(GroupDest::Anycast(u32::from(lo)), Bytes::from("a"));
                transmits(&mut g);
                events(&mut g);
                for m in g.members() {
                    prop_assert!(m.deferred <= MAX_DEFERRED);
                }
                prop_assert!(g.member_count() <= 8);
            }
            Ok(())
        })
        .expect("property");
}

#[test]
fn kernel_header_checks_apply_to_group_messages() {
    // A frame whose size field exceeds the buffer, and a version-7 envelope.
    let (mut g, msgs) = target();
    let mut short = msgs[6].clone();
    short.truncate(40);
    g.handle_data(Bytes::from(short));
    let mut enc = msgs[0].clone();
    Header::new_unchecked(&mut enc[..]).set_word(0, (7 << 29) | (10 << 21) | 40);
    g.handle_proto(&enc);
    assert_eq!(g.stats().malformed, 2);
}
