//! Topology core rules (spec §8.4): initial events, overlap, found values, PORTS vs SERVICE,
//! timeouts, cancel, client_gone, validity and limits, node/link state publications.

use std::time::{Duration, Instant};
use tipc_actors::addr::{ServiceRange, SocketAddr, LINK_STATE, NODE_STATE};
use tipc_actors::topsrv::{
    ClientId, EventKind, Filter, PubInfo, SubError, SubId, Subscription, TopoEvent, Topology,
    MAX_SUBSCRIPTIONS,
};

const C1: ClientId = ClientId(1);
const C2: ClientId = ClientId(2);

fn r(type_: u32, lower: u32, upper: u32) -> ServiceRange {
    ServiceRange::new(type_, lower, upper).unwrap()
}

fn p(type_: u32, lower: u32, upper: u32, node: u32, port: u32, first: bool) -> PubInfo {
    PubInfo {
        range: r(type_, lower, upper),
        node,
        port,
        first_of_range: first,
    }
}

fn drain(t: &mut Topology) -> Vec<(ClientId, TopoEvent)> {
    std::iter::from_fn(|| t.poll_event()).collect()
}

/// (kind, found_lower, found_upper, port)
fn brief(evs: &[(ClientId, TopoEvent)]) -> Vec<(EventKind, u32, u32, u32)> {
    evs.iter()
        .map(|(_, e)| (e.kind, e.found_lower, e.found_upper, e.port.port))
        .collect()
}

fn none() -> std::iter::Empty<PubInfo> {
    std::iter::empty()
}

#[test]
fn topology_initial_events_ports_reports_every_publication_oldest_first() {
    let now = Instant::now();
    let mut t = Topology::new();
    // Oldest first: two in range object [0,9], one in [5,5], one not overlapping, one other type.
    let existing = [
        p(100, 0, 9, 1, 11, true),
        p(100, 5, 5, 2, 12, true),
        p(100, 0, 9, 3, 13, false),
        p(100, 50, 60, 1, 14, true),
        p(101, 0, 9, 1, 15, true),
    ];
    let id = t
        .subscribe(now, Subscription::ports(r(100, 4, 20)), C1, existing)
        .unwrap();
    let evs = drain(&mut t);
    assert_eq!(
        brief(&evs),
        vec![
            (EventKind::Published, 0, 9, 11),
            (EventKind::Published, 5, 5, 12),
            (EventKind::Published, 0, 9, 13),
        ]
    );
    assert!(evs.iter().all(|(c, e)| *c == C1 && e.sub_id == id));
    assert_eq!(evs[2].1.port, SocketAddr { node: 3, port: 13 });
}

#[test]
fn topology_initial_events_service_reports_oldest_of_each_range_object() {
    let now = Instant::now();
    let mut t = Topology::new();
    // first_of_range flags deliberately wrong: they are not read for existing publications.
    let existing = [
        p(100, 5, 5, 2, 21, false),
        p(100, 0, 9, 1, 22, false),
        p(100, 5, 5, 3, 23, true),
        p(100, 0, 9, 3, 24, true),
    ];
    t.subscribe(now, Subscription::service(r(100, 0, 100)), C1, existing)
        .unwrap();
    assert_eq!(
        brief(&drain(&mut t)),
        vec![
            (EventKind::Published, 5, 5, 21),
            (EventKind::Published, 0, 9, 22)
        ]
    );
}

#[test]
fn topology_initial_events_suppressed_with_no_status() {
    let now = Instant::now();
    let mut t = Topology::new();
    let mut sub = Subscription::ports(r(100, 0, 9));
    sub.filter.no_status = true;
    t.subscribe(now, sub, C1, [p(100, 0, 9, 1, 1, true)])
        .unwrap();
    assert!(drain(&mut t).is_empty());
    // Later changes are still reported.
    t.handle_published(now, &p(100, 3, 3, 1, 2, true));
    assert_eq!(drain(&mut t).len(), 1);
}

#[test]
fn topology_overlap_matches_edges_and_rejects_neighbours() {
    let now = Instant::now();
    let mut t = Topology::new();
    t.subscribe(now, Subscription::ports(r(7, 10, 20)), C1, none())
        .unwrap();
    let cases = [
        (p(7, 5, 10, 1, 1, true), true),       // touches lower edge
        (p(7, 20, 30, 1, 2, true), true),      // touches upper edge
        (p(7, 5, 9, 1, 3, true), false),       // just below
        (p(7, 21, 30, 1, 4, true), false),     // just above
        (p(7, 0, u32::MAX, 1, 5, true), true), // covers
        (p(7, 12, 12, 1, 6, true), true),      // inside
        (p(8, 10, 20, 1, 7, true), false),     // other type
    ];
    for (pubinfo, want) in cases {
        t.handle_published(now, &pubinfo);
        assert_eq!(drain(&mut t).len(), usize::from(want), "{pubinfo:?}");
        t.handle_withdrawn(now, &pubinfo);
        assert_eq!(drain(&mut t).len(), usize::from(want), "{pubinfo:?}");
    }
}

#[test]
fn topology_found_values_are_whole_publication_range_not_clipped() {
    let now = Instant::now();
    let mut t = Topology::new();
    t.subscribe(now, Subscription::ports(r(7, 10, 20)), C1, none())
        .unwrap();
    t.handle_published(now, &p(7, 0, 15, 9, 99, true));
    t.handle_withdrawn(now, &p(7, 0, 15, 9, 99, true));
    let evs = drain(&mut t);
    assert_eq!(
        brief(&evs),
        vec![
            (EventKind::Published, 0, 15, 99),
            (EventKind::Withdrawn, 0, 15, 99)
        ]
    );
    assert_eq!(evs[0].1.port.node, 9);
}

#[test]
fn topology_service_reports_only_first_publication_and_last_withdrawal() {
    let now = Instant::now();
    let mut t = Topology::new();
    t.subscribe(now, Subscription::service(r(7, 0, 100)), C1, none())
        .unwrap();
    t.handle_published(now, &p(7, 1, 2, 1, 1, true));
    t.handle_published(now, &p(7, 1, 2, 2, 2, false));
    t.handle_withdrawn(now, &p(7, 1, 2, 1, 1, false));
    t.handle_withdrawn(now, &p(7, 1, 2, 2, 2, true));
    assert_eq!(
        brief(&drain(&mut t)),
        vec![
            (EventKind::Published, 1, 2, 1),
            (EventKind::Withdrawn, 1, 2, 2)
        ]
    );
}

#[test]
fn topology_ports_reports_every_publication_and_withdrawal() {
    let now = Instant::now();
    let mut t = Topology::new();
    t.subscribe(now, Subscription::ports(r(7, 0, 100)), C1, none())
        .unwrap();
    t.handle_published(now, &p(7, 1, 2, 1, 1, true));
    t.handle_published(now, &p(7, 1, 2, 2, 2, false));
    t.handle_withdrawn(now, &p(7, 1, 2, 1, 1, false));
    t.handle_withdrawn(now, &p(7, 1, 2, 2, 2, true));
    assert_eq!(
        brief(&drain(&mut t)),
        vec![
            (EventKind::Published, 1, 2, 1),
            (EventKind::Published, 1, 2, 2),
            (EventKind::Withdrawn, 1, 2, 1),
            (EventKind::Withdrawn, 1, 2, 2)
        ]
    );
}

#[test]
fn topology_filter_without_ports_or_service_behaves_as_service() {
    let now = Instant::now();
    let mut t = Topology::new();
    let mut sub = Subscription::ports(r(7, 0, 100));
    sub.filter = Filter::default();
    t.subscribe(
        now,
        sub,
        C1,
        [p(7, 1, 1, 1, 1, true), p(7, 1, 1, 2, 2, false)],
    )
    .unwrap();
    t.handle_published(now, &p(7, 1, 1, 3, 3, false));
    assert_eq!(brief(&drain(&mut t)), vec![(EventKind::Published, 1, 1, 1)]);
}

#[test]
fn topology_events_go_to_newest_subscription_first() {
    let now = Instant::now();
    let mut t = Topology::new();
    let a = t
        .subscribe(now, Subscription::ports(r(7, 0, 9)), C1, none())
        .unwrap();
    let b = t
        .subscribe(now, Subscription::ports(r(7, 0, 9)), C2, none())
        .unwrap();
    t.handle_published(now, &p(7, 1, 1, 1, 1, true));
    let evs = drain(&mut t);
    assert_eq!(
        evs.iter().map(|(c, e)| (*c, e.sub_id)).collect::<Vec<_>>(),
        vec![(C2, b), (C1, a)]
    );
}

#[test]
fn topology_timeout_reports_subscribed_range_port_zero_and_deletes() {
    let now = Instant::now();
    let mut t = Topology::new();
    let sub = Subscription::ports(r(7, 10, 20))
        .with_timeout(Duration::from_millis(500))
        .with_handle(*b"handle01");
    let id = t.subscribe(now, sub, C1, none()).unwrap();
    assert_eq!(t.poll_timeout(), Some(now + Duration::from_millis(500)));
    t.handle_timeout(now + Duration::from_millis(499));
    assert!(drain(&mut t).is_empty());
    assert_eq!(t.len(), 1);
    t.handle_timeout(now + Duration::from_millis(500));
    let evs = drain(&mut t);
    assert_eq!(evs.len(), 1);
    let (c, e) = evs[0];
    assert_eq!(c, C1);
    assert_eq!(e.kind, EventKind::Timeout);
    assert_eq!((e.found_lower, e.found_upper), (10, 20));
    assert_eq!(e.port, SocketAddr { node: 0, port: 0 });
    assert_eq!(e.sub, sub);
    assert_eq!(e.sub_id, id);
    assert!(t.is_empty());
    assert_eq!(t.poll_timeout(), None);
    t.handle_published(now + Duration::from_secs(1), &p(7, 10, 10, 1, 1, true));
    assert!(drain(&mut t).is_empty());
}

#[test]
fn topology_timeout_zero_fires_after_initial_events() {
    let now = Instant::now();
    let mut t = Topology::new();
    let sub = Subscription::ports(r(7, 0, 9)).with_timeout(Duration::ZERO);
    t.subscribe(now, sub, C1, [p(7, 1, 1, 1, 1, true)]).unwrap();
    t.handle_timeout(now);
    let kinds: Vec<_> = drain(&mut t).iter().map(|(_, e)| e.kind).collect();
    assert_eq!(kinds, vec![EventKind::Published, EventKind::Timeout]);
}

#[test]
fn topology_change_after_deadline_reports_timeout_not_change() {
    let now = Instant::now();
    let mut t = Topology::new();
    let sub = Subscription::ports(r(7, 0, 9)).with_timeout(Duration::from_millis(10));
    t.subscribe(now, sub, C1, none()).unwrap();
    // The driver is late with handle_timeout; the publication happens after the deadline.
    t.handle_published(now + Duration::from_millis(11), &p(7, 1, 1, 1, 1, true));
    let kinds: Vec<_> = drain(&mut t).iter().map(|(_, e)| e.kind).collect();
    assert_eq!(kinds, vec![EventKind::Timeout]);
}

#[test]
fn topology_poll_timeout_is_earliest_deadline_and_none_for_wait_forever() {
    let now = Instant::now();
    let mut t = Topology::new();
    t.subscribe(now, Subscription::ports(r(7, 0, 9)), C1, none())
        .unwrap();
    assert_eq!(t.poll_timeout(), None);
    let late = Subscription::ports(r(7, 0, 9)).with_timeout(Duration::from_secs(9));
    let early = Subscription::ports(r(7, 0, 9)).with_timeout(Duration::from_secs(2));
    t.subscribe(now, late, C1, none()).unwrap();
    let e = t.subscribe(now, early, C1, none()).unwrap();
    assert_eq!(t.poll_timeout(), Some(now + Duration::from_secs(2)));
    assert!(t.cancel(C1, e));
    assert_eq!(t.poll_timeout(), Some(now + Duration::from_secs(9)));
}

#[test]
fn topology_cancel_removes_subscription_of_own_client_only() {
    let now = Instant::now();
    let mut t = Topology::new();
    let id = t
        .subscribe(now, Subscription::ports(r(7, 0, 9)), C1, none())
        .unwrap();
    assert!(!t.cancel(C2, id));
    assert_eq!(t.len(), 1);
    assert!(t.cancel(C1, id));
    assert!(!t.cancel(C1, id));
    t.handle_published(now, &p(7, 1, 1, 1, 1, true));
    assert!(drain(&mut t).is_empty());
    assert_eq!(t.stats().cancelled, 1);
}

#[test]
fn topology_client_gone_removes_subscriptions_timers_and_queued_events() {
    let now = Instant::now();
    let mut t = Topology::new();
    let sub = Subscription::ports(r(7, 0, 9)).with_timeout(Duration::from_secs(1));
    t.subscribe(now, sub, C1, none()).unwrap();
    t.subscribe(now, Subscription::service(r(7, 0, 9)), C1, none())
        .unwrap();
    let other = t
        .subscribe(now, Subscription::ports(r(7, 0, 9)), C2, none())
        .unwrap();
    t.handle_published(now, &p(7, 1, 1, 1, 1, true));
    assert_eq!(t.client_gone(C1), 2);
    assert_eq!(t.len(), 1);
    assert_eq!(t.poll_timeout(), None);
    assert_eq!(t.subscriptions_of(C1).count(), 0);
    let evs = drain(&mut t);
    assert_eq!(evs.len(), 1);
    assert_eq!((evs[0].0, evs[0].1.sub_id), (C2, other));
    assert_eq!(t.client_gone(C1), 0);
}

#[test]
fn topology_subscribe_rejects_ports_and_service_together() {
    let now = Instant::now();
    let mut t = Topology::new();
    let mut sub = Subscription::ports(r(7, 0, 9));
    sub.filter.service = true;
    assert_eq!(
        t.subscribe(now, sub, C1, none()),
        Err(SubError::PortsAndService)
    );
    assert!(t.is_empty());
    assert_eq!(t.stats().rejected, 1);
}

#[test]
fn topology_subscribe_rejects_lower_above_upper() {
    let now = Instant::now();
    let mut t = Topology::new();
    // A ServiceRange cannot hold lower > upper: the error arises where the range is built.
    assert_eq!(
        ServiceRange::new(7, 10, 9)
            .map_err(SubError::from)
            .and_then(|rg| t.subscribe(now, Subscription::ports(rg), C1, none())),
        Err(SubError::InvalidRange)
    );
    assert!(t.is_empty());
}

#[test]
fn topology_subscribe_refuses_beyond_limit_until_one_is_removed() {
    let now = Instant::now();
    let mut t = Topology::new();
    let mut last = None;
    for i in 0..MAX_SUBSCRIPTIONS {
        let client = ClientId(i as u64 % 7);
        last = Some((
            client,
            t.subscribe(now, Subscription::ports(r(7, 0, 9)), client, none())
                .unwrap(),
        ));
    }
    assert_eq!(t.len(), MAX_SUBSCRIPTIONS);
    assert_eq!(
        t.subscribe(now, Subscription::ports(r(7, 0, 9)), C1, none()),
        Err(SubError::TooManySubscriptions)
    );
    let (client, id) = last.unwrap();
    assert!(t.cancel(client, id));
    assert!(t
        .subscribe(now, Subscription::ports(r(7, 0, 9)), C1, none())
        .is_ok());
}

#[test]
fn topology_sub_ids_are_not_reused() {
    let now = Instant::now();
    let mut t = Topology::new();
    let a = t
        .subscribe(now, Subscription::ports(r(7, 0, 9)), C1, none())
        .unwrap();
    t.cancel(C1, a);
    let b = t
        .subscribe(now, Subscription::ports(r(7, 0, 9)), C1, none())
        .unwrap();
    assert_ne!(a, b);
    assert!(matches!(b, SubId(_)));
}

#[test]
fn topology_node_state_subscription_sees_node_up_and_down() {
    let now = Instant::now();
    let mut t = Topology::new();
    // Own node already published {0, own, own} before the subscription.
    let own = p(NODE_STATE, 0x1000, 0x1000, 0x1000, 0, true);
    t.subscribe(
        now,
        Subscription::ports(r(NODE_STATE, 0, u32::MAX)),
        C1,
        [own],
    )
    .unwrap();
    let peer = p(NODE_STATE, 0x2000, 0x2000, 0x2000, 0, true);
    t.handle_published(now, &peer);
    t.handle_withdrawn(now, &peer);
    // A link-state publication (type 2) is not a node-state event.
    t.handle_published(
        now,
        &p(LINK_STATE, 0x2000, 0x2000, 0x1000, 0x0001_0000, true),
    );
    let evs = drain(&mut t);
    assert_eq!(
        evs.iter()
            .map(|(_, e)| (e.kind, e.found_lower, e.port.node))
            .collect::<Vec<_>>(),
        vec![
            (EventKind::Published, 0x1000, 0x1000),
            (EventKind::Published, 0x2000, 0x2000),
            (EventKind::Withdrawn, 0x2000, 0x2000),
        ]
    );
}

#[test]
fn topology_link_state_subscription_sees_link_up_and_down() {
    let now = Instant::now();
    let mut t = Topology::new();
    t.subscribe(
        now,
        Subscription::ports(r(LINK_STATE, 0, u32::MAX)),
        C1,
        none(),
    )
    .unwrap();
    // Two links to peer 0x2000: {2, peer, peer}, port = link id.
    let l1 = p(LINK_STATE, 0x2000, 0x2000, 0x1000, 0x0000_0000, true);
    let l2 = p(LINK_STATE, 0x2000, 0x2000, 0x1000, 0x0001_0001, false);
    t.handle_published(now, &l1);
    t.handle_published(now, &l2);
    t.handle_withdrawn(now, &l1);
    let evs = drain(&mut t);
    assert_eq!(
        evs.iter()
            .map(|(_, e)| (e.kind, e.found_lower, e.port.port))
            .collect::<Vec<_>>(),
        vec![
            (EventKind::Published, 0x2000, 0),
            (EventKind::Published, 0x2000, 0x0001_0001),
            (EventKind::Withdrawn, 0x2000, 0),
        ]
    );
}
