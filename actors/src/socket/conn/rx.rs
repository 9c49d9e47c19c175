//! Receiving: messages for a connection socket, CONN_MANAGER, the receive queue, reading and
//! the CONN_ACKs it sends (kernel `net/tipc/socket.c`: `tipc_sk_filter_rcv`,
//! `tipc_sk_filter_connect`, `tipc_sk_conn_proto_rcv`, `rcvbuf_limit`, `tipc_recvmsg`,
//! `tipc_sk_build_ack`).
//!
//! Spec: tipc-protocol.md §2.5 (CONN_MANAGER overlay), §2.6 (error codes), §9.2 (rejection),
//! §9.3 (receive limit), §9.4 (the listener's and the client's side of setup), §9.5 (flow
//! control), §9.6 (the nagle ack), §9.7 (probe replies, the peer's FIN).

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tipc_transport::caps;
use tipc_transport::wire::{user, ConnMgrRepr, ConnMgrType, DataType, ErrorCode, Header};

use super::{
    flowctl_msg_lim, ConnCore, ConnError, ConnState, Output, Read, RxItem, Timer, Verdict,
    FLOWCTL_BLK_SZ, TIPC_ACK_RATE,
};
use crate::addr::SocketAddr;
use crate::socket::{reverse, truesize};

/// A tiny xorshift for the OVERLOAD retry delay (the kernel's `get_random_bytes`).
fn xorshift(s: &mut u32) -> u32 {
    let mut x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    x
}

impl ConnCore {
    /// `tipc_sk_build_ack`: a CONN_ACK carrying the consumed count (reset to 0); with block
    /// flow control the receive window becomes the advertised one (512 blocks by default).
    fn build_ack(&mut self) -> BytesMut {
        let consumed = self.rcv_unacked.min(0xFFFF) as u16;
        self.rcv_unacked = 0;
        let adv = if self.block_fc {
            self.rcv_win = (self.rcvbuf / FLOWCTL_BLK_SZ / 4) as u32;
            self.rcv_win.min(0xFFFF) as u16
        } else {
            0
        };
        self.stats.acks_sent += 1;
        self.proto_msg(ConnMgrType::Ack, consumed, adv)
    }

    /// Queue the reversed copy of `msg` (if returnable), counting a rejection.
    pub(super) fn reject(&mut self, msg: &[u8], err: ErrorCode) -> Verdict {
        self.stats.rejected += 1;
        if let Some(ret) = reverse(msg, err, self.own.node) {
            let to = Header::new_unchecked(&ret[..]).destnode();
            self.out.push_back(Output::ToNode(to, ret));
        }
        Verdict::Rejected(err)
    }

    fn drop_msg(&mut self) -> Verdict {
        self.stats.dropped += 1;
        Verdict::Dropped
    }

    /// The receive limit for `msg` (`rcvbuf_limit`).
    fn rcv_limit(&self, h: &Header<&[u8]>) -> usize {
        if h.mtype() != DataType::Conn as u8 {
            return self.rcvbuf << h.user().min(3);
        }
        if self.block_fc {
            self.rcvbuf
        } else {
            flowctl_msg_lim()
        }
    }

    fn enqueue(&mut self, msg: Bytes, h: &Header<&[u8]>) -> Verdict {
        let ts = truesize(msg.len());
        if self.rx_mem + ts >= self.rcv_limit(h) {
            return self.reject(&msg, ErrorCode::Overload);
        }
        self.rx_mem += ts;
        self.rx.push_back(RxItem { msg, truesize: ts });
        Verdict::Queued
    }

    /// A message for this socket (`tipc_sk_filter_rcv` for connection sockets).
    ///
    /// `sender_caps` are the capabilities of the message's originating node (its SYN_BIT and
    /// BLOCK_FLOWCTL matter). Responses (rejections, acks, probe replies) are queued as
    /// [`Output`]s.
    pub fn handle_message(&mut self, msg: Bytes, sender_caps: u16, now: Instant) -> Verdict {
        let Ok(h) = Header::new_checked(&msg[..]) else {
            return self.drop_msg();
        };
        let usr = h.user();
        if usr == user::CONN_MANAGER {
            return self.on_proto(&msg);
        }
        if usr > user::CRITICAL {
            return self.drop_msg();
        }
        let mtype = h.mtype();
        if mtype > DataType::Direct as u8 || mtype == DataType::Mcast as u8 {
            // Group and multicast messages: not for a connection socket.
            if mtype == DataType::Mcast as u8 {
                return self.drop_msg();
            }
            return self.reject(&msg, ErrorCode::NoPort);
        }
        // Any message from anyone ends a run of one-way writes (`tipc_sk_filter_connect`).
        self.nagle.oneway = 0;
        let con_msg = mtype == DataType::Conn as u8;
        let err = h.errcode();
        let oport = h.origport();
        let onode = h.orignode();
        match self.state {
            ConnState::Connecting => {
                if con_msg {
                    if err != 0 {
                        self.abort(Err(ConnError::Refused(
                            ErrorCode::from_u8(err).unwrap_or(ErrorCode::NoPort),
                        )));
                        return Verdict::Consumed;
                    }
                    self.finish_conn(
                        SocketAddr {
                            node: onode,
                            port: oport,
                        },
                        sender_caps,
                        now,
                    );
                    self.importance = h.user();
                    if h.payload().is_empty() {
                        return Verdict::Consumed;
                    }
                    self.stats.rx_msgs += 1;
                    return self.enqueue(msg.clone(), &h);
                }
                // Only our own SYN coming back counts; anything else is ignored.
                let ours = err != 0 && h.syn() && h.destport() == self.own.port;
                let from_peer = self.peer.port == 0 || (oport == self.peer.port);
                if !ours || !from_peer {
                    return self.drop_msg();
                }
                let code = ErrorCode::from_u8(err).unwrap_or(ErrorCode::NoPort);
                if code != ErrorCode::Overload || self.syn.is_none() {
                    self.abort(Err(ConnError::Refused(code)));
                    return Verdict::Consumed;
                }
                let quarter = (self.conn_timeout.as_millis() as u64 / 4).max(1);
                let ms = 100 + xorshift(&mut self.rng) as u64 % quarter;
                self.timers[Timer::SynRetry] = Some(now + Duration::from_millis(ms));
                Verdict::Consumed
            }
            ConnState::Open | ConnState::Disconnecting => self.reject(&msg, ErrorCode::NoPort),
            ConnState::Listen => {
                if !h.syn() && sender_caps & caps::SYN_BIT != 0 {
                    return self.reject(&msg, ErrorCode::NoPort);
                }
                if con_msg || err != 0 {
                    return self.reject(&msg, ErrorCode::NoPort);
                }
                self.enqueue(msg.clone(), &h)
            }
            ConnState::Established => {
                self.push_backlog(false);
                if con_msg && err == 0 && oport == self.peer.port && onode == self.peer.node {
                    if h.ack_required() {
                        // ack_required (Nagle): answer at once with a nagle CONN_ACK.
                        let mut ack = self.build_ack();
                        Header::new_unchecked(&mut ack[..]).set_nagle_ack(true);
                        self.out.push_back(Output::ToNode(self.peer.node, ack));
                    }
                    self.stats.rx_msgs += 1;
                    return self.enqueue(msg.clone(), &h);
                }
                if !self.is_peer_msg(&h) {
                    return self.reject(&msg, ErrorCode::NoPort);
                }
                if err == 0 {
                    self.stats.rx_msgs += 1;
                    return self.enqueue(msg.clone(), &h);
                }
                // FIN (or one of our messages returned, or the local node-lost abort).
                let why = match ConnError::from_code(err) {
                    ConnError::PeerShutdown => Ok(()),
                    e => Err(e),
                };
                self.abort(why);
                self.rx.push_back(RxItem {
                    msg: msg.clone(),
                    truesize: 0,
                });
                Verdict::Queued
            }
        }
    }

    /// `tsk_peer_msg`: from the connected peer socket?
    fn is_peer_msg(&self, h: &Header<&[u8]>) -> bool {
        if self.state != ConnState::Established || h.origport() != self.peer.port {
            return false;
        }
        let orig = h.orignode();
        orig == self.peer.node
            || (orig == 0 && self.peer.node == self.own.node)
            || (self.peer.node == 0 && orig == self.own.node)
    }

    /// CONN_MANAGER (`tipc_sk_conn_proto_rcv`): probe, probe reply, ack.
    fn on_proto(&mut self, msg: &Bytes) -> Verdict {
        let Ok(h) = Header::new_checked(&msg[..]) else {
            return self.drop_msg();
        };
        let Ok(r) = ConnMgrRepr::parse(&h) else {
            return self.drop_msg();
        };
        if !self.is_peer_msg(&h) {
            return self.drop_msg();
        }
        if r.errcode != 0 {
            self.abort(Err(ConnError::from_code(r.errcode)));
            self.rx.push_back(RxItem {
                msg: msg.clone(),
                truesize: 0,
            });
            return Verdict::Queued;
        }
        self.probe_unacked = false;
        match r.mtype {
            ConnMgrType::Probe => {
                if let Some(mut rep) = reverse(msg, ErrorCode::Ok, self.own.node) {
                    Header::new_unchecked(&mut rep[..]).set_mtype(ConnMgrType::ProbeReply as u8);
                    let to = Header::new_unchecked(&rep[..]).destnode();
                    self.out.push_back(Output::ToNode(to, rep));
                }
            }
            ConnMgrType::Ack => {
                self.stats.acks_rcvd += 1;
                self.push_backlog(r.nagle_ack);
                let n = r.conn_ack as u32;
                if n <= self.snt_unacked {
                    self.snt_unacked -= n;
                    if self.block_fc {
                        self.snd_win = r.adv_win as u32;
                    }
                }
            }
            ConnMgrType::ProbeReply => {}
        }
        Verdict::Consumed
    }

    /// Take the next received unit (`recvmsg`): data counts into the consumed count when it is
    /// read, and a CONN_ACK is queued once that count reaches `rcv_win / 4`. After the last
    /// data the end is reported on every call; `None` while nothing is there.
    pub fn read(&mut self) -> Option<Read> {
        if self.state == ConnState::Listen {
            return None;
        }
        let item = match self.rx.pop_front() {
            Some(i) => i,
            // After the last data the end is reported, as often as asked.
            None => return self.end.map(Read::End),
        };
        self.rx_mem -= item.truesize;
        let h = Header::new_unchecked(&item.msg[..]);
        if h.errcode() != 0 {
            // The end marker: report it, drop what follows.
            self.rx.clear();
            self.rx_mem = 0;
            return Some(Read::End(self.end.unwrap_or(Err(ConnError::Reset))));
        }
        let hlen = h.header_len();
        let data = item
            .msg
            .slice(hlen.min(h.size())..h.size().min(item.msg.len()));
        if self.state == ConnState::Established {
            self.rcv_unacked += self.inc(h.size());
            if self.rcv_unacked >= self.rcv_win / TIPC_ACK_RATE {
                let ack = self.build_ack();
                self.out.push_back(Output::ToNode(self.peer.node, ack));
            }
        }
        Some(Read::Data(data))
    }

    /// Has [`ConnCore::read`] something to return?
    pub fn readable(&self) -> bool {
        self.state != ConnState::Listen && (!self.rx.is_empty() || self.end.is_some())
    }
}
