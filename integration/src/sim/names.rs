//! The name applications (invariants 5 and 6): bindings published and withdrawn at the
//! nodes, binding-reference messages (a data message naming one of its sender's bindings,
//! sent after the binding was published) checked at delivery against the receiver's table,
//! and the convergence of every node's view of every other node's bindings.

use super::{Sim, DIRECT_MSG, REF_LEN, REF_MAGIC, REF_PORT_BASE};
use bytes::BytesMut;
use tipc_actors::addr::{Scope, ServiceRange};
use tipc_actors::name_table::{BindingError, Publication};
use tipc_transport::link::SendError;
use tipc_transport::wire::{user, Header, BASIC_H_SIZE};

/// The (range, port, key) a reference message names.
type RefBinding = (ServiceRange, u32, u32);

/// What became of a binding-reference message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefState {
    /// Accepted by the sender's link, not yet delivered.
    Sent,
    /// Delivered (once).
    Delivered,
    /// Reported purged by the sender's link (a purged message may still be delivered once).
    Purged,
    /// Its sender crashed before it was delivered.
    Lost,
}

/// A data message that names one of its sender's bindings (publish-before-data traffic).
#[derive(Debug, Clone, Copy)]
pub struct RefMsg {
    /// Sending node.
    pub src: usize,
    /// Receiving node.
    pub dst: usize,
    /// The binding it refers to (published at `src` before it was sent).
    pub publ: Publication,
    /// Its fate so far.
    pub state: RefState,
}

/// Why a name command failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameCmdError {
    /// The node is crashed.
    NodeDown,
    /// [`super::SimConfig::names`] is off.
    Disabled,
    /// The binding table refused.
    Binding(BindingError),
}

impl Sim {
    // ------------------------------------------------------------------ names

    /// Node `node` binds `port` to `range` with cluster scope; the binding goes to every up
    /// peer as a single update (and to later peers in their bulk). The key is a fresh number
    /// of this node instance.
    pub fn publish(
        &mut self,
        node: usize,
        range: ServiceRange,
        port: u32,
    ) -> Result<Publication, NameCmdError> {
        self.publish_scoped(node, range, port, Scope::Cluster)
    }

    /// [`Sim::publish`] with a chosen scope (node-scope bindings stay local).
    pub fn publish_scoped(
        &mut self,
        node: usize,
        range: ServiceRange,
        port: u32,
        scope: Scope,
    ) -> Result<Publication, NameCmdError> {
        let now = self.now;
        if !self.cfg.names {
            return Err(NameCmdError::Disabled);
        }
        let n = self.nodes[node].as_mut().ok_or(NameCmdError::NodeDown)?;
        let p = n
            .publish(now, range, port, scope)
            .map_err(NameCmdError::Binding)?;
        self.trace(format_args!("node {node} publishes {p:?}"));
        // Bindings change again: convergence is no longer expected by a deadline.
        self.names_deadline = None;
        self.pump(node);
        Ok(p)
    }

    /// Node `node` withdraws its binding of `port` to exactly `range` (the newest if several);
    /// the withdrawal goes to every up peer.
    pub fn withdraw(&mut self, node: usize, range: ServiceRange, port: u32) -> Option<Publication> {
        let now = self.now;
        if !self.cfg.names {
            return None;
        }
        let p = self.nodes[node].as_mut()?.withdraw(now, range, port)?;
        self.trace(format_args!("node {node} withdraws {p:?}"));
        self.names_deadline = None;
        self.pump(node);
        Some(p)
    }

    /// A data message from `src` to `dst` naming `src`'s binding `publ` (which must be in
    /// `src`'s table), sent at once at MEDIUM importance if the link is up and that level is
    /// not congested. Returns the message id, or `None` if it was not sent. Invariant 6 checks
    /// its delivery.
    pub fn send_ref(&mut self, src: usize, dst: usize, publ: &Publication) -> Option<u64> {
        let now = self.now;
        if !self.cfg.names {
            return None;
        }
        let id = self.refs.len() as u64;
        let msg = self.ref_msg(src, dst, id, publ);
        let dst_addr = self.addrs[dst];
        let n = self.nodes[src].as_mut()?;
        if !n.table().iter().any(|p| p == publ) || publ.node != n.addr() {
            return None;
        }
        let selector = REF_PORT_BASE + src as u32;
        let peer = n.peer_mut(dst_addr)?;
        if !peer.is_up() || peer.is_congested(user::MEDIUM, selector) {
            return None;
        }
        match peer.send(now, msg, selector) {
            Ok(_) => {}
            Err(SendError::Congested(_) | SendError::NotUp(_)) => return None,
            Err(e) => self.violation(&format!("reference {src}->{dst} #{id} refused: {e}")),
        }
        self.refs.push(RefMsg {
            src,
            dst,
            publ: *publ,
            state: RefState::Sent,
        });
        self.pump(src);
        Some(id)
    }

    /// Every binding-reference message sent so far, by id.
    pub fn refs(&self) -> &[RefMsg] {
        &self.refs
    }

    /// Has every reference message been delivered, purged by its sender's link, or lost with
    /// its crashed sender?
    pub fn refs_settled(&self) -> bool {
        self.refs.iter().all(|r| r.state != RefState::Sent)
    }

    /// Reference messages in each state: (sent and pending, delivered, purged, lost).
    pub fn ref_counts(&self) -> (usize, usize, usize, usize) {
        let c = |s| self.refs.iter().filter(|r| r.state == s).count();
        (
            c(RefState::Sent),
            c(RefState::Delivered),
            c(RefState::Purged),
            c(RefState::Lost),
        )
    }

    /// Where bindings have not converged: for every pair of live nodes whose peer objects are
    /// both up, the viewer's bindings of the publisher must equal the publisher's own
    /// cluster-scope bindings, and a node holds no bindings of a node it has no working link
    /// to. `None` when converged.
    pub fn names_divergence(&self) -> Option<String> {
        let n = self.cfg.nodes;
        for v in 0..n {
            let Some(viewer) = self.node(v) else { continue };
            for j in (0..n).filter(|&j| j != v) {
                let aj = self.addrs[j];
                let view = viewer.view_of(aj);
                if !self.peer_up(v, j) {
                    if !view.is_empty() {
                        return Some(format!(
                            "node {v} holds {} bindings of node {j} it has no link to",
                            view.len()
                        ));
                    }
                    continue;
                }
                let Some(publisher) = self.node(j) else {
                    continue;
                };
                if !self.peer_up(j, v) {
                    continue;
                }
                let own = publisher.own_cluster_bindings();
                if view != own {
                    return Some(Self::diff_msg(v, j, &view, &own));
                }
            }
        }
        None
    }

    /// Have the binding tables converged (see [`Sim::names_divergence`])?
    pub fn names_converged(&self) -> bool {
        self.names_divergence().is_none()
    }

    pub(super) fn diff_msg(
        v: usize,
        j: usize,
        view: &[Publication],
        own: &[Publication],
    ) -> String {
        let extra: Vec<_> = view.iter().filter(|p| !own.contains(p)).collect();
        let missing: Vec<_> = own.iter().filter(|p| !view.contains(p)).collect();
        format!("node {v}'s view of node {j}: extra {extra:?}, missing {missing:?}")
    }

    pub(super) fn ref_msg(&self, src: usize, dst: usize, id: u64, publ: &Publication) -> BytesMut {
        let len = BASIC_H_SIZE + REF_LEN;
        let mut b = BytesMut::zeroed(len);
        let (sa, da) = (self.addrs[src], self.addrs[dst]);
        {
            let mut h = Header::new_unchecked(&mut b[..]);
            h.init(user::MEDIUM, DIRECT_MSG, BASIC_H_SIZE, len, sa);
            h.set_orignode(sa);
            h.set_destnode(da);
            h.set_origport(REF_PORT_BASE + src as u32);
            h.set_destport(REF_PORT_BASE + dst as u32);
        }
        let words = [
            REF_MAGIC,
            src as u32,
            dst as u32,
            (id >> 32) as u32,
            id as u32,
            publ.range.type_(),
            publ.range.lower(),
            publ.range.upper(),
            publ.port,
            publ.key,
        ];
        for (k, w) in words.iter().enumerate() {
            b[BASIC_H_SIZE + 4 * k..BASIC_H_SIZE + 4 * k + 4].copy_from_slice(&w.to_be_bytes());
        }
        b
    }

    /// (src, dst, id, the binding's (range, port, key)) of a reference message.
    pub(super) fn parse_ref(m: &[u8]) -> Option<(usize, usize, u64, RefBinding)> {
        let h = Header::new_checked(m).ok()?;
        if h.user() != user::MEDIUM || h.mtype() != DIRECT_MSG || h.header_len() != BASIC_H_SIZE {
            return None;
        }
        let p = h.payload();
        if p.len() != REF_LEN {
            return None;
        }
        let w = |k: usize| -> Option<u32> {
            Some(u32::from_be_bytes(
                p.get(4 * k..4 * k + 4)?.try_into().ok()?,
            ))
        };
        if w(0)? != REF_MAGIC {
            return None;
        }
        let id = ((w(3)? as u64) << 32) | w(4)? as u64;
        let range = ServiceRange::new(w(5)?, w(6)?, w(7)?).ok()?;
        Some((w(1)? as usize, w(2)? as usize, id, (range, w(8)?, w(9)?)))
    }

    /// Invariant 6: a reference message is delivered at most once, in order per (src, dst),
    /// intact, and only once the receiver's table holds the binding it names.
    pub(super) fn on_ref_deliver(&mut self, node: usize, peer: usize, m: &[u8]) {
        let Some((src, dst, id, (range, port, key))) = Self::parse_ref(m) else {
            self.violation(&format!(
                "node {node} got an unexpected MEDIUM message from {peer}: {} bytes",
                m.len()
            ));
        };
        let Some(r) = self.refs.get(id as usize).copied() else {
            self.violation(&format!("reference #{id} delivered but never sent"));
        };
        if src != peer || dst != node || r.src != src || r.dst != dst {
            self.violation(&format!(
                "node {node} got reference #{id} from {peer} naming {src}->{dst} (sent {}->{})",
                r.src, r.dst
            ));
        }
        let intact = Header::new_checked(m)
            .is_ok_and(|h| h.orignode() == self.addrs[src] && h.destnode() == self.addrs[dst])
            && (range, port, key) == (r.publ.range, r.publ.port, r.publ.key);
        if !intact {
            self.violation(&format!("reference {src}->{dst} #{id}: damaged"));
        }
        if r.state == RefState::Delivered {
            self.violation(&format!("reference {src}->{dst} #{id} delivered twice"));
        }
        if let Some(&l) = self.ref_last.get(&(src, dst)) {
            if id <= l {
                self.violation(&format!(
                    "reference {src}->{dst} #{id} delivered after #{l}: reordered"
                ));
            }
        }
        let has = self
            .node(node)
            .is_some_and(|n| n.table().iter().any(|p| *p == r.publ));
        if !has {
            self.violation(&format!(
                "publish-before-data: node {node} delivers reference #{id} from {src} to {:?} port {} key {} before the binding",
                r.publ.range, r.publ.port, r.publ.key
            ));
        }
        self.ref_last.insert((src, dst), id);
        if let Some(r) = self.refs.get_mut(id as usize) {
            r.state = RefState::Delivered;
        }
    }

    /// Invariant 5b: for every direction publisher -> viewer whose peers are up at both ends
    /// and whose links at the publisher have nothing unacknowledged (transmit queue and backlog
    /// empty), the viewer has every update the publisher sent: views must be equal. Checked
    /// again only when either table changed.
    pub(super) fn check_quiet_names(&mut self) {
        let n = self.cfg.nodes;
        for j in 0..n {
            for v in (0..n).filter(|&v| v != j) {
                let (Some(pn), Some(vn)) = (self.node(j), self.node(v)) else {
                    continue;
                };
                let vers = (pn.names_version(), vn.names_version());
                if self.names_verified.get(&(j, v)) == Some(&vers) {
                    continue;
                }
                let (aj, av) = (self.addrs[j], self.addrs[v]);
                let (Some(pp), Some(vp)) = (pn.peer(av), vn.peer(aj)) else {
                    continue;
                };
                if !pp.is_up() || !vp.is_up() {
                    continue;
                }
                let quiet = pp
                    .links()
                    .iter()
                    .all(|(_, s)| s.transmq_len == 0 && s.backlog_len == 0);
                if !quiet {
                    continue;
                }
                let own = pn.own_cluster_bindings();
                let view = vn.view_of(aj);
                if view != own {
                    let msg = Self::diff_msg(v, j, &view, &own);
                    self.violation(&format!("bindings diverge on a quiet link: {msg}"));
                }
                self.names_verified.insert((j, v), vers);
            }
        }
    }
}
