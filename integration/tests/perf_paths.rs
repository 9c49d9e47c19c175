//! The datagram fast paths (peer actors delivering straight to sockets, sends resolved without
//! the name table actor, per-peer send queues) keep the ordering guarantees, on two nodes over
//! UDP on 127.0.0.1.

use std::time::Duration;
use tipc_actors::addr::{Scope, ServiceAddr, ServiceRange};
use tipc_integration::cluster::udp_cluster;

const BASE: u32 = 91_000;
const ROUNDS: u32 = 300;

/// Node A binds a fresh service and at once sends a message naming it to B's socket; B, on
/// receipt, sends to that service by name: the binding must already be in B's table.
#[actix_rt::test]
async fn published_binding_is_known_before_the_data_sent_after_it() {
    let nodes = udp_cluster("pbd", 2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut sa = a.dgram_socket();
    let sb = b.dgram_socket();
    let dest = sb.addr();
    let sender = async {
        for i in 0..ROUNDS {
            let range = ServiceRange::single(BASE + i, 0);
            sa.bind(range, Scope::Cluster).await.expect("bind");
            sa.send_to_socket(dest, &i.to_be_bytes())
                .await
                .expect("send");
        }
        sa
    };
    let receiver = async {
        let mut next = 0u32;
        while next < ROUNDS {
            let batch = tokio::time::timeout(Duration::from_secs(10), sb.recv_batch(64))
                .await
                .expect("messages from A");
            for m in batch {
                let i = u32::from_be_bytes(m.data[..4].try_into().expect("4 bytes"));
                assert_eq!(i, next, "messages arrive in the order sent");
                let name = ServiceAddr {
                    type_: BASE + i,
                    instance: 0,
                };
                sb.send_to_service(name, b"ack")
                    .await
                    .unwrap_or_else(|e| panic!("binding {i} unknown when its data arrived: {e}"));
                next += 1;
            }
        }
    };
    let (sa, ()) = tokio::join!(sender, receiver);
    // Every acknowledgement reached A's socket (anycast to its bindings).
    let mut acks = 0;
    while acks < ROUNDS {
        let batch = tokio::time::timeout(Duration::from_secs(10), sa.recv_batch(64))
            .await
            .expect("acknowledgements from B");
        acks += batch.len() as u32;
    }
    assert_eq!(acks, ROUNDS);
}

/// A burst of sends far beyond one drain of the per-peer queue, interleaved with binds (whose
/// name updates take the same queue), arrives complete and in order.
#[actix_rt::test]
async fn burst_with_interleaved_binds_arrives_in_order() {
    let nodes = udp_cluster("bib", 2).await;
    let (a, b) = (&nodes[0], &nodes[1]);
    let mut sa = a.dgram_socket();
    let sb = b.dgram_socket();
    sb.set_rcvbuf(16 << 20).await.expect("rcvbuf");
    let dest = sb.addr();
    const N: u32 = 5_000;
    let sender = async {
        for i in 0..N {
            if i % 1000 == 0 {
                let range = ServiceRange::single(BASE + ROUNDS + i, 0);
                sa.bind(range, Scope::Cluster).await.expect("bind");
            }
            sa.send_to_socket(dest, &i.to_be_bytes())
                .await
                .expect("send");
        }
    };
    let receiver = async {
        let mut next = 0u32;
        while next < N {
            let batch = tokio::time::timeout(Duration::from_secs(10), sb.recv_batch(1024))
                .await
                .expect("messages from A");
            for m in batch {
                let i = u32::from_be_bytes(m.data[..4].try_into().expect("4 bytes"));
                assert_eq!(i, next, "messages arrive once and in order");
                next += 1;
            }
        }
    };
    tokio::join!(sender, receiver);
}
