//! Media: the bearer-level transports that move TIPC frames between nodes
//! (kernel `bearer.c`, `udp_media.c`, `eth_media.c`), spec §3.1.
//!
//! A [`Media`] sends and receives whole TIPC messages in batches. It does no protocol work:
//! the discovery and link cores decide what to send where. Implementations:
//! `udp` (quinn-udp, batched, GSO/GRO), `eth` (pnet_datalink, EtherType 0x88CA),
//! `mem` (in-process, for tests) and `fault` (a seeded fault injector around any media).

use bytes::Bytes;
use std::future::Future;
use std::io;

pub mod eth;
pub mod fault;
pub mod mem;
mod rx;
mod sys;
pub mod udp;

pub use eth::EthMedia;
pub use fault::{FaultConfig, FaultInjector, FaultStats, FaultyMedia};
pub use mem::{MemMedia, MemNetwork, MemStats};
pub use udp::{multicast_group, UdpConfig, UdpMedia, UdpRemote};

pub use crate::wire::MediaAddr;

/// A duplicate of a socket's descriptor, registered with the runtime for write readiness
/// only while a send waits for buffer space.
///
/// The media register their sockets for read readiness only: registered for writes too, an
/// edge-triggered `EPOLLOUT` wakes the thread every time the kernel frees a sent buffer (on
/// loopback and veth, at once when the peer consumes it): one wasted `epoll_wait` per frame
/// sent. Sends are plain non-blocking calls; one that finds the buffer full waits here.
#[derive(Debug)]
pub(crate) struct WriteWait(tokio::sync::Mutex<std::os::fd::OwnedFd>);

/// The raw descriptor of a [`WriteWait`], for one registration.
struct WaitFd(std::os::fd::RawFd);

impl std::os::fd::AsRawFd for WaitFd {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.0
    }
}

impl WriteWait {
    /// Wait on `dup`, a duplicate of the socket's descriptor.
    pub(crate) fn new(dup: std::os::fd::OwnedFd) -> Self {
        WriteWait(tokio::sync::Mutex::new(dup))
    }

    /// Until the socket is writable. A fresh registration reports the current state, so space
    /// freed before it is not missed. Waits are serialized (one registration at a time).
    #[allow(unsafe_code)]
    pub(crate) async fn wait(&self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        use tokio::io::{unix::AsyncFd, Interest};
        let fd = self.0.lock().await;
        // SAFETY: `fd` is owned by this value and, through the guard held until the end of
        // this function, outlives the registration, which is dropped first.
        let afd =
            unsafe { AsyncFd::register_with_interest(WaitFd(fd.as_raw_fd()), Interest::WRITABLE) }
                .map_err(|e| e.into_parts().1)?;
        let _ready = afd.writable().await?;
        drop(afd);
        Ok(())
    }
}

/// A frame received from the media.
#[derive(Debug, Clone)]
pub struct RxFrame {
    /// The source address as seen by the media (UDP source, Ethernet source MAC).
    /// TIPC replies to the address written inside discovery messages, not to this one.
    pub src: MediaAddr,
    /// The TIPC message (for Ethernet, without the Ethernet header; may carry trailing padding).
    pub data: Bytes,
}

/// Where a frame goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dest {
    /// One peer bearer.
    Unicast(MediaAddr),
    /// Every neighbour: the Ethernet broadcast address, the UDP multicast group, or each
    /// address of the UDP replicast list.
    Broadcast,
}

/// A frame to send: `data` followed by `tail`.
#[derive(Debug, Clone)]
pub struct TxFrame {
    /// Destination.
    pub dest: Dest,
    /// The TIPC message, or its first part when `tail` is not empty.
    pub data: Bytes,
    /// The rest of the message, by reference (a large payload the link did not copy), or
    /// empty. Media send the two parts as one frame (as an iovec pair where they can).
    pub tail: Bytes,
}

impl TxFrame {
    /// A frame of one part.
    pub fn new(dest: Dest, data: Bytes) -> TxFrame {
        TxFrame {
            dest,
            data,
            tail: Bytes::new(),
        }
    }

    /// The frame's length.
    pub fn len(&self) -> usize {
        self.data.len() + self.tail.len()
    }

    /// Is the frame empty?
    pub fn is_empty(&self) -> bool {
        self.data.is_empty() && self.tail.is_empty()
    }

    /// The frame in one buffer (a copy only when it has two parts).
    pub fn contiguous(&self) -> Bytes {
        if self.tail.is_empty() {
            return self.data.clone();
        }
        let mut b = bytes::BytesMut::with_capacity(self.len());
        b.extend_from_slice(&self.data);
        b.extend_from_slice(&self.tail);
        b.freeze()
    }
}

/// Which kind of media a bearer uses (kernel media names "udp", "eth").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaKind {
    /// UDP/IP.
    Udp,
    /// Ethernet, EtherType 0x88CA.
    Eth,
    /// In-memory (tests).
    Mem,
}

impl MediaKind {
    /// The kernel's media name.
    pub fn name(&self) -> &'static str {
        match self {
            MediaKind::Udp => "udp",
            MediaKind::Eth => "eth",
            MediaKind::Mem => "mem",
        }
    }
}

/// A transport for TIPC frames. Methods take `&self` so that one task can receive while
/// another sends; implementations synchronise internally where they must.
pub trait Media: Send + Sync + 'static {
    /// The media kind.
    fn kind(&self) -> MediaKind;
    /// The address peers use to reach this bearer; written into discovery messages.
    fn local_addr(&self) -> MediaAddr;
    /// Largest TIPC message this media carries in one frame (the bearer MTU).
    fn mtu(&self) -> usize;
    /// The bearer's name as the kernel forms it, e.g. `udp:udp1` or `eth:eth0`.
    fn bearer_name(&self) -> String;
    /// Wait until at least one frame arrives, then append every frame available without
    /// waiting (one batch, e.g. one `recvmmsg`) to `out`.
    ///
    /// Must be cancel-safe: dropping the future before it completes loses no frame (callers
    /// `select!` on it, e.g. [`FaultyMedia`] against its delay timer).
    fn recv_batch<'a>(
        &'a self,
        out: &'a mut Vec<RxFrame>,
    ) -> impl Future<Output = io::Result<()>> + Send + 'a;
    /// Send a batch of frames, batching system calls where the media can (GSO, sendmmsg).
    /// Waits while the socket is not writable. A frame that cannot be sent to one destination
    /// does not stop the others; the error is returned after the batch.
    fn send_batch<'a>(
        &'a self,
        frames: &'a [TxFrame],
    ) -> impl Future<Output = io::Result<()>> + Send + 'a;
    /// Send leading frames of `frames` at once, without waiting, where the media can: returns
    /// how many were handed to the kernel (or dropped on an error, as [`Media::send_batch`]
    /// drops them). The caller sends the rest with [`Media::send_batch`]. The default sends
    /// none (wrappers such as [`FaultyMedia`] keep it, so their faults still apply).
    fn try_send_now(&self, frames: &[TxFrame]) -> usize {
        let _ = frames;
        0
    }
}
