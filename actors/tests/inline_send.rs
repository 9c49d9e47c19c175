//! Sends handed to an idle link from the sender's own task (`peer::send_inline`) and sends
//! queued for the peer actor (bursts) mix without reordering or loss: two nodes over UDP on
//! 127.0.0.1.

use std::time::Duration;
use tipc_actors::{NodeEvent, TransportConfig, TransportNode};
use tipc_transport::media::{UdpConfig, UdpMedia, UdpRemote};
use tipc_transport::NodeId;

fn node(id: &str, port: u16, peer: u16) -> TransportNode {
    let udp = UdpMedia::bind(UdpConfig {
        local: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        remote: UdpRemote::Replicast(vec![std::net::SocketAddr::from(([127, 0, 0, 1], peer))]),
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

fn two_ports() -> (u16, u16) {
    let a = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let b = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    (
        a.local_addr().expect("addr").port(),
        b.local_addr().expect("addr").port(),
    )
}

async fn wait_up(n: &TransportNode) {
    let mut ev = n.events();
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(NodeEvent::NodeUp(_)) = ev.recv().await {
                return;
            }
        }
    })
    .await
    .expect("peer up within 5 s");
}

const ROUNDS: u32 = 60;

/// Receive echoes `*next..upto`, checking their order.
async fn recv_until(s: &tipc_actors::sock::dgram::DgramSocket, next: &mut u32, upto: u32) {
    while *next < upto {
        let m = tokio::time::timeout(Duration::from_secs(10), s.recv())
            .await
            .expect("echo arrives")
            .expect("socket open");
        let i = u32::from_be_bytes(m.data[..4].try_into().expect("4 bytes"));
        assert_eq!(i, *next, "echoes arrive in the order sent");
        *next += 1;
    }
}
const BURST: u32 = 40;

/// Each round: one request answered before the next send (the link is idle, so it goes out
/// inline), then a burst sent without waiting (queued behind the first frame still in
/// flight). The echo side sees every number once and in order, and so does the sender.
#[actix_rt::test]
async fn request_reply_and_bursts_interleaved_arrive_in_order() {
    let (pa, pb) = two_ports();
    let a = node("inla", pa, pb);
    let b = node("inlb", pb, pa);
    wait_up(&a).await;
    let sa = a.dgram_socket();
    let sb = b.dgram_socket();
    let dest = sb.addr();
    let total = ROUNDS * (1 + BURST);
    let echo = async {
        let mut next = 0u32;
        while next < total {
            let batch = tokio::time::timeout(Duration::from_secs(10), sb.recv_batch(64))
                .await
                .expect("requests arrive");
            for m in batch {
                let i = u32::from_be_bytes(m.data[..4].try_into().expect("4 bytes"));
                assert_eq!(i, next, "requests arrive in the order sent");
                sb.send_to_socket(m.from, &m.data).await.expect("echo");
                next += 1;
            }
        }
    };
    let client = async {
        let mut seq = 0u32;
        let mut expect = 0u32;
        for _ in 0..ROUNDS {
            sa.send_to_socket(dest, &seq.to_be_bytes())
                .await
                .expect("request");
            seq += 1;
            recv_until(&sa, &mut expect, seq).await;
            for _ in 0..BURST {
                sa.send_to_socket(dest, &seq.to_be_bytes())
                    .await
                    .expect("burst");
                seq += 1;
            }
        }
        recv_until(&sa, &mut expect, seq).await;
    };
    tokio::join!(echo, client);
    a.shutdown().await;
    b.shutdown().await;
}
