//! Membership and the GROUP_PROTOCOL messages (kernel `group.c`: `tipc_group_join`,
//! `tipc_group_delete`, `tipc_group_add_member`, `tipc_group_member_evt`,
//! `tipc_group_proto_xmit`, `tipc_group_proto_rcv`, `tipc_group_create_event`;
//! `socket.c: tipc_sk_join, tipc_sk_leave`).
//!
//! Spec: tipc-protocol.md §10.1 (join, leave, admission, member events), §10.2 (the six
//! messages and what receiving each does), §2.5 (GROUP_PROTOCOL overlay).
//!
//! A message is 40 bytes: w0 `0x53480028` (user 9, dest_droppable), w1 type << 29, w3
//! prevnode = w6 orignode = our node, w4 our port, w5 and w7 the member's socket, w8 0, w9
//! `bc_syncpt`/`bc_acked`/`remitted` << 16 | `adv_win`; the link fields stay 0.

use bytes::BytesMut;
use tipc_transport::wire::{GroupProtoRepr, GroupProtoType, Header, Seqno, INT_H_SIZE};
use tipc_transport::NodeAddr;

use super::member::{Deferred, MemberState};
use super::GroupError;
use super::{Binding, GroupCore, LocalProto, McMethod, Phase, Transmit, ADV_ACTIVE, ADV_IDLE};
use crate::addr::{Scope, SocketAddr};

impl GroupCore {
    /// Join (`tipc_sk_join` after the publication, `tipc_group_join`): `members` are the
    /// bindings of the group's type and scope that exist now (`tipc_nametbl_build_group`),
    /// as `(socket, instance)` in name-table order; each becomes a PUBLISHED member and gets
    /// a GRP_JOIN with `bc_syncpt = bc_snd_nxt` (0) and `adv_win` 0. Our own binding, if
    /// listed, counts only with LOOPBACK. The first broadcast will be a forced replicast
    /// with an ack request. Then [`rcvbuf`](Self::rcvbuf) is set.
    pub fn join(
        &mut self,
        members: impl IntoIterator<Item = (SocketAddr, u32)>,
    ) -> Result<(), GroupError> {
        if self.phase != Phase::Created {
            return Err(GroupError::AlreadyJoined);
        }
        self.phase = Phase::Joined;
        for (addr, instance) in members {
            if addr == self.own && !self.cfg.loopback {
                continue;
            }
            self.add_binding(addr, instance);
            if !self.members.contains_key(&addr) {
                let _ = self.create_member(addr, instance, MemberState::Published);
            }
        }
        self.mc = McMethod {
            rcast: true,
            mandatory: true,
        };
        let all: Vec<SocketAddr> = self.members.keys().copied().collect();
        for a in all {
            self.proto_xmit(a, GroupProtoType::Join);
            self.update_member(a, 0);
        }
        self.recompute_rcvbuf();
        self.run_local();
        Ok(())
    }

    /// Leave (`tipc_sk_leave`, `tipc_group_delete`): a GRP_LEAVE with `bc_syncpt =
    /// bc_snd_nxt` to every member whatever its state (not to ourselves), then every member
    /// and deferred message is dropped. Withdraw [`binding`](Self::binding) after sending
    /// the LEAVEs. Inputs are ignored from now on; events already queued stay.
    pub fn leave(&mut self) {
        if self.phase != Phase::Joined {
            return;
        }
        let all: Vec<SocketAddr> = self.members.keys().copied().collect();
        for a in all {
            if a != self.own {
                self.proto_xmit(a, GroupProtoType::Leave);
            }
        }
        self.phase = Phase::Left;
        self.members.clear();
        self.small_win.clear();
        self.active.clear();
        self.pending.clear();
        self.bindings.clear();
        self.local.clear();
        self.active_cnt = 0;
        self.bc_ackers = 0;
        self.anycast_wait = None;
    }

    /// A binding `{type, instance}` of the group's type and scope appeared for `member`
    /// (`tipc_group_member_evt` with `TIPC_PUBLISHED`; the caller passes only those, our own
    /// included: it counts only with LOOPBACK). A new socket becomes PUBLISHED and gets a
    /// GRP_JOIN (`adv_win` 0); a JOINING one (its JOIN came first) is admitted: JOINED,
    /// GRP_JOIN with `adv_win` 65, and its PUBLISHED event at its `bc_syncpt`. `max_active`
    /// and the receive buffer are recomputed.
    pub fn handle_member_published(&mut self, member: SocketAddr, instance: u32) {
        if self.phase != Phase::Joined || (member == self.own && !self.cfg.loopback) {
            self.stats.ignored += 1;
            return;
        }
        self.add_binding(member, instance);
        match self.members.get(&member).map(|m| m.state) {
            None => {
                if self
                    .create_member(member, instance, MemberState::Published)
                    .is_some()
                {
                    self.update_member(member, 0);
                    self.proto_xmit(member, GroupProtoType::Join);
                }
            }
            Some(MemberState::Joining) => {
                if let Some(m) = self.members.get_mut(&member) {
                    m.instance = instance;
                    m.state = MemberState::Joined;
                }
                self.open_member(member, true);
                self.update_member(member, 0);
                self.proto_xmit(member, GroupProtoType::Join);
                let syncpt = self.members.get(&member).map_or(0, |m| m.bc_syncpt);
                self.create_event(member, true, syncpt);
            }
            Some(_) => {}
        }
        self.recompute_rcvbuf();
        self.run_local();
    }

    /// The binding of `member` was withdrawn while its node is up (`tipc_group_member_evt`
    /// with `TIPC_WITHDRAWN`): it goes LEAVING and no event is queued yet, its GRP_LEAVE is
    /// awaited (and queues WITHDRAWN at its `bc_syncpt`). For a lost node call
    /// [`handle_node_down`](Self::handle_node_down) (before or after the withdrawals of the
    /// node's bindings). `max_active` and the receive buffer are recomputed.
    pub fn handle_member_withdrawn(&mut self, member: SocketAddr, instance: u32) {
        if self.phase != Phase::Joined || (member == self.own && !self.cfg.loopback) {
            self.stats.ignored += 1;
            return;
        }
        self.bindings
            .retain(|b| !(b.member == member && b.instance == instance));
        if self.members.contains_key(&member) {
            self.withdraw_member(member, false);
        }
        self.recompute_rcvbuf();
        self.run_local();
    }

    /// Node `node` was lost: every member there that has no WITHDRAWN event queued goes
    /// LEAVING with its WITHDRAWN event at its `bc_rcv_nxt` (no LEAVE can come), a member
    /// still JOINING there is dropped, and the node's bindings are forgotten. Later
    /// withdrawals of those bindings change nothing. `max_active` and the receive buffer are
    /// recomputed.
    pub fn handle_node_down(&mut self, node: NodeAddr) {
        if self.phase != Phase::Joined {
            self.stats.ignored += 1;
            return;
        }
        self.bindings.retain(|b| b.member.node != node);
        let on_node: Vec<(SocketAddr, MemberState, bool)> = self
            .members
            .values()
            .filter(|m| m.addr.node == node)
            .map(|m| (m.addr, m.state, m.down_queued))
            .collect();
        for (addr, state, down_queued) in on_node {
            if state == MemberState::Joining {
                self.delete_member(addr);
            } else if !down_queued {
                self.withdraw_member(addr, true);
            }
        }
        self.recompute_rcvbuf();
        self.run_local();
    }

    /// The WITHDRAWN half of `tipc_group_member_evt`.
    fn withdraw_member(&mut self, addr: SocketAddr, node_down: bool) {
        self.decr_active(addr);
        self.set_state(addr, MemberState::Leaving);
        self.unlist(addr);
        self.open_member(addr, true);
        if node_down {
            // Nothing more comes from a lost node: what waits behind a gap in its deferred
            // queue (broadcasts that overtook an earlier one on another path, and whatever
            // queued behind them) is delivered in its order, then the event. The kernel
            // appends the event behind them, where it waits for the gap for ever, the member
            // is never deleted, and a broadcast waiting for its ack blocks its sender.
            let rcv_nxt = self.members.get_mut(&addr).map_or(0, |m| {
                for d in &m.deferred {
                    if Seqno(d.seqno()).more(Seqno(m.bc_rcv_nxt)) {
                        m.bc_rcv_nxt = d.seqno();
                    }
                }
                m.bc_rcv_nxt
            });
            self.create_event(addr, false, rcv_nxt);
        }
    }

    /// Record a binding for the lookups (name-table order: new ones at the tail).
    fn add_binding(&mut self, member: SocketAddr, instance: u32) {
        let b = Binding { instance, member };
        if !self.bindings.contains(&b) {
            self.bindings.push(b);
        }
    }

    /// Queue a member event into the member's deferred queue at `seqno`
    /// (`tipc_group_create_event`).
    fn create_event(&mut self, addr: SocketAddr, up: bool, seqno: u16) {
        let Some(m) = self.members.get_mut(&addr) else {
            return;
        };
        if !up {
            m.down_queued = true;
        }
        let item = Deferred::Event {
            up,
            seqno,
            orig_inst: m.instance,
        };
        self.filter(addr, item);
    }

    /// Build and queue a GROUP_PROTOCOL message of `mtype` for `addr`
    /// (`tipc_group_proto_xmit`). JOIN and ADV advertise `target − advertised` (target 780
    /// for ACTIVE, 65 for JOINED and PENDING, else 0) and add it to `advertised`.
    pub(super) fn proto_xmit(&mut self, addr: SocketAddr, mtype: GroupProtoType) {
        let bc_snd_nxt = self.bc_snd_nxt;
        let Some(m) = self.members.get_mut(&addr) else {
            return;
        };
        let adv = match m.state {
            MemberState::Active => ADV_ACTIVE.wrapping_sub(m.advertised),
            MemberState::Joined | MemberState::Pending => ADV_IDLE.wrapping_sub(m.advertised),
            _ => 0,
        };
        let (w9_hi, adv_win) = match mtype {
            GroupProtoType::Join => {
                m.advertised = m.advertised.wrapping_add(adv);
                (bc_snd_nxt, adv)
            }
            GroupProtoType::Leave => (bc_snd_nxt, 0),
            GroupProtoType::Adv => {
                m.advertised = m.advertised.wrapping_add(adv);
                (0, adv)
            }
            GroupProtoType::Ack => (m.bc_rcv_nxt, 0),
            GroupProtoType::Reclaim => (0, 0),
            GroupProtoType::Remit => (m.window, 0),
        };
        if addr == self.own {
            self.local.push_back(LocalProto {
                mtype,
                w9_hi,
                adv_win,
            });
            return;
        }
        let repr = GroupProtoRepr {
            mtype,
            dest_droppable: true,
            bcast_ack: 0,
            ack: 0,
            seqno: 0,
            prevnode: self.own.node,
            origport: self.own.port,
            destport: addr.port,
            orignode: self.own.node,
            destnode: addr.node,
            w9_hi,
            adv_win,
            data: &[],
        };
        let mut buf = BytesMut::zeroed(INT_H_SIZE);
        repr.emit(&mut buf);
        self.stats.proto_sent += 1;
        self.transmits.push_back(Transmit::Node {
            node: addr.node,
            msg: buf.freeze(),
        });
    }

    /// A GROUP_PROTOCOL message for this socket (its destport), delivered by its node's link
    /// (`tipc_group_proto_rcv`). Malformed ones are counted and dropped; on a node-scope group
    /// those from other nodes are ignored. What each type does is §10.2's table.
    pub fn handle_proto(&mut self, msg: &[u8]) {
        let parsed = Header::new_checked(msg).and_then(|h| GroupProtoRepr::parse(&h));
        let Ok(r) = parsed else {
            self.stats.malformed += 1;
            return;
        };
        self.stats.proto_rcvd += 1;
        if self.phase != Phase::Joined
            || (self.cfg.scope == Scope::Node && r.orignode != self.own.node)
        {
            self.stats.ignored += 1;
            return;
        }
        let from = SocketAddr {
            node: r.orignode,
            port: r.origport,
        };
        self.proto_rcv(from, r.mtype, r.w9_hi, r.adv_win);
        self.run_local();
    }

    /// What a GROUP_PROTOCOL message from `from` does.
    pub(super) fn proto_rcv(
        &mut self,
        from: SocketAddr,
        mtype: GroupProtoType,
        w9_hi: u16,
        adv_win: u16,
    ) {
        let state = self.members.get(&from).map(|m| m.state);
        if state.is_none() && mtype != GroupProtoType::Join {
            self.stats.ignored += 1;
            return;
        }
        match mtype {
            GroupProtoType::Join => self.rcv_join(from, state, w9_hi, adv_win),
            GroupProtoType::Leave => {
                if let Some(m) = self.members.get_mut(&from) {
                    m.bc_syncpt = w9_hi;
                }
                self.unlist(from);
                self.decr_active(from);
                self.set_state(from, MemberState::Leaving);
                self.open_member(from, true);
                self.create_event(from, false, w9_hi);
            }
            GroupProtoType::Adv => {
                if let Some(m) = self.members.get_mut(&from) {
                    m.window = m.window.wrapping_add(adv_win);
                }
                self.open_member(from, adv_win != 0);
            }
            GroupProtoType::Ack => self.rcv_ack(from, w9_hi),
            GroupProtoType::Reclaim => {
                self.proto_xmit(from, GroupProtoType::Remit);
                if let Some(m) = self.members.get_mut(&from) {
                    m.window = ADV_IDLE;
                }
                self.open_member(from, true);
            }
            GroupProtoType::Remit => self.rcv_remit(from, state, w9_hi),
        }
    }

    /// GRP_JOIN: create the member (JOINING) or find it; take its sync point and window; a
    /// PUBLISHED one is admitted (JOINED, ADV, PUBLISHED event at its `bc_syncpt`).
    fn rcv_join(
        &mut self,
        from: SocketAddr,
        state: Option<MemberState>,
        syncpt: u16,
        adv_win: u16,
    ) {
        if state.is_none() && self.create_member(from, 0, MemberState::Joining).is_none() {
            self.stats.ignored += 1;
            return;
        }
        let Some(m) = self.members.get_mut(&from) else {
            return;
        };
        m.bc_syncpt = syncpt;
        m.bc_rcv_nxt = syncpt;
        m.window = m.window.wrapping_add(adv_win);
        if m.state != MemberState::Published {
            return;
        }
        m.state = MemberState::Joined;
        self.open_member(from, true);
        self.update_member(from, 0);
        self.proto_xmit(from, GroupProtoType::Adv);
        self.create_event(from, true, syncpt);
    }

    /// GRP_ACK: counts only from a member that owes one, for the current broadcast
    /// (`bc_acked == bc_snd_nxt`). The last one opens broadcasting again.
    fn rcv_ack(&mut self, from: SocketAddr, acked: u16) {
        let bc_snd_nxt = self.bc_snd_nxt;
        let Some(m) = self.members.get_mut(&from) else {
            return;
        };
        if !m.ack_owed || acked != bc_snd_nxt || self.bc_ackers == 0 {
            self.stats.ignored += 1;
            return;
        }
        m.ack_owed = false;
        self.bc_ackers -= 1;
        if self.bc_ackers > 0 {
            return;
        }
        self.open = true;
        self.wakeup = true;
        self.update_member(from, 0);
    }

    /// GRP_REMIT: only for a RECLAIMING member. Messages it covers still unread → REMITTED
    /// with `advertised = 65 + in flight`; else → JOINED (`advertised = 65`) and the oldest
    /// PENDING member becomes ACTIVE.
    fn rcv_remit(&mut self, from: SocketAddr, state: Option<MemberState>, remitted: u16) {
        if state != Some(MemberState::Reclaiming) {
            self.stats.ignored += 1;
            return;
        }
        let Some(m) = self.members.get_mut(&from) else {
            return;
        };
        if m.advertised > remitted {
            m.state = MemberState::Remitted;
            let in_flight = m.advertised - remitted;
            m.advertised = ADV_IDLE.wrapping_add(in_flight);
            return;
        }
        // advertised < remitted "should never happen" (the kernel warns).
        m.state = MemberState::Joined;
        m.advertised = ADV_IDLE;
        self.active_cnt = self.active_cnt.saturating_sub(1);
        self.promote_pending(true);
    }
}

/// A protocol message's bytes, for tests of this file.
#[cfg(test)]
fn proto_bytes(t: &Transmit) -> Option<&bytes::Bytes> {
    match t {
        Transmit::Node { msg, .. } => Some(msg),
        Transmit::Members { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::GroupConfig;

    const ME: SocketAddr = SocketAddr {
        node: 0x0100_0001,
        port: 7,
    };
    const PEER: SocketAddr = SocketAddr {
        node: 0x0100_0002,
        port: 9,
    };

    #[test]
    fn join_to_published_member_carries_syncpt_and_zero_window() {
        let mut g = GroupCore::new(ME, GroupConfig::new(4711, 1)).expect("type");
        g.join([(PEER, 2)]).expect("join");
        let t = g.poll_transmit().expect("join msg");
        let msg = proto_bytes(&t).expect("node");
        assert_eq!(&msg[..4], &[0x53, 0x48, 0x00, 0x28]);
        assert_eq!(&msg[36..40], &[0, 0, 0, 0]);
        assert!(g.poll_transmit().is_none());
    }
}
