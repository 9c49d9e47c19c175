//! Per-peer send state shared by the peer's actor and everyone who sends to that peer (kernel
//! `node.c: tipc_node_xmit` and the link's congestion wait of `socket.c: tipc_wait_for_cond`).
//!
//! A [`PeerFlow`] holds the peer's ordered send queue, its congestion flag with the
//! wake-up of waiting senders, and the peer's link core (`PeerLinks`): owned by the peer's
//! actor, borrowed under its lock by a sender that hands a message to an idle link from its
//! own task (`send_inline`), which saves the actor hop on a request/reply path.

use crate::tx::TxPath;
use bytes::{Bytes, BytesMut};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tipc_transport::link::{SendError, SendStatus};
use tipc_transport::media::{Dest, TxFrame};
use tipc_transport::peer::{Peer, Transmit};
use tipc_transport::{BearerId, MAX_BEARERS};

/// Transmit staging buffer allocation unit. Frames are zero-copy slices of it, so a chunk is
/// freed only when every frame cut from it was sent; large chunks keep that rare.
const OUT_CHUNK: usize = 256 * 1024;
/// The staging buffer of a peer that is not up: it sends RESET and ACTIVATE only, and a node
/// may hold thousands of such peers (anyone can create one with a discovery message).
const SETUP_CHUNK: usize = 512;

/// A poster waits for the peer actor every this many messages, so that at most this many
/// messages sit in its mailbox before congestion can be seen.
pub const POST_BARRIER: u64 = 64;

/// Congestion state of one peer, shared by its actor and the senders posting to it.
#[derive(Debug, Default)]
pub struct PeerFlow {
    /// The peer's link is congested (or messages are parked): senders wait.
    pub congested: AtomicBool,
    /// Woken when the congestion clears (or the peer goes down).
    pub notify: tokio::sync::Notify,
    /// Messages posted so far (a round trip every [`POST_BARRIER`] keeps the mailbox short).
    pub posted: AtomicU64,
    /// Messages the peer's actor sent to the name table (delivered batches, node and link
    /// state) that it has not handled yet. While this is not zero, the peer actor routes
    /// delivered data through the name table too, to keep link order with the name updates
    /// before it.
    pub at_names: AtomicUsize,
    /// Messages for the peer's link, in order, waiting for its actor.
    pub(crate) queue: Mutex<VecDeque<BytesMut>>,
    /// A drain of [`PeerFlow::queue`] is in the actor's mailbox.
    pub(crate) drain_scheduled: AtomicBool,
    /// The current actor's link core, for senders that offer to it directly.
    links: Mutex<Option<Arc<Mutex<PeerLinks>>>>,
    /// The largest message that goes unfragmented over the peer's active link (0 if none is
    /// up), as the peer's actor last saw it: read without taking the link core's lock, which
    /// a deliverer (running under that lock) cannot take again.
    mss: AtomicUsize,
}

/// Wait while the peer's link is congested (or messages are parked for it). The common case
/// (not congested) builds no `Notified` future.
pub(crate) async fn wait_uncongested(flow: &PeerFlow) {
    while flow.congested.load(Ordering::Acquire) {
        let notified = flow.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if !flow.congested.load(Ordering::Acquire) {
            break;
        }
        notified.await;
    }
}

impl PeerFlow {
    /// The link core of the peer's current actor.
    pub(crate) fn links(&self) -> Option<Arc<Mutex<PeerLinks>>> {
        self.links.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Set by a new actor for this peer.
    pub(crate) fn set_links(&self, l: Option<Arc<Mutex<PeerLinks>>>) {
        *self.links.lock().unwrap_or_else(|p| p.into_inner()) = l;
    }

    /// The send queue (a poisoned lock is taken over: the queue is consistent at every step).
    pub(crate) fn queue(&self) -> MutexGuard<'_, VecDeque<BytesMut>> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The actor saw the active link's message size change (or not).
    pub(crate) fn set_mss(&self, mss: usize) {
        self.mss.store(mss, Ordering::Relaxed);
    }

    /// One more message on its way to the name table.
    pub(crate) fn sent_to_names(&self) {
        self.at_names.fetch_add(1, Ordering::AcqRel);
    }

    /// The name table handled one of them.
    pub(crate) fn handled_at_names(&self) {
        let _ = self
            .at_names
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Nothing from this peer is waiting at the name table.
    pub(crate) fn names_idle(&self) -> bool {
        self.at_names.load(Ordering::Acquire) == 0
    }

    /// Mark the peer congested: senders wait until the actor clears it.
    pub(crate) fn set_congested(&self) {
        self.congested.store(true, Ordering::Release);
    }

    /// The congestion cleared: release the waiting senders.
    pub(crate) fn clear_congested(&self) {
        if self.congested.swap(false, Ordering::AcqRel) {
            self.notify.notify_waiters();
        }
    }
}

/// May a message for a peer skip its queue and go to the link from the sender's task? Only
/// if that cannot overtake anything: nothing is queued, no drain is pending (the actor may be
/// about to offer what it took), and the peer is not congested (nothing is parked).
pub(crate) fn may_send_inline(queued: bool, drain_pending: bool, congested: bool) -> bool {
    !queued && !drain_pending && !congested
}

/// The peer's link core and its transmit staging: owned by the peer's actor, and borrowed
/// (under its lock) by senders that hand a message to the link from their own task
/// (`send_inline`).
pub(crate) struct PeerLinks {
    pub(crate) core: Peer,
    out: BytesMut,
    /// The frames of a flush: each one's first part in `out`, and the rest by reference.
    order: Vec<(Transmit, Bytes)>,
    /// Send paths of the bearers, looked up once.
    txs: [Option<Arc<TxPath>>; MAX_BEARERS],
    /// Deadline of the actor's armed timer.
    pub(crate) armed: Option<Instant>,
}

impl std::fmt::Debug for PeerLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerLinks")
            .field("peer", &self.core.addr())
            .field("armed", &self.armed)
            .finish_non_exhaustive()
    }
}

/// Lock a peer's link core (a poisoned lock is taken over: the core is consistent between
/// calls).
pub(crate) fn lock_links(l: &Mutex<PeerLinks>) -> MutexGuard<'_, PeerLinks> {
    l.lock().unwrap_or_else(|p| p.into_inner())
}

/// The largest message that goes unfragmented over the peer's active link (0 if none is up).
pub(crate) fn link_mss(flow: &PeerFlow) -> usize {
    flow.mss.load(Ordering::Relaxed)
}

impl PeerLinks {
    /// A link core with empty staging.
    pub(crate) fn new(core: Peer) -> PeerLinks {
        PeerLinks {
            core,
            out: BytesMut::new(),
            order: Vec::new(),
            txs: Default::default(),
            armed: None,
        }
    }

    /// Hand every frame the core has ready to the bearers, in order. `bearer_tx` finds a
    /// bearer's send path (looked up again only when the cached one closed).
    pub(crate) fn flush(&mut self, bearer_tx: &dyn Fn(BearerId) -> Option<Arc<TxPath>>) {
        self.order.clear();
        let chunk = if self.core.is_up() {
            OUT_CHUNK
        } else {
            SETUP_CHUNK
        };
        if self.out.capacity() < chunk.min(16 * 1024) {
            // Start a fresh chunk rather than letting `reserve` allocate one per frame burst.
            self.out = BytesMut::with_capacity(chunk);
        }
        while let Some(t) = self.core.poll_transmit_parts(&mut self.out) {
            self.order.push(t);
        }
        if self.order.is_empty() {
            return;
        }
        // One buffer for every frame of this round (the headers, stamped, and the small
        // packets): the bearers get zero-copy slices of it, and large payloads by reference.
        let all = self.out.split().freeze();
        let mut batches: [Vec<TxFrame>; MAX_BEARERS] = Default::default();
        let mut off = 0;
        for (t, tail) in self.order.drain(..) {
            if let Some(b) = batches.get_mut(t.bearer as usize) {
                b.push(TxFrame {
                    dest: Dest::Unicast(t.dest),
                    data: all.slice(off..off + t.len),
                    tail,
                });
            }
            off += t.len;
        }
        for (b, frames) in batches.into_iter().enumerate() {
            if frames.is_empty() {
                continue;
            }
            let Some(cached) = self.txs.get_mut(b) else {
                continue;
            };
            if cached.as_ref().is_none_or(|t| t.is_closed()) {
                *cached = bearer_tx(b as BearerId);
            }
            if let Some(tx) = cached {
                tx.send(frames, Some(self.core.addr()));
            }
        }
    }

    /// Nothing sent on the link inline senders use (selector 0) awaits an acknowledgement.
    fn idle(&self) -> bool {
        self.core.queued(0) == 0
    }
}

/// What [`send_inline`] did with a message.
#[derive(Debug)]
pub(crate) enum Inline {
    /// Sent; the actor has nothing to do.
    Sent,
    /// Sent; the actor must run (the link got congested or its timer must move earlier).
    SentDrain,
    /// Not taken (the link core is busy, or the link refused it): queue it for the actor,
    /// which parks, rejects or sends it as its own path would.
    Refused(BytesMut),
}

/// Offer `msg` to the peer's link from the caller's task and send what the link produces,
/// if the link is idle: nothing sent is waiting for an acknowledgement (a request/reply
/// exchange; a burst keeps going through the actor's queue, which batches its frames).
/// The caller guarantees order: nothing is queued or parked for this peer and no drain is
/// pending (it holds the queue lock). Never waits for the lock: a busy core refuses.
pub(crate) fn send_inline(
    flow: &PeerFlow,
    now: Instant,
    msg: BytesMut,
    bearer_tx: &dyn Fn(BearerId) -> Option<Arc<TxPath>>,
) -> Inline {
    let Some(links) = flow.links() else {
        return Inline::Refused(msg);
    };
    let Ok(mut l) = links.try_lock() else {
        return Inline::Refused(msg);
    };
    if !l.idle() {
        return Inline::Refused(msg);
    }
    let congested = match l.core.send(now, msg, 0) {
        Ok(SendStatus::Accepted) => false,
        Ok(SendStatus::Congested) => true,
        Err(SendError::Congested(m)) | Err(SendError::NotUp(m)) | Err(SendError::Invalid(m)) => {
            return Inline::Refused(m)
        }
        // A refusal this crate does not know: dropped, as the actor's path drops it.
        Err(_) => return Inline::Sent,
    };
    l.flush(bearer_tx);
    if congested {
        flow.set_congested();
        return Inline::SentDrain;
    }
    let sooner = l
        .core
        .poll_timeout()
        .is_some_and(|d| l.armed.is_none_or(|a| d < a));
    if sooner {
        Inline::SentDrain
    } else {
        Inline::Sent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn may_send_inline_when_nothing_queued_pending_or_congested() {
        assert!(may_send_inline(false, false, false));
    }

    #[test]
    fn may_send_inline_refused_behind_queued_pending_or_parked_messages() {
        assert!(
            !may_send_inline(true, false, false),
            "queued messages first"
        );
        assert!(
            !may_send_inline(false, true, false),
            "a drain may hold taken messages"
        );
        assert!(
            !may_send_inline(false, false, true),
            "parked messages first"
        );
    }

    #[test]
    fn peer_flow_names_idle_after_every_sent_batch_is_handled() {
        let f = PeerFlow::default();
        assert!(f.names_idle());
        f.sent_to_names();
        f.sent_to_names();
        f.handled_at_names();
        assert!(!f.names_idle());
        f.handled_at_names();
        assert!(f.names_idle());
        // A stray decrement does not wrap the counter around.
        f.handled_at_names();
        assert!(f.names_idle());
        f.sent_to_names();
        assert!(!f.names_idle());
    }
}
