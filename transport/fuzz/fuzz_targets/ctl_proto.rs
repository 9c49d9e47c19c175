//! Fuzz target: the control socket's frames (`runtime/src/ctl/proto.rs`, compiled here from its
//! source so the fuzzer need not build the runtime; it needs only tipc-actors' address types,
//! tokio's I/O traits, serde and rmp-serde). The input is what a client writes to the socket,
//! read as the node reads it: one `Request`, then `Input` frames (after a `Connect`) until the
//! end or an error; and again as `tipcctl` reads replies: `Reply` frames. Checked:
//! * nothing panics, and a frame announced over `MAX_FRAME` or cut short is an error;
//! * every decoded value re-encodes with `write_frame` and reads back equal.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt::Debug;
use std::future::Future;
use std::io;
use std::task::{Context, Poll, Waker};

#[path = "../../../runtime/src/ctl/proto.rs"]
#[allow(dead_code)]
mod proto;

use proto::{read_frame, write_frame, Input, Reply, Request, MAX_FRAME};

/// Run a future over in-memory readers and writers, which are always ready.
fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..16 {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("in-memory I/O never completed");
}

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(v: &T) {
    let mut buf = Vec::new();
    match block_on(write_frame(&mut buf, v)) {
        Ok(()) => {
            let mut r = &buf[..];
            let back = block_on(read_frame::<T, _>(&mut r))
                .expect("a written frame reads")
                .expect("a written frame is there");
            assert_eq!(&back, v);
            assert!(r.is_empty());
        }
        Err(e) => assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}"),
    }
}

/// What the first frame header of `data` says must happen to it.
fn check_frame_bounds<T: Debug>(data: &[u8], got: &io::Result<Option<T>>) {
    let Some(len) = data.get(..4) else {
        return;
    };
    let n = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if n > MAX_FRAME {
        assert_eq!(
            got.as_ref().map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::InvalidData),
            "oversized frame: {got:?}"
        );
    } else if data.len() - 4 < n {
        assert_eq!(
            got.as_ref().map_err(|e| e.kind()).err(),
            Some(io::ErrorKind::UnexpectedEof),
            "truncated frame: {got:?}"
        );
    }
}

fuzz_target!(|data: &[u8]| {
    // The node's side.
    let mut r = data;
    let first = block_on(read_frame::<Request, _>(&mut r));
    check_frame_bounds(data, &first);
    match first {
        Ok(Some(req)) => {
            round_trip(&req);
            for _ in 0..64 {
                let rest = r;
                let f = block_on(read_frame::<Input, _>(&mut r));
                check_frame_bounds(rest, &f);
                match f {
                    Ok(Some(i)) => round_trip(&i),
                    _ => break,
                }
            }
        }
        Ok(None) => assert!(data.len() < 4),
        Err(_) => {}
    }
    // The client's side.
    let mut r = data;
    for _ in 0..64 {
        let rest = r;
        let f = block_on(read_frame::<Reply, _>(&mut r));
        check_frame_bounds(rest, &f);
        match f {
            Ok(Some(rep)) => round_trip(&rep),
            _ => break,
        }
    }
});
