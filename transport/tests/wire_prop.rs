//! Property tests for the wire format: emit/parse round trips for every repr, serial-number
//! arithmetic against a reference model, parser robustness on arbitrary bytes, bundle and
//! fragment round trips.
//!
//! Spec: tipc-protocol.md §2 (headers), §4.5 (seqno), §4.9 (fragments), §4.10 (bundles).

use bytes::Bytes;
use proptest::prelude::*;
use tipc_transport::wire::*;

fn payload(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

/// Emit `r`, parse it back with `MessageRepr`, and check both the repr and the bytes.
fn check_round_trip(r: MessageRepr<'_>) -> Result<(), TestCaseError> {
    let mut buf = vec![0u8; r.buffer_len()];
    let n = r.emit(&mut buf);
    prop_assert_eq!(n, buf.len());
    let parsed = MessageRepr::parse(&buf).map_err(|e| TestCaseError::fail(format!("{e}")))?;
    prop_assert_eq!(parsed, r);
    let mut again = vec![0u8; parsed.buffer_len()];
    parsed.emit(&mut again);
    prop_assert_eq!(again, buf);
    Ok(())
}

/// Raw data-header fields: (hsize, importance, mtype, flags), (errcode, reroute, scope),
/// (bcast_ack, ack, seqno), the eight 32-bit words, (grp_bc_seqno, grp_bc_ack_req).
type DataFields = (
    (usize, u8, DataType, [bool; 4]),
    (u8, u8, u8),
    [u16; 3],
    [u32; 8],
    (u16, bool),
);

fn data_type() -> impl Strategy<Value = DataType> {
    (0u8..8).prop_map(|t| DataType::from_u8(t).unwrap())
}

fn data_fields() -> impl Strategy<Value = DataFields> {
    (
        (
            prop::sample::select(vec![24usize, 32, 40, 44]),
            0u8..4,
            data_type(),
            any::<[bool; 4]>(),
        ),
        (0u8..16, 0u8..16, 0u8..4),
        any::<[u16; 3]>(),
        any::<[u32; 8]>(),
        (any::<u16>(), any::<bool>()),
    )
}

/// Make a data repr consistent with its header size and type (what `parse` would return).
fn make_data<'a>(f: DataFields, payload: &'a [u8]) -> DataRepr<'a> {
    let ((hsize, importance, mtype, flags), (errcode, reroute_cnt, lookup_scope), w16, w32, grp) =
        f;
    let mut r = DataRepr {
        hsize,
        importance,
        mtype,
        non_seq: flags[0],
        dest_droppable: flags[1],
        bit18: flags[2],
        syn: flags[3],
        errcode,
        reroute_cnt,
        lookup_scope,
        bcast_ack: w16[0],
        ack: w16[1],
        seqno: w16[2],
        prevnode: w32[0],
        origport: w32[1],
        destport: w32[2],
        orignode: w32[3],
        destnode: w32[4],
        name_type: w32[5],
        name_instance: w32[6],
        name_upper: w32[7],
        grp_bc_seqno: grp.0,
        grp_bc_ack_req: grp.1,
        payload,
    };
    if hsize < BASIC_H_SIZE {
        r.orignode = r.prevnode;
        r.destnode = 0;
    }
    if hsize < NAMED_H_SIZE {
        r.name_type = 0;
        r.name_instance = 0;
    }
    if hsize < MCAST_H_SIZE {
        r.name_upper = 0;
    }
    if hsize < MCAST_H_SIZE || !mtype.is_group() {
        r.grp_bc_seqno = 0;
        r.grp_bc_ack_req = false;
    }
    if hsize == MCAST_H_SIZE && mtype.is_group() {
        r.name_upper &= 0x0000_FFFE;
    }
    r
}

/// A valid data message of `payload_len` bytes, as raw bytes.
fn data_msg(f: DataFields, payload: &[u8]) -> Vec<u8> {
    let r = make_data(f, payload);
    let mut buf = vec![0u8; r.buffer_len()];
    r.emit(&mut buf);
    buf
}

proptest! {
    #[test]
    fn data_repr_round_trips_for_any_fields(f in data_fields(), p in payload(64)) {
        check_round_trip(MessageRepr::Data(make_data(f, &p)))?;
    }

    #[test]
    fn bcast_proto_repr_round_trips_for_any_fields(
        b in any::<[bool; 1]>(), w16 in any::<[u16; 4]>(), w32 in any::<[u32; 4]>(), p in payload(16),
    ) {
        let r = BcastProtoRepr {
            non_seq: b[0], bcast_ack: w16[0], bcgap_after: w16[1], bcgap_to: w16[2],
            prevnode: w32[0], last_bcast: w16[3], w5: w32[1], orignode: w32[2], destnode: w32[3],
            data: &p,
        };
        check_round_trip(MessageRepr::BcastProto(r))?;
    }

    #[test]
    fn bundle_repr_round_trips_for_any_fields(
        b in any::<bool>(), w16 in any::<[u16; 4]>(), w32 in any::<[u32; 4]>(), imp in 0u8..8,
        p in payload(64),
    ) {
        let r = BundleRepr {
            non_seq: b, bcast_ack: w16[0], ack: w16[1], seqno: w16[2], prevnode: w32[0],
            w5: w32[1], orignode: w32[2], destnode: w32[3], msgcnt: w16[3], importance: imp,
            data: &p,
        };
        check_round_trip(MessageRepr::Bundle(r))?;
    }

    #[test]
    fn link_proto_repr_round_trips_for_any_fields(
        t in 0u8..3, b in any::<[bool; 6]>(), w16 in any::<[u16; 8]>(), w32 in any::<[u32; 3]>(),
        small in (0u16..0x2000, 0u8..8, 0u8..32, 0u8..8, 0u16..0x400), p in payload(32),
    ) {
        let r = LinkProtoRepr {
            mtype: LinkProtoType::from_u8(t).unwrap(), keepalive: b[0], seq_gap: small.0,
            bcast_ack: w16[0], ack: w16[1], seqno: w16[2], prevnode: w32[0], last_bcast: w16[3],
            next_sent: w16[4], session: w16[5], bc_ack_invalid: b[1], peer_stopping: b[2],
            redundant_link: b[3], bearer_id: small.1, priority: small.2, net_plane: small.3,
            probe: b[4], orignode: w32[1], destnode: w32[2], bc_gap: small.4, max_pkt: w16[6],
            tolerance: w16[7], data: &p,
        };
        check_round_trip(MessageRepr::LinkProto(r))?;
    }

    #[test]
    fn conn_mgr_repr_round_trips_for_any_fields(
        t in 0u8..3, b in any::<[bool; 2]>(), e in 0u8..16, w16 in any::<[u16; 5]>(),
        w32 in any::<[u32; 5]>(), p in payload(16),
    ) {
        let r = ConnMgrRepr {
            mtype: ConnMgrType::from_u8(t).unwrap(), dest_droppable: b[0], nagle_ack: b[1],
            errcode: e, bcast_ack: w16[0], ack: w16[1], seqno: w16[2], prevnode: w32[0],
            origport: w32[1], destport: w32[2], orignode: w32[3], destnode: w32[4],
            conn_ack: w16[3], adv_win: w16[4], data: &p,
        };
        check_round_trip(MessageRepr::ConnMgr(r))?;
    }

    #[test]
    fn group_proto_repr_round_trips_for_any_fields(
        t in 0u8..6, b in any::<bool>(), w16 in any::<[u16; 5]>(), w32 in any::<[u32; 5]>(),
        p in payload(16),
    ) {
        let r = GroupProtoRepr {
            mtype: GroupProtoType::from_u8(t).unwrap(), dest_droppable: b, bcast_ack: w16[0],
            ack: w16[1], seqno: w16[2], prevnode: w32[0], origport: w32[1], destport: w32[2],
            orignode: w32[3], destnode: w32[4], w9_hi: w16[3], adv_win: w16[4], data: &p,
        };
        check_round_trip(MessageRepr::GroupProto(r))?;
    }

    #[test]
    fn tunnel_repr_round_trips_for_any_fields(
        t in 0u8..2, w16 in any::<[u16; 6]>(), w32 in any::<[u32; 3]>(), bid in 0u8..8,
        p in payload(64),
    ) {
        let r = TunnelRepr {
            mtype: TunnelType::from_u8(t).unwrap(), bcast_ack: w16[0], ack: w16[1],
            seqno: w16[2], prevnode: w32[0], fragm_no: w16[3], nof_fragms: w16[4],
            bearer_id: bid, orignode: w32[1], destnode: w32[2], msgcnt: w16[5], data: &p,
        };
        check_round_trip(MessageRepr::Tunnel(r))?;
    }

    #[test]
    fn name_distr_repr_round_trips_for_any_fields(
        t in 0u8..2, b in any::<[bool; 4]>(), w16 in any::<[u16; 4]>(), w32 in any::<[u32; 4]>(),
        items in proptest::collection::vec(any::<[u32; 5]>(), 0..6),
    ) {
        let items: Vec<DistrItem> = items.iter().map(|w| DistrItem {
            type_: w[0], lower: w[1], upper: w[2], port: w[3], key: w[4],
        }).collect();
        let mut r = NameDistrRepr {
            mtype: NameDistrType::from_u8(t).unwrap(), non_seq: b[0], bulk: b[1],
            last_bulk: b[2], non_legacy: b[3], bcast_ack: w16[0], ack: w16[1], seqno: w16[2],
            prevnode: w32[0], named_seqno: w16[3], w5: w32[1], orignode: w32[2],
            destnode: w32[3], items: &[],
        };
        let mut buf = vec![0u8; INT_H_SIZE + items.len() * ITEM_SIZE];
        let n = r.emit_with_items(&items, &mut buf);
        prop_assert_eq!(n, buf.len());
        r.items = &buf[INT_H_SIZE..];
        check_round_trip(MessageRepr::NameDistr(r))?;
        let MessageRepr::NameDistr(p) = MessageRepr::parse(&buf).unwrap() else {
            return Err(TestCaseError::fail("not name distr"));
        };
        prop_assert_eq!(p.iter().collect::<Vec<_>>(), items);
    }

    #[test]
    fn name_distr_parse_rejects_partial_trailing_item(extra in 1usize..20) {
        let r = NameDistrRepr {
            mtype: NameDistrType::Publication, non_seq: false, bulk: false, last_bulk: false,
            non_legacy: true, bcast_ack: 0, ack: 0, seqno: 0, prevnode: 1, named_seqno: 0,
            w5: 0, orignode: 1, destnode: 2, items: &[],
        };
        let mut buf = vec![0u8; INT_H_SIZE + ITEM_SIZE + extra];
        r.emit_with_items(&[DistrItem::default()], &mut buf);
        Header::new_unchecked(&mut buf[..]).set_size(INT_H_SIZE + ITEM_SIZE + extra);
        prop_assert_eq!(MessageRepr::parse(&buf), Err(WireError::BadPayload));
    }

    #[test]
    fn fragment_repr_round_trips_for_any_fields(
        t in 0u8..3, b in any::<bool>(), w16 in any::<[u16; 5]>(), w32 in any::<[u32; 4]>(),
        imp in 0u8..8, p in payload(64),
    ) {
        let r = FragmentRepr {
            mtype: FragmentType::from_u8(t).unwrap(), non_seq: b, bcast_ack: w16[0],
            ack: w16[1], seqno: w16[2], prevnode: w32[0], fragm_no: w16[3], nof_fragms: w16[4],
            w5: w32[1], orignode: w32[2], destnode: w32[3], importance: imp, data: &p,
        };
        check_round_trip(MessageRepr::Fragment(r))?;
    }

    #[test]
    fn disc_repr_round_trips_for_any_fields(
        t in 0u8..4, caps in 0u16..0x2000, sig in any::<u16>(), b in any::<bool>(),
        w32 in any::<[u32; 5]>(), media in any::<[u8; 32]>(), id in any::<[u8; 16]>(),
    ) {
        // Bit 15 of the signature is bit 0 of the capabilities (shared).
        let sig = (sig & 0x7fff) | ((caps & 1) << 15);
        let r = DiscRepr {
            mtype: DiscType::from_u8(t).unwrap(), caps, signature: sig, non_seq: b,
            dest_domain: w32[0], prevnode: w32[1], net_id: w32[2], media_info: media,
            net_hash: w32[3], suggested: w32[4], node_id: id,
        };
        check_round_trip(MessageRepr::LinkConfig(r))?;
    }

    #[test]
    fn seqno_comparisons_match_reference_model(a in any::<u16>(), b in any::<u16>()) {
        let d = (b as i32 - a as i32).rem_euclid(65536);
        let less_eq = d < 32768;
        prop_assert_eq!(Seqno(a).less_eq(Seqno(b)), less_eq);
        prop_assert_eq!(Seqno(a).less(Seqno(b)), less_eq && a != b);
        prop_assert_eq!(Seqno(a).more(Seqno(b)), !less_eq);
        prop_assert_eq!(Seqno(a).more_eq(Seqno(b)), !(less_eq && a != b));
    }

    #[test]
    fn seqno_is_ordered_within_half_the_space(a in any::<u16>(), k in 1u16..0x8000) {
        let b = Seqno(a).add(k);
        prop_assert!(Seqno(a).less(b));
        prop_assert!(Seqno(a).less_eq(b));
        prop_assert!(b.more(Seqno(a)));
        prop_assert!(!b.less_eq(Seqno(a)));
        prop_assert_eq!(b.diff(Seqno(a)), k);
    }

    #[test]
    fn header_new_checked_never_panics_on_arbitrary_bytes(b in payload(200)) {
        if let Ok(h) = Header::new_checked(&b[..]) {
            prop_assert!(h.size() <= b.len());
            let _ = (h.payload(), h.orignode(), importance(&h));
        }
    }

    #[test]
    fn message_parse_never_panics_on_arbitrary_bytes(b in payload(200)) {
        let _ = MessageRepr::parse(&b);
    }

    #[test]
    fn message_parse_never_panics_on_plausible_headers(
        user in 0u32..16, hw in 0u32..16, body in payload(120), mtype in 0u32..8,
    ) {
        let mut b = body;
        b.resize(b.len().max(64), 0);
        let w0 = (2 << 29) | (user << 25) | (hw << 21) | b.len() as u32;
        b[..4].copy_from_slice(&w0.to_be_bytes());
        b[4] = (b[4] & 0x1f) | ((mtype as u8) << 5);
        if let Ok(r) = MessageRepr::parse(&b) {
            // Bits no field covers are not kept, but what was parsed survives a re-emit.
            let mut out = vec![0u8; r.buffer_len()];
            r.emit(&mut out);
            prop_assert_eq!(MessageRepr::parse(&out), Ok(r));
        }
        let _ = extract(&Bytes::from(b.clone())).count();
        let _ = Reassembler::new().push(Bytes::from(b));
    }

    #[test]
    fn bundle_build_then_extract_returns_every_message(
        msgs in proptest::collection::vec((data_fields(), payload(100)), 1..12),
        max in 200usize..1500,
    ) {
        let raw: Vec<Vec<u8>> = msgs.into_iter().map(|(f, p)| data_msg(f, &p)).collect();
        let mut b = BundleBuilder::new(&raw[0], 0x6200_0000).unwrap();
        let mut pushed = vec![raw[0].clone()];
        for m in &raw[1..] {
            if b.fits(m.len(), max) {
                b.push(m, max).unwrap();
                pushed.push(m.clone());
            } else {
                prop_assert_eq!(b.push(m, max), Err(BundleError::NoRoom));
            }
        }
        prop_assert_eq!(b.msgcnt() as usize, pushed.len());
        let pkt = b.freeze();
        if pushed.len() > 1 {
            prop_assert!(pkt.len() <= max);
        }
        let MessageRepr::Bundle(r) = MessageRepr::parse(&pkt).unwrap() else {
            return Err(TestCaseError::fail("not a bundle"));
        };
        prop_assert_eq!(r.msgcnt as usize, pushed.len());
        prop_assert_eq!(r.destnode, 0x6200_0000);
        let got: Vec<Bytes> = extract(&pkt).collect::<Result<_, _>>().unwrap();
        prop_assert_eq!(got.len(), pushed.len());
        for (g, p) in got.iter().zip(&pushed) {
            prop_assert_eq!(&g[..], &p[..]);
        }
    }

    #[test]
    fn bundle_extract_stops_with_error_on_corrupt_inner(
        msgs in proptest::collection::vec((data_fields(), payload(40)), 2..6),
        which in any::<prop::sample::Index>(),
    ) {
        let raw: Vec<Vec<u8>> = msgs.into_iter().map(|(f, p)| data_msg(f, &p)).collect();
        let mut b = BundleBuilder::new(&raw[0], 1).unwrap();
        for m in &raw[1..] {
            b.push(m, usize::MAX).unwrap();
        }
        let mut pkt = b.into_bytes_mut();
        // Corrupt the version of inner message `k`.
        let k = which.index(raw.len());
        let off = INT_H_SIZE + raw[..k].iter().map(|m| align4(m.len())).sum::<usize>();
        pkt[off] ^= 0x80;
        let items: Vec<_> = extract(&pkt.freeze()).collect();
        prop_assert_eq!(items.len(), k + 1);
        prop_assert!(items[k].is_err());
        prop_assert!(items[..k].iter().all(|i| i.is_ok()));
    }

    #[test]
    fn fragment_parts_are_the_copied_fragments_and_point_into_the_message(
        f in data_fields(), len in 0usize..20000, pktmax in 41usize..3000, seed in any::<u8>(),
    ) {
        let p: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(17).wrapping_add(seed)).collect();
        let msg = Bytes::from(data_msg(f, &p));
        let mut copied = Vec::new();
        let mut parts = Vec::new();
        let mut pool = ChunkPool::new();
        let a = fragment_to(&msg, pktmax, Some(7), &mut copied);
        let b = fragment_parts(&msg, pktmax, Some(7), &mut pool, &mut parts);
        prop_assert_eq!(a.is_ok(), b.is_ok());
        prop_assert_eq!(copied.len(), parts.len());
        let range = msg.as_ptr() as usize..msg.as_ptr() as usize + msg.len();
        for (c, (h, body)) in copied.iter().zip(&parts) {
            prop_assert_eq!(h.len(), INT_H_SIZE);
            prop_assert_eq!(&c[..INT_H_SIZE], &h[..]);
            prop_assert_eq!(&c[INT_H_SIZE..], &body[..]);
            // Zero copy: the payload is the message's own memory.
            prop_assert!(body.is_empty() || range.contains(&(body.as_ptr() as usize)));
        }
    }

    #[test]
    fn fragment_then_reassemble_returns_the_message(
        f in data_fields(), len in 0usize..20000, pktmax in 41usize..3000, seed in any::<u8>(),
    ) {
        let p: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect();
        let msg = data_msg(f, &p);
        let mut frags = Vec::new();
        match fragment(&msg, pktmax, &mut frags) {
            Err(FragmentError::Fits { .. }) => {
                prop_assert!(msg.len() <= pktmax);
                prop_assert!(frags.is_empty());
                return Ok(());
            }
            Err(e) => return Err(TestCaseError::fail(format!("{e}"))),
            Ok(n) => prop_assert_eq!(n, frags.len()),
        }
        prop_assert!(frags.len() >= 2);
        let mut r = Reassembler::new();
        let last = frags.len() - 1;
        let mut out = None;
        for (i, fr) in frags.iter().enumerate() {
            if i < last {
                prop_assert_eq!(fr.len(), pktmax);
            }
            prop_assert!(fr.len() <= pktmax);
            let MessageRepr::Fragment(fp) = MessageRepr::parse(fr).unwrap() else {
                return Err(TestCaseError::fail("not a fragment"));
            };
            prop_assert_eq!(fp.fragm_no as usize, i + 1);
            prop_assert_eq!(fp.nof_fragms, 0);
            let hdr = Header::new_checked(&msg[..]).unwrap();
            prop_assert_eq!(fp.importance, importance(&hdr));
            prop_assert_eq!(fp.destnode, hdr.destnode());
            prop_assert_eq!(fp.prevnode, hdr.prevnode());
            let res = r.push(fr.clone()).unwrap();
            prop_assert_eq!(res.is_some(), i == last);
            out = res.or(out);
        }
        prop_assert_eq!(&out.unwrap()[..], &msg[..]);
        prop_assert!(!r.in_progress());
    }
}

#[test]
fn reassembler_rejects_first_while_in_progress_and_resets() {
    let p = vec![7u8; 500];
    let f = (
        (32, 1, DataType::Direct, [false; 4]),
        (0, 0, 0),
        [0; 3],
        [1; 8],
        (0, false),
    );
    let msg = data_msg(f, &p);
    let mut frags = Vec::new();
    fragment(&msg, 200, &mut frags).unwrap();
    let mut r = Reassembler::new();
    assert_eq!(r.push(frags[0].clone()), Ok(None));
    assert_eq!(
        r.push(frags[0].clone()),
        Err(ReassemblyError::FirstInProgress)
    );
    assert!(!r.in_progress());
    assert_eq!(r.push(frags[1].clone()), Err(ReassemblyError::NoFirst));
    for fr in &frags[..frags.len() - 1] {
        assert_eq!(r.push(fr.clone()), Ok(None));
    }
    let whole = r.push(frags[frags.len() - 1].clone()).unwrap().unwrap();
    assert_eq!(&whole[..], &msg[..]);
}

#[test]
fn fragment_to_names_given_destnode_in_every_fragment() {
    let p: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    let f = (
        (32, 1, DataType::Direct, [false; 4]),
        (0, 0, 0),
        [0; 3],
        [1; 8],
        (0, false),
    );
    let msg = data_msg(f, &p);
    let mut frags = Vec::new();
    let n = fragment_to(&msg, 1400, Some(0x0100_2345), &mut frags).unwrap();
    assert_eq!(n, frags.len());
    let mut r = Reassembler::new();
    let mut out = None;
    for fr in &frags {
        let h = Header::new_checked(&fr[..]).unwrap();
        assert_eq!(h.destnode(), 0x0100_2345);
        out = r.push(fr.clone()).unwrap().or(out);
    }
    assert_eq!(&out.unwrap()[..], &msg[..]);
}

#[test]
fn reassembler_rejects_message_larger_than_max_msg_size() {
    let chunk = vec![0u8; 16000];
    let mk = |t: FragmentType, no: u16| {
        let r = FragmentRepr {
            mtype: t,
            non_seq: false,
            bcast_ack: 0,
            ack: 0,
            seqno: 0,
            prevnode: 1,
            fragm_no: no,
            nof_fragms: 0,
            w5: 0,
            orignode: 1,
            destnode: 2,
            importance: 0,
            data: &chunk,
        };
        let mut b = vec![0u8; r.buffer_len()];
        r.emit(&mut b);
        Bytes::from(b)
    };
    let mut r = Reassembler::new();
    assert_eq!(r.push(mk(FragmentType::First, 1)), Ok(None));
    let mut err = None;
    for no in 2..10 {
        if let Err(e) = r.push(mk(FragmentType::Fragment, no)) {
            err = Some(e);
            break;
        }
        assert!(r.pending_len() <= MAX_MSG_SIZE);
    }
    assert_eq!(err, Some(ReassemblyError::TooLarge));
    assert!(!r.in_progress());
}

#[test]
fn fragment_rejects_message_that_fits() {
    let f = (
        (24, 0, DataType::Conn, [false; 4]),
        (0, 0, 0),
        [0; 3],
        [0; 8],
        (0, false),
    );
    let msg = data_msg(f, &[1, 2, 3]);
    let mut out = Vec::new();
    assert_eq!(
        fragment(&msg, msg.len(), &mut out),
        Err(FragmentError::Fits {
            len: msg.len(),
            pktmax: msg.len()
        })
    );
    assert!(out.is_empty());
}

#[test]
fn chunk_pool_reuses_chunk_when_all_buffers_dropped() {
    let mut pool = ChunkPool::with_chunk(4096);
    let mut a = pool.take(4096);
    a.extend_from_slice(&[1u8; 4096]);
    let first = a.as_ptr();
    drop(a.freeze());
    // The chunk is used up: the next take retires it and, as nothing uses it, takes it back.
    let b = pool.take(4096);
    assert_eq!(b.as_ptr(), first);
    assert!(b.capacity() >= 4096);
}

#[test]
fn chunk_pool_allocates_new_chunk_while_buffer_alive() {
    let mut pool = ChunkPool::with_chunk(4096);
    let mut a = pool.take(4096);
    a.extend_from_slice(&[7u8; 4096]);
    let kept = a.freeze();
    let mut b = pool.take(4096);
    assert_ne!(b.as_ptr(), kept.as_ptr());
    b.extend_from_slice(&[9u8; 4096]);
    assert!(kept.iter().all(|&x| x == 7));
}

fn blocks(rec: &[u8]) -> Vec<(u16, u16)> {
    gap_ack_blocks(rec)
        .expect("record fits")
        .chunks_exact(4)
        .map(|b| {
            (
                u16::from_be_bytes([b[0], b[1]]),
                u16::from_be_bytes([b[2], b[3]]),
            )
        })
        .collect()
}

#[test]
fn gap_ack_record_matches_the_kernels_example_and_parses_back() {
    // msg.h: deferdq 1 2 3 4 10 11 13 14 15 20 -> <4,5>,<11,1>,<15,4>,<20,0>.
    let held = [1u16, 2, 3, 4, 10, 11, 13, 14, 15, 20].map(Seqno);
    let mut rec = [0u8; GAP_ACK_RECORD_MAX];
    let len = build_gap_ack_record(held, &mut rec);
    assert_eq!(len, 20);
    assert_eq!(&rec[..4], &[0, 20, 4, 0]);
    assert_eq!(blocks(&rec[..len]), vec![(4, 5), (11, 1), (15, 4), (20, 0)]);
    // Across the seqno wrap.
    let len = build_gap_ack_record([65534u16, 65535, 2].map(Seqno), &mut rec);
    assert_eq!(blocks(&rec[..len]), vec![(65535, 2), (2, 0)]);
    // Nothing held: the 4-byte record every STATE to a capable peer carries.
    assert_eq!(build_gap_ack_record([], &mut rec), 4);
    assert_eq!(&rec[..4], &[0, 4, 0, 0]);
}

#[test]
fn gap_ack_blocks_skip_broadcast_blocks_and_refuse_a_record_past_the_data() {
    // One broadcast block, two unicast blocks.
    let rec = [0, 16, 2, 1, 0, 9, 0, 1, 0, 4, 0, 2, 0, 8, 0, 0];
    assert_eq!(blocks(&rec), vec![(4, 2), (8, 0)]);
    // An older peer: length counts the unicast blocks only, byte 3 reserved.
    let old = [0, 8, 1, 7, 0, 5, 0, 0];
    assert_eq!(blocks(&old), vec![(5, 0)]);
    // Length beyond the data: the kernel drops the STATE.
    assert_eq!(gap_ack_blocks(&[0, 12, 2, 0, 0, 1, 0, 1]), None);
    assert_eq!(gap_ack_blocks(&[0, 4]), None);
    // Inconsistent counts: no blocks, but the STATE is still read.
    assert_eq!(gap_ack_blocks(&[0, 8, 3, 0, 0, 1, 0, 1]), Some(&[][..]));
}

proptest! {
    #[test]
    fn gap_ack_record_holes_hold_nothing_and_islands_end_at_block_acks(
        start in any::<u16>(), steps in proptest::collection::vec(1u16..6, 1..200),
    ) {
        let mut s = Seqno(start);
        let held: Vec<Seqno> = steps.iter().map(|&d| { s = s.add(d); s }).collect();
        let mut rec = [0u8; GAP_ACK_RECORD_MAX];
        let len = build_gap_ack_record(held.iter().copied(), &mut rec);
        let b = blocks(&rec[..len]);
        prop_assert!(!b.is_empty() && b.len() <= MAX_GAP_ACK_BLOCKS);
        for &(ack, gap) in &b {
            prop_assert!(held.contains(&Seqno(ack)), "block ack {} not held", ack);
            for k in 1..=gap {
                prop_assert!(!held.contains(&Seqno(ack).add(k)), "hole after {} holds a packet", ack);
            }
        }
        if b.len() < MAX_GAP_ACK_BLOCKS {
            prop_assert_eq!(b.last().copied(), Some((held.last().unwrap().0, 0)));
        }
    }
}
