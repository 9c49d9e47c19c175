//! Three transport nodes on 127.0.0.1: bindings published on one node reach the others' tables
//! and subscribers (PUBLISHED / WITHDRAWN events), node-scope bindings stay local, and a node
//! that stops takes its bindings with it.

use std::time::{Duration, Instant};
use tipc_actors::addr::{Scope, ServiceRange};
use tipc_actors::name_table::Publication;
use tipc_actors::topsrv::{EventKind, Subscription};
use tipc_actors::TransportNode;
use tipc_integration::cluster::udp_cluster;

fn range(type_: u32, lower: u32, upper: u32) -> ServiceRange {
    ServiceRange::new(type_, lower, upper).unwrap()
}

async fn has(n: &TransportNode, r: ServiceRange) -> bool {
    n.nametable().await.iter().any(|p| p.range == r)
}

#[actix_rt::test]
async fn bindings_and_withdrawals_reach_other_nodes_and_subscribers() {
    let nodes = udp_cluster("n", 3).await;
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);

    // Every node sees every node's node-state binding {0, n, n}.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for n in [a, b, c] {
        for m in [a, b, c] {
            assert!(
                has(n, range(0, m.addr(), m.addr())).await,
                "node-state binding missing"
            );
        }
    }

    let mut sub = a
        .subscribe(Subscription::ports(range(5000, 0, 100)))
        .await
        .expect("subscribe");
    let publ = Publication {
        range: range(5000, 10, 20),
        scope: Scope::Cluster,
        node: c.addr(),
        port: 77,
        key: 1,
    };
    c.publish(publ).await.expect("publish");
    let e = tokio::time::timeout(Duration::from_secs(2), sub.recv())
        .await
        .expect("PUBLISHED event")
        .unwrap();
    assert_eq!(e.kind, EventKind::Published);
    assert_eq!((e.found_lower, e.found_upper), (10, 20));
    assert_eq!((e.port.node, e.port.port), (c.addr(), 77));
    assert!(has(b, publ.range).await);

    // Node scope: stays on c.
    let local = Publication {
        range: range(5001, 1, 1),
        scope: Scope::Node,
        node: c.addr(),
        port: 78,
        key: 2,
    };
    c.publish(local).await.expect("publish node scope");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(has(c, local.range).await);
    assert!(!has(a, local.range).await && !has(b, local.range).await);

    // A withdrawal is seen by a's subscriber within 100 ms.
    let t = Instant::now();
    assert!(c.withdraw(publ.range, 77, 1).await.is_some());
    let e = tokio::time::timeout(Duration::from_millis(100), sub.recv())
        .await
        .expect("WITHDRAWN within 100 ms")
        .unwrap();
    assert_eq!(e.kind, EventKind::Withdrawn);
    eprintln!(
        "withdrawal seen by the remote subscriber after {:?}",
        t.elapsed()
    );
    assert!(!has(b, publ.range).await);

    // c stops: its bindings disappear from a and b, and a's subscriber sees them withdrawn.
    c.publish(publ).await.expect("publish again");
    let e = tokio::time::timeout(Duration::from_secs(2), sub.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.kind, EventKind::Published);
    c.shutdown().await;
    let e = tokio::time::timeout(Duration::from_secs(3), sub.recv())
        .await
        .expect("WITHDRAWN after node loss")
        .unwrap();
    assert_eq!(e.kind, EventKind::Withdrawn);
    assert!(!has(a, publ.range).await && !has(b, range(0, c.addr(), c.addr())).await);
}
