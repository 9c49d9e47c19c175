//! The shared receive arena: frames are read into one buffer and split off as [`Bytes`], so a
//! batch costs no allocation. Used by the Ethernet media (kernel `eth_media.c`, where the
//! driver's `sk_buff` plays this part), spec §3.1.
//!
//! Kept apart from the media themselves so that no media file imports another.

use bytes::{Bytes, BytesMut};

/// A shared receive buffer: frames are received into it and split off as [`Bytes`], so a
/// batch costs no allocation; a new zeroed chunk is allocated when the rest is too small.
///
/// A frame kept alive keeps its whole chunk alive (up to a few MiB); long-term holders of
/// many small frames may prefer to copy them.
#[derive(Debug)]
pub(crate) struct RxArena {
    buf: BytesMut,
    chunk: usize,
}

impl RxArena {
    /// An arena that allocates `chunk` bytes at a time.
    pub(crate) fn new(chunk: usize) -> Self {
        RxArena {
            buf: BytesMut::new(),
            chunk,
        }
    }

    /// Make at least `need` writable bytes available and return them.
    pub(crate) fn space(&mut self, need: usize) -> &mut [u8] {
        if self.buf.len() < need {
            self.buf = BytesMut::zeroed(self.chunk.max(need));
        }
        &mut self.buf[..]
    }

    /// Split off the first `n` bytes (already written through [`RxArena::space`]).
    pub(crate) fn take(&mut self, n: usize) -> Bytes {
        let n = n.min(self.buf.len());
        self.buf.split_to(n).freeze()
    }
}
