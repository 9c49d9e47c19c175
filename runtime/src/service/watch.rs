//! `watch`: a stream of a service range's bindings coming and going (the Receptionist's
//! Listing, on TIPC's topology service: a `TIPC_SUB_PORTS` subscription).

use tipc_actors::addr::{ServiceRange, SocketAddr};
use tipc_actors::topsrv::{EventKind, Subscription, TopoEvent};
use tipc_actors::TransportNode;
use tokio::sync::mpsc;

/// A binding in the watched range appeared or went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceEvent {
    /// A socket bound `lower..=upper` (within or overlapping the watched range).
    Up {
        /// The binding's range.
        range: ServiceRange,
        /// The bound socket.
        socket: SocketAddr,
    },
    /// That binding was withdrawn (unbound, service stopped, its node lost).
    Down {
        /// The binding's range.
        range: ServiceRange,
        /// The socket.
        socket: SocketAddr,
    },
}

/// Why a watch could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot watch: {0}")]
pub struct WatchError(pub String);

/// The events of one watched range, starting with every binding already there.
pub struct Watch {
    range: ServiceRange,
    rx: mpsc::UnboundedReceiver<TopoEvent>,
}

impl Watch {
    /// Watch `range` on `node`.
    pub async fn start(node: &TransportNode, range: ServiceRange) -> Result<Watch, WatchError> {
        let rx = node
            .subscribe(Subscription::ports(range))
            .await
            .map_err(|e| WatchError(e.to_string()))?;
        Ok(Watch { range, rx })
    }

    /// The watched range.
    pub fn range(&self) -> ServiceRange {
        self.range
    }

    /// The next event; `None` once the node stopped.
    pub async fn next(&mut self) -> Option<ServiceEvent> {
        loop {
            let ev = self.rx.recv().await?;
            let range = match ServiceRange::new(self.range.type_(), ev.found_lower, ev.found_upper)
            {
                Ok(r) => r,
                Err(_) => continue,
            };
            return Some(match ev.kind {
                EventKind::Published => ServiceEvent::Up {
                    range,
                    socket: ev.port,
                },
                EventKind::Withdrawn => ServiceEvent::Down {
                    range,
                    socket: ev.port,
                },
                EventKind::Timeout => continue,
            });
        }
    }
}
