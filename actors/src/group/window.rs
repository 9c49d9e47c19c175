//! The member lists and both windows (kernel `group.c`: `tipc_group_create_member`,
//! `tipc_group_delete_member`, `tipc_group_update_member`, `tipc_group_update_bc_members`,
//! `tipc_group_cong`, `tipc_group_bc_cong`, `tipc_group_update_rcv_win`,
//! `tipc_group_decr_active`, `tipc_group_open`, `tipc_group_rcvbuf_limit`).
//!
//! Spec: tipc-protocol.md §10.3 (windows), §10.1 (member states).
//!
//! Sender side: `window` is the credit a member granted us (JOIN and ADV add to it, RECLAIM
//! sets it to `ADV_IDLE`); every message to it, and every broadcast or multicast, takes its
//! blocks. Receiver side: `advertised` is the credit we granted; the application's reads
//! take from it and decide the member's state (JOINED → ACTIVE or PENDING, RECLAIM of the
//! least recently read ACTIVE member, top-ups, REMITTED → JOINED).

use std::collections::VecDeque;

use tipc_transport::wire::GroupProtoType;

use super::member::{Member, MemberState};
use super::{max_active, rcvbuf_limit, GroupCore, ADV_ACTIVE, ADV_IDLE, ADV_TOPUP, MAX_MEMBERS};
use crate::addr::SocketAddr;

impl GroupCore {
    /// Create a member in `state` (`tipc_group_create_member`); `None` when the group is
    /// full.
    pub(super) fn create_member(
        &mut self,
        addr: SocketAddr,
        instance: u32,
        state: MemberState,
    ) -> Option<()> {
        if self.members.len() >= MAX_MEMBERS {
            return None;
        }
        self.members.insert(
            addr,
            Member {
                addr,
                instance,
                state,
                advertised: 0,
                window: 0,
                bc_rcv_nxt: 0,
                bc_syncpt: 0,
                ack_owed: false,
                down_queued: false,
                deferred: VecDeque::new(),
            },
        );
        Some(())
    }

    /// Delete a member (`tipc_group_delete_member`): its deferred queue goes with it, an ack
    /// it owed is no longer awaited.
    pub(super) fn delete_member(&mut self, addr: SocketAddr) {
        let Some(m) = self.members.remove(&addr) else {
            return;
        };
        if m.ack_owed && self.bc_ackers > 0 {
            self.bc_ackers -= 1;
            if self.bc_ackers == 0 {
                self.open = true;
                self.wakeup = true;
            }
        }
        self.unlist(addr);
        self.small_win.retain(|a| *a != addr);
        if m.state.counts_active() {
            self.active_cnt = self.active_cnt.saturating_sub(1);
        }
        if self.anycast_wait.is_some_and(|(_, a)| a == addr) {
            self.anycast_wait = None;
        }
    }

    /// Take a member off the ACTIVE or PENDING list (`list_del_init(&m->list)`).
    pub(super) fn unlist(&mut self, addr: SocketAddr) {
        self.active.retain(|a| *a != addr);
        self.pending.retain(|a| *a != addr);
    }

    /// `tipc_group_decr_active`.
    pub(super) fn decr_active(&mut self, addr: SocketAddr) {
        if self
            .members
            .get(&addr)
            .is_some_and(|m| m.state.counts_active())
        {
            self.active_cnt = self.active_cnt.saturating_sub(1);
        }
    }

    /// Put a member on the small-window list, sorted by window (later ones after earlier
    /// equal ones), iff it is a receiver with `window < ADV_IDLE`.
    fn resort(&mut self, addr: SocketAddr) {
        self.small_win.retain(|a| *a != addr);
        let Some(m) = self.members.get(&addr) else {
            return;
        };
        if !m.state.is_receiver() || m.window >= ADV_IDLE {
            return;
        }
        let w = m.window;
        let at = self
            .small_win
            .iter()
            .position(|a| self.members.get(a).is_some_and(|o| o.window > w))
            .unwrap_or(self.small_win.len());
        self.small_win.insert(at, addr);
    }

    /// A member's window may have grown, or it stopped being a receiver (`tipc_group_open`):
    /// if it was on the small-window list, the group is open and blocked senders wake up. It
    /// stays listed while its window is still small (see the module docs), and then wakes
    /// nobody unless `grew`: an `ADV(0)` changes nothing, and two blocked senders must not
    /// trade them for ever.
    pub(super) fn open_member(&mut self, addr: SocketAddr, grew: bool) {
        let listed = self.small_win.contains(&addr);
        self.resort(addr);
        if listed && (grew || !self.small_win.contains(&addr)) {
            self.open = true;
            self.wakeup = true;
        }
    }

    /// Take `len` blocks from a receiver's window (`tipc_group_update_member`; 0 re-sorts).
    pub(super) fn update_member(&mut self, addr: SocketAddr, len: u16) {
        let Some(m) = self.members.get_mut(&addr) else {
            return;
        };
        if !m.state.is_receiver() {
            return;
        }
        m.window = m.window.wrapping_sub(len);
        self.resort(addr);
    }

    /// A broadcast or multicast of `len` blocks went to every receiver
    /// (`tipc_group_update_bc_members`): their windows shrink; with `ack` each of them owes a
    /// GRP_ACK; `bc_snd_nxt` advances.
    pub(super) fn update_bc_members(&mut self, len: u16, ack: bool) {
        let receivers: Vec<SocketAddr> = self
            .members
            .values()
            .filter(|m| m.state.is_receiver())
            .map(|m| m.addr)
            .collect();
        for &a in &receivers {
            self.update_member(a, len);
            if ack {
                if let Some(m) = self.members.get_mut(&a) {
                    m.ack_owed = true;
                }
            }
        }
        if ack {
            self.bc_ackers = receivers.len().min(u16::MAX as usize) as u16;
        }
        self.bc_snd_nxt = self.bc_snd_nxt.wrapping_add(1);
    }

    /// Is a send of `len` blocks to `addr` blocked (`tipc_group_cong`)? A member that is not
    /// a receiver is [`Cong::NotMember`]. A blocked sender closes the group and, unless the
    /// member is fully advertised (JOINED or PENDING with 65, ACTIVE with 780), pushes a
    /// GRP_ADV with `target − advertised` (0 for the other states).
    pub(super) fn cong(&mut self, addr: SocketAddr, len: u16) -> Cong {
        let Some(m) = self.members.get(&addr).filter(|m| m.state.is_receiver()) else {
            return Cong::NotMember;
        };
        if m.window >= len {
            return Cong::Clear;
        }
        self.open = false;
        let full = match m.state {
            MemberState::Joined | MemberState::Pending => m.advertised == ADV_IDLE,
            MemberState::Active => m.advertised == ADV_ACTIVE,
            _ => false,
        };
        if !full {
            self.proto_xmit(addr, GroupProtoType::Adv);
        }
        Cong::Blocked
    }

    /// Is a broadcast of `len` blocks blocked (`tipc_group_bc_cong`): acks still owed, or the
    /// smallest window too small (then as [`cong`](Self::cong) for that member).
    pub(super) fn bc_cong(&mut self, len: u16) -> bool {
        if self.bc_ackers > 0 {
            self.open = false;
            return true;
        }
        let Some(&first) = self.small_win.first() else {
            return false;
        };
        if self.members.get(&first).is_some_and(|m| m.window >= len) {
            return false;
        }
        self.cong(first, len) == Cong::Blocked
    }

    /// The application read (or, for a GRP_MCAST for another instance, the socket
    /// accounted) `blks` blocks from `addr` (`tipc_group_update_rcv_win`, §10.3 receiver
    /// side).
    pub(super) fn update_rcv_win(&mut self, addr: SocketAddr, blks: u16) {
        let max_active = self.max_active;
        let reclaim_limit = max_active * 3 / 4;
        let active_cnt = self.active_cnt;
        let Some(m) = self.members.get_mut(&addr) else {
            return;
        };
        m.advertised = m.advertised.wrapping_sub(blks);
        let advertised = m.advertised;
        match m.state {
            MemberState::Joined => {
                if active_cnt <= max_active {
                    m.state = MemberState::Active;
                    self.active.push_back(addr);
                    self.active_cnt = self.active_cnt.saturating_add(1);
                    self.proto_xmit(addr, GroupProtoType::Adv);
                } else {
                    m.state = MemberState::Pending;
                    self.pending.push_back(addr);
                }
                if active_cnt < reclaim_limit {
                    return;
                }
                if let Some(rm) = self.active.pop_front() {
                    self.set_state(rm, MemberState::Reclaiming);
                    self.proto_xmit(rm, GroupProtoType::Reclaim);
                } else if let Some(pm) = self.pending.pop_front() {
                    self.set_state(pm, MemberState::Joined);
                    self.proto_xmit(pm, GroupProtoType::Adv);
                }
            }
            MemberState::Active => {
                if self.active.back() != Some(&addr) {
                    self.active.retain(|a| *a != addr);
                    self.active.push_back(addr);
                }
                if advertised <= ADV_TOPUP {
                    self.proto_xmit(addr, GroupProtoType::Adv);
                }
            }
            MemberState::Remitted => {
                if advertised > ADV_IDLE {
                    return;
                }
                m.state = MemberState::Joined;
                self.active_cnt = self.active_cnt.saturating_sub(1);
                if advertised < ADV_IDLE {
                    // "Rcv unexpected msg after REMIT": the sender overran its window.
                    self.proto_xmit(addr, GroupProtoType::Adv);
                }
                self.promote_pending(false);
            }
            _ => {}
        }
    }

    /// The oldest PENDING member becomes ACTIVE and gets an ADV (after a REMIT: only if its
    /// `advertised <= 585`).
    pub(super) fn promote_pending(&mut self, only_if_low: bool) {
        let Some(pm) = self.pending.pop_front() else {
            return;
        };
        self.set_state(pm, MemberState::Active);
        self.active.push_back(pm);
        self.active_cnt = self.active_cnt.saturating_add(1);
        let low = self
            .members
            .get(&pm)
            .is_some_and(|m| m.advertised <= ADV_TOPUP);
        if !only_if_low || low {
            self.proto_xmit(pm, GroupProtoType::Adv);
        }
    }

    pub(super) fn set_state(&mut self, addr: SocketAddr, state: MemberState) {
        if let Some(m) = self.members.get_mut(&addr) {
            m.state = state;
        }
    }

    /// Recompute `max_active` and the receive buffer from the member count
    /// (`tipc_group_rcvbuf_limit`).
    pub(super) fn recompute_rcvbuf(&mut self) {
        self.max_active = max_active(self.members.len());
        self.rcvbuf = rcvbuf_limit(self.members.len());
    }
}

/// The outcome of a congestion check for one member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cong {
    /// Not a member, or not one we send to.
    NotMember,
    /// Its window takes the message.
    Clear,
    /// Its window is too small.
    Blocked,
}
