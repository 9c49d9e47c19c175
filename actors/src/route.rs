//! Applying the receive dispatch's verdicts on a running node (the I/O half of kernel
//! `socket.c: tipc_sk_rcv`): messages go to local sockets through the port registry
//! (`ctx::Port`), to peer nodes through their send queues, and drops are counted.
//! Every decision is made by [`crate::socket::rcv`]; this file only carries it out.

use crate::ctx::{NodeCtx, Port};
use crate::send::enqueue_to_peer;
use crate::socket::rcv::{self, RcvEnv, Verdict};
use bytes::{Bytes, BytesMut};
use std::sync::Arc;
use tipc_transport::wire::InputQueue;
use tipc_transport::NodeAddr;

/// The dispatch's view of a running node. Remembers the last port found, so that a run of
/// messages for one socket costs one registry lookup.
struct Env<'a> {
    ctx: &'a NodeCtx,
    last: std::cell::RefCell<Option<(u32, Arc<dyn Port>)>>,
}

impl Env<'_> {
    /// The socket at `port`, from the one remembered or from the registry.
    fn port(&self, port: u32) -> Option<Arc<dyn Port>> {
        let mut last = self.last.borrow_mut();
        if let Some((p, a)) = last.as_ref() {
            if *p == port {
                return Some(a.clone());
            }
        }
        let found = self.ctx.ports.get(&port).map(|a| a.value().clone());
        if let Some(a) = &found {
            *last = Some((port, a.clone()));
        }
        found
    }
}

impl RcvEnv for Env<'_> {
    fn own(&self) -> NodeAddr {
        self.ctx.own_addr
    }

    fn has_port(&self, port: u32) -> bool {
        self.port(port).is_some()
    }

    fn with_table<R>(&mut self, f: impl FnOnce(&mut crate::name_table::BindingTable) -> R) -> R {
        f(&mut self.ctx.table())
    }
}

/// Messages for local sockets, grouped per port: a run of messages for one socket is handed
/// to it at once (one queue lock, one wake-up). Call [`Deliveries::flush`] when done.
pub(crate) struct Deliveries<'a> {
    env: Env<'a>,
    to: Option<(u32, Arc<dyn Port>)>,
    msgs: Vec<Bytes>,
}

impl<'a> Deliveries<'a> {
    /// Nothing queued yet.
    pub fn new(ctx: &'a NodeCtx) -> Deliveries<'a> {
        Deliveries {
            env: Env {
                ctx,
                last: std::cell::RefCell::new(None),
            },
            to: None,
            msgs: Vec::new(),
        }
    }

    /// A message a link delivered, through its input queue's dispatch.
    pub fn input(&mut self, queue: InputQueue, msg: Bytes) {
        let mut vs = Verdicts::default();
        rcv::input(&mut self.env, queue, msg, &mut |v| vs.push(v));
        self.apply(vs);
    }

    /// A message built on this node goes where its header says (a local socket or a peer).
    pub fn route_out(&mut self, msg: BytesMut) {
        let mut vs = Verdicts::default();
        rcv::route(&mut self.env, msg, &mut |v| vs.push(v));
        self.apply(vs);
    }

    fn apply(&mut self, mut vs: Verdicts) {
        // Bounded: a rejection produces one returned message, which is never rejected again.
        while let Some(v) = vs.pop() {
            match v {
                Verdict::Port(port, msg) => {
                    if let Err(msg) = self.push(port, msg) {
                        rcv::port_gone(&mut self.env, &msg, &mut |v| vs.push(v));
                    }
                }
                Verdict::Node(node, msg) => {
                    if self.env.ctx.peers.contains_key(&node) {
                        enqueue_to_peer(self.env.ctx, node, msg);
                    } else {
                        rcv::unreachable(&mut self.env, &msg, &mut |v| vs.push(v));
                    }
                }
                Verdict::Drop(cause) => self.env.ctx.count_drop(cause),
            }
        }
    }

    /// Queue `msg` for local port `port`; handed back if there is no such socket.
    fn push(&mut self, port: u32, msg: Bytes) -> Result<(), Bytes> {
        if !matches!(&self.to, Some((p, _)) if *p == port) {
            self.flush();
            match self.env.port(port) {
                Some(a) => self.to = Some((port, a)),
                None => {
                    self.to = None;
                    return Err(msg);
                }
            }
        }
        self.msgs.push(msg);
        Ok(())
    }

    /// Hand what is queued to its socket.
    pub fn flush(&mut self) {
        if self.msgs.is_empty() {
            return;
        }
        let msgs = std::mem::take(&mut self.msgs);
        if let Some((_, port)) = &self.to {
            port.deliver(self.env.ctx, msgs);
        }
    }
}

impl Drop for Deliveries<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// The verdicts of one dispatch call, applied in order: almost always one.
#[derive(Default)]
struct Verdicts {
    first: Option<Verdict>,
    more: std::collections::VecDeque<Verdict>,
}

impl Verdicts {
    fn push(&mut self, v: Verdict) {
        if self.first.is_none() && self.more.is_empty() {
            self.first = Some(v);
        } else {
            if let Some(f) = self.first.take() {
                self.more.push_back(f);
            }
            self.more.push_back(v);
        }
    }

    fn pop(&mut self) -> Option<Verdict> {
        self.first.take().or_else(|| self.more.pop_front())
    }
}

/// A message built on this node goes where its header says, now.
pub(crate) fn route_out(ctx: &NodeCtx, msg: BytesMut) {
    let mut d = Deliveries::new(ctx);
    d.route_out(msg);
    d.flush();
}

/// The last link to `node` failed: every socket hears of it (connections to it end).
pub(crate) fn node_lost(ctx: &NodeCtx, node: NodeAddr) {
    let ports: Vec<Arc<dyn Port>> = ctx.ports.iter().map(|e| e.value().clone()).collect();
    for p in ports {
        p.node_lost(ctx, node);
    }
}
