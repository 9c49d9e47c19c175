//! Service tracking: the node's topology subscription manager, sans-IO (kernel `topsrv.c`,
//! `subscr.c`, `subscr.h` and the subscription half of `name_table.c`:
//! `tipc_service_subscribe`, `tipc_sub_report_overlap`), spec §8.4.
//!
//! A client subscribes to a [`ServiceRange`]; the [`Topology`] core then reports every change of
//! the binding table that overlaps it (`max(lowers) <= min(uppers)`):
//!
//! * with [`Filter::ports`] (`TIPC_SUB_PORTS`), one event per publication and withdrawal;
//! * otherwise (`TIPC_SUB_SERVICE`), one event when a range object of the table gets its first
//!   publication and one when it loses its last;
//! * `found_lower`/`found_upper` are always the publication's whole range, never clipped to the
//!   subscription;
//! * on subscribe, the existing matches are reported as PUBLISHED events (every publication, or
//!   the oldest one of each range object), oldest first;
//! * after the timeout a TIMEOUT event (found = the subscribed range, port 0) is sent and the
//!   subscription is deleted.
//!
//! The core does no I/O and reads no clock. Inputs: [`Topology::subscribe`] (Rust API),
//! [`Topology::handle_subscr`] (the kernel's 28-byte `tipc_subscr` from a socket client or
//! `tipcctl subscribe`), [`Topology::cancel`], [`Topology::client_gone`],
//! [`Topology::handle_published`], [`Topology::handle_withdrawn`], [`Topology::handle_timeout`].
//! Outputs: [`Topology::poll_event`] (drain after every input) and [`Topology::poll_timeout`]
//! (re-arm one timer after every input). Every input taking `now` first expires the
//! subscriptions whose deadline has passed, so a subscription never reports a change that
//! happened after its timeout.
//!
//! The wire structs [`SubscrMsg`] (28 bytes) and [`EventMsg`] (48 bytes) implement the kernel's
//! byte-order quirk (`subscr.h: tipc_sub_read`, `tipc_evt_write`): a subscriber writes in its own
//! host order; if `filter & 0x7` read in our order is 0 every field is byte-swapped, and events
//! go back in the subscriber's order.
//!
//! Node and link state are visible through the binding table's type 0 ([`NODE_STATE`]) and
//! type 2 ([`LINK_STATE`]) publications:
//!
//! ```
//! use std::time::Instant;
//! use tipc_actors::addr::{ServiceRange, NODE_STATE};
//! use tipc_actors::topsrv::{ClientId, EventKind, PubInfo, Subscription, Topology};
//!
//! let now = Instant::now();
//! let mut topo = Topology::new();
//! let all_nodes = ServiceRange::new(NODE_STATE, 0, u32::MAX).unwrap();
//! let sub = topo
//!     .subscribe(now, Subscription::service(all_nodes), ClientId(1), std::iter::empty::<PubInfo>())
//!     .unwrap();
//!
//! // Node 0x1001 came up: the binding table publishes {0, 0x1001, 0x1001}, port 0.
//! let up = PubInfo {
//!     range: ServiceRange::single(NODE_STATE, 0x1001),
//!     node: 0x1001,
//!     port: 0,
//!     first_of_range: true,
//! };
//! topo.handle_published(now, &up);
//! let (client, ev) = topo.poll_event().unwrap();
//! assert_eq!((client, ev.kind, ev.found_lower, ev.sub_id), (ClientId(1), EventKind::Published, 0x1001, sub));
//!
//! // Node 0x1001 went down: WITHDRAWN.
//! topo.handle_withdrawn(now, &up);
//! assert_eq!(topo.poll_event().unwrap().1.kind, EventKind::Withdrawn);
//! ```
//!
//! [`NODE_STATE`]: crate::addr::NODE_STATE
//! [`LINK_STATE`]: crate::addr::LINK_STATE

use crate::addr::{RangeError, ServiceRange, SocketAddr};
use std::borrow::Borrow;
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};
use tipc_transport::NodeAddr;

/// Most subscriptions per node (`TIPC_MAX_SUBSCR`); one more is refused.
pub const MAX_SUBSCRIPTIONS: usize = 65535;
/// `timeout` value meaning "never" (`TIPC_WAIT_FOREVER`).
pub const WAIT_FOREVER: u32 = 0xFFFF_FFFF;
/// Filter bit: an event for every matching publication (`TIPC_SUB_PORTS`).
pub const SUB_PORTS: u32 = 0x01;
/// Filter bit: events only at a range object's first publication and last withdrawal
/// (`TIPC_SUB_SERVICE`).
pub const SUB_SERVICE: u32 = 0x02;
/// Filter bit: cancel the subscription whose bytes equal this one without the bit
/// (`TIPC_SUB_CANCEL`).
pub const SUB_CANCEL: u32 = 0x04;
/// Filter bit (kernel-internal): no initial events (`TIPC_SUB_NO_STATUS`).
pub const SUB_NO_STATUS: u32 = 0x80;
/// The bits that detect the subscriber's byte order (`TIPC_FILTER_MASK`).
const FILTER_MASK: u32 = SUB_PORTS | SUB_SERVICE | SUB_CANCEL;

/// Identifies a subscriber (one connection to the topology service, or one API user).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

/// Identifies one subscription; assigned by [`Topology`], never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubId(pub u64);

/// Subscription filter (`tipc_subscr.filter` without the cancel bit).
///
/// If neither `ports` nor `service` is set the kernel accepts the subscription and treats it as
/// `service`; so do we. Both set is refused ([`SubError::PortsAndService`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Filter {
    /// `TIPC_SUB_PORTS`: an event per publication and withdrawal.
    pub ports: bool,
    /// `TIPC_SUB_SERVICE`: an event per range object's first publication and last withdrawal.
    pub service: bool,
    /// `TIPC_SUB_NO_STATUS` (0x80): no initial events for existing publications.
    pub no_status: bool,
    /// Any other bits the subscriber set (e.g. the kernel-internal scope bits 0x20/0x40): kept
    /// only to be echoed back verbatim, otherwise ignored. Bits 24..=26 (the byte-swapped image
    /// of 0x7) make the subscriber's byte order undetectable, as in the kernel.
    pub other: u32,
}

impl Filter {
    /// Not both PORTS and SERVICE (`tipc_sub_subscribe`).
    fn validate(&self) -> Result<(), SubError> {
        if self.ports && self.service {
            return Err(SubError::PortsAndService);
        }
        Ok(())
    }

    /// `TIPC_SUB_PORTS`.
    pub const PORTS: Filter = Filter {
        ports: true,
        service: false,
        no_status: false,
        other: 0,
    };
    /// `TIPC_SUB_SERVICE`.
    pub const SERVICE: Filter = Filter {
        ports: false,
        service: true,
        no_status: false,
        other: 0,
    };

    /// From the wire value; the cancel bit is dropped.
    pub fn from_bits(bits: u32) -> Filter {
        Filter {
            ports: bits & SUB_PORTS != 0,
            service: bits & SUB_SERVICE != 0,
            no_status: bits & SUB_NO_STATUS != 0,
            other: bits & !(FILTER_MASK | SUB_NO_STATUS),
        }
    }

    /// The wire value (without the cancel bit).
    pub fn bits(&self) -> u32 {
        let mut b = self.other & !(FILTER_MASK | SUB_NO_STATUS);
        if self.ports {
            b |= SUB_PORTS;
        }
        if self.service {
            b |= SUB_SERVICE;
        }
        if self.no_status {
            b |= SUB_NO_STATUS;
        }
        b
    }
}

/// A subscription (`struct tipc_subscr` without the cancel bit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Subscription {
    /// The tracked range of one service type.
    pub range: ServiceRange,
    /// Lifetime; `None` is `TIPC_WAIT_FOREVER`. On the wire it is whole milliseconds, at most
    /// `0xFFFF_FFFE` (longer values are clamped when encoded).
    pub timeout: Option<Duration>,
    /// Which events.
    pub filter: Filter,
    /// Opaque, echoed back in every event (`usr_handle`).
    pub handle: [u8; 8],
}

impl Subscription {
    /// A `TIPC_SUB_PORTS` subscription without timeout.
    pub fn ports(range: ServiceRange) -> Self {
        Subscription {
            range,
            timeout: None,
            filter: Filter::PORTS,
            handle: [0; 8],
        }
    }

    /// A `TIPC_SUB_SERVICE` subscription without timeout.
    pub fn service(range: ServiceRange) -> Self {
        Subscription {
            filter: Filter::SERVICE,
            ..Subscription::ports(range)
        }
    }

    /// The same with a timeout.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Subscription {
            timeout: Some(timeout),
            ..self
        }
    }

    /// The same with a user handle.
    pub fn with_handle(self, handle: [u8; 8]) -> Self {
        Subscription { handle, ..self }
    }

    /// The kernel's validity rules (`tipc_sub_subscribe`): not both PORTS and SERVICE. The
    /// other rule, `lower <= upper`, holds by construction of the [`ServiceRange`] (bounds
    /// given as numbers are refused where the range is built, `SubError::from(RangeError)`).
    pub fn validate(&self) -> Result<(), SubError> {
        self.filter.validate()
    }

    fn timeout_ms(&self) -> u32 {
        match self.timeout {
            None => WAIT_FOREVER,
            Some(d) => d.as_millis().min(u128::from(WAIT_FOREVER - 1)) as u32,
        }
    }

    fn overlaps(&self, r: &ServiceRange) -> bool {
        self.range.type_() == r.type_() && self.range.overlaps(r.lower(), r.upper())
    }
}

/// A publication as the binding table reports it to the topology core.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PubInfo {
    /// The published range.
    pub range: ServiceRange,
    /// Publishing node.
    pub node: NodeAddr,
    /// Publishing port (0 for node-state publications; the link id for link-state ones).
    pub port: u32,
    /// For [`Topology::handle_published`]: this is the range object's first publication (it was
    /// empty). For [`Topology::handle_withdrawn`]: this was its last one (it is now empty). Not read
    /// for the existing publications given to [`Topology::subscribe`].
    pub first_of_range: bool,
}

/// Kind of a topology event (`tipc_event.event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// `TIPC_PUBLISHED` (1).
    Published = 1,
    /// `TIPC_WITHDRAWN` (2).
    Withdrawn = 2,
    /// `TIPC_SUBSCR_TIMEOUT` (3): the subscription has been deleted.
    Timeout = 3,
}

impl EventKind {
    /// From the wire value.
    pub fn from_u32(v: u32) -> Option<EventKind> {
        match v {
            1 => Some(EventKind::Published),
            2 => Some(EventKind::Withdrawn),
            3 => Some(EventKind::Timeout),
            _ => None,
        }
    }
}

/// An event for one subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopoEvent {
    /// What happened.
    pub kind: EventKind,
    /// Lower bound of the publication's whole range (the subscribed range for TIMEOUT).
    pub found_lower: u32,
    /// Upper bound of the publication's whole range (the subscribed range for TIMEOUT).
    pub found_upper: u32,
    /// The publishing socket (`{0, 0}` for TIMEOUT).
    pub port: SocketAddr,
    /// The subscription, verbatim.
    pub sub: Subscription,
    /// Its id.
    pub sub_id: SubId,
    /// The subscriber's byte order (native for API subscriptions).
    pub order: ByteOrder,
}

impl TopoEvent {
    /// The 48-byte `tipc_event`, in the subscriber's byte order.
    pub fn to_bytes(&self) -> [u8; EventMsg::LEN] {
        EventMsg {
            kind: self.kind,
            found_lower: self.found_lower,
            found_upper: self.found_upper,
            port: self.port,
            sub: self.sub,
            order: self.order,
        }
        .emit()
    }
}

/// Why a subscription request was refused. On the kernel's socket interface any of these closes
/// the subscriber's connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SubError {
    /// `TIPC_SUB_PORTS` and `TIPC_SUB_SERVICE` both set.
    #[error("subscription sets both PORTS and SERVICE")]
    PortsAndService,
    /// `lower > upper`: from [`Topology::handle_subscr`], or the [`RangeError`] of building the
    /// range from numbers (a [`ServiceRange`] cannot hold it).
    #[error("subscription range has lower > upper")]
    InvalidRange,
    /// [`MAX_SUBSCRIPTIONS`] reached.
    #[error("subscription limit ({MAX_SUBSCRIPTIONS}) reached")]
    TooManySubscriptions,
    /// The node is stopping.
    #[error("node stopped")]
    Stopped,
    /// The message is not a `tipc_subscr`.
    #[error("malformed subscription message: {0}")]
    Wire(#[from] TopoWireError),
}

impl From<RangeError> for SubError {
    fn from(_: RangeError) -> Self {
        SubError::InvalidRange
    }
}

/// Malformed topology wire message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TopoWireError {
    /// Wrong length.
    #[error("length {got}, expected {expected}")]
    BadLength {
        /// Required length.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// Unknown `tipc_event.event` value.
    #[error("unknown event kind {0}")]
    BadEventKind(u32),
    /// The subscription's range has `lower > upper` (no [`Subscription`] can hold it;
    /// [`Topology::handle_subscr`] refuses such a request as [`SubError::InvalidRange`]).
    #[error("subscription range: {0}")]
    InvalidRange(#[from] RangeError),
}

/// Byte order of a subscriber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// Little-endian.
    Little,
    /// Big-endian.
    Big,
}

impl ByteOrder {
    /// This host's order (the order the kernel's macros call "own").
    pub fn native() -> ByteOrder {
        if cfg!(target_endian = "big") {
            ByteOrder::Big
        } else {
            ByteOrder::Little
        }
    }

    /// The other order.
    pub fn swapped(self) -> ByteOrder {
        match self {
            ByteOrder::Little => ByteOrder::Big,
            ByteOrder::Big => ByteOrder::Little,
        }
    }

    /// The order of a message whose raw `filter` field is `raw`: native unless
    /// `filter & 0x7` read natively is 0 (`tipc_sub_read`).
    fn detect(raw: [u8; 4]) -> ByteOrder {
        if u32::from_ne_bytes(raw) & FILTER_MASK != 0 {
            ByteOrder::native()
        } else {
            ByteOrder::native().swapped()
        }
    }

    fn get(self, b: &[u8], off: usize) -> u32 {
        let mut w = [0u8; 4];
        if let Some(s) = b.get(off..off + 4) {
            w.copy_from_slice(s);
        }
        match self {
            ByteOrder::Little => u32::from_le_bytes(w),
            ByteOrder::Big => u32::from_be_bytes(w),
        }
    }

    fn put(self, b: &mut [u8], off: usize, v: u32) {
        let w = match self {
            ByteOrder::Little => v.to_le_bytes(),
            ByteOrder::Big => v.to_be_bytes(),
        };
        b[off..off + 4].copy_from_slice(&w);
    }
}

/// The 28-byte `struct tipc_subscr` a subscriber sends (spec §8.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscrMsg {
    /// The subscription.
    pub sub: Subscription,
    /// `TIPC_SUB_CANCEL` was set: a cancel request.
    pub cancel: bool,
    /// The subscriber's byte order.
    pub order: ByteOrder,
}

impl SubscrMsg {
    /// Wire length.
    pub const LEN: usize = 28;

    /// Parse, detecting the byte order from the filter. A range with `lower > upper` is
    /// [`TopoWireError::InvalidRange`].
    pub fn parse(b: &[u8]) -> Result<SubscrMsg, TopoWireError> {
        let raw = RawSubscr::parse(b)?;
        Ok(SubscrMsg {
            sub: raw.subscription()?,
            cancel: raw.cancel,
            order: raw.order,
        })
    }

    /// Emit in `self.order`.
    pub fn emit(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        let o = self.order;
        let s = &self.sub;
        o.put(&mut b, 0, s.range.type_());
        o.put(&mut b, 4, s.range.lower());
        o.put(&mut b, 8, s.range.upper());
        o.put(&mut b, 12, s.timeout_ms());
        let cancel = if self.cancel { SUB_CANCEL } else { 0 };
        o.put(&mut b, 16, s.filter.bits() | cancel);
        b[20..28].copy_from_slice(&s.handle);
        b
    }
}

/// A `tipc_subscr` as read, its range's bounds not yet checked: [`Topology::handle_subscr`]
/// refuses `lower > upper` in the kernel's order of checks.
struct RawSubscr {
    type_: u32,
    lower: u32,
    upper: u32,
    timeout: Option<Duration>,
    filter: Filter,
    handle: [u8; 8],
    cancel: bool,
    order: ByteOrder,
}

impl RawSubscr {
    fn parse(b: &[u8]) -> Result<RawSubscr, TopoWireError> {
        if b.len() != SubscrMsg::LEN {
            return Err(TopoWireError::BadLength {
                expected: SubscrMsg::LEN,
                got: b.len(),
            });
        }
        let order = ByteOrder::detect([b[16], b[17], b[18], b[19]]);
        let filter = order.get(b, 16);
        let timeout = order.get(b, 12);
        let mut handle = [0u8; 8];
        handle.copy_from_slice(&b[20..28]);
        Ok(RawSubscr {
            type_: order.get(b, 0),
            lower: order.get(b, 4),
            upper: order.get(b, 8),
            timeout: (timeout != WAIT_FOREVER).then(|| Duration::from_millis(u64::from(timeout))),
            filter: Filter::from_bits(filter),
            handle,
            cancel: filter & SUB_CANCEL != 0,
            order,
        })
    }

    fn subscription(&self) -> Result<Subscription, RangeError> {
        Ok(Subscription {
            range: ServiceRange::new(self.type_, self.lower, self.upper)?,
            timeout: self.timeout,
            filter: self.filter,
            handle: self.handle,
        })
    }
}

/// The 48-byte `struct tipc_event` the topology service sends (spec §8.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EventMsg {
    /// What happened.
    pub kind: EventKind,
    /// `found_lower`.
    pub found_lower: u32,
    /// `found_upper`.
    pub found_upper: u32,
    /// `port` (`ref` at offset 12, `node` at 16).
    pub port: SocketAddr,
    /// The subscription (offset 20, 28 bytes).
    pub sub: Subscription,
    /// Byte order of every field (the subscriber's).
    pub order: ByteOrder,
}

impl EventMsg {
    /// Wire length.
    pub const LEN: usize = 48;

    /// Parse; the byte order is detected from the embedded subscription's filter, as the
    /// kernel's `tipc_evt_write` chose it.
    pub fn parse(b: &[u8]) -> Result<EventMsg, TopoWireError> {
        if b.len() != Self::LEN {
            return Err(TopoWireError::BadLength {
                expected: Self::LEN,
                got: b.len(),
            });
        }
        let s = SubscrMsg::parse(&b[20..48])?;
        let order = s.order;
        let kind = order.get(b, 0);
        Ok(EventMsg {
            kind: EventKind::from_u32(kind).ok_or(TopoWireError::BadEventKind(kind))?,
            found_lower: order.get(b, 4),
            found_upper: order.get(b, 8),
            port: SocketAddr {
                port: order.get(b, 12),
                node: order.get(b, 16),
            },
            sub: s.sub,
            order,
        })
    }

    /// Emit in `self.order`.
    pub fn emit(&self) -> [u8; Self::LEN] {
        let mut b = [0u8; Self::LEN];
        let o = self.order;
        o.put(&mut b, 0, self.kind as u32);
        o.put(&mut b, 4, self.found_lower);
        o.put(&mut b, 8, self.found_upper);
        o.put(&mut b, 12, self.port.port);
        o.put(&mut b, 16, self.port.node);
        let s = SubscrMsg {
            sub: self.sub,
            cancel: false,
            order: o,
        };
        b[20..48].copy_from_slice(&s.emit());
        b
    }
}

/// What a `tipc_subscr` message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscrOutcome {
    /// A new subscription.
    Subscribed(SubId),
    /// A cancel request; the subscription it removed, if one matched.
    Cancelled(Option<SubId>),
}

/// Counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TopoStats {
    /// Subscriptions created.
    pub subscribed: u64,
    /// Subscription requests refused (invalid, over the limit, or malformed messages).
    pub rejected: u64,
    /// Subscriptions cancelled (by id or by bytes).
    pub cancelled: u64,
    /// Subscriptions that timed out.
    pub timed_out: u64,
    /// Events produced.
    pub events: u64,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    sub: Subscription,
    client: ClientId,
    order: ByteOrder,
    deadline: Option<Instant>,
}

/// The node's subscription manager (kernel `topsrv` + `subscr`), sans-IO. See the module docs.
#[derive(Debug, Default)]
pub struct Topology {
    subs: HashMap<SubId, Entry>,
    by_type: HashMap<u32, BTreeSet<SubId>>,
    by_client: HashMap<ClientId, BTreeSet<SubId>>,
    timers: BTreeSet<(Instant, SubId)>,
    events: VecDeque<(ClientId, TopoEvent)>,
    next_id: u64,
    stats: TopoStats,
}

impl Topology {
    /// An empty manager.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of live subscriptions.
    pub fn len(&self) -> usize {
        self.subs.len()
    }

    /// No live subscriptions?
    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// Counters.
    pub fn stats(&self) -> TopoStats {
        self.stats
    }

    /// A live subscription and its owner.
    pub fn get(&self, id: SubId) -> Option<(ClientId, &Subscription)> {
        self.subs.get(&id).map(|e| (e.client, &e.sub))
    }

    /// The live subscriptions of `client`, oldest first.
    pub fn subscriptions_of(&self, client: ClientId) -> impl Iterator<Item = SubId> + '_ {
        self.by_client
            .get(&client)
            .into_iter()
            .flat_map(|s| s.iter().copied())
    }

    /// Subscribe (Rust API; events in native byte order).
    ///
    /// `existing` must yield the binding table's current publications, **oldest first**
    /// (publications of other types are skipped; their `first_of_range` is not read: the oldest
    /// publication of each range object is taken as its first). Initial PUBLISHED events for
    /// the overlapping ones are queued before this returns, unless [`Filter::no_status`].
    ///
    /// The deadline is `now + timeout` (a timeout too large for `Instant` never expires).
    /// An error leaves every other subscription alone.
    pub fn subscribe<I>(
        &mut self,
        now: Instant,
        sub: Subscription,
        client: ClientId,
        existing: I,
    ) -> Result<SubId, SubError>
    where
        I: IntoIterator,
        I::Item: Borrow<PubInfo>,
    {
        self.subscribe_in_order(now, sub, ByteOrder::native(), client, existing)
    }

    /// Handle one message of the kernel's socket interface: a 28-byte `tipc_subscr` from
    /// `client`, a subscription or a cancel request (`topsrv.c: tipc_conn_rcv_sub`).
    ///
    /// A cancel removes the newest subscription of `client` whose 28 bytes equal the request's
    /// with the cancel bit cleared; no event is sent for it.
    ///
    /// On `Err` the kernel closes the connection: this has already removed all of `client`'s
    /// subscriptions (and their queued events); the caller closes the connection.
    /// `existing` is as for [`Topology::subscribe`].
    pub fn handle_subscr<I>(
        &mut self,
        now: Instant,
        client: ClientId,
        msg: &[u8],
        existing: I,
    ) -> Result<SubscrOutcome, SubError>
    where
        I: IntoIterator,
        I::Item: Borrow<PubInfo>,
    {
        let raw = match RawSubscr::parse(msg) {
            Ok(r) => r,
            Err(e) => {
                self.stats.rejected += 1;
                self.client_gone(client);
                return Err(e.into());
            }
        };
        let req = match raw.subscription() {
            Ok(sub) => SubscrMsg {
                sub,
                cancel: raw.cancel,
                order: raw.order,
            },
            // No subscription holds `lower > upper`: a cancel finds nothing.
            Err(_) if raw.cancel => {
                self.expire(now);
                return Ok(SubscrOutcome::Cancelled(None));
            }
            // Refused after the checks that come first for a valid range.
            Err(e) => {
                let err = match self.admit(now, raw.filter) {
                    Err(err) => err,
                    Ok(()) => {
                        self.stats.rejected += 1;
                        e.into()
                    }
                };
                self.client_gone(client);
                return Err(err);
            }
        };
        if req.cancel {
            self.expire(now);
            let want = SubscrMsg {
                cancel: false,
                ..req
            }
            .emit();
            let found = self.subscriptions_of(client).collect::<Vec<_>>();
            let hit = found.into_iter().rev().find(|id| {
                self.subs.get(id).is_some_and(|e| {
                    SubscrMsg {
                        sub: e.sub,
                        cancel: false,
                        order: e.order,
                    }
                    .emit()
                        == want
                })
            });
            if let Some(id) = hit {
                self.remove(id);
                self.stats.cancelled += 1;
            }
            return Ok(SubscrOutcome::Cancelled(hit));
        }
        match self.subscribe_in_order(now, req.sub, req.order, client, existing) {
            Ok(id) => Ok(SubscrOutcome::Subscribed(id)),
            Err(e) => {
                self.client_gone(client);
                Err(e)
            }
        }
    }

    fn subscribe_in_order<I>(
        &mut self,
        now: Instant,
        sub: Subscription,
        order: ByteOrder,
        client: ClientId,
        existing: I,
    ) -> Result<SubId, SubError>
    where
        I: IntoIterator,
        I::Item: Borrow<PubInfo>,
    {
        self.admit(now, sub.filter)?;
        let id = SubId(self.next_id);
        self.next_id += 1;
        let deadline = sub.timeout.and_then(|t| now.checked_add(t));
        let entry = Entry {
            sub,
            client,
            order,
            deadline,
        };
        if !sub.filter.no_status {
            let mut seen_ranges = HashSet::new();
            for p in existing {
                let p = p.borrow();
                if !sub.overlaps(&p.range) {
                    continue;
                }
                // Not PORTS: only the oldest publication of each range object.
                if !sub.filter.ports && !seen_ranges.insert((p.range.lower(), p.range.upper())) {
                    continue;
                }
                self.push(id, &entry, EventKind::Published, p);
            }
        }
        self.subs.insert(id, entry);
        self.by_type
            .entry(sub.range.type_())
            .or_default()
            .insert(id);
        self.by_client.entry(client).or_default().insert(id);
        if let Some(d) = deadline {
            self.timers.insert((d, id));
        }
        self.stats.subscribed += 1;
        Ok(id)
    }

    /// Expire, then the checks of a new subscription in the kernel's order (the limit, then
    /// [`Subscription::validate`]); a refusal is counted.
    fn admit(&mut self, now: Instant, filter: Filter) -> Result<(), SubError> {
        self.expire(now);
        if self.subs.len() >= MAX_SUBSCRIPTIONS {
            self.stats.rejected += 1;
            return Err(SubError::TooManySubscriptions);
        }
        if let Err(e) = filter.validate() {
            self.stats.rejected += 1;
            return Err(e);
        }
        Ok(())
    }

    /// Cancel a subscription of `client` (no event). Returns whether it existed.
    pub fn cancel(&mut self, client: ClientId, id: SubId) -> bool {
        if self.subs.get(&id).is_some_and(|e| e.client == client) {
            self.remove(id);
            self.stats.cancelled += 1;
            true
        } else {
            false
        }
    }

    /// `client` disconnected: delete all its subscriptions and drop its queued events.
    /// Returns how many subscriptions were deleted.
    pub fn client_gone(&mut self, client: ClientId) -> usize {
        let ids = self.by_client.remove(&client).unwrap_or_default();
        for id in &ids {
            self.remove(*id);
        }
        self.events.retain(|(c, _)| *c != client);
        ids.len()
    }

    /// The binding table inserted `p` (`p.first_of_range`: its range object was empty).
    pub fn handle_published(&mut self, now: Instant, p: &PubInfo) {
        self.report(now, p, EventKind::Published);
    }

    /// The binding table removed `p` (`p.first_of_range`: its range object is now empty).
    pub fn handle_withdrawn(&mut self, now: Instant, p: &PubInfo) {
        self.report(now, p, EventKind::Withdrawn);
    }

    /// The earliest subscription deadline: call [`Topology::handle_timeout`] at (or after) that
    /// instant; `None` while no subscription has a timeout.
    ///
    /// The value may change after every input ([`Topology::subscribe`],
    /// [`Topology::handle_subscr`], [`Topology::handle_published`],
    /// [`Topology::handle_withdrawn`], [`Topology::handle_timeout`]) and after
    /// [`Topology::cancel`] and [`Topology::client_gone`]: call it again after each and re-arm
    /// the caller's one timer to it.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Expire every subscription whose deadline is `<= now`: a TIMEOUT event each, then it is
    /// deleted. Drain [`Topology::poll_event`] afterwards.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire(now);
    }

    /// The next event and its subscriber, in order.
    ///
    /// Call repeatedly until it returns `None`, after every input: [`Topology::subscribe`],
    /// [`Topology::handle_subscr`], [`Topology::handle_published`],
    /// [`Topology::handle_withdrawn`] and [`Topology::handle_timeout`] (each first expires
    /// what is due). [`Topology::cancel`] and [`Topology::client_gone`] queue nothing; the
    /// latter drops the client's queued events.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<(ClientId, TopoEvent)> {
        self.events.pop_front()
    }

    fn expire(&mut self, now: Instant) {
        while let Some(&(t, id)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            if let Some(e) = self.subs.get(&id).copied() {
                let ev = TopoEvent {
                    kind: EventKind::Timeout,
                    found_lower: e.sub.range.lower(),
                    found_upper: e.sub.range.upper(),
                    port: SocketAddr { node: 0, port: 0 },
                    sub: e.sub,
                    sub_id: id,
                    order: e.order,
                };
                self.events.push_back((e.client, ev));
                self.stats.events += 1;
                self.stats.timed_out += 1;
                self.remove(id);
            }
        }
    }

    fn report(&mut self, now: Instant, p: &PubInfo, kind: EventKind) {
        self.expire(now);
        let Some(ids) = self.by_type.get(&p.range.type_()) else {
            return;
        };
        // The kernel keeps a service's subscriptions newest first (`list_add`).
        let ids: Vec<SubId> = ids.iter().rev().copied().collect();
        for id in ids {
            let Some(e) = self.subs.get(&id) else {
                continue;
            };
            if !e.sub.overlaps(&p.range) {
                continue;
            }
            if !e.sub.filter.ports && !p.first_of_range {
                continue;
            }
            let e = *e;
            self.push(id, &e, kind, p);
        }
    }

    fn push(&mut self, id: SubId, e: &Entry, kind: EventKind, p: &PubInfo) {
        let ev = TopoEvent {
            kind,
            found_lower: p.range.lower(),
            found_upper: p.range.upper(),
            port: SocketAddr {
                node: p.node,
                port: p.port,
            },
            sub: e.sub,
            sub_id: id,
            order: e.order,
        };
        self.events.push_back((e.client, ev));
        self.stats.events += 1;
    }

    fn remove(&mut self, id: SubId) {
        let Some(e) = self.subs.remove(&id) else {
            return;
        };
        if let Some(set) = self.by_type.get_mut(&e.sub.range.type_()) {
            set.remove(&id);
            if set.is_empty() {
                self.by_type.remove(&e.sub.range.type_());
            }
        }
        if let Some(set) = self.by_client.get_mut(&e.client) {
            set.remove(&id);
            if set.is_empty() {
                self.by_client.remove(&e.client);
            }
        }
        if let Some(d) = e.deadline {
            self.timers.remove(&(d, id));
        }
    }
}
