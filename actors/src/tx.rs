//! The bearer's send path (kernel `bearer.c: tipc_bearer_xmit`): frames go to the media from
//! the sender's own task when nothing is queued for the bearer's send task, otherwise they
//! queue behind what is waiting, in order. Part of the node context (every peer's link core
//! sends through it); the bearer actor owns the send task that drains the queue.

use crate::crypto::NodeCrypto;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use tipc_transport::media::{Media, TxFrame};
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
    /// The node's crypto: frames are sealed on their way in (`None` in unit tests).
    crypto: Option<Arc<NodeCrypto>>,
}

impl std::fmt::Debug for TxPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxPath")
            .field("queued", &self.queued.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// [`Media::try_send_now`] behind a trait object (`Media` itself is not object safe).
pub(crate) trait InlineSend: Send + Sync {
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
    ///
    /// `node` is the peer of the unicast link the frames belong to, `None` for discovery and
    /// the broadcast link: under a key each frame is sealed for it here, in the sender's
    /// task, before it is sent or queued (a retransmission is sealed again, with a new
    /// sequence number).
    pub(crate) fn send(&self, mut frames: Vec<TxFrame>, node: Option<NodeAddr>) {
        if frames.is_empty() {
            return;
        }
        if let Some(c) = self.crypto.as_ref().filter(|c| c.is_sealing()) {
            frames = c.seal(crate::clock::now(), frames, node);
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

    /// A path to `media` and the receiving end its send task drains.
    pub(crate) fn new<M: Media>(
        media: &std::sync::Arc<M>,
        crypto: Arc<NodeCrypto>,
    ) -> (std::sync::Arc<TxPath>, mpsc::UnboundedReceiver<TxBatch>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let m: std::sync::Arc<dyn InlineSend> = media.clone();
        let path = TxPath {
            tx,
            queued: AtomicUsize::new(0),
            media: std::sync::Arc::downgrade(&m),
            crypto: Some(crypto),
        };
        (std::sync::Arc::new(path), rx)
    }

    /// The send task has sent `batches` queued batches: until then senders keep queueing
    /// behind them.
    pub(crate) fn sent(&self, batches: usize) {
        self.queued.fetch_sub(batches, Ordering::AcqRel);
    }

    /// The send task is gone (bearer disabled).
    pub(crate) fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::sync::Arc;
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
            crypto: None,
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
        p.send(frames(&[b"a", b"b"]), None);
        assert_eq!(*fake.sent.lock().unwrap(), vec![&b"a"[..], &b"b"[..]]);
        assert!(rx.try_recv().is_err());
        assert_eq!(p.queued.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn tx_path_queues_everything_once_the_media_is_gone() {
        let (p, fake, mut rx) = path(8, 0);
        drop(fake);
        p.send(frames(&[b"a"]), None);
        assert_eq!(rx.try_recv().expect("queued").frames.len(), 1);
    }

    #[test]
    fn tx_path_queues_behind_batches_still_waiting() {
        let (p, fake, mut rx) = path(8, 1);
        p.send(frames(&[b"a"]), None);
        assert!(fake.sent.lock().unwrap().is_empty());
        let b = rx.try_recv().expect("queued");
        assert_eq!(b.frames.len(), 1);
        assert_eq!(p.queued.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn tx_path_queues_what_the_media_did_not_take_in_order() {
        let (p, fake, mut rx) = path(1, 0);
        p.send(frames(&[b"a", b"b", b"c"]), None);
        assert_eq!(*fake.sent.lock().unwrap(), vec![&b"a"[..]]);
        let b = rx.try_recv().expect("rest queued");
        let rest: Vec<&[u8]> = b.frames.iter().map(|f| &f.data[..]).collect();
        assert_eq!(rest, vec![&b"b"[..], &b"c"[..]]);
        assert_eq!(p.queued.load(Ordering::SeqCst), 1);
        // The next send waits behind that batch.
        p.send(frames(&[b"d"]), None);
        assert_eq!(fake.sent.lock().unwrap().len(), 1);
    }
}
