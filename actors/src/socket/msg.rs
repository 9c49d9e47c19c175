//! Building, returning and rerouting datagram messages (kernel `socket.c: tipc_sk_create,
//! __tipc_sendmsg, tipc_sendmcast, tipc_sk_rcv`; `msg.c: tipc_msg_reverse,
//! tipc_msg_lookup_dest`; `bcast.c: tipc_mcast_send_sync, tipc_rcast_xmit`).
//!
//! Spec: tipc-protocol.md §2.2, §5.4, §8.2, §9.1, §9.2.

use bytes::BytesMut;
use tipc_transport::wire::{
    DataRepr, DataType, ErrorCode, Header, BASIC_H_SIZE, MAX_USER_MSG_SIZE, MCAST_H_SIZE,
    NAMED_H_SIZE,
};
use tipc_transport::NodeAddr;

use super::SocketError;
use crate::addr::{Scope, ServiceAddr, ServiceRange, SocketAddr};

pub use tipc_transport::wire::{reverse, MAX_FORWARD_SIZE};

/// Per-socket send options that show up in the header (§9.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SendOpts {
    /// `TIPC_IMPORTANCE`, 0 (LOW) ..= 3 (CRITICAL): the header's user field.
    pub importance: u8,
    /// `TIPC_DEST_DROPPABLE` (w0 bit 19): drop instead of returning when undeliverable.
    /// Default true for RDM and DGRAM.
    pub dest_droppable: bool,
    /// `TIPC_SRC_DROPPABLE` (w0 bit 18): set by DGRAM sockets; no kernel code reads it.
    pub src_droppable: bool,
}

impl SendOpts {
    /// The defaults of a new `SOCK_RDM` socket: LOW, dest_droppable.
    pub const RDM: SendOpts = SendOpts {
        importance: 0,
        dest_droppable: true,
        src_droppable: false,
    };
    /// The defaults of a new `SOCK_DGRAM` socket: LOW, dest_droppable, src_droppable.
    pub const DGRAM: SendOpts = SendOpts {
        importance: 0,
        dest_droppable: true,
        src_droppable: true,
    };
}

impl Default for SendOpts {
    /// [`SendOpts::RDM`].
    fn default() -> Self {
        SendOpts::RDM
    }
}

/// The socket header template (`tipc_msg_init` + `tipc_sk_create`): `prevnode = orignode =
/// own node`, `origport = own port`; everything link-stamped is 0.
fn template<'a>(
    own: SocketAddr,
    mtype: DataType,
    hsize: usize,
    opts: &SendOpts,
    data: &'a [u8],
) -> Result<DataRepr<'a>, SocketError> {
    if opts.importance > 3 {
        return Err(SocketError::BadImportance(opts.importance));
    }
    if data.len() > MAX_USER_MSG_SIZE {
        return Err(SocketError::TooLarge(data.len()));
    }
    Ok(DataRepr {
        hsize,
        importance: opts.importance,
        mtype,
        non_seq: false,
        dest_droppable: opts.dest_droppable,
        bit18: opts.src_droppable,
        syn: false,
        errcode: 0,
        reroute_cnt: 0,
        lookup_scope: 0,
        bcast_ack: 0,
        ack: 0,
        seqno: 0,
        prevnode: own.node,
        origport: own.port,
        destport: 0,
        orignode: own.node,
        destnode: 0,
        name_type: 0,
        name_instance: 0,
        name_upper: 0,
        grp_bc_seqno: 0,
        grp_bc_ack_req: false,
        payload: data,
    })
}

fn emit(r: &DataRepr<'_>) -> BytesMut {
    let mut buf = BytesMut::zeroed(r.buffer_len());
    r.emit(&mut buf);
    buf
}

/// A `DIRECT_MSG` to a socket address (32-byte header, `lookup_scope` 0): what `sendto()` with a
/// `TIPC_SOCKET_ADDR` sends (§9.1).
///
/// Errors: payload over 66000 bytes, importance over 3.
pub fn build_direct(
    own: SocketAddr,
    dest: SocketAddr,
    opts: &SendOpts,
    data: &[u8],
) -> Result<BytesMut, SocketError> {
    let mut r = template(own, DataType::Direct, BASIC_H_SIZE, opts, data)?;
    r.destnode = dest.node;
    r.destport = dest.port;
    Ok(emit(&r))
}

/// A `NAMED_MSG` to a service address (40-byte header, w8 = type, w9 = instance), §8.2.
///
/// `dest` is the result of the sender's anycast lookup; for a **deferred** lookup (the
/// sockaddr's lookup node is another node) pass `SocketAddr { node: lookup_node, port: 0 }` and
/// the destination node resolves it (§8.2 secondary lookup). `scope` is the header's
/// `lookup_scope`: the kernel uses [`Scope::Node`] when the sockaddr names a lookup node
/// (`domain != 0`) and [`Scope::Cluster`] otherwise.
///
/// Errors: payload over 66000 bytes, importance over 3.
pub fn build_named(
    own: SocketAddr,
    name: ServiceAddr,
    dest: SocketAddr,
    scope: Scope,
    opts: &SendOpts,
    data: &[u8],
) -> Result<BytesMut, SocketError> {
    let mut r = template(own, DataType::Named, NAMED_H_SIZE, opts, data)?;
    r.lookup_scope = scope as u8;
    r.destnode = dest.node;
    r.destport = dest.port;
    r.name_type = name.type_;
    r.name_instance = name.instance;
    Ok(emit(&r))
}

/// A `MCAST_MSG` to a service range (44-byte header, `lookup_scope` 2, destnode and destport 0,
/// w8..w10 = type, lower, upper), before replication (§9.1, §5.4).
///
/// The copy sent to each node by replicast comes from [`replicast_copy`]; the broadcast link sends
/// this message as it is (it stamps `non_seq` and the network id itself).
///
/// Errors: payload over 66000 bytes, importance over 3. (`lower > upper` cannot reach here: it
/// is [`SocketError::BadRange`] where the [`ServiceRange`] is built.)
pub fn build_mcast(
    own: SocketAddr,
    range: ServiceRange,
    opts: &SendOpts,
    data: &[u8],
) -> Result<BytesMut, SocketError> {
    let mut r = template(own, DataType::Mcast, MCAST_H_SIZE, opts, data)?;
    r.lookup_scope = Scope::Cluster as u8;
    r.name_type = range.type_();
    r.name_instance = range.lower();
    r.name_upper = range.upper();
    Ok(emit(&r))
}

/// The replicast copy of a multicast (or group broadcast) message for one node
/// (`tipc_msg_pskb_copy` in `tipc_rcast_xmit` after `msg_set_is_rcast`): `destnode = node` and
/// w0 bit 18 `is_rcast` = 1.
///
/// `None` if `msg` is not a valid data message with at least a 32-byte header.
pub fn replicast_copy(msg: &[u8], node: NodeAddr) -> Option<BytesMut> {
    let h = Header::new_checked(msg).ok()?;
    if !h.is_data() || h.header_len() < BASIC_H_SIZE {
        return None;
    }
    let mut buf = BytesMut::from(h.message());
    let mut h = Header::new_unchecked(&mut buf[..]);
    h.set_destnode(node);
    h.set_is_rcast(true);
    Some(buf)
}

/// The multicast method switch of `tipc_mcast_send_sync` (the `TIPC_MCAST_RBCTL` capability,
/// §5.4): sets SYN (w0 bit 17) in the first message sent with the new method, and returns the
/// header-only dummy (44 bytes, SYN, `is_rcast` inverted, errcode `NO_PORT`) to be sent with the
/// **old** method, so receivers can order the two paths.
///
/// Call it after setting `is_rcast` for the new method. `None` (and `msg` untouched) if `msg` is
/// not a valid `MCAST_MSG` with a 44-byte header.
pub fn mcast_sync(msg: &mut [u8]) -> Option<BytesMut> {
    {
        let h = Header::new_checked(&*msg).ok()?;
        if !h.is_data() || h.mtype() != DataType::Mcast as u8 || h.header_len() != MCAST_H_SIZE {
            return None;
        }
    }
    let mut h = Header::new_unchecked(&mut *msg);
    h.set_syn(true);
    let rcast = h.is_rcast();
    let mut dummy = BytesMut::from(msg.get(..MCAST_H_SIZE)?);
    let mut d = Header::new_unchecked(&mut dummy[..]);
    d.set_size(MCAST_H_SIZE);
    d.set_is_rcast(!rcast);
    d.set_errcode(ErrorCode::NoPort as u8);
    Some(dummy)
}

/// Secondary lookup of a message whose destination port does not exist or is 0
/// (`tipc_msg_lookup_dest`, §8.2), rewriting `msg` in place on success.
///
/// Applies only to a valid `NAMED_MSG` without errcode; anything else gives
/// `Err(ErrorCode::NoPort)` (reject it with that code). A named message that was already rerouted
/// (`reroute_cnt != 0`) or for which `lookup(name, scope)` finds nothing gives
/// `Err(ErrorCode::NoName)`. `scope` is the header's `lookup_scope` (3 = this node only,
/// anything else = cluster). On success `reroute_cnt` is incremented, destnode/destport are
/// rewritten, `prevnode` becomes `own_node` if the new destination is another node, and the
/// destination (where to send the message now) is returned.
pub fn lookup_dest<F>(
    msg: &mut [u8],
    own_node: NodeAddr,
    lookup: F,
) -> Result<SocketAddr, ErrorCode>
where
    F: FnOnce(ServiceAddr, Scope) -> Option<SocketAddr>,
{
    let (name, scope, rerouted) = {
        let h = Header::new_checked(&*msg).map_err(|_| ErrorCode::NoPort)?;
        if !h.is_data()
            || h.mtype() != DataType::Named as u8
            || h.errcode() != 0
            || h.header_len() < NAMED_H_SIZE
        {
            return Err(ErrorCode::NoPort);
        }
        let scope = if h.lookup_scope() == Scope::Node as u8 {
            Scope::Node
        } else {
            Scope::Cluster
        };
        let name = ServiceAddr {
            type_: h.nametype(),
            instance: h.nameinst(),
        };
        (name, scope, h.reroute_cnt())
    };
    if rerouted != 0 {
        return Err(ErrorCode::NoName);
    }
    let dest = match lookup(name, scope) {
        Some(d) if d.port != 0 => d,
        _ => return Err(ErrorCode::NoName),
    };
    let mut h = Header::new_unchecked(&mut *msg);
    h.set_reroute_cnt(rerouted + 1);
    if dest.node != own_node {
        h.set_prevnode(own_node);
    }
    h.set_destnode(dest.node);
    h.set_destport(dest.port);
    Ok(dest)
}

/// What to do with a message whose destination port has no socket on this node (the
/// no-socket branch of `tipc_sk_rcv`): try [`lookup_dest`]; if that succeeds return the rerouted
/// message, else the [`reverse`]d one with the lookup's error code.
///
/// Returns `(node to send to, message)`; the node may be `own_node` (a local socket now owns
/// the name, or the returned message is for a local sender). `None`: drop it silently
/// (malformed, droppable, or already a returned message).
pub fn reject_or_reroute<F>(
    msg: &[u8],
    own_node: NodeAddr,
    lookup: F,
) -> Option<(NodeAddr, BytesMut)>
where
    F: FnOnce(ServiceAddr, Scope) -> Option<SocketAddr>,
{
    let h = Header::new_checked(msg).ok()?;
    let mut buf = BytesMut::from(h.message());
    match lookup_dest(&mut buf, own_node, lookup) {
        Ok(dest) => Some((dest.node, buf)),
        Err(e) => {
            let rev = reverse(h.message(), e, own_node)?;
            let dnode = Header::new_unchecked(&rev[..]).destnode();
            Some((dnode, rev))
        }
    }
}

/// How long a socket keeps its multicast method once used, when the cluster cannot
/// synchronise a switch (`TIPC_METHOD_EXPIRE`, 5 s).
pub const METHOD_EXPIRE: std::time::Duration = std::time::Duration::from_secs(5);

/// A socket's multicast method (`struct tipc_mc_method`) and the choice of §5.4
/// (`tipc_bcast_select_xmit_method`) for datagram range multicast. Starts as "broadcast".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct McastMethod {
    /// The last send went by replicast.
    pub rcast: bool,
    /// Until then the method is kept.
    pub expires: Option<std::time::Instant>,
}

impl McastMethod {
    /// Replicast for a multicast to `remote` nodes in a cluster of `cluster_size` nodes
    /// (this one included), given whether the node can broadcast, whether every peer takes
    /// replicast (`TIPC_BCAST_RCAST`) and whether every peer synchronises a switch
    /// (`TIPC_MCAST_RBCTL`): (1) replicast if it cannot broadcast; (2) broadcast if a peer
    /// lacks replicast; (4) without `rbctl`, the previous method within [`METHOD_EXPIRE`] of
    /// the previous send; (6) replicast up to `1 + cluster_size / 10` remote nodes, else
    /// broadcast. The choice is remembered with a new expiry. Returns (replicast, switch to
    /// synchronise): a change of method when every peer has `rbctl` ([`mcast_sync`]).
    pub fn select(
        &mut self,
        now: std::time::Instant,
        remote: usize,
        cluster_size: usize,
        can_broadcast: bool,
        all_rcast: bool,
        rbctl: bool,
    ) -> (bool, bool) {
        let rcast = if !can_broadcast {
            true
        } else if !all_rcast {
            false
        } else if !rbctl && self.expires.is_some_and(|e| now < e) {
            self.rcast
        } else {
            remote <= 1 + cluster_size * 10 / 100
        };
        let sync = rbctl && rcast != self.rcast;
        self.rcast = rcast;
        self.expires = Some(now + METHOD_EXPIRE);
        (rcast, sync)
    }
}
