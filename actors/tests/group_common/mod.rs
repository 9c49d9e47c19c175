//! Helpers shared by the group core tests: addresses, the messages a peer member builds,
//! draining a core's outputs, and comparing our messages with the kernel's.

#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use tipc_actors::addr::SocketAddr;
use tipc_actors::group::{GroupConfig, GroupCore, GroupEvent, Transmit};
use tipc_transport::wire::{DataRepr, DataType, GroupProtoRepr, GroupProtoType, INT_H_SIZE};
use tipc_transport::NodeAddr;

/// Node addresses of the spec's group captures (ga..gd).
pub const GA: NodeAddr = 0x6761_0000;
pub const GB: NodeAddr = 0x6762_0000;
pub const GC: NodeAddr = 0x6763_0000;
pub const GD: NodeAddr = 0x6764_0000;

pub fn sa(node: NodeAddr, port: u32) -> SocketAddr {
    SocketAddr { node, port }
}

pub fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

pub fn word(b: &[u8], i: usize) -> u32 {
    u32::from_be_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]])
}

/// Our message equals the kernel's on every group field: w0, w1 bits 31-16, w3 to the end
/// of the header, and the payload. The link-stamped w1 bits 15-0 and w2 are not compared.
pub fn assert_group_fields(ours: &[u8], kernel: &[u8], what: &str) {
    assert_eq!(ours.len(), kernel.len(), "{what}: length");
    let hwords = ((word(kernel, 0) >> 21) & 0xF) as usize;
    assert_eq!(word(ours, 0), word(kernel, 0), "{what}: w0");
    assert_eq!(
        word(ours, 1) & 0xFFFF_0000,
        word(kernel, 1) & 0xFFFF_0000,
        "{what}: w1 31-16"
    );
    for i in 3..hwords {
        assert_eq!(
            word(ours, i),
            word(kernel, i),
            "{what}: w{i} {:08x} vs {:08x}",
            word(ours, i),
            word(kernel, i)
        );
    }
    assert_eq!(
        &ours[hwords * 4..],
        &kernel[hwords * 4..],
        "{what}: payload"
    );
}

/// A GROUP_PROTOCOL message as a peer member's core builds it.
pub fn proto(
    from: SocketAddr,
    to: SocketAddr,
    mtype: GroupProtoType,
    w9_hi: u16,
    adv_win: u16,
) -> Vec<u8> {
    let r = GroupProtoRepr {
        mtype,
        dest_droppable: true,
        bcast_ack: 0,
        ack: 0,
        seqno: 0,
        prevnode: from.node,
        origport: from.port,
        destport: to.port,
        orignode: from.node,
        destnode: to.node,
        w9_hi,
        adv_win,
        data: &[],
    };
    let mut b = vec![0u8; INT_H_SIZE];
    r.emit(&mut b);
    b
}

/// A group data message from a peer member as it is on the wire: a unicast to `to`, or a
/// broadcast/multicast replicast copy for `to`'s node (destport 0, w0 bit 18 set).
#[allow(clippy::too_many_arguments)]
pub fn data(
    from: SocketAddr,
    to: SocketAddr,
    mtype: DataType,
    group: u32,
    w9: u32,
    seqno: u16,
    ack_req: bool,
    payload: &[u8],
) -> Bytes {
    let r = DataRepr {
        hsize: 44,
        importance: 0,
        mtype,
        non_seq: false,
        dest_droppable: true,
        bit18: mtype != DataType::GrpUcast,
        syn: false,
        errcode: 0,
        reroute_cnt: 0,
        lookup_scope: 2,
        bcast_ack: 0,
        ack: 0,
        seqno: 0,
        prevnode: from.node,
        origport: from.port,
        destport: if mtype == DataType::GrpUcast {
            to.port
        } else {
            0
        },
        orignode: from.node,
        destnode: to.node,
        name_type: group,
        name_instance: w9,
        name_upper: 0,
        grp_bc_seqno: seqno,
        grp_bc_ack_req: ack_req,
        payload,
    };
    let mut b = BytesMut::zeroed(r.buffer_len());
    r.emit(&mut b);
    b.freeze()
}

pub fn bcast(from: SocketAddr, to: SocketAddr, group: u32, seqno: u16, payload: &[u8]) -> Bytes {
    data(
        from,
        to,
        DataType::GrpBcast,
        group,
        0,
        seqno,
        false,
        payload,
    )
}

pub fn ucast(from: SocketAddr, to: SocketAddr, group: u32, seqno: u16, payload: &[u8]) -> Bytes {
    data(
        from,
        to,
        DataType::GrpUcast,
        group,
        0,
        seqno,
        false,
        payload,
    )
}

pub fn transmits(g: &mut GroupCore) -> Vec<Transmit> {
    std::iter::from_fn(|| g.poll_transmit()).collect()
}

pub fn events(g: &mut GroupCore) -> Vec<GroupEvent> {
    std::iter::from_fn(|| g.poll_event()).collect()
}

/// The GROUP_PROTOCOL messages among `t`, as (destination, type, w9 hi, adv_win).
pub fn protos(t: &[Transmit]) -> Vec<(SocketAddr, GroupProtoType, u16, u16)> {
    t.iter()
        .filter_map(|t| match t {
            Transmit::Node { msg, .. } if msg.len() == INT_H_SIZE && msg[0] == 0x53 => {
                let h = tipc_transport::wire::Header::new_checked(&msg[..]).ok()?;
                let r = GroupProtoRepr::parse(&h).ok()?;
                Some((sa(r.destnode, r.destport), r.mtype, r.w9_hi, r.adv_win))
            }
            _ => None,
        })
        .collect()
}

/// The only message of `t`, which must go to one node.
pub fn only_node_msg(t: &[Transmit]) -> Bytes {
    assert_eq!(t.len(), 1, "one transmit expected: {t:?}");
    match &t[0] {
        Transmit::Node { msg, .. } => msg.clone(),
        other => panic!("not a unicast: {other:?}"),
    }
}

/// Payloads of the data messages among `e`, as strings; member events as "+port"/"-port".
pub fn summary(e: &[GroupEvent]) -> Vec<String> {
    e.iter()
        .map(|e| match e {
            GroupEvent::Message(m) => String::from_utf8_lossy(&m.payload()).into_owned(),
            GroupEvent::MemberUp { member, .. } => format!("+{}", member.port),
            GroupEvent::MemberDown { member, .. } => format!("-{}", member.port),
        })
        .collect()
}

pub fn cfg(type_: u32, instance: u32, events: bool) -> GroupConfig {
    GroupConfig {
        member_events: events,
        ..GroupConfig::new(type_, instance)
    }
}

/// A core at `own` joined with the PUBLISHED members `peers`, each then admitted by its
/// JOIN (`syncpt` 0, `adv` window); outputs, events and the wake-up flag drained.
pub fn joined(own: SocketAddr, c: GroupConfig, peers: &[(SocketAddr, u32)], adv: u16) -> GroupCore {
    let mut g = GroupCore::new(own, c).expect("core");
    g.join(peers.iter().copied()).expect("join");
    for (p, _) in peers {
        g.handle_proto(&proto(*p, own, GroupProtoType::Join, 0, adv));
    }
    transmits(&mut g);
    events(&mut g);
    let _ = g.poll_wakeup();
    g
}

/// A kernel frame of the repository's Ethernet captures (`transport/tests/vectors/eth`),
/// as captured (link fields included).
pub fn eth_vector(prefix: &str) -> Vec<u8> {
    let dir = format!(
        "{}/../transport/tests/vectors/eth",
        env!("CARGO_MANIFEST_DIR")
    );
    let name = std::fs::read_dir(&dir)
        .expect("vectors dir")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with(prefix))
        .unwrap_or_else(|| panic!("no vector {prefix}"));
    let text = std::fs::read_to_string(format!("{dir}/{name}")).expect("vector");
    let body: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    hex(&body)
}
