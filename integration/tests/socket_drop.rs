//! A socket its task drops without closing it (the task panicked) is released as the kernel
//! releases a closed socket: its bindings are withdrawn cluster-wide at once. Two transport
//! nodes over UDP on 127.0.0.1.

use std::time::{Duration, Instant};
use tipc_actors::addr::{Scope, ServiceRange};
use tipc_actors::sock::conn::ConnKind;
use tipc_actors::topsrv::{EventKind, Subscription, TopoEvent};
use tipc_actors::TransportNode;
use tipc_integration::cluster::udp_cluster;
use tokio::sync::mpsc::UnboundedReceiver;

fn range(type_: u32, instance: u32) -> ServiceRange {
    ServiceRange::single(type_, instance)
}

async fn has(n: &TransportNode, r: ServiceRange) -> bool {
    n.nametable().await.iter().any(|p| p.range == r)
}

/// The next event of `kind` from `sub`, within `limit`.
async fn next_event(
    sub: &mut UnboundedReceiver<TopoEvent>,
    kind: EventKind,
    limit: Duration,
) -> Option<TopoEvent> {
    tokio::time::timeout(limit, async {
        while let Some(e) = sub.recv().await {
            if e.kind == kind {
                return Some(e);
            }
        }
        None
    })
    .await
    .ok()
    .flatten()
}

#[actix_rt::test]
async fn dgram_socket_and_listener_dropped_in_a_panicking_task_are_withdrawn_on_other_nodes_within_100_ms(
) {
    let nodes = udp_cluster("drop", 2).await;
    let (a, b) = (nodes[0].clone(), nodes[1].clone());
    let (dgram, listen) = (range(6100, 1), range(6101, 1));
    let mut sub_dgram = b
        .subscribe(Subscription::ports(dgram))
        .await
        .expect("subscribe");
    let mut sub_listen = b
        .subscribe(Subscription::ports(listen))
        .await
        .expect("subscribe");

    // A task on node a binds a datagram socket and a listener, then panics holding both.
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
    let task: actix_rt::task::JoinHandle<()> = actix_rt::spawn(async move {
        let mut s = a.dgram_socket();
        s.bind(dgram, Scope::Cluster)
            .await
            .expect("bind datagram socket");
        let l = a.conn_listener(ConnKind::Stream);
        l.bind(listen, Scope::Cluster).await.expect("bind listener");
        let _ = ready_tx.send(());
        let _ = go_rx.await;
        panic!(
            "a handler panics while it holds sockets {} and {}",
            s.addr(),
            l.local()
        );
    });
    ready_rx.await.expect("sockets bound");
    for (sub, what) in [(&mut sub_dgram, "datagram"), (&mut sub_listen, "listener")] {
        assert!(
            next_event(sub, EventKind::Published, Duration::from_secs(2))
                .await
                .is_some(),
            "the {what} binding reached node b"
        );
    }

    // The task's panic is expected: keep the default hook from printing it (with a backtrace,
    // which takes longer than the withdrawal) while the clock runs.
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let t = Instant::now();
    let _ = go_tx.send(());
    let joined = task.await;
    std::panic::set_hook(hook);
    assert!(
        joined.as_ref().err().is_some_and(|e| e.is_panic()),
        "the task panicked"
    );
    for (sub, what) in [(&mut sub_dgram, "datagram"), (&mut sub_listen, "listener")] {
        let left = Duration::from_millis(100).saturating_sub(t.elapsed());
        assert!(
            next_event(sub, EventKind::Withdrawn, left).await.is_some(),
            "the {what} binding was withdrawn on node b within 100 ms of the panic"
        );
    }
    let took = t.elapsed();
    assert!(took < Duration::from_millis(100), "took {took:?}");
    assert!(!has(&b, dgram).await && !has(&b, listen).await);
    eprintln!("both bindings withdrawn on the other node {took:?} after the panic");
}
