//! The messages the node's actors exchange, and the handles through which they reach each other
//! (part of the node context). An actor never names another actor's type: it sends one of these
//! messages to a handle kept in `NodeCtx` (`crate::ctx`); the facade ([`crate::node`]) starts
//! the actors and fills in the handles. Messages private to one actor and its user handle (a
//! connection socket's) stay in that actor's file.

use crate::addr::ServiceRange;
use crate::name_table::{BindingError, Publication};
use crate::socket::{DgramError, McastMethod};
use crate::topsrv::{SubError, SubId, Subscription, TopoEvent};
use actix::prelude::*;
use bytes::{Bytes, BytesMut};
use tipc_transport::discovery::Neighbor;
use tipc_transport::link::LinkSnapshot;
use tipc_transport::{BearerId, MediaAddr, NodeAddr, NodeId};
use tokio::sync::mpsc;

// ------------------------------------------------------------------------------ peer actor

/// Discovery saw this peer on a bearer.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Discovered {
    /// Bearer.
    pub bearer: BearerId,
    /// What discovery learned.
    pub neighbor: Neighbor,
}

/// Unicast-link packets from this peer, in arrival order.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Packets {
    /// Bearer they arrived on.
    pub bearer: BearerId,
    /// The media address they came from (the frames' source as the media saw it).
    pub src: MediaAddr,
    /// The packets.
    pub pkts: Vec<Bytes>,
}

/// Broadcast-link packets from this peer.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct BcastPackets {
    /// Bearer they arrived on.
    pub bearer: BearerId,
    /// The media address they came from.
    pub src: MediaAddr,
    /// The packets.
    pub pkts: Vec<Bytes>,
}

/// Ask for a snapshot.
#[derive(Debug, Message)]
#[rtype(result = "PeerSnapshot")]
pub struct PeerQuery;

/// Stop: tell the peer on every link.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Shutdown;

/// Send what is queued for this peer ([`crate::flow::PeerFlow`]'s queue), or run the core
/// after an inline sender changed it.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Drain;

/// Answered once every earlier message was handled.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct Barrier;

/// A peer and its links, for management output.
#[derive(Debug, Clone, MessageResponse)]
pub struct PeerSnapshot {
    /// Address.
    pub addr: NodeAddr,
    /// Identity.
    pub id: NodeId,
    /// Node up.
    pub up: bool,
    /// Links.
    pub links: Vec<(BearerId, LinkSnapshot)>,
    /// Node-level counters.
    pub stats: tipc_transport::peer::PeerStats,
}

/// How the node reaches one peer's actor (kept behind an `Arc`: a recipient is a boxed
/// sender, costly to clone on a per-message path).
pub(crate) struct PeerHandle {
    pub discovered: Recipient<Discovered>,
    pub packets: Recipient<Packets>,
    pub bcast: Recipient<BcastPackets>,
    pub query: Recipient<PeerQuery>,
    pub shutdown: Recipient<Shutdown>,
    pub drain: Recipient<Drain>,
    pub barrier: Recipient<Barrier>,
}

impl PeerHandle {
    /// The handle of a peer actor.
    pub fn of<A>(a: Addr<A>) -> PeerHandle
    where
        A: Actor<Context = Context<A>>
            + Handler<Discovered>
            + Handler<Packets>
            + Handler<BcastPackets>
            + Handler<PeerQuery>
            + Handler<Shutdown>
            + Handler<Drain>
            + Handler<Barrier>,
    {
        PeerHandle {
            discovered: a.clone().recipient(),
            packets: a.clone().recipient(),
            bcast: a.clone().recipient(),
            query: a.clone().recipient(),
            shutdown: a.clone().recipient(),
            drain: a.clone().recipient(),
            barrier: a.recipient(),
        }
    }
}

// ---------------------------------------------------------------------------- bearer actor

/// Commands to a bearer actor.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum BearerCmd {
    /// Answer a discovery request from this neighbour; `stranger`: it never answered on its
    /// link (the response is rate-limited).
    Respond {
        /// The neighbour.
        neighbor: Neighbor,
        /// It never answered on its link.
        stranger: bool,
    },
    /// A link on this bearer came up.
    LinkUp,
    /// A link on this bearer went down.
    LinkDown,
    /// Nothing; answered once earlier messages were handled (used to order shutdown).
    Flush,
}

/// Ask a bearer for its counters.
#[derive(Debug, Message)]
#[rtype(result = "BearerStats")]
pub struct BearerStatsQuery;

/// Receive-side counters of a bearer.
#[derive(Debug, Clone, Copy, Default, MessageResponse)]
pub struct BearerStats {
    /// Frames received.
    pub rx_frames: u64,
    /// Frames dropped as malformed.
    pub rx_malformed: u64,
    /// Frames dropped for another destination or a bad previous node.
    pub rx_misrouted: u64,
    /// Frames from nodes we have no peer for.
    pub rx_unknown_peer: u64,
    /// Receive errors.
    pub rx_errors: u64,
    /// Discovery messages received.
    pub disc_received: u64,
    /// Discovery messages dropped (bad net id, media address, own address, malformed...).
    pub disc_dropped: u64,
    /// Of them: malformed (header, media address of another kind, broadcast media address).
    pub disc_malformed: u64,
    /// Of them: another network id.
    pub disc_wrong_network: u64,
    /// Of them: carrying our own node address (or 0): another node uses it.
    pub disc_own_addr: u64,
    /// Responses to strangers not sent (rate limit).
    pub disc_resp_limited: u64,
}

// ------------------------------------------------------------------------ name table actor

/// One message a peer's link delivered, sorted by input queue (`tipc_data_input`).
#[derive(Debug, Clone)]
pub enum Inbound {
    /// For the sockets (`inputq`).
    Sockets(Bytes),
    /// Multicast or group (`mc_inputq`).
    Mcast(Bytes),
    /// A NAME_DISTRIBUTOR message (`namedq`).
    Names(Bytes),
}

/// Messages delivered by a peer's links, in link order.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub struct FromPeer {
    /// The peer.
    pub from: NodeAddr,
    /// The messages.
    pub msgs: Vec<Inbound>,
}

/// A peer node came up (first link) or went down (last link), or one of its links did.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum PeerState {
    /// Up: send it our bindings.
    Up(NodeAddr),
    /// Down: forget its bindings, end the connections to it.
    Down(NodeAddr),
    /// A link to the peer came up: publish `{2, peer, peer}` (node scope) with this link id.
    LinkUp(NodeAddr, u32),
    /// That link went down.
    LinkDown(NodeAddr, u32),
}

/// Publish a binding of a local socket.
#[derive(Debug, Message)]
#[rtype(result = "Result<(), BindingError>")]
pub struct Publish(pub Publication);

/// Withdraw a binding of a local socket.
#[derive(Debug, Message)]
#[rtype(result = "Option<Publication>")]
pub struct Withdraw {
    /// Exact range.
    pub range: ServiceRange,
    /// Port.
    pub port: u32,
    /// Key.
    pub key: u32,
}

/// Ask for every binding, in `nametable show` order.
#[derive(Debug, Message)]
#[rtype(result = "Vec<Publication>")]
pub struct ShowTable;

/// Ask the name table for the counters of the name distribution.
#[derive(Debug, Message)]
#[rtype(result = "NameStats")]
pub struct NamesStatsQuery;

/// Counters of the node's name distribution.
#[derive(Debug, Clone, Copy, Default, MessageResponse)]
pub struct NameStats {
    /// What the name service applied, refused and purged.
    pub service: crate::name_distr::NameServiceStats,
    /// What the distributor dropped (malformed, old, over the queue, items in another
    /// node's name).
    pub distr: crate::name_distr::NameDistrStats,
}

/// Subscribe to a service range; events go to `events`.
#[derive(Debug, Message)]
#[rtype(result = "Result<SubId, SubError>")]
pub struct Subscribe {
    /// The subscription.
    pub sub: Subscription,
    /// Where its events go; dropping the receiver ends the subscription.
    pub events: mpsc::UnboundedSender<TopoEvent>,
}

/// A multicast from a local socket: to every node with a binding in the range (by replicast
/// or on the broadcast link, as the socket's method says) and every local socket bound in it.
/// Answered with the socket's updated method.
#[derive(Debug, Message)]
#[rtype(result = "Result<McastMethod, DgramError>")]
pub struct SendMcast {
    /// The MCAST_MSG.
    pub msg: BytesMut,
    /// Its range.
    pub range: ServiceRange,
    /// The socket's multicast method.
    pub method: McastMethod,
}

/// How the node reaches its name table actor.
#[derive(Clone)]
pub(crate) struct NamesHandle {
    pub from_peer: Recipient<FromPeer>,
    pub peer_state: Recipient<PeerState>,
    pub publish: Recipient<Publish>,
    pub withdraw: Recipient<Withdraw>,
    pub show: Recipient<ShowTable>,
    pub subscribe: Recipient<Subscribe>,
    pub mcast: Recipient<SendMcast>,
    pub stats: Recipient<NamesStatsQuery>,
}

impl NamesHandle {
    /// The handle of a name table actor.
    pub fn of<A>(a: Addr<A>) -> NamesHandle
    where
        A: Actor<Context = Context<A>>
            + Handler<FromPeer>
            + Handler<PeerState>
            + Handler<Publish>
            + Handler<Withdraw>
            + Handler<ShowTable>
            + Handler<Subscribe>
            + Handler<SendMcast>
            + Handler<NamesStatsQuery>,
    {
        NamesHandle {
            from_peer: a.clone().recipient(),
            peer_state: a.clone().recipient(),
            publish: a.clone().recipient(),
            withdraw: a.clone().recipient(),
            show: a.clone().recipient(),
            subscribe: a.clone().recipient(),
            mcast: a.clone().recipient(),
            stats: a.recipient(),
        }
    }
}
