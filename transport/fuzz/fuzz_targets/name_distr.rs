//! Fuzz target: name distribution. Arbitrary bytes into the NAME_DISTRIBUTOR parser
//! (`tipc_transport::wire::NameDistrRepr`, with re-emit), then the input read as a script of
//! operations on the actors' sans-IO name service (`tipc_actors::name_distr::NameService` over
//! a `BindingTable`, as the name table actor and the simulation drive it): messages from two
//! peers (raw bytes, or well-formed messages with fuzzed fields, items and orignode), node up
//! and down, local publish and withdraw. After every step (through the table's events, so a
//! step costs what it changed, not the table's size):
//! * the table gains and loses bindings only of this node and of the two peers, never of a
//!   third node, and a peer's are cluster scope;
//! * this node's bindings change only by its own publish and withdraw (a peer cannot add or
//!   remove them), and at the end they are exactly those it published;
//! * a peer that went down has no binding left and no message waiting;
//! * no peer has more than `MAX_PENDING` messages waiting;
//! * every message the service sends parses, in this node's name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeSet;
use tipc_actors::addr::{Scope, ServiceRange};
use tipc_actors::name_distr::{NameService, MAX_PENDING};
use tipc_actors::name_table::{BindingTable, Publication, TableEvent};
use tipc_transport::wire::{
    DistrItem, Header, NameDistrRepr, NameDistrType, INT_H_SIZE, ITEM_SIZE,
};

const OWN: u32 = 0x0100_1001;
const PEERS: [u32; 2] = [0x0100_1002, 0x0100_1003];

/// Reads the script: each call takes bytes from the front, zeros once the input is used up.
struct Script<'a>(&'a [u8]);

impl Script<'_> {
    fn bytes(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
    fn u8(&mut self) -> u8 {
        self.bytes(1).first().copied().unwrap_or(0)
    }
    fn u16(&mut self) -> u16 {
        u16::from(self.u8()) << 8 | u16::from(self.u8())
    }
    fn u32(&mut self) -> u32 {
        u32::from(self.u16()) << 16 | u32::from(self.u16())
    }
}

fn check_parser(data: &[u8]) {
    let Ok(h) = Header::new_checked(data) else {
        return;
    };
    let Ok(r) = NameDistrRepr::parse(&h) else {
        return;
    };
    assert_eq!(r.item_count() * ITEM_SIZE, r.items.len());
    assert_eq!(r.iter().count(), r.item_count());
    let mut out = vec![0u8; r.buffer_len()];
    assert_eq!(r.emit(&mut out), r.buffer_len());
    let h2 = Header::new_checked(&out[..]).expect("re-emitted header checks");
    let again = NameDistrRepr::parse(&h2).expect("re-emitted message parses");
    assert_eq!(again, r);
    let items: Vec<DistrItem> = r.iter().collect();
    let mut out2 = vec![0u8; r.buffer_len()];
    r.emit_with_items(&items, &mut out2);
    assert_eq!(out, out2);
}

fn built_message(s: &mut Script) -> Vec<u8> {
    let mtype = if s.u8() & 1 == 0 {
        NameDistrType::Publication
    } else {
        NameDistrType::Withdrawal
    };
    let flags = s.u8();
    let named_seqno = s.u16();
    let orignode = match s.u8() % 4 {
        0 | 1 => PEERS[0],
        2 => OWN,
        _ => PEERS[1],
    };
    let n = usize::from(s.u8() % 8);
    let items: Vec<DistrItem> = (0..n)
        .map(|_| DistrItem {
            type_: u32::from(s.u8()) + 60,
            lower: u32::from(s.u16()),
            upper: u32::from(s.u16()),
            port: s.u32(),
            key: u32::from(s.u8()),
        })
        .collect();
    let repr = NameDistrRepr {
        mtype,
        non_seq: false,
        bulk: flags & 1 != 0,
        last_bulk: flags & 2 != 0,
        non_legacy: flags & 4 != 0,
        bcast_ack: 0,
        ack: 0,
        seqno: 0,
        prevnode: orignode,
        named_seqno,
        w5: 0,
        orignode,
        destnode: OWN,
        items: &[],
    };
    let mut buf = vec![0u8; INT_H_SIZE + n * ITEM_SIZE];
    repr.emit_with_items(&items, &mut buf);
    buf
}

fuzz_target!(|data: &[u8]| {
    check_parser(data);

    let mut table = BindingTable::new(OWN);
    let mut ns = NameService::new(OWN, &mut table);
    while table.poll_event().is_some() {}
    // This node's bindings as it published them (the node-state binding to start with).
    let mut mine: BTreeSet<Publication> = [Publication::node_state(OWN)].into();
    let mut s = Script(data);
    let mut steps = 0;
    while !s.0.is_empty() && steps < 256 {
        steps += 1;
        let op = s.u8();
        let peer = PEERS[usize::from(op >> 7)];
        let local = matches!(op % 8, 6 | 7);
        match op % 8 {
            0 | 1 => {
                let len = usize::from(s.u16());
                let msg = s.bytes(len).to_vec();
                ns.handle_message(&mut table, peer, &msg);
            }
            2 | 3 => {
                let msg = built_message(&mut s);
                check_parser(&msg);
                ns.handle_message(&mut table, peer, &msg);
            }
            4 => ns.handle_node_up(&table, peer, 60 + usize::from(s.u16())),
            5 => {
                ns.handle_node_down(&mut table, peer);
                assert!(
                    table.bindings_of_node(peer).is_empty(),
                    "purged at node down"
                );
                assert_eq!(ns.distributor().pending(peer), 0);
            }
            6 => {
                let (lower, upper) = (u32::from(s.u8()), u32::from(s.u8()));
                let Ok(range) = ServiceRange::new(u32::from(s.u8()) + 60, lower, upper) else {
                    continue;
                };
                let p = Publication {
                    range,
                    scope: if s.u8() & 1 == 0 {
                        Scope::Cluster
                    } else {
                        Scope::Node
                    },
                    node: OWN,
                    port: u32::from(s.u8()),
                    key: u32::from(s.u8()),
                };
                if ns.publish(&mut table, p).is_ok() {
                    assert!(mine.insert(p), "published twice: {p:?}");
                }
            }
            _ => {
                let i = usize::from(s.u8());
                if let Some(p) = mine.iter().nth(i % mine.len().max(1)).copied() {
                    if p != Publication::node_state(OWN) {
                        let w = ns.withdraw(&mut table, p.range, p.port, p.key);
                        assert_eq!(w, Some(p));
                        mine.remove(&p);
                    }
                }
            }
        }
        while let Some((to, msg)) = ns.poll_transmit() {
            assert!(PEERS.contains(&to));
            let h = Header::new_checked(&msg[..]).expect("sent message checks");
            let r = NameDistrRepr::parse(&h).expect("sent message parses");
            assert_eq!((r.orignode, r.prevnode, r.destnode), (OWN, OWN, to));
        }
        while let Some(e) = table.poll_event() {
            let (TableEvent::Published { publ: p, .. } | TableEvent::Withdrawn { publ: p, .. }) = e;
            if p.node == OWN {
                assert!(local, "this node's binding changed by a peer: {e:?}");
            } else {
                assert!(PEERS.contains(&p.node), "binding of a third node: {e:?}");
                assert_eq!(p.scope, Scope::Cluster);
            }
        }
        for p in PEERS {
            assert!(ns.distributor().pending(p) <= MAX_PENDING);
        }
    }
    let own: BTreeSet<Publication> = table.bindings_of_node(OWN).into_iter().collect();
    assert_eq!(own, mine, "this node's bindings");
    for p in table.iter() {
        assert!(p.node == OWN || PEERS.contains(&p.node), "binding of {p:?}");
    }
});
