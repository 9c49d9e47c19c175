//! The topology core against a naive model, for random subscribe / publish / withdraw / cancel /
//! client-gone / clock sequences (spec §8.4).
//!
//! Two checks after every step:
//! 1. the exact event sequence equals the model's (a brute-force restatement of the kernel's
//!    rules: newest subscription first, initial events oldest first, timeouts in deadline order);
//! 2. independent of ordering: replaying each subscription's events reproduces what it tracks:
//!    PORTS, the multiset of overlapping publications; SERVICE, the set of non-empty overlapping
//!    range objects.

use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tipc_actors::addr::ServiceRange;
use tipc_actors::topsrv::{
    ClientId, EventKind, Filter, PubInfo, SubError, SubId, Subscription, Topology,
};

#[derive(Debug, Clone)]
enum Op {
    Sub {
        client: u64,
        range: (u32, u32, u32),
        /// 0 PORTS, 1 SERVICE, 2 both (invalid), 3 neither.
        kind: u8,
        timeout_ms: Option<u16>,
        no_status: bool,
    },
    Pub {
        range: (u32, u32, u32),
        node: u32,
        port: u32,
    },
    Withdraw {
        idx: usize,
    },
    Cancel {
        idx: usize,
        wrong_client: bool,
    },
    Gone {
        client: u64,
    },
    Advance {
        ms: u16,
    },
}

fn range() -> impl Strategy<Value = (u32, u32, u32)> {
    (0u32..2, 0u32..12, 0u32..12)
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..3, range(), 0u8..4, prop::option::of(0u16..300), prop::bool::weighted(0.1))
            .prop_map(|(client, range, kind, timeout_ms, no_status)| Op::Sub {
                client,
                range,
                kind,
                timeout_ms,
                no_status
            }),
        5 => (range(), 1u32..4, 1u32..4).prop_map(|((t, a, b), node, port)| Op::Pub {
            range: (t, a.min(b), a.max(b)),
            node,
            port
        }),
        3 => any::<usize>().prop_map(|idx| Op::Withdraw { idx }),
        1 => (any::<usize>(), prop::bool::weighted(0.2))
            .prop_map(|(idx, wrong_client)| Op::Cancel { idx, wrong_client }),
        1 => (0u64..3).prop_map(|client| Op::Gone { client }),
        2 => (0u16..200).prop_map(|ms| Op::Advance { ms }),
    ]
}

/// A valid range (publications are generated with `lower <= upper`).
fn sr((type_, lower, upper): (u32, u32, u32)) -> ServiceRange {
    ServiceRange::new(type_, lower, upper).expect("lower <= upper")
}

/// Overlap stated differently from the implementation: not disjoint.
fn overlap(sub: &ServiceRange, p: &ServiceRange) -> bool {
    sub.type_() == p.type_() && !(p.upper() < sub.lower() || p.lower() > sub.upper())
}

#[derive(Debug, Clone)]
struct MSub {
    id: SubId,
    client: ClientId,
    sub: Subscription,
    deadline: Option<Instant>,
}

/// (client, sub id, kind, found_lower, found_upper, node, port)
type Ev = (ClientId, SubId, EventKind, u32, u32, u32, u32);

#[derive(Default)]
struct Model {
    pubs: Vec<PubInfo>,
    subs: Vec<MSub>,
}

impl Model {
    fn expire(&mut self, now: Instant, out: &mut Vec<Ev>) {
        let mut due: Vec<MSub> = self
            .subs
            .iter()
            .filter(|s| s.deadline.is_some_and(|d| d <= now))
            .cloned()
            .collect();
        due.sort_by_key(|s| (s.deadline, s.id));
        for s in due {
            out.push((
                s.client,
                s.id,
                EventKind::Timeout,
                s.sub.range.lower(),
                s.sub.range.upper(),
                0,
                0,
            ));
            self.subs.retain(|x| x.id != s.id);
        }
    }

    fn report(&self, p: &PubInfo, kind: EventKind, edge: bool, out: &mut Vec<Ev>) {
        for s in self.subs.iter().rev() {
            if overlap(&s.sub.range, &p.range) && (s.sub.filter.ports || edge) {
                out.push((
                    s.client,
                    s.id,
                    kind,
                    p.range.lower(),
                    p.range.upper(),
                    p.node,
                    p.port,
                ));
            }
        }
    }
}

/// What one subscription's events say it tracks.
#[derive(Default, Debug)]
struct View {
    ports: Vec<(ServiceRange, u32, u32)>,
    ranges: BTreeSet<(u32, u32)>,
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut now = Instant::now();
    let mut t = Topology::new();
    let mut m = Model::default();
    let mut views: BTreeMap<SubId, View> = BTreeMap::new();

    for op in ops {
        let mut want: Vec<Ev> = Vec::new();
        match op {
            Op::Sub {
                client,
                range,
                kind,
                timeout_ms,
                no_status,
            } => {
                let client = ClientId(client);
                m.expire(now, &mut want);
                // A ServiceRange cannot hold lower > upper: that error arises where the range
                // is built, before the subscription exists (so before the filter check).
                match ServiceRange::new(range.0, range.1, range.2) {
                    Err(e) => {
                        prop_assert_eq!(SubError::from(e), SubError::InvalidRange);
                        // What the refused subscribe's expiry did.
                        t.handle_timeout(now);
                    }
                    Ok(rg) => {
                        let sub = Subscription {
                            range: rg,
                            timeout: timeout_ms.map(|ms| Duration::from_millis(u64::from(ms))),
                            filter: Filter {
                                ports: kind == 0 || kind == 2,
                                service: kind == 1 || kind == 2,
                                no_status,
                                other: 0,
                            },
                            handle: [kind; 8],
                        };
                        let got = t.subscribe(now, sub, client, m.pubs.iter());
                        if kind == 2 {
                            prop_assert_eq!(got, Err(SubError::PortsAndService));
                        } else {
                            let id = got.map_err(|e| TestCaseError::fail(format!("{e}")))?;
                            prop_assert!(m.subs.iter().all(|s| s.id < id), "ids increase");
                            if !no_status {
                                for (i, p) in m.pubs.iter().enumerate() {
                                    let oldest = !m.pubs[..i].iter().any(|q| q.range == p.range);
                                    if overlap(&sub.range, &p.range) && (sub.filter.ports || oldest)
                                    {
                                        want.push((
                                            client,
                                            id,
                                            EventKind::Published,
                                            p.range.lower(),
                                            p.range.upper(),
                                            p.node,
                                            p.port,
                                        ));
                                    }
                                }
                            }
                            m.subs.push(MSub {
                                id,
                                client,
                                sub,
                                deadline: sub.timeout.map(|d| now + d),
                            });
                            if !no_status {
                                views.insert(id, View::default());
                            }
                        }
                    }
                }
            }
            Op::Pub { range, node, port } => {
                let p = PubInfo {
                    range: sr(range),
                    node,
                    port,
                    first_of_range: !m.pubs.iter().any(|q| q.range == sr(range)),
                };
                if m.pubs
                    .iter()
                    .any(|q| q.range == p.range && q.node == node && q.port == port)
                {
                    continue;
                }
                m.expire(now, &mut want);
                m.pubs.push(p);
                m.report(&p, EventKind::Published, p.first_of_range, &mut want);
                t.handle_published(now, &p);
            }
            Op::Withdraw { idx } => {
                if m.pubs.is_empty() {
                    continue;
                }
                let mut p = m.pubs.remove(idx % m.pubs.len());
                p.first_of_range = !m.pubs.iter().any(|q| q.range == p.range);
                m.expire(now, &mut want);
                m.report(&p, EventKind::Withdrawn, p.first_of_range, &mut want);
                t.handle_withdrawn(now, &p);
            }
            Op::Cancel { idx, wrong_client } => {
                if m.subs.is_empty() {
                    continue;
                }
                let s = m.subs[idx % m.subs.len()].clone();
                if wrong_client {
                    prop_assert!(!t.cancel(ClientId(s.client.0 + 100), s.id));
                } else {
                    prop_assert!(t.cancel(s.client, s.id));
                    m.subs.retain(|x| x.id != s.id);
                }
            }
            Op::Gone { client } => {
                let client = ClientId(client);
                let n = m.subs.iter().filter(|s| s.client == client).count();
                m.subs.retain(|s| s.client != client);
                prop_assert_eq!(t.client_gone(client), n);
            }
            Op::Advance { ms } => {
                now += Duration::from_millis(u64::from(ms));
                m.expire(now, &mut want);
                t.handle_timeout(now);
            }
        }

        // 1. Exact sequence.
        let got: Vec<_> = std::iter::from_fn(|| t.poll_event()).collect();
        let brief: Vec<Ev> = got
            .iter()
            .map(|(c, e)| {
                (
                    *c,
                    e.sub_id,
                    e.kind,
                    e.found_lower,
                    e.found_upper,
                    e.port.node,
                    e.port.port,
                )
            })
            .collect();
        prop_assert_eq!(&brief, &want);
        for (c, e) in &got {
            let owner = m.subs.iter().find(|s| s.id == e.sub_id);
            if e.kind != EventKind::Timeout {
                prop_assert_eq!(owner.map(|s| (s.client, s.sub)), Some((*c, e.sub)));
            }
        }

        // 2. Replayed views equal the truth.
        for (_, e) in &got {
            let Some(v) = views.get_mut(&e.sub_id) else {
                continue;
            };
            let r = (e.found_lower, e.found_upper);
            let item = (
                ServiceRange::new(e.sub.range.type_(), r.0, r.1).unwrap(),
                e.port.node,
                e.port.port,
            );
            match (e.kind, e.sub.filter.ports) {
                (EventKind::Published, true) => v.ports.push(item),
                (EventKind::Withdrawn, true) => {
                    let pos = v.ports.iter().position(|x| *x == item);
                    prop_assert!(pos.is_some(), "withdrawn unseen {:?}", item);
                    if let Some(pos) = pos {
                        v.ports.remove(pos);
                    }
                }
                (EventKind::Published, false) => {
                    prop_assert!(v.ranges.insert(r), "range up twice {:?}", r)
                }
                (EventKind::Withdrawn, false) => {
                    prop_assert!(v.ranges.remove(&r), "range down unseen {:?}", r)
                }
                (EventKind::Timeout, _) => {}
            }
        }
        views.retain(|id, _| m.subs.iter().any(|s| s.id == *id));
        for s in &m.subs {
            let Some(v) = views.get(&s.id) else {
                continue;
            };
            let matching = m.pubs.iter().filter(|p| overlap(&s.sub.range, &p.range));
            if s.sub.filter.ports {
                let mut truth: Vec<_> = matching.map(|p| (p.range, p.node, p.port)).collect();
                let mut seen = v.ports.clone();
                truth.sort();
                seen.sort();
                prop_assert_eq!(seen, truth);
            } else {
                let truth: BTreeSet<_> = matching
                    .map(|p| (p.range.lower(), p.range.upper()))
                    .collect();
                prop_assert_eq!(&v.ranges, &truth);
            }
        }

        // Timer and size bookkeeping.
        prop_assert_eq!(t.len(), m.subs.len());
        prop_assert_eq!(
            t.poll_timeout(),
            m.subs.iter().filter_map(|s| s.deadline).min()
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
    #[test]
    fn topology_matches_naive_model_for_random_sequences(ops in prop::collection::vec(op(), 1..80)) {
        run(ops)?;
    }
}
