//! The receive dispatch of the socket layer (`socket::rcv`: `tipc_sk_rcv`,
//! `tipc_sk_mcast_rcv`), verdict by verdict, on a node with a few ports and a binding table.
//!
//! Spec: tipc-protocol.md §8.2 (secondary lookup), §9.2 (rejection), §5.4 (multicast).

use bytes::{Bytes, BytesMut};
use std::collections::BTreeSet;
use tipc_actors::addr::{Scope, ServiceAddr, ServiceRange, SocketAddr};
use tipc_actors::name_table::{BindingTable, Publication};
use tipc_actors::socket::rcv::{self, DropCause, RcvEnv, Verdict};
use tipc_actors::socket::{build_direct, build_mcast, build_named, SendOpts};
use tipc_transport::wire::{user, DataType, ErrorCode, Header, InputQueue};
use tipc_transport::NodeAddr;

const ME: NodeAddr = 0x0100_0001;
const PEER: NodeAddr = 0x0100_0002;
const THIRD: NodeAddr = 0x0100_0003;

/// This node: its ports and its binding table.
struct Node {
    ports: BTreeSet<u32>,
    table: BindingTable,
}

impl RcvEnv for Node {
    fn own(&self) -> NodeAddr {
        ME
    }
    fn has_port(&self, port: u32) -> bool {
        self.ports.contains(&port)
    }
    fn with_table<R>(&mut self, f: impl FnOnce(&mut BindingTable) -> R) -> R {
        f(&mut self.table)
    }
}

fn node(ports: &[u32]) -> Node {
    Node {
        ports: ports.iter().copied().collect(),
        table: BindingTable::new(ME),
    }
}

fn bind(n: &mut Node, node: NodeAddr, type_: u32, lower: u32, upper: u32, port: u32, scope: Scope) {
    n.table
        .publish(Publication {
            range: ServiceRange::new(type_, lower, upper).expect("valid range"),
            scope,
            node,
            port,
            key: port,
        })
        .expect("publish");
}

const RETURNABLE: SendOpts = SendOpts {
    importance: 0,
    dest_droppable: false,
    src_droppable: false,
};

const DROPPABLE: SendOpts = SendOpts {
    importance: 0,
    dest_droppable: true,
    src_droppable: false,
};

/// A message from PEER:7.
fn from_peer() -> SocketAddr {
    SocketAddr {
        node: PEER,
        port: 7,
    }
}

fn direct(port: u32, opts: &SendOpts) -> Bytes {
    let to = SocketAddr { node: ME, port };
    build_direct(from_peer(), to, opts, b"data")
        .expect("build")
        .freeze()
}

fn named(instance: u32, destport: u32) -> Bytes {
    let name = ServiceAddr {
        type_: 5000,
        instance,
    };
    let dest = SocketAddr {
        node: ME,
        port: destport,
    };
    build_named(
        from_peer(),
        name,
        dest,
        Scope::Cluster,
        &RETURNABLE,
        b"data",
    )
    .expect("build")
    .freeze()
}

fn run(n: &mut Node, queue: InputQueue, msg: Bytes) -> Vec<Verdict> {
    let mut v = Vec::new();
    rcv::input(n, queue, msg, &mut |x| v.push(x));
    v
}

/// A reversed message on its way back to PEER:7 with this error code.
fn assert_returned_to_peer(v: &Verdict, err: ErrorCode) {
    let Verdict::Node(node, m) = v else {
        panic!("expected a returned message, got {v:?}");
    };
    assert_eq!(*node, PEER);
    let h = Header::new_checked(&m[..]).expect("valid");
    assert_eq!(h.errcode(), err as u8);
    assert_eq!((h.destnode(), h.destport()), (PEER, 7));
    assert_eq!(h.orignode(), ME);
}

#[test]
fn direct_message_goes_to_its_port_when_the_socket_exists() {
    let mut n = node(&[9]);
    let v = run(&mut n, InputQueue::Sockets, direct(9, &RETURNABLE));
    assert!(matches!(&v[..], [Verdict::Port(9, _)]), "{v:?}");
}

#[test]
fn direct_message_to_a_missing_port_comes_back_with_no_port_or_is_dropped_if_droppable() {
    let mut n = node(&[9]);
    let v = run(&mut n, InputQueue::Sockets, direct(10, &RETURNABLE));
    assert_eq!(v.len(), 1);
    assert_returned_to_peer(&v[0], ErrorCode::NoPort);
    let v = run(&mut n, InputQueue::Sockets, direct(10, &SendOpts::RDM));
    assert!(
        matches!(&v[..], [Verdict::Drop(DropCause::NotReturnable)]),
        "{v:?}"
    );
}

#[test]
fn returned_message_goes_to_its_sender_and_is_never_rejected_again() {
    let mut n = node(&[7]);
    // One of our messages (from ME:7) that PEER returned with NO_PORT.
    let ours = build_direct(
        SocketAddr { node: ME, port: 7 },
        SocketAddr {
            node: PEER,
            port: 3,
        },
        &RETURNABLE,
        b"x",
    )
    .expect("build");
    let back = tipc_transport::wire::reverse(&ours, ErrorCode::NoPort, PEER).expect("returnable");
    let v = run(&mut n, InputQueue::Sockets, back.clone().freeze());
    assert!(matches!(&v[..], [Verdict::Port(7, _)]), "{v:?}");
    let mut gone = node(&[]);
    let v = run(&mut gone, InputQueue::Sockets, back.freeze());
    assert!(
        matches!(&v[..], [Verdict::Drop(DropCause::SenderGone)]),
        "{v:?}"
    );
}

#[test]
fn named_message_is_rerouted_by_secondary_lookup_to_a_local_or_remote_socket() {
    // Bound here at port 9: delivered there, header rewritten.
    let mut n = node(&[9]);
    bind(&mut n, ME, 5000, 1, 1, 9, Scope::Cluster);
    let v = run(&mut n, InputQueue::Sockets, named(1, 0));
    let [Verdict::Port(9, m)] = &v[..] else {
        panic!("{v:?}");
    };
    assert_eq!(Header::new_checked(&m[..]).expect("valid").destport(), 9);
    // Bound only on THIRD: forwarded there, rerouted once.
    let mut n = node(&[]);
    bind(&mut n, THIRD, 5000, 2, 2, 4, Scope::Cluster);
    let v = run(&mut n, InputQueue::Sockets, named(2, 0));
    let [Verdict::Node(THIRD, m)] = &v[..] else {
        panic!("{v:?}");
    };
    let h = Header::new_checked(&m[..]).expect("valid");
    assert_eq!((h.destnode(), h.destport()), (THIRD, 4));
    assert_eq!(h.prevnode(), ME);
}

#[test]
fn named_message_to_an_existing_port_is_not_looked_up_again() {
    let mut n = node(&[9]);
    let v = run(&mut n, InputQueue::Sockets, named(1, 9));
    assert!(matches!(&v[..], [Verdict::Port(9, _)]), "{v:?}");
}

#[test]
fn named_message_without_a_binding_comes_back_with_no_name() {
    let mut n = node(&[]);
    let v = run(&mut n, InputQueue::Sockets, named(3, 0));
    assert_eq!(v.len(), 1);
    assert_returned_to_peer(&v[0], ErrorCode::NoName);
}

#[test]
fn multicast_goes_to_every_local_port_bound_in_its_range_with_cluster_scope() {
    let mut n = node(&[20, 21, 22]);
    bind(&mut n, ME, 6000, 0, 9, 20, Scope::Cluster);
    bind(&mut n, ME, 6000, 5, 5, 21, Scope::Cluster);
    // Node scope: not for a message from another node.
    bind(&mut n, ME, 6000, 0, 9, 22, Scope::Node);
    let range = ServiceRange::new(6000, 4, 6).expect("valid range");
    let m = build_mcast(from_peer(), range, &RETURNABLE, b"all")
        .expect("build")
        .freeze();
    let v = run(&mut n, InputQueue::Mcast, m);
    let ports: Vec<u32> = v
        .iter()
        .map(|v| match v {
            Verdict::Port(p, _) => *p,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(ports, vec![20, 21]);
}

/// A group data message of `mtype` from PEER:7 for group `type_`, destport `port`, with a
/// 44-byte header and this lookup scope.
fn group_msg(mtype: DataType, type_: u32, port: u32, scope: Scope, opts: &SendOpts) -> Bytes {
    let range = ServiceRange::single(type_, 0);
    let mut m = build_mcast(from_peer(), range, opts, b"data").expect("build");
    let mut h = Header::new_unchecked(&mut m[..]);
    h.set_mtype(mtype as u8);
    h.set_destport(port);
    h.set_lookup_scope(scope as u8);
    m.freeze()
}

fn ports_of(v: &[Verdict]) -> Vec<u32> {
    v.iter()
        .map(|x| match x {
            Verdict::Port(p, _) => *p,
            other => panic!("expected a port verdict, got {other:?}"),
        })
        .collect()
}

#[test]
fn group_unicast_goes_to_its_destport_and_back_with_no_port_if_gone_and_returnable() {
    let mut n = node(&[9]);
    let m = group_msg(DataType::GrpUcast, 4000, 9, Scope::Cluster, &RETURNABLE);
    assert_eq!(ports_of(&run(&mut n, InputQueue::Mcast, m)), [9]);
    let m = group_msg(DataType::GrpUcast, 4000, 10, Scope::Cluster, &RETURNABLE);
    let v = run(&mut n, InputQueue::Mcast, m);
    assert_eq!(v.len(), 1);
    assert_returned_to_peer(&v[0], ErrorCode::NoPort);
    // As a group sends it: dest_droppable, so dropped.
    let m = group_msg(DataType::GrpUcast, 4000, 10, Scope::Cluster, &DROPPABLE);
    let v = run(&mut n, InputQueue::Sockets, m);
    assert!(
        matches!(&v[..], [Verdict::Drop(DropCause::NotReturnable)]),
        "{v:?}"
    );
}

#[test]
fn group_protocol_goes_to_its_destport_and_is_dropped_if_the_port_is_gone() {
    let mut n = node(&[9]);
    let mut m = BytesMut::from(&direct(9, &RETURNABLE)[..]);
    Header::new_unchecked(&mut m[..]).set_user(user::GROUP_PROTOCOL);
    assert_eq!(
        ports_of(&run(&mut n, InputQueue::Mcast, m.clone().freeze())),
        [9]
    );
    Header::new_unchecked(&mut m[..]).set_destport(10);
    let v = run(&mut n, InputQueue::Mcast, m.freeze());
    assert!(
        matches!(&v[..], [Verdict::Drop(DropCause::NotReturnable)]),
        "{v:?}"
    );
}

#[test]
fn group_broadcast_goes_to_every_local_member_of_its_type_and_scope_only() {
    let mut n = node(&[9, 10, 11, 12, 13]);
    bind(&mut n, ME, 4000, 1, 1, 9, Scope::Cluster);
    bind(&mut n, ME, 4000, 2, 2, 10, Scope::Cluster);
    bind(&mut n, ME, 4000, 3, 3, 11, Scope::Node);
    bind(&mut n, ME, 4001, 1, 1, 12, Scope::Cluster);
    bind(&mut n, PEER, 4000, 4, 4, 13, Scope::Cluster);
    for t in [DataType::GrpBcast, DataType::GrpMcast] {
        let m = group_msg(t, 4000, 0, Scope::Cluster, &DROPPABLE);
        assert_eq!(
            ports_of(&run(&mut n, InputQueue::Mcast, m)),
            [9, 10],
            "{t:?}"
        );
        let m = group_msg(t, 4000, 0, Scope::Node, &DROPPABLE);
        assert_eq!(ports_of(&run(&mut n, InputQueue::Mcast, m)), [11], "{t:?}");
    }
    // No member here (it left): dropped, as the group sends it droppable.
    let m = group_msg(DataType::GrpBcast, 4002, 0, Scope::Cluster, &DROPPABLE);
    let v = run(&mut n, InputQueue::Mcast, m);
    assert!(
        matches!(&v[..], [Verdict::Drop(DropCause::NotReturnable)]),
        "{v:?}"
    );
}

#[test]
fn connection_protocol_message_to_a_missing_port_comes_back_with_no_port() {
    let mut n = node(&[]);
    let mut m = BytesMut::from(&direct(9, &RETURNABLE)[..]);
    Header::new_unchecked(&mut m[..]).set_user(user::CONN_MANAGER);
    let v = run(&mut n, InputQueue::Sockets, m.freeze());
    assert_eq!(v.len(), 1);
    assert_returned_to_peer(&v[0], ErrorCode::NoPort);
}

#[test]
fn malformed_and_non_socket_messages_are_dropped_and_counted() {
    let mut n = node(&[9]);
    let v = run(&mut n, InputQueue::Sockets, Bytes::from_static(&[1, 2, 3]));
    assert!(
        matches!(&v[..], [Verdict::Drop(DropCause::Malformed)]),
        "{v:?}"
    );
    let mut m = BytesMut::from(&direct(9, &RETURNABLE)[..]);
    Header::new_unchecked(&mut m[..]).set_user(user::TUNNEL_PROTOCOL);
    let v = run(&mut n, InputQueue::Mcast, m.freeze());
    assert!(
        matches!(&v[..], [Verdict::Drop(DropCause::NotForSockets)]),
        "{v:?}"
    );
}

#[test]
fn route_dispatches_a_message_for_this_node_and_forwards_one_for_another() {
    let mut n = node(&[9]);
    let here = BytesMut::from(&direct(9, &RETURNABLE)[..]);
    let mut v = Vec::new();
    rcv::route(&mut n, here, &mut |x| v.push(x));
    assert!(matches!(&v[..], [Verdict::Port(9, _)]), "{v:?}");
    let there = build_direct(
        SocketAddr { node: ME, port: 9 },
        SocketAddr {
            node: THIRD,
            port: 1,
        },
        &RETURNABLE,
        b"x",
    )
    .expect("build");
    let mut v = Vec::new();
    rcv::route(&mut n, there, &mut |x| v.push(x));
    assert!(matches!(&v[..], [Verdict::Node(THIRD, _)]), "{v:?}");
}

#[test]
fn unreachable_and_port_gone_return_the_message_unless_it_was_returned_already() {
    let mut n = node(&[]);
    let m = direct(9, &RETURNABLE);
    let mut v = Vec::new();
    rcv::unreachable(&mut n, &m, &mut |x| v.push(x));
    assert_returned_to_peer(&v[0], ErrorCode::NoNode);
    let mut v = Vec::new();
    rcv::port_gone(&mut n, &m, &mut |x| v.push(x));
    assert_returned_to_peer(&v[0], ErrorCode::NoPort);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// A valid message toward this node (direct, named or multicast, returnable or not, maybe
    /// already returned), then up to four bytes overwritten anywhere.
    fn message() -> impl Strategy<Value = Vec<u8>> {
        (
            0u8..3,
            any::<bool>(),
            any::<bool>(),
            0u32..12,
            prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        )
            .prop_map(|(kind, returnable, returned, port, flips)| {
                let opts = if returnable {
                    RETURNABLE
                } else {
                    SendOpts::RDM
                };
                let m = match kind {
                    0 => {
                        let to = SocketAddr { node: ME, port };
                        build_direct(from_peer(), to, &opts, b"data").expect("build")
                    }
                    1 => BytesMut::from(&named(port % 3, port % 2 * port)[..]),
                    _ => {
                        let r = ServiceRange::new(6000, port % 4, 3 + port % 4).expect("valid");
                        build_mcast(from_peer(), r, &opts, b"m").expect("build")
                    }
                };
                let mut m = if returned {
                    tipc_transport::wire::reverse(&m, ErrorCode::NoPort, ME)
                        .map(|r| r.to_vec())
                        .unwrap_or_else(|| m.to_vec())
                } else {
                    m.to_vec()
                };
                for (i, b) in flips {
                    let n = m.len();
                    m[i.index(n)] = b;
                }
                m
            })
    }

    proptest! {
        /// Whatever arrives, the dispatch never panics, sends to existing ports only, and
        /// every message it sends on (rerouted or returned) is a valid TIPC message; a
        /// returned message comes out at most once per input.
        #[test]
        fn dispatch_of_any_message_gives_ports_that_exist_and_valid_messages_for_other_nodes(
            msg in message(),
            mcast_queue in any::<bool>(),
        ) {
            let mut n = node(&[1, 3, 5, 9]);
            bind(&mut n, ME, 6000, 0, 9, 5, Scope::Cluster);
            bind(&mut n, ME, 5000, 1, 1, 9, Scope::Cluster);
            bind(&mut n, THIRD, 5000, 2, 2, 4, Scope::Cluster);
            let queue = if mcast_queue { InputQueue::Mcast } else { InputQueue::Sockets };
            let v = run(&mut n, queue, Bytes::from(msg));
            let mut returned = 0;
            for x in &v {
                match x {
                    Verdict::Port(p, _) => prop_assert!(n.ports.contains(p), "port {p}"),
                    Verdict::Node(_, m) => {
                        let h = Header::new_checked(&m[..]);
                        prop_assert!(h.is_ok(), "invalid message out");
                        if h.is_ok_and(|h| h.errcode() != 0) {
                            returned += 1;
                        }
                    }
                    Verdict::Drop(_) => {}
                }
            }
            prop_assert!(returned <= 1, "{returned} returned copies");
        }
    }
}
