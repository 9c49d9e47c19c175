//! Name distribution ordering (spec §7.3, `tipc_named_dequeue`) as properties: a sender's
//! bulk and single updates, delivered in any order, are applied as in order; a seqno gap holds
//! everything after it.

use proptest::prelude::*;
use tipc_actors::addr::{Scope, ServiceRange};
use tipc_actors::name_distr::{NameDistributor, Update};
use tipc_actors::name_table::Publication;
use tipc_transport::wire::{DistrItem, NameDistrRepr, NameDistrType, INT_H_SIZE, ITEM_SIZE};

const RX: u32 = 0x6100_0000;
const TX: u32 = 0x6200_0000;

fn item(i: u32) -> DistrItem {
    DistrItem {
        type_: 1000 + i,
        lower: i,
        upper: i + 1,
        port: 7,
        key: i,
    }
}

fn update(mtype: NameDistrType, it: DistrItem) -> Update {
    let range = ServiceRange::new(it.type_, it.lower, it.upper).unwrap();
    match mtype {
        NameDistrType::Publication => Update::Publish(Publication {
            range,
            scope: Scope::Cluster,
            node: TX,
            port: it.port,
            key: it.key,
        }),
        NameDistrType::Withdrawal => Update::Withdraw {
            range,
            node: TX,
            port: it.port,
            key: it.key,
        },
    }
}

fn msg(mtype: NameDistrType, seq: u16, bulk: bool, last: bool, items: &[DistrItem]) -> Vec<u8> {
    let repr = NameDistrRepr {
        mtype,
        non_seq: false,
        bulk,
        last_bulk: last,
        non_legacy: true,
        bcast_ack: 0,
        ack: 0,
        seqno: 0,
        prevnode: TX,
        named_seqno: seq,
        w5: 0,
        orignode: TX,
        destnode: RX,
        items: &[],
    };
    let mut buf = vec![0u8; INT_H_SIZE + items.len() * ITEM_SIZE];
    repr.emit_with_items(items, &mut buf);
    buf
}

/// A sender's traffic toward one peer: `old` singles it sent before the bulk (seqnos before
/// `s0`, reflected in the bulk), the bulk in `bulk_msgs` messages with `named_seqno = s0` on the
/// last, then `n` singles `s0, s0+1, ...`.
struct Traffic {
    old: Vec<Vec<u8>>,
    bulk: Vec<Vec<u8>>,
    singles: Vec<Vec<u8>>,
    bulk_updates: Vec<Update>,
    single_updates: Vec<Update>,
}

fn traffic(s0: u16, old: usize, bulk_items: usize, bulk_msgs: usize, n: usize) -> Traffic {
    let bulk_msgs = bulk_msgs.clamp(1, bulk_items.max(1));
    let items: Vec<DistrItem> = (0..bulk_items.max(1) as u32).map(item).collect();
    let per = items.len().div_ceil(bulk_msgs);
    let chunks: Vec<&[DistrItem]> = items.chunks(per).collect();
    let bulk = chunks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let last = i + 1 == chunks.len();
            msg(
                NameDistrType::Publication,
                if last { s0 } else { 0 },
                true,
                last,
                c,
            )
        })
        .collect();
    let bulk_updates = items
        .iter()
        .map(|&it| update(NameDistrType::Publication, it))
        .collect();
    let old = (0..old)
        .map(|k| {
            let seq = s0.wrapping_sub(1 + k as u16);
            msg(
                NameDistrType::Publication,
                seq,
                false,
                false,
                &[item(500 + k as u32)],
            )
        })
        .collect();
    let mut singles = Vec::new();
    let mut single_updates = Vec::new();
    for j in 0..n {
        let seq = s0.wrapping_add(j as u16);
        let mtype = if j % 3 == 2 {
            NameDistrType::Withdrawal
        } else {
            NameDistrType::Publication
        };
        let it = item(100 + j as u32);
        singles.push(msg(mtype, seq, false, false, &[it]));
        single_updates.push(update(mtype, it));
    }
    Traffic {
        old,
        bulk,
        singles,
        bulk_updates,
        single_updates,
    }
}

/// Fisher-Yates driven by proptest-chosen swap indices.
fn permute<T>(v: &mut [T], swaps: &[usize]) {
    for i in (1..v.len()).rev() {
        let j = swaps.get(i).copied().unwrap_or(0) % (i + 1);
        v.swap(i, j);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn receive_any_permutation_applies_singles_in_seqno_order(
        s0 in any::<u16>(),
        old in 0usize..4,
        bulk_items in 1usize..6,
        bulk_msgs in 1usize..4,
        n in 0usize..12,
        swaps in prop::collection::vec(any::<usize>(), 32),
    ) {
        let t = traffic(s0, old, bulk_items, bulk_msgs, n);
        let mut all: Vec<(u8, Vec<u8>)> = Vec::new();
        all.extend(t.old.iter().cloned().map(|m| (0, m)));
        all.extend(t.bulk.iter().cloned().map(|m| (1, m)));
        all.extend(t.singles.iter().cloned().map(|m| (2, m)));
        permute(&mut all, &swaps);

        let mut nd = NameDistributor::new(RX);
        let mut got = Vec::new();
        for (_, m) in &all {
            got.extend(nd.handle_message(TX, m));
        }
        // Singles: exactly the in-order sequence, once each.
        let singles: Vec<_> = got.iter().filter(|u| !t.bulk_updates.contains(u)).cloned().collect();
        prop_assert_eq!(&singles, &t.single_updates);
        // Bulk: every item once (non-last bulk messages apply on arrival, so their place in
        // the sequence may differ).
        let mut bulk: Vec<_> = got.iter().filter(|u| t.bulk_updates.contains(u)).cloned().collect();
        prop_assert_eq!(bulk.len(), t.bulk_updates.len());
        bulk.sort_by_key(|u| format!("{u:?}"));
        let mut want = t.bulk_updates.clone();
        want.sort_by_key(|u| format!("{u:?}"));
        prop_assert_eq!(bulk, want);
        prop_assert_eq!(nd.pending(TX), 0);
        prop_assert_eq!(nd.stats().old_dropped, old as u64);

        // In-order delivery gives the same singles sequence, bulk first.
        let mut nd2 = NameDistributor::new(RX);
        let mut inorder = Vec::new();
        for m in t.bulk.iter().chain(&t.singles) {
            inorder.extend(nd2.handle_message(TX, m));
        }
        let mut want_inorder = t.bulk_updates.clone();
        want_inorder.extend(t.single_updates.iter().cloned());
        prop_assert_eq!(inorder, want_inorder);
    }

    #[test]
    fn receive_seqno_gap_holds_later_singles_until_filled(
        s0 in any::<u16>(),
        n in 2usize..12,
        gap_at in any::<prop::sample::Index>(),
    ) {
        let t = traffic(s0, 0, 1, 1, n);
        let g = gap_at.index(n);
        let mut nd = NameDistributor::new(RX);
        let mut got = nd.handle_message(TX, &t.bulk[0]);
        for (j, m) in t.singles.iter().enumerate() {
            if j != g {
                got.extend(nd.handle_message(TX, m));
            }
        }
        prop_assert_eq!(&got[1..], &t.single_updates[..g]);
        prop_assert_eq!(nd.pending(TX), n - g - 1);
        let rest = nd.handle_message(TX, &t.singles[g]);
        prop_assert_eq!(&rest[..], &t.single_updates[g..]);
        prop_assert_eq!(nd.pending(TX), 0);
    }

    #[test]
    fn sender_bulk_then_singles_roundtrip_to_receiver(
        pre in 0usize..5,
        post in 0usize..8,
        mss in 60usize..200,
    ) {
        // Our own sender: `pre` publications before the peer came up, then the bulk, then
        // `post` single updates; the receiver ends with all of them, in order.
        let mut tx = NameDistributor::new(TX);
        let pubs: Vec<Publication> = (0..(pre + post) as u32)
            .map(|i| match update(NameDistrType::Publication, item(i)) {
                Update::Publish(p) => p,
                _ => unreachable!(),
            })
            .collect();
        for p in &pubs[..pre] {
            tx.publish(p);
        }
        let mut wire = tx.bulk(RX, &pubs[..pre], mss).into_iter().map(|b| b.to_vec()).collect::<Vec<_>>();
        for p in &pubs[pre..] {
            let (_, mut m) = tx.publish(p).unwrap();
            tipc_actors::name_distr::stamp_destnode(&mut m, RX);
            wire.push(m.to_vec());
        }
        let mut rx = NameDistributor::new(RX);
        let got: Vec<Update> = wire.iter().flat_map(|m| rx.handle_message(TX, m)).collect();
        let mut want = vec![Update::Publish(Publication::node_state(TX))];
        want.extend(pubs.iter().map(|p| Update::Publish(*p)));
        prop_assert_eq!(got, want);
    }
}

/// Issue 14 item 9: a peer's NAME_DISTRIBUTOR messages published bindings in the name of any
/// node (`orignode`), this node included. Only the peer whose link delivered a message may
/// publish or withdraw through it; the other items are counted and dropped, and the message
/// still takes its place in the peer's named order (later singles apply).
#[test]
fn receive_items_naming_another_node_or_self_are_refused_and_counted() {
    const OTHER: u32 = 0x6300_0000;
    let mut nd = NameDistributor::new(RX);
    let as_node = |orignode: u32, mut m: Vec<u8>| {
        tipc_transport::wire::Header::new_unchecked(&mut m[..]).set_orignode(orignode);
        m
    };
    let bulk = msg(NameDistrType::Publication, 1, true, true, &[item(0)]);
    assert_eq!(
        nd.handle_message(TX, &bulk),
        vec![update(NameDistrType::Publication, item(0))]
    );
    // Singles 1 and 2 in the name of this node and of a third node; single 3 is the peer's.
    let self_publ = as_node(
        RX,
        msg(
            NameDistrType::Publication,
            1,
            false,
            false,
            &[item(1), item(2)],
        ),
    );
    let other_withdraw = as_node(
        OTHER,
        msg(NameDistrType::Withdrawal, 2, false, false, &[item(0)]),
    );
    let own = msg(NameDistrType::Publication, 3, false, false, &[item(3)]);
    assert_eq!(nd.handle_message(TX, &self_publ), vec![]);
    assert_eq!(nd.handle_message(TX, &other_withdraw), vec![]);
    assert_eq!(
        nd.handle_message(TX, &own),
        vec![update(NameDistrType::Publication, item(3))]
    );
    // A bulk (applied at once) in another node's name is refused as well.
    let other_bulk = as_node(
        OTHER,
        msg(NameDistrType::Publication, 0, true, false, &[item(4)]),
    );
    assert_eq!(nd.handle_message(TX, &other_bulk), vec![]);
    assert_eq!(nd.stats().foreign_items, 4);
    assert_eq!(nd.pending(TX), 0);
}
