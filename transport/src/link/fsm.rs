//! The link endpoint FSM and its protocol messages (kernel `link.c`: `tipc_link_fsm_evt`,
//! `tipc_link_timeout`, `tipc_link_reset`, `tipc_link_build_proto_msg`,
//! `tipc_link_proto_rcv`), spec §4.3 (LINK_PROTOCOL), §4.4 (endpoint FSM), §4.7 (supervision,
//! tolerance, probes), §4.8 (MTU) and the broadcast fields of §5.2 they carry.

use super::tx::with_seqno;
use super::{
    DownReason, FailoverRx, FsmEvent, Link, LinkEvent, LinkState, Outgoing, MAX_PRIORITY,
    MAX_TOLERANCE_MS, MIN_MTU, MIN_TOLERANCE_MS, PROTO_DATA_MAX,
};
use crate::wire::{
    self, field, Header, LinkProtoRepr, LinkProtoType, Seqno, IF_NAME_LEN, INT_H_SIZE,
};
use bytes::BytesMut;
use std::time::{Duration, Instant};

/// A link's timers (quinn-proto's `Timer`): each indexes the array of deadlines
/// `Link::deadlines` returns, and [`Link::poll_timeout`] is their minimum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// Supervision (§4.7): nothing received for the tolerance fails the link. Armed while up.
    Supervision,
    /// The periodic tick (`tipc_link_timeout`), every `min(tolerance / 4, 500 ms)`.
    Tick,
    /// The next extra probe of a silent link (`tolerance / 16` apart). Armed while up.
    SilentProbe,
    /// A tail-loss probe: packets are unacknowledged and nothing was sent or acknowledged for
    /// `tolerance / 64`. Armed once per such pause.
    TailProbe,
}

impl Timer {
    /// Number of timers.
    const COUNT: usize = 4;
}

impl Link {
    // ------------------------------------------------------------------ timers

    fn tick_interval(&self) -> Duration {
        (self.tolerance / 4).min(Duration::from_millis(500))
    }

    /// Interval between probes of a silent link: `tolerance / 16` (about 12 probes before the
    /// link fails, so that even at 30 % loss each way a live peer is heard in time).
    fn silent_probe_interval(&self) -> Duration {
        (self.tolerance / 16).max(Duration::from_millis(1))
    }

    /// How long a pause with unacknowledged packets lasts before a tail-loss probe:
    /// `tolerance / 64` (23 ms at the default 1.5 s), at least 2 ms.
    fn tail_probe_interval(&self) -> Duration {
        (self.tolerance / 64).max(Duration::from_millis(2))
    }

    /// When the tail-loss probe is due: the kernel learns of a lost last packet only from the
    /// STATE of its next tick (up to 375 ms later, since no later packet reveals the gap); we
    /// send that STATE, a probe carrying our `next_sent`, once the sender paused this long.
    /// The peer answers it with the gap (`tipc_link_proto_rcv`'s `rcvgap`), which we
    /// retransmit. Extra STATEs are ordinary protocol traffic, so this stays compatible.
    fn tail_probe_at(&self) -> Option<Instant> {
        (self.is_up() && !self.transmq.is_empty() && !self.tail_probed)
            .then(|| self.last_progress + self.tail_probe_interval())
    }

    /// When the next extra probe of a silent link is due: once nothing was received for a tick
    /// interval, every [`Link::silent_probe_interval`] after the last probe.
    fn silent_probe_at(&self) -> Option<Instant> {
        if !self.is_up() {
            return None;
        }
        let silent_from = self.last_rx + self.tick_interval();
        Some(silent_from.max(self.last_probe + self.silent_probe_interval()))
    }

    /// The deadline of each [`Timer`], indexed by it (`None`: not armed). Derived from the
    /// link's state on every call: supervision and the silent-link probe follow `last_rx`,
    /// `last_probe` and the tolerance, which change with every packet.
    fn deadlines(&self) -> [Option<Instant>; Timer::COUNT] {
        let mut d = [None; Timer::COUNT];
        if self.is_up() {
            d[Timer::Supervision as usize] = Some(self.last_rx + self.tolerance);
        }
        d[Timer::Tick as usize] = Some(self.next_tick);
        d[Timer::SilentProbe as usize] = self.silent_probe_at();
        d[Timer::TailProbe as usize] = self.tail_probe_at();
        d
    }

    /// Returns the next time at which [`Link::handle_timeout`] should be called: the earliest
    /// deadline of the link's timers (always `Some`: the link ticks in every state).
    ///
    /// The value returned may change after any `handle_*` call or command ([`Link::send`],
    /// [`Link::shutdown`], [`Link::force_reset`], ...); call it again after each.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadlines().into_iter().flatten().min()
    }

    /// Drive timers: the supervision deadline, the periodic tick (RESET/ACTIVATE/STATE
    /// sending, probing, window checks) and the extra probes of a silent link. Calling it
    /// early does nothing.
    pub fn handle_timeout(&mut self, now: Instant) {
        let deadlines = self.deadlines();
        let due = |t: Timer| deadlines[t as usize].is_some_and(|at| now >= at);
        if due(Timer::Supervision) {
            self.fail(now, DownReason::Timeout);
            return;
        }
        if due(Timer::Tick) {
            self.tick(now);
            self.next_tick = now + self.tick_interval();
        } else if due(Timer::SilentProbe) {
            // Silent for a tick: the kernel probes only at ticks (and fails after about
            // `abort_limit + 1` silent ones); under heavy loss a live peer may then not be heard
            // within the tolerance, so probe more often in between. A probe is an ordinary
            // STATE (the peer answers it and NACKs what we miss), so this stays compatible.
            self.build_proto(LinkProtoType::State, true, false, 0, now);
        } else if due(Timer::TailProbe) {
            self.tail_probed = true;
            self.stats.tail_probes += 1;
            self.build_proto(LinkProtoType::State, true, false, 0, now);
        }
    }

    /// The kernel's `tipc_link_timeout`.
    fn tick(&mut self, now: Instant) {
        if self.failover.is_some() {
            return;
        }
        match self.state {
            LinkState::Established | LinkState::Synching => {
                let state = self.rcv_unacked > 0 || self.bc_unacked || !self.transmq.is_empty();
                // Every link is monitored in clusters below the monitoring threshold.
                let mut probe = self.silent_intv_cnt > 0;
                self.silent_intv_cnt += 1;
                probe |= !self.deferdq.is_empty();
                if self.snd_nxt == self.checkpoint {
                    self.update_cwin(0, false);
                    probe = true;
                }
                self.checkpoint = self.snd_nxt;
                if state || probe {
                    self.build_proto(LinkProtoType::State, probe, false, 0, now);
                }
            }
            LinkState::Reset => {
                let setup = self.rst_cnt <= 4 || (self.rst_cnt + 1).is_multiple_of(16);
                self.rst_cnt += 1;
                if setup {
                    self.build_proto(LinkProtoType::Reset, false, false, 0, now);
                }
            }
            LinkState::Establishing => {
                self.build_proto(LinkProtoType::Activate, false, false, 0, now);
            }
            _ => {}
        }
    }

    // ------------------------------------------------------------------ FSM

    fn fsm(&mut self, evt: FsmEvent) -> bool {
        use FsmEvent as E;
        use LinkState as S;
        let mut down = false;
        self.state = match (self.state, evt) {
            (S::Resetting, E::PeerReset) => S::PeerReset,
            (S::Resetting, E::Reset) => S::Reset,
            (S::Reset, E::PeerReset) => S::Establishing,
            (S::PeerReset, E::Reset) => S::Establishing,
            (S::Establishing, E::Establish) => S::Established,
            (S::Establishing, E::Reset) => S::Reset,
            (S::Established | S::Synching, E::PeerReset) => {
                down = true;
                S::PeerReset
            }
            (S::Established | S::Synching, E::Failure) => {
                down = true;
                S::Resetting
            }
            (S::Established | S::Synching, E::Reset) => S::Reset,
            (s, _) => s,
        };
        down
    }

    /// Link went down: node-level glue of `__tipc_node_link_down` for a single link: RESET
    /// event, queues purged, a RESET (or ACTIVATE) sent at once.
    fn went_down(&mut self, now: Instant, reason: DownReason) {
        self.fsm(FsmEvent::Reset);
        self.reset(now);
        self.events.push_back(LinkEvent::Down(reason));
        if reason == DownReason::PeerReset {
            // The caller stores the peer's new session first and then answers with ACTIVATE.
            return;
        }
        let mtyp = if self.state == LinkState::Establishing {
            LinkProtoType::Activate
        } else {
            LinkProtoType::Reset
        };
        self.build_proto(mtyp, false, false, 0, now);
        // `tipc_link_build_reset_msg`: the first RESET after we took the link down tells the
        // peer we are stopping, so a peer that still thinks the link works resets at once.
        if mtyp == LinkProtoType::Reset {
            self.mark_last_stopping();
        }
    }

    fn mark_last_stopping(&mut self) {
        if let Some(Outgoing::Proto(buf)) = self.outq.back_mut() {
            let mut h = Header::new_unchecked(&mut buf[..]);
            h.set_flag(field::PEER_STOPPING, true);
        }
    }

    pub(super) fn fail(&mut self, now: Instant, reason: DownReason) {
        if self.fsm(FsmEvent::Failure) {
            self.went_down(now, reason);
        }
    }

    pub(super) fn link_up(&mut self, now: Instant) {
        self.fsm(FsmEvent::Establish);
        if !self.is_up() {
            return;
        }
        self.last_rx = now;
        self.silent_intv_cnt = 0;
        self.next_tick = now + self.tick_interval();
        self.checkpoint = self.snd_nxt;
        // "Ensure that a STATE message goes first."
        self.rcv_unacked = 0;
        self.stats.tx_acks += 1;
        self.build_proto(LinkProtoType::State, false, false, 0, now);
        self.events.push_back(LinkEvent::Up);
    }

    /// `tipc_link_reset`: empty all queues, restart sequencing, new session.
    fn reset(&mut self, now: Instant) {
        self.in_session = false;
        self.peer_session = self.peer_session.wrapping_sub(1);
        self.session = self.session.wrapping_add(1);
        self.mtu = self.cfg.mtu;
        self.set_queue_limits();
        // What was sent and not acknowledged, then the backlog, then a packet being filled
        // under a cork: in order, each with its seqno (the unsent ones numbered on from
        // `snd_nxt`, as failover numbers them), for the node layer to tunnel or return.
        self.failed_tx.clear();
        for p in self.transmq.drain(..) {
            self.failed_tx.push(with_seqno(&p.buf, &p.body, p.seqno));
        }
        let mut next = self.snd_nxt;
        let unsent = self.backlogq.drain(..).map(|(_, b)| b);
        for f in unsent.chain(self.staged.take().map(|(_, f)| f)) {
            let (head, body) = f.into_parts();
            self.failed_tx.push(with_seqno(&head, &body, next));
            next = next.next();
        }
        self.failed_next = next;
        self.stats.purged += self.failed_tx.len() as u64;
        self.failed_rx = Some(FailoverRx {
            drop_point: self.rcv_nxt,
            drop_abs: self.rcv_nxt_abs,
            deferred: std::mem::take(&mut self.deferdq),
            reasm: std::mem::take(&mut self.reasm),
        });
        for b in self.backlog.iter_mut() {
            b.len = 0;
            if b.congested {
                b.congested = false;
            }
        }
        for imp in 0..4u8 {
            self.events.push_back(LinkEvent::Unblocked(imp));
        }
        self.bundle_open = false;
        self.outq.clear();
        self.rcv_unacked = 0;
        self.snd_nxt = Seqno(1);
        self.sent_in_session = 0;
        self.rcv_nxt = Seqno(1);
        self.rcv_nxt_abs = 1;
        self.snd_nxt_state = Seqno(1);
        self.rcv_nxt_state = Seqno(1);
        self.silent_intv_cnt = 0;
        self.rst_cnt = 0;
        self.window = self.cfg.min_win;
        self.ssthresh = self.cfg.max_win;
        self.cong_acks = 0;
        self.checkpoint = Seqno(1);
        self.bc_synced = false;
        self.bc_gap = 0;
        self.bc_unacked = false;
        self.next_tick = now + self.tick_interval();
    }

    /// Take the link down locally (bearer disabled or node stopping): the peer is told with a
    /// RESET carrying `peer_stopping`, so it resets at once instead of waiting for the tolerance.
    pub fn shutdown(&mut self, now: Instant) {
        let was_up = self.is_up();
        if was_up {
            self.fsm(FsmEvent::Failure);
            self.fsm(FsmEvent::Reset);
            self.reset(now);
            self.events.push_back(LinkEvent::Down(DownReason::Local));
        }
        self.build_proto(LinkProtoType::Reset, false, false, 0, now);
        self.mark_last_stopping();
    }

    /// The node layer tells the link the peer node was lost on another path (or the link must
    /// restart): force it down.
    pub fn force_reset(&mut self, now: Instant, reason: DownReason) {
        if self.is_up() {
            self.fail(now, reason);
        }
    }

    // ------------------------------------------------------------------ protocol messages

    /// Send the setup message of the current state now (RESET in RESET, ACTIVATE in
    /// ESTABLISHING) instead of at the next tick: the node layer calls it when the peer's
    /// first packet shows it is there, after setup messages to it were held back.
    pub fn send_setup(&mut self, now: Instant) {
        if self.failover.is_some() {
            return;
        }
        match self.state {
            LinkState::Reset => self.build_proto(LinkProtoType::Reset, false, false, 0, now),
            LinkState::Establishing => {
                self.build_proto(LinkProtoType::Activate, false, false, 0, now)
            }
            _ => {}
        }
    }

    /// Send a STATE now (an explicit ack of broadcast packets, or a broadcast NACK), if up.
    pub fn send_state(&mut self, now: Instant) {
        if self.is_up() {
            self.build_proto(LinkProtoType::State, false, false, 0, now);
        }
    }

    pub(super) fn build_proto(
        &mut self,
        mtyp: LinkProtoType,
        probe: bool,
        probe_reply: bool,
        rcvgap: u16,
        now: Instant,
    ) {
        if matches!(
            self.state,
            LinkState::Resetting | LinkState::PeerReset | LinkState::FailingOver
        ) {
            return;
        }
        if !self.is_up() && mtyp == LinkProtoType::State {
            return;
        }
        let mut rcvgap = rcvgap;
        if probe || probe_reply {
            if let Some(k) = self.deferdq.first_key() {
                rcvgap = (k - self.rcv_nxt_abs) as u16;
            }
        }
        // RESET/ACTIVATE carry the interface name; a STATE to a peer with TIPC_GAP_ACK_BLOCK
        // its gap ACK record.
        let mut data = [0u8; PROTO_DATA_MAX];
        let dlen = if mtyp != LinkProtoType::State {
            let n = self.cfg.if_name.len().min(IF_NAME_LEN - 1);
            data[..n].copy_from_slice(&self.cfg.if_name.as_bytes()[..n]);
            IF_NAME_LEN
        } else if self.cfg.peer_caps & crate::caps::GAP_ACK_BLOCK != 0 {
            // Unicast blocks only with a NACK, as the kernel builds them.
            let (nxt, abs) = (self.rcv_nxt, self.rcv_nxt_abs);
            let held = self
                .deferdq
                .keys()
                .filter(|_| rcvgap & 0x1FFF != 0)
                .map(|k| nxt.add((k - abs) as u16));
            wire::build_gap_ack_record(held, &mut data)
        } else {
            0
        };
        let mut r = LinkProtoRepr {
            mtype: mtyp,
            keepalive: false,
            seq_gap: 0,
            bcast_ack: self.bcast_ack,
            ack: self.rcv_nxt.sub(1).0,
            seqno: self.snd_nxt.add(u16::MAX / 2).0,
            prevnode: self.cfg.own_addr,
            last_bcast: self.last_bcast,
            next_sent: self.snd_nxt.0,
            session: self.session,
            bc_ack_invalid: !self.bc_synced,
            peer_stopping: false,
            redundant_link: self.bc_synced,
            bearer_id: self.cfg.bearer_id,
            priority: 0,
            net_plane: 0,
            probe: false,
            orignode: self.cfg.own_addr,
            destnode: self.cfg.peer_addr,
            bc_gap: 0,
            max_pkt: 0,
            tolerance: 0,
            data: &data[..dlen],
        };
        if mtyp == LinkProtoType::State {
            if self.cfg.peer_caps & crate::caps::LINK_PROTO_SEQNO != 0 {
                r.seqno = self.snd_nxt_state.0;
                self.snd_nxt_state = self.snd_nxt_state.next();
            }
            r.seq_gap = rcvgap & 0x1FFF;
            r.bc_gap = self.bc_gap;
            r.probe = probe;
            r.keepalive = probe || probe_reply;
            self.stats.tx_states += 1;
            self.rcv_unacked = 0;
        } else {
            if mtyp == LinkProtoType::Activate {
                r.seq_gap = 1; // dest_session_valid
                r.bcast_ack = self.peer_session;
            }
            r.max_pkt = (self.cfg.mtu / 4).min(0xFFFF) as u16;
        }
        if probe {
            self.stats.tx_probes += 1;
            self.last_probe = now;
        }
        if rcvgap != 0 {
            self.stats.tx_nacks += 1;
        }
        let mut buf = [0u8; INT_H_SIZE + PROTO_DATA_MAX];
        let len = r.emit(&mut buf);
        if mtyp == LinkProtoType::State {
            self.bc_unacked = false;
        }
        self.outq
            .push_back(Outgoing::Proto(BytesMut::from(&buf[..len])));
    }

    fn validate_proto(&self, r: &LinkProtoRepr<'_>) -> bool {
        match r.mtype {
            LinkProtoType::Reset => {
                !self.in_session || Seqno(r.session).more(Seqno(self.peer_session))
            }
            LinkProtoType::Activate => {
                !self.in_session || !Seqno(r.session).less(Seqno(self.peer_session))
            }
            LinkProtoType::State => {
                if !self.in_session || r.session != self.peer_session {
                    return false;
                }
                if !self.is_up() && r.ack != 0 {
                    return false;
                }
                if self.cfg.peer_caps & crate::caps::LINK_PROTO_SEQNO == 0 {
                    return true;
                }
                !Seqno(r.seqno).less(self.rcv_nxt_state)
            }
        }
    }

    pub(super) fn proto_rcv(&mut self, now: Instant, r: &LinkProtoRepr<'_>) {
        if matches!(
            self.state,
            LinkState::Resetting | LinkState::PeerReset | LinkState::FailingOver
        ) || !self.validate_proto(r)
        {
            self.stats.proto_ignored += 1;
            return;
        }
        let peers_tol = r.tolerance as u32;
        let peers_prio = r.priority;
        match r.mtype {
            LinkProtoType::Reset | LinkProtoType::Activate => {
                let min_mtu = MIN_MTU + self.cfg.encap_hlen;
                if r.mtu() < min_mtu || r.data.len() < IF_NAME_LEN {
                    self.stats.proto_ignored += 1;
                    return;
                }
                self.complete_name(r.if_name());
                if (MIN_TOLERANCE_MS..=MAX_TOLERANCE_MS).contains(&peers_tol) {
                    self.tolerance = Duration::from_millis(peers_tol as u64);
                }
                if peers_prio > self.priority && peers_prio <= MAX_PRIORITY {
                    self.priority = peers_prio;
                }
                if r.peer_stopping {
                    self.fail(now, DownReason::PeerStopping);
                    return;
                }
                if let Some(ds) = r.dest_session() {
                    if ds != self.session {
                        if Seqno(self.session).less(Seqno(ds)) {
                            self.session = ds.wrapping_add(1);
                        }
                        return;
                    }
                }
                let mut up = false;
                if (r.mtype == LinkProtoType::Reset || !self.is_up())
                    && self.fsm(FsmEvent::PeerReset)
                {
                    self.went_down(now, DownReason::PeerReset);
                }
                if r.mtype == LinkProtoType::Activate && self.state == LinkState::Establishing {
                    up = true;
                }
                self.peer_session = r.session;
                self.in_session = true;
                self.peer_bearer_id = r.bearer_id;
                if self.mtu > r.mtu() {
                    self.mtu = r.mtu();
                    self.set_queue_limits();
                }
                if self.state == LinkState::Establishing && !up {
                    // Answer a RESET at once with ACTIVATE rather than waiting for the tick.
                    self.build_proto(LinkProtoType::Activate, false, false, 0, now);
                }
                if up {
                    self.link_up(now);
                }
            }
            LinkProtoType::State => {
                // `tipc_get_gap_ack_blks`: a capable peer's STATE starts its data with the
                // record; one whose length runs past the data is dropped whole.
                let mut blocks: &[u8] = &[];
                if self.cfg.peer_caps & crate::caps::GAP_ACK_BLOCK != 0 {
                    match wire::gap_ack_blocks(r.data) {
                        Some(uc) => blocks = uc,
                        None => {
                            self.stats.proto_ignored += 1;
                            return;
                        }
                    }
                }
                self.rcv_nxt_state = Seqno(r.seqno).next();
                if (MIN_TOLERANCE_MS..=MAX_TOLERANCE_MS).contains(&peers_tol) {
                    self.tolerance = Duration::from_millis(peers_tol as u64);
                }
                if peers_prio != 0 && peers_prio != self.priority && peers_prio <= MAX_PRIORITY {
                    self.priority = peers_prio;
                    self.fail(now, DownReason::PriorityChange);
                    return;
                }
                self.silent_intv_cnt = 0;
                self.last_rx = now;
                self.stats.rx_states += 1;
                if r.probe {
                    self.stats.rx_probes += 1;
                }
                if !self.is_up() {
                    if self.state == LinkState::Establishing {
                        self.link_up(now);
                    }
                    return;
                }
                let peers_snd_nxt = Seqno(r.next_sent);
                let reply = r.probe;
                let mut rcvgap = 0;
                if (reply || r.keepalive)
                    && peers_snd_nxt.more(self.rcv_nxt)
                    && self.deferdq.is_empty()
                {
                    rcvgap = peers_snd_nxt.diff(self.rcv_nxt);
                }
                if rcvgap != 0 || reply {
                    self.build_proto(LinkProtoType::State, false, reply, rcvgap, now);
                }
                if r.seq_gap != 0 {
                    self.stats.rx_nacks += 1;
                }
                self.advance_transmq(now, Seqno(r.ack), r.seq_gap, blocks);
            }
        }
    }

    fn complete_name(&mut self, peer_if: &[u8]) {
        if let Some(pos) = self.name.rfind(':') {
            let s = String::from_utf8_lossy(peer_if);
            if !s.is_empty() && self.name[pos + 1..] != *s {
                self.name.truncate(pos + 1);
                self.name.push_str(&s);
            }
        }
    }
}
