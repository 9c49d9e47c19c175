//! The binding table (kernel `name_table.c`), a sans-IO core.
//!
//! Spec: tipc-protocol.md §8.1 (structure), §8.2 (anycast and secondary lookup), §8.3
//! (multicast lookup), §7.5 (limits).
//!
//! Structure, as the kernel's: per service type, a set of *range objects* keyed by their exact
//! `(lower, upper)`; overlapping ranges are separate objects. Each range object holds `all` (the
//! publications of every node) and `local` (this node's). Ranges are visited in the kernel's
//! rb-tree order: by `lower`, and among equal `lower`s the most recently created range first
//! (`tipc_service_create_range` sends an equal `lower` to the left).
//!
//! Kernel facts this table reproduces (6.1 `name_table.c`):
//! * a new publication goes to the **head** of `all` and `local` (`list_add`), so it is the next
//!   anycast pick;
//! * a duplicate is the same range object, the same key and the same node (the port is not
//!   compared, `tipc_service_insert_publ`); a withdrawal matches the range exactly, the key and
//!   the node (`tipc_service_remove_publ`), again not the port;
//! * anycast with domain 0 takes the first range containing the instance and rotates its `all`
//!   list (head to tail); with domain = own node, the first such range with local publications
//!   and rotates its `local` list; any other domain is deferred to that node.
//!
//! Every change is recorded as a [`TableEvent`] (drain with [`BindingTable::poll_event`]) with
//! the `first`/`last` flags the topology server needs for `TIPC_SUB_SERVICE`.
//!
//! Lookups take `&mut self` where they rotate; the anycast path allocates nothing. Range
//! iteration visits every range of the type whose `lower` is at most the sought upper bound
//! (the kernel prunes with an augmented tree; services have few ranges in practice).

use crate::addr::{
    RangeError, Scope, ServiceAddr, ServiceRange, SocketAddr, LINK_STATE, NODE_STATE,
};
use std::cmp::Reverse;
use std::collections::{BTreeMap, HashMap, VecDeque};
use tipc_transport::NodeAddr;

/// `TIPC_MAX_PUBL`: the kernel's limit on a node's publications.
pub const MAX_PUBL: u32 = 65535;
/// Publications of service types `>= 3` one node may hold: [`MAX_PUBL`] less the node-state
/// slot (spec §7.5). Types 0, 1 and 2 are not counted.
pub const MAX_USER_PUBL: u32 = MAX_PUBL - 1;

/// One binding: a socket bound to a service range, with scope and key (kernel
/// `struct publication`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Publication {
    /// The bound range.
    pub range: ServiceRange,
    /// Binding scope (received bindings are always [`Scope::Cluster`]).
    pub scope: Scope,
    /// Publishing node.
    pub node: NodeAddr,
    /// Publishing socket's port (0 for the node-state publication).
    pub port: u32,
    /// Publication key (opaque to other nodes).
    pub key: u32,
}

impl Publication {
    /// The node-state publication every node makes: `{0, own, own}`, cluster scope, port 0,
    /// key = own address (`net.c: tipc_net_finalize`).
    pub fn node_state(own: NodeAddr) -> Publication {
        Publication {
            range: ServiceRange::single(NODE_STATE, own),
            scope: Scope::Cluster,
            node: own,
            port: 0,
            key: own,
        }
    }

    /// The link-state publication `{2, peer, peer}` made per working link, node scope, with
    /// port = key = link id `(peer_bearer_id << 16) | bearer_id` (`node.c`).
    pub fn link_state(own: NodeAddr, peer: NodeAddr, link_id: u32) -> Publication {
        Publication {
            range: ServiceRange::single(LINK_STATE, peer),
            scope: Scope::Node,
            node: own,
            port: link_id,
            key: link_id,
        }
    }

    /// The socket address of the publisher.
    pub fn socket(&self) -> SocketAddr {
        SocketAddr {
            node: self.node,
            port: self.port,
        }
    }
}

/// Why a publication was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindingError {
    /// `lower > upper`: the [`RangeError`] of building the range (a [`ServiceRange`] cannot
    /// hold it, so [`BindingTable::publish`] never returns this itself).
    #[error("invalid range: lower {lower} > upper {upper}")]
    InvalidRange {
        /// Lower bound.
        lower: u32,
        /// Upper bound.
        upper: u32,
    },
    /// The same range object already holds a publication with this key from this node.
    #[error("duplicate binding")]
    Duplicate,
    /// The publishing node already holds [`MAX_USER_PUBL`] publications.
    #[error("publication limit reached")]
    LimitReached,
}

impl From<RangeError> for BindingError {
    fn from(e: RangeError) -> Self {
        BindingError::InvalidRange {
            lower: e.lower,
            upper: e.upper,
        }
    }
}

/// A change of the table, for service tracking (kernel `tipc_sub_report_overlap` calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableEvent {
    /// A publication was inserted.
    Published {
        /// The publication.
        publ: Publication,
        /// It is the first publication of its range object.
        first: bool,
    },
    /// A publication was removed (withdrawn or purged).
    Withdrawn {
        /// The publication.
        publ: Publication,
        /// It was the last publication of its range object.
        last: bool,
    },
}

/// Result of an anycast lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnycastResult {
    /// The chosen socket.
    Found(SocketAddr),
    /// The lookup must be done by this node: send there with `destport = 0`.
    Deferred(NodeAddr),
    /// No binding matches (`-EHOSTUNREACH`).
    NotFound,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    publ: Publication,
    /// Insertion order within the service (kernel `publ_cnt`), for subscription snapshots.
    id: u64,
}

#[derive(Debug)]
struct RangeObj {
    upper: u32,
    all: VecDeque<Entry>,
    local: VecDeque<Entry>,
}

/// Tree key: by `lower`, newest range first among equal `lower`s.
type RangeKey = (u32, Reverse<u64>);

#[derive(Debug, Default)]
struct Service {
    ranges: BTreeMap<RangeKey, RangeObj>,
    /// Exact `(lower, upper)` to the range object's creation number.
    index: HashMap<(u32, u32), u64>,
    next_range: u64,
    next_publ: u64,
}

impl Service {
    fn key_of(&self, lower: u32, upper: u32) -> Option<RangeKey> {
        self.index
            .get(&(lower, upper))
            .map(|&c| (lower, Reverse(c)))
    }

    /// Ranges overlapping `[lower, upper]` in tree order.
    fn overlapping(&self, lower: u32, upper: u32) -> impl Iterator<Item = (u32, &RangeObj)> {
        self.ranges
            .range(..=(upper, Reverse(0)))
            .filter(move |(_, r)| r.upper >= lower)
            .map(|(k, r)| (k.0, r))
    }
}

/// The node's binding table (sans-IO; see the module docs).
#[derive(Debug)]
pub struct BindingTable {
    own: NodeAddr,
    services: BTreeMap<u32, Service>,
    /// Counted publications (types >= 3) per publishing node.
    per_node: HashMap<NodeAddr, u32>,
    total: usize,
    events: VecDeque<TableEvent>,
}

fn counted(p: &Publication) -> bool {
    p.range.type_() > LINK_STATE
}

impl BindingTable {
    /// An empty table for node `own`. The node-state publication is not made here: publish
    /// [`Publication::node_state`] once the node address is set.
    pub fn new(own: NodeAddr) -> BindingTable {
        BindingTable {
            own,
            services: BTreeMap::new(),
            per_node: HashMap::new(),
            total: 0,
            events: VecDeque::new(),
        }
    }

    /// This node's address.
    pub fn own(&self) -> NodeAddr {
        self.own
    }

    /// Number of publications in the table.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Is the table empty?
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Insert a publication, local (`node == own`) or learned from another node. Records a
    /// [`TableEvent::Published`].
    pub fn publish(&mut self, p: Publication) -> Result<(), BindingError> {
        // `lower <= upper` holds by construction: an inverted range was refused as a
        // `RangeError` (`BindingError::InvalidRange`) where it was built.
        let (type_, lower, upper) = (p.range.type_(), p.range.lower(), p.range.upper());
        if counted(&p) && self.per_node.get(&p.node).copied().unwrap_or(0) >= MAX_USER_PUBL {
            return Err(BindingError::LimitReached);
        }
        let svc = self.services.entry(type_).or_default();
        let key = match svc.key_of(lower, upper) {
            Some(k) => k,
            None => {
                let c = svc.next_range;
                svc.next_range += 1;
                svc.index.insert((lower, upper), c);
                svc.ranges.insert(
                    (lower, Reverse(c)),
                    RangeObj {
                        upper,
                        all: VecDeque::new(),
                        local: VecDeque::new(),
                    },
                );
                (lower, Reverse(c))
            }
        };
        let id = svc.next_publ;
        // The index and the tree are kept in step, so this lookup cannot fail.
        let Some(r) = svc.ranges.get_mut(&key) else {
            return Err(BindingError::Duplicate);
        };
        if r.all
            .iter()
            .any(|e| e.publ.key == p.key && e.publ.node == p.node)
        {
            return Err(BindingError::Duplicate);
        }
        svc.next_publ += 1;
        let first = r.all.is_empty();
        let e = Entry { publ: p, id };
        if p.node == self.own {
            r.local.push_front(e);
        }
        r.all.push_front(e);
        if counted(&p) {
            *self.per_node.entry(p.node).or_insert(0) += 1;
        }
        self.total += 1;
        self.events
            .push_back(TableEvent::Published { publ: p, first });
        Ok(())
    }

    /// Remove the publication with exactly this range, this node and this key (the port is
    /// not compared, as in the kernel). Records a [`TableEvent::Withdrawn`].
    pub fn withdraw(
        &mut self,
        range: ServiceRange,
        node: NodeAddr,
        port: u32,
        key: u32,
    ) -> Option<Publication> {
        let _ = port;
        let svc = self.services.get_mut(&range.type_())?;
        let rk = svc.key_of(range.lower(), range.upper())?;
        let r = svc.ranges.get_mut(&rk)?;
        let i = r
            .all
            .iter()
            .position(|e| e.publ.key == key && e.publ.node == node)?;
        let e = r.all.remove(i)?;
        if let Some(j) = r
            .local
            .iter()
            .position(|l| l.publ.key == key && l.publ.node == node)
        {
            r.local.remove(j);
        }
        let last = r.all.is_empty();
        if last {
            svc.ranges.remove(&rk);
            svc.index.remove(&(range.lower(), range.upper()));
            if svc.ranges.is_empty() {
                self.services.remove(&range.type_());
            }
        }
        self.forget(&e.publ);
        self.events
            .push_back(TableEvent::Withdrawn { publ: e.publ, last });
        Some(e.publ)
    }

    fn forget(&mut self, p: &Publication) {
        self.total -= 1;
        if counted(p) {
            if let Some(c) = self.per_node.get_mut(&p.node) {
                *c -= 1;
                if *c == 0 {
                    self.per_node.remove(&p.node);
                }
            }
        }
    }

    /// Remove everything published by `node` (contact lost, spec §7.4), in table order.
    /// Records one [`TableEvent::Withdrawn`] per publication.
    pub fn purge_node(&mut self, node: NodeAddr) -> Vec<Publication> {
        let victims = self.bindings_of_node(node);
        for p in &victims {
            self.withdraw(p.range, p.node, p.port, p.key);
        }
        victims
    }

    /// Every publication of `node`, in table order.
    pub fn bindings_of_node(&self, node: NodeAddr) -> Vec<Publication> {
        self.iter().filter(|p| p.node == node).copied().collect()
    }

    /// Iterate in `nametable show` order: by type, ranges in tree order, then each range's
    /// publications in `all` order (as the kernel's netlink dump).
    pub fn iter(&self) -> impl Iterator<Item = &Publication> {
        self.services
            .values()
            .flat_map(|s| s.ranges.values())
            .flat_map(|r| r.all.iter().map(|e| &e.publ))
    }

    /// Anycast lookup (`tipc_nametbl_lookup_anycast`, 6.1 non-legacy mode). `domain` is the
    /// lookup node: 0 = round-robin over all nodes of the first range containing the instance;
    /// own = over the local publications of the first such range that has any; another node =
    /// [`AnycastResult::Deferred`]. Rotates the chosen list; allocates nothing.
    pub fn lookup_anycast(&mut self, sa: ServiceAddr, domain: NodeAddr) -> AnycastResult {
        if domain != 0 && domain != self.own {
            return AnycastResult::Deferred(domain);
        }
        let Some(svc) = self.services.get_mut(&sa.type_) else {
            return AnycastResult::NotFound;
        };
        let inst = sa.instance;
        for (_, r) in svc.ranges.range_mut(..=(inst, Reverse(0))) {
            if r.upper < inst {
                continue;
            }
            let list = if domain == self.own {
                &mut r.local
            } else {
                &mut r.all
            };
            let Some(e) = list.pop_front() else {
                continue;
            };
            list.push_back(e);
            return AnycastResult::Found(e.publ.socket());
        }
        AnycastResult::NotFound
    }

    /// Secondary lookup at a receiving node (`msg.c: tipc_msg_lookup_dest`): lookup scope
    /// [`Scope::Node`] looks at local bindings only, [`Scope::Cluster`] cluster-wide (may
    /// return another node's socket, to forward to).
    pub fn lookup_secondary(&mut self, sa: ServiceAddr, lookup_scope: Scope) -> Option<SocketAddr> {
        let domain = match lookup_scope {
            Scope::Node => self.own,
            Scope::Cluster => 0,
        };
        match self.lookup_anycast(sa, domain) {
            AnycastResult::Found(s) => Some(s),
            _ => None,
        }
    }

    /// Nodes with any publication (any scope) overlapping `range`
    /// (`tipc_nametbl_lookup_mcast_nodes`), appended to `out` sorted and deduplicated;
    /// `exclude_own` leaves this node out.
    pub fn lookup_mcast_nodes_into(
        &self,
        range: ServiceRange,
        exclude_own: bool,
        out: &mut Vec<NodeAddr>,
    ) {
        let start = out.len();
        if let Some(svc) = self.services.get(&range.type_()) {
            for (_, r) in svc.overlapping(range.lower(), range.upper()) {
                for e in &r.all {
                    let n = e.publ.node;
                    let skip = exclude_own && n == self.own;
                    if !skip && !out[start..].contains(&n) {
                        out.push(n);
                    }
                }
            }
        }
        out[start..].sort_unstable();
    }

    /// [`lookup_mcast_nodes_into`](Self::lookup_mcast_nodes_into) into a new vector.
    pub fn lookup_mcast_nodes(&self, range: ServiceRange, exclude_own: bool) -> Vec<NodeAddr> {
        let mut v = Vec::new();
        self.lookup_mcast_nodes_into(range, exclude_own, &mut v);
        v
    }

    /// Local ports with a binding overlapping `range` (`tipc_nametbl_lookup_mcast_sockets`),
    /// one per port, appended to `out` in table order. For a message from another node
    /// (`from_local == false`) only cluster-scope bindings match; for a locally originated one
    /// any scope does.
    pub fn lookup_mcast_local_ports_into(
        &self,
        range: ServiceRange,
        from_local: bool,
        out: &mut Vec<u32>,
    ) {
        let start = out.len();
        let Some(svc) = self.services.get(&range.type_()) else {
            return;
        };
        for (_, r) in svc.overlapping(range.lower(), range.upper()) {
            for e in &r.local {
                if (from_local || e.publ.scope == Scope::Cluster)
                    && !out[start..].contains(&e.publ.port)
                {
                    out.push(e.publ.port);
                }
            }
        }
    }

    /// [`lookup_mcast_local_ports_into`](Self::lookup_mcast_local_ports_into) into a new vector.
    pub fn lookup_mcast_local_ports(&self, range: ServiceRange, from_local: bool) -> Vec<u32> {
        let mut v = Vec::new();
        self.lookup_mcast_local_ports_into(range, from_local, &mut v);
        v
    }

    /// Local ports bound to service type `type_` (any instance) with exactly `scope`, one per
    /// port, appended to `out` in table order: the member sockets of a group on this node that
    /// a group broadcast or multicast goes to (`tipc_nametbl_mc_lookup` with `exact`).
    pub fn lookup_group_local_ports_into(&self, type_: u32, scope: Scope, out: &mut Vec<u32>) {
        let start = out.len();
        let Some(svc) = self.services.get(&type_) else {
            return;
        };
        for (_, r) in svc.overlapping(0, u32::MAX) {
            for e in &r.local {
                if e.publ.scope == scope && !out[start..].contains(&e.publ.port) {
                    out.push(e.publ.port);
                }
            }
        }
    }

    /// The members a group of `type_` and `scope` has now (`tipc_nametbl_build_group`):
    /// every binding of the type with exactly that scope, as `(socket, instance)` in table
    /// order. Bindings of other nodes are cluster scope, so a node-scope group finds only
    /// this node's members.
    pub fn group_members(&self, type_: u32, scope: Scope) -> Vec<(SocketAddr, u32)> {
        let mut v = Vec::new();
        if let Some(svc) = self.services.get(&type_) {
            for (_, r) in svc.overlapping(0, u32::MAX) {
                for e in &r.all {
                    if e.publ.scope == scope {
                        v.push((e.publ.socket(), e.publ.range.lower()));
                    }
                }
            }
        }
        v
    }

    /// The publications a new subscription to `range` reports at once
    /// (`tipc_service_subscribe`): with `per_port`, every overlapping publication; otherwise
    /// the oldest publication of each overlapping range object. Sorted oldest first.
    pub fn subscription_snapshot(&self, range: ServiceRange, per_port: bool) -> Vec<Publication> {
        let Some(svc) = self.services.get(&range.type_()) else {
            return Vec::new();
        };
        let mut v: Vec<Entry> = Vec::new();
        for (_, r) in svc.overlapping(range.lower(), range.upper()) {
            if per_port {
                v.extend(r.all.iter().copied());
            } else if let Some(e) = r.all.iter().min_by_key(|e| e.id) {
                v.push(*e);
            }
        }
        v.sort_by_key(|e| e.id);
        v.into_iter().map(|e| e.publ).collect()
    }

    /// The next recorded change, oldest first.
    ///
    /// Call repeatedly until it returns `None`, after every call that changes the table:
    /// [`BindingTable::publish`], [`BindingTable::withdraw`] and [`BindingTable::purge_node`].
    /// The queue is not otherwise bounded.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<TableEvent> {
        self.events.pop_front()
    }
}
