//! In-memory media for tests and simulation (no kernel counterpart; stands in for
//! `bearer.c`'s media with an in-process hub), spec §3.1.
//!
//! A [`MemNetwork`] is a hub; [`MemNetwork::attach`] creates an endpoint [`MemMedia`] with
//! address [`MediaAddr::Mem`]. Unicast goes to one endpoint, broadcast to every endpoint but
//! the sender. Each endpoint has a bounded receive queue; when it is full the frame is dropped
//! and counted, as a NIC ring would.

use super::{Dest, Media, MediaAddr, MediaKind, RxFrame, TxFrame};
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Default receive queue length per endpoint, in frames.
pub const DEFAULT_QUEUE: usize = 1024;
/// Default MTU of in-memory endpoints.
pub const DEFAULT_MTU: usize = 1500;
/// Frames handed out per `recv_batch` at most.
const RX_BATCH: usize = 64;

/// Counters of one endpoint.
#[derive(Debug, Default)]
struct Counters {
    sent: AtomicU64,
    received: AtomicU64,
    dropped_overflow: AtomicU64,
    dropped_unknown: AtomicU64,
}

/// A snapshot of a [`MemMedia`]'s counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemStats {
    /// Frames this endpoint handed to the hub (a broadcast counts once).
    pub sent: u64,
    /// Frames queued for this endpoint.
    pub received: u64,
    /// Frames for this endpoint dropped because its queue was full.
    pub dropped_overflow: u64,
    /// Unicast frames this endpoint sent to an id nobody is attached as.
    pub dropped_unknown: u64,
}

#[derive(Debug)]
struct Port {
    tx: mpsc::Sender<RxFrame>,
    counters: Arc<Counters>,
    generation: u64,
}

#[derive(Debug, Default)]
struct Hub {
    ports: HashMap<u32, Port>,
    next_generation: u64,
}

/// An in-process network hub. Cloning gives another handle to the same hub.
#[derive(Debug, Clone)]
pub struct MemNetwork {
    hub: Arc<Mutex<Hub>>,
    queue: usize,
    mtu: usize,
}

impl Default for MemNetwork {
    fn default() -> Self {
        Self::new()
    }
}

impl MemNetwork {
    /// A hub with [`DEFAULT_QUEUE`] frames per endpoint and MTU [`DEFAULT_MTU`].
    pub fn new() -> Self {
        Self::with_config(DEFAULT_QUEUE, DEFAULT_MTU)
    }

    /// A hub with `queue` frames per endpoint (at least 1) and the given MTU.
    pub fn with_config(queue: usize, mtu: usize) -> Self {
        MemNetwork {
            hub: Arc::new(Mutex::new(Hub::default())),
            queue: queue.max(1),
            mtu,
        }
    }

    /// Attach an endpoint with address `Mem(id)`. An endpoint already attached under `id` is
    /// detached: it receives nothing more and its `recv_batch` fails with `NotConnected`.
    pub fn attach(&self, id: u32) -> MemMedia {
        let (tx, rx) = mpsc::channel(self.queue);
        let counters = Arc::new(Counters::default());
        let mut hub = self.lock();
        let generation = hub.next_generation;
        hub.next_generation += 1;
        hub.ports.insert(
            id,
            Port {
                tx,
                counters: counters.clone(),
                generation,
            },
        );
        MemMedia {
            net: self.clone(),
            id,
            generation,
            rx: tokio::sync::Mutex::new(rx),
            counters,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hub> {
        self.hub.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One endpoint of a [`MemNetwork`].
#[derive(Debug)]
pub struct MemMedia {
    net: MemNetwork,
    id: u32,
    generation: u64,
    rx: tokio::sync::Mutex<mpsc::Receiver<RxFrame>>,
    counters: Arc<Counters>,
}

impl MemMedia {
    /// This endpoint's id.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Counter snapshot.
    pub fn stats(&self) -> MemStats {
        let c = &self.counters;
        MemStats {
            sent: c.sent.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            dropped_overflow: c.dropped_overflow.load(Ordering::Relaxed),
            dropped_unknown: c.dropped_unknown.load(Ordering::Relaxed),
        }
    }
}

fn deliver(port: &Port, frame: RxFrame) {
    match port.tx.try_send(frame) {
        Ok(()) => {
            port.counters.received.fetch_add(1, Ordering::Relaxed);
        }
        Err(mpsc::error::TrySendError::Full(_)) => {
            port.counters
                .dropped_overflow
                .fetch_add(1, Ordering::Relaxed);
        }
        // The receiver is gone: the endpoint is being dropped.
        Err(mpsc::error::TrySendError::Closed(_)) => {}
    }
}

impl Drop for MemMedia {
    fn drop(&mut self) {
        let mut hub = self.net.lock();
        if hub
            .ports
            .get(&self.id)
            .is_some_and(|p| p.generation == self.generation)
        {
            hub.ports.remove(&self.id);
        }
    }
}

impl Media for MemMedia {
    fn kind(&self) -> MediaKind {
        MediaKind::Mem
    }

    fn local_addr(&self) -> MediaAddr {
        MediaAddr::Mem(self.id)
    }

    fn mtu(&self) -> usize {
        self.net.mtu
    }

    fn bearer_name(&self) -> String {
        format!("mem:{}", self.id)
    }

    async fn recv_batch(&self, out: &mut Vec<RxFrame>) -> io::Result<()> {
        let mut rx = self.rx.lock().await;
        match rx.recv().await {
            Some(f) => out.push(f),
            None => {
                return Err(io::Error::new(
                    io::ErrorKind::NotConnected,
                    format!("mem:{} was detached from its network", self.id),
                ))
            }
        }
        for _ in 1..RX_BATCH {
            match rx.try_recv() {
                Ok(f) => out.push(f),
                Err(_) => break,
            }
        }
        Ok(())
    }

    async fn send_batch(&self, frames: &[TxFrame]) -> io::Result<()> {
        let mut first_err = None;
        let src = MediaAddr::Mem(self.id);
        let hub = self.net.lock();
        if hub
            .ports
            .get(&self.id)
            .is_none_or(|p| p.generation != self.generation)
        {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                format!("mem:{} was detached from its network", self.id),
            ));
        }
        for f in frames {
            if f.len() > self.net.mtu {
                first_err.get_or_insert_with(|| {
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("{} B frame exceeds MTU {}", f.len(), self.net.mtu),
                    )
                });
                continue;
            }
            self.counters.sent.fetch_add(1, Ordering::Relaxed);
            let rx = RxFrame {
                src,
                data: f.contiguous(),
            };
            match f.dest {
                Dest::Unicast(MediaAddr::Mem(id)) => match hub.ports.get(&id) {
                    Some(port) => deliver(port, rx),
                    None => {
                        self.counters
                            .dropped_unknown
                            .fetch_add(1, Ordering::Relaxed);
                    }
                },
                Dest::Unicast(other) => {
                    first_err.get_or_insert_with(|| {
                        io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!("{other} is not an in-memory address"),
                        )
                    });
                }
                Dest::Broadcast => {
                    for (id, port) in hub.ports.iter() {
                        if *id != self.id {
                            deliver(port, rx.clone());
                        }
                    }
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}
