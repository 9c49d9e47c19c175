//! Name distribution (`tipc_actors::name_distr`) against the kernel's NAME_DISTRIBUTOR golden
//! vectors (transport/tests/vectors/udp, kernel 6.1, node a = 0x61000000, b = 0x62000000),
//! plus the sending and receiving rules of spec §7.

use tipc_actors::addr::{Scope, ServiceRange};
use tipc_actors::name_distr::{stamp_destnode, NameDistributor, Update, MAX_PENDING};
use tipc_actors::name_table::Publication;
use tipc_transport::wire::{
    DistrItem, Header, NameDistrRepr, NameDistrType, Seqno, INT_H_SIZE, ITEM_SIZE,
};

const A: u32 = 0x6100_0000;
const B: u32 = 0x6200_0000;

fn vector(prefix: &str) -> Vec<u8> {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../transport/tests/vectors/udp"
    );
    let name = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .find(|n| n.starts_with(prefix) && n.contains("name-distributor"))
        .unwrap_or_else(|| panic!("no vector {prefix}"));
    let text = std::fs::read_to_string(format!("{dir}/{name}")).unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.split_whitespace())
        .flat_map(|w| u32::from_str_radix(w, 16).unwrap().to_be_bytes())
        .collect()
}

fn words(b: &[u8]) -> Vec<u32> {
    b.chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn r(type_: u32, lower: u32, upper: u32) -> ServiceRange {
    ServiceRange::new(type_, lower, upper).unwrap()
}

fn publ(node: u32, range: ServiceRange, port: u32, key: u32) -> Publication {
    Publication {
        range,
        scope: Scope::Cluster,
        node,
        port,
        key,
    }
}

/// Build a NAME_DISTRIBUTOR message by hand (for peers other than ours).
fn msg(
    mtype: NameDistrType,
    orig: u32,
    named_seqno: u16,
    bulk: bool,
    last_bulk: bool,
    non_legacy: bool,
    items: &[DistrItem],
) -> Vec<u8> {
    let repr = NameDistrRepr {
        mtype,
        non_seq: false,
        bulk,
        last_bulk,
        non_legacy,
        bcast_ack: 0,
        ack: 0,
        seqno: 0,
        prevnode: orig,
        named_seqno,
        w5: 0,
        orignode: orig,
        destnode: A,
        items: &[],
    };
    let mut buf = vec![0u8; INT_H_SIZE + items.len() * ITEM_SIZE];
    repr.emit_with_items(items, &mut buf);
    buf
}

fn item(type_: u32, lower: u32, upper: u32, port: u32, key: u32) -> DistrItem {
    DistrItem {
        type_,
        lower,
        upper,
        port,
        key,
    }
}

// ------------------------------------------------------------------ receiving kernel vectors

#[test]
fn receive_kernel_lastbulk_yields_node_state_publication() {
    let mut nd = NameDistributor::new(A);
    let u = nd.handle_message(B, &vector("020-"));
    assert_eq!(u, vec![Update::Publish(Publication::node_state(B))]);
    assert_eq!(nd.stats().malformed, 0);
}

#[test]
fn receive_kernel_singles_applied_in_order_and_gap_holds() {
    let mut nd = NameDistributor::new(A);
    assert_eq!(nd.handle_message(B, &vector("109-")).len(), 1);
    assert_eq!(
        nd.handle_message(B, &vector("112-")),
        vec![Update::Publish(publ(
            B,
            r(1000, 1, 1),
            0xecad_2e79,
            0xecad_2e7a
        ))]
    );
    assert_eq!(
        nd.handle_message(B, &vector("113-")),
        vec![Update::Publish(publ(
            B,
            r(1000, 10, 19),
            0xecad_2e79,
            0xecad_2e7b
        ))]
    );
    assert_eq!(
        nd.handle_message(B, &vector("122-")),
        vec![Update::Publish(publ(
            B,
            r(2000, 1, 1),
            0x5617_9444,
            0x5617_9445
        ))]
    );
    // b's named seqnos 4 and 5 were not captured: 6, 7, 8 wait.
    for v in ["145-", "146-", "147-"] {
        assert_eq!(nd.handle_message(B, &vector(v)), vec![]);
    }
    assert_eq!(nd.pending(B), 3);
    // Seqnos 4 and 5 arrive (legacy-free singles built by hand): everything drains in order.
    let p4 = msg(
        NameDistrType::Publication,
        B,
        4,
        false,
        false,
        true,
        &[item(4242, 2, 2, 0x3b70_30d1, 0x3b70_30d2)],
    );
    let p5 = msg(
        NameDistrType::Publication,
        B,
        5,
        false,
        false,
        true,
        &[item(3000, 1, 1, 0x69dd_9054, 0x69dd_9055)],
    );
    assert_eq!(nd.handle_message(B, &p5), vec![]);
    let u = nd.handle_message(B, &p4);
    let withdraw = |range, port, key| Update::Withdraw {
        range,
        node: B,
        port,
        key,
    };
    assert_eq!(
        u,
        vec![
            Update::Publish(publ(B, r(4242, 2, 2), 0x3b70_30d1, 0x3b70_30d2)),
            Update::Publish(publ(B, r(3000, 1, 1), 0x69dd_9054, 0x69dd_9055)),
            withdraw(r(4242, 2, 2), 0x3b70_30d1, 0x3b70_30d2),
            withdraw(r(3000, 1, 1), 0x69dd_9054, 0x69dd_9055),
            withdraw(r(2000, 1, 1), 0x5617_9444, 0x5617_9445),
        ]
    );
    assert_eq!(nd.pending(B), 0);
}

#[test]
fn receive_kernel_single_before_bulk_waits_for_bulk() {
    let mut nd = NameDistributor::new(B);
    assert_eq!(nd.handle_message(A, &vector("128-")), vec![]);
    assert_eq!(nd.pending(A), 1);
    let u = nd.handle_message(A, &vector("111-"));
    assert_eq!(
        u,
        vec![
            Update::Publish(Publication::node_state(A)),
            Update::Publish(publ(A, r(4242, 1, 1), 0xb112_c013, 0xb112_c014)),
        ]
    );
    assert_eq!(
        nd.handle_message(A, &vector("144-")),
        vec![Update::Withdraw {
            range: r(4242, 1, 1),
            node: A,
            port: 0xb112_c013,
            key: 0xb112_c014
        }]
    );
    // A duplicate (e.g. over the other link) is older than rcv_nxt: dropped.
    assert_eq!(nd.handle_message(A, &vector("144-")), vec![]);
    assert_eq!(nd.stats().old_dropped, 1);
    assert_eq!(nd.pending(A), 0);
}

// ------------------------------------------------------------------ sending vs kernel vectors

#[test]
fn bulk_with_nothing_published_matches_kernel_lastbulk_except_link_fields() {
    let nd = NameDistributor::new(B);
    let msgs = nd.bulk(A, &[], 14000);
    assert_eq!(msgs.len(), 1);
    let ours = words(&msgs[0]);
    let kernel = words(&vector("020-"));
    assert_eq!(ours.len(), kernel.len());
    for (i, (o, k)) in ours.iter().zip(&kernel).enumerate() {
        match i {
            1 => assert_eq!(o & 0xFFFF_0000, k & 0xFFFF_0000, "w1"),
            2 => {}
            _ => assert_eq!(o, k, "w{i}"),
        }
    }
    // Passing the node-state publication explicitly gives the same bulk.
    assert_eq!(nd.bulk(A, &[Publication::node_state(B)], 14000), msgs);
}

#[test]
fn single_publications_match_kernel_except_broadcast_link_fields() {
    let mut nd = NameDistributor::new(B);
    let first = publ(B, r(1000, 1, 1), 0xecad_2e79, 0xecad_2e7a);
    let second = publ(B, r(1000, 10, 19), 0xecad_2e79, 0xecad_2e7b);
    for (p, v, seq) in [(first, "112-", 1), (second, "113-", 2)] {
        let (s, m) = nd.publish(&p).unwrap();
        assert_eq!(s, Seqno(seq));
        let ours = words(&m);
        let kernel = words(&vector(v));
        assert_eq!(ours.len(), kernel.len());
        for (i, (o, k)) in ours.iter().zip(&kernel).enumerate() {
            match i {
                // The kernel sent these on the broadcast link: non_seq (w0 bit 20), link
                // seqno (w2) and netid (w5) are the broadcast link's.
                0 => assert_eq!(o | 1 << 20, *k, "w0"),
                2 | 5 => {}
                _ => assert_eq!(o, k, "w{i}"),
            }
        }
    }
}

#[test]
fn single_withdrawal_matches_kernel_and_continues_seqno() {
    let mut nd = NameDistributor::new(A);
    let p = publ(A, r(4242, 1, 1), 0xb112_c013, 0xb112_c014);
    assert_eq!(nd.publish(&p).unwrap().0, Seqno(1));
    let (s, m) = nd.withdraw(&p).unwrap();
    assert_eq!(s, Seqno(2));
    let ours = words(&m);
    let kernel = words(&vector("144-"));
    assert_eq!(ours[1], kernel[1]);
    assert_eq!(ours[4], kernel[4]);
    assert_eq!(&ours[6..], &kernel[6..]);
}

// ------------------------------------------------------------------ sending rules

#[test]
fn bulk_splits_by_mss_and_marks_only_the_last() {
    let mut nd = NameDistributor::new(A);
    let mut own: Vec<Publication> = (0..5).map(|i| publ(A, r(100, i, i), 7, i)).collect();
    own.push(Publication {
        scope: Scope::Node,
        ..publ(A, r(100, 9, 9), 7, 9)
    });
    for p in &own[..2] {
        nd.publish(p);
    }
    // Two items per message: 40 + 2 * 20 = 80, plus 19 bytes that do not fit a third.
    let msgs = nd.bulk(B, &own, 99);
    assert_eq!(msgs.len(), 3);
    let mut items = Vec::new();
    for (i, m) in msgs.iter().enumerate() {
        let h = Header::new_checked(&m[..]).unwrap();
        let repr = NameDistrRepr::parse(&h).unwrap();
        assert!(repr.bulk && repr.non_legacy && repr.bc_ack_invalid());
        assert_eq!(repr.last_bulk, i == 2);
        assert_eq!(repr.destnode, B);
        assert_eq!((repr.prevnode, repr.orignode), (A, A));
        assert_eq!(repr.mtype, NameDistrType::Publication);
        assert_eq!(repr.item_count(), 2);
        if i == 2 {
            assert_eq!(repr.named_seqno, 3);
        }
        items.extend(repr.iter());
    }
    assert_eq!(items[0], item(0, A, A, 0, A));
    assert_eq!(
        items[1..],
        own[..5]
            .iter()
            .map(|p| item(100, p.range.lower(), p.range.lower(), 7, p.key))
            .collect::<Vec<_>>()[..]
    );
}

#[test]
fn node_scope_publication_is_not_distributed_and_uses_no_seqno() {
    let mut nd = NameDistributor::new(A);
    let p = Publication {
        scope: Scope::Node,
        ..publ(A, r(100, 1, 1), 7, 8)
    };
    assert!(nd.publish(&p).is_none());
    assert!(nd.withdraw(&p).is_none());
    assert_eq!(nd.snd_nxt(), Seqno(1));
}

#[test]
fn stamp_destnode_sets_w7_only() {
    let mut nd = NameDistributor::new(A);
    let (_, m) = nd.publish(&publ(A, r(100, 1, 1), 7, 8)).unwrap();
    let mut copy = m.clone();
    stamp_destnode(&mut copy, B);
    let (w0, w1) = (words(&m), words(&copy));
    for i in 0..w0.len() {
        if i == 7 {
            assert_eq!((w0[i], w1[i]), (0, B));
        } else {
            assert_eq!(w0[i], w1[i]);
        }
    }
}

// ------------------------------------------------------------------ receiving rules

#[test]
fn receive_legacy_message_applied_at_once() {
    let mut nd = NameDistributor::new(A);
    let m = msg(
        NameDistrType::Publication,
        B,
        77,
        false,
        false,
        false,
        &[item(5000, 1, 2, 3, 4)],
    );
    assert_eq!(
        nd.handle_message(B, &m),
        vec![Update::Publish(publ(B, r(5000, 1, 2), 3, 4))]
    );
}

#[test]
fn receive_malformed_and_bad_items_counted_and_dropped() {
    let mut nd = NameDistributor::new(A);
    let good = msg(
        NameDistrType::Publication,
        B,
        1,
        true,
        true,
        true,
        &[item(5000, 3, 2, 1, 1), item(5000, 1, 2, 1, 2)],
    );
    assert_eq!(
        nd.handle_message(B, &good),
        vec![Update::Publish(publ(B, r(5000, 1, 2), 1, 2))]
    );
    assert_eq!(nd.stats().bad_items, 1);
    assert_eq!(nd.handle_message(B, &good[..50]), vec![]);
    assert_eq!(nd.handle_message(B, &[]), vec![]);
    let mut odd = good.clone();
    odd[3] = 50; // size 50: not a whole number of items
    assert_eq!(nd.handle_message(B, &odd[..50]), vec![]);
    assert_eq!(nd.stats().malformed, 3);
}

#[test]
fn node_down_forgets_queue_and_receive_state() {
    let mut nd = NameDistributor::new(A);
    let single = |s| {
        msg(
            NameDistrType::Publication,
            B,
            s,
            false,
            false,
            true,
            &[item(5000, s as u32, s as u32, 1, s as u32)],
        )
    };
    let bulk = |s| {
        msg(
            NameDistrType::Publication,
            B,
            s,
            true,
            true,
            true,
            &[item(0, B, B, 0, B)],
        )
    };
    assert_eq!(nd.handle_message(B, &single(9)), vec![]);
    assert_eq!(nd.pending(B), 1);
    nd.node_down(B);
    assert_eq!(nd.pending(B), 0);
    // A fresh contact starts from its new bulk; the old queued single is gone.
    assert_eq!(nd.handle_message(B, &bulk(9)).len(), 1);
    assert_eq!(nd.handle_message(B, &single(10)), vec![]);
    assert_eq!(nd.handle_message(B, &single(9)).len(), 2);
    assert_eq!(nd.pending(B), 0);
}

#[test]
fn receive_queue_is_bounded_per_peer() {
    let mut nd = NameDistributor::new(A);
    for s in 0..=MAX_PENDING as u16 {
        let m = msg(
            NameDistrType::Publication,
            B,
            s + 1,
            false,
            false,
            true,
            &[item(5000, 1, 1, 1, 1)],
        );
        nd.handle_message(B, &m);
    }
    assert_eq!(nd.pending(B), MAX_PENDING);
    assert_eq!(nd.stats().overflow_dropped, 1);
    // Other peers are unaffected.
    let m = msg(
        NameDistrType::Publication,
        0x6300_0000,
        1,
        true,
        true,
        true,
        &[item(0, 1, 1, 0, 1)],
    );
    assert_eq!(nd.handle_message(0x6300_0000, &m).len(), 1);
}
