//! The crypto driver (kernel `crypto.c: tipc_crypto_timeout`, run from the node timer, and
//! the work items that send KEY_DISTR messages): a task that runs the node's crypto timers and
//! sends the key distributions the core asks for, on the unicast link to their peer or on
//! the broadcast link. It decides nothing: the core does ([`tipc_transport::crypto`]).

use crate::ctx::{now, NodeCtx};
use crate::send::{bcast_send, enqueue_to_peer};
use bytes::BytesMut;
use std::sync::{Arc, Weak};
use tipc_transport::crypto::CryptoEvent;

/// How often an idle driver looks whether its node is still there.
const IDLE_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// Start the driver of `ctx`'s crypto; it ends with the node (it holds the context weakly).
pub(crate) fn spawn_driver(ctx: &Arc<NodeCtx>) {
    let weak: Weak<NodeCtx> = Arc::downgrade(ctx);
    let crypto = Arc::downgrade(&ctx.crypto);
    actix::spawn(async move {
        loop {
            let Some(c) = crypto.upgrade() else {
                return;
            };
            let (deadline, events) = c.drive(now());
            {
                let Some(ctx) = weak.upgrade() else {
                    return;
                };
                for ev in events {
                    handle_event(&ctx, ev);
                }
            }
            // Without a deadline, still look again now and then: the task ends once the node
            // is gone (it holds the crypto while it waits).
            let t = deadline.unwrap_or_else(|| now() + IDLE_CHECK);
            let t = tokio::time::Instant::from_std(t);
            tokio::select! {
                _ = c.changed() => {}
                _ = tokio::time::sleep_until(t) => {}
            }
            drop(c);
        }
    });
}

fn handle_event(ctx: &NodeCtx, ev: CryptoEvent) {
    match ev {
        CryptoEvent::SendKey { dest: Some(d), msg } => {
            let queued = enqueue_to_peer(ctx, d, BytesMut::from(&msg[..]));
            if !queued {
                tracing::debug!(peer = %format!("{d:08x}"), "key distribution not sent: no peer");
            }
        }
        CryptoEvent::SendKey { dest: None, msg } => {
            if let Err(e) = bcast_send(ctx, BytesMut::from(&msg[..])) {
                tracing::debug!(error = ?e, "key distribution not broadcast");
            }
        }
        CryptoEvent::TxKeyActivated { slot } => tracing::info!(slot, "TX key activated"),
        CryptoEvent::RxKeyActivated { peer, slot } => {
            tracing::info!(peer = %format!("{peer:08x}"), slot, "RX key activated")
        }
        CryptoEvent::KeyRevoked { slot } => tracing::warn!(slot, "TX key revoked"),
        _ => {}
    }
}
