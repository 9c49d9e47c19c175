//! Two [`Link`]s driven by hand, frame by frame: what `link_stale_session.rs` and
//! `link_stale_tunnel.rs` share. Each test file uses a part of it.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use std::time::Instant;
use tipc_transport::link::{Link, LinkConfig, DEFAULT_TOLERANCE};
use tipc_transport::wire::{Header, BASIC_H_SIZE};
use tipc_transport::OWN_CAPABILITIES;

/// A link from `own` to `peer` on bearer `bearer` (`memN`), window 50, starting `session`.
pub fn cfg(own: u32, peer: u32, bearer: u8, session: u16) -> LinkConfig {
    LinkConfig {
        own_addr: own,
        peer_addr: peer,
        peer_caps: OWN_CAPABILITIES,
        name: format!("{own:x}:mem{bearer}-{peer:x}:mem{bearer}"),
        if_name: format!("mem{bearer}"),
        bearer_id: bearer,
        mtu: 1500,
        encap_hlen: 0,
        tolerance: DEFAULT_TOLERANCE,
        priority: 10,
        min_win: 50,
        max_win: 50,
        session,
    }
}

/// A data message from `from` to `to` whose 8-byte payload is `n`.
pub fn data_msg(from: u32, to: u32, n: u64) -> BytesMut {
    let len = BASIC_H_SIZE + 8;
    let mut b = BytesMut::zeroed(len);
    let mut h = Header::new_unchecked(&mut b[..]);
    h.init(0, 3, BASIC_H_SIZE, len, from);
    h.set_orignode(from);
    h.set_destnode(to);
    h.set_origport(1);
    h.set_destport(2);
    b[BASIC_H_SIZE..].copy_from_slice(&n.to_be_bytes());
    b
}

/// The number a [`data_msg`] carries.
pub fn number(m: &[u8]) -> u64 {
    let h = Header::new_checked(m).expect("a valid header");
    u64::from_be_bytes(h.payload()[..8].try_into().expect("8 bytes"))
}

/// The frames `l` has to send now.
pub fn frames(l: &mut Link) -> Vec<Bytes> {
    let mut v = Vec::new();
    let mut out = BytesMut::new();
    while let Some(n) = l.poll_transmit(&mut out) {
        v.push(out.split_to(n).freeze());
    }
    v
}

/// The header's user field of frame `f`.
pub fn user_of(f: &Bytes) -> u8 {
    Header::new_checked(&f[..]).expect("a valid header").user()
}

/// Deliver every frame both ways until neither link has anything to send.
pub fn exchange(a: &mut Link, b: &mut Link, now: Instant) {
    loop {
        let (fa, fb) = (frames(a), frames(b));
        if fa.is_empty() && fb.is_empty() {
            return;
        }
        for f in fa {
            b.handle_packet(now, f);
        }
        for f in fb {
            a.handle_packet(now, f);
        }
    }
}
