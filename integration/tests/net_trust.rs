//! The network side of issue 14 ("Trust"): what an attacker on the same network (here: another
//! socket on loopback) can do to a node with unauthenticated discovery messages and spoofed
//! link packets. Each test replays one reported attack against live nodes and checks that the
//! node drops and counts the hostile input and keeps serving its real peers.

use bytes::BytesMut;
use std::net::SocketAddr;
use std::time::Duration;
use tipc_actors::{NodeEvent, TransportConfig, TransportNode};
use tipc_transport::media::{UdpConfig, UdpMedia, UdpRemote};
use tipc_transport::wire::{DiscRepr, DiscType, MediaAddr};
use tipc_transport::{NodeAddr, NodeId, OWN_CAPABILITIES};
use tokio::sync::broadcast;

/// The network id of every node here (the default).
const NET_ID: u32 = 4711;

/// An in-process node `id` with one UDP bearer on 127.0.0.1:`port`, discovering `peers` by
/// unicast.
fn node(id: &str, port: u16, peers: &[u16]) -> TransportNode {
    node_cfg(
        TransportConfig::new(NodeId::from_str_id(id).unwrap()),
        port,
        peers,
    )
}

/// [`node`] with a configuration.
fn node_cfg(cfg: TransportConfig, port: u16, peers: &[u16]) -> TransportNode {
    let udp = UdpMedia::bind(UdpConfig {
        local: local(port),
        remote: UdpRemote::Replicast(peers.iter().map(|p| local(*p)).collect()),
        mtu: None,
        name: "udp0".into(),
    })
    .expect("bind");
    let n = TransportNode::new(cfg);
    n.enable_bearer(udp, "udp0", 50).expect("bearer");
    n
}

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Wait until `ev` reports `NodeUp(peer)` (panics after 5 s).
async fn wait_up(ev: &mut broadcast::Receiver<NodeEvent>, peer: NodeAddr) {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(NodeEvent::NodeUp(p)) = ev.recv().await {
                if p == peer {
                    return;
                }
            }
        }
    })
    .await
    .expect("node up");
}

/// Two linked nodes `a` (on the first port) and `b`, and their event receivers (subscribed
/// before the link came up, drained of the link-up events).
async fn pair(
    a: &str,
    b: &str,
) -> (
    TransportNode,
    TransportNode,
    broadcast::Receiver<NodeEvent>,
    broadcast::Receiver<NodeEvent>,
    [u16; 2],
) {
    let p = tipc_integration::cluster::free_udp_ports(2);
    let na = node(a, p[0], &[p[1]]);
    let nb = node(b, p[1], &[p[0]]);
    let (mut ea, mut eb) = (na.events(), nb.events());
    wait_up(&mut ea, nb.addr()).await;
    wait_up(&mut eb, na.addr()).await;
    // Let the link settle (its first STATEs, the name-table bulks).
    tokio::time::sleep(Duration::from_millis(200)).await;
    while ea.try_recv().is_ok() {}
    while eb.try_recv().is_ok() {}
    (na, nb, ea, eb, [p[0], p[1]])
}

/// A 76-byte discovery message as a kernel builds it (`tipc_disc_init_msg`).
fn disc_msg(
    mtype: DiscType,
    prevnode: NodeAddr,
    id: NodeId,
    media: SocketAddr,
    signature: u16,
) -> Vec<u8> {
    let repr = DiscRepr {
        mtype,
        caps: OWN_CAPABILITIES,
        signature,
        non_seq: true,
        dest_domain: 0,
        prevnode,
        net_id: NET_ID,
        media_info: MediaAddr::Udp(media).to_media_info(),
        net_hash: 0,
        suggested: 0,
        node_id: id.0,
    };
    let mut buf = vec![0u8; repr.buffer_len()];
    let n = repr.emit(&mut buf);
    buf.truncate(n);
    buf
}

/// Every link and node event of `ev` so far that says something went down.
fn downs(ev: &mut broadcast::Receiver<NodeEvent>) -> Vec<NodeEvent> {
    let mut v = Vec::new();
    while let Ok(e) = ev.try_recv() {
        if matches!(e, NodeEvent::LinkDown { .. } | NodeEvent::NodeDown(_)) {
            v.push(e);
        }
    }
    v
}

/// Issue 14 item 2: one spoofed 76-byte discovery message (the peer's address, identity and
/// media address, a new signature, sent from any local port) took a working peer down
/// (`PeerRestarted`, node down, bindings purged), repeatably. The kernel only stores the new
/// signature while the link is up (`tipc_node_check_dest`); so do we.
#[actix_rt::test]
async fn discovery_spoofed_new_signature_keeps_working_peer_up() {
    let (a, b, mut ea, mut eb, ports) = pair("sa", "sb").await;
    let attacker = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for round in 0..3u16 {
        // Two signatures: at least one differs from the peer's.
        for sig in [0x1111 + round, 0x2222 + round] {
            let m = disc_msg(DiscType::Request, b.addr(), b.id(), local(ports[1]), sig);
            assert_eq!(m.len(), 76);
            attacker.send_to(&m, local(ports[0])).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(downs(&mut ea), vec![], "the spoofed signature cut the peer");
    assert_eq!(downs(&mut eb), vec![]);
    let nodes = a.nodes().await;
    assert!(nodes.iter().all(|n| n.up), "{nodes:?}");
    assert_eq!(nodes[0].stats.restarts, 0);
}

/// A NAME_DISTRIBUTOR bulk message from `from` to `to` publishing `{type_, 0, 0}` in the name
/// of `orignode` (a bulk is applied at once, outside the named order).
fn names_publication(from: NodeAddr, to: NodeAddr, orignode: NodeAddr, type_: u32) -> BytesMut {
    use tipc_transport::wire::{DistrItem, NameDistrRepr, NameDistrType, INT_H_SIZE, ITEM_SIZE};
    let repr = NameDistrRepr {
        mtype: NameDistrType::Publication,
        non_seq: false,
        bulk: true,
        last_bulk: false,
        non_legacy: true,
        bcast_ack: 0,
        ack: 0,
        seqno: 0,
        prevnode: from,
        named_seqno: 0,
        w5: 0,
        orignode,
        destnode: to,
        items: &[],
    };
    let item = DistrItem {
        type_,
        lower: 0,
        upper: 0,
        port: 4242,
        key: type_,
    };
    let mut buf = BytesMut::zeroed(INT_H_SIZE + ITEM_SIZE);
    repr.emit_with_items(&[item], &mut buf);
    buf
}

/// Issue 14 item 9: a peer's NAME_DISTRIBUTOR messages published bindings for any node, the
/// receiving node itself included, and those survived the real owner's loss. A peer may now
/// publish only its own bindings; the rest is counted and dropped.
#[actix_rt::test]
async fn name_distr_publications_for_other_nodes_are_refused_and_counted() {
    let (a, b, _ea, _eb, _) = pair("na", "nb").await;
    let (fa, fb) = (a.addr(), b.addr());
    let third = NodeId::from_str_id("nc").unwrap().hash();
    for (orig, ty) in [(fa, 70001), (third, 70002), (fb, 70003)] {
        b.send_wait(fa, names_publication(fb, fa, orig, ty), 1)
            .await
            .expect("send");
    }
    assert!(b.wait_delivered(&[fa], Duration::from_secs(5)).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let table = a.nametable().await;
    let of = |ty: u32| table.iter().find(|p| p.range.type_() == ty).map(|p| p.node);
    assert_eq!(of(70001), None, "published in our own name: {table:?}");
    assert_eq!(
        of(70002),
        None,
        "published in a third node's name: {table:?}"
    );
    assert_eq!(of(70003), Some(fb), "the peer's own publication must apply");
    assert_eq!(a.name_stats().await.distr.foreign_items, 2);
}

/// A link RESET from `from` to `to` with `session`, as a kernel sends it.
fn reset_msg(from: NodeAddr, to: NodeAddr, session: u16) -> Vec<u8> {
    use tipc_transport::wire::{LinkProtoRepr, LinkProtoType, IF_NAME_LEN, INT_H_SIZE};
    let mut ifname = [0u8; IF_NAME_LEN];
    ifname[..4].copy_from_slice(b"udp0");
    let r = LinkProtoRepr {
        mtype: LinkProtoType::Reset,
        keepalive: false,
        seq_gap: 0,
        bcast_ack: 0,
        ack: 0,
        seqno: 0,
        prevnode: from,
        last_bcast: 0,
        next_sent: 1,
        session,
        bc_ack_invalid: true,
        peer_stopping: false,
        redundant_link: false,
        bearer_id: 0,
        priority: 0,
        net_plane: 0,
        probe: false,
        orignode: from,
        destnode: to,
        bc_gap: 0,
        max_pkt: (1500 / 4) as u16,
        tolerance: 0,
        data: &ifname,
    };
    let mut buf = vec![0u8; INT_H_SIZE + IF_NAME_LEN];
    let n = r.emit(&mut buf);
    buf.truncate(n);
    buf
}

/// Issue 14 item 5: packets injected into an established link from another source port (with
/// the peer's address as `prevnode`) were accepted: 400 spoofed data packets were delivered,
/// then the real peer's next messages were dropped as duplicates while both sides reported the
/// link up, and 4 spoofed RESETs took the link down. Link traffic is now accepted only from
/// the media address the link was set up with; the rest is counted and dropped.
#[actix_rt::test]
async fn link_packets_from_another_source_are_dropped_and_counted() {
    let (a, b, mut ea, _eb, ports) = pair("la", "lb").await;
    let (fa, fb) = (a.addr(), b.addr());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    a.set_delivery(tx);
    let attacker = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    // Real traffic b -> a, then the spoof (every seqno of the window ahead, tagged), then more
    // real traffic.
    const REAL: u64 = 500;
    const SPOOF_TAG: u64 = 1 << 40;
    for i in 0..REAL / 2 {
        b.send_wait(fa, data_msg(fb, fa, i), 3).await.expect("send");
    }
    assert!(b.wait_delivered(&[fa], Duration::from_secs(5)).await);
    for seqno in 0..=2000u16 {
        let mut m = data_msg(fb, fa, SPOOF_TAG + seqno as u64);
        tipc_transport::wire::Header::new_unchecked(&mut m[..]).set_seqno(seqno);
        attacker.send_to(&m, local(ports[0])).await.unwrap();
        if seqno % 200 == 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    for session in [1u16, 16384, 32768, 49152] {
        attacker
            .send_to(&reset_msg(fb, fa, session), local(ports[0]))
            .await
            .unwrap();
    }
    for i in REAL / 2..REAL {
        b.send_wait(fa, data_msg(fb, fa, i), 3).await.expect("send");
    }
    let mut next = 0u64;
    while next < REAL {
        let d = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap_or_else(|_| panic!("real traffic stalled at {next}"))
            .expect("delivery");
        let h = tipc_transport::wire::Header::new_checked(&d.msg[..]).unwrap();
        let seq = u64::from_be_bytes(h.payload()[..8].try_into().unwrap());
        assert!(seq < SPOOF_TAG, "a spoofed packet was delivered");
        assert_eq!(seq, next, "real traffic lost, duplicated or reordered");
        next += 1;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(rx.try_recv().is_err(), "a spoofed packet was delivered");
    assert_eq!(downs(&mut ea), vec![], "the spoof took the link down");
    let nodes = a.nodes().await;
    assert!(nodes[0].up);
    assert_eq!(nodes[0].stats.spoofed_source, 2001 + 4);
}

/// Issue 14 item 7: a second process started with an existing node's identity took over that
/// node's link; the real node stayed cut off and nothing was logged. As the kernel
/// (`tipc_disc_rcv`'s duplicate-address check), a discovery message from another media address
/// for a node whose link is up is refused and counted; the impostor's link traffic comes from
/// the wrong address and is dropped too.
#[actix_rt::test]
async fn duplicate_identity_does_not_take_over_working_link() {
    let p = tipc_integration::cluster::free_udp_ports(3);
    // `a` discovers on both ports (a shared segment): it hears the impostor and the impostor
    // hears it.
    let a = node("da", p[0], &[p[1], p[2]]);
    let b = node("db", p[1], &[p[0]]);
    let (mut ea, mut eb) = (a.events(), b.events());
    wait_up(&mut ea, b.addr()).await;
    wait_up(&mut eb, a.addr()).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    while ea.try_recv().is_ok() {}
    while eb.try_recv().is_ok() {}
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    a.set_delivery(tx);
    let impostor = node("db", p[2], &[p[0]]);
    assert_eq!(impostor.addr(), b.addr());
    let mut ei = impostor.events();
    // The impostor discovers and keeps trying for a few seconds; real traffic goes on.
    let (fa, fb) = (a.addr(), b.addr());
    for i in 0..30u64 {
        b.send_wait(fa, data_msg(fb, fa, i), 3).await.expect("send");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for i in 0..30u64 {
        let d = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("real traffic stalled")
            .expect("delivery");
        let h = tipc_transport::wire::Header::new_checked(&d.msg[..]).unwrap();
        assert_eq!(u64::from_be_bytes(h.payload()[..8].try_into().unwrap()), i);
    }
    assert_eq!(downs(&mut ea), vec![], "the impostor cut the real node");
    assert_eq!(downs(&mut eb), vec![]);
    let mut impostor_up = false;
    while let Ok(e) = ei.try_recv() {
        impostor_up |= matches!(e, NodeEvent::NodeUp(_));
    }
    assert!(!impostor_up, "the impostor got a link to the node");
    let nodes = a.nodes().await;
    assert_eq!(nodes.len(), 1);
    assert!(nodes[0].up);
    assert!(nodes[0].stats.duplicates > 0, "{:?}", nodes[0].stats);
    let links = a.links().await;
    assert_eq!(links.len(), 1);
    impostor.shutdown().await;
}

/// Issue 14 item 4: the number of peer node objects is capped (`max_peers`, default 4096);
/// discovery messages from further new nodes are refused and counted, known peers still get
/// in.
#[actix_rt::test]
async fn discovery_from_new_nodes_beyond_peer_limit_is_refused_and_counted() {
    let p = tipc_integration::cluster::free_udp_ports(2);
    let mut cfg = TransportConfig::new(NodeId::from_str_id("capped").unwrap());
    cfg.max_peers = 20;
    let a = node_cfg(cfg, p[0], &[p[1]]);
    let attacker = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = attacker.local_addr().unwrap();
    for i in 0..100u32 {
        let addr = 0x5200_0000 + i;
        let m = disc_msg(DiscType::Request, addr, NodeId::from_addr(addr), me, 1);
        attacker.send_to(&m, local(p[0])).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(a.nodes().await.len(), 20);
    assert_eq!(a.peer_limit_refused(), 80);
    // A known one asking again is no refusal.
    let m = disc_msg(
        DiscType::Request,
        0x5200_0000,
        NodeId::from_addr(0x5200_0000),
        me,
        1,
    );
    attacker.send_to(&m, local(p[0])).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(a.peer_limit_refused(), 80);
}

/// A raw data message from `from` to `to` carrying `seq` (32 bytes of payload).
fn data_msg(from: NodeAddr, to: NodeAddr, seq: u64) -> BytesMut {
    use tipc_transport::wire::{Header, BASIC_H_SIZE};
    let len = BASIC_H_SIZE + 32;
    let mut b = BytesMut::zeroed(len);
    let mut h = Header::new_unchecked(&mut b[..]);
    h.init(0, 3, BASIC_H_SIZE, len, from);
    h.set_orignode(from);
    h.set_destnode(to);
    b[BASIC_H_SIZE..BASIC_H_SIZE + 8].copy_from_slice(&seq.to_be_bytes());
    b
}
