//! The connection applications (invariant 7): listeners, connections with writers, readers at
//! a pace and an orderly close, over the nodes' connection sockets.

use super::{pair, Accepted, Sim, MAX_UNIT, SEQ_REC};
use rand_chacha::rand_core::RngCore;
use std::time::{Duration, Instant};
use tipc_actors::addr::{ServiceAddr, ServiceRange, SocketAddr};
use tipc_actors::sock::conn::ConnKind;
use tipc_actors::socket::conn::{
    ConnCore, ConnError, ConnState, Read, SynDest, ADV_WIN, NAGLE_MAX_BACKLOG,
};
use tipc_actors::socket::RCVBUF_DEFAULT;
use tipc_transport::wire::{ErrorCode, BASIC_H_SIZE, SHORT_H_SIZE};

/// How fast an application reads a connection: at most `units` reads (messages) every
/// `interval`; [`ReadPace::EAGER`] reads everything as soon as it is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPace {
    /// Time between two bursts of reads (zero: at every step).
    pub interval: Duration,
    /// Reads per burst.
    pub units: usize,
}

impl ReadPace {
    /// Read everything at once.
    pub const EAGER: ReadPace = ReadPace {
        interval: Duration::ZERO,
        units: usize::MAX,
    };
    /// A slow reader: `units` reads every `interval`.
    pub fn slow(interval: Duration, units: usize) -> ReadPace {
        ReadPace {
            interval,
            units: units.max(1),
        }
    }
}

/// A listening connection socket of the simulation ([`Sim::conn_listen`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimListener {
    /// Its node.
    pub node: usize,
    /// Its port.
    pub port: u32,
    /// Stream or seqpacket.
    pub kind: ConnKind,
    /// The service address it is bound to (with [`super::SimConfig::names`]).
    pub name: Option<ServiceAddr>,
}

/// What a simulated connection does ([`Sim::conn_open`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnSpec {
    /// The connecting node.
    pub client: usize,
    /// The listener it connects to.
    pub listener: SimListener,
    /// Connect by the listener's service address (a NAMED SYN), else by its socket address.
    pub by_name: bool,
    /// "0-RTT": the SYN carries the client's first data, else an empty SYN (`connect()`).
    pub zero_rtt: bool,
    /// Client to server: bytes (stream) or messages (seqpacket).
    pub up: u64,
    /// Server to client: bytes (stream) or messages (seqpacket).
    pub down: u64,
    /// The server shuts the connection down (after it sent and received everything), else the
    /// client does.
    pub server_closes: bool,
    /// The client's reader.
    pub client_pace: ReadPace,
    /// The server's reader.
    pub server_pace: ReadPace,
}

/// One end of a simulated connection: its socket and what its application did.
#[derive(Debug, Clone)]
pub struct ConnEnd {
    /// Its node.
    pub node: usize,
    /// Its socket (the server's once the request was accepted).
    pub port: Option<u32>,
    /// Units (bytes or messages) to write.
    pub tx_target: u64,
    /// Units written.
    pub tx: u64,
    /// Units to read.
    pub rx_target: u64,
    /// Units read (each checked in order and intact).
    pub rx: u64,
    /// This end shut the connection down (orderly, after all its data went both ways).
    pub shut: bool,
    /// The end its application read: `Ok` after the peer's shutdown, else why.
    pub end: Option<Result<(), ConnError>>,
    /// The core's end reason, once invariant 7 judged it.
    pub core_end: Option<Result<(), ConnError>>,
    /// When (virtual time since the start) the core ended.
    pub ended_at: Option<Duration>,
    /// Its node crashed: the socket vanished.
    pub gone: bool,
    /// Steps at which the writer had data but the connection window was full (end-to-end
    /// flow control holding it back).
    pub window_stalls: u64,
    /// Flow-control blocks of the data messages written (`len / 1024 + 1` of each message with
    /// its header), counted by the simulation.
    pub blocks_tx: u64,
    /// Flow-control blocks of the data messages read.
    pub blocks_rx: u64,
    pub(super) pace: ReadPace,
    pub(super) next_read: Instant,
    /// The core must have ended by then (its peer node was lost); true if a partition
    /// caused it (a heal before the deadline cancels it).
    pub(super) abort_by: Option<(Instant, bool)>,
}

/// A simulated connection and its two ends (index 0: client, 1: server).
#[derive(Debug, Clone)]
pub struct SimConn {
    /// What it does.
    pub spec: ConnSpec,
    /// When it was opened.
    pub started: Instant,
    /// Client and server.
    pub ends: [ConnEnd; 2],
}

impl SimConn {
    /// The end that shuts the connection down.
    pub fn closer(&self) -> usize {
        self.spec.server_closes as usize
    }
    /// Everything went both ways and the orderly close was seen by both sides (the closer shut
    /// down, the other read the end as `Ok`).
    pub fn completed(&self) -> bool {
        let c = self.closer();
        self.ends
            .iter()
            .all(|e| e.rx >= e.rx_target && e.tx >= e.tx_target)
            && self.ends[c].shut
            && self.ends[1 - c].end == Some(Ok(()))
    }
    /// It ended with an error: every end whose node is still there (and whose socket exists)
    /// read an error end, and at least one did or is gone.
    pub fn aborted(&self) -> bool {
        self.ends
            .iter()
            .all(|e| e.gone || e.port.is_none() || matches!(e.end, Some(Err(_))))
            && self
                .ends
                .iter()
                .any(|e| e.gone || matches!(e.end, Some(Err(_))))
    }
}

impl Sim {
    // ------------------------------------------------------------------ connections

    /// Node `node` opens a listening socket of `kind`; with [`super::SimConfig::names`] and a `range`
    /// it also binds it (cluster scope), and [`ConnSpec::by_name`] then connects to
    /// `{range.type_, range.lower}`. `None` if the node is crashed or conns are off.
    pub fn conn_listen(
        &mut self,
        node: usize,
        kind: ConnKind,
        range: Option<ServiceRange>,
    ) -> Option<SimListener> {
        if !self.cfg.conns {
            return None;
        }
        let n = self.nodes[node].as_mut()?;
        let port = n.conn_socket();
        let core = n.conn_mut(port)?;
        core.listen().ok()?;
        core.set_stream(kind == ConnKind::Stream);
        let mut name = None;
        if let Some(range) = range.filter(|_| self.cfg.names) {
            self.publish(node, range, port).ok()?;
            name = Some(ServiceAddr {
                type_: range.type_(),
                instance: range.lower(),
            });
        }
        Some(SimListener {
            node,
            port,
            kind,
            name,
        })
    }

    /// Open a connection as `spec` says: the client's socket sends its SYN now (with its first
    /// unit of data if 0-RTT); the listener accepts when the SYN arrives. Writers, readers and
    /// the orderly close then run by themselves at every step. Returns the connection's index.
    pub fn conn_open(&mut self, spec: ConnSpec) -> Option<usize> {
        if !self.cfg.conns || spec.client == spec.listener.node {
            return None;
        }
        let dest = if spec.by_name {
            SynDest::Service(spec.listener.name?)
        } else {
            SynDest::Socket(SocketAddr {
                node: self.addrs[spec.listener.node],
                port: spec.listener.port,
            })
        };
        let now = self.now;
        let id = self.conns.len();
        let port = self.nodes[spec.client].as_mut()?.conn_socket();
        let end = |node, port, tx_target, rx_target, pace| ConnEnd {
            node,
            port,
            tx_target,
            tx: 0,
            rx_target,
            rx: 0,
            shut: false,
            end: None,
            core_end: None,
            ended_at: None,
            gone: false,
            window_stalls: 0,
            blocks_tx: 0,
            blocks_rx: 0,
            pace,
            next_read: now,
            abort_by: None,
        };
        self.conns.push(SimConn {
            spec,
            started: now,
            ends: [
                end(
                    spec.client,
                    Some(port),
                    spec.up,
                    spec.down,
                    spec.client_pace,
                ),
                end(
                    spec.listener.node,
                    None,
                    spec.down,
                    spec.up,
                    spec.server_pace,
                ),
            ],
        });
        self.conn_at.insert((spec.client, port), (id, 0));
        let (first, units) = if spec.zero_rtt && spec.up > 0 {
            self.conn_unit(id, 0)
        } else {
            (Vec::new(), 0)
        };
        let n = self.nodes[spec.client].as_mut()?;
        let core = n.conn_mut(port)?;
        core.set_stream(spec.listener.kind == ConnKind::Stream);
        if let Err(e) = core.connect(dest, &first, now) {
            self.violation(&format!("connection {id}: connect refused: {e}"));
        }
        n.conn_flush(now, port);
        self.conns[id].ends[0].tx += units;
        self.trace(format_args!("connection {id} opens: {spec:?}"));
        self.pump(spec.client);
        Some(id)
    }

    /// Is connection `id` set up at both ends (the server accepted, the client got the ACK)?
    pub fn conn_established(&self, id: usize) -> bool {
        let Some(c) = self.conns.get(id) else {
            return false;
        };
        let client = c.ends[0]
            .port
            .and_then(|p| self.node(c.ends[0].node)?.conn(p))
            .is_some_and(|core| core.state() != ConnState::Connecting);
        client && c.ends[1].port.is_some()
    }

    /// Every connection opened so far.
    pub fn conns(&self) -> &[SimConn] {
        &self.conns
    }

    /// Has every connection completed or aborted?
    pub fn conns_settled(&self) -> bool {
        self.conns.iter().all(|c| c.completed() || c.aborted())
    }

    /// The largest receive-queue memory (truesize) of any connection socket seen so far.
    pub fn max_conn_rx_mem(&self) -> usize {
        self.max_conn_rx_mem
    }

    /// Invariant 7's bound on a connection socket's queued memory: the advertised window plus
    /// what a sender may overshoot it by (one message of our largest size and 64 blocks of
    /// held Nagle data), in blocks, at 1600 bytes of truesize per block (the
    /// most any message size costs: a 1023-byte message is one block of 1024 + 576 bytes).
    pub fn conn_rx_bound(&self) -> usize {
        (ADV_WIN as usize + NAGLE_MAX_BACKLOG as usize + MAX_UNIT / 1024 + 2) * 1600
    }

    /// Flow-control blocks of a message of `len` bytes (`tsk_inc` with block flow control).
    pub(super) fn blocks(len: usize) -> u64 {
        (len / 1024) as u64 + 1
    }

    /// How far a sender may go past the window: the kernel checks the window before each
    /// write, so by one message of our largest unit, and by up to 64 blocks of held Nagle
    /// data pushed out with it or at the peer's ack (`__tipc_sendstream`).
    pub(super) fn overshoot(core: &ConnCore) -> u32 {
        let nagle = if core.max_nagle() > 0 {
            NAGLE_MAX_BACKLOG
        } else {
            0
        };
        core.inc(MAX_UNIT + SHORT_H_SIZE) + nagle
    }

    /// The header size of connection `id`'s SYN if it carried data, else of a data message.
    pub(super) fn syn_hdr(&self, id: usize) -> usize {
        let spec = &self.conns[id].spec;
        match (spec.zero_rtt, spec.by_name) {
            (false, _) => SHORT_H_SIZE,
            (true, true) => 40,
            (true, false) => BASIC_H_SIZE,
        }
    }

    /// The byte at `offset` of direction `dir` (0: client to server) of connection `id`.
    pub(super) fn conn_byte(id: usize, dir: usize, offset: u64) -> u8 {
        let x = (offset ^ ((id as u64) << 40) ^ ((dir as u64) << 39))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (x >> 56) as u8
    }

    /// The next unit end `e` of connection `id` writes: a stream chunk (1..=3000 bytes of the
    /// pattern, at most what is left) or a seqpacket message (a 24-byte record: id, direction,
    /// number, length; then the pattern). Returns the data and the units it counts.
    pub(super) fn conn_unit(&mut self, id: usize, e: usize) -> (Vec<u8>, u64) {
        let c = &self.conns[id];
        let (kind, at, left) = (
            c.spec.listener.kind,
            c.ends[e].tx,
            c.ends[e].tx_target - c.ends[e].tx,
        );
        let r = self.conn_rng.next_u32() as usize;
        match kind {
            ConnKind::Stream => {
                let len = (1 + r % MAX_UNIT).min(left as usize);
                let v = (0..len as u64)
                    .map(|i| Self::conn_byte(id, e, at + i))
                    .collect();
                (v, len as u64)
            }
            ConnKind::Seqpacket => {
                let len = SEQ_REC + r % (MAX_UNIT - SEQ_REC);
                let mut v = vec![0u8; len];
                v[0..4].copy_from_slice(&(id as u32).to_be_bytes());
                v[4..8].copy_from_slice(&(e as u32).to_be_bytes());
                v[8..16].copy_from_slice(&at.to_be_bytes());
                v[16..20].copy_from_slice(&(len as u32).to_be_bytes());
                for (i, b) in v[SEQ_REC..].iter_mut().enumerate() {
                    *b = Self::conn_byte(id, e, (at << 16) + i as u64);
                }
                (v, 1)
            }
        }
    }

    /// A listener of node `node` accepted a connection request: matched to its connection.
    pub(super) fn on_accepted(&mut self, node: usize, a: Accepted) {
        let now = self.now;
        {
            let client = self.index_of.get(&a.peer.node).copied();
            let found = client.and_then(|c| self.conn_at.get(&(c, a.peer.port)).copied());
            let Some((id, 0)) = found else {
                self.violation(&format!(
                    "node {node} listener {} accepted an unknown request from {}",
                    a.listener, a.peer
                ));
            };
            let srv = &mut self.conns[id].ends[1];
            if srv.node != node || srv.port.is_some() {
                self.violation(&format!(
                    "connection {id}: request accepted twice or at the wrong node {node}"
                ));
            }
            srv.port = Some(a.port);
            srv.next_read = now;
            self.conn_at.insert((node, a.port), (id, 1));
            self.trace(format_args!(
                "connection {id} accepted at node {node} port {}",
                a.port
            ));
        }
    }

    /// The applications: writers, readers and the orderly close of every connection.
    pub(super) fn run_conns(&mut self) {
        for id in 0..self.conns.len() {
            for e in 0..2 {
                let node = self.conns[id].ends[e].node;
                let acted = self.conn_write(id, e) | self.conn_read(id, e) | self.conn_close(id, e);
                if acted {
                    self.pump(node);
                }
            }
        }
    }

    /// The socket of end `e`, if it exists and is not gone.
    pub(super) fn conn_port(&self, id: usize, e: usize) -> Option<(usize, u32)> {
        let end = &self.conns[id].ends[e];
        let port = end.port.filter(|_| !end.gone)?;
        self.node(end.node)?.conn(port)?;
        Some((end.node, port))
    }

    /// Write while the connection's window and the link allow (`Connection::send`).
    pub(super) fn conn_write(&mut self, id: usize, e: usize) -> bool {
        let Some((node, port)) = self.conn_port(id, e) else {
            return false;
        };
        let peer_addr = self.addrs[self.conns[id].ends[1 - e].node];
        let now = self.now;
        let mut acted = false;
        for _ in 0..10_000 {
            let end = &self.conns[id].ends[e];
            if end.shut || end.tx >= end.tx_target {
                break;
            }
            let Some(n) = self.node(node) else { break };
            let Some(core) = n.conn(port) else { break };
            if core.can_send() != Ok(true) {
                if core.state() == ConnState::Established && core.congested() {
                    self.conns[id].ends[e].window_stalls += 1;
                }
                break;
            }
            let imp = core.importance();
            if !n
                .peer(peer_addr)
                .is_some_and(|p| p.is_up() && !p.is_congested(imp, port))
            {
                break;
            }
            let (data, units) = self.conn_unit(id, e);
            let Some(n) = self.nodes[node].as_mut() else {
                break;
            };
            let Some(core) = n.conn_mut(port) else { break };
            if let Err(err) = core.write(&data) {
                self.violation(&format!("connection {id} end {e}: send refused: {err}"))
            }
            let (unacked, win, max) = (core.snt_unacked(), core.snd_win(), Self::overshoot(core));
            if unacked > win + max {
                self.violation(&format!(
                    "connection {id} end {e}: {unacked} blocks unacknowledged, window {win} + {max} (one message and what Nagle held)"
                ));
            }
            let failed = n.conn_stats().send_failed;
            n.conn_flush(now, port);
            if n.conn_stats().send_failed != failed {
                self.violation(&format!(
                    "connection {id} end {e}: the link refused a data message it said it takes"
                ));
            }
            self.conns[id].ends[e].tx += units;
            acted = true;
        }
        acted
    }

    /// Read at the end's pace (`Connection::recv`), checking every unit: in order, intact,
    /// never beyond what was written; the end only after everything (orderly) or for a cause.
    pub(super) fn conn_read(&mut self, id: usize, e: usize) -> bool {
        let Some((node, port)) = self.conn_port(id, e) else {
            return false;
        };
        let now = self.now;
        let pace = self.conns[id].ends[e].pace;
        if now < self.conns[id].ends[e].next_read || self.conns[id].ends[e].end.is_some() {
            return false;
        }
        let kind = self.conns[id].spec.listener.kind;
        let dir = 1 - e;
        let mut reads = 0;
        while reads < pace.units {
            let Some(r) = self.nodes[node]
                .as_mut()
                .and_then(|n| n.conn_mut(port))
                .and_then(|c| c.read())
            else {
                break;
            };
            reads += 1;
            match r {
                Read::Data(d) => {
                    self.conn_check_data(id, e, kind, dir, &d);
                    let hdr = if self.conns[id].ends[e].blocks_rx == 0 && e == 1 {
                        // The first read of the server may be the SYN's data.
                        self.syn_hdr(id)
                    } else {
                        SHORT_H_SIZE
                    };
                    self.conns[id].ends[e].blocks_rx += Self::blocks(hdr + d.len());
                }
                Read::End(why) => {
                    self.conn_check_end(id, e, why, true);
                    self.conns[id].ends[e].end = Some(why);
                    break;
                }
            }
        }
        if reads == 0 {
            return false;
        }
        if let Some(n) = self.nodes[node].as_mut() {
            n.conn_flush(now, port);
        }
        self.conns[id].ends[e].next_read = now + pace.interval;
        true
    }

    pub(super) fn conn_check_data(
        &mut self,
        id: usize,
        e: usize,
        kind: ConnKind,
        dir: usize,
        d: &[u8],
    ) {
        let end = &self.conns[id].ends[e];
        let at = end.rx;
        let (units, ok) = match kind {
            ConnKind::Stream => {
                let bad = d
                    .iter()
                    .enumerate()
                    .find(|(i, &b)| b != Self::conn_byte(id, dir, at + *i as u64));
                if let Some((i, _)) = bad {
                    self.violation(&format!(
                        "connection {id} end {e}: stream byte {} damaged, lost or out of order",
                        at + i as u64
                    ));
                }
                (d.len() as u64, !d.is_empty())
            }
            ConnKind::Seqpacket => {
                let word = |k: usize| {
                    d.get(k..k + 4)
                        .and_then(|w| w.try_into().ok())
                        .map(u32::from_be_bytes)
                };
                let seq = d
                    .get(8..16)
                    .and_then(|w| w.try_into().ok())
                    .map(u64::from_be_bytes);
                let ok = word(0) == Some(id as u32)
                    && word(4) == Some(dir as u32)
                    && word(16) == Some(d.len() as u32)
                    && d[SEQ_REC.min(d.len())..]
                        .iter()
                        .enumerate()
                        .all(|(i, &b)| b == Self::conn_byte(id, dir, (at << 16) + i as u64));
                if seq != Some(at) {
                    self.violation(&format!(
                        "connection {id} end {e}: message {seq:?} read, expected #{at}: lost, duplicated or reordered"
                    ));
                }
                (1, ok)
            }
        };
        if !ok {
            self.violation(&format!(
                "connection {id} end {e}: unit at {at} damaged or empty"
            ));
        }
        let end = &mut self.conns[id].ends[e];
        end.rx += units;
        let (rx, target) = (end.rx, end.rx_target);
        if rx > target {
            self.violation(&format!(
                "connection {id} end {e}: read {rx} units, only {target} were written"
            ));
        }
    }

    /// Is an end with this reason legitimate for end `e` of connection `id`? An orderly end
    /// only after the peer shut down and everything was read (`read`: the application saw it;
    /// else the core ended before the queue was drained); an error only when its peer node
    /// was really cut off, crashed or restarted since the connection was opened.
    pub(super) fn conn_check_end(
        &mut self,
        id: usize,
        e: usize,
        why: Result<(), ConnError>,
        read: bool,
    ) {
        let c = &self.conns[id];
        let (me, other) = (&c.ends[e], &c.ends[1 - e]);
        match why {
            Ok(()) => {
                if !other.shut {
                    self.violation(&format!(
                        "connection {id} end {e}: orderly end but the peer never shut down"
                    ));
                }
                if read && me.rx != me.rx_target {
                    self.violation(&format!(
                        "connection {id} end {e}: orderly end after {} of {} units",
                        me.rx, me.rx_target
                    ));
                }
            }
            Err(ConnError::Closed) if me.shut => {}
            Err(err) => {
                let cut = self
                    .severed
                    .get(&pair(me.node, other.node))
                    .is_some_and(|&t| t >= c.started);
                if !cut {
                    self.violation(&format!(
                        "connection {id} end {e} ended ({err}) but its peer node was never lost"
                    ));
                }
            }
        }
    }

    /// The closer shuts down once it wrote and read everything (`Connection::shutdown`).
    pub(super) fn conn_close(&mut self, id: usize, e: usize) -> bool {
        let c = &self.conns[id];
        let end = &c.ends[e];
        if c.closer() != e || end.shut || end.tx < end.tx_target || end.rx < end.rx_target {
            return false;
        }
        let Some((node, port)) = self.conn_port(id, e) else {
            return false;
        };
        let now = self.now;
        let Some(n) = self.nodes[node].as_mut() else {
            return false;
        };
        let Some(core) = n.conn_mut(port) else {
            return false;
        };
        if core.state() != ConnState::Established {
            return false;
        }
        core.shutdown(ErrorCode::ConnShutdown);
        n.conn_flush(now, port);
        self.trace(format_args!("connection {id} end {e} shuts down"));
        self.conns[id].ends[e].shut = true;
        true
    }

    /// The pair `a`, `b` lost contact now (crash, restart, partition): live connection ends
    /// between them must be ended by their core within [`Sim::down_bound`].
    pub(super) fn sever(&mut self, a: usize, b: usize, partition: bool) {
        self.severed.insert(pair(a, b), self.now);
        let deadline = self.now + self.down_bound();
        for c in self.conns.iter_mut() {
            let nodes = (c.ends[0].node, c.ends[1].node);
            if pair(nodes.0, nodes.1) != pair(a, b) {
                continue;
            }
            let established = c.ends.iter().all(|e| e.port.is_some());
            for e in c.ends.iter_mut() {
                if established && !e.gone && e.core_end.is_none() && e.abort_by.is_none() {
                    e.abort_by = Some((deadline, partition));
                }
            }
        }
    }

    /// Node `n` crashed: its connection ends vanish.
    pub(super) fn conns_crash(&mut self, n: usize) {
        for c in self.conns.iter_mut() {
            for e in c.ends.iter_mut().filter(|e| e.node == n) {
                e.gone = true;
                e.abort_by = None;
            }
        }
        for o in 0..self.cfg.nodes {
            if o != n {
                self.sever(n, o, false);
            }
        }
    }

    /// Invariant 7, every step: flow-control bounds on every socket; every end the core
    /// reports is legitimate; connections whose peer node was lost end in time.
    pub(super) fn check_conns(&mut self) {
        let now = self.now;
        let bound = self.conn_rx_bound();
        for id in 0..self.conns.len() {
            for e in 0..2 {
                let Some((node, port)) = self.conn_port(id, e) else {
                    continue;
                };
                let Some(core) = self.node(node).and_then(|n| n.conn(port)) else {
                    continue;
                };
                let (mem, end, state) = (core.rx_mem(), core.end(), core.state());
                let (unacked, win) = (core.snt_unacked(), core.snd_win());
                let max = Self::overshoot(core);
                let sent = self.node(node).map_or(0, |n| n.conn_blocks_sent(port));
                self.conns[id].ends[e].blocks_tx = sent;
                self.max_conn_rx_mem = self.max_conn_rx_mem.max(mem);
                if mem > bound || mem >= RCVBUF_DEFAULT {
                    self.violation(&format!(
                        "connection {id} end {e}: {mem} bytes queued, bound {bound}"
                    ));
                }
                if state == ConnState::Established && unacked > win + max {
                    self.violation(&format!(
                        "connection {id} end {e}: {unacked} blocks unacknowledged, window {win}"
                    ));
                }
                // Acks only count what the peer's application read: what was written and not
                // yet read is unacknowledged.
                let c = &self.conns[id];
                let unread = c.ends[e].blocks_tx.saturating_sub(c.ends[1 - e].blocks_rx);
                if state == ConnState::Established && (unacked as u64) < unread {
                    self.violation(&format!(
                        "connection {id} end {e}: {unacked} blocks unacknowledged but {unread} written and not yet read by the peer"
                    ));
                }
                let ce = &self.conns[id].ends[e];
                if let (Some(why), None) = (end, ce.core_end) {
                    self.conn_check_end(id, e, why, false);
                    let t = self.elapsed();
                    let ce = &mut self.conns[id].ends[e];
                    ce.core_end = Some(why);
                    ce.ended_at = Some(t);
                    ce.abort_by = None;
                } else if let Some((d, _)) = ce.abort_by.filter(|(d, _)| now > *d) {
                    self.violation(&format!(
                        "connection {id} end {e} still {state:?} {:?} after its peer node was lost (bound {:?})",
                        now - d,
                        self.down_bound()
                    ));
                }
            }
        }
    }
}
