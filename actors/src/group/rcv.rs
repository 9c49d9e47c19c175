//! Received group data and its ordering (kernel `group.c: tipc_group_filter_msg,
//! tipc_group_sort_msg`; `socket.c: tipc_recvmsg`, the window update on read).
//!
//! Spec: tipc-protocol.md §10.4 "Receive ordering", §10.3 (receiver side), §10.1 (member
//! events ordered with data).
//!
//! Per sending member, a deferred queue: data with `grp_bc_seqno < bc_rcv_nxt` is dropped;
//! broadcasts and multicasts are sorted in by seqno, unicasts and member events appended;
//! the head is delivered while its seqno ≤ `bc_rcv_nxt`, and a broadcast or multicast head
//! advances `bc_rcv_nxt` (and is answered with GRP_ACK when it asks for one). A GRP_MCAST for
//! another instance is sequenced and accounted at arrival but not delivered. A member event
//! delivered while the member is LEAVING deletes the member.

use bytes::Bytes;
use tipc_transport::wire::{user, DataRepr, DataType, GroupProtoType, Header, Seqno};

use super::member::{DataKind, Deferred};
use super::{blocks, Cast, GroupCore, GroupEvent, GroupMessage, Phase, GROUP_H_SIZE};
use super::{MAX_DEFERRED, MAX_PAYLOAD};
use crate::addr::{ServiceAddr, SocketAddr};

impl GroupCore {
    /// A message for this socket, by user: GROUP_PROTOCOL to
    /// [`handle_proto`](Self::handle_proto), data (users 0..=3) to
    /// [`handle_data`](Self::handle_data); anything else is counted malformed.
    pub fn handle_message(&mut self, msg: Bytes) {
        match Header::new_checked(&msg[..]).map(|h| h.user()) {
            Ok(user::GROUP_PROTOCOL) => self.handle_proto(&msg),
            Ok(u) if u <= user::CRITICAL => self.handle_data(msg),
            _ => self.stats.malformed += 1,
        }
    }

    /// A group data message for this socket (GRP_BCAST, GRP_MCAST or GRP_UCAST with a
    /// 44-byte header; a multicast clone with its destport set), as its link delivered it
    /// (reassembled). It enters its sender's deferred queue; what becomes deliverable comes
    /// out of [`poll_event`](Self::poll_event), GRP_ACKs out of
    /// [`poll_transmit`](Self::poll_transmit). Malformed messages, messages from non-members
    /// or from members not yet admitted, and stale ones are counted and dropped.
    pub fn handle_data(&mut self, msg: Bytes) {
        let item = {
            let parsed = Header::new_checked(&msg[..]).and_then(|h| {
                let r = DataRepr::parse(&h)?;
                Ok((h.size(), r))
            });
            let Ok((size, r)) = parsed else {
                self.stats.malformed += 1;
                return;
            };
            let kind = match r.mtype {
                DataType::GrpBcast => DataKind::Bcast,
                DataType::GrpMcast => DataKind::Mcast,
                DataType::GrpUcast => DataKind::Ucast,
                _ => {
                    self.stats.malformed += 1;
                    return;
                }
            };
            if r.hsize != GROUP_H_SIZE || r.errcode != 0 || r.payload.len() > MAX_PAYLOAD {
                self.stats.malformed += 1;
                return;
            }
            let from = SocketAddr {
                node: r.orignode,
                port: r.origport,
            };
            (
                from,
                kind,
                r.grp_bc_seqno,
                r.grp_bc_ack_req,
                r.name_instance,
                size,
            )
        };
        if self.phase != Phase::Joined {
            self.stats.ignored += 1;
            return;
        }
        let (from, kind, seqno, ack_req, name_inst, size) = item;
        let orig_inst = self.members.get(&from).map_or(0, |m| m.instance);
        self.filter(
            from,
            Deferred::Data {
                kind,
                seqno,
                ack_req,
                name_inst,
                orig_inst,
                msg: msg.slice(..size),
            },
        );
        self.run_local();
    }

    /// The application read a data message of `blocks` blocks from member `from`
    /// ([`GroupMessage::blocks`]; not for member events): the receive window shrinks and may
    /// send GRP_ADV, or RECLAIM the least recently read ACTIVE member (§10.3). The kernel's
    /// `recvmsg` skips data messages without payload without accounting them; a handle that
    /// mirrors it does the same. Nothing happens for a member that is gone.
    pub fn handle_read(&mut self, from: SocketAddr, blocks: u16) {
        if self.phase != Phase::Joined {
            return;
        }
        self.update_rcv_win(from, blocks);
        self.run_local();
    }

    /// Admit `item` from `from` into its deferred queue and deliver what is ready
    /// (`tipc_group_filter_msg`).
    pub(super) fn filter(&mut self, from: SocketAddr, item: Deferred) {
        let Some(m) = self.members.get_mut(&from) else {
            self.stats.non_member += 1;
            return;
        };
        if !m.state.is_sender() {
            self.stats.non_member += 1;
            return;
        }
        if Seqno(item.seqno()).less(Seqno(m.bc_rcv_nxt)) {
            self.stats.stale += 1;
            return;
        }
        if m.deferred.len() >= MAX_DEFERRED {
            self.stats.deferred_overflow += 1;
            return;
        }
        m.sort_in(item);
        self.drain(from);
    }

    /// Deliver the head of `from`'s deferred queue while its seqno ≤ `bc_rcv_nxt`.
    fn drain(&mut self, from: SocketAddr) {
        loop {
            let Some(m) = self.members.get_mut(&from) else {
                return;
            };
            let Some(head) = m.deferred.front() else {
                return;
            };
            if Seqno(head.seqno()).more(Seqno(m.bc_rcv_nxt)) {
                return;
            }
            let Some(head) = m.deferred.pop_front() else {
                return;
            };
            let leaving = m.state == super::MemberState::Leaving;
            let mut ack = false;
            let mut account = None;
            let mut leave = false;
            match head {
                Deferred::Data {
                    kind,
                    ack_req,
                    name_inst,
                    orig_inst,
                    msg,
                    ..
                } => {
                    let cast = match kind {
                        DataKind::Bcast => Cast::Broadcast,
                        DataKind::Mcast => Cast::Multicast(name_inst),
                        DataKind::Ucast => Cast::Unicast,
                    };
                    if kind != DataKind::Ucast {
                        m.bc_rcv_nxt = m.bc_rcv_nxt.wrapping_add(1);
                        ack = ack_req;
                    }
                    if kind == DataKind::Mcast && name_inst != self.cfg.instance {
                        self.stats.other_instance += 1;
                        account = Some(blocks(msg.len()));
                    } else {
                        self.stats.delivered += 1;
                        self.events.push_back(GroupEvent::Message(GroupMessage {
                            from,
                            service: ServiceAddr {
                                type_: self.cfg.type_,
                                instance: orig_inst,
                            },
                            cast,
                            msg,
                        }));
                    }
                }
                Deferred::Event { up, orig_inst, .. } => {
                    leave = leaving;
                    if self.cfg.member_events {
                        let service = ServiceAddr {
                            type_: self.cfg.type_,
                            instance: orig_inst,
                        };
                        self.stats.events_delivered += 1;
                        self.events.push_back(if up {
                            GroupEvent::MemberUp {
                                member: from,
                                service,
                            }
                        } else {
                            GroupEvent::MemberDown {
                                member: from,
                                service,
                            }
                        });
                    } else {
                        self.stats.events_suppressed += 1;
                    }
                }
            }
            if ack {
                self.proto_xmit(from, GroupProtoType::Ack);
            }
            if leave {
                self.delete_member(from);
                return;
            }
            if let Some(blks) = account {
                self.update_rcv_win(from, blks);
            }
        }
    }
}
