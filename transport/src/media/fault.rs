//! A seeded fault injector around any media (no kernel counterpart: the kernel's tests use
//! netem; spec §3.1 media semantics, used to exercise §4.5–§4.7 recovery).
//!
//! [`FaultInjector`] is the sans-IO core: for each frame it decides, from a ChaCha8 stream
//! seeded with a `u64`, whether to drop, corrupt (flip one byte), duplicate, reorder (hold back
//! until the next frame has passed) and delay it. The same seed and the same input sequence
//! always give the same output. [`FaultyMedia`] applies an injector to the frames received by
//! an inner [`Media`], and optionally a second, independently seeded one to the frames sent.

use super::{Media, MediaAddr, MediaKind, RxFrame, TxFrame};
use bytes::{Bytes, BytesMut};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// What to do to frames. Probabilities are in `0.0..=1.0` (values outside are clamped).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FaultConfig {
    /// Probability that a frame is dropped.
    pub drop: f64,
    /// Probability that a frame is delivered twice.
    pub duplicate: f64,
    /// Probability that a frame is held back and released right after the next frame.
    pub reorder: f64,
    /// Probability that one random byte of a frame is changed.
    pub corrupt: f64,
    /// If set, every frame is delayed by a uniformly random time in `[min, max]`.
    pub delay: Option<(Duration, Duration)>,
}

/// Counters of one injector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Frames offered to the injector.
    pub seen: u64,
    /// Frames dropped.
    pub dropped: u64,
    /// Frames emitted twice.
    pub duplicated: u64,
    /// Frames held back to be released after the next one.
    pub reordered: u64,
    /// Frames with one byte changed.
    pub corrupted: u64,
    /// Frames given a non-zero delay.
    pub delayed: u64,
}

/// A frame leaving the injector: its metadata, (possibly corrupted) data and its delay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Faulted<T> {
    /// Caller metadata (source or destination address).
    pub meta: T,
    /// The frame contents.
    pub data: Bytes,
    /// How long to wait before delivering it (zero: now).
    pub delay: Duration,
}

/// The deterministic, sans-IO fault decision core.
#[derive(Debug)]
pub struct FaultInjector<T> {
    cfg: FaultConfig,
    rng: ChaCha8Rng,
    held: Option<Vec<Faulted<T>>>,
    stats: FaultStats,
}

impl<T: Clone> FaultInjector<T> {
    /// An injector with configuration `cfg` and random stream `seed`.
    pub fn new(cfg: FaultConfig, seed: u64) -> Self {
        FaultInjector {
            cfg,
            rng: ChaCha8Rng::seed_from_u64(seed),
            held: None,
            stats: FaultStats::default(),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> FaultStats {
        self.stats
    }

    /// A uniform number in `[0, 1)` (53 random bits).
    fn unit(&mut self) -> f64 {
        (self.rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// A uniform integer in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        ((self.unit() * n as f64) as usize).min(n.saturating_sub(1))
    }

    /// Run one frame through the injector, appending whatever leaves it now to `out`
    /// (nothing if dropped or held back; the held frame after the next emitted one).
    pub fn process(&mut self, meta: T, data: Bytes, out: &mut Vec<Faulted<T>>) {
        self.stats.seen += 1;
        if self.chance(self.cfg.drop) {
            self.stats.dropped += 1;
            return;
        }
        let data = if !data.is_empty() && self.chance(self.cfg.corrupt) {
            self.stats.corrupted += 1;
            let at = self.below(data.len());
            let flip = 1 + self.below(255) as u8;
            let mut b = BytesMut::from(&data[..]);
            b[at] ^= flip;
            b.freeze()
        } else {
            data
        };
        let copies = if self.chance(self.cfg.duplicate) {
            self.stats.duplicated += 1;
            2
        } else {
            1
        };
        let delay = match self.cfg.delay {
            Some((lo, hi)) if hi > lo => lo + (hi - lo).mul_f64(self.unit()),
            Some((lo, _)) => lo,
            None => Duration::ZERO,
        };
        if !delay.is_zero() {
            self.stats.delayed += 1;
        }
        let emitted: Vec<Faulted<T>> = (0..copies)
            .map(|_| Faulted {
                meta: meta.clone(),
                data: data.clone(),
                delay,
            })
            .collect();
        if self.held.is_none() && self.chance(self.cfg.reorder) {
            self.stats.reordered += 1;
            self.held = Some(emitted);
            return;
        }
        out.extend(emitted);
        if let Some(h) = self.held.take() {
            out.extend(h);
        }
    }

    /// Release a held-back frame now (e.g. at the end of a test).
    pub fn flush(&mut self, out: &mut Vec<Faulted<T>>) {
        if let Some(h) = self.held.take() {
            out.extend(h);
        }
    }
}

/// Received frames waiting out their delay.
#[derive(Debug)]
struct RxState {
    inj: FaultInjector<MediaAddr>,
    delayed: BTreeMap<(Instant, u64), RxFrame>,
    seq: u64,
}

/// Any media with faults injected into its received (and optionally sent) frames.
#[derive(Debug)]
pub struct FaultyMedia<M> {
    inner: Arc<M>,
    rx: Mutex<RxState>,
    tx: Option<Mutex<FaultInjector<super::Dest>>>,
}

impl<M: Media> FaultyMedia<M> {
    /// Wrap `inner`, applying `rx` to received frames, seeded with `seed`.
    pub fn new(inner: M, rx: FaultConfig, seed: u64) -> Self {
        FaultyMedia {
            inner: Arc::new(inner),
            rx: Mutex::new(RxState {
                inj: FaultInjector::new(rx, seed),
                delayed: BTreeMap::new(),
                seq: 0,
            }),
            tx: None,
        }
    }

    /// Also apply `tx` to sent frames, with its own random stream derived from the seed.
    /// Delayed sends are performed by spawned tokio tasks.
    pub fn with_tx_faults(mut self, tx: FaultConfig, seed: u64) -> Self {
        self.tx = Some(Mutex::new(FaultInjector::new(
            tx,
            seed ^ 0x9E37_79B9_7F4A_7C15,
        )));
        self
    }

    /// The wrapped media.
    pub fn inner(&self) -> &M {
        &self.inner
    }

    /// Counters of the receive-side injector.
    pub fn stats(&self) -> FaultStats {
        self.lock_rx().inj.stats()
    }

    /// Counters of the send-side injector, if any.
    pub fn tx_stats(&self) -> Option<FaultStats> {
        self.tx
            .as_ref()
            .map(|t| t.lock().unwrap_or_else(|p| p.into_inner()).stats())
    }

    fn lock_rx(&self) -> std::sync::MutexGuard<'_, RxState> {
        self.rx.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Move due delayed frames to `out`; return the next deadline.
    fn release_due(&self, now: Instant, out: &mut Vec<RxFrame>) -> Option<Instant> {
        let mut st = self.lock_rx();
        while let Some(entry) = st.delayed.first_entry() {
            if entry.key().0 > now {
                return Some(entry.key().0);
            }
            out.push(entry.remove());
        }
        None
    }

    fn inject_rx(&self, now: Instant, frames: Vec<RxFrame>, out: &mut Vec<RxFrame>) {
        let mut st = self.lock_rx();
        let mut passed = Vec::new();
        for f in frames {
            st.inj.process(f.src, f.data, &mut passed);
        }
        for p in passed {
            let frame = RxFrame {
                src: p.meta,
                data: p.data,
            };
            if p.delay.is_zero() {
                out.push(frame);
            } else {
                let seq = st.seq;
                st.seq += 1;
                st.delayed.insert((now + p.delay, seq), frame);
            }
        }
    }
}

impl<M: Media> Media for FaultyMedia<M> {
    fn kind(&self) -> MediaKind {
        self.inner.kind()
    }

    fn local_addr(&self) -> MediaAddr {
        self.inner.local_addr()
    }

    fn mtu(&self) -> usize {
        self.inner.mtu()
    }

    fn bearer_name(&self) -> String {
        self.inner.bearer_name()
    }

    async fn recv_batch(&self, out: &mut Vec<RxFrame>) -> io::Result<()> {
        let before = out.len();
        loop {
            let deadline = self.release_due(Instant::now(), out);
            if out.len() > before {
                return Ok(());
            }
            let mut got = Vec::new();
            tokio::select! {
                r = self.inner.recv_batch(&mut got) => r?,
                _ = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
            self.inject_rx(Instant::now(), got, out);
            if out.len() > before {
                return Ok(());
            }
        }
    }

    async fn send_batch(&self, frames: &[TxFrame]) -> io::Result<()> {
        let Some(tx) = &self.tx else {
            return self.inner.send_batch(frames).await;
        };
        let mut passed = Vec::new();
        {
            let mut inj = tx.lock().unwrap_or_else(|p| p.into_inner());
            for f in frames {
                inj.process(f.dest, f.contiguous(), &mut passed);
            }
        }
        let mut now_frames = Vec::new();
        for p in passed {
            let frame = TxFrame::new(p.meta, p.data);
            if p.delay.is_zero() {
                now_frames.push(frame);
            } else {
                let inner = self.inner.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(p.delay).await;
                    if let Err(e) = inner.send_batch(&[frame]).await {
                        tracing::debug!("delayed send failed: {e}");
                    }
                });
            }
        }
        if now_frames.is_empty() {
            return Ok(());
        }
        self.inner.send_batch(&now_frames).await
    }
}
