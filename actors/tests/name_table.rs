//! Binding table (`tipc_actors::name_table`): the kernel's rules (name_table.c, spec §8) case by
//! case, then property tests against a naive model.

use proptest::prelude::*;
use std::collections::HashMap;
use tipc_actors::addr::{Scope, ServiceAddr, ServiceRange, SocketAddr};
use tipc_actors::name_table::{
    AnycastResult, BindingError, BindingTable, Publication, TableEvent, MAX_USER_PUBL,
};

const OWN: u32 = 0x0100_0001;
const N2: u32 = 0x0100_0002;
const N3: u32 = 0x0100_0003;

fn r(type_: u32, lower: u32, upper: u32) -> ServiceRange {
    ServiceRange::new(type_, lower, upper).unwrap()
}

fn p(range: ServiceRange, scope: Scope, node: u32, port: u32, key: u32) -> Publication {
    Publication {
        range,
        scope,
        node,
        port,
        key,
    }
}

fn sa(type_: u32, instance: u32) -> ServiceAddr {
    ServiceAddr { type_, instance }
}

fn found(node: u32, port: u32) -> AnycastResult {
    AnycastResult::Found(SocketAddr { node, port })
}

fn events(t: &mut BindingTable) -> Vec<TableEvent> {
    std::iter::from_fn(|| t.poll_event()).collect()
}

// ------------------------------------------------------------------ publish / withdraw

#[test]
fn publish_refuses_inverted_range() {
    let mut t = BindingTable::new(OWN);
    // A ServiceRange cannot hold lower > upper: the error arises where the range is built.
    let e = ServiceRange::new(1000, 5, 4)
        .map_err(BindingError::from)
        .and_then(|rg| t.publish(p(rg, Scope::Cluster, OWN, 1, 2)));
    assert_eq!(e, Err(BindingError::InvalidRange { lower: 5, upper: 4 }));
    assert!(t.is_empty());
    assert_eq!(t.poll_event(), None);
}

#[test]
fn publish_refuses_duplicate_key_and_node_even_with_other_port() {
    let mut t = BindingTable::new(OWN);
    t.publish(p(r(1000, 1, 1), Scope::Cluster, N2, 7, 8))
        .unwrap();
    assert_eq!(
        t.publish(p(r(1000, 1, 1), Scope::Cluster, N2, 7, 8)),
        Err(BindingError::Duplicate)
    );
    // The kernel's duplicate test compares key and node, not the port.
    assert_eq!(
        t.publish(p(r(1000, 1, 1), Scope::Cluster, N2, 9, 8)),
        Err(BindingError::Duplicate)
    );
    assert_eq!(t.len(), 1);
}

#[test]
fn publish_accepts_same_key_from_other_node_or_other_range() {
    let mut t = BindingTable::new(OWN);
    t.publish(p(r(1000, 1, 1), Scope::Cluster, N2, 7, 8))
        .unwrap();
    t.publish(p(r(1000, 1, 1), Scope::Cluster, N3, 7, 8))
        .unwrap();
    t.publish(p(r(1000, 1, 2), Scope::Cluster, N2, 7, 8))
        .unwrap();
    assert_eq!(t.len(), 3);
}

#[test]
fn withdraw_requires_exact_range_node_and_key() {
    let mut t = BindingTable::new(OWN);
    let a = p(r(1000, 1, 5), Scope::Cluster, N2, 7, 8);
    t.publish(a).unwrap();
    assert_eq!(t.withdraw(r(1000, 1, 4), N2, 7, 8), None);
    assert_eq!(t.withdraw(r(1000, 1, 5), N3, 7, 8), None);
    assert_eq!(t.withdraw(r(1000, 1, 5), N2, 7, 9), None);
    assert_eq!(t.withdraw(r(1001, 1, 5), N2, 7, 8), None);
    assert_eq!(t.withdraw(r(1000, 1, 5), N2, 7, 8), Some(a));
    assert!(t.is_empty());
}

#[test]
fn events_carry_first_and_last_of_range_object() {
    let mut t = BindingTable::new(OWN);
    let a = p(r(1000, 1, 5), Scope::Cluster, OWN, 1, 2);
    let b = p(r(1000, 1, 5), Scope::Cluster, N2, 3, 4);
    let c = p(r(1000, 1, 6), Scope::Cluster, N2, 3, 5);
    t.publish(a).unwrap();
    t.publish(b).unwrap();
    t.publish(c).unwrap();
    t.withdraw(a.range, a.node, a.port, a.key).unwrap();
    t.withdraw(b.range, b.node, b.port, b.key).unwrap();
    assert_eq!(
        events(&mut t),
        vec![
            TableEvent::Published {
                publ: a,
                first: true
            },
            TableEvent::Published {
                publ: b,
                first: false
            },
            TableEvent::Published {
                publ: c,
                first: true
            },
            TableEvent::Withdrawn {
                publ: a,
                last: false
            },
            TableEvent::Withdrawn {
                publ: b,
                last: true
            },
        ]
    );
}

#[test]
fn purge_node_removes_only_that_nodes_bindings_with_events() {
    let mut t = BindingTable::new(OWN);
    let a = p(r(1000, 1, 1), Scope::Cluster, N2, 1, 1);
    let b = p(r(1000, 1, 1), Scope::Cluster, N3, 2, 2);
    let c = p(r(2000, 0, 9), Scope::Cluster, N2, 3, 3);
    for x in [a, b, c] {
        t.publish(x).unwrap();
    }
    events(&mut t);
    assert_eq!(t.purge_node(N2), vec![a, c]);
    assert_eq!(t.iter().copied().collect::<Vec<_>>(), vec![b]);
    assert_eq!(
        events(&mut t),
        vec![
            TableEvent::Withdrawn {
                publ: a,
                last: false
            },
            TableEvent::Withdrawn {
                publ: c,
                last: true
            },
        ]
    );
    assert!(t.purge_node(N2).is_empty());
}

#[test]
fn limit_refuses_beyond_max_user_publications_per_node() {
    let mut t = BindingTable::new(OWN);
    for i in 0..MAX_USER_PUBL {
        t.publish(p(r(100, i, i), Scope::Node, OWN, 1, i)).unwrap();
    }
    assert_eq!(
        t.publish(p(r(100, 70000, 70000), Scope::Node, OWN, 1, 70000)),
        Err(BindingError::LimitReached)
    );
    // Types 0..2 are not counted, nor are other nodes' bindings.
    t.publish(Publication::node_state(OWN)).unwrap();
    t.publish(Publication::link_state(OWN, N2, 0x10000))
        .unwrap();
    t.publish(p(r(100, 1, 1), Scope::Cluster, N2, 1, 1))
        .unwrap();
    // A withdrawal frees a slot.
    t.withdraw(r(100, 0, 0), OWN, 1, 0).unwrap();
    t.publish(p(r(100, 70000, 70000), Scope::Node, OWN, 1, 70000))
        .unwrap();
}

// ------------------------------------------------------------------ anycast

#[test]
fn anycast_domain_zero_round_robins_without_local_preference() {
    let mut t = BindingTable::new(OWN);
    t.publish(p(r(1000, 0, 10), Scope::Cluster, OWN, 1, 1))
        .unwrap();
    t.publish(p(r(1000, 0, 10), Scope::Cluster, N2, 2, 2))
        .unwrap();
    // Newest publication at the head of `all`: picked first, then the local one.
    assert_eq!(t.lookup_anycast(sa(1000, 5), 0), found(N2, 2));
    assert_eq!(t.lookup_anycast(sa(1000, 5), 0), found(OWN, 1));
    assert_eq!(t.lookup_anycast(sa(1000, 5), 0), found(N2, 2));
}

#[test]
fn anycast_takes_first_range_in_kernel_tree_order() {
    let mut t = BindingTable::new(OWN);
    t.publish(p(r(1000, 0, 10), Scope::Cluster, N2, 1, 1))
        .unwrap();
    t.publish(p(r(1000, 2, 3), Scope::Cluster, N2, 2, 2))
        .unwrap();
    // Lowest `lower` first.
    assert_eq!(t.lookup_anycast(sa(1000, 2), 0), found(N2, 1));
    // Among equal lowers the most recently created range comes first.
    t.publish(p(r(1000, 0, 5), Scope::Cluster, N3, 3, 3))
        .unwrap();
    assert_eq!(t.lookup_anycast(sa(1000, 2), 0), found(N3, 3));
    assert_eq!(t.lookup_anycast(sa(1000, 2), 0), found(N3, 3));
    // Outside {0,5}: the first containing range is {0,10}.
    assert_eq!(t.lookup_anycast(sa(1000, 7), 0), found(N2, 1));
}

#[test]
fn anycast_own_domain_uses_local_list_of_first_range_with_local_bindings() {
    let mut t = BindingTable::new(OWN);
    t.publish(p(r(1000, 0, 10), Scope::Cluster, N2, 1, 1))
        .unwrap();
    t.publish(p(r(1000, 3, 10), Scope::Node, OWN, 2, 2))
        .unwrap();
    t.publish(p(r(1000, 3, 10), Scope::Cluster, OWN, 3, 3))
        .unwrap();
    assert_eq!(t.lookup_anycast(sa(1000, 5), OWN), found(OWN, 3));
    assert_eq!(t.lookup_anycast(sa(1000, 5), OWN), found(OWN, 2));
    assert_eq!(t.lookup_anycast(sa(1000, 5), OWN), found(OWN, 3));
    assert_eq!(t.lookup_anycast(sa(1000, 1), OWN), AnycastResult::NotFound);
    // The local rotation did not touch `all` of {3,10}... and domain 0 starts at {0,10}.
    assert_eq!(t.lookup_anycast(sa(1000, 5), 0), found(N2, 1));
}

#[test]
fn anycast_other_domain_is_deferred_and_unknown_is_not_found() {
    let mut t = BindingTable::new(OWN);
    t.publish(p(r(1000, 0, 10), Scope::Cluster, N2, 1, 1))
        .unwrap();
    assert_eq!(
        t.lookup_anycast(sa(1000, 5), N3),
        AnycastResult::Deferred(N3)
    );
    assert_eq!(t.lookup_anycast(sa(1000, 11), 0), AnycastResult::NotFound);
    assert_eq!(t.lookup_anycast(sa(999, 5), 0), AnycastResult::NotFound);
}

#[test]
fn secondary_lookup_node_scope_is_local_only_cluster_scope_may_forward() {
    let mut t = BindingTable::new(OWN);
    t.publish(p(r(1000, 0, 10), Scope::Cluster, N2, 1, 1))
        .unwrap();
    assert_eq!(t.lookup_secondary(sa(1000, 5), Scope::Node), None);
    assert_eq!(
        t.lookup_secondary(sa(1000, 5), Scope::Cluster),
        Some(SocketAddr { node: N2, port: 1 })
    );
    t.publish(p(r(1000, 0, 10), Scope::Node, OWN, 4, 4))
        .unwrap();
    assert_eq!(
        t.lookup_secondary(sa(1000, 5), Scope::Node),
        Some(SocketAddr { node: OWN, port: 4 })
    );
}

// ------------------------------------------------------------------ multicast

#[test]
fn mcast_nodes_any_scope_overlapping_deduplicated() {
    let mut t = BindingTable::new(OWN);
    t.publish(p(r(1000, 0, 3), Scope::Node, OWN, 1, 1)).unwrap();
    t.publish(p(r(1000, 5, 9), Scope::Cluster, N3, 1, 1))
        .unwrap();
    t.publish(p(r(1000, 6, 6), Scope::Cluster, N3, 2, 2))
        .unwrap();
    t.publish(p(r(1000, 10, 12), Scope::Cluster, N2, 1, 1))
        .unwrap();
    assert_eq!(t.lookup_mcast_nodes(r(1000, 3, 6), false), vec![OWN, N3]);
    assert_eq!(t.lookup_mcast_nodes(r(1000, 3, 6), true), vec![N3]);
    assert_eq!(t.lookup_mcast_nodes(r(1000, 13, 20), false), vec![]);
    assert_eq!(
        t.lookup_mcast_nodes(r(1000, 0, u32::MAX), false),
        vec![OWN, N2, N3]
    );
}

#[test]
fn mcast_local_ports_scope_rules_one_per_port() {
    let mut t = BindingTable::new(OWN);
    t.publish(p(r(1000, 0, 3), Scope::Node, OWN, 1, 1)).unwrap();
    t.publish(p(r(1000, 2, 5), Scope::Cluster, OWN, 2, 2))
        .unwrap();
    t.publish(p(r(1000, 4, 5), Scope::Cluster, OWN, 2, 3))
        .unwrap();
    t.publish(p(r(1000, 0, 9), Scope::Cluster, N2, 9, 9))
        .unwrap();
    let mut from_remote = t.lookup_mcast_local_ports(r(1000, 0, 9), false);
    from_remote.sort();
    assert_eq!(from_remote, vec![2]);
    let mut from_local = t.lookup_mcast_local_ports(r(1000, 0, 9), true);
    from_local.sort();
    assert_eq!(from_local, vec![1, 2]);
    assert_eq!(t.lookup_mcast_local_ports(r(1000, 6, 9), true), vec![]);
}

// ------------------------------------------------------------------ iteration, snapshots

#[test]
fn iter_orders_by_type_then_tree_then_all_list() {
    let mut t = BindingTable::new(OWN);
    let a = p(r(2000, 1, 1), Scope::Cluster, N2, 1, 1);
    let b = p(r(1000, 5, 5), Scope::Cluster, N2, 2, 2);
    let c = p(r(1000, 1, 9), Scope::Cluster, N2, 3, 3);
    let d = p(r(1000, 1, 9), Scope::Cluster, N3, 4, 4);
    for x in [a, b, c, d] {
        t.publish(x).unwrap();
    }
    assert_eq!(t.iter().copied().collect::<Vec<_>>(), vec![d, c, b, a]);
    assert_eq!(t.bindings_of_node(N2), vec![c, b, a]);
}

#[test]
fn subscription_snapshot_reports_oldest_per_range_or_all_ports() {
    let mut t = BindingTable::new(OWN);
    let a = p(r(1000, 1, 1), Scope::Cluster, N2, 1, 1);
    let b = p(r(1000, 1, 1), Scope::Cluster, N3, 2, 2);
    let c = p(r(1000, 0, 9), Scope::Cluster, N2, 3, 3);
    for x in [a, b, c] {
        t.publish(x).unwrap();
    }
    t.lookup_anycast(sa(1000, 1), 0);
    assert_eq!(t.subscription_snapshot(r(1000, 1, 1), false), vec![a, c]);
    assert_eq!(t.subscription_snapshot(r(1000, 1, 1), true), vec![a, b, c]);
    assert_eq!(t.subscription_snapshot(r(1000, 10, 11), true), vec![]);
}

// ------------------------------------------------------------------ model

/// The documented rules on flat lists: `all` and `local` hold every publication in list order
/// (new ones at the front, a picked one moved to the back); a range object's list is the
/// subsequence with its exact range. Range objects are ordered by (lower, newest first).
#[derive(Default)]
struct Model {
    all: Vec<Publication>,
    local: Vec<Publication>,
    created: HashMap<ServiceRange, u64>,
    next: u64,
    events: Vec<TableEvent>,
}

impl Model {
    fn ranges_of(&self, type_: u32) -> Vec<ServiceRange> {
        let mut v: Vec<_> = self
            .created
            .iter()
            .filter(|(r, _)| r.type_() == type_)
            .map(|(r, c)| (r.lower(), std::cmp::Reverse(*c), *r))
            .collect();
        v.sort();
        v.into_iter().map(|x| x.2).collect()
    }

    fn show(&self) -> Vec<Publication> {
        let mut types: Vec<u32> = self.created.keys().map(|r| r.type_()).collect();
        types.sort();
        types.dedup();
        let mut out = Vec::new();
        for ty in types {
            for rg in self.ranges_of(ty) {
                out.extend(self.all.iter().filter(|p| p.range == rg));
            }
        }
        out
    }

    fn publish(&mut self, x: Publication) -> Result<(), BindingError> {
        if self
            .all
            .iter()
            .any(|q| q.range == x.range && q.key == x.key && q.node == x.node)
        {
            return Err(BindingError::Duplicate);
        }
        let first = !self.created.contains_key(&x.range);
        if first {
            self.created.insert(x.range, self.next);
            self.next += 1;
        }
        self.all.insert(0, x);
        if x.node == OWN {
            self.local.insert(0, x);
        }
        self.events.push(TableEvent::Published { publ: x, first });
        Ok(())
    }

    fn withdraw(&mut self, rg: ServiceRange, node: u32, key: u32) -> Option<Publication> {
        let m = |q: &Publication| q.range == rg && q.node == node && q.key == key;
        let i = self.all.iter().position(m)?;
        let x = self.all.remove(i);
        self.local.retain(|q| !m(q));
        let last = !self.all.iter().any(|q| q.range == rg);
        if last {
            self.created.remove(&rg);
        }
        self.events.push(TableEvent::Withdrawn { publ: x, last });
        Some(x)
    }

    fn purge(&mut self, node: u32) -> Vec<Publication> {
        let v: Vec<_> = self.show().into_iter().filter(|q| q.node == node).collect();
        for q in &v {
            self.withdraw(q.range, q.node, q.key);
        }
        v
    }

    fn anycast(&mut self, a: ServiceAddr, domain: u32) -> AnycastResult {
        if domain != 0 && domain != OWN {
            return AnycastResult::Deferred(domain);
        }
        for rg in self.ranges_of(a.type_) {
            if !(rg.lower() <= a.instance && a.instance <= rg.upper()) {
                continue;
            }
            let list = if domain == OWN {
                &mut self.local
            } else {
                &mut self.all
            };
            if let Some(i) = list.iter().position(|q| q.range == rg) {
                let x = list.remove(i);
                list.push(x);
                return AnycastResult::Found(x.socket());
            }
        }
        AnycastResult::NotFound
    }

    fn overlaps(q: &Publication, rg: ServiceRange) -> bool {
        q.range.type_() == rg.type_()
            && q.range.lower() <= rg.upper()
            && rg.lower() <= q.range.upper()
    }

    fn mcast_nodes(&self, rg: ServiceRange, excl: bool) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .all
            .iter()
            .filter(|q| Self::overlaps(q, rg) && !(excl && q.node == OWN))
            .map(|q| q.node)
            .collect();
        v.sort();
        v.dedup();
        v
    }

    fn mcast_ports(&self, rg: ServiceRange, from_local: bool) -> Vec<u32> {
        let mut v: Vec<u32> = self
            .local
            .iter()
            .filter(|q| Self::overlaps(q, rg) && (from_local || q.scope == Scope::Cluster))
            .map(|q| q.port)
            .collect();
        v.sort();
        v.dedup();
        v
    }
}

#[derive(Debug, Clone)]
enum Op {
    Publish(Publication),
    Withdraw(ServiceRange, u32, u32),
    Purge(u32),
    Anycast(ServiceAddr, u32),
    McastNodes(ServiceRange, bool),
    McastPorts(ServiceRange, bool),
}

fn node() -> impl Strategy<Value = u32> {
    prop_oneof![Just(OWN), Just(N2), Just(N3)]
}

fn range() -> impl Strategy<Value = ServiceRange> {
    // Only lower <= upper: a ServiceRange cannot hold anything else.
    (1000u32..1003, 0u32..6, 0u32..6).prop_map(|(t, a, b)| r(t, a.min(b), a.max(b)))
}

fn op() -> impl Strategy<Value = Op> {
    let scope = prop_oneof![Just(Scope::Cluster), Just(Scope::Node)];
    prop_oneof![
        6 => (range(), scope, node(), 1u32..4, 1u32..5)
            .prop_map(|(rg, s, n, port, key)| Op::Publish(p(rg, s, n, port, key))),
        3 => (range(), node(), 1u32..5).prop_map(|(rg, n, k)| Op::Withdraw(rg, n, k)),
        1 => node().prop_map(Op::Purge),
        4 => (1000u32..1003, 0u32..6, prop_oneof![Just(0), Just(OWN), Just(N2)])
            .prop_map(|(t, i, d)| Op::Anycast(sa(t, i), d)),
        1 => (range(), any::<bool>()).prop_map(|(rg, e)| Op::McastNodes(rg, e)),
        1 => (range(), any::<bool>()).prop_map(|(rg, e)| Op::McastPorts(rg, e)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn table_matches_naive_model_random_ops(ops in prop::collection::vec(op(), 1..120)) {
        let mut t = BindingTable::new(OWN);
        let mut m = Model::default();
        for o in ops {
            match o {
                Op::Publish(x) => prop_assert_eq!(t.publish(x), m.publish(x)),
                Op::Withdraw(rg, n, k) => prop_assert_eq!(t.withdraw(rg, n, 0, k), m.withdraw(rg, n, k)),
                Op::Purge(n) => prop_assert_eq!(t.purge_node(n), m.purge(n)),
                Op::Anycast(a, d) => prop_assert_eq!(t.lookup_anycast(a, d), m.anycast(a, d)),
                Op::McastNodes(rg, e) => prop_assert_eq!(t.lookup_mcast_nodes(rg, e), m.mcast_nodes(rg, e)),
                Op::McastPorts(rg, fl) => {
                    let mut v = t.lookup_mcast_local_ports(rg, fl);
                    let n = v.len();
                    v.sort();
                    v.dedup();
                    prop_assert_eq!(v.len(), n, "ports not deduplicated");
                    prop_assert_eq!(v, m.mcast_ports(rg, fl));
                }
            }
            prop_assert_eq!(t.iter().copied().collect::<Vec<_>>(), m.show());
            prop_assert_eq!(t.len(), m.all.len());
            let ev: Vec<_> = std::iter::from_fn(|| t.poll_event()).collect();
            prop_assert_eq!(ev, std::mem::take(&mut m.events));
        }
    }

    #[test]
    fn anycast_round_robin_is_fair_over_three_nodes(
        nodes in prop::collection::vec(node(), 1..20),
        k in 1usize..8,
        instance in 0u32..=100,
    ) {
        let mut t = BindingTable::new(OWN);
        for (i, n) in nodes.iter().enumerate() {
            t.publish(p(r(4242, 0, 100), Scope::Cluster, *n, 100 + i as u32, i as u32)).unwrap();
        }
        let mut hits: HashMap<SocketAddr, usize> = HashMap::new();
        for _ in 0..nodes.len() * k {
            match t.lookup_anycast(sa(4242, instance), 0) {
                AnycastResult::Found(s) => *hits.entry(s).or_default() += 1,
                other => prop_assert!(false, "lookup failed: {:?}", other),
            }
        }
        prop_assert_eq!(hits.len(), nodes.len());
        prop_assert!(hits.values().all(|&h| h == k), "{:?}", hits);
    }
}
