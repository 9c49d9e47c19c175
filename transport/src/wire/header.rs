//! The TIPC message header view (kernel `msg.h`, `msg.c: tipc_msg_validate`).
//!
//! Spec: tipc-protocol.md §2. The header is a sequence of big-endian 32-bit words; every field is
//! a `(word, shift, mask)` triple from [`field`]. [`Header::new_checked`] applies the kernel's
//! acceptance rules (§2.1); after it succeeds no accessor panics: a word beyond the header size
//! reads as 0 and writes to it are ignored.
//!
//! Callers outside this crate read and write fields through the typed accessors on [`Header`]
//! (`destnode`/`set_destnode`, `nametype`, `set_errcode`, ...), named after the kernel's
//! `msg_*` helpers. The `field` module and `Header::get`/`set`/`flag`/`set_flag`, which take a
//! raw position, are private to this crate: the reprs and the cores use them.

use super::WireError;

/// Field positions `(word, shift, mask)`, taken from tipc-protocol.md §2–§5 and `msg.h`.
///
/// Several fields share bits: their meaning depends on the message user (§2.5).
pub(crate) mod field {
    /// A header field: word index, right shift, mask after shifting.
    pub type Field = (usize, u32, u32);

    // ---- word 0 (all users)
    /// Protocol version (2; 7 = encrypted envelope).
    pub const VERSION: Field = (0, 29, 0x7);
    /// Message user (importance 0..3 or internal user).
    pub const USER: Field = (0, 25, 0xF);
    /// Header size in 32-bit words.
    pub const HSIZE: Field = (0, 21, 0xF);
    /// Not sequenced on a unicast link (discovery, broadcast link).
    pub const NON_SEQ: Field = (0, 20, 0x1);
    /// Drop instead of returning when undeliverable (data).
    pub const DEST_DROPPABLE: Field = (0, 19, 0x1);
    /// LINK_PROTOCOL: this STATE is a probe or a probe reply (shares w0 bit 19).
    pub const KEEPALIVE: Field = (0, 19, 0x1);
    /// src_droppable (DGRAM) / ack_required (CONN_MSG) / nagle_ack (CONN_ACK) / is_rcast (mcast).
    pub const BIT18: Field = (0, 18, 0x1);
    /// Connection-setup SYN, also the RBCTL multicast SYN.
    pub const SYN: Field = (0, 17, 0x1);
    /// Total message size in bytes, header included.
    pub const SIZE: Field = (0, 0, 0x1FFFF);

    // ---- word 1
    /// Message type (meaning depends on the user).
    pub const MTYPE: Field = (1, 29, 0x7);
    /// Error code of a rejected data message.
    pub const ERRCODE: Field = (1, 25, 0xF);
    /// Reroute counter (secondary lookups).
    pub const REROUTE_CNT: Field = (1, 21, 0xF);
    /// Lookup scope (2 cluster, 3 node).
    pub const LOOKUP_SCOPE: Field = (1, 19, 0x3);
    /// Last in-sequence broadcast packet received from the peer.
    pub const BCAST_ACK: Field = (1, 0, 0xFFFF);
    /// LINK_PROTOCOL STATE: number of missing packets after `ack` (NACK).
    pub const SEQ_GAP: Field = (1, 16, 0x1FFF);
    /// LINK_PROTOCOL ACTIVATE: `dest_session` is valid.
    #[allow(dead_code)] // the overlay's name; ProtoRepr reads it as bit 0 of SEQ_GAP
    pub const DEST_SESSION_VALID: Field = (1, 16, 0x1);
    /// LINK_PROTOCOL ACTIVATE: the peer's session as we know it (shares `BCAST_ACK`).
    #[allow(dead_code)] // the overlay's name; ProtoRepr reads it as BCAST_ACK
    pub const DEST_SESSION: Field = (1, 0, 0xFFFF);
    /// NAME_DISTRIBUTOR: part of the bulk sent at link-up.
    pub const BULK: Field = (1, 28, 0x1);
    /// NAME_DISTRIBUTOR: last message of the bulk.
    pub const LAST_BULK: Field = (1, 27, 0x1);
    /// NAME_DISTRIBUTOR: sender uses named_seqno ordering.
    pub const NON_LEGACY: Field = (1, 26, 0x1);
    /// LINK_CONFIG: node capabilities (13 bits; bit 0 shares the signature's bit 15).
    pub const CAPABILITIES: Field = (1, 15, 0x1FFF);
    /// LINK_CONFIG: 16-bit random node signature.
    pub const SIGNATURE: Field = (1, 0, 0xFFFF);

    // ---- word 2
    /// Last in-sequence unicast packet received (`rcv_nxt - 1`).
    pub const ACK: Field = (2, 16, 0xFFFF);
    /// Link sequence number.
    pub const SEQNO: Field = (2, 0, 0xFFFF);
    /// LINK_CONFIG: destination domain (whole word).
    pub const DEST_DOMAIN: Field = (2, 0, 0xFFFF_FFFF);
    /// Legacy broadcast NACK: gap starts after this seqno.
    pub const BCGAP_AFTER: Field = (2, 16, 0xFFFF);
    /// Legacy broadcast NACK: gap ends at this seqno.
    pub const BCGAP_TO: Field = (2, 0, 0xFFFF);

    // ---- word 3
    /// Node that put the packet on this link.
    pub const PREVNODE: Field = (3, 0, 0xFFFF_FFFF);

    // ---- word 4
    /// Originating port.
    pub const ORIGPORT: Field = (4, 0, 0xFFFF_FFFF);
    /// LINK_CONFIG: network id.
    pub const NET_ID: Field = (4, 0, 0xFFFF_FFFF);
    /// LINK_PROTOCOL / BCAST_PROTOCOL: own broadcast `snd_nxt - 1`.
    pub const LAST_BCAST: Field = (4, 16, 0xFFFF);
    /// LINK_PROTOCOL: own unicast `snd_nxt`.
    pub const NEXT_SENT: Field = (4, 0, 0xFFFF);
    /// MSG_FRAGMENTER / TUNNEL: fragment number (from 1).
    pub const FRAGM_NO: Field = (4, 16, 0xFFFF);
    /// MSG_FRAGMENTER / TUNNEL: number of fragments (0 in socket-level fragments).
    pub const NOF_FRAGMS: Field = (4, 0, 0xFFFF);
    /// NAME_DISTRIBUTOR: per-node name-distribution sequence number.
    pub const NAMED_SEQNO: Field = (4, 0, 0xFFFF);

    // ---- word 5
    /// Destination port (overwritten with the network id on broadcast-link packets).
    pub const DESTPORT: Field = (5, 0, 0xFFFF_FFFF);
    /// LINK_PROTOCOL: own link session.
    pub const SESSION: Field = (5, 16, 0xFFFF);
    /// TUNNEL_PROTOCOL: the session of the link that sent it, plus one (0: not stamped).
    /// Our extension: the kernel sends these bits as 0 in tunnel messages (`tipc_msg_init`,
    /// `tipc_msg_create`) and reads a session only from LINK_PROTOCOL messages. The receiving
    /// link drops a tunnel packet of the peer's previous link session (`Link::handle_packet`).
    pub const TUNNEL_SESSION: Field = (5, 16, 0xFFFF);
    /// LINK_PROTOCOL / NAME_DISTRIBUTOR / BCAST_PROTOCOL: ignore `bcast_ack`.
    pub const BC_ACK_INVALID: Field = (5, 14, 0x1);
    /// LINK_PROTOCOL RESET: the sender is taking the link down.
    pub const PEER_STOPPING: Field = (5, 13, 0x1);
    /// LINK_PROTOCOL: the sender considers our node up ("redundant link").
    pub const REDUNDANT_LINK: Field = (5, 12, 0x1);
    /// LINK_PROTOCOL / TUNNEL: bearer id.
    pub const BEARER_ID: Field = (5, 9, 0x7);
    /// LINK_PROTOCOL: link priority (0 = unchanged).
    pub const PRIORITY: Field = (5, 4, 0x1F);
    /// LINK_PROTOCOL: network plane (cosmetic).
    pub const NET_PLANE: Field = (5, 1, 0x7);
    /// LINK_PROTOCOL STATE: please answer with a STATE.
    pub const PROBE: Field = (5, 0, 0x1);

    // ---- words 6, 7
    /// Originating node.
    pub const ORIGNODE: Field = (6, 0, 0xFFFF_FFFF);
    /// Destination node.
    pub const DESTNODE: Field = (7, 0, 0xFFFF_FFFF);

    // ---- word 8
    /// Service type (named, mcast, group).
    pub const NAMETYPE: Field = (8, 0, 0xFFFF_FFFF);
    /// LINK_PROTOCOL STATE: missing broadcast packets after `bcast_ack`.
    pub const BC_GAP: Field = (8, 0, 0x3FF);

    // ---- word 9
    /// Service instance / range lower bound.
    pub const NAMEINST: Field = (9, 0, 0xFFFF_FFFF);
    /// LINK_PROTOCOL RESET/ACTIVATE: advertised MTU / 4.
    pub const MAX_PKT: Field = (9, 16, 0xFFFF);
    /// LINK_PROTOCOL: link tolerance in ms (0 = unchanged).
    pub const TOLERANCE: Field = (9, 0, 0xFFFF);
    /// MSG_BUNDLER / TUNNEL: message count.
    pub const MSGCNT: Field = (9, 16, 0xFFFF);
    /// MSG_BUNDLER / MSG_FRAGMENTER: importance of the inner message(s).
    pub const INNER_IMPORTANCE: Field = (9, 0, 0x7);
    /// CONN_MANAGER CONN_ACK: blocks consumed since the last ack.
    pub const CONN_ACK: Field = (9, 16, 0xFFFF);
    /// CONN_MANAGER / GROUP_PROTOCOL: advertised window in blocks.
    pub const ADV_WIN: Field = (9, 0, 0xFFFF);
    /// GROUP_PROTOCOL: bc_syncpt / bc_acked / remitted; TUNNEL: syncpt.
    pub const GRP_W9_HI: Field = (9, 16, 0xFFFF);

    // ---- word 10
    /// Service range upper bound (MCAST_MSG).
    pub const NAMEUPPER: Field = (10, 0, 0xFFFF_FFFF);
    /// Group messages: sender's broadcast sequence number.
    pub const GRP_BC_SEQNO: Field = (10, 16, 0xFFFF);
    /// Group broadcast: please acknowledge.
    pub const GRP_BC_ACK_REQ: Field = (10, 0, 0x1);

    // ---- LINK_CONFIG words 13, 14
    /// LINK_CONFIG: peer net hash (namespace locality hint).
    pub const PEER_NET_HASH: Field = (13, 0, 0xFFFF_FFFF);
    /// LINK_CONFIG TRIAL_FAIL: suggested address.
    pub const SUGGESTED_ADDR: Field = (14, 0, 0xFFFF_FFFF);
}

/// Protocol version carried in every plain TIPC message.
pub const TIPC_VERSION: u32 = 2;
/// Version value marking an encrypted envelope (`TIPC_EVERSION`).
pub const TIPC_EVERSION: u32 = 7;
/// Data header of an established connection (w0..w5).
pub const SHORT_H_SIZE: usize = 24;
/// Direct data header (w0..w7).
pub const BASIC_H_SIZE: usize = 32;
/// Named data header (w0..w9).
pub const NAMED_H_SIZE: usize = 40;
/// Multicast and group data header (w0..w10).
pub const MCAST_H_SIZE: usize = 44;
/// Internal-user header.
pub const INT_H_SIZE: usize = 40;
/// Largest header (LINK_CONFIG).
pub const MAX_H_SIZE: usize = 60;
/// Smallest header.
pub const MIN_H_SIZE: usize = 24;
/// Largest user payload (`TIPC_MAX_USER_MSG_SIZE`).
pub const MAX_USER_MSG_SIZE: usize = 66000;
/// Largest message (`MAX_MSG_SIZE`).
pub const MAX_MSG_SIZE: usize = MAX_H_SIZE + MAX_USER_MSG_SIZE;

/// A read (and, for `T: AsMut<[u8]>`, write) view of a TIPC header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Header<T> {
    /// Wrap a buffer without checking it. Accessors stay panic-free: words outside the buffer read 0.
    pub const fn new_unchecked(buf: T) -> Self {
        Header { buf }
    }

    /// Wrap a buffer after applying the kernel's acceptance rules (`tipc_msg_validate`, §2.1):
    /// version 2, header size 24..=60, `size >= hsize`, payload ≤ 66000 and buffer ≥ `size`.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let h = Header { buf };
        h.check()?;
        Ok(h)
    }

    /// Apply the acceptance rules of [`Header::new_checked`] to this view.
    pub fn check(&self) -> Result<(), WireError> {
        let b = self.buf.as_ref();
        if b.len() < MIN_H_SIZE {
            return Err(WireError::Truncated);
        }
        let v = self.get(field::VERSION);
        if v == TIPC_EVERSION {
            return Err(WireError::Encrypted);
        }
        if v != TIPC_VERSION {
            return Err(WireError::BadVersion(v as u8));
        }
        let hsize = self.header_len();
        if !(MIN_H_SIZE..=MAX_H_SIZE).contains(&hsize) {
            return Err(WireError::BadHeaderSize(hsize));
        }
        let size = self.size();
        if size < hsize {
            return Err(WireError::BadSize(size));
        }
        if size - hsize > MAX_USER_MSG_SIZE {
            return Err(WireError::BadSize(size));
        }
        if b.len() < size {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    /// The underlying buffer.
    pub fn into_inner(self) -> T {
        self.buf
    }

    /// The underlying buffer, borrowed.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.as_ref()
    }

    /// Raw 32-bit word `n` (host order), or 0 when it lies outside the header or buffer.
    #[inline]
    pub fn word(&self, n: usize) -> u32 {
        let b = self.buf.as_ref();
        let off = n * 4;
        // Words beyond the declared header size are not part of the header; but the header size
        // itself lives in word 0, so word 0 is always readable when the buffer has 4 bytes.
        if n > 0 && off + 4 > self.header_len_raw() {
            return 0;
        }
        match b.get(off..off + 4) {
            Some(w) => u32::from_be_bytes([w[0], w[1], w[2], w[3]]),
            None => 0,
        }
    }

    #[inline]
    fn header_len_raw(&self) -> usize {
        let b = self.buf.as_ref();
        match b.get(0..4) {
            Some(w) => ((u32::from_be_bytes([w[0], w[1], w[2], w[3]]) >> 21) & 0xF) as usize * 4,
            None => 0,
        }
    }

    /// Read a field.
    #[inline]
    pub(crate) fn get(&self, f: field::Field) -> u32 {
        (self.word(f.0) >> f.1) & f.2
    }

    /// Read a one-bit field as a bool.
    #[inline]
    pub(crate) fn flag(&self, f: field::Field) -> bool {
        self.get(f) != 0
    }

    /// Protocol version.
    pub fn version(&self) -> u8 {
        self.get(field::VERSION) as u8
    }
    /// Message user (0..=15).
    pub fn user(&self) -> u8 {
        self.get(field::USER) as u8
    }
    /// Header length in bytes.
    pub fn header_len(&self) -> usize {
        self.header_len_raw()
    }
    /// Total message size in bytes.
    pub fn size(&self) -> usize {
        self.get(field::SIZE) as usize
    }
    /// Message type (meaning depends on user).
    pub fn mtype(&self) -> u8 {
        self.get(field::MTYPE) as u8
    }
    /// Non-sequenced bit.
    pub fn non_seq(&self) -> bool {
        self.flag(field::NON_SEQ)
    }
    /// Link sequence number.
    pub fn seqno(&self) -> u16 {
        self.get(field::SEQNO) as u16
    }
    /// Piggybacked ack.
    pub fn ack(&self) -> u16 {
        self.get(field::ACK) as u16
    }
    /// Piggybacked broadcast ack.
    pub fn bcast_ack(&self) -> u16 {
        self.get(field::BCAST_ACK) as u16
    }
    /// Previous-hop node.
    pub fn prevnode(&self) -> u32 {
        self.get(field::PREVNODE)
    }
    /// Originating node; with a 24-byte header it is `prevnode` (§2.1).
    pub fn orignode(&self) -> u32 {
        if self.header_len() < BASIC_H_SIZE {
            self.prevnode()
        } else {
            self.get(field::ORIGNODE)
        }
    }
    /// Destination node (0 with a short header).
    pub fn destnode(&self) -> u32 {
        self.get(field::DESTNODE)
    }
    /// Originating port.
    pub fn origport(&self) -> u32 {
        self.get(field::ORIGPORT)
    }
    /// Destination port.
    pub fn destport(&self) -> u32 {
        self.get(field::DESTPORT)
    }
    /// Error code.
    pub fn errcode(&self) -> u8 {
        self.get(field::ERRCODE) as u8
    }
    /// Is this a data (importance 0..=3) message?
    pub fn is_data(&self) -> bool {
        self.user() <= 3
    }
    /// The message's payload (the bytes between header and `size`), empty if inconsistent.
    pub fn payload(&self) -> &[u8] {
        let b = self.buf.as_ref();
        let (h, s) = (self.header_len(), self.size());
        b.get(h..s).unwrap_or(&[])
    }
    /// The whole message (`size` bytes), or the whole buffer if shorter.
    pub fn message(&self) -> &[u8] {
        let b = self.buf.as_ref();
        b.get(..self.size()).unwrap_or(b)
    }

    // ---- typed field readers (kernel `msg_*` helpers); see [`field`] for the positions

    /// Drop instead of returning when undeliverable (`msg_dest_droppable`, w0 bit 19, data).
    pub fn dest_droppable(&self) -> bool {
        self.flag(field::DEST_DROPPABLE)
    }
    /// The sender may drop it under congestion (`msg_src_droppable`, w0 bit 18, datagrams).
    /// Shares its bit with [`Header::ack_required`], [`Header::nagle_ack`] and
    /// [`Header::is_rcast`].
    pub fn src_droppable(&self) -> bool {
        self.flag(field::BIT18)
    }
    /// The receiver should acknowledge at once (`msg_ack_required`, w0 bit 18, CONN_MSG under
    /// Nagle). Shares its bit with [`Header::src_droppable`].
    pub fn ack_required(&self) -> bool {
        self.flag(field::BIT18)
    }
    /// A CONN_ACK answering an `ack_required` message (`msg_nagle_ack`, w0 bit 18). Shares its
    /// bit with [`Header::src_droppable`].
    pub fn nagle_ack(&self) -> bool {
        self.flag(field::BIT18)
    }
    /// A multicast message sent by replicast (`msg_is_rcast`, w0 bit 18). Shares its bit with
    /// [`Header::src_droppable`].
    pub fn is_rcast(&self) -> bool {
        self.flag(field::BIT18)
    }
    /// Connection-setup SYN, also the multicast RBCTL SYN (`msg_syn`, w0 bit 17).
    pub fn syn(&self) -> bool {
        self.flag(field::SYN)
    }
    /// Reroute counter of a named message (`msg_reroute_cnt`, w1 bits 24-21).
    pub fn reroute_cnt(&self) -> u8 {
        self.get(field::REROUTE_CNT) as u8
    }
    /// Lookup scope of a named message (`msg_lookup_scope`, w1 bits 20-19: 2 cluster,
    /// 3 node).
    pub fn lookup_scope(&self) -> u8 {
        self.get(field::LOOKUP_SCOPE) as u8
    }
    /// Fragment number, from 1 (`msg_fragm_no`, w4 bits 31-16, MSG_FRAGMENTER and TUNNEL).
    pub fn fragm_no(&self) -> u16 {
        self.get(field::FRAGM_NO) as u16
    }
    /// Number of fragments (`msg_nof_fragms`, w4 bits 15-0, MSG_FRAGMENTER and TUNNEL; 0 in
    /// socket-level fragments).
    pub fn nof_fragms(&self) -> u16 {
        self.get(field::NOF_FRAGMS) as u16
    }
    /// Name-distribution sequence number (`msg_named_seqno`, w4 bits 15-0, NAME_DISTRIBUTOR).
    pub fn named_seqno(&self) -> u16 {
        self.get(field::NAMED_SEQNO) as u16
    }
    /// Ignore `bcast_ack` (`msg_bc_ack_invalid`, w5 bit 14, LINK_PROTOCOL, NAME_DISTRIBUTOR,
    /// BCAST_PROTOCOL).
    pub fn bc_ack_invalid(&self) -> bool {
        self.flag(field::BC_ACK_INVALID)
    }
    /// Service type (`msg_nametype`, w8; named, multicast and group messages).
    pub fn nametype(&self) -> u32 {
        self.get(field::NAMETYPE)
    }
    /// Service instance, or a range's lower bound (`msg_nameinst`/`msg_namelower`, w9).
    pub fn nameinst(&self) -> u32 {
        self.get(field::NAMEINST)
    }
    /// Message count (`msg_msgcnt`, w9 bits 31-16, MSG_BUNDLER and TUNNEL).
    pub fn msgcnt(&self) -> u16 {
        self.get(field::MSGCNT) as u16
    }
    /// Blocks consumed since the last ack (`msg_conn_ack`, w9 bits 31-16, CONN_MANAGER
    /// CONN_ACK).
    pub fn conn_ack(&self) -> u16 {
        self.get(field::CONN_ACK) as u16
    }
    /// Advertised window in blocks (`msg_adv_win`, w9 bits 15-0, CONN_MANAGER and
    /// GROUP_PROTOCOL).
    pub fn adv_win(&self) -> u16 {
        self.get(field::ADV_WIN) as u16
    }
    /// A service range's upper bound (`msg_nameupper`, w10, multicast messages).
    pub fn nameupper(&self) -> u32 {
        self.get(field::NAMEUPPER)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Header<T> {
    /// Write raw word `n`; ignored if it lies outside the buffer.
    #[inline]
    pub fn set_word(&mut self, n: usize, v: u32) {
        let off = n * 4;
        if let Some(w) = self.buf.as_mut().get_mut(off..off + 4) {
            w.copy_from_slice(&v.to_be_bytes());
        }
    }

    /// Write a field (the value is masked).
    #[inline]
    pub(crate) fn set(&mut self, f: field::Field, v: u32) {
        let off = f.0 * 4;
        let cur = match self.buf.as_ref().get(off..off + 4) {
            Some(w) => u32::from_be_bytes([w[0], w[1], w[2], w[3]]),
            None => return,
        };
        let m = f.2 << f.1;
        self.set_word(f.0, (cur & !m) | ((v << f.1) & m));
    }

    /// Write a one-bit field.
    #[inline]
    pub(crate) fn set_flag(&mut self, f: field::Field, v: bool) {
        self.set(f, v as u32)
    }

    /// Initialise word 0..hsize: zero the header, then set version 2, user, header size, type,
    /// size, prevnode (the kernel's `tipc_msg_init`). `size` is header plus payload.
    pub fn init(&mut self, user: u8, mtype: u8, hsize: usize, size: usize, prevnode: u32) {
        let n = hsize.min(self.buf.as_ref().len());
        self.buf.as_mut()[..n].fill(0);
        self.set(field::VERSION, TIPC_VERSION);
        self.set(field::USER, user as u32);
        self.set(field::HSIZE, (hsize / 4) as u32);
        self.set(field::SIZE, size as u32);
        self.set(field::MTYPE, mtype as u32);
        self.set(field::PREVNODE, prevnode);
    }

    /// Set the link seqno.
    pub fn set_seqno(&mut self, v: u16) {
        self.set(field::SEQNO, v as u32)
    }
    /// Set the piggybacked ack.
    pub fn set_ack(&mut self, v: u16) {
        self.set(field::ACK, v as u32)
    }
    /// Set the piggybacked broadcast ack.
    pub fn set_bcast_ack(&mut self, v: u16) {
        self.set(field::BCAST_ACK, v as u32)
    }
    /// Set prevnode.
    pub fn set_prevnode(&mut self, v: u32) {
        self.set(field::PREVNODE, v)
    }

    // ---- typed field writers (kernel `msg_set_*` helpers); see [`field`] for the positions

    /// Set the message user (`msg_set_user`, w0 bits 28-25).
    pub fn set_user(&mut self, v: u8) {
        self.set(field::USER, v as u32)
    }
    /// Set the header length in bytes, a multiple of 4 (`msg_set_hdr_sz`, w0 bits 24-21 in
    /// words).
    pub fn set_header_len(&mut self, len: usize) {
        self.set(field::HSIZE, (len / 4) as u32)
    }
    /// Set the non-sequenced bit (`msg_set_non_seq`, w0 bit 20).
    pub fn set_non_seq(&mut self, v: bool) {
        self.set_flag(field::NON_SEQ, v)
    }
    /// Set [`Header::dest_droppable`] (`msg_set_dest_droppable`, w0 bit 19).
    pub fn set_dest_droppable(&mut self, v: bool) {
        self.set_flag(field::DEST_DROPPABLE, v)
    }
    /// Set [`Header::src_droppable`] (`msg_set_src_droppable`, w0 bit 18).
    pub fn set_src_droppable(&mut self, v: bool) {
        self.set_flag(field::BIT18, v)
    }
    /// Set [`Header::ack_required`] (`msg_set_ack_required`, w0 bit 18).
    pub fn set_ack_required(&mut self, v: bool) {
        self.set_flag(field::BIT18, v)
    }
    /// Set [`Header::nagle_ack`] (`msg_set_nagle_ack`, w0 bit 18).
    pub fn set_nagle_ack(&mut self, v: bool) {
        self.set_flag(field::BIT18, v)
    }
    /// Set [`Header::is_rcast`] (`msg_set_is_rcast`, w0 bit 18).
    pub fn set_is_rcast(&mut self, v: bool) {
        self.set_flag(field::BIT18, v)
    }
    /// Set the SYN bit (`msg_set_syn`, w0 bit 17).
    pub fn set_syn(&mut self, v: bool) {
        self.set_flag(field::SYN, v)
    }
    /// Set the total message size in bytes, header included (`msg_set_size`, w0 bits 16-0).
    pub fn set_size(&mut self, v: usize) {
        self.set(field::SIZE, v as u32)
    }
    /// Set the message type (`msg_set_type`, w1 bits 31-29).
    pub fn set_mtype(&mut self, v: u8) {
        self.set(field::MTYPE, v as u32)
    }
    /// Set the error code (`msg_set_errcode`, w1 bits 28-25), e.g. `ErrorCode::NoPort as u8`.
    pub fn set_errcode(&mut self, v: u8) {
        self.set(field::ERRCODE, v as u32)
    }
    /// Set the reroute counter (w1 bits 24-21; the kernel has `msg_incr_reroute_cnt` and
    /// `msg_reset_reroute_cnt`).
    pub fn set_reroute_cnt(&mut self, v: u8) {
        self.set(field::REROUTE_CNT, v as u32)
    }
    /// Set the lookup scope (`msg_set_lookup_scope`, w1 bits 20-19).
    pub fn set_lookup_scope(&mut self, v: u8) {
        self.set(field::LOOKUP_SCOPE, v as u32)
    }
    /// Set the originating port (`msg_set_origport`, w4).
    pub fn set_origport(&mut self, v: u32) {
        self.set(field::ORIGPORT, v)
    }
    /// Set the fragment number (`msg_set_fragm_no`, w4 bits 31-16).
    pub fn set_fragm_no(&mut self, v: u16) {
        self.set(field::FRAGM_NO, v as u32)
    }
    /// Set the number of fragments (`msg_set_nof_fragms`, w4 bits 15-0).
    pub fn set_nof_fragms(&mut self, v: u16) {
        self.set(field::NOF_FRAGMS, v as u32)
    }
    /// Set the name-distribution sequence number (`msg_set_named_seqno`, w4 bits 15-0).
    pub fn set_named_seqno(&mut self, v: u16) {
        self.set(field::NAMED_SEQNO, v as u32)
    }
    /// Set the destination port (`msg_set_destport`, w5).
    pub fn set_destport(&mut self, v: u32) {
        self.set(field::DESTPORT, v)
    }
    /// Set [`Header::bc_ack_invalid`] (`msg_set_bc_ack_invalid`, w5 bit 14).
    pub fn set_bc_ack_invalid(&mut self, v: bool) {
        self.set_flag(field::BC_ACK_INVALID, v)
    }
    /// Set the originating node (`msg_set_orignode`, w6).
    pub fn set_orignode(&mut self, v: u32) {
        self.set(field::ORIGNODE, v)
    }
    /// Set the destination node (`msg_set_destnode`, w7).
    pub fn set_destnode(&mut self, v: u32) {
        self.set(field::DESTNODE, v)
    }
    /// Set the service type (`msg_set_nametype`, w8).
    pub fn set_nametype(&mut self, v: u32) {
        self.set(field::NAMETYPE, v)
    }
    /// Set the service instance or range lower bound (`msg_set_nameinst`, w9).
    pub fn set_nameinst(&mut self, v: u32) {
        self.set(field::NAMEINST, v)
    }
    /// Set the message count (`msg_set_msgcnt`, w9 bits 31-16).
    pub fn set_msgcnt(&mut self, v: u16) {
        self.set(field::MSGCNT, v as u32)
    }
    /// Set the blocks acknowledged (`msg_set_conn_ack`, w9 bits 31-16).
    pub fn set_conn_ack(&mut self, v: u16) {
        self.set(field::CONN_ACK, v as u32)
    }
    /// Set the advertised window (`msg_set_adv_win`, w9 bits 15-0).
    pub fn set_adv_win(&mut self, v: u16) {
        self.set(field::ADV_WIN, v as u32)
    }
    /// Set the service range upper bound (`msg_set_nameupper`, w10).
    pub fn set_nameupper(&mut self, v: u32) {
        self.set(field::NAMEUPPER, v)
    }
}

impl<'a> Header<&'a [u8]> {
    /// The underlying buffer with its full lifetime (for zero-copy reprs).
    pub fn into_inner_ref(&self) -> &'a [u8] {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Writer = fn(&mut Header<&mut [u8]>);

    #[test]
    fn typed_writers_match_raw_field_writes() {
        // Every bit set first, so a writer that touched a neighbour's bits would show.
        let cases: &[(field::Field, u32, Writer)] = &[
            (field::USER, 9, |h| h.set_user(9)),
            (field::HSIZE, 10, |h| h.set_header_len(40)),
            (field::NON_SEQ, 0, |h| h.set_non_seq(false)),
            (field::DEST_DROPPABLE, 0, |h| h.set_dest_droppable(false)),
            (field::BIT18, 0, |h| h.set_src_droppable(false)),
            (field::BIT18, 0, |h| h.set_ack_required(false)),
            (field::BIT18, 0, |h| h.set_nagle_ack(false)),
            (field::BIT18, 0, |h| h.set_is_rcast(false)),
            (field::SYN, 0, |h| h.set_syn(false)),
            (field::SIZE, 0x1_2345, |h| h.set_size(0x1_2345)),
            (field::MTYPE, 5, |h| h.set_mtype(5)),
            (field::ERRCODE, 4, |h| h.set_errcode(4)),
            (field::REROUTE_CNT, 2, |h| h.set_reroute_cnt(2)),
            (field::LOOKUP_SCOPE, 2, |h| h.set_lookup_scope(2)),
            (field::ORIGPORT, 0x1234_5678, |h| {
                h.set_origport(0x1234_5678)
            }),
            (field::FRAGM_NO, 0x0102, |h| h.set_fragm_no(0x0102)),
            (field::NOF_FRAGMS, 0x0304, |h| h.set_nof_fragms(0x0304)),
            (field::NAMED_SEQNO, 0x0506, |h| h.set_named_seqno(0x0506)),
            (field::DESTPORT, 0x9abc_def0, |h| {
                h.set_destport(0x9abc_def0)
            }),
            (field::BC_ACK_INVALID, 0, |h| h.set_bc_ack_invalid(false)),
            (field::ORIGNODE, 0x0100_1001, |h| {
                h.set_orignode(0x0100_1001)
            }),
            (field::DESTNODE, 0x0100_1002, |h| {
                h.set_destnode(0x0100_1002)
            }),
            (field::NAMETYPE, 18888, |h| h.set_nametype(18888)),
            (field::NAMEINST, 17, |h| h.set_nameinst(17)),
            (field::MSGCNT, 7, |h| h.set_msgcnt(7)),
            (field::CONN_ACK, 128, |h| h.set_conn_ack(128)),
            (field::ADV_WIN, 512, |h| h.set_adv_win(512)),
            (field::NAMEUPPER, 99, |h| h.set_nameupper(99)),
        ];
        for (i, &(f, v, write)) in cases.iter().enumerate() {
            let (mut typed, mut raw) = ([0xFF; MAX_H_SIZE], [0xFF; MAX_H_SIZE]);
            write(&mut Header::new_unchecked(&mut typed[..]));
            Header::new_unchecked(&mut raw[..]).set(f, v);
            assert_eq!(typed, raw, "case {i}");
        }
    }

    #[test]
    fn typed_readers_match_raw_field_reads() {
        let mut b = [0u8; MAX_H_SIZE];
        for (i, x) in b.iter_mut().enumerate() {
            *x = (i as u8).wrapping_mul(37).wrapping_add(11);
        }
        Header::new_unchecked(&mut b[..]).set(field::HSIZE, 15);
        for bit in [false, true] {
            let mut h = Header::new_unchecked(&mut b[..]);
            for f in [field::DEST_DROPPABLE, field::BIT18, field::SYN] {
                h.set_flag(f, bit);
            }
            h.set_flag(field::BC_ACK_INVALID, bit);
            let h = Header::new_unchecked(&b[..]);
            assert_eq!(h.dest_droppable(), bit);
            assert_eq!(h.src_droppable(), bit);
            assert_eq!(h.ack_required(), bit);
            assert_eq!(h.nagle_ack(), bit);
            assert_eq!(h.is_rcast(), bit);
            assert_eq!(h.syn(), bit);
            assert_eq!(h.bc_ack_invalid(), bit);
        }
        let h = Header::new_unchecked(&b[..]);
        assert_eq!(u32::from(h.reroute_cnt()), h.get(field::REROUTE_CNT));
        assert_eq!(u32::from(h.lookup_scope()), h.get(field::LOOKUP_SCOPE));
        assert_eq!(u32::from(h.fragm_no()), h.get(field::FRAGM_NO));
        assert_eq!(u32::from(h.nof_fragms()), h.get(field::NOF_FRAGMS));
        assert_eq!(u32::from(h.named_seqno()), h.get(field::NAMED_SEQNO));
        assert_eq!(h.nametype(), h.get(field::NAMETYPE));
        assert_eq!(h.nameinst(), h.get(field::NAMEINST));
        assert_eq!(u32::from(h.msgcnt()), h.get(field::MSGCNT));
        assert_eq!(u32::from(h.conn_ack()), h.get(field::CONN_ACK));
        assert_eq!(u32::from(h.adv_win()), h.get(field::ADV_WIN));
        assert_eq!(h.nameupper(), h.get(field::NAMEUPPER));
    }
}
