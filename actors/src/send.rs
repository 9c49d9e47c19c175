//! Sending a complete message to a peer node (kernel `node.c: tipc_node_xmit`): into the
//! peer's ordered send queue, drained by its actor, or straight to an idle link from the
//! sender's own task; with the congestion waits of a blocking socket.

use crate::ctx::NodeCtx;
use crate::flow::{may_send_inline, send_inline, wait_uncongested, Inline, PeerFlow, POST_BARRIER};
use crate::msg::{Barrier, Drain, PeerHandle};
use bytes::BytesMut;
use std::sync::atomic::Ordering;
use tipc_transport::bcast::{BcastLink, BcastSendError};
use tipc_transport::media::{Dest, TxFrame};
use tipc_transport::NodeAddr;

/// Queue a complete message for a peer's link, in order with everything else queued for it,
/// and make sure its actor drains the queue: a burst of messages costs one mailbox message
/// and one pass of the actor. When nothing is queued, no drain is pending and the peer is not
/// congested, the message goes to the link from this task ([`send_inline`]). False if the
/// peer is unknown.
pub(crate) fn enqueue_to_peer(ctx: &NodeCtx, peer: NodeAddr, msg: BytesMut) -> bool {
    let Some(handle) = ctx.peers.get(&peer) else {
        return false;
    };
    enqueue_with(ctx, &handle, &ctx.flow_of(peer), msg, true);
    true
}

/// Like [`enqueue_to_peer`], but never sent from the caller's task: the message waits for the
/// peer actor's next drain, so whatever the caller queues for the peer before it yields
/// leaves bundled with it (an accepted connection's ACK, then the acceptor's first reply and
/// FIN).
pub(crate) fn enqueue_deferred(ctx: &NodeCtx, peer: NodeAddr, msg: BytesMut) -> bool {
    let Some(handle) = ctx.peers.get(&peer) else {
        return false;
    };
    enqueue_with(ctx, &handle, &ctx.flow_of(peer), msg, false);
    true
}

/// The queue lock is held while a message is offered inline, so a later message cannot
/// overtake it.
fn enqueue_with(ctx: &NodeCtx, handle: &PeerHandle, flow: &PeerFlow, msg: BytesMut, inline: bool) {
    let mut q = flow.queue();
    let msg = if inline
        && may_send_inline(
            !q.is_empty(),
            flow.drain_scheduled.load(Ordering::Acquire),
            flow.congested.load(Ordering::Acquire),
        ) {
        match send_inline(flow, crate::ctx::now(), msg, &|b| ctx.bearer_tx(b)) {
            Inline::Sent => return,
            Inline::SentDrain => {
                drop(q);
                schedule_drain(handle, flow);
                return;
            }
            Inline::Refused(m) => m,
        }
    } else {
        msg
    };
    q.push_back(msg);
    drop(q);
    schedule_drain(handle, flow);
}

/// Make sure the peer's actor runs (once) for what was queued or changed.
pub(crate) fn schedule_drain(handle: &PeerHandle, flow: &PeerFlow) {
    if !flow.drain_scheduled.swap(true, Ordering::AcqRel) {
        handle.drain.do_send(Drain);
    }
}

/// Post a complete message to a peer node without waiting for the peer actor (the fast path
/// of socket sends): waits only while the peer's link is congested, and every
/// [`POST_BARRIER`] messages for the actor to catch up. A message the link refuses is parked
/// in the peer actor until the congestion clears; one for a peer that is down is rejected
/// back to its sender with NO_NODE (if returnable). False: the peer is unknown (the message
/// is dropped).
pub(crate) async fn post(ctx: &NodeCtx, to: NodeAddr, msg: BytesMut) -> bool {
    let flow = ctx.flow_of(to);
    wait_uncongested(&flow).await;
    {
        let Some(handle) = ctx.peers.get(&to) else {
            return false;
        };
        enqueue_with(ctx, &handle, &flow, msg, true);
    }
    post_barrier(ctx, to, &flow).await;
    true
}

/// [`post`] without waiting: `Err(msg)` while the link to `to` is congested. `Ok(false)`: the
/// peer is unknown (the message is dropped).
pub(crate) fn try_post(ctx: &NodeCtx, to: NodeAddr, msg: BytesMut) -> Result<bool, BytesMut> {
    let flow = ctx.flow_of(to);
    if flow.congested.load(Ordering::Acquire) {
        return Err(msg);
    }
    let Some(handle) = ctx.peers.get(&to) else {
        return Ok(false);
    };
    enqueue_with(ctx, &handle, &flow, msg, true);
    flow.posted.fetch_add(1, Ordering::Relaxed);
    Ok(true)
}

/// Count one message posted to `to`; every [`POST_BARRIER`]th waits for its actor to
/// catch up.
pub(crate) async fn post_barrier(ctx: &NodeCtx, to: NodeAddr, flow: &PeerFlow) {
    if flow.posted.fetch_add(1, Ordering::Relaxed) % POST_BARRIER != POST_BARRIER - 1 {
        return;
    }
    let barrier = ctx.peers.get(&to).map(|p| p.barrier.clone());
    if let Some(b) = barrier {
        let _ = b.send(Barrier).await;
    }
}

/// Put what the node's broadcast link queued on the wire: every frame once, with the
/// broadcast address of the first bearer (the kernel's primary bearer: Ethernet broadcast,
/// the UDP multicast group or every UDP replicast peer), and publish its `last_bcast`.
pub(crate) fn bcast_flush(ctx: &NodeCtx, link: &mut BcastLink) {
    ctx.set_bcast_last(link.last_bcast());
    let frames: Vec<TxFrame> = std::iter::from_fn(|| link.poll_transmit())
        .map(|f| TxFrame::new(Dest::Broadcast, f))
        .collect();
    if frames.is_empty() {
        return;
    }
    let tx = ctx
        .bearers
        .read()
        .ok()
        .and_then(|b| b.iter().flatten().next().map(|s| s.tx.clone()));
    if let Some(tx) = tx {
        tx.send(frames, None);
    }
}

/// Send a complete message on the node's broadcast link to every peer node; handed back if
/// the link refuses it (congested, no peers).
pub(crate) fn bcast_send(ctx: &NodeCtx, msg: BytesMut) -> Result<(), BcastSendError> {
    let mut link = ctx.bcast();
    let r = link.send(crate::ctx::now(), msg);
    bcast_flush(ctx, &mut link);
    r
}
