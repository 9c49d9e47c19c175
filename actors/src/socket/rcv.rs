//! The receive dispatch of the socket layer, sans-IO (kernel `socket.c: tipc_sk_rcv,
//! tipc_sk_mcast_rcv`, `msg.c: tipc_msg_lookup_dest`, `node.c: tipc_node_lost_contact` for the
//! connection sockets). Spec: tipc-protocol.md §8.2 (secondary lookup), §9.2 (rejection),
//! §9.6 (connection messages), §5.4 (multicast delivery).
//!
//! A message handed to this node (by a link, or built here and addressed to this node) is
//! turned into [`Verdict`]s: to a local port, on to another node (rerouted by secondary lookup,
//! or a returned message on its way back to its sender), or dropped with a [`DropCause`].
//! Rejected messages are reversed here ([`reverse`]) and routed at once: a returned message
//! for a sender on this node becomes a [`Verdict::Port`] (or a drop, never a second rejection).
//! The dispatch reads the node's state only through [`RcvEnv`] (its ports and its binding
//! table), so the actors and the simulation drive the same code.
//!
//! The connection-socket glue of `tipc_sk_filter_rcv`'s callers is here too: feeding a
//! message to a [`ConnCore`] with what the node knows of the sender ([`conn_rcv`]),
//! accepting a request ([`conn_accept`]), resolving a named SYN ([`conn_resolve`]) and the
//! connect outcome ([`conn_connect_result`]).

use super::conn::{ConnCore, ConnError, ConnState, Output, Verdict as ConnVerdict};
use super::{lookup_dest, reverse};
use crate::addr::{Scope, ServiceAddr, ServiceRange, SocketAddr};
use crate::name_table::{AnycastResult, BindingTable};
use bytes::{Bytes, BytesMut};
use std::time::Instant;
use tipc_transport::wire::{user, DataType, ErrorCode, Header, InputQueue};
use tipc_transport::NodeAddr;

/// What the dispatch needs to know about the node it runs on.
pub trait RcvEnv {
    /// This node's address.
    fn own(&self) -> NodeAddr;
    /// Is there a socket (of any kind) at `port`?
    fn has_port(&self, port: u32) -> bool;
    /// Run `f` on the node's binding table (lookups rotate anycast lists, hence `&mut`).
    fn with_table<R>(&mut self, f: impl FnOnce(&mut BindingTable) -> R) -> R;
}

/// What other nodes are like, as a socket core needs to know (kernel
/// `tipc_node_get_capabilities`, `tipc_node_get_mtu`).
pub trait Nodes {
    /// The capabilities of `node` (ours for our own node; the full set if not known yet).
    fn caps(&self, node: NodeAddr) -> u16;
    /// The largest message toward `node` that goes unfragmented.
    fn mss(&self, node: NodeAddr) -> usize;
}

/// One decision of the dispatch.
#[derive(Debug)]
pub enum Verdict {
    /// To the local socket at this port.
    Port(u32, Bytes),
    /// To another node: rerouted by secondary lookup, or returned to its sender there. If
    /// the node is not reachable, hand the message to [`unreachable()`].
    Node(NodeAddr, BytesMut),
    /// Dropped; the caller counts it.
    Drop(DropCause),
}

/// Why the dispatch dropped a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DropCause {
    /// The header failed validation, or a MCAST message names a range with `lower > upper`.
    Malformed,
    /// A user or type no socket takes (GROUP_PROTOCOL, group messages without groups).
    NotForSockets,
    /// Rejected, but the sender asked for undeliverable messages to be dropped
    /// (`dest_droppable`), or it was itself a returned message.
    NotReturnable,
    /// A returned message whose sending socket is gone.
    SenderGone,
}

/// Counters of the dispatch's drops, by cause.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RcvStats {
    /// [`DropCause::Malformed`].
    pub malformed: u64,
    /// [`DropCause::NotForSockets`].
    pub not_for_sockets: u64,
    /// [`DropCause::NotReturnable`].
    pub not_returnable: u64,
    /// [`DropCause::SenderGone`].
    pub sender_gone: u64,
}

impl RcvStats {
    /// Count one drop.
    pub fn count(&mut self, cause: DropCause) {
        match cause {
            DropCause::Malformed => self.malformed += 1,
            DropCause::NotForSockets => self.not_for_sockets += 1,
            DropCause::NotReturnable => self.not_returnable += 1,
            DropCause::SenderGone => self.sender_gone += 1,
        }
    }
}

/// A message a link delivered, to its input queue's dispatch: [`sk_rcv`] for
/// [`InputQueue::Sockets`], [`sk_mcast_rcv`] for [`InputQueue::Mcast`]. (Name-distribution
/// messages go to the name table, not here.)
pub fn input(env: &mut impl RcvEnv, queue: InputQueue, msg: Bytes, out: &mut impl FnMut(Verdict)) {
    match queue {
        InputQueue::Mcast => sk_mcast_rcv(env, msg, out),
        _ => sk_rcv(env, msg, out),
    }
}

/// `tipc_sk_rcv` for one message of the sockets' input queue: data and connection protocol
/// for a port of this node.
///
/// * CONN_MANAGER: to its port, or back with NO_PORT.
/// * A returned message (errcode set): to the port that sent it, never rejected again.
/// * DIRECT and CONN: to the port, or back with NO_PORT.
/// * NAMED: to the port it names if that exists; otherwise a secondary lookup
///   ([`lookup_dest`]) reroutes it (to a local port or another node) or it goes back with
///   NO_NAME / NO_PORT.
/// * MCAST: as [`sk_mcast_rcv`]; group messages go back with NO_PORT.
pub fn sk_rcv(env: &mut impl RcvEnv, msg: Bytes, out: &mut impl FnMut(Verdict)) {
    let Ok(h) = Header::new_checked(&msg[..]) else {
        return out(Verdict::Drop(DropCause::Malformed));
    };
    let usr = h.user();
    if usr == user::CONN_MANAGER {
        let port = h.destport();
        return to_port(env, port, msg, true, out);
    }
    if usr == user::GROUP_PROTOCOL {
        return to_member(env, h.destport(), msg, out);
    }
    if usr > user::CRITICAL {
        return out(Verdict::Drop(DropCause::NotForSockets));
    }
    let destport = h.destport();
    if h.errcode() != 0 {
        return to_port(env, destport, msg, false, out);
    }
    match DataType::from_u8(h.mtype()) {
        Ok(DataType::Direct | DataType::Conn) => to_port(env, destport, msg, true, out),
        Ok(DataType::GrpUcast) => to_member(env, destport, msg, out),
        Ok(DataType::GrpBcast | DataType::GrpMcast) => sk_mcast_rcv(env, msg, out),
        Ok(DataType::Named) => {
            if destport != 0 && env.has_port(destport) {
                return out(Verdict::Port(destport, msg));
            }
            let own = env.own();
            let mut m = BytesMut::from(&msg[..]);
            let found = env.with_table(|t| {
                lookup_dest(&mut m, own, |sa, scope| t.lookup_secondary(sa, scope))
            });
            match found {
                Ok(sock) if sock.node == own => to_port(env, sock.port, m.freeze(), true, out),
                Ok(sock) => out(Verdict::Node(sock.node, m)),
                Err(e) => reject(env, &msg, e, out),
            }
        }
        Ok(DataType::Mcast) => sk_mcast_rcv(env, msg, out),
        // GRP_MEMBER_EVT is node-internal, never on the wire: NO_PORT.
        _ => reject(env, &msg, ErrorCode::NoPort, out),
    }
}

/// A GROUP_PROTOCOL or GRP_UCAST message goes to the member socket at its destport; the
/// group sets `dest_droppable` on both, so one for a socket that is gone is dropped
/// (rejected through [`reject`], which drops what may not be returned).
fn to_member(env: &mut impl RcvEnv, port: u32, msg: Bytes, out: &mut impl FnMut(Verdict)) {
    if env.has_port(port) {
        out(Verdict::Port(port, msg))
    } else if Header::new_checked(&msg[..]).is_ok_and(|h| h.user() == user::GROUP_PROTOCOL) {
        out(Verdict::Drop(DropCause::NotReturnable))
    } else {
        reject(env, &msg, ErrorCode::NoPort, out)
    }
}

/// `tipc_sk_mcast_rcv` for one message of the multicast input queue: a MCAST message goes to
/// every local port bound in its range (cluster-scope bindings only for a message from another
/// node), a copy each; nothing is rejected. A MCAST message whose range has `lower > upper` is
/// dropped as [`DropCause::Malformed`] (the kernel would look the inverted bounds up; no
/// sender builds them, `tipc_uaddr_valid`).
///
/// Group traffic shares this queue, so that it keeps its order per sender: GROUP_PROTOCOL
/// and GRP_UCAST go to the member socket at their destport (dropped if it is gone: both are
/// `dest_droppable`); GRP_BCAST and GRP_MCAST go to every local socket bound to the group's
/// type, any instance, with exactly the message's lookup scope (a copy each, destport left as
/// sent: a member socket takes any), and are dropped as [`DropCause::NotReturnable`] where
/// there is none (the member left).
pub fn sk_mcast_rcv(env: &mut impl RcvEnv, msg: Bytes, out: &mut impl FnMut(Verdict)) {
    let Ok(h) = Header::new_checked(&msg[..]) else {
        return out(Verdict::Drop(DropCause::Malformed));
    };
    if h.user() == user::GROUP_PROTOCOL {
        return to_member(env, h.destport(), msg, out);
    }
    if h.user() > user::CRITICAL {
        return out(Verdict::Drop(DropCause::NotForSockets));
    }
    // A method switch's dummy (SYN, NO_PORT, §5.4) goes to the bound sockets like the
    // multicast it stands for: their hold-back pairs it (`socket::mcast`).
    let dummy = h.mtype() == DataType::Mcast as u8 && h.syn();
    if h.errcode() != 0 && !dummy {
        return to_port(env, h.destport(), msg, false, out);
    }
    match DataType::from_u8(h.mtype()) {
        Ok(DataType::Mcast) => {
            let Ok(range) = ServiceRange::new(h.nametype(), h.nameinst(), h.nameupper()) else {
                // lower > upper: no sender builds it (`EINVAL`); no range to look up.
                return out(Verdict::Drop(DropCause::Malformed));
            };
            let from_local = h.orignode() == env.own();
            let ports = env.with_table(|t| t.lookup_mcast_local_ports(range, from_local));
            for port in ports {
                to_port(env, port, msg.clone(), false, out);
            }
        }
        Ok(DataType::GrpBcast | DataType::GrpMcast) => {
            let scope = if h.lookup_scope() == Scope::Node as u8 {
                Scope::Node
            } else {
                Scope::Cluster
            };
            let mut ports = Vec::new();
            env.with_table(|t| t.lookup_group_local_ports_into(h.nametype(), scope, &mut ports));
            if ports.is_empty() {
                return out(Verdict::Drop(DropCause::NotReturnable));
            }
            for port in ports {
                to_port(env, port, msg.clone(), false, out);
            }
        }
        _ => sk_rcv(env, msg, out),
    }
}

/// A message built on this node (a returned message, or one a local socket sends to its own
/// node) goes where its header says: dispatched here if `destnode` is this node (or 0),
/// otherwise [`Verdict::Node`].
pub fn route(env: &mut impl RcvEnv, msg: BytesMut, out: &mut impl FnMut(Verdict)) {
    let Ok(h) = Header::new_checked(&msg[..]) else {
        return out(Verdict::Drop(DropCause::Malformed));
    };
    let dest = h.destnode();
    if dest == env.own() || dest == 0 {
        let queue = tipc_transport::wire::input_queue(&h);
        match queue {
            Some(q) => input(env, q, msg.freeze(), out),
            None => out(Verdict::Drop(DropCause::NotForSockets)),
        }
    } else {
        out(Verdict::Node(dest, msg))
    }
}

/// Return `msg` to its sender with `err` ([`reverse`]) and route the returned copy; a
/// droppable message or one that is itself returned is dropped.
pub fn reject(env: &mut impl RcvEnv, msg: &[u8], err: ErrorCode, out: &mut impl FnMut(Verdict)) {
    match reverse(msg, err, env.own()) {
        Some(ret) => route(env, ret, out),
        None => out(Verdict::Drop(DropCause::NotReturnable)),
    }
}

/// A [`Verdict::Node`] message whose node is not reachable: back to its sender with NO_NODE.
pub fn unreachable(env: &mut impl RcvEnv, msg: &[u8], out: &mut impl FnMut(Verdict)) {
    reject(env, msg, ErrorCode::NoNode, out)
}

/// A [`Verdict::Port`] message whose socket went away before it could be queued: as for a
/// port that never existed (back with NO_PORT unless it was returned itself).
pub fn port_gone(env: &mut impl RcvEnv, msg: &[u8], out: &mut impl FnMut(Verdict)) {
    let returned = Header::new_checked(msg).is_ok_and(|h| h.errcode() != 0);
    if returned {
        out(Verdict::Drop(DropCause::SenderGone))
    } else {
        reject(env, msg, ErrorCode::NoPort, out)
    }
}

fn to_port(
    env: &mut impl RcvEnv,
    port: u32,
    msg: Bytes,
    reject_missing: bool,
    out: &mut impl FnMut(Verdict),
) {
    if env.has_port(port) {
        out(Verdict::Port(port, msg))
    } else if reject_missing {
        reject(env, &msg, ErrorCode::NoPort, out)
    } else {
        out(Verdict::Drop(DropCause::SenderGone))
    }
}

/// Resolve an anycast destination in the binding table (`tipc_nametbl_lookup_anycast` with
/// lookup domain 0, round-robin) and write it into `msg`'s header: the node to send it to.
/// `None`: no binding matches (the kernel's `EHOSTUNREACH`).
pub fn resolve_anycast(
    table: &mut BindingTable,
    name: ServiceAddr,
    msg: &mut [u8],
) -> Option<NodeAddr> {
    let dest = match table.lookup_anycast(name, 0) {
        AnycastResult::Found(sock) => sock,
        AnycastResult::Deferred(node) => SocketAddr { node, port: 0 },
        AnycastResult::NotFound => return None,
    };
    let mut h = Header::new_unchecked(msg);
    h.set_destnode(dest.node);
    h.set_destport(dest.port);
    Some(dest.node)
}

/// What [`conn_rcv`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnFed {
    /// The core's verdict on the message.
    pub verdict: ConnVerdict,
    /// The core's next timeout moved earlier (or appeared): re-arm its timer.
    pub rearm: bool,
    /// A listener holds a connection request: accept it ([`conn_accept`]).
    pub acceptable: bool,
}

/// Feed one message to a connection socket's core (`tipc_sk_filter_rcv` for a connection
/// socket) with the sender's capabilities; a connect that completes here takes the peer
/// node's message size (`tipc_sk_finish_conn`'s `max_pkt`). Then send what the core produced
/// ([`ConnCore::poll_output`]).
pub fn conn_rcv(core: &mut ConnCore, msg: Bytes, nodes: &impl Nodes, now: Instant) -> ConnFed {
    let sender = Header::new_checked(&msg[..])
        .map(|h| h.orignode())
        .unwrap_or(0);
    let before = core.poll_timeout();
    let connecting = core.state() == ConnState::Connecting;
    let verdict = core.handle_message(msg, nodes.caps(sender), now);
    if connecting && core.state() == ConnState::Established {
        core.set_max_pkt(nodes.mss(core.peer().node));
    }
    let rearm = match (before, core.poll_timeout()) {
        (_, None) => false,
        (None, Some(_)) => true,
        (Some(b), Some(a)) => a < b,
    };
    let acceptable = core.state() == ConnState::Listen && core.backlog() > 0;
    ConnFed {
        verdict,
        rearm,
        acceptable,
    }
}

/// Accept the listener's next connection request as a new socket at `own` (`tipc_accept`):
/// the requester's capabilities decide the flow control, its node's message size the
/// socket's `max_pkt`. `None` if no request is pending. The new core's first output is its
/// ACK; the listener may have output too (a rejected request).
pub fn conn_accept(
    listener: &mut ConnCore,
    own: SocketAddr,
    nodes: &impl Nodes,
    now: Instant,
) -> Option<ConnCore> {
    let requester = listener.peek_request()?;
    let mut core = listener.accept(own, nodes.caps(requester.node), now)?;
    core.set_max_pkt(nodes.mss(core.peer().node));
    Some(core)
}

/// Where an output of a connection core goes: `(node, message)`. A named SYN
/// ([`Output::Lookup`]) is resolved by `resolve` (the binding table's anycast lookup,
/// [`resolve_anycast`]; called only for a named SYN, so the data path takes no table lock)
/// and the core told where it went (a 0-RTT connect then fails with the loss of that node);
/// if nothing is bound, the connect fails with [`ConnError::NoDestination`] and `Err` is
/// returned. If the message then cannot be sent, tell the core with
/// [`ConnCore::connect_failed`]`(NoNode)`.
pub fn conn_resolve(
    core: &mut ConnCore,
    o: Output,
    resolve: impl FnOnce(ServiceAddr, &mut [u8]) -> Option<NodeAddr>,
) -> Result<(NodeAddr, BytesMut), ConnError> {
    match o {
        Output::ToNode(n, msg) => Ok((n, msg)),
        Output::Lookup(name, mut msg) => match resolve(name, &mut msg) {
            Some(n) => {
                core.syn_sent_to(n);
                Ok((n, msg))
            }
            None => {
                core.connect_failed(ConnError::NoDestination);
                Err(ConnError::NoDestination)
            }
        },
    }
}

/// The outcome of a connect, once there is one (`tipc_wait_for_connect`): `None` while
/// connecting. Accepted and already ended before the connector looked (the reply and the
/// peer's FIN came with the ACK) counts as connected, as the kernel's `connect()`, which
/// fails only with `sk_err`: what arrived is read next, then the end.
pub fn conn_connect_result(core: &ConnCore) -> Option<Result<(), ConnError>> {
    match core.state() {
        ConnState::Connecting => None,
        ConnState::Established => Some(Ok(())),
        ConnState::Disconnecting if core.rx_len() > 0 => Some(Ok(())),
        _ => Some(Err(match core.end() {
            Some(Err(e)) => e,
            _ => ConnError::Closed,
        })),
    }
}
