//! Tests of the sans-IO discovery core (`transport::discovery`), spec §3.
//!
//! Golden vectors are the kernel discovery messages of VM "a" shown in
//! shared/tipc-peer/README.md ("Seeing the bytes a kernel node sends").

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use tipc_transport::discovery::{
    check_dest, DestDecision, Discoverer, DiscoveryConfig, DropReason, Neighbor, DISC_FAST,
    DISC_INIT, DISC_SLOW,
};
use tipc_transport::media::Dest;
use tipc_transport::wire::{DiscRepr, DiscType, Header, MediaAddr, DISC_MSG_SIZE};
use tipc_transport::{NodeId, OWN_CAPABILITIES};

/// Kernel 6.1 `TIPC_NODE_CAPABILITIES` (w1 bits 27-15 of the golden vectors read 0xFFF).
const KERNEL_CAPS: u16 = 0x0FFF;

const GOLDEN_UDP: &str = "5bf0004c 07fff1aa 00000000 61000000 00001267 00000003 080017e6 0a63000b
    00000000 00000000 00000000 00000000 00000000 431c71aa 00000000
    61000000 00000000 00000000 00000000";
const GOLDEN_ETH: &str = "5bf0004c 07fff1aa 00000000 61000000 00001267 00000001 52540063 000b0000
    00000000 00000000 00000000 00000000 00000000 431c71aa 00000000
    61000000 00000000 00000000 00000000";

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| b.is_ascii_hexdigit()).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex"))
        .collect()
}

fn udp(s: &str) -> MediaAddr {
    MediaAddr::Udp(s.parse::<SocketAddr>().expect("socket address"))
}

const VM_A_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x63, 0x00, 0x0b];

/// The configuration that reproduces VM "a"'s request.
fn vm_a_cfg(media_addr: MediaAddr) -> DiscoveryConfig {
    let id = NodeId::from_str_id("a").expect("id");
    DiscoveryConfig {
        net_id: 4711,
        own_addr: 0x6100_0000,
        own_id: id,
        caps: KERNEL_CAPS,
        signature: 0xf1aa,
        bearer_id: 0,
        media_addr,
        domain: 0,
        net_hash: 0x431c_71aa,
    }
}

/// Our node ("host" on 10.99.0.1:6118).
fn host_cfg() -> DiscoveryConfig {
    let id = NodeId::from_str_id("host").expect("id");
    DiscoveryConfig {
        net_id: 4711,
        own_addr: id.hash(),
        own_id: id,
        caps: OWN_CAPABILITIES,
        signature: 0x4321,
        bearer_id: 1,
        media_addr: udp("10.99.0.1:6118"),
        domain: 0,
        net_hash: 0,
    }
}

fn host_eth_cfg() -> DiscoveryConfig {
    DiscoveryConfig {
        media_addr: MediaAddr::Eth([0x52, 0x54, 0x00, 0x63, 0x00, 0x01]),
        ..host_cfg()
    }
}

/// A valid REQ from "peer" (0x0a000002) at 10.0.0.2:6118, to be mutated by tests.
fn peer_req() -> DiscRepr {
    let id = NodeId::from_str_id("peer").expect("id");
    DiscRepr {
        mtype: DiscType::Request,
        caps: KERNEL_CAPS,
        signature: 0xbeef,
        non_seq: true,
        dest_domain: 0,
        prevnode: 0x0a00_0002,
        net_id: 4711,
        media_info: udp("10.0.0.2:6118").to_media_info(),
        net_hash: 0,
        suggested: 0,
        node_id: id.0,
    }
}

fn emit(r: &DiscRepr) -> Vec<u8> {
    let mut b = vec![0u8; r.buffer_len()];
    r.emit(&mut b);
    b
}

fn host(now: Instant) -> Discoverer {
    Discoverer::new(host_cfg(), now)
}

fn assert_dropped(r: &DiscRepr, reason: DropReason) {
    assert_dropped_bytes(&emit(r), reason);
}

fn assert_dropped_bytes(msg: &[u8], reason: DropReason) {
    let now = Instant::now();
    let mut d = host(now);
    assert_eq!(
        d.handle_frame(now, msg),
        None,
        "expected drop for {reason:?}"
    );
    let s = d.stats();
    assert_eq!(s.dropped(reason), 1, "counter for {reason:?}: {s:?}");
    assert_eq!(s.total_dropped(), 1, "only one counter moved: {s:?}");
    assert_eq!((s.received, s.accepted), (1, 0));
}

// ---------------------------------------------------------------- golden vectors

#[test]
fn request_matches_kernel_bytes_udp() {
    let d = Discoverer::new(vm_a_cfg(udp("10.99.0.11:6118")), Instant::now());
    assert_eq!(d.request().as_ref(), hex(GOLDEN_UDP).as_slice());
}

#[test]
fn request_matches_kernel_bytes_eth() {
    let d = Discoverer::new(vm_a_cfg(MediaAddr::Eth(VM_A_MAC)), Instant::now());
    assert_eq!(d.request().as_ref(), hex(GOLDEN_ETH).as_slice());
}

#[test]
fn request_is_the_first_transmit_broadcast() {
    let t0 = Instant::now();
    let mut d = Discoverer::new(vm_a_cfg(udp("10.99.0.11:6118")), t0);
    d.handle_timeout(t0);
    let (dest, bytes) = d.poll_transmit().expect("first request");
    assert_eq!(dest, Dest::Broadcast);
    assert_eq!(bytes.as_ref(), hex(GOLDEN_UDP).as_slice());
    assert!(d.poll_transmit().is_none());
}

#[test]
fn golden_udp_request_parses_to_neighbor_a() {
    let now = Instant::now();
    let mut d = host(now);
    let n = d.handle_frame(now, &hex(GOLDEN_UDP)).expect("accepted");
    assert_eq!(
        n,
        Neighbor {
            bearer_id: 1,
            media_addr: udp("10.99.0.11:6118"),
            addr: 0x6100_0000,
            id: NodeId::from_str_id("a").expect("id"),
            caps: KERNEL_CAPS,
            signature: 0xf1aa,
            is_request: true,
        }
    );
    assert_eq!(d.stats().accepted, 1);
}

#[test]
fn golden_eth_request_parses_to_neighbor_a() {
    let now = Instant::now();
    let mut d = Discoverer::new(host_eth_cfg(), now);
    let n = d.handle_frame(now, &hex(GOLDEN_ETH)).expect("accepted");
    assert_eq!(n.media_addr, MediaAddr::Eth(VM_A_MAC));
    assert_eq!(n.addr, 0x6100_0000);
    assert_eq!(n.id.to_id_string(), "a");
    assert_eq!(
        (n.caps, n.signature, n.is_request),
        (KERNEL_CAPS, 0xf1aa, true)
    );
}

#[test]
fn golden_eth_request_accepted_with_trailing_padding() {
    let now = Instant::now();
    let mut d = Discoverer::new(host_eth_cfg(), now);
    let mut frame = hex(GOLDEN_ETH);
    frame.extend_from_slice(&[0u8; 10]);
    assert!(d.handle_frame(now, &frame).is_some());
}

// ---------------------------------------------------------------- drop reasons

#[test]
fn handle_frame_drops_malformed_when_truncated() {
    let b = emit(&peer_req());
    assert_dropped_bytes(&b[..40], DropReason::Malformed);
    assert_dropped_bytes(&[], DropReason::Malformed);
}

#[test]
fn handle_frame_drops_malformed_when_version_wrong() {
    let mut b = emit(&peer_req());
    b[0] = (b[0] & 0x1f) | (3 << 5);
    assert_dropped_bytes(&b, DropReason::Malformed);
}

#[test]
fn handle_frame_drops_malformed_when_header_not_60_bytes() {
    let mut b = emit(&peer_req());
    let mut h = Header::new_unchecked(&mut b[..]);
    h.set_header_len(40);
    assert_dropped_bytes(&b, DropReason::Malformed);
}

#[test]
fn handle_frame_drops_malformed_when_type_unknown() {
    let mut b = emit(&peer_req());
    let mut h = Header::new_unchecked(&mut b[..]);
    h.set_mtype(5);
    assert_dropped_bytes(&b, DropReason::Malformed);
}

#[test]
fn handle_frame_drops_malformed_when_id128_without_identity() {
    // A 60-byte (legacy-sized) message that claims TIPC_NODE_ID128.
    let mut b = emit(&peer_req());
    let mut h = Header::new_unchecked(&mut b[..]);
    h.set_size(60);
    b.truncate(60);
    assert_dropped_bytes(&b, DropReason::Malformed);
}

#[test]
fn handle_frame_uses_hex_address_identity_when_peer_lacks_id128() {
    let r = DiscRepr {
        caps: 0x001,
        ..peer_req()
    };
    let mut b = emit(&r);
    // Legacy 60-byte message without the identity.
    let mut h = Header::new_unchecked(&mut b[..]);
    h.set_size(60);
    b.truncate(60);
    let now = Instant::now();
    let n = host(now).handle_frame(now, &b).expect("accepted");
    assert_eq!(n.id, NodeId::from_addr(0x0a00_0002));
    assert_eq!(n.id.to_id_string(), "a000002");
}

#[test]
fn handle_frame_drops_other_users() {
    let mut b = emit(&peer_req());
    let mut h = Header::new_unchecked(&mut b[..]);
    h.set_user(7);
    assert_dropped_bytes(&b, DropReason::NotDiscovery);
}

#[test]
fn handle_frame_drops_undecodable_media_addr() {
    let mut r = peer_req();
    r.media_info[3] = 9; // unknown media type
    assert_dropped(&r, DropReason::BadMediaAddr);
    let mut r = peer_req();
    r.media_info[4..6].copy_from_slice(&[0x12, 0x34]); // unknown UDP protocol
    assert_dropped(&r, DropReason::BadMediaAddr);
}

#[test]
fn handle_frame_drops_media_addr_of_other_media_kind() {
    let r = DiscRepr {
        media_info: MediaAddr::Eth(VM_A_MAC).to_media_info(),
        ..peer_req()
    };
    assert_dropped(&r, DropReason::BadMediaAddr);
}

#[test]
fn handle_frame_drops_broadcast_media_addr() {
    let r = DiscRepr {
        media_info: udp("228.0.18.103:6118").to_media_info(),
        ..peer_req()
    };
    assert_dropped(&r, DropReason::BroadcastMediaAddr);
    let now = Instant::now();
    let mut d = Discoverer::new(host_eth_cfg(), now);
    let r = DiscRepr {
        media_info: MediaAddr::Eth([0xff; 6]).to_media_info(),
        ..peer_req()
    };
    assert_eq!(d.handle_frame(now, &emit(&r)), None);
    assert_eq!(d.stats().dropped(DropReason::BroadcastMediaAddr), 1);
}

#[test]
fn handle_frame_drops_own_media_addr() {
    // Our own request looped back (multicast loopback).
    let now = Instant::now();
    let mut d = host(now);
    d.handle_timeout(now);
    let (_, own) = d.poll_transmit().expect("request");
    assert_eq!(d.handle_frame(now, &own), None);
    assert_eq!(d.stats().dropped(DropReason::OwnMediaAddr), 1);
}

#[test]
fn handle_frame_drops_other_network_id() {
    let r = DiscRepr {
        net_id: 4712,
        ..peer_req()
    };
    assert_dropped(&r, DropReason::NetIdMismatch);
}

#[test]
fn handle_frame_ignores_address_trials() {
    let r = DiscRepr {
        mtype: DiscType::Trial,
        ..peer_req()
    };
    assert_dropped(&r, DropReason::AddressTrial);
    let r = DiscRepr {
        mtype: DiscType::TrialFail,
        dest_domain: host_cfg().own_addr,
        suggested: 0x1234_5678,
        ..peer_req()
    };
    assert_dropped(&r, DropReason::AddressTrial);
}

#[test]
fn handle_frame_never_answers_a_trial() {
    let now = Instant::now();
    let mut d = host(now);
    let r = DiscRepr {
        mtype: DiscType::Trial,
        ..peer_req()
    };
    assert_eq!(d.handle_frame(now, &emit(&r)), None);
    assert!(d.poll_transmit().is_none());
}

#[test]
fn handle_frame_drops_prevnode_own_or_zero() {
    let r = DiscRepr {
        prevnode: host_cfg().own_addr,
        ..peer_req()
    };
    assert_dropped(&r, DropReason::DuplicateAddr);
    let r = DiscRepr {
        prevnode: 0,
        ..peer_req()
    };
    assert_dropped(&r, DropReason::DuplicateAddr);
}

#[test]
fn handle_frame_drops_request_for_other_domain() {
    let r = DiscRepr {
        dest_domain: 0x6200_0000,
        ..peer_req()
    };
    assert_dropped(&r, DropReason::DestDomain);
}

#[test]
fn handle_frame_accepts_request_for_own_address() {
    let r = DiscRepr {
        dest_domain: host_cfg().own_addr,
        ..peer_req()
    };
    let now = Instant::now();
    assert!(host(now).handle_frame(now, &emit(&r)).is_some());
}

#[test]
fn handle_frame_drops_sender_outside_bearer_domain() {
    let now = Instant::now();
    let cfg = DiscoveryConfig {
        domain: 0x6100_0000,
        ..host_cfg()
    };
    let mut d = Discoverer::new(cfg, now);
    assert_eq!(d.handle_frame(now, &emit(&peer_req())), None);
    assert_eq!(d.stats().dropped(DropReason::BearerDomain), 1);
    // The node the domain names is accepted.
    assert!(d.handle_frame(now, &hex(GOLDEN_UDP)).is_some());
}

// ---------------------------------------------------------------- timing

/// Run the discoverer from `t` for `n` requests, returning the gaps between them.
fn gaps(d: &mut Discoverer, n: usize) -> Vec<u64> {
    let mut out = Vec::new();
    let mut last: Option<Instant> = None;
    for _ in 0..n {
        let t = d.poll_timeout().expect("timer armed");
        d.handle_timeout(t);
        let (dest, _) = d.poll_transmit().expect("request sent");
        assert_eq!(dest, Dest::Broadcast);
        if let Some(l) = last {
            out.push((t - l).as_millis() as u64);
        }
        last = Some(t);
    }
    out
}

#[test]
fn interval_doubles_to_fast_cap_without_links() {
    let mut d = host(Instant::now());
    assert_eq!(gaps(&mut d, 7), vec![125, 250, 500, 1000, 1000, 1000]);
    assert_eq!(d.interval(), Some(DISC_FAST));
}

#[test]
fn interval_doubles_to_slow_cap_with_links() {
    let t0 = Instant::now();
    let mut d = host(t0);
    gaps(&mut d, 6);
    d.set_up_links(t0, 1);
    // From the next expiry (already due 1 s after the last request) the interval keeps
    // doubling up to 60 s.
    assert_eq!(
        gaps(&mut d, 9),
        vec![2000, 4000, 8000, 16000, 32000, 60000, 60000, 60000]
    );
    assert_eq!(d.interval(), Some(DISC_SLOW));
}

#[test]
fn interval_restarts_at_init_when_last_link_goes_down() {
    let t0 = Instant::now();
    let mut d = host(t0);
    gaps(&mut d, 5);
    d.set_up_links(t0, 2);
    gaps(&mut d, 4); // interval now > 1 s
    let t_down = d.poll_timeout().expect("armed") - Duration::from_millis(1500);
    d.set_up_links(t_down, 1);
    assert!(
        d.interval().expect("active") > DISC_FAST,
        "one link left: no restart"
    );
    d.set_up_links(t_down, 0);
    assert_eq!(d.interval(), Some(DISC_INIT));
    assert_eq!(d.poll_timeout(), Some(t_down + DISC_INIT));
    assert_eq!(gaps(&mut d, 5), vec![250, 500, 1000, 1000]);
}

#[test]
fn interval_not_restarted_when_links_go_down_at_fast_rate() {
    let t0 = Instant::now();
    let mut d = host(t0);
    gaps(&mut d, 3); // interval 500 ms
    let next = d.poll_timeout();
    d.set_up_links(t0, 1);
    d.set_up_links(t0, 0);
    assert_eq!(d.poll_timeout(), next);
    assert_eq!(d.interval(), Some(Duration::from_millis(500)));
}

#[test]
fn sending_stops_when_domain_node_found_and_restarts_when_lost() {
    let t0 = Instant::now();
    let cfg = DiscoveryConfig {
        domain: 0x0a00_0002, // node part (bits 11-0) non-zero, as the kernel tests it
        ..host_cfg()
    };
    let mut d = Discoverer::new(cfg, t0);
    gaps(&mut d, 2);
    d.set_up_links(t0, 1);
    let t = d.poll_timeout().expect("armed");
    d.handle_timeout(t);
    assert!(d.poll_transmit().is_none());
    assert_eq!((d.poll_timeout(), d.interval()), (None, None));
    d.set_up_links(t, 0);
    assert_eq!(d.poll_timeout(), Some(t + DISC_INIT));
}

// ---------------------------------------------------------------- decision table (§3.3 step 6)

#[test]
fn check_dest_covers_all_eight_rows() {
    let none = DestDecision::default();
    let rows = [
        ((true, true, true), none),
        (
            (true, true, false),
            DestDecision {
                respond: true,
                ..none
            },
        ),
        (
            (true, false, true),
            DestDecision {
                dup_alert: true,
                ..none
            },
        ),
        (
            (true, false, false),
            DestDecision {
                accept_addr: true,
                respond: true,
                reset_link: true,
                ..none
            },
        ),
        (
            (false, true, true),
            DestDecision {
                store_signature: true,
                ..none
            },
        ),
        (
            (false, true, false),
            DestDecision {
                store_signature: true,
                respond: true,
                ..none
            },
        ),
        (
            (false, false, true),
            DestDecision {
                dup_alert: true,
                ..none
            },
        ),
        (
            (false, false, false),
            DestDecision {
                store_signature: true,
                accept_addr: true,
                respond: true,
                reset_link: true,
                dup_alert: false,
            },
        ),
    ];
    for ((s, a, l), want) in rows {
        assert_eq!(check_dest(s, a, l), want, "S={s} A={a} L={l}");
    }
}

// ---------------------------------------------------------------- responses

#[test]
fn respond_sends_unicast_resp_to_media_addr_inside_request() {
    let now = Instant::now();
    let mut d = host(now);
    // The request announces port 6119: the answer goes there, whatever the frame source was.
    let r = DiscRepr {
        media_info: udp("10.0.0.2:6119").to_media_info(),
        ..peer_req()
    };
    let n = d.handle_frame(now, &emit(&r)).expect("accepted");
    d.respond(&n);
    let (dest, bytes) = d.poll_transmit().expect("response");
    assert_eq!(dest, Dest::Unicast(udp("10.0.0.2:6119")));
    let h = Header::new_checked(&bytes[..]).expect("valid");
    let resp = DiscRepr::parse(&h).expect("parses");
    let cfg = host_cfg();
    assert_eq!(resp.mtype, DiscType::Response);
    assert_eq!(
        resp.dest_domain, 0x0a00_0002,
        "dest domain = requester address"
    );
    assert_eq!(resp.prevnode, cfg.own_addr);
    assert_eq!(resp.net_id, 4711);
    assert_eq!(resp.caps, cfg.caps);
    assert_eq!(resp.media_addr(), Ok(cfg.media_addr));
    assert_eq!(resp.node_id, cfg.own_id.0);
    assert!(resp.non_seq);
    assert_eq!(bytes.len(), DISC_MSG_SIZE);
    assert_eq!(d.stats().resp_sent, 1);
    assert!(d.poll_transmit().is_none());
}

#[test]
fn respond_ignores_neighbor_from_response() {
    let now = Instant::now();
    let mut d = host(now);
    let r = DiscRepr {
        mtype: DiscType::Response,
        dest_domain: host_cfg().own_addr,
        ..peer_req()
    };
    let n = d.handle_frame(now, &emit(&r)).expect("accepted");
    assert!(!n.is_request);
    d.respond(&n);
    assert!(d.poll_transmit().is_none());
    assert_eq!(d.stats().resp_sent, 0);
}

#[test]
fn response_from_us_is_accepted_by_the_requester() {
    // Two discoverers: the peer's RESP built by `respond` passes the requester's checks.
    let now = Instant::now();
    let mut a = Discoverer::new(vm_a_cfg(udp("10.99.0.11:6118")), now);
    let mut h = host(now);
    a.handle_timeout(now);
    let (_, req) = a.poll_transmit().expect("request");
    let n = h.handle_frame(now, &req).expect("request accepted");
    h.respond(&n);
    let (_, resp) = h.poll_transmit().expect("response");
    let back = a.handle_frame(now, &resp).expect("response accepted");
    assert!(!back.is_request);
    assert_eq!(back.addr, host_cfg().own_addr);
    assert_eq!(back.id, host_cfg().own_id);
    assert_eq!(back.media_addr, host_cfg().media_addr);
}

// ---------------------------------------------------------------- robustness

proptest! {
    #[test]
    fn handle_frame_counts_every_frame_for_arbitrary_bytes(
        bytes in proptest::collection::vec(any::<u8>(), 0..120)
    ) {
        let now = Instant::now();
        let mut d = host(now);
        let got = d.handle_frame(now, &bytes);
        let s = d.stats();
        prop_assert_eq!(s.received, 1);
        prop_assert_eq!(s.accepted + s.total_dropped(), 1);
        prop_assert_eq!(got.is_some(), s.accepted == 1);
    }

    #[test]
    fn handle_frame_counts_every_frame_for_mutated_request(
        pos in 0usize..DISC_MSG_SIZE, val in any::<u8>(), cut in 0usize..=DISC_MSG_SIZE
    ) {
        let mut b = emit(&peer_req());
        b[pos] = val;
        b.truncate(cut);
        let now = Instant::now();
        let mut d = host(now);
        let _ = d.handle_frame(now, &b);
        let s = d.stats();
        prop_assert_eq!(s.accepted + s.total_dropped(), 1);
    }
}
