//! A group member socket around its [`GroupCore`], sans-IO (kernel `socket.c`, group half:
//! `tipc_sk_join`, `tipc_sk_filter_rcv` with a group, `tipc_recvmsg` on a group socket,
//! `tipc_sk_leave`; `tipc_group_member_evt`'s caller; `tipc_mcast_xmit`'s replicast).
//!
//! [`GroupSock`] is what the actors' driver (`actor/group.rs`) and the simulation both run:
//! the messages that come before the join completes (held, at most [`MAX_EARLY`]), the
//! receive queue between the core and the application (bounded by the core's receive
//! buffer), the binding events of the group's subscription (node scope keeps this node's
//! only), reads that open the senders' windows, and where each [`Transmit`] goes
//! ([`route_transmit`]: a copy per member node by replicast or one packet on the broadcast
//! link, as [`BcastPolicy`] picks, and the multicast dispatch for this node).

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use tipc_transport::NodeAddr;

use super::{GroupCore, GroupDest, GroupEvent, GroupSendError, Method, Transmit};
use crate::addr::{Scope, SocketAddr};
use crate::socket::replicast_copy;

/// Messages held for a member whose join has not completed; more are dropped and counted
/// ([`SockStats::early_dropped`]).
pub const MAX_EARLY: usize = 4096;

/// What the socket counted beside the core's own [`super::GroupStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SockStats {
    /// Messages that came before the join completed and did not fit in [`MAX_EARLY`].
    pub early_dropped: u64,
    /// Messages refused because the queue held the receive buffer's worth (a sender that
    /// ignores its window); each is accounted as read, so honest windows stay true.
    pub rcvbuf_dropped: u64,
    /// Messages that came after the member left.
    pub after_leave: u64,
    /// The most bytes the queue held at once.
    pub max_queued_bytes: usize,
}

/// What group member sockets dropped, by cause (the core's and the socket's counters of
/// input that was not delivered), summed over members.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupDrops {
    /// Unparsable or not group traffic ([`super::GroupStats::malformed`]).
    pub malformed: u64,
    /// From a non-member or a member not admitted yet (the group is closed).
    pub non_member: u64,
    /// Older than what the member already delivered from that sender.
    pub stale: u64,
    /// A sender's deferred queue was full.
    pub deferred_overflow: u64,
    /// The receive queue held its buffer's worth (a sender ignoring its window).
    pub rcvbuf: u64,
    /// Came before the join completed and did not fit.
    pub early: u64,
    /// Came after the member left.
    pub after_leave: u64,
}

impl GroupDrops {
    /// Add one socket's counters.
    pub fn add(&mut self, g: &GroupSock) {
        let (c, s) = (g.core.stats(), g.stats);
        self.malformed += c.malformed;
        self.non_member += c.non_member;
        self.stale += c.stale;
        self.deferred_overflow += c.deferred_overflow;
        self.rcvbuf += s.rcvbuf_dropped;
        self.early += s.early_dropped;
        self.after_leave += s.after_leave;
    }

    /// Add another sum.
    pub fn merge(&mut self, o: GroupDrops) {
        self.malformed += o.malformed;
        self.non_member += o.non_member;
        self.stale += o.stale;
        self.deferred_overflow += o.deferred_overflow;
        self.rcvbuf += o.rcvbuf;
        self.early += o.early;
        self.after_leave += o.after_leave;
    }
}

/// One member socket (see the module docs).
#[derive(Debug)]
pub struct GroupSock {
    core: GroupCore,
    early: Vec<Bytes>,
    queue: VecDeque<GroupEvent>,
    queued_bytes: usize,
    stats: SockStats,
    closed: bool,
    wake: bool,
}

/// Where one message of [`route_transmit`] goes.
#[derive(Debug)]
pub enum Route {
    /// To a peer node's link.
    Node(NodeAddr, BytesMut),
    /// Once on the node's broadcast link, for every remote node in `nodes`; if the link
    /// refuses it (congested, no peers), as a replicast copy to each of them instead
    /// ([`replicast_copy`]): group receivers order by `grp_bc_seqno`, so the method may
    /// change from one message to the next.
    Broadcast {
        /// The message (`destnode` 0, w0 bit 18 clear).
        msg: Bytes,
        /// The remote member nodes.
        nodes: Vec<NodeAddr>,
    },
    /// To this node's sockets, through the multicast dispatch
    /// (`socket::rcv::input(InputQueue::Mcast, ..)`).
    Local(Bytes),
}

/// What the node's broadcast link offers a multicast (`tipc_bcast_select_xmit_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BcastPolicy {
    /// The node can broadcast (it has a bearer and a broadcast link).
    pub available: bool,
    /// Nodes in the cluster, this one included (`cluster_size`).
    pub cluster_size: usize,
    /// The node-wide method (`tipc link set broadcast BROADCAST|REPLICAST`, rule 5); `None`
    /// selects by the ratio.
    pub node_forced: Option<Method>,
}

impl BcastPolicy {
    /// Replicast only.
    pub const REPLICAST: BcastPolicy = BcastPolicy {
        available: false,
        cluster_size: 1,
        node_forced: None,
    };

    /// The method for a message to `remote` nodes (§5.4): replicast when the node cannot
    /// broadcast or the message carries the group's ack request (its first broadcast after a
    /// join or a unicast); else what the socket forces, else what the node forces, else
    /// replicast up to `1 + cluster_size / 10` remote nodes (`rc_ratio` 10 %) and broadcast
    /// above.
    pub fn method(&self, remote: usize, forced: Option<Method>, ack_required: bool) -> Method {
        if !self.available || ack_required || remote == 0 {
            return Method::Replicast;
        }
        match forced.or(self.node_forced) {
            Some(m) => m,
            None if remote <= 1 + self.cluster_size * 10 / 100 => Method::Replicast,
            None => Method::Broadcast,
        }
    }
}

/// Where a message of the core goes (`tipc_mcast_xmit`, `tipc_node_xmit` for one node): to
/// one node's link (or this node's dispatch), or a broadcast or multicast to the member nodes
/// by the method `policy` picks (§5.4): a copy per remote node, stamped with its destination
/// and `is_rcast`, or one packet on the broadcast link; and once through this node's
/// multicast dispatch when a member is here.
pub fn route_transmit(t: Transmit, own: NodeAddr, policy: BcastPolicy, mut out: impl FnMut(Route)) {
    match t {
        Transmit::Node { node, msg } => {
            if node == own || node == 0 {
                out(Route::Local(msg));
            } else {
                let msg = msg
                    .try_into_mut()
                    .unwrap_or_else(|m| BytesMut::from(&m[..]));
                out(Route::Node(node, msg));
            }
        }
        Transmit::Members {
            nodes,
            msg,
            ack_required,
            forced,
        } => {
            let local = nodes.contains(&own);
            let remote: Vec<NodeAddr> = nodes.into_iter().filter(|&n| n != own).collect();
            match policy.method(remote.len(), forced, ack_required) {
                Method::Broadcast => out(Route::Broadcast {
                    msg: msg.clone(),
                    nodes: remote,
                }),
                Method::Replicast => {
                    for n in remote {
                        if let Some(copy) = replicast_copy(&msg, n) {
                            out(Route::Node(n, copy));
                        }
                    }
                }
            }
            if local {
                out(Route::Local(msg));
            }
        }
    }
}

impl GroupSock {
    /// A socket around a core that has not joined yet.
    pub fn new(core: GroupCore) -> GroupSock {
        GroupSock {
            core,
            early: Vec::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            stats: SockStats::default(),
            closed: false,
            wake: false,
        }
    }

    /// The core.
    pub fn core(&self) -> &GroupCore {
        &self.core
    }

    /// Counters.
    pub fn stats(&self) -> SockStats {
        self.stats
    }

    /// Bytes waiting to be read.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// Data messages and events waiting to be read.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Left: sends fail, input is counted and dropped.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Complete the join (`tipc_sk_join` after the publication): `members` are the
    /// bindings of the group's type and scope now (`BindingTable::group_members`); then the
    /// messages that came early are handled.
    pub fn join(&mut self, members: Vec<(SocketAddr, u32)>) {
        // Only fails if joined already.
        let _ = self.core.join(members);
        for msg in std::mem::take(&mut self.early) {
            self.core.handle_message(msg);
        }
        self.absorb();
    }

    /// A message for this socket (`tipc_sk_filter_rcv`): to the core, or held until the join
    /// completes, or counted after leaving.
    pub fn handle_message(&mut self, msg: Bytes) {
        if self.closed {
            self.stats.after_leave += 1;
        } else if !self.core.is_joined() {
            if self.early.len() < MAX_EARLY {
                self.early.push(msg);
            } else {
                self.stats.early_dropped += 1;
            }
        } else {
            self.core.handle_message(msg);
            self.absorb();
        }
    }

    /// A binding of the group's type appeared (`published`) or went, from the group's
    /// subscription; `own` is this node. In a node-scope group only this node's count.
    pub fn handle_binding(
        &mut self,
        own: NodeAddr,
        published: bool,
        member: SocketAddr,
        instance: u32,
    ) {
        if !self.core.is_joined() {
            return;
        }
        if self.core.config().scope == Scope::Node && member.node != own {
            return;
        }
        if published {
            self.core.handle_member_published(member, instance);
        } else {
            self.core.handle_member_withdrawn(member, instance);
        }
        self.absorb();
    }

    /// The last link to `node` failed.
    pub fn handle_node_down(&mut self, node: NodeAddr) {
        if self.core.is_joined() {
            self.core.handle_node_down(node);
            self.absorb();
        }
    }

    /// Send (`tipc_send_group_*`); [`GroupSendError::Congested`] hands the message back and
    /// a later [`poll_wakeup`](Self::poll_wakeup) says when to retry.
    pub fn send(&mut self, dest: GroupDest, data: Bytes) -> Result<(), GroupSendError> {
        if self.closed {
            return Err(GroupSendError::NotJoined(data));
        }
        let r = self.core.send(dest, data);
        self.absorb();
        r
    }

    /// A blocked send is given up (a `try_` send that was refused, a dropped waiting send).
    pub fn abandon_send(&mut self) {
        self.core.abandon_send();
    }

    /// The application reads the next message or event (`tipc_recvmsg`): a data message
    /// opens its sender's window (the core's `handle_read`).
    pub fn read(&mut self) -> Option<GroupEvent> {
        let ev = self.queue.pop_front()?;
        if let GroupEvent::Message(m) = &ev {
            self.queued_bytes -= m.msg.len();
            self.core.handle_read(m.from, m.blocks());
            self.absorb();
        }
        Some(ev)
    }

    /// Leave (`tipc_sk_leave`): GRP_LEAVE to every member; withdraw the binding after what
    /// this produced is sent. What was queued stays readable.
    pub fn leave(&mut self) {
        self.core.leave();
        self.closed = true;
        self.wake = true;
    }

    /// The next message to send, in order (the core's `poll_transmit`).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.core.poll_transmit()
    }

    /// Trade the queue of messages to send for `buf` (empty, with whatever capacity it has):
    /// `buf` then holds them in order. A driver that sends them and trades the emptied
    /// buffer back allocates nothing per message.
    pub fn swap_transmits(&mut self, buf: &mut VecDeque<Transmit>) {
        self.core.swap_transmits(buf);
    }

    /// Whether [`poll_transmit`](Self::poll_transmit) has something.
    pub fn has_transmit(&self) -> bool {
        self.core.has_transmit()
    }

    /// Whether a blocked sender should retry since the last call (a window opened, acks came,
    /// a member went, or the socket closed). Reading clears it.
    #[must_use]
    pub fn poll_wakeup(&mut self) -> bool {
        std::mem::take(&mut self.wake)
    }

    /// Move what the core delivered into the queue, refusing what exceeds the receive buffer.
    fn absorb(&mut self) {
        while let Some(ev) = self.core.poll_event() {
            if let GroupEvent::Message(m) = &ev {
                let len = m.msg.len();
                if self.queued_bytes + len > self.core.rcvbuf().max(len) {
                    self.stats.rcvbuf_dropped += 1;
                    self.core.handle_read(m.from, m.blocks());
                    continue;
                }
                self.queued_bytes += len;
                self.stats.max_queued_bytes = self.stats.max_queued_bytes.max(self.queued_bytes);
            }
            self.queue.push_back(ev);
        }
        self.wake |= self.core.poll_wakeup();
    }
}
