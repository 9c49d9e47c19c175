//! Sending to the group (kernel `socket.c: tipc_send_group_msg, tipc_send_group_unicast,
//! tipc_send_group_anycast, tipc_send_group_bcast, tipc_send_group_mcast`;
//! `name_table.c: tipc_nametbl_lookup_group`; `group.c: tipc_group_bc_snd_nxt,
//! tipc_group_dests, tipc_group_exclude`).
//!
//! Spec: tipc-protocol.md §10.4 (modes, `bc_snd_nxt`, the ack request), §10.3 (sender
//! side), §5.4 (what the broadcast layer does with the result).
//!
//! Every data message has the socket's header template: 44 bytes, importance, w0 bit 19
//! dest_droppable, `lookup_scope` = group scope, w8 = group type, w10 bits 31-16 =
//! `bc_snd_nxt` (the current one: a unicast is never delivered before the broadcasts sent
//! earlier). GRP_UCAST writes neither w9 nor w10 bit 0: they keep what the last broadcast or
//! multicast put in the template (0 or its instance; its ack request), as the kernel's
//! captures show.
//!
//! Anycast and multicast look the destination up among the group's bindings as the name
//! table would: the first binding with that instance, rotated to the tail (round robin), or
//! all of them; our own only with LOOPBACK.

use std::collections::BTreeSet;

use bytes::{Bytes, BytesMut};
use tipc_transport::wire::{DataRepr, DataType};
use tipc_transport::NodeAddr;

use super::window::Cong;
use super::{
    blocks, GroupCore, GroupDest, GroupSendError, Method, Phase, Transmit, GROUP_H_SIZE,
    MAX_PAYLOAD,
};
use crate::addr::SocketAddr;

/// Anycast looks up this many times before giving up on members that vanished.
const ANYCAST_LOOKUPS: usize = 3;

impl GroupCore {
    /// Send `payload` to `dest` (`sendto` on a group socket). On success the message is
    /// queued for [`poll_transmit`](Self::poll_transmit). A refusal hands the payload back:
    /// [`GroupSendError::Congested`] (retry after [`poll_wakeup`](Self::poll_wakeup); every
    /// attempt may push a GRP_ADV, so poll transmits after a refusal too),
    /// [`GroupSendError::NoDestination`], [`GroupSendError::TooLarge`],
    /// [`GroupSendError::NotJoined`].
    ///
    /// * [`GroupDest::Broadcast`]: GRP_BCAST (w9 0) to every member node; blocked while a
    ///   forced-replicast broadcast awaits acks or the smallest window is too small. Then
    ///   every receiving member's window shrinks and `bc_snd_nxt` advances.
    /// * [`GroupDest::Multicast`]: GRP_MCAST (w9 = instance) like a broadcast when several
    ///   members have the instance; GRP_UCAST when exactly one has.
    /// * [`GroupDest::Anycast`]: GRP_UCAST to one member with the instance, round robin, up
    ///   to three lookups preferring one whose window takes it; blocked, its retries keep to
    ///   the member it chose until that one takes it or vanishes (the kernel's blocking
    ///   send; [`abandon_send`](Self::abandon_send) forgets the choice).
    /// * [`GroupDest::Member`]: GRP_UCAST to that member (`EHOSTUNREACH` if we do not send
    ///   to it).
    ///
    /// After any GRP_UCAST the next broadcast or multicast is a forced replicast with the
    /// ack request; each broadcast or multicast frees the method again.
    pub fn send(&mut self, dest: GroupDest, payload: Bytes) -> Result<(), GroupSendError> {
        if self.phase != Phase::Joined {
            return Err(GroupSendError::NotJoined(payload));
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(GroupSendError::TooLarge(payload));
        }
        let r = match dest {
            GroupDest::Broadcast => self.send_bcast(None, payload),
            GroupDest::Member(m) => self.send_unicast(m, payload),
            GroupDest::Anycast(i) => self.send_anycast(i, payload),
            GroupDest::Multicast(i) => self.send_mcast(i, payload),
        };
        self.run_local();
        r
    }

    /// The caller gives up a blocked send (a non-blocking send that returned `EAGAIN`, a
    /// timeout, a signal): a blocked anycast no longer keeps to the member it chose, so the
    /// next anycast looks up afresh, as the kernel's next `sendto` does.
    pub fn abandon_send(&mut self) {
        self.anycast_wait = None;
    }

    /// `tipc_send_group_unicast`.
    fn send_unicast(&mut self, to: SocketAddr, payload: Bytes) -> Result<(), GroupSendError> {
        if to.node == 0 && to.port == 0 {
            return Err(GroupSendError::NoDestination(payload));
        }
        let blks = blocks(GROUP_H_SIZE + payload.len());
        match self.cong(to, blks) {
            Cong::NotMember => Err(GroupSendError::NoDestination(payload)),
            Cong::Blocked => Err(GroupSendError::Congested(payload)),
            Cong::Clear => {
                self.send_group_msg(to, &payload, blks);
                Ok(())
            }
        }
    }

    /// `tipc_send_group_anycast`.
    fn send_anycast(&mut self, instance: u32, payload: Bytes) -> Result<(), GroupSendError> {
        let blks = blocks(GROUP_H_SIZE + payload.len());
        if let Some((inst, target)) = self.anycast_wait.take() {
            if inst == instance {
                match self.cong(target, blks) {
                    Cong::Clear => {
                        self.send_group_msg(target, &payload, blks);
                        return Ok(());
                    }
                    Cong::Blocked => {
                        self.anycast_wait = Some((inst, target));
                        return Err(GroupSendError::Congested(payload));
                    }
                    Cong::NotMember => {}
                }
            }
        }
        for _ in 0..ANYCAST_LOOKUPS {
            let mut first: Option<SocketAddr> = None;
            let (cand, cong) = loop {
                let Some(cand) = self.lookup_one(instance) else {
                    return Err(GroupSendError::NoDestination(payload));
                };
                let c = self.cong(cand, blks);
                if c != Cong::Blocked || first == Some(cand) {
                    break (cand, c);
                }
                first.get_or_insert(cand);
            };
            match cong {
                Cong::NotMember => continue,
                Cong::Clear => {
                    self.send_group_msg(cand, &payload, blks);
                    return Ok(());
                }
                Cong::Blocked => {
                    self.anycast_wait = Some((instance, cand));
                    return Err(GroupSendError::Congested(payload));
                }
            }
        }
        Err(GroupSendError::NoDestination(payload))
    }

    /// `tipc_send_group_mcast`.
    fn send_mcast(&mut self, instance: u32, payload: Bytes) -> Result<(), GroupSendError> {
        let targets: Vec<SocketAddr> = self
            .bindings
            .iter()
            .filter(|b| b.instance == instance)
            .map(|b| b.member)
            .collect();
        match targets.as_slice() {
            [] => Err(GroupSendError::NoDestination(payload)),
            [one] => self.send_unicast(*one, payload),
            _ => self.send_bcast(Some(instance), payload),
        }
    }

    /// `tipc_send_group_bcast` (a multicast when `mcast` is set).
    fn send_bcast(&mut self, mcast: Option<u32>, payload: Bytes) -> Result<(), GroupSendError> {
        let ack = self.mc.mandatory && self.mc.rcast;
        let blks = blocks(GROUP_H_SIZE + payload.len());
        if self.bc_cong(blks) {
            return Err(GroupSendError::Congested(payload));
        }
        let nodes: Vec<NodeAddr> = self
            .members
            .keys()
            .map(|a| a.node)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if nodes.is_empty() {
            return Err(GroupSendError::NoDestination(payload));
        }
        let mtype = if mcast.is_some() {
            DataType::GrpMcast
        } else {
            DataType::GrpBcast
        };
        self.tmpl_w9 = mcast.unwrap_or(0);
        self.tmpl_ack_req = ack;
        let msg = self.build(mtype, SocketAddr { node: 0, port: 0 }, &payload);
        let forced = self.mc.mandatory.then_some(if self.mc.rcast {
            Method::Replicast
        } else {
            Method::Broadcast
        });
        self.transmits.push_back(Transmit::Members {
            nodes,
            msg,
            ack_required: ack,
            forced,
        });
        self.stats.bcasts_sent += 1;
        self.update_bc_members(blks, ack);
        self.mc.mandatory = false;
        Ok(())
    }

    /// `tipc_send_group_msg`: a GRP_UCAST to `to`, whose window takes `blks`.
    fn send_group_msg(&mut self, to: SocketAddr, payload: &[u8], blks: u16) {
        let msg = self.build(DataType::GrpUcast, to, payload);
        self.transmits
            .push_back(Transmit::Node { node: to.node, msg });
        self.stats.ucasts_sent += 1;
        self.update_member(to, blks);
        self.mc.rcast = true;
        self.mc.mandatory = true;
    }

    /// A data message with the socket's template (see the module docs).
    fn build(&self, mtype: DataType, to: SocketAddr, payload: &[u8]) -> Bytes {
        let repr = DataRepr {
            hsize: GROUP_H_SIZE,
            importance: self.importance,
            mtype,
            non_seq: false,
            dest_droppable: true,
            bit18: mtype == DataType::GrpUcast && self.src_droppable,
            syn: false,
            errcode: 0,
            reroute_cnt: 0,
            lookup_scope: self.cfg.scope as u8,
            bcast_ack: 0,
            ack: 0,
            seqno: 0,
            prevnode: self.own.node,
            origport: self.own.port,
            destport: to.port,
            orignode: self.own.node,
            destnode: to.node,
            name_type: self.cfg.type_,
            name_instance: self.tmpl_w9,
            name_upper: 0,
            grp_bc_seqno: self.bc_snd_nxt,
            grp_bc_ack_req: self.tmpl_ack_req,
            payload,
        };
        let mut buf = BytesMut::zeroed(repr.buffer_len());
        repr.emit(&mut buf);
        buf.freeze()
    }

    /// The anycast lookup: the first binding with `instance`, moved to the tail.
    fn lookup_one(&mut self, instance: u32) -> Option<SocketAddr> {
        let i = self.bindings.iter().position(|b| b.instance == instance)?;
        let b = self.bindings.remove(i);
        self.bindings.push(b);
        Some(b.member)
    }
}
