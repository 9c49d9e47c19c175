//! The Bearer actor (kernel `bearer.c: tipc_l2_rcv_msg/tipc_rcv` entry and `discover.c` glue).
//!
//! Owns one [`Media`] and its [`Discoverer`]. A receive stream hands it batches of frames; each
//! frame is classified (`tipc_rcv`, spec §4.1) and goes to the discoverer or to the peer's actor.
//! Sending goes through a channel drained by a task that batches whatever is queued into one
//! `send_batch` call (GSO, sendmmsg) without passing through the actor.

use crate::node::{BearerInfo, Shared};
use crate::peer::{BcastPackets, Discovered, Packets, PeerActor};
use actix::prelude::*;
use bytes::Bytes;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tipc_transport::discovery::{Discoverer, DiscoveryConfig, Neighbor};
use tipc_transport::media::{Media, RxFrame, TxFrame};
use tipc_transport::peer::{classify, DropReason, Route};
use tipc_transport::NodeAddr;
use tokio::sync::mpsc;

/// A batch of frames for one bearer.
#[derive(Debug, Default)]
pub struct TxBatch {
    /// The frames.
    pub frames: Vec<TxFrame>,
}

/// The way frames reach a bearer's media: sent at once from the caller's task when nothing
/// is queued for the bearer's send task (the media decides what it can send without waiting,
/// [`Media::try_send_now`]), otherwise queued behind what is already waiting, in order.
pub(crate) struct TxPath {
    tx: mpsc::UnboundedSender<TxBatch>,
    /// Batches queued for (or being sent by) the send task; frames go out inline only at 0.
    queued: AtomicUsize,
    /// The media, not kept alive by this path (its socket closes with the bearer's tasks).
    media: std::sync::Weak<dyn InlineSend>,
}

impl std::fmt::Debug for TxPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxPath")
            .field("queued", &self.queued.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// [`Media::try_send_now`] behind a trait object (`Media` itself is not object safe).
trait InlineSend: Send + Sync {
    fn try_send_now(&self, frames: &[TxFrame]) -> usize;
}

impl<M: Media> InlineSend for M {
    fn try_send_now(&self, frames: &[TxFrame]) -> usize {
        Media::try_send_now(self, frames)
    }
}

impl TxPath {
    /// Send `frames` in order after everything sent before through this path. Frames of one
    /// link come from one task (its peer actor), so "nothing queued" seen there means none
    /// of that link's earlier frames is still waiting.
    pub(crate) fn send(&self, mut frames: Vec<TxFrame>) {
        if frames.is_empty() {
            return;
        }
        if let Some(media) = self
            .media
            .upgrade()
            .filter(|_| self.queued.load(Ordering::Acquire) == 0)
        {
            let n = media.try_send_now(&frames).min(frames.len());
            if n == frames.len() {
                return;
            }
            frames.drain(..n);
        }
        self.queued.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(TxBatch { frames }).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The send task is gone (bearer disabled).
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

/// Commands to a bearer actor.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum BearerCmd {
    /// Answer a discovery request from this neighbour.
    Respond(Neighbor),
    /// A link on this bearer came up.
    LinkUp,
    /// A link on this bearer went down.
    LinkDown,
    /// Nothing; answered once earlier messages were handled (used to order shutdown).
    Flush,
}

/// Ask a bearer for its counters.
#[derive(Debug, Message)]
#[rtype(result = "BearerStats")]
pub struct BearerStatsQuery;

/// Receive-side counters of a bearer.
#[derive(Debug, Clone, Copy, Default, MessageResponse)]
pub struct BearerStats {
    /// Frames received.
    pub rx_frames: u64,
    /// Frames dropped as malformed.
    pub rx_malformed: u64,
    /// Frames dropped for another destination or a bad previous node.
    pub rx_misrouted: u64,
    /// Frames from nodes we have no peer for.
    pub rx_unknown_peer: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Discovery messages received.
    pub disc_received: u64,
    /// Discovery messages dropped (bad net id, media address, own address, malformed...).
    pub disc_dropped: u64,
}

/// The actor driving one bearer.
pub struct BearerActor<M: Media> {
    shared: Arc<Shared>,
    info: BearerInfo,
    media: Arc<M>,
    disc: Discoverer,
    tx: Arc<TxPath>,
    /// The armed discovery timer and its deadline.
    timer: Option<(Instant, SpawnHandle)>,
    up_links: usize,
    stats: BearerStats,
}

impl<M: Media> BearerActor<M> {
    /// Start the actor and its send task; returns the actor and the bearer's send path.
    pub(crate) fn start_on(
        shared: Arc<Shared>,
        info: BearerInfo,
        media: M,
    ) -> (Addr<Self>, Arc<TxPath>) {
        let media = Arc::new(media);
        let (tx, mut rx) = mpsc::unbounded_channel::<TxBatch>();
        let tx = Arc::new(TxPath {
            tx,
            queued: AtomicUsize::new(0),
            media: {
                let m: Arc<dyn InlineSend> = media.clone();
                Arc::downgrade(&m)
            },
        });
        let path = tx.clone();
        let now = Instant::now();
        let disc = Discoverer::new(
            DiscoveryConfig {
                net_id: shared.cfg.net_id,
                own_addr: shared.own_addr,
                own_id: shared.cfg.id,
                caps: shared.cfg.caps,
                signature: shared.signature,
                bearer_id: info.id,
                media_addr: media.local_addr(),
                domain: 0,
                net_hash: 0,
            },
            now,
        );
        // Send task: drain everything queued into one batch per wake-up.
        let m2 = media.clone();
        let bname = info.name.clone();
        let counts = Arc::downgrade(&tx);
        actix::spawn(async move {
            let mut frames: Vec<TxFrame> = Vec::with_capacity(64);
            while let Some(b) = rx.recv().await {
                let mut batches = 1;
                frames.extend(b.frames);
                while let Ok(b) = rx.try_recv() {
                    batches += 1;
                    frames.extend(b.frames);
                    if frames.len() >= 256 {
                        break;
                    }
                }
                if let Err(e) = m2.send_batch(&frames).await {
                    tracing::debug!(bearer = %bname, error = %e, "send error");
                }
                frames.clear();
                // Only now are these batches out: until then senders keep queueing behind.
                if let Some(p) = counts.upgrade() {
                    p.queued.fetch_sub(batches, Ordering::AcqRel);
                }
            }
        });
        let addr = BearerActor::create(move |ctx| {
            let m = media.clone();
            let stream = futures_util::stream::unfold(m, |m| async move {
                // Grown as needed: a preallocated 64-frame vector is a large-bin request
                // (>= 1 KiB), which makes glibc consolidate its fast bins on every receive.
                let mut v = Vec::new();
                let r = m.recv_batch(&mut v).await.map(|_| v);
                Some((r, m))
            });
            ctx.add_stream(stream);
            BearerActor {
                shared,
                info,
                media,
                disc,
                tx,
                timer: None,
                up_links: 0,
                stats: BearerStats::default(),
            }
        });
        (addr, path)
    }

    fn pump(&mut self, ctx: &mut Context<Self>) {
        let mut frames = Vec::new();
        while let Some((dest, data)) = self.disc.poll_transmit() {
            frames.push(TxFrame::new(dest, data));
        }
        self.tx.send(frames);
        let next = self.disc.poll_timeout();
        // Re-arm only when the deadline moved (this runs for every received batch).
        if next.is_some() && next == self.timer.as_ref().map(|(t, _)| *t) {
            return;
        }
        if let Some((_, h)) = self.timer.take() {
            ctx.cancel_future(h);
        }
        if let Some(t) = next {
            let d = t.saturating_duration_since(Instant::now());
            let h = ctx.run_later(d, |act, ctx| {
                act.timer = None;
                act.disc.handle_timeout(Instant::now());
                act.pump(ctx);
            });
            self.timer = Some((t, h));
        }
    }

    fn peer_for(&self, addr: NodeAddr) -> Option<Addr<PeerActor>> {
        self.shared.peers.get(&addr).map(|e| e.value().clone())
    }
}

impl<M: Media> Actor for BearerActor<M> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(bearer = %self.info.name, addr = %self.media.local_addr(), "bearer enabled");
        self.pump(ctx);
    }
}

impl<M: Media> StreamHandler<io::Result<Vec<RxFrame>>> for BearerActor<M> {
    fn handle(&mut self, item: io::Result<Vec<RxFrame>>, ctx: &mut Self::Context) {
        let frames = match item {
            Ok(f) => f,
            Err(e) => {
                self.stats.rx_errors += 1;
                tracing::debug!(bearer = %self.info.name, error = %e, "receive error");
                // Avoid spinning on a persistent error.
                ctx.wait(actix::fut::wrap_future(tokio::time::sleep(
                    Duration::from_millis(10),
                )));
                return;
            }
        };
        let now = Instant::now();
        let own = self.shared.own_addr;
        // Frames for one peer are usually consecutive: batch them per peer.
        let mut batch: Option<(NodeAddr, Vec<Bytes>)> = None;
        let flush = |b: &mut Option<(NodeAddr, Vec<Bytes>)>, me: &mut Self| {
            if let Some((from, pkts)) = b.take() {
                match me.peer_for(from) {
                    Some(p) => p.do_send(Packets {
                        bearer: me.info.id,
                        pkts,
                    }),
                    None => me.stats.rx_unknown_peer += pkts.len() as u64,
                }
            }
        };
        for f in frames {
            self.stats.rx_frames += 1;
            match classify(own, &f.data) {
                Ok(Route::Discovery) => {
                    if let Some(n) = self.disc.handle_frame(now, &f.data) {
                        let peer = self
                            .shared
                            .peers
                            .entry(n.addr)
                            .or_insert_with(|| PeerActor::start_new(self.shared.clone(), &n))
                            .value()
                            .clone();
                        peer.do_send(Discovered {
                            bearer: self.info.id,
                            neighbor: n,
                        });
                    }
                }
                Ok(Route::Unicast(from)) => match &mut batch {
                    Some((a, v)) if *a == from => v.push(f.data),
                    _ => {
                        flush(&mut batch, self);
                        batch = Some((from, vec![f.data]));
                    }
                },
                Ok(Route::Broadcast(from)) => match self.peer_for(from) {
                    Some(p) => p.do_send(BcastPackets { pkts: vec![f.data] }),
                    None => self.stats.rx_unknown_peer += 1,
                },
                Err(DropReason::Malformed(_)) => self.stats.rx_malformed += 1,
                Err(_) => self.stats.rx_misrouted += 1,
            }
        }
        flush(&mut batch, self);
        self.pump(ctx);
    }
}

impl<M: Media> Handler<BearerStatsQuery> for BearerActor<M> {
    type Result = BearerStats;

    fn handle(&mut self, _: BearerStatsQuery, _: &mut Self::Context) -> BearerStats {
        let d = self.disc.stats();
        BearerStats {
            disc_received: d.received,
            disc_dropped: d.total_dropped(),
            ..self.stats
        }
    }
}

impl<M: Media> Handler<BearerCmd> for BearerActor<M> {
    type Result = ();

    fn handle(&mut self, msg: BearerCmd, ctx: &mut Self::Context) {
        let now = Instant::now();
        match msg {
            BearerCmd::Respond(n) => self.disc.respond(&n),
            BearerCmd::LinkUp => {
                self.up_links += 1;
                self.disc.set_up_links(now, self.up_links);
            }
            BearerCmd::LinkDown => {
                self.up_links = self.up_links.saturating_sub(1);
                self.disc.set_up_links(now, self.up_links);
            }
            BearerCmd::Flush => {}
        }
        self.pump(ctx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use tipc_transport::media::Dest;

    /// Takes up to `room` frames inline and records them.
    struct Fake {
        room: usize,
        sent: Mutex<Vec<Bytes>>,
    }

    impl InlineSend for Fake {
        fn try_send_now(&self, frames: &[TxFrame]) -> usize {
            let n = frames.len().min(self.room);
            let mut sent = self.sent.lock().unwrap();
            sent.extend(frames[..n].iter().map(|f| f.data.clone()));
            n
        }
    }

    fn path(room: usize, queued: usize) -> (TxPath, Arc<Fake>, mpsc::UnboundedReceiver<TxBatch>) {
        let fake = Arc::new(Fake {
            room,
            sent: Mutex::new(Vec::new()),
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let m: Arc<dyn InlineSend> = fake.clone();
        let p = TxPath {
            tx,
            queued: AtomicUsize::new(queued),
            media: Arc::downgrade(&m),
        };
        (p, fake, rx)
    }

    fn frames(tags: &[&'static [u8]]) -> Vec<TxFrame> {
        tags.iter()
            .map(|t| TxFrame::new(Dest::Broadcast, Bytes::from_static(t)))
            .collect()
    }

    #[test]
    fn tx_path_sends_inline_when_nothing_is_queued() {
        let (p, fake, mut rx) = path(8, 0);
        p.send(frames(&[b"a", b"b"]));
        assert_eq!(*fake.sent.lock().unwrap(), vec![&b"a"[..], &b"b"[..]]);
        assert!(rx.try_recv().is_err());
        assert_eq!(p.queued.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn tx_path_queues_everything_once_the_media_is_gone() {
        let (p, fake, mut rx) = path(8, 0);
        drop(fake);
        p.send(frames(&[b"a"]));
        assert_eq!(rx.try_recv().expect("queued").frames.len(), 1);
    }

    #[test]
    fn tx_path_queues_behind_batches_still_waiting() {
        let (p, fake, mut rx) = path(8, 1);
        p.send(frames(&[b"a"]));
        assert!(fake.sent.lock().unwrap().is_empty());
        let b = rx.try_recv().expect("queued");
        assert_eq!(b.frames.len(), 1);
        assert_eq!(p.queued.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn tx_path_queues_what_the_media_did_not_take_in_order() {
        let (p, fake, mut rx) = path(1, 0);
        p.send(frames(&[b"a", b"b", b"c"]));
        assert_eq!(*fake.sent.lock().unwrap(), vec![&b"a"[..]]);
        let b = rx.try_recv().expect("rest queued");
        let rest: Vec<&[u8]> = b.frames.iter().map(|f| &f.data[..]).collect();
        assert_eq!(rest, vec![&b"b"[..], &b"c"[..]]);
        assert_eq!(p.queued.load(Ordering::SeqCst), 1);
        // The next send waits behind that batch.
        p.send(frames(&[b"d"]));
        assert_eq!(fake.sent.lock().unwrap().len(), 1);
    }
}
