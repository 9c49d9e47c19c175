//! The node's actors read the time through tokio's clock (`ctx::now`), so a test that pauses
//! the clock runs them in virtual time: a subscription with a one-hour timeout expires at
//! once, in milliseconds of real time, exactly one virtual hour after it was made.

use std::time::Duration;
use tipc_actors::addr::ServiceRange;
use tipc_actors::topsrv::{EventKind, Subscription};
use tipc_actors::{TransportConfig, TransportNode};
use tipc_transport::NodeId;

#[actix_rt::test]
async fn subscription_timeout_fires_after_one_virtual_hour_when_the_clock_is_paused() {
    tokio::time::pause();
    let wall = std::time::Instant::now();
    let node = TransportNode::new(TransportConfig::new(
        NodeId::from_str_id("virtual").expect("node identity"),
    ));
    let start = tokio::time::Instant::now();
    let range = ServiceRange::new(7000, 0, 10).unwrap();
    let mut sub = node
        .subscribe(Subscription::service(range).with_timeout(Duration::from_secs(3600)))
        .await
        .expect("subscribe");
    let ev = tokio::time::timeout(Duration::from_secs(7200), sub.recv())
        .await
        .expect("an event within two virtual hours")
        .expect("subscription open");
    assert_eq!(ev.kind, EventKind::Timeout);
    let virt = start.elapsed();
    assert!(
        virt >= Duration::from_secs(3600) && virt < Duration::from_secs(3601),
        "expired after {virt:?} of virtual time"
    );
    assert!(
        wall.elapsed() < Duration::from_secs(5),
        "took {:?} of real time",
        wall.elapsed()
    );
}
