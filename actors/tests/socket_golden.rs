//! Golden checks of the datagram socket core against messages captured from Linux 6.1
//! (`transport/tests/vectors`, see FORMAT.md and OBSERVATIONS.md there): building the same
//! message gives the same bytes, except for what the link stamps on transmission (w1
//! `bcast_ack`, w2 `ack`/`seqno`; on the broadcast link also w0 `non_seq` and w5 = network id).
//!
//! Spec: tipc-protocol.md §2.2, §5.4, §9.1, §9.2.

use std::path::{Path, PathBuf};

use tipc_actors::addr::{Scope, ServiceAddr, ServiceRange, SocketAddr};
use tipc_actors::socket::{
    build_direct, build_mcast, build_named, mcast_sync, replicast_copy, reverse, SendOpts,
};
use tipc_transport::wire::{DataRepr, DataType, ErrorCode, Header};

const NODE_A: u32 = 0x6100_0000;
const NODE_B: u32 = 0x6200_0000;

fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../transport/tests/vectors")
}

fn decode_hex(text: &str) -> Vec<u8> {
    let hex: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(|l| l.chars())
        .filter(|c| !c.is_whitespace())
        .collect();
    assert_eq!(hex.len() % 2, 0, "odd hex length");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit"))
        .collect()
}

fn vector(name: &str) -> Vec<u8> {
    let text = std::fs::read_to_string(vectors_dir().join(name)).expect("read vector");
    decode_hex(&text)
}

/// Vectors whose file name contains `part` and none of `exclude`.
fn vectors_matching(part: &str, exclude: &[&str]) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for bearer in ["udp", "eth"] {
        let mut names: Vec<String> = std::fs::read_dir(vectors_dir().join(bearer))
            .expect("vector dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".hex") && n.contains(part))
            .filter(|n| !exclude.iter().any(|x| n.contains(x)))
            .collect();
        names.sort();
        for n in names {
            let path = format!("{bearer}/{n}");
            let bytes = vector(&path);
            out.push((path, bytes));
        }
    }
    out
}

/// Zero the fields the link stamps: w1 bits 15-0 (bcast_ack) and w2 (ack, seqno).
fn mask_link(mut b: Vec<u8>) -> Vec<u8> {
    b[6] = 0;
    b[7] = 0;
    b[8..12].fill(0);
    b
}

/// Also zero what the broadcast link stamps: w0 bit 20 (non_seq) and w5 (network id).
fn mask_bcast(b: Vec<u8>) -> Vec<u8> {
    let mut b = mask_link(b);
    b[1] &= !0x10;
    b[20..24].fill(0);
    b
}

fn parse(v: &[u8]) -> DataRepr<'_> {
    let h = Header::new_checked(v).expect("valid vector");
    DataRepr::parse(&h).expect("data vector")
}

#[test]
fn build_direct_matches_kernel_rdm_b2a() {
    // udp/061: RDM from b (port 563333518) to a's socket 2053101404, payload "L1", defaults.
    let v = vector("udp/061-data-low-direct-b2a.hex");
    let own = SocketAddr {
        node: NODE_B,
        port: 563_333_518,
    };
    let dest = SocketAddr {
        node: NODE_A,
        port: 2_053_101_404,
    };
    let m = build_direct(own, dest, &SendOpts::RDM, b"L1").expect("build");
    assert_eq!(mask_link(m.to_vec()), mask_link(v));
}

#[test]
fn build_direct_matches_kernel_not_droppable() {
    // udp/120: RDM with TIPC_DEST_DROPPABLE cleared, to the dead port 1, payload "x".
    let v = vector("udp/120-data-low-direct-a2b.hex");
    let own = SocketAddr {
        node: NODE_A,
        port: 1_975_048_484,
    };
    let dest = SocketAddr {
        node: NODE_B,
        port: 1,
    };
    let opts = SendOpts {
        dest_droppable: false,
        ..SendOpts::RDM
    };
    let m = build_direct(own, dest, &opts, b"x").expect("build");
    assert_eq!(mask_link(m.to_vec()), mask_link(v));
}

#[test]
fn build_named_matches_kernel_rdm_a2b() {
    // udp/041: RDM to {1000, 1}, resolved to b's port 2136860445, payload "p3-1".
    let v = vector("udp/041-data-low-named-a2b.hex");
    let own = SocketAddr {
        node: NODE_A,
        port: 3_676_451_134,
    };
    let dest = SocketAddr {
        node: NODE_B,
        port: 2_136_860_445,
    };
    let name = ServiceAddr {
        type_: 1000,
        instance: 1,
    };
    let m = build_named(own, name, dest, Scope::Cluster, &SendOpts::RDM, b"p3-1").expect("build");
    assert_eq!(mask_link(m.to_vec()), mask_link(v));
}

#[test]
fn build_direct_matches_every_captured_rdm_direct_message() {
    let vs = vectors_matching("data-low-direct", &["-err-"]);
    assert!(
        vs.len() >= 8,
        "expected the direct vectors, got {}",
        vs.len()
    );
    for (name, v) in vs {
        let r = parse(&v);
        assert_eq!(r.mtype, DataType::Direct, "{name}");
        let own = SocketAddr {
            node: r.orignode,
            port: r.origport,
        };
        let dest = SocketAddr {
            node: r.destnode,
            port: r.destport,
        };
        let opts = SendOpts {
            importance: r.importance,
            dest_droppable: r.dest_droppable,
            src_droppable: r.bit18,
        };
        let m = build_direct(own, dest, &opts, r.payload).expect("build");
        assert_eq!(mask_link(m.to_vec()), mask_link(v.clone()), "{name}");
    }
}

#[test]
fn build_named_matches_every_captured_rdm_named_message() {
    // The `-syn` ones are connection SYNs (SEQPACKET/STREAM), not datagrams.
    let vs = vectors_matching("data-low-named", &["-syn", "-err-"]);
    assert!(
        vs.len() >= 5,
        "expected the named vectors, got {}",
        vs.len()
    );
    for (name, v) in vs {
        let r = parse(&v);
        let own = SocketAddr {
            node: r.orignode,
            port: r.origport,
        };
        let dest = SocketAddr {
            node: r.destnode,
            port: r.destport,
        };
        let sa = ServiceAddr {
            type_: r.name_type,
            instance: r.name_instance,
        };
        let scope = if r.lookup_scope == 3 {
            Scope::Node
        } else {
            Scope::Cluster
        };
        let opts = SendOpts {
            importance: r.importance,
            dest_droppable: r.dest_droppable,
            src_droppable: r.bit18,
        };
        let m = build_named(own, sa, dest, scope, &opts, r.payload).expect("build");
        assert_eq!(mask_link(m.to_vec()), mask_link(v.clone()), "{name}");
    }
}

#[test]
fn build_mcast_replicast_copy_matches_kernel_after_method_switch() {
    // udp/116: RDM multicast to {1000, 10..19}, payload "mc", sent by replicast to b, with SYN
    // because it is the first message after the switch from broadcast (RBCTL).
    // udp/115: the header-only dummy of that switch, sent on the broadcast link.
    let data_v = vector("udp/116-data-low-mcast-a2b-syn.hex");
    let dummy_v = vector("udp/115-data-low-mcast-a2all-err-no_port.hex");
    let own = SocketAddr {
        node: NODE_A,
        port: 518_848_522,
    };
    let range = ServiceRange::new(1000, 10, 19).unwrap();
    let mut m = build_mcast(own, range, &SendOpts::RDM, b"mc").expect("build");
    // Before replication: lookup_scope 2, destnode/destport 0, not rcast, no SYN.
    {
        let r = parse(&m);
        assert_eq!((r.lookup_scope, r.destnode, r.destport), (2, 0, 0));
        assert!(!r.bit18 && !r.syn);
    }
    // The new method is replicast: is_rcast on the message, then the sync.
    m[1] |= 0x04;
    let dummy = mcast_sync(&mut m).expect("sync dummy");
    assert_eq!(mask_bcast(dummy.to_vec()), mask_bcast(dummy_v));
    let copy = replicast_copy(&m, NODE_B).expect("copy");
    assert_eq!(mask_link(copy.to_vec()), mask_link(data_v));
}

#[test]
fn build_mcast_matches_every_captured_replicast_copy() {
    let vs = vectors_matching("data-low-mcast-a2b", &["-err-"]);
    assert!(
        vs.len() >= 3,
        "expected the mcast vectors, got {}",
        vs.len()
    );
    for (name, v) in vs {
        let r = parse(&v);
        let own = SocketAddr {
            node: r.orignode,
            port: r.origport,
        };
        let range = ServiceRange::new(r.name_type, r.name_instance, r.name_upper).unwrap();
        let opts = SendOpts {
            importance: r.importance,
            dest_droppable: r.dest_droppable,
            src_droppable: false,
        };
        let mut m = build_mcast(own, range, &opts, r.payload).expect("build");
        if r.syn {
            mcast_sync(&mut m).expect("sync");
        }
        let copy = replicast_copy(&m, r.destnode).expect("copy");
        assert_eq!(mask_link(copy.to_vec()), mask_link(v.clone()), "{name}");
    }
}

#[test]
fn reverse_matches_kernel_returned_message_no_port() {
    // udp/120 went to b's dead port 1 with dest_droppable 0; b returned udp/121.
    // eth/067 -> eth/068 is the same exchange on the Ethernet bearer.
    for (orig, ret) in [
        (
            "udp/120-data-low-direct-a2b.hex",
            "udp/121-data-low-direct-b2a-err-no_port.hex",
        ),
        (
            "eth/067-data-low-direct-a2b.hex",
            "eth/068-data-low-direct-b2a-err-no_port.hex",
        ),
    ] {
        let o = vector(orig);
        let r = reverse(&o, ErrorCode::NoPort, NODE_B).expect("returned");
        assert_eq!(mask_link(r.to_vec()), mask_link(vector(ret)), "{orig}");
    }
}

#[test]
fn reverse_of_captured_droppable_datagram_is_none() {
    // udp/061 has dest_droppable set (RDM default): it is dropped, never returned.
    let v = vector("udp/061-data-low-direct-b2a.hex");
    assert_eq!(reverse(&v, ErrorCode::NoPort, NODE_A), None);
}

#[test]
fn reverse_of_captured_returned_message_is_none() {
    let v = vector("udp/121-data-low-direct-b2a-err-no_port.hex");
    assert_eq!(reverse(&v, ErrorCode::NoPort, NODE_A), None);
}
