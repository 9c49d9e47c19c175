//! Sending: writes, the send window and Nagle, and the messages the core builds (kernel
//! `net/tipc/socket.c`: `__tipc_sendstream`, `tsk_conn_cong`, `tsk_inc`, `tsk_set_nagle`,
//! `tipc_sk_push_backlog`; `msg.c`: `tipc_msg_append`, `tipc_msg_create`).
//!
//! Spec: tipc-protocol.md §9.5 (flow control), §9.6 (Nagle).

use std::collections::VecDeque;

use bytes::BytesMut;
use tipc_transport::caps;
use tipc_transport::wire::{
    ConnMgrRepr, ConnMgrType, DataType, Header, MAX_USER_MSG_SIZE, SHORT_H_SIZE,
};

use super::{
    ConnCore, ConnError, ConnState, Output, FLOWCTL_BLK_SZ, NAGLE_LOCAL, NAGLE_MAX_BACKLOG,
    NAGLE_START_INIT, NAGLE_START_MAX, TX_POOL_MIN,
};

/// Flow-control blocks of a message of `len` bytes (`msg_blocks`, `tsk_blocks`).
fn blocks(len: usize) -> u32 {
    (len / FLOWCTL_BLK_SZ) as u32 + 1
}

impl ConnCore {
    /// The flow-control increment of a message of `len` bytes (`tsk_inc`).
    pub fn inc(&self, len: usize) -> u32 {
        if self.block_fc {
            (len / FLOWCTL_BLK_SZ) as u32 + 1
        } else {
            1
        }
    }

    /// Is the send window full (`tsk_conn_cong`: `snt_unacked > snd_win`)?
    pub fn congested(&self) -> bool {
        self.snt_unacked > self.snd_win
    }

    /// May a data message be sent now? `Ok(false)`: wait (still connecting, or the window is
    /// full); `Err`: the connection is over or was never set up.
    pub fn can_send(&self) -> Result<bool, ConnError> {
        match self.state {
            ConnState::Established => Ok(!self.congested()),
            ConnState::Connecting => Ok(false),
            ConnState::Disconnecting => Err(match self.end {
                Some(Ok(())) => ConnError::PeerShutdown,
                Some(Err(e)) => e,
                None => ConnError::Closed,
            }),
            ConnState::Open | ConnState::Listen => Err(ConnError::BadState),
        }
    }

    /// Send `data` (at most 66000 bytes) on the established connection: one iteration of the
    /// kernel's `__tipc_sendstream`. The caller checks [`ConnCore::can_send`] first (the
    /// kernel waits before each message, so the window may be overshot by one message, and
    /// by the held Nagle data when it is pushed). What goes out is queued as
    /// [`Output::ToNode`] messages, in order.
    ///
    /// Nagle (a stream toward a `TIPC_NAGLE` peer, §9.6): from the `nagle_start`-th write
    /// since the last message from the peer, a write that fits the Nagle buffer is appended
    /// to the held messages. While a message with `ack_required` is unanswered they stay held
    /// (up to 64 blocks); otherwise they go out with `ack_required` on the last one. The
    /// peer's nagle ack, any message from the peer, and [`ConnCore::shutdown`] push held data
    /// out.
    pub fn write(&mut self, data: &[u8]) -> Result<(), ConnError> {
        if self.state != ConnState::Established {
            return Err(self.can_send().err().unwrap_or(ConnError::BadState));
        }
        if data.len() > MAX_USER_MSG_SIZE {
            return Err(ConnError::TooLarge(data.len()));
        }
        self.stats.tx_bytes += data.len() as u64;
        let mut blocks = self.nagle.backlog;
        let oneway = self.nagle.oneway;
        self.nagle.oneway = oneway.saturating_add(1);
        let max = self.nagle.max;
        if oneway >= self.nagle.start && max > 0 && data.len() <= max {
            blocks += self.nagle_append(data, max);
            self.stats.nagled += 1;
            let n = &mut self.nagle;
            n.msg_acc += 1;
            if blocks <= NAGLE_MAX_BACKLOG && n.expect_ack {
                n.backlog = blocks;
                return Ok(());
            } else if blocks > NAGLE_MAX_BACKLOG {
                n.pkt_cnt += n.txq.len() as u32;
            } else {
                n.expect_ack = Self::mark_ack_required(&mut n.txq);
                n.msg_acc = 0;
                n.pkt_cnt = 0;
            }
        } else {
            let msg = if data.len() >= TX_POOL_MIN {
                let buf = self.tx_pool.take(SHORT_H_SIZE + data.len());
                self.short_msg_in(buf, self.importance, 0, data)
            } else {
                self.short_msg(self.importance, 0, data)
            };
            self.nagle.txq.push_back(msg);
            blocks += self.inc(data.len() + SHORT_H_SIZE);
        }
        self.snt_unacked += blocks;
        self.nagle.backlog = 0;
        self.send_txq();
        Ok(())
    }

    /// Set `ack_required` on the last held message; false if none is held.
    fn mark_ack_required(txq: &mut VecDeque<BytesMut>) -> bool {
        match txq.back_mut() {
            Some(m) => {
                Header::new_unchecked(&mut m[..]).set_ack_required(true);
                true
            }
            None => false,
        }
    }

    /// Everything held goes out, in order.
    fn send_txq(&mut self) {
        let to = self.peer.node;
        self.stats.tx_msgs += self.nagle.txq.len() as u64;
        for m in self.nagle.txq.drain(..) {
            self.out.push_back(Output::ToNode(to, m));
        }
    }

    /// `tipc_msg_append`: `data` appended to the last held message while it is below `max`
    /// bytes, then to new 24-byte-header messages of up to `max` bytes. Returns the blocks
    /// added.
    fn nagle_append(&mut self, data: &[u8], max: usize) -> u32 {
        let mut added = 0;
        let mut rem = data;
        loop {
            if self.nagle.txq.back().is_none_or(|m| m.len() >= max) {
                let mut m = BytesMut::with_capacity(max);
                m.extend_from_slice(&self.short_msg(self.importance, 0, &[]));
                self.nagle.txq.push_back(m);
                added += 1;
            }
            let Some(m) = self.nagle.txq.back_mut() else {
                return added;
            };
            let before = blocks(m.len());
            let n = rem.len().min(max - m.len());
            m.extend_from_slice(&rem[..n]);
            let len = m.len();
            Header::new_unchecked(&mut m[..]).set_size(len);
            added += blocks(len) - before;
            rem = &rem[n..];
            if rem.is_empty() {
                return added;
            }
        }
    }

    /// `tipc_sk_push_backlog`: held data goes out. On a nagle ack the round is judged first:
    /// fewer than two writes per message sent means Nagle did not pay, and it starts later
    /// next time (doubling up to 1024 writes); otherwise the last held message asks for the
    /// next ack.
    pub(super) fn push_backlog(&mut self, nagle_ack: bool) {
        let n = &mut self.nagle;
        if nagle_ack {
            n.pkt_cnt += n.txq.len() as u32;
            if n.pkt_cnt == 0 || n.msg_acc / n.pkt_cnt < 2 {
                n.oneway = 0;
                if n.start < NAGLE_START_MAX {
                    n.start *= 2;
                }
                n.expect_ack = false;
            } else {
                n.start = NAGLE_START_INIT;
                n.expect_ack = Self::mark_ack_required(&mut n.txq);
            }
            n.msg_acc = 0;
            n.pkt_cnt = 0;
        }
        if n.txq.is_empty() || self.state != ConnState::Established {
            return;
        }
        if n.msg_acc > 0 {
            n.pkt_cnt += n.txq.len() as u32;
        }
        self.snt_unacked += n.backlog;
        n.backlog = 0;
        self.send_txq();
    }

    /// A 24-byte-header CONN_MSG from us to the peer (`tipc_msg_create` with `SHORT_H_SIZE`).
    pub(super) fn short_msg(&self, importance: u8, err: u8, data: &[u8]) -> BytesMut {
        let buf = BytesMut::with_capacity(SHORT_H_SIZE + data.len());
        self.short_msg_in(buf, importance, err, data)
    }

    /// [`ConnCore::short_msg`] built in `buf` (empty, with room for it).
    fn short_msg_in(&self, mut buf: BytesMut, importance: u8, err: u8, data: &[u8]) -> BytesMut {
        // Header room zeroed, the data copied once (no zeroing of up to 66 KB first).
        buf.clear();
        buf.resize(SHORT_H_SIZE, 0);
        buf.extend_from_slice(data);
        let mut h = Header::new_unchecked(&mut buf[..]);
        h.init(
            importance,
            DataType::Conn as u8,
            SHORT_H_SIZE,
            SHORT_H_SIZE + data.len(),
            self.own.node,
        );
        h.set_errcode(err);
        h.set_origport(self.own.port);
        h.set_destport(self.peer.port);
        buf
    }

    /// A CONN_MANAGER message from us to the peer (40 bytes, nodes and ports set).
    pub(super) fn proto_msg(&self, mtype: ConnMgrType, conn_ack: u16, adv_win: u16) -> BytesMut {
        let r = ConnMgrRepr {
            mtype,
            dest_droppable: false,
            nagle_ack: false,
            errcode: 0,
            bcast_ack: 0,
            ack: 0,
            seqno: 0,
            prevnode: self.own.node,
            origport: self.own.port,
            destport: self.peer.port,
            orignode: self.own.node,
            destnode: self.peer.node,
            conn_ack,
            adv_win,
            data: &[],
        };
        let mut buf = BytesMut::zeroed(r.buffer_len());
        r.emit(&mut buf);
        buf
    }

    /// `tsk_set_nagle`: a stream toward a peer with `TIPC_NAGLE`, without `TIPC_NODELAY`,
    /// delays small writes in a buffer of the link's mss (1500 bytes toward our own node).
    pub(super) fn set_nagle(&mut self) {
        let n = &mut self.nagle;
        n.max = 0;
        if !n.stream || n.nodelay || self.peer_caps & caps::NAGLE == 0 {
            return;
        }
        n.max = if n.max_pkt >= tipc_transport::wire::MAX_MSG_SIZE {
            NAGLE_LOCAL
        } else {
            n.max_pkt
        };
    }
}
