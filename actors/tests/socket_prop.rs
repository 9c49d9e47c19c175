//! Property tests of the datagram socket core: `reverse` never panics and always yields a valid
//! message; the receive queue's byte accounting matches its contents under any sequence of
//! offers and receives.
//!
//! Spec: tipc-protocol.md §9.2, §9.3.

use std::collections::VecDeque;

use bytes::Bytes;
use proptest::prelude::*;
use tipc_actors::addr::{Scope, ServiceAddr, SocketAddr};
use tipc_actors::socket::{
    build_direct, build_named, lookup_dest, reverse, truesize, Offer, RecvQueue, SendOpts,
    MAX_FORWARD_SIZE, RCVBUF_MIN,
};
use tipc_transport::wire::{ErrorCode, Header, BASIC_H_SIZE};

const ME: u32 = 0x0100_0001;

fn err_code() -> impl Strategy<Value = ErrorCode> {
    prop_oneof![
        Just(ErrorCode::NoName),
        Just(ErrorCode::NoPort),
        Just(ErrorCode::NoNode),
        Just(ErrorCode::Overload),
        Just(ErrorCode::ConnShutdown),
    ]
}

/// A valid direct or named message with random fields, then random byte corruption.
fn message() -> impl Strategy<Value = Vec<u8>> {
    (
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        0u8..4,
        any::<bool>(),
        prop::collection::vec(any::<u8>(), 0..2000),
        any::<bool>(),
        prop::collection::vec((0usize..64, any::<u8>()), 0..6),
    )
        .prop_map(|(node, port, dport, imp, named, data, droppable, flips)| {
            let own = SocketAddr { node, port };
            let dest = SocketAddr {
                node: ME,
                port: dport,
            };
            let opts = SendOpts {
                importance: imp,
                dest_droppable: droppable,
                src_droppable: false,
            };
            let mut m = if named {
                let name = ServiceAddr {
                    type_: port,
                    instance: dport,
                };
                build_named(own, name, dest, Scope::Cluster, &opts, &data)
            } else {
                build_direct(own, dest, &opts, &data)
            }
            .expect("valid build")
            .to_vec();
            for (i, b) in flips {
                if let Some(x) = m.get_mut(i) {
                    *x ^= b;
                }
            }
            m
        })
}

fn check_returned(orig: &[u8], r: &[u8], err: ErrorCode) {
    let h = Header::new_checked(r).expect("returned message validates");
    assert_eq!(h.size(), r.len());
    assert!(h.header_len() >= BASIC_H_SIZE);
    assert_eq!(h.errcode(), err as u8);
    assert!(!h.non_seq());
    assert!(h.payload().len() <= MAX_FORWARD_SIZE);
    let o = Header::new_checked(orig).expect("original was valid");
    assert_eq!(h.destport(), o.origport());
    assert_eq!(h.origport(), o.destport());
    assert_eq!(h.destnode(), o.prevnode());
    assert_eq!((h.prevnode(), h.orignode()), (ME, ME));
    let n = h.payload().len();
    assert_eq!(h.payload(), &o.payload()[..n]);
}

proptest! {
    #[test]
    fn reverse_never_panics_on_arbitrary_bytes(
        b in prop::collection::vec(any::<u8>(), 0..200),
        err in err_code(),
    ) {
        if let Some(r) = reverse(&b, err, ME) {
            check_returned(&b, &r, err);
        }
    }

    #[test]
    fn reverse_output_validates_for_mutated_messages(m in message(), err in err_code()) {
        match reverse(&m, err, ME) {
            Some(r) => check_returned(&m, &r, err),
            None => {
                // Only refused when invalid, droppable or already returned.
                if let Ok(h) = Header::new_checked(&m[..]) {
                    prop_assert!(h.dest_droppable() || h.errcode() != 0);
                }
            }
        }
    }

    #[test]
    fn lookup_dest_never_panics_and_only_rewrites_on_success(
        mut m in message(),
        found in proptest::option::of((any::<u32>(), any::<u32>())),
    ) {
        let before = m.clone();
        let r = lookup_dest(&mut m, ME, |_, _| found.map(|(node, port)| SocketAddr { node, port }));
        match r {
            Ok(d) => {
                let h = Header::new_checked(&m[..]).expect("still valid");
                prop_assert_eq!((h.destnode(), h.destport()), (d.node, d.port));
                prop_assert_eq!(h.reroute_cnt(), 1);
            }
            Err(_) => prop_assert_eq!(m, before),
        }
    }

    #[test]
    fn recv_queue_accounting_matches_contents(
        ops in prop::collection::vec(
            prop_oneof![
                3 => (0u8..4, 0usize..70_000, any::<bool>()).prop_map(Some),
                1 => Just(None),
            ],
            0..300,
        ),
    ) {
        let mut q = RecvQueue::new();
        q.set_rcvbuf(RCVBUF_MIN).expect("valid");
        let mut model: VecDeque<usize> = VecDeque::new();
        let own = SocketAddr { node: 0x0100_0002, port: 1 };
        let dest = SocketAddr { node: ME, port: 2 };
        for op in ops {
            match op {
                Some((imp, len, corrupt)) => {
                    let len = len.min(66_000);
                    let opts = SendOpts { importance: imp, ..SendOpts::RDM };
                    let mut m = build_direct(own, dest, &opts, &vec![1; len]).expect("build").to_vec();
                    if corrupt {
                        m.truncate(m.len() / 2);
                    }
                    let size = m.len();
                    let before = q.queued_bytes();
                    match q.offer(Bytes::from(m), ME) {
                        Offer::Accepted => {
                            prop_assert!(!corrupt);
                            prop_assert!(before + truesize(size) < q.limit(imp));
                            model.push_back(size);
                        }
                        Offer::Rejected { error, .. } => {
                            prop_assert_eq!(error, ErrorCode::Overload);
                            prop_assert!(before + truesize(size) >= q.limit(imp));
                        }
                        Offer::Dropped => prop_assert!(corrupt),
                        other => prop_assert!(false, "unexpected {:?}", other),
                    }
                }
                None => {
                    let got = q.recv();
                    let want = model.pop_front();
                    prop_assert_eq!(got.map(|r| r.data.len() + 32), want);
                }
            }
            let sum: usize = model.iter().map(|&s| truesize(s)).sum();
            prop_assert_eq!(q.queued_bytes(), sum);
            prop_assert_eq!(q.len(), model.len());
        }
        q.close(ME);
        prop_assert_eq!(q.queued_bytes(), 0);
    }
}
