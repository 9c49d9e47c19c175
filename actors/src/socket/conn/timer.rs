//! Timers: the connect timeout, the OVERLOAD retry of a SYN, and connection probing (kernel
//! `net/tipc/socket.c`: `tipc_sk_timeout`, `tipc_sk_check_probing_state`).
//!
//! Spec: tipc-protocol.md §9.4 (setup), §9.7 (probing).

use std::time::Instant;

use bytes::BytesMut;
use tipc_transport::wire::ConnMgrType;

use super::{ConnCore, ConnError, ConnState, Output, Timer, CONN_PROBING_INTV};

impl ConnCore {
    /// When [`ConnCore::handle_timeout`] wants to run next: the earliest of the connect
    /// deadline, the OVERLOAD retry of the SYN and the next probe; `None` while no timer is
    /// armed. Call `handle_timeout` at (or after) that instant.
    ///
    /// The value may change after every input ([`ConnCore::handle_message`],
    /// [`ConnCore::handle_timeout`], [`ConnCore::handle_node_lost`]) and every command that
    /// changes the state ([`ConnCore::connect`], [`ConnCore::connect_failed`],
    /// [`ConnCore::shutdown`]; [`ConnCore::accept`] for the new core): call it again after each
    /// and re-arm the caller's one timer to it.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.earliest()
    }

    /// Timers: connect timeout (-> [`ConnError::Timeout`]), the OVERLOAD retry of the SYN,
    /// and connection probing (a probe every hour; one left unanswered aborts with
    /// [`ConnError::Aborted`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timers[Timer::Connect].is_some_and(|t| now >= t) {
            if self.state == ConnState::Connecting {
                self.abort(Err(ConnError::Timeout));
            }
            self.timers[Timer::Connect] = None;
        }
        if self.timers[Timer::SynRetry].is_some_and(|t| now >= t) {
            self.timers[Timer::SynRetry] = None;
            if self.state == ConnState::Connecting {
                if let Some((dest, syn)) = self.syn.clone() {
                    self.push_syn(dest, BytesMut::from(&syn[..]));
                }
            }
        }
        if self.timers[Timer::Probe].is_some_and(|t| now >= t) {
            if self.state != ConnState::Established {
                self.timers[Timer::Probe] = None;
            } else if self.probe_unacked {
                self.abort(Err(ConnError::Aborted));
            } else {
                let p = self.proto_msg(ConnMgrType::Probe, 0, 0);
                self.out.push_back(Output::ToNode(self.peer.node, p));
                self.probe_unacked = true;
                self.timers[Timer::Probe] = Some(now + CONN_PROBING_INTV);
            }
        }
    }
}
