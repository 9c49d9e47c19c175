//! Connection fast paths (actors/src/conn.rs): the 0-RTT exchange whose reply and FIN arrive
//! before the connecting task looks, and the ACK sent by the acceptor. One node, local
//! delivery: the server's ACK, reply and FIN reach the client's core synchronously, before the
//! client task runs again.

use bytes::Bytes;
use std::time::Duration;
use tipc_actors::sock::conn::{ConnDest, ConnKind};
use tipc_actors::{TransportConfig, TransportNode};
use tipc_transport::NodeId;

async fn t<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("timed out")
}

#[actix_rt::test]
async fn connect_with_returns_connection_when_reply_and_fin_came_with_ack() {
    let node = TransportNode::new(TransportConfig::new(
        NodeId::from_str_id("fast").expect("id"),
    ));
    let l = node.conn_listener(ConnKind::Seqpacket);
    let dest = ConnDest::Socket(l.local());
    let server = actix_rt::spawn(async move {
        let c = l.accept().await.expect("accept");
        let req = c.recv().await.expect("recv").expect("request");
        let mut rep = b"re:".to_vec();
        rep.extend_from_slice(&req);
        c.send(Bytes::from(rep)).await.expect("send");
        c.shutdown().await.expect("shutdown");
    });
    let c = t(node.connect_with(dest, ConnKind::Seqpacket, Bytes::from_static(b"req")))
        .await
        .expect("connect_with succeeds although the peer already shut down");
    let rep = t(c.recv())
        .await
        .expect("reply")
        .expect("data before the end");
    assert_eq!(&rep[..], b"re:req");
    assert_eq!(t(c.recv()).await, Ok(None), "then the orderly end");
    t(server).await.expect("server task");
}
