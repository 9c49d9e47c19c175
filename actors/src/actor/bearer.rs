//! The bearer actor (kernel `bearer.c: tipc_l2_rcv_msg/tipc_rcv` entry and `discover.c` glue).
//!
//! Owns one [`Media`] and its [`Discoverer`]. A receive stream hands it batches of frames; each
//! frame is classified (`tipc_rcv`, spec §4.1) and goes to the discoverer or to the peer's actor
//! (started through the node context when discovery finds a new node). Sending goes through
//! the bearer's send path (`TxPath` (`crate::tx`)), drained by a task of this file that batches
//! whatever is queued into one `send_batch` call (GSO, sendmmsg) without passing through the
//! actor.

use crate::ctx::{now, BearerInfo, NodeCtx};
use crate::msg::{
    BcastPackets, BearerCmd, BearerStats, BearerStatsQuery, Discovered, Packets, PeerHandle,
};
use crate::tx::TxPath;
use actix::prelude::*;
use bytes::Bytes;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tipc_transport::discovery::{Discoverer, DiscoveryConfig};
use tipc_transport::media::{Media, RxFrame, TxFrame};
use tipc_transport::peer::{classify, DropReason, Route};
use tipc_transport::{MediaAddr, NodeAddr};

/// The actor driving one bearer.
pub struct BearerActor<M: Media> {
    ctx: Arc<NodeCtx>,
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
        node: Arc<NodeCtx>,
        info: BearerInfo,
        media: M,
    ) -> (Addr<Self>, Arc<TxPath>) {
        let media = Arc::new(media);
        let (tx, mut rx) = TxPath::new(&media, node.crypto.clone());
        let path = tx.clone();
        let now = now();
        let disc = Discoverer::new(
            DiscoveryConfig {
                net_id: node.cfg.net_id,
                own_addr: node.own_addr,
                own_id: node.cfg.id,
                caps: node.cfg.caps,
                signature: node.signature,
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
                    p.sent(batches);
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
                ctx: node,
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
        self.tx.send(frames, None);
        let next = self.disc.poll_timeout();
        // Re-arm only when the deadline moved (this runs for every received batch).
        if next.is_some() && next == self.timer.as_ref().map(|(t, _)| *t) {
            return;
        }
        if let Some((_, h)) = self.timer.take() {
            ctx.cancel_future(h);
        }
        if let Some(t) = next {
            let d = t.saturating_duration_since(now());
            let h = ctx.run_later(d, |act, ctx| {
                act.timer = None;
                act.disc.handle_timeout(now());
                act.pump(ctx);
            });
            self.timer = Some((t, h));
        }
    }

    fn peer_for(&self, addr: NodeAddr) -> Option<Arc<PeerHandle>> {
        self.ctx.peers.get(&addr).map(|e| e.value().clone())
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
        let mut frames = match item {
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
        let now = now();
        // Envelopes opened, plaintext refused under a key: before the header is looked at.
        self.ctx.crypto.open(now, &mut frames);
        let own = self.ctx.own_addr;
        // Frames for one peer are usually consecutive: batch them per peer (and source: the
        // peer's core accepts only its link's media address).
        type Batch = Option<(NodeAddr, MediaAddr, Vec<Bytes>)>;
        let mut batch: Batch = None;
        let flush = |b: &mut Batch, me: &mut Self| {
            if let Some((from, src, pkts)) = b.take() {
                match me.peer_for(from) {
                    Some(p) => p.packets.do_send(Packets {
                        bearer: me.info.id,
                        src,
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
                        // None: refused at the peer limit (counted by the context).
                        if let Some(peer) = self.ctx.peer_or_spawn(&n) {
                            peer.discovered.do_send(Discovered {
                                bearer: self.info.id,
                                neighbor: n,
                            });
                        }
                    }
                }
                Ok(Route::Unicast(from)) => match &mut batch {
                    Some((a, s, v)) if *a == from && *s == f.src => v.push(f.data),
                    _ => {
                        flush(&mut batch, self);
                        batch = Some((from, f.src, vec![f.data]));
                    }
                },
                Ok(Route::Broadcast(from)) => match self.peer_for(from) {
                    Some(p) => p.bcast.do_send(BcastPackets {
                        bearer: self.info.id,
                        src: f.src,
                        pkts: vec![f.data],
                    }),
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
            disc_malformed: d.drop_malformed + d.drop_bad_media_addr + d.drop_broadcast_media_addr,
            disc_wrong_network: d.drop_net_id,
            disc_own_addr: d.drop_duplicate_addr,
            disc_resp_limited: d.resp_limited,
            ..self.stats
        }
    }
}

impl<M: Media> Handler<BearerCmd> for BearerActor<M> {
    type Result = ();

    fn handle(&mut self, msg: BearerCmd, ctx: &mut Self::Context) {
        let now = now();
        match msg {
            BearerCmd::Respond { neighbor, stranger } => {
                self.disc.respond_to(now, &neighbor, stranger);
            }
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
