//! Connection setup and teardown (kernel `net/tipc/socket.c`: `tipc_listen`, `tipc_connect`,
//! `tipc_sk_finish_conn`, `tipc_accept`, `__tipc_shutdown`; `node.c: node_lost_contact`).
//!
//! Spec: tipc-protocol.md §9.4 (setup: SYN, 0-RTT data, ACK, OVERLOAD retry), §9.7 (shutdown,
//! abort, node loss).

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tipc_transport::caps;
use tipc_transport::wire::{user, DataType, ErrorCode, Header, SHORT_H_SIZE};
use tipc_transport::NodeAddr;

use super::{
    ConnCore, ConnError, ConnState, Output, RxItem, SynDest, Timer, Verdict, CONN_PROBING_INTV,
    FLOWCTL_MSG_WIN,
};
use crate::addr::{Scope, ServiceAddr, SocketAddr};
use crate::socket::{build_direct, build_named, reverse, truesize, SendOpts};

impl ConnCore {
    /// Start listening (`listen()`): OPEN -> LISTEN.
    pub fn listen(&mut self) -> Result<(), ConnError> {
        if self.state != ConnState::Open {
            return Err(ConnError::BadState);
        }
        self.state = ConnState::Listen;
        Ok(())
    }

    fn opts(&self) -> SendOpts {
        SendOpts {
            importance: self.importance,
            dest_droppable: false,
            src_droppable: false,
        }
    }

    /// Send the SYN (`connect()` with empty `data`, or the implicit "0-RTT" SYN+ of `sendmsg()`
    /// with data): OPEN -> CONNECTING. The SYN (w0 bit 17) is queued as an [`Output`]; a copy
    /// is kept for an OVERLOAD retry. The connect timer (8 s) starts for `connect()` only: a
    /// SYN+ waits as long as `sendmsg()` does, by default without limit (`__tipc_sendmsg` waits
    /// `sk_sndtimeo`, and neither wait aborts the socket in the kernel), so a slow link never
    /// turns a 0-RTT connection whose data is on its way into [`ConnError::Timeout`].
    pub fn connect(&mut self, dest: SynDest, data: &[u8], now: Instant) -> Result<(), ConnError> {
        if self.state != ConnState::Open {
            return Err(ConnError::BadState);
        }
        let opts = self.opts();
        let msg = match dest {
            SynDest::Socket(sa) => build_direct(self.own, sa, &opts, data),
            SynDest::Service(name) => build_named(
                self.own,
                name,
                SocketAddr { node: 0, port: 0 },
                Scope::Cluster,
                &opts,
                data,
            ),
        };
        let mut msg = msg.map_err(|_| ConnError::TooLarge(data.len()))?;
        Header::new_unchecked(&mut msg[..]).set_syn(true);
        if let SynDest::Socket(sa) = dest {
            self.peer = sa;
        }
        // An implicit SYN+ counts its data and header (§9.5).
        self.snt_unacked = if data.is_empty() {
            0
        } else {
            self.inc(msg.len())
        };
        self.syn = Some((dest, msg.clone().freeze()));
        self.state = ConnState::Connecting;
        self.timers[Timer::Connect] = data.is_empty().then(|| now + self.conn_timeout);
        self.push_syn(dest, msg);
        if !data.is_empty() {
            self.stats.tx_msgs += 1;
            self.stats.tx_bytes += data.len() as u64;
        }
        Ok(())
    }

    pub(super) fn push_syn(&mut self, dest: SynDest, msg: BytesMut) {
        match dest {
            SynDest::Socket(sa) => self.out.push_back(Output::ToNode(sa.node, msg)),
            SynDest::Service(name) => self.out.push_back(Output::Lookup(name, msg)),
        }
    }

    /// The SYN could not be sent at all (no binding, no route): CONNECTING -> DISCONNECTING.
    pub fn connect_failed(&mut self, why: ConnError) {
        if self.state == ConnState::Connecting {
            self.abort(Err(why));
        }
    }

    /// A named SYN ([`Output::Lookup`]) was resolved and sent to `node`: a loss of that node
    /// now fails the connect with [`ConnError::NoNode`] ([`ConnCore::handle_node_lost`]), as it does
    /// for a SYN to a socket address. Without it a 0-RTT SYN+, which has no connect timeout,
    /// would wait for a lost node forever.
    pub fn syn_sent_to(&mut self, node: NodeAddr) {
        if self.state == ConnState::Connecting && self.peer.node == 0 {
            self.peer.node = node;
        }
    }

    /// `tipc_sk_finish_conn`: ESTABLISHED with `peer`, flow-control mode from its caps.
    pub(super) fn finish_conn(&mut self, peer: SocketAddr, peer_caps: u16, now: Instant) {
        self.peer = peer;
        self.state = ConnState::Established;
        self.syn = None;
        self.timers[Timer::Connect] = None;
        self.timers[Timer::SynRetry] = None;
        self.timers[Timer::Probe] = Some(now + CONN_PROBING_INTV);
        self.probe_unacked = false;
        self.block_fc = peer_caps & caps::BLOCK_FLOWCTL != 0;
        self.peer_caps = peer_caps;
        self.nagle.txq.clear();
        self.nagle.backlog = 0;
        self.set_nagle();
        if !self.block_fc {
            self.rcv_win = FLOWCTL_MSG_WIN;
            self.snd_win = FLOWCTL_MSG_WIN;
        }
    }

    pub(super) fn abort(&mut self, why: Result<(), ConnError>) {
        // Held stream data cannot be delivered any more (the kernel purges its write queue).
        self.nagle.txq.clear();
        self.nagle.backlog = 0;
        self.state = ConnState::Disconnecting;
        self.end.get_or_insert(why);
        self.syn = None;
        self.timers[Timer::Connect] = None;
        self.timers[Timer::SynRetry] = None;
        self.timers[Timer::Probe] = None;
    }

    /// LISTEN: take the next connection request and create the accepted socket (`tipc_accept`)
    /// at `new_own`: ESTABLISHED with the request's `{orignode, origport}`, the request's
    /// importance, its data (if any) queued, and the empty ACK `CONN_MSG` queued on the new
    /// core. `peer_caps` are the requester's node capabilities.
    pub fn accept(
        &mut self,
        new_own: SocketAddr,
        peer_caps: u16,
        now: Instant,
    ) -> Option<ConnCore> {
        if self.state != ConnState::Listen {
            return None;
        }
        let item = self.rx.pop_front()?;
        self.rx_mem -= item.truesize;
        let h = Header::new_unchecked(&item.msg[..]);
        let peer = SocketAddr {
            node: h.orignode(),
            port: h.origport(),
        };
        let mut c = ConnCore::new(new_own);
        c.nagle.stream = self.nagle.stream;
        c.nagle.nodelay = self.nagle.nodelay;
        c.importance = h.user().min(3);
        if h.is_data()
            && h.mtype() == DataType::Named as u8
            && h.header_len() >= tipc_transport::wire::NAMED_H_SIZE
        {
            c.dest_name = Some(ServiceAddr {
                type_: h.nametype(),
                instance: h.nameinst(),
            });
        }
        c.finish_conn(peer, peer_caps, now);
        if !h.payload().is_empty() {
            c.stats.rx_msgs += 1;
            let ts = truesize(item.msg.len());
            c.rx_mem += ts;
            c.rx.push_back(RxItem {
                msg: item.msg.clone(),
                truesize: ts,
            });
        }
        // The ACK: an empty stream send, counted like one (`__tipc_sendstream`).
        let ack = c.short_msg(c.importance, 0, &[]);
        c.snt_unacked += c.inc(SHORT_H_SIZE);
        c.nagle.oneway = 1;
        c.out.push_back(Output::ToNode(peer.node, ack));
        Some(c)
    }

    /// The origin `{orignode, origport}` of the next connection request (LISTEN).
    pub fn peek_request(&self) -> Option<SocketAddr> {
        if self.state != ConnState::Listen {
            return None;
        }
        let h = Header::new_unchecked(&self.rx.front()?.msg[..]);
        Some(SocketAddr {
            node: h.orignode(),
            port: h.origport(),
        })
    }

    /// Pending connection requests (LISTEN).
    pub fn backlog(&self) -> usize {
        if self.state == ConnState::Listen {
            self.rx.len()
        } else {
            0
        }
    }

    /// `__tipc_shutdown` with `err` (`NoPort` for `close()`, `ConnShutdown` for `shutdown()`):
    /// CONNECTING/ESTABLISHED -> DISCONNECTING with a FIN to the peer (the first unread message
    /// rejected back with `err`, else an empty CRITICAL CONN_MSG with errcode `err`); LISTEN
    /// rejects every pending request with `err`. Nothing is sent in other states.
    pub fn shutdown(&mut self, err: ErrorCode) {
        match self.state {
            ConnState::Connecting | ConnState::Established => {
                let was_connected = self.state == ConnState::Established;
                // Held stream data goes out before the FIN.
                self.push_backlog(false);
                self.abort(Err(ConnError::Closed));
                // Unread data is rejected back as the FIN.
                let first = self
                    .rx
                    .iter()
                    .position(|i| Header::new_unchecked(&i.msg[..]).errcode() == 0);
                if let Some(i) = first {
                    let m = self.rx[i].msg.clone();
                    self.rx.clear();
                    self.rx_mem = 0;
                    if let Some(ret) = reverse(&m, err, self.own.node) {
                        let to = Header::new_unchecked(&ret[..]).destnode();
                        self.out.push_back(Output::ToNode(to, ret));
                        return;
                    }
                }
                self.rx.clear();
                self.rx_mem = 0;
                if was_connected || self.peer.port != 0 {
                    let fin = self.short_msg(user::CRITICAL, err as u8, &[]);
                    self.out.push_back(Output::ToNode(self.peer.node, fin));
                }
            }
            ConnState::Listen => {
                self.state = ConnState::Disconnecting;
                self.end = Some(Err(ConnError::Closed));
                while let Some(i) = self.rx.pop_front() {
                    let _ = self.reject(&i.msg, err);
                }
                self.rx_mem = 0;
            }
            ConnState::Open => {
                self.state = ConnState::Disconnecting;
                self.end = Some(Err(ConnError::Closed));
            }
            ConnState::Disconnecting => {}
        }
    }

    /// The abort the local node generates for a connection whose peer node was lost
    /// (`node_lost_contact`): a CRITICAL CONN_MSG, 24-byte header, errcode `NO_NODE`, that
    /// looks as if it came from the peer socket. `None` unless connected to `node`.
    pub fn node_lost_msg(&self, node: NodeAddr) -> Option<Bytes> {
        if self.state != ConnState::Established || self.peer.node != node {
            return None;
        }
        let mut buf = BytesMut::zeroed(SHORT_H_SIZE);
        let mut h = Header::new_unchecked(&mut buf[..]);
        h.init(
            user::CRITICAL,
            DataType::Conn as u8,
            SHORT_H_SIZE,
            SHORT_H_SIZE,
            node,
        );
        h.set_errcode(ErrorCode::NoNode as u8);
        h.set_origport(self.peer.port);
        h.set_destport(self.own.port);
        Some(buf.freeze())
    }

    /// The peer node was lost: an established connection to it ends with
    /// [`ConnError::NoNode`] (through [`ConnCore::node_lost_msg`]); a connection request to it
    /// fails the same way. Returns true if this socket was affected.
    pub fn handle_node_lost(&mut self, node: NodeAddr, now: Instant) -> bool {
        if let Some(m) = self.node_lost_msg(node) {
            return self.handle_message(m, 0, now) == Verdict::Queued;
        }
        if self.state == ConnState::Connecting && self.peer.node == node && node != 0 {
            self.abort(Err(ConnError::NoNode));
            return true;
        }
        false
    }
}
