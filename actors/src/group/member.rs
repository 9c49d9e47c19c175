//! One member as a group socket sees it (kernel `group.c`: `enum mbr_state`, `struct
//! tipc_member`, `tipc_group_is_receiver`, `tipc_group_is_sender`, `tipc_group_sort_msg`).
//!
//! Spec: tipc-protocol.md §10.1 (states), §10.4 (the deferred queue).
//!
//! The types only; what the group does with them is in the `window`, `proto`, `rcv` and
//! `send` files.

use std::collections::VecDeque;

use tipc_transport::wire::Seqno;

use crate::addr::SocketAddr;

/// A member's state as this socket sees it (`enum mbr_state`, §10.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MemberState {
    /// Its JOIN came, its binding not yet.
    Joining,
    /// Its binding came, its JOIN not yet.
    Published,
    /// Admitted, idle window (`ADV_IDLE`).
    Joined,
    /// Read from while JOINED with too many ACTIVE members: waits for an ACTIVE window.
    Pending,
    /// Holds a large window (`ADV_ACTIVE`).
    Active,
    /// We sent RECLAIM and wait for its REMIT.
    Reclaiming,
    /// REMIT came while messages it covers are unread.
    Remitted,
    /// LEAVE came or its binding went; deleted once its WITHDRAWN event is delivered.
    Leaving,
}

impl MemberState {
    /// We send to it: any state but JOINING and LEAVING (`tipc_group_is_receiver`).
    pub fn is_receiver(self) -> bool {
        !matches!(self, MemberState::Joining | MemberState::Leaving)
    }
    /// We take its data: any state but JOINING and PUBLISHED (`tipc_group_is_sender`).
    pub fn is_sender(self) -> bool {
        !matches!(self, MemberState::Joining | MemberState::Published)
    }
    /// Counted in `active_cnt`: ACTIVE, RECLAIMING, REMITTED.
    pub(super) fn counts_active(self) -> bool {
        matches!(
            self,
            MemberState::Active | MemberState::Reclaiming | MemberState::Remitted
        )
    }
}

/// A snapshot of one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MemberInfo {
    /// The member socket.
    pub addr: SocketAddr,
    /// Its instance (0 until its binding is seen).
    pub instance: u32,
    /// Its state.
    pub state: MemberState,
    /// Send window: blocks we may still send it.
    pub window: u16,
    /// Receive window: blocks we advertised to it and have not seen read.
    pub advertised: u16,
    /// The next broadcast seqno we expect from it.
    pub bc_rcv_nxt: u16,
    /// Its sync point (the `bc_syncpt` of its last JOIN or LEAVE).
    pub bc_syncpt: u16,
    /// It owes a GRP_ACK for our last forced-replicast broadcast.
    pub ack_owed: bool,
    /// Messages and events waiting in its deferred queue.
    pub deferred: usize,
}

/// A message or member event waiting in a member's deferred queue (§10.4).
#[derive(Debug, Clone)]
pub(super) enum Deferred {
    /// A data message.
    Data {
        /// Message type: 5 BCAST, 6 MCAST, 7 UCAST.
        kind: DataKind,
        /// `grp_bc_seqno`.
        seqno: u16,
        /// w10 bit 0.
        ack_req: bool,
        /// w9 (the target instance of a GRP_MCAST).
        name_inst: u32,
        /// The sender's instance when it arrived (`orig_member`).
        orig_inst: u32,
        /// The whole message.
        msg: bytes::Bytes,
    },
    /// A member event created by this socket.
    Event {
        /// PUBLISHED (true) or WITHDRAWN.
        up: bool,
        /// The sync point it waits for.
        seqno: u16,
        /// The member's instance when it was created.
        orig_inst: u32,
    },
}

/// The three data message types of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DataKind {
    Bcast,
    Mcast,
    Ucast,
}

impl Deferred {
    pub(super) fn seqno(&self) -> u16 {
        match self {
            Deferred::Data { seqno, .. } | Deferred::Event { seqno, .. } => *seqno,
        }
    }
    fn sorted(&self) -> bool {
        matches!(
            self,
            Deferred::Data {
                kind: DataKind::Bcast | DataKind::Mcast,
                ..
            }
        )
    }
}

/// One member (`struct tipc_member`).
#[derive(Debug)]
pub(super) struct Member {
    pub(super) addr: SocketAddr,
    pub(super) instance: u32,
    pub(super) state: MemberState,
    pub(super) advertised: u16,
    pub(super) window: u16,
    pub(super) bc_rcv_nxt: u16,
    pub(super) bc_syncpt: u16,
    /// Owes a GRP_ACK for the current forced-replicast broadcast (6.12's `bc_pending`).
    pub(super) ack_owed: bool,
    /// A WITHDRAWN event has been queued for it.
    pub(super) down_queued: bool,
    pub(super) deferred: VecDeque<Deferred>,
}

impl Member {
    pub(super) fn info(&self) -> MemberInfo {
        MemberInfo {
            addr: self.addr,
            instance: self.instance,
            state: self.state,
            window: self.window,
            advertised: self.advertised,
            bc_rcv_nxt: self.bc_rcv_nxt,
            bc_syncpt: self.bc_syncpt,
            ack_owed: self.ack_owed,
            deferred: self.deferred.len(),
        }
    }

    /// Put `item` into the deferred queue (`tipc_group_sort_msg`): a broadcast or multicast
    /// before the first entry with a later seqno, anything else at the tail.
    pub(super) fn sort_in(&mut self, item: Deferred) {
        if item.sorted() {
            let s = Seqno(item.seqno());
            if let Some(i) = self.deferred.iter().position(|d| s.less(Seqno(d.seqno()))) {
                self.deferred.insert(i, item);
                return;
            }
        }
        self.deferred.push_back(item);
    }
}
