//! The group applications (invariant 8): member sockets on the nodes ([`Sim::group_join`])
//! sending numbered messages in the four modes while their windows allow ([`Sim::group_send`]
//! plans them), reading at a pace, and checking what they read.
//!
//! Invariant 8, on every read and every step:
//! (a) per (sender, receiver), messages are read in send order, each at most once, intact;
//! (b) only by a member the mode addresses (a broadcast: any; a multicast or an anycast: a
//! member of that instance; a unicast: that socket), and an anycast by one member only;
//! (c) member events: a sender is up (MEMBER_UP read) when its data is read, MEMBER_DOWN only
//! for a member that is up;
//! (d) nothing is dropped silently: no member socket drops for its receive buffer, its early
//! queue or a full deferred queue;
//! (e) bounded memory: a member's unread queue holds at most [`Sim::group_queue_bound`]
//! messages (the windows: one ACTIVE window per other member, and the events).
//!
//! [`Sim::group_check_complete`] then checks, once the senders are done and the readers have
//! read everything: every message a sender sent to a member it was never cut from (nodes
//! never partitioned, crashed or restarted since the traffic began) was read by that member,
//! and every anycast of a sender cut from no member was read exactly once.

use super::{pair, ReadPace, Sim};
use bytes::Bytes;
use rand_chacha::rand_core::RngCore;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;
use tipc_actors::addr::SocketAddr;
use tipc_actors::group::{GroupConfig, GroupDest, GroupEvent, GroupSendError, ADV_ACTIVE};

/// First payload word of a group traffic message ("GRPM").
const GROUP_MAGIC: u32 = 0x4752_504d;
/// Payload bytes: magic, sender id, sequence number.
const GROUP_REC: usize = 16;

/// One member application of the simulation.
#[derive(Debug, Clone)]
pub struct SimMember {
    /// Its node.
    pub node: usize,
    /// Its socket.
    pub sock: SocketAddr,
    /// Its instance.
    pub instance: u32,
    /// How it reads.
    pub pace: ReadPace,
    next_read: Instant,
    /// Its node crashed (the member is gone).
    pub gone: bool,
    /// Messages still to send.
    pub to_send: u64,
    /// Messages sent (accepted by the socket).
    pub sent: u64,
    /// Sends refused: no member for the destination.
    pub no_dest: u64,
    blocked: Option<(GroupDest, Bytes, u64)>,
    next_seq: u64,
    /// What each sequence number was sent to (index seq - 1; `None`: refused).
    pub log: Vec<Option<GroupDest>>,
    /// Data messages read.
    pub read: u64,
    /// Per sender id, the sequence numbers read.
    pub got: BTreeMap<usize, BTreeSet<u64>>,
    last: BTreeMap<usize, u64>,
    up: BTreeSet<SocketAddr>,
    /// Member events read.
    pub events: u64,
}

impl Sim {
    /// Join member `instance` of group `cfg.type_` on node `node` (events on, cluster scope
    /// unless `cfg` says otherwise), reading at `pace`. Returns the member's id.
    pub fn group_join(
        &mut self,
        node: usize,
        mut cfg: GroupConfig,
        pace: ReadPace,
    ) -> Result<usize, String> {
        cfg.member_events = true;
        let now = self.now;
        let n = self.nodes[node].as_mut().ok_or("node is down")?;
        let port = n.group_join(now, cfg)?;
        let sock = SocketAddr {
            node: self.addrs[node],
            port,
        };
        self.members.push(SimMember {
            node,
            sock,
            instance: cfg.instance,
            pace,
            next_read: now,
            gone: false,
            to_send: 0,
            sent: 0,
            no_dest: 0,
            blocked: None,
            next_seq: 1,
            log: Vec::new(),
            read: 0,
            got: BTreeMap::new(),
            last: BTreeMap::new(),
            up: BTreeSet::new(),
            events: 0,
        });
        self.pump(node);
        Ok(self.members.len() - 1)
    }

    /// The member applications.
    pub fn members(&self) -> &[SimMember] {
        &self.members
    }

    /// Have member `id` send `count` more messages, each to a destination drawn at random:
    /// a broadcast, a multicast or an anycast to a random member's instance, or a unicast to
    /// a random other member.
    pub fn group_send(&mut self, id: usize, count: u64) {
        self.members[id].to_send += count;
        self.traffic_start.get_or_insert(self.now);
    }

    /// Does any member still have something to send?
    pub fn group_sending(&self) -> bool {
        self.members
            .iter()
            .any(|m| !m.gone && (m.to_send > 0 || m.blocked.is_some()))
    }

    /// Messages waiting to be read, over all members.
    pub fn group_unread(&self) -> usize {
        self.members
            .iter()
            .filter(|m| !m.gone)
            .filter_map(|m| self.node(m.node)?.group(m.sock.port))
            .map(|g| g.queued())
            .sum()
    }

    /// Invariant 8e's bound on a member's unread messages and events: an ACTIVE window of
    /// one-block messages per other member, plus two events per member.
    pub fn group_queue_bound(&self) -> usize {
        self.members.len() * (ADV_ACTIVE as usize + 2)
    }

    /// The earliest time a paced reader with something to read reads next.
    pub(super) fn group_next_read(&self) -> Option<Instant> {
        self.members
            .iter()
            .filter(|m| !m.gone && m.next_read > self.now)
            .filter(|m| {
                self.node(m.node)
                    .and_then(|n| n.group(m.sock.port))
                    .is_some_and(|g| g.queued() > 0)
            })
            .map(|m| m.next_read)
            .min()
    }

    fn group_payload(&self, sender: usize, seq: u64) -> Bytes {
        let mut v = vec![0u8; self.cfg.msg_size.max(GROUP_REC)];
        v[0..4].copy_from_slice(&GROUP_MAGIC.to_be_bytes());
        v[4..8].copy_from_slice(&(sender as u32).to_be_bytes());
        v[8..16].copy_from_slice(&seq.to_be_bytes());
        Bytes::from(v)
    }

    fn group_dest(&mut self, id: usize) -> GroupDest {
        let live: Vec<usize> = (0..self.members.len())
            .filter(|&j| !self.members[j].gone)
            .collect();
        let pick = live[self.conn_rng.next_u32() as usize % live.len()];
        let inst = self.members[pick].instance;
        match self.conn_rng.next_u32() % 10 {
            0..=3 => GroupDest::Broadcast,
            4 | 5 => GroupDest::Multicast(inst),
            6 | 7 => GroupDest::Anycast(inst),
            _ => {
                let to = if pick == id {
                    live[(live.iter().position(|&j| j == id).unwrap_or(0) + 1) % live.len()]
                } else {
                    pick
                };
                GroupDest::Member(self.members[to].sock)
            }
        }
    }

    /// Every step: the senders send while their windows allow, the readers read at their
    /// pace, and what they read is checked.
    pub(super) fn run_groups(&mut self) {
        let now = self.now;
        for id in 0..self.members.len() {
            let (node, port) = (self.members[id].node, self.members[id].sock.port);
            if self.members[id].gone || self.nodes[node].is_none() {
                self.members[id].gone = true;
                continue;
            }
            // Send: up to a burst per step, stopping at a closed window.
            for _ in 0..16 {
                let next = match self.members[id].blocked.take() {
                    Some(b) => {
                        let woke = self.nodes[node]
                            .as_mut()
                            .is_some_and(|n| n.group_wakeup(port));
                        if !woke {
                            self.members[id].blocked = Some(b);
                            break;
                        }
                        b
                    }
                    None if self.members[id].to_send > 0 => {
                        let seq = self.members[id].next_seq;
                        self.members[id].next_seq += 1;
                        self.members[id].to_send -= 1;
                        let dest = self.group_dest(id);
                        (dest, self.group_payload(id, seq), seq)
                    }
                    None => break,
                };
                let (dest, data, seq) = next;
                let r = match self.nodes[node].as_mut() {
                    Some(n) => n.group_send(now, port, dest, data),
                    None => break,
                };
                let m = &mut self.members[id];
                let logged = match r {
                    Ok(()) => {
                        m.sent += 1;
                        Some(dest)
                    }
                    Err(GroupSendError::Congested(data)) => {
                        m.blocked = Some((dest, data, seq));
                        break;
                    }
                    Err(_) => {
                        m.no_dest += 1;
                        None
                    }
                };
                let i = (seq - 1) as usize;
                if m.log.len() <= i {
                    m.log.resize(i + 1, None);
                }
                m.log[i] = logged;
            }
            self.pump(node);
            // Read at the pace.
            if self.members[id].next_read > now {
                continue;
            }
            let pace = self.members[id].pace;
            let mut reads = 0;
            while reads < pace.units {
                let ev = match self.nodes[node].as_mut() {
                    Some(n) => n.group_read(now, port),
                    None => None,
                };
                let Some(ev) = ev else { break };
                reads += 1;
                self.group_check_read(id, ev);
            }
            if reads > 0 {
                self.members[id].next_read = now + pace.interval;
            }
            self.pump(node);
        }
    }

    /// Invariant 8a–c for one thing member `id` read.
    fn group_check_read(&mut self, id: usize, ev: GroupEvent) {
        match ev {
            GroupEvent::MemberUp { member, .. } => {
                self.members[id].events += 1;
                if !self.members[id].up.insert(member) {
                    self.violation(&format!("member {id}: MEMBER_UP for {member} already up"));
                }
            }
            GroupEvent::MemberDown { member, .. } => {
                self.members[id].events += 1;
                if !self.members[id].up.remove(&member) {
                    self.violation(&format!("member {id}: MEMBER_DOWN for {member} not up"));
                }
            }
            GroupEvent::Message(m) => {
                let p = m.payload();
                if p.len() < GROUP_REC
                    || u32::from_be_bytes(p[0..4].try_into().expect("4 bytes")) != GROUP_MAGIC
                {
                    self.violation(&format!("member {id}: a message that is not ours"));
                }
                let sender = u32::from_be_bytes(p[4..8].try_into().expect("4 bytes")) as usize;
                let seq = u64::from_be_bytes(p[8..16].try_into().expect("8 bytes"));
                let Some(s) = self.members.get(sender) else {
                    self.violation(&format!(
                        "member {id}: message from unknown sender {sender}"
                    ));
                };
                if s.sock != m.from {
                    self.violation(&format!(
                        "member {id}: sender {sender}'s message came from {}",
                        m.from
                    ));
                }
                let dest = s.log.get((seq - 1) as usize).copied().flatten();
                let me = &self.members[id];
                let for_me = match dest {
                    Some(GroupDest::Broadcast) => true,
                    Some(GroupDest::Multicast(i)) | Some(GroupDest::Anycast(i)) => me.instance == i,
                    Some(GroupDest::Member(sa)) => sa == me.sock,
                    None => false,
                };
                if !for_me {
                    self.violation(&format!(
                        "member {id} read sender {sender}'s #{seq} sent to {dest:?}"
                    ));
                }
                if !me.up.contains(&m.from) {
                    self.violation(&format!(
                        "member {id} read sender {sender}'s #{seq} without its MEMBER_UP"
                    ));
                }
                if me.last.get(&sender).is_some_and(|&l| seq <= l) {
                    self.violation(&format!(
                        "member {id} read sender {sender}'s #{seq} after #{}",
                        me.last[&sender]
                    ));
                }
                if let Some(GroupDest::Anycast(_)) = dest {
                    if !self.anycasts_read.insert((sender, seq)) {
                        self.violation(&format!(
                            "sender {sender}'s anycast #{seq} read by two members"
                        ));
                    }
                }
                let me = &mut self.members[id];
                me.last.insert(sender, seq);
                me.got.entry(sender).or_default().insert(seq);
                me.read += 1;
            }
        }
    }

    /// Invariant 8d and 8e, every step.
    pub(super) fn check_groups(&mut self) {
        let bound = self.group_queue_bound();
        for id in 0..self.members.len() {
            let m = &self.members[id];
            if m.gone {
                continue;
            }
            let Some(g) = self.node(m.node).and_then(|n| n.group(m.sock.port)) else {
                continue;
            };
            let (s, c, q) = (g.stats(), g.core().stats(), g.queued());
            if s.rcvbuf_dropped + s.early_dropped + c.deferred_overflow > 0 {
                self.violation(&format!("member {id} dropped messages: {s:?} {c:?}"));
            }
            self.max_group_queue = self.max_group_queue.max(q);
            if q > bound {
                self.violation(&format!("member {id} holds {q} unread (bound {bound})"));
            }
        }
    }

    /// The most unread messages and events a member held at once.
    pub fn max_group_queue(&self) -> usize {
        self.max_group_queue
    }

    /// Was the pair of nodes `a`, `b` cut apart (partition, crash, restart, or a node-down
    /// between them) since the traffic began?
    fn group_severed(&self, a: usize, b: usize) -> bool {
        if a == b {
            return self.nodes[a].is_none();
        }
        let since = self.traffic_start.unwrap_or(self.start) - self.start;
        let lost = self.log.iter().any(|e| {
            e.t >= since && e.kind == super::LogKind::NodeDown && pair(e.node, e.peer) == pair(a, b)
        });
        lost || self
            .severed
            .get(&pair(a, b))
            .is_some_and(|&t| t - self.start >= since)
            || self.nodes[a].is_none()
            || self.nodes[b].is_none()
    }

    /// Completeness (see the module docs); call once the senders are done and the readers
    /// have read everything. Panics with the first message missing.
    pub fn group_check_complete(&self) {
        for (r, rm) in self.members.iter().enumerate() {
            if rm.gone {
                continue;
            }
            for (s, sm) in self.members.iter().enumerate() {
                if s == r || self.group_severed(sm.node, rm.node) {
                    continue;
                }
                let got = rm.got.get(&s);
                for (i, d) in sm.log.iter().enumerate() {
                    let seq = i as u64 + 1;
                    let for_r = match d {
                        Some(GroupDest::Broadcast) => true,
                        Some(GroupDest::Multicast(x)) => *x == rm.instance,
                        Some(GroupDest::Member(sa)) => *sa == rm.sock,
                        _ => false,
                    };
                    if for_r && !got.is_some_and(|g| g.contains(&seq)) {
                        self.violation(&format!(
                            "member {r} never read sender {s}'s #{seq} ({d:?})"
                        ));
                    }
                }
            }
        }
        for (s, sm) in self.members.iter().enumerate() {
            let cut = self
                .members
                .iter()
                .any(|m| self.group_severed(sm.node, m.node));
            if cut || sm.gone {
                continue;
            }
            for (i, d) in sm.log.iter().enumerate() {
                let seq = i as u64 + 1;
                if let Some(GroupDest::Anycast(_)) = d {
                    if !self.anycasts_read.contains(&(s, seq)) {
                        self.violation(&format!("sender {s}'s anycast #{seq} never read"));
                    }
                }
            }
        }
    }
}

impl SimMember {
    /// Has this member's socket admitted `n` other members (JOINED or later, not leaving)?
    pub fn sees(&self, sim: &Sim, n: usize) -> bool {
        sim.node(self.node)
            .and_then(|x| x.group(self.sock.port))
            .is_some_and(|g| {
                g.core()
                    .members()
                    .filter(|m| m.addr != self.sock && m.state.is_receiver())
                    .count()
                    == n
            })
    }
}

impl Sim {
    /// A description of the group state, for failure messages.
    pub fn group_debug(&self) -> String {
        let mut out = String::new();
        for i in 0..self.cfg.nodes {
            if let Some(n) = self.node(i) {
                let b = n.bcast();
                out += &format!(
                    "node {i}: bcast last {} in flight {} backlog {} peers {:?} stats {:?}; parked {}\n",
                    b.last_bcast(),
                    b.in_flight(),
                    b.backlog_len(),
                    b.peers().collect::<Vec<_>>(),
                    b.stats(),
                    n.group_parked()
                );
                for j in 0..self.cfg.nodes {
                    if let Some(p) = n.peer(self.addrs[j]) {
                        let st = p.stats();
                        out += &format!(
                            "  peer {j}: up {} bc rcv {:?} rx {} dropped {} deferred {}\n",
                            p.is_up(),
                            p.bc_rcv_state(),
                            st.bcast_rx,
                            st.bcast_dropped,
                            st.bcast_deferred
                        );
                    }
                }
            }
        }
        for (id, m) in self.members.iter().enumerate() {
            let info = self
                .node(m.node)
                .and_then(|n| n.group(m.sock.port))
                .map(|g| format!("{:?}", g.core().members().collect::<Vec<_>>()))
                .unwrap_or_default();
            out += &format!(
                "member {id} node {} gone {} to_send {} blocked {} sent {}: {info}\n",
                m.node,
                m.gone,
                m.to_send,
                m.blocked.is_some(),
                m.sent
            );
        }
        out
    }
}
