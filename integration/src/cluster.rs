//! In-process nodes over real UDP sockets on 127.0.0.1, for tests and benchmarks.

use std::time::Duration;
use tipc_actors::{NodeEvent, TransportConfig, TransportNode};
use tipc_transport::media::{UdpConfig, UdpMedia, UdpRemote};
use tipc_transport::NodeId;

/// `n` UDP ports on 127.0.0.1 that were free a moment ago (bound and released).
pub fn free_udp_ports(n: usize) -> Vec<u16> {
    let socks: Vec<std::net::UdpSocket> = (0..n)
        .map(|_| std::net::UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1:0"))
        .collect();
    socks
        .iter()
        .map(|s| s.local_addr().expect("local addr").port())
        .collect()
}

/// A node with one UDP bearer on 127.0.0.1:`port`, discovering `peers` by unicast.
/// Must run inside an actix System.
pub fn udp_node(id: &str, port: u16, peers: &[u16]) -> TransportNode {
    let udp = UdpMedia::bind(UdpConfig {
        local: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        remote: UdpRemote::Replicast(
            peers
                .iter()
                .map(|p| std::net::SocketAddr::from(([127, 0, 0, 1], *p)))
                .collect(),
        ),
        mtu: None,
        name: "udp0".into(),
    })
    .expect("bind UDP bearer");
    let n = TransportNode::new(TransportConfig::new(
        NodeId::from_str_id(id).expect("node identity"),
    ));
    n.enable_bearer(udp, "udp0", 50).expect("enable bearer");
    n
}

/// `count` nodes named `{prefix}0..`, each discovering all the others; returns once node 0
/// sees every other node up (panics after 5 s).
pub async fn udp_cluster(prefix: &str, count: usize) -> Vec<TransportNode> {
    let ports = free_udp_ports(count);
    let nodes: Vec<TransportNode> = (0..count)
        .map(|i| {
            let others: Vec<u16> = ports
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, p)| *p)
                .collect();
            udp_node(&format!("{prefix}{i}"), ports[i], &others)
        })
        .collect();
    let mut ev = nodes[0].events();
    let mut up = 0;
    tokio::time::timeout(Duration::from_secs(5), async {
        while up + 1 < count {
            if let Ok(NodeEvent::NodeUp(_)) = ev.recv().await {
                up += 1;
            }
        }
    })
    .await
    .expect("cluster up within 5 s");
    nodes
}
