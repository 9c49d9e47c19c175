//! Communication group member socket, sans-IO (kernel `net/tipc/group.c`, with the group
//! halves of `socket.c`: `tipc_sk_join`, `tipc_sk_leave`, `tipc_send_group_*`, `tipc_recvmsg`;
//! and `name_table.c: tipc_nametbl_lookup_group, tipc_nametbl_build_group`).
//!
//! Spec: tipc-protocol.md §10 (§10.1 membership, §10.2 GROUP_PROTOCOL, §10.3 windows, §10.4
//! transmission modes and receive ordering), §2.2 and §2.5 (header fields), §5.4 (what the
//! broadcast layer does with a group broadcast); golden vectors in the spec's
//! `captures/groups/README.md`.
//!
//! [`GroupCore`] is one socket's membership of one group: a [`Member`](MemberInfo) per other
//! member socket (keyed by socket address), their states and windows, the per-member deferred
//! queues that order data with member events, and the send-side decisions of `socket.c`. It
//! does no I/O, reads no clock and has no timers.
//!
//! * **Inputs**: the binding events of the group's type and scope
//!   ([`GroupCore::handle_member_published`], [`GroupCore::handle_member_withdrawn`]), node
//!   loss ([`GroupCore::handle_node_down`]), received messages ([`GroupCore::handle_proto`],
//!   [`GroupCore::handle_data`], or [`GroupCore::handle_message`] for either), the
//!   application's reads ([`GroupCore::handle_read`]), and the commands
//!   [`GroupCore::join`], [`GroupCore::send`], [`GroupCore::leave`].
//! * **Outputs**: [`GroupCore::poll_transmit`] (GROUP_PROTOCOL messages and GRP_UCAST data to
//!   one node; GRP_BCAST/GRP_MCAST to every node hosting a member, with the ack request and
//!   forced method the broadcast layer must honour), [`GroupCore::poll_event`] (data messages
//!   and member events for the application, in order), [`GroupCore::poll_wakeup`] (a blocked
//!   sender may retry), and [`GroupCore::stats`] (everything dropped, by cause).
//!
//! Everything built here leaves the link-stamped fields (w1 `bcast_ack`, w2) at 0. Which
//! links, replicast copies or broadcast-link packets carry a broadcast is not this core's
//! business: it says "to these member nodes, with ack request yes/no, method forced or free".
//!
//! GROUP_PROTOCOL messages to the socket itself (a member of itself with LOOPBACK) are
//! node-local in the kernel and never on the wire; here they are handled inside the core,
//! after the input that produced them, and never reach [`GroupCore::poll_transmit`]. Data
//! messages to itself do go out (to its own node) and come back through
//! [`GroupCore::handle_data`], as the kernel's local multicast delivery does.
//!
//! The behaviour is split by concern, each file one `impl GroupCore` block:
//!
//! * `member`: a member's state, snapshot and deferred queue (the types);
//! * `window`: the member lists, send windows (`window`) and receive windows
//!   (`advertised`), congestion checks, the receive-buffer formula (§10.3);
//! * `proto`: joining and leaving, binding events and node loss, GROUP_PROTOCOL messages built
//!   and received (§10.1, §10.2);
//! * `rcv`: received data, the per-member deferred queue and its ordering, member events,
//!   the application's reads (§10.4 "Receive ordering", §10.3 receiver side);
//! * `send`: broadcast, multicast, anycast and unicast sends, the data header, the lookups
//!   over the group's bindings (§10.4);
//! * [`sock`]: the member socket around the core ([`GroupSock`]: early messages, the receive
//!   queue, binding events, reads) and where its messages go ([`route_transmit`]), run by the
//!   actors' driver and the simulation alike.
//!
//! Deliberate differences from 6.1, all where the kernel misbehaves on unusual input:
//!
//! * The kernel takes a member off its sorted "small window" list whenever an ADV, RECLAIM or
//!   admission arrives, even if its window stays below `ADV_IDLE` (an `ADV(0)` does that); a
//!   following broadcast then underflows that member's 16-bit window. The core keeps the list
//!   exact (a member is on it iff it is a receiver with `window < ADV_IDLE`), and an `ADV(0)`
//!   that leaves a member on it wakes no blocked sender.
//! * Replicast acks are owed per member (6.12's `bc_pending`): an ACK counts only from a
//!   member that owes one and only if it acknowledges the current broadcast (6.1.192 ignores
//!   unexpected and duplicate ACKs too), and a deleted member releases only an ack it owed.
//! * A member still JOINING (JOIN seen, binding not) on a node that goes down is deleted; the
//!   kernel keeps it for ever.
//! * A member whose node is lost gets its WITHDRAWN event after everything in its deferred
//!   queue, which is delivered in order across any gap (a broadcast on the broadcast link
//!   overtaken by a later one on a unicast link, and lost with the node). The kernel appends
//!   the event behind a gap that can no longer fill: the member is never deleted and a
//!   forced broadcast waiting for its ack blocks the sender for good.
//! * Group data with an error code or a header other than 44 bytes is counted malformed and
//!   dropped; each member's deferred queue holds at most [`MAX_DEFERRED`] messages, more are
//!   dropped and counted (the kernel's queue is unbounded).

use std::collections::{BTreeMap, VecDeque};

use bytes::Bytes;
use tipc_transport::wire::{GroupProtoType, MAX_H_SIZE, MAX_MSG_SIZE, MCAST_H_SIZE};
use tipc_transport::NodeAddr;

use crate::addr::{Scope, ServiceAddr, ServiceRange, SocketAddr, RESERVED_TYPES};
use crate::socket::conn::FLOWCTL_BLK_SZ;
use member::Member;

mod member;
mod proto;
mod rcv;
mod send;
pub mod sock;
mod window;

pub use member::{MemberInfo, MemberState};
pub use sock::{route_transmit, BcastPolicy, GroupDrops, GroupSock, Route, SockStats};

/// One unit of advertised window in blocks: a maximal message, `(MAX_MSG_SIZE + MAX_H_SIZE)
/// / 1024 + 1` = 65 (`ADV_UNIT`).
pub const ADV_UNIT: u16 = ((MAX_MSG_SIZE + MAX_H_SIZE) / FLOWCTL_BLK_SZ + 1) as u16;
/// The window of an idle (JOINED or PENDING) member: 65 blocks (`ADV_IDLE`).
pub const ADV_IDLE: u16 = ADV_UNIT;
/// The window of an ACTIVE member: 12 × 65 = 780 blocks (`ADV_ACTIVE`).
pub const ADV_ACTIVE: u16 = ADV_UNIT * 12;
/// An ACTIVE member is topped up when its advertised window falls to this (585 blocks).
pub const ADV_TOPUP: u16 = ADV_ACTIVE * 3 / 4;
/// Header size of every group data message (`GROUP_H_SIZE`).
pub const GROUP_H_SIZE: usize = MCAST_H_SIZE;
/// Largest payload of a group message (`TIPC_MAX_USER_MSG_SIZE`).
pub const MAX_PAYLOAD: usize = tipc_transport::wire::MAX_USER_MSG_SIZE;
/// Messages one member's deferred queue may hold; more are dropped and counted.
pub const MAX_DEFERRED: usize = 4096;
/// Members (any state) one group may hold; JOINs from further unknown sockets are dropped.
pub const MAX_MEMBERS: usize = u16::MAX as usize;
/// `TIPC_GROUP_LOOPBACK`: the socket is a member of itself.
pub const GROUP_LOOPBACK: u32 = 0x1;
/// `TIPC_GROUP_MEMBER_EVTS`: member events are delivered to the socket.
pub const GROUP_MEMBER_EVTS: u32 = 0x2;

/// Flow-control blocks of a message of `len` bytes, header included (`tsk_blocks`,
/// `msg_blocks`): `len / 1024 + 1`. A group message with `dlen` bytes of data is
/// `blocks(44 + dlen)`, at most 65.
pub fn blocks(len: usize) -> u16 {
    (len / FLOWCTL_BLK_SZ + 1).min(u16::MAX as usize) as u16
}

/// How many members may hold an ACTIVE window at once: `clamp((member_cnt + 1) / 8, 16, 64)`,
/// `member_cnt` counting the other members, plus the socket itself with LOOPBACK.
pub fn max_active(member_cnt: usize) -> u16 {
    ((member_cnt + 1) / 8).clamp(16, 64) as u16
}

/// The receive buffer a member socket gets (`tipc_group_rcvbuf_limit`), in bytes:
/// `(max_active·780 + (member_cnt+1−max_active)·65) × 1024 × 4`. The idle term is negative
/// below 16 members (47 124 480 for a lone member, 266 240 more per member). Computed without
/// the kernel's 32-bit overflow, so it stays exact past ~8000 members.
pub fn rcvbuf_limit(member_cnt: usize) -> usize {
    let mcnt = member_cnt as i64 + 1;
    let max = max_active(member_cnt) as i64;
    let pool = max * ADV_ACTIVE as i64 + (mcnt - max) * ADV_IDLE as i64;
    (pool.max(0) as usize) * FLOWCTL_BLK_SZ * 4
}

/// What `setsockopt(TIPC_GROUP_JOIN)` asks for (`struct tipc_group_req`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct GroupConfig {
    /// The group's service type (64 or more).
    pub type_: u32,
    /// This member's instance.
    pub instance: u32,
    /// Cluster or node scope: bindings, lookups and (node scope) protocol messages stay
    /// within it.
    pub scope: Scope,
    /// `TIPC_GROUP_LOOPBACK`: the socket is a member of itself (gets its own broadcasts,
    /// multicasts and anycasts, and its own member events).
    pub loopback: bool,
    /// `TIPC_GROUP_MEMBER_EVTS`: member events are delivered ([`GroupEvent::MemberUp`],
    /// [`GroupEvent::MemberDown`]); without it they are still sequenced but dropped.
    pub member_events: bool,
}

impl GroupConfig {
    /// Cluster scope, no flags.
    pub fn new(type_: u32, instance: u32) -> GroupConfig {
        GroupConfig {
            type_,
            instance,
            scope: Scope::Cluster,
            loopback: false,
            member_events: false,
        }
    }

    /// The kernel's reading of a `struct tipc_group_req` (`tipc_sk_join`): type below 64 →
    /// [`GroupError::Reserved`]; scope above 3 → [`GroupError::BadScope`]; any scope other
    /// than 3 (node) becomes cluster; `flags` bit 0 LOOPBACK, bit 1 MEMBER_EVTS, others
    /// ignored.
    pub fn from_request(
        type_: u32,
        instance: u32,
        scope: u32,
        flags: u32,
    ) -> Result<GroupConfig, GroupError> {
        if type_ < RESERVED_TYPES {
            return Err(GroupError::Reserved(type_));
        }
        if scope > Scope::Node as u32 {
            return Err(GroupError::BadScope(scope));
        }
        Ok(GroupConfig {
            type_,
            instance,
            scope: if scope == Scope::Node as u32 {
                Scope::Node
            } else {
                Scope::Cluster
            },
            loopback: flags & GROUP_LOOPBACK != 0,
            member_events: flags & GROUP_MEMBER_EVTS != 0,
        })
    }
}

/// Why a group could not be joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupError {
    /// Service types below 64 are reserved (`EACCES`).
    #[error("group type {0} is reserved (below 64)")]
    Reserved(u32),
    /// A scope above 3 (`EINVAL`).
    #[error("bad group scope {0}")]
    BadScope(u32),
    /// The core has already joined (a socket already in a group: `EACCES`), or has left.
    #[error("already joined a group")]
    AlreadyJoined,
}

/// Why a send was refused; each variant hands the payload back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GroupSendError {
    /// No member matches the destination, or there is no member at all (`EHOSTUNREACH`).
    #[error("no group member for the destination")]
    NoDestination(Bytes),
    /// A member's window is too small, or the previous forced-replicast broadcast is not
    /// acknowledged yet (`EAGAIN`; the kernel's blocking send sleeps). Retry the same send
    /// after [`GroupCore::poll_wakeup`] says so; every retry is one evaluation of the wait
    /// condition and may push a GRP_ADV.
    #[error("group send window congested")]
    Congested(Bytes),
    /// More than 66000 bytes (`EMSGSIZE`).
    #[error("message exceeds 66000 bytes")]
    TooLarge(Bytes),
    /// The core has not joined yet, or has left.
    #[error("not in a group")]
    NotJoined(Bytes),
}

impl GroupSendError {
    /// The refused payload.
    pub fn into_payload(self) -> Bytes {
        match self {
            GroupSendError::NoDestination(b)
            | GroupSendError::Congested(b)
            | GroupSendError::TooLarge(b)
            | GroupSendError::NotJoined(b) => b,
        }
    }
}

/// Where [`GroupCore::send`] sends (`sendto` with no address, a socket address, a service
/// address or a service range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupDest {
    /// Every member: GRP_BCAST (`send()` without address).
    Broadcast,
    /// One member socket: GRP_UCAST (`TIPC_SOCKET_ADDR`).
    Member(SocketAddr),
    /// One member with this instance, round robin: GRP_UCAST (`TIPC_SERVICE_ADDR`; its type
    /// and scope are the group's).
    Anycast(u32),
    /// Every member with this instance: GRP_MCAST to all member nodes, or GRP_UCAST when
    /// exactly one member matches (`TIPC_SERVICE_RANGE`; only `lower` counts).
    Multicast(u32),
}

/// A multicast method the broadcast layer must use (§5.4 rule 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// One copy per destination node over the unicast links (w0 bit 18 set).
    Replicast,
    /// One packet on the broadcast link.
    Broadcast,
}

/// A message the core wants sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transmit {
    /// To one node, as a sequenced packet on its unicast link: a GROUP_PROTOCOL message or a
    /// GRP_UCAST data message (possibly to our own node: deliver it locally).
    Node {
        /// Destination node (the message's w7).
        node: NodeAddr,
        /// The complete message.
        msg: Bytes,
    },
    /// A GRP_BCAST or GRP_MCAST for every node hosting a member (`tipc_group_dests`), our own
    /// node included when a member is local (deliver a copy to the group's local sockets).
    /// The message has `destnode = 0`, `destport = 0` and w0 bit 18 clear: the broadcast
    /// layer stamps each replicast copy (destnode, `is_rcast`) or sends it on the broadcast
    /// link (§5.4, never with a SYN dummy).
    Members {
        /// The member nodes, ascending, without duplicates.
        nodes: Vec<NodeAddr>,
        /// The complete message.
        msg: Bytes,
        /// w10 bit 0 is set: every receiving member answers GRP_ACK. Always sent with
        /// `forced == Some(Method::Replicast)`.
        ack_required: bool,
        /// The method the socket forces (the first broadcast after join or after a unicast:
        /// replicast; `TIPC_MCAST_BROADCAST/REPLICAST`); `None` leaves the choice free.
        forced: Option<Method>,
    },
}

/// How a received data message was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cast {
    /// GRP_BCAST.
    Broadcast,
    /// GRP_MCAST for this instance (ours).
    Multicast(u32),
    /// GRP_UCAST (unicast or anycast).
    Unicast,
}

/// A data message for the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMessage {
    /// The sending member socket (`TIPC_SOCKET_ADDR` of `msg_name`).
    pub from: SocketAddr,
    /// The sender's service address: the group type and the sender's member instance (the
    /// second address of `msg_name`).
    pub service: ServiceAddr,
    /// How it was sent.
    pub cast: Cast,
    /// The whole message, 44-byte header included.
    pub msg: Bytes,
}

impl GroupMessage {
    /// The payload (after the 44-byte header).
    pub fn payload(&self) -> Bytes {
        self.msg.slice(GROUP_H_SIZE.min(self.msg.len())..)
    }
    /// The blocks it counts for: pass them to [`GroupCore::handle_read`] when the application
    /// reads it.
    pub fn blocks(&self) -> u16 {
        blocks(self.msg.len())
    }
}

/// What the application receives, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupEvent {
    /// A data message.
    Message(GroupMessage),
    /// `TIPC_PUBLISHED`: the member joined (it precedes all of its data).
    MemberUp {
        /// The member socket.
        member: SocketAddr,
        /// The group type and the member's instance.
        service: ServiceAddr,
    },
    /// `TIPC_WITHDRAWN`: the member left (after all broadcasts it sent before leaving) or
    /// its node was lost.
    MemberDown {
        /// The member socket.
        member: SocketAddr,
        /// The group type and the member's instance.
        service: ServiceAddr,
    },
}

/// Counters of one group member socket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GroupStats {
    /// Messages that failed to parse, or of a user, type or header size a group never takes.
    pub malformed: u64,
    /// Data from a non-member or from a member not yet admitted (JOINING, PUBLISHED).
    pub non_member: u64,
    /// Data (or a member event) whose `grp_bc_seqno` is below the member's `bc_rcv_nxt`.
    pub stale: u64,
    /// Data dropped because the member's deferred queue was full.
    pub deferred_overflow: u64,
    /// GRP_MCAST for another instance: sequenced and accounted, not delivered.
    pub other_instance: u64,
    /// Input that does not apply: protocol messages from unknown members, from another node
    /// to a node-scope group, unexpected ACK or REMIT, anything before join or after leave.
    pub ignored: u64,
    /// Member events sequenced but not delivered (no MEMBER_EVTS).
    pub events_suppressed: u64,
    /// Data messages delivered.
    pub delivered: u64,
    /// Member events delivered.
    pub events_delivered: u64,
    /// Broadcasts and multicasts sent (GRP_BCAST, GRP_MCAST).
    pub bcasts_sent: u64,
    /// Unicasts sent (GRP_UCAST: unicast, anycast, multicast to one member).
    pub ucasts_sent: u64,
    /// GROUP_PROTOCOL messages queued for the wire.
    pub proto_sent: u64,
    /// GROUP_PROTOCOL messages received from the wire.
    pub proto_rcvd: u64,
    /// GROUP_PROTOCOL messages to and from ourselves, handled inside the core.
    pub proto_local: u64,
}

/// The socket's multicast method state (`struct tipc_mc_method`: `rcast`, `mandatory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct McMethod {
    rcast: bool,
    mandatory: bool,
}

/// Where the core is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Created,
    Joined,
    Left,
}

/// One binding of the group's type as the name table holds it, for the lookups of anycast
/// and multicast (`tipc_nametbl_lookup_group`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Binding {
    instance: u32,
    member: SocketAddr,
}

/// A protocol message the core sent to itself (LOOPBACK), handled after the current input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LocalProto {
    mtype: GroupProtoType,
    w9_hi: u16,
    adv_win: u16,
}

/// One socket's membership of one group (see the module docs).
#[derive(Debug)]
pub struct GroupCore {
    own: SocketAddr,
    cfg: GroupConfig,
    phase: Phase,
    members: BTreeMap<SocketAddr, Member>,
    /// Receivers with `window < ADV_IDLE`, smallest window first (`small_win`).
    small_win: Vec<SocketAddr>,
    /// ACTIVE members, least recently read first.
    active: VecDeque<SocketAddr>,
    /// PENDING members, oldest first.
    pending: VecDeque<SocketAddr>,
    /// Bindings of the group's type in name-table order (round robin rotates them).
    bindings: Vec<Binding>,
    active_cnt: u16,
    max_active: u16,
    rcvbuf: usize,
    bc_snd_nxt: u16,
    bc_ackers: u16,
    mc: McMethod,
    importance: u8,
    src_droppable: bool,
    /// The header template's w9 (GRP_UCAST does not write it: the last broadcast's 0 or the
    /// last multicast's instance).
    tmpl_w9: u32,
    /// The header template's w10 bit 0 (likewise left by the last broadcast/multicast).
    tmpl_ack_req: bool,
    /// The member a blocked anycast waits on, with its instance.
    anycast_wait: Option<(u32, SocketAddr)>,
    /// `group_is_open`: no send is known to be blocked.
    open: bool,
    wakeup: bool,
    local: VecDeque<LocalProto>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<GroupEvent>,
    stats: GroupStats,
}

impl GroupCore {
    /// A member socket `own` for the group of `cfg`, not joined yet: call
    /// [`join`](Self::join) next. The caller publishes [`binding`](Self::binding) between the
    /// two, as `tipc_sk_join` does. Types below 64 are refused.
    pub fn new(own: SocketAddr, cfg: GroupConfig) -> Result<GroupCore, GroupError> {
        if cfg.type_ < RESERVED_TYPES {
            return Err(GroupError::Reserved(cfg.type_));
        }
        Ok(GroupCore {
            own,
            cfg,
            phase: Phase::Created,
            members: BTreeMap::new(),
            small_win: Vec::new(),
            active: VecDeque::new(),
            pending: VecDeque::new(),
            bindings: Vec::new(),
            active_cnt: 0,
            max_active: 0,
            rcvbuf: 0,
            bc_snd_nxt: 0,
            bc_ackers: 0,
            mc: McMethod {
                rcast: false,
                mandatory: false,
            },
            importance: 0,
            src_droppable: false,
            tmpl_w9: 0,
            tmpl_ack_req: false,
            anycast_wait: None,
            open: false,
            wakeup: false,
            local: VecDeque::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: GroupStats::default(),
        })
    }

    /// The socket's own address.
    pub fn own(&self) -> SocketAddr {
        self.own
    }
    /// The group's configuration.
    pub fn config(&self) -> GroupConfig {
        self.cfg
    }
    /// The binding this member publishes (`{type, instance, instance}` with the group's
    /// scope) after [`new`](Self::new) and withdraws after [`leave`](Self::leave).
    pub fn binding(&self) -> (ServiceRange, Scope) {
        (
            ServiceRange::single(self.cfg.type_, self.cfg.instance),
            self.cfg.scope,
        )
    }
    /// Joined and not left.
    pub fn is_joined(&self) -> bool {
        self.phase == Phase::Joined
    }
    /// The next broadcast's `grp_bc_seqno` (`bc_snd_nxt`; 0 in a new group).
    pub fn bc_snd_nxt(&self) -> u16 {
        self.bc_snd_nxt
    }
    /// Members whose GRP_ACK the last forced-replicast broadcast still waits for.
    pub fn bc_ackers(&self) -> u16 {
        self.bc_ackers
    }
    /// Members in the member tree, any state (`member_cnt`; the socket itself with LOOPBACK).
    pub fn member_count(&self) -> usize {
        self.members.len()
    }
    /// ACTIVE, RECLAIMING and REMITTED members (`active_cnt`).
    pub fn active_count(&self) -> u16 {
        self.active_cnt
    }
    /// The current `max_active` (computed at join and at every binding event).
    pub fn max_active(&self) -> u16 {
        self.max_active
    }
    /// The receive buffer limit in bytes for the socket's receive queue (`sk_rcvbuf`, set at
    /// join and at every binding event; group messages are checked against it unshifted).
    pub fn rcvbuf(&self) -> usize {
        self.rcvbuf
    }
    /// `group_is_open`: false from join until a member's window opens, and while a send is
    /// known to be blocked (the kernel's `EPOLLOUT` for group sockets).
    pub fn is_open(&self) -> bool {
        self.open
    }
    /// One member's state and windows.
    pub fn member(&self, addr: SocketAddr) -> Option<MemberInfo> {
        self.members.get(&addr).map(|m| m.info())
    }
    /// Every member, by socket address.
    pub fn members(&self) -> impl Iterator<Item = MemberInfo> + '_ {
        self.members.values().map(|m| m.info())
    }
    /// Counters.
    pub fn stats(&self) -> GroupStats {
        self.stats
    }

    /// Importance (0..=3, clamped) of our data messages (`TIPC_IMPORTANCE`).
    pub fn set_importance(&mut self, imp: u8) {
        self.importance = imp.min(3);
    }
    /// `TIPC_SRC_DROPPABLE` (and SOCK_DGRAM): w0 bit 18 of our GRP_UCAST messages.
    pub fn set_src_droppable(&mut self, on: bool) {
        self.src_droppable = on;
    }
    /// `TIPC_MCAST_REPLICAST` / `TIPC_MCAST_BROADCAST`: force the method of the next broadcast
    /// (with replicast, it also carries the ack request).
    pub fn force_method(&mut self, method: Method) {
        self.mc = McMethod {
            rcast: method == Method::Replicast,
            mandatory: true,
        };
    }

    /// The next message to send, in order.
    ///
    /// Call repeatedly until it returns `None`, and again after every input
    /// ([`handle_proto`](Self::handle_proto), [`handle_data`](Self::handle_data),
    /// [`handle_message`](Self::handle_message),
    /// [`handle_member_published`](Self::handle_member_published),
    /// [`handle_member_withdrawn`](Self::handle_member_withdrawn),
    /// [`handle_node_down`](Self::handle_node_down), [`handle_read`](Self::handle_read)) and
    /// every command ([`join`](Self::join), [`send`](Self::send) (also when it fails: a
    /// blocked sender pushes GRP_ADV), [`leave`](Self::leave)).
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Trade the queue of what [`poll_transmit`](Self::poll_transmit) would give for `buf`
    /// (which should be empty): `buf` then holds those messages in order.
    pub fn swap_transmits(&mut self, buf: &mut VecDeque<Transmit>) {
        debug_assert!(buf.is_empty());
        std::mem::swap(buf, &mut self.transmits);
    }

    /// Whether [`poll_transmit`](Self::poll_transmit) has something.
    pub fn has_transmit(&self) -> bool {
        !self.transmits.is_empty()
    }

    /// The next data message or member event for the application, in delivery order.
    ///
    /// Call repeatedly until it returns `None`, after every input that may deliver:
    /// [`handle_data`](Self::handle_data), [`handle_proto`](Self::handle_proto) (JOIN and
    /// LEAVE queue member events), the binding inputs and
    /// [`handle_node_down`](Self::handle_node_down). What comes out is in the socket's
    /// receive queue: tell the core when the application reads a data message
    /// ([`handle_read`](Self::handle_read)), which is what opens the sender's window.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<GroupEvent> {
        self.events.pop_front()
    }

    /// Whether a blocked sender should retry ([`GroupSendError::Congested`]) since the last
    /// call: a member's window opened, the awaited acks all came, or a member went away.
    /// Reading clears it. Check it after every input; a retry that is still blocked is
    /// harmless.
    #[must_use]
    pub fn poll_wakeup(&mut self) -> bool {
        std::mem::take(&mut self.wakeup)
    }

    /// Handle the protocol messages the core sent to itself, until none is left.
    fn run_local(&mut self) {
        while let Some(p) = self.local.pop_front() {
            self.stats.proto_local += 1;
            if self.phase != Phase::Joined {
                continue;
            }
            self.proto_rcv(self.own, p.mtype, p.w9_hi, p.adv_win);
        }
    }
}
