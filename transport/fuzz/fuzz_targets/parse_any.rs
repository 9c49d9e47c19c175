//! Fuzz target: arbitrary bytes into the TIPC wire parsers (`Header::new_checked`,
//! `MessageRepr::parse` and re-emit, bundle extraction, a `Reassembler`).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tipc_transport::wire::{extract, Header, MessageRepr, Reassembler};

fuzz_target!(|data: &[u8]| {
    if let Ok(h) = Header::new_checked(data) {
        let _ = (h.payload(), h.orignode(), h.message());
    }
    if let Ok(r) = MessageRepr::parse(data) {
        let mut out = vec![0u8; r.buffer_len()];
        let n = r.emit(&mut out);
        assert_eq!(n, out.len());
        assert_eq!(MessageRepr::parse(&out), Ok(r));
    }
    let b = Bytes::copy_from_slice(data);
    for inner in extract(&b).take(100_000).flatten() {
        let _ = MessageRepr::parse(&inner);
    }
    // Feed the input, then each bundled/split piece, into one reassembler.
    let mut r = Reassembler::new();
    let _ = r.push(b.clone());
    let mid = data.len() / 2;
    let _ = r.push(b.slice(..mid));
    let _ = r.push(b.slice(mid..));
    assert!(r.pending_len() <= tipc_transport::wire::MAX_MSG_SIZE);
});
