//! MSG_FRAGMENTER messages (user 12): socket-level fragmentation and per-link reassembly
//! (kernel `msg.c: tipc_msg_build, tipc_buf_append`, `link.c: tipc_link_input`).
//!
//! Spec: tipc-protocol.md §4.9 (layout and rules), §2.3 (importance in w9).

use bytes::{Bytes, BytesMut};

use super::{field, importance, user, Header, WireError, INT_H_SIZE, MAX_MSG_SIZE};

/// MSG_FRAGMENTER message types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FragmentType {
    /// FIRST_FRAGMENT: carries the inner header and the first data.
    First = 0,
    /// FRAGMENT: a middle fragment.
    Fragment = 1,
    /// LAST_FRAGMENT: completes the message.
    Last = 2,
}

impl FragmentType {
    /// Decode w1 bits 31-29.
    pub fn from_u8(v: u8) -> Result<Self, WireError> {
        match v {
            0 => Ok(Self::First),
            1 => Ok(Self::Fragment),
            2 => Ok(Self::Last),
            t => Err(WireError::BadType(t)),
        }
    }
}

/// A parsed MSG_FRAGMENTER message. Raw fields keep `emit(parse(x)) == x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FragmentRepr<'a> {
    /// Message type.
    pub mtype: FragmentType,
    /// w0 bit 20: set when sent on the broadcast link.
    pub non_seq: bool,
    /// w1 bits 15-0.
    pub bcast_ack: u16,
    /// w2 bits 31-16.
    pub ack: u16,
    /// w2 bits 15-0.
    pub seqno: u16,
    /// w3 (the inner message's prevnode).
    pub prevnode: u32,
    /// w4 bits 31-16: fragment number, from 1.
    pub fragm_no: u16,
    /// w4 bits 15-0: number of fragments (0 in socket-level fragments).
    pub nof_fragms: u16,
    /// w5 raw: 0, or the network id on broadcast-link packets.
    pub w5: u32,
    /// w6.
    pub orignode: u32,
    /// w7 (the inner message's destnode).
    pub destnode: u32,
    /// w9 bits 2-0: importance of the inner message.
    pub importance: u8,
    /// This fragment's part of the inner message.
    pub data: &'a [u8],
}

impl<'a> FragmentRepr<'a> {
    /// Parse a checked header whose user is MSG_FRAGMENTER.
    pub fn parse(h: &Header<&'a [u8]>) -> Result<Self, WireError> {
        if h.user() != user::MSG_FRAGMENTER {
            return Err(WireError::BadUser(h.user()));
        }
        if h.header_len() != INT_H_SIZE {
            return Err(WireError::BadHeaderSize(h.header_len()));
        }
        let buf: &'a [u8] = h.into_inner_ref();
        let data = buf.get(INT_H_SIZE..h.size()).ok_or(WireError::Truncated)?;
        Ok(FragmentRepr {
            mtype: FragmentType::from_u8(h.mtype())?,
            non_seq: h.non_seq(),
            bcast_ack: h.bcast_ack(),
            ack: h.ack(),
            seqno: h.seqno(),
            prevnode: h.prevnode(),
            fragm_no: h.get(field::FRAGM_NO) as u16,
            nof_fragms: h.get(field::NOF_FRAGMS) as u16,
            w5: h.word(5),
            orignode: h.get(field::ORIGNODE),
            destnode: h.destnode(),
            importance: h.get(field::INNER_IMPORTANCE) as u8,
            data,
        })
    }

    /// Bytes needed to emit.
    pub fn buffer_len(&self) -> usize {
        INT_H_SIZE + self.data.len()
    }

    /// Emit into `buf` (at least [`buffer_len`](Self::buffer_len) bytes). Returns the length.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let len = self.buffer_len();
        let buf = &mut buf[..len];
        self.emit_header(buf, len);
        buf[INT_H_SIZE..].copy_from_slice(self.data);
        len
    }

    /// Write the 40-byte header for a fragment of total size `len` into `buf[..40]`.
    fn emit_header(&self, buf: &mut [u8], len: usize) {
        let mut h = Header::new_unchecked(&mut buf[..INT_H_SIZE]);
        h.init(
            user::MSG_FRAGMENTER,
            self.mtype as u8,
            INT_H_SIZE,
            len,
            self.prevnode,
        );
        h.set_flag(field::NON_SEQ, self.non_seq);
        h.set_bcast_ack(self.bcast_ack);
        h.set_ack(self.ack);
        h.set_seqno(self.seqno);
        h.set(field::FRAGM_NO, self.fragm_no as u32);
        h.set(field::NOF_FRAGMS, self.nof_fragms as u32);
        h.set_word(5, self.w5);
        h.set(field::ORIGNODE, self.orignode);
        h.set(field::DESTNODE, self.destnode);
        h.set(field::INNER_IMPORTANCE, self.importance as u32);
    }
}

/// Why a message could not be fragmented.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FragmentError {
    /// The message fits in one packet of `pktmax` bytes: send it whole.
    #[error("message of {len} bytes fits in {pktmax}")]
    Fits {
        /// Message size.
        len: usize,
        /// Packet limit.
        pktmax: usize,
    },
    /// `pktmax` leaves no room for data after the 40-byte fragment header, or would need more
    /// than 65535 fragments.
    #[error("packet limit {0} too small")]
    PktmaxTooSmall(usize),
    /// The message itself is not a valid TIPC message.
    #[error("invalid message: {0}")]
    BadMessage(#[from] WireError),
}

/// Split a complete message into FIRST/FRAGMENT/LAST packets as `tipc_msg_build` does (§4.9):
/// every packet but the last is exactly `pktmax` bytes, `fragm_no` counts from 1, `nof_fragms`
/// is 0, w9 bits 2-0 carry the message's importance, prevnode and orignode are the message's
/// prevnode and destnode its destnode (`tipc_msg_init(msg_prevnode, .., msg_destnode)`).
///
/// The fragments share one allocation. `msg` is validated first (only its first `size` bytes
/// are used). Returns the number of fragments appended to `out`; an error appends nothing.
pub fn fragment(msg: &[u8], pktmax: usize, out: &mut Vec<Bytes>) -> Result<usize, FragmentError> {
    fragment_to(msg, pktmax, None, out)
}

/// [`fragment`], with the fragments' destnode set to `destnode` when given (a message with a
/// 24-byte connection header has no destnode word: the link names its peer there).
pub fn fragment_to(
    msg: &[u8],
    pktmax: usize,
    destnode: Option<u32>,
    out: &mut Vec<Bytes>,
) -> Result<usize, FragmentError> {
    fragment_pooled(msg, pktmax, destnode, None, out)
}

/// [`fragment_to`], the fragments carved from `pool` when given.
pub fn fragment_pooled(
    msg: &[u8],
    pktmax: usize,
    destnode: Option<u32>,
    pool: Option<&mut ChunkPool>,
    out: &mut Vec<Bytes>,
) -> Result<usize, FragmentError> {
    let (plan, count) = fragment_plan(msg, pktmax, destnode)?;
    // One allocation; each packet's header then its data, copied once.
    let total = plan.len + count * INT_H_SIZE;
    let mut all = match pool {
        Some(p) => p.take(total),
        None => BytesMut::with_capacity(total),
    };
    out.reserve(count);
    for (hdr, range) in plan {
        let plen = INT_H_SIZE + range.len();
        all.extend_from_slice(&hdr);
        all.extend_from_slice(&msg[range]);
        out.push(all.split_to(plen).freeze());
    }
    Ok(count)
}

/// Zero-copy [`fragment_to`]: each fragment is its 40-byte header (carved from `pool`) and
/// the slice of `msg` it carries, which the packet on the wire is the two put together.
/// Returns the number of fragments appended to `out`; an error appends nothing.
pub fn fragment_parts(
    msg: &Bytes,
    pktmax: usize,
    destnode: Option<u32>,
    pool: &mut ChunkPool,
    out: &mut Vec<(Bytes, Bytes)>,
) -> Result<usize, FragmentError> {
    let (plan, count) = fragment_plan(msg, pktmax, destnode)?;
    let mut heads = pool.take(count * INT_H_SIZE);
    out.reserve(count);
    for (hdr, range) in plan {
        heads.extend_from_slice(&hdr);
        out.push((heads.split_to(INT_H_SIZE).freeze(), msg.slice(range)));
    }
    Ok(count)
}

/// The fragments of a message: each one's header and the range of the message it carries.
struct FragmentPlan {
    repr: FragmentRepr<'static>,
    /// The message's size (only that much of the buffer is sent).
    len: usize,
    chunk: usize,
    count: usize,
    next: usize,
}

impl Iterator for FragmentPlan {
    type Item = ([u8; INT_H_SIZE], std::ops::Range<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        let i = self.next;
        if i >= self.count {
            return None;
        }
        self.next += 1;
        let range = i * self.chunk..((i + 1) * self.chunk).min(self.len);
        self.repr.mtype = match i {
            0 => FragmentType::First,
            _ if i + 1 == self.count => FragmentType::Last,
            _ => FragmentType::Fragment,
        };
        self.repr.fragm_no = (i + 1) as u16;
        let mut hdr = [0u8; INT_H_SIZE];
        self.repr.emit_header(&mut hdr, INT_H_SIZE + range.len());
        Some((hdr, range))
    }
}

/// Validate `msg` and plan its fragments for packets of `pktmax` bytes.
fn fragment_plan(
    msg: &[u8],
    pktmax: usize,
    destnode: Option<u32>,
) -> Result<(FragmentPlan, usize), FragmentError> {
    let h = Header::new_checked(msg)?;
    let len = h.message().len();
    if len <= pktmax {
        return Err(FragmentError::Fits { len, pktmax });
    }
    let chunk = pktmax.checked_sub(INT_H_SIZE).filter(|&c| c > 0);
    let chunk = chunk.ok_or(FragmentError::PktmaxTooSmall(pktmax))?;
    let count = len.div_ceil(chunk);
    if count > u16::MAX as usize {
        return Err(FragmentError::PktmaxTooSmall(pktmax));
    }
    let repr = FragmentRepr {
        mtype: FragmentType::First,
        non_seq: false,
        bcast_ack: 0,
        w5: 0,
        ack: 0,
        seqno: 0,
        prevnode: h.prevnode(),
        fragm_no: 0,
        nof_fragms: 0,
        orignode: h.prevnode(),
        destnode: destnode.unwrap_or_else(|| h.destnode()),
        importance: importance(&h),
        data: &[],
    };
    let plan = FragmentPlan {
        repr,
        len,
        chunk,
        count,
        next: 0,
    };
    Ok((plan, count))
}

/// Why reassembly failed. After any error the reassembler is empty again; the kernel treats a
/// failure on a unicast link as fatal (`LINK_FAILURE_EVT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ReassemblyError {
    /// The packet is not a valid MSG_FRAGMENTER message.
    #[error("malformed fragment: {0}")]
    Malformed(WireError),
    /// A FIRST fragment arrived while another message was being reassembled.
    #[error("first fragment while reassembly in progress")]
    FirstInProgress,
    /// A FRAGMENT or LAST arrived with no reassembly in progress.
    #[error("fragment without a first fragment")]
    NoFirst,
    /// The message being reassembled grew beyond `MAX_MSG_SIZE`.
    #[error("reassembled message too large")]
    TooLarge,
    /// The reassembled message is not a valid TIPC message.
    #[error("reassembled message invalid: {0}")]
    BadMessage(WireError),
}

/// Buffers carved out of large chunks: a used-up chunk is taken back once everything carved
/// from it has been dropped (the last [`POOL_RETIRED`] chunks are tried before allocating).
/// A stream of large messages (fragments built, messages reassembled) then allocates nothing
/// per message, which also spares the allocator's trimming and the page faults after it. A
/// buffer kept alive keeps its chunk alive.
#[derive(Debug, Default)]
pub struct ChunkPool {
    /// What is left of the current chunk.
    spare: BytesMut,
    /// Handles on used-up chunks, oldest first.
    retired: std::collections::VecDeque<BytesMut>,
    /// Chunk size (0: [`POOL_CHUNK`]).
    chunk: usize,
}

/// Allocation unit of a [`ChunkPool`]: room for a few of the largest messages.
pub const POOL_CHUNK: usize = 4 * (MAX_MSG_SIZE + 2 * INT_H_SIZE);
/// Used-up chunks a [`ChunkPool`] tries to take back before allocating a new one.
pub const POOL_RETIRED: usize = 3;

impl ChunkPool {
    /// An empty pool (the first chunk is allocated on first use).
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty pool whose chunks are just large enough for the request (at least `chunk`
    /// bytes): for buffers that are dropped soon, one after the other.
    pub fn with_chunk(chunk: usize) -> Self {
        ChunkPool {
            chunk: chunk.max(1),
            ..Self::default()
        }
    }

    /// An empty buffer with room for `need` bytes.
    pub fn take(&mut self, need: usize) -> BytesMut {
        if self.spare.capacity() < need {
            self.retired.push_back(std::mem::take(&mut self.spare));
            let mut found = None;
            // Oldest first: the chunk just used up is the likeliest to be still in use.
            for i in 0..self.retired.len() {
                if self.retired[i].try_reclaim(need) {
                    found = self.retired.remove(i);
                    break;
                }
            }
            while self.retired.len() > POOL_RETIRED {
                self.retired.pop_front();
            }
            let chunk = if self.chunk == 0 {
                POOL_CHUNK
            } else {
                self.chunk
            };
            self.spare = found.unwrap_or_else(|| BytesMut::with_capacity(need.max(chunk)));
        }
        self.spare.clear();
        let rest = self.spare.split_off(need);
        std::mem::replace(&mut self.spare, rest)
    }
}

/// Per-link reassembly of one fragmented message at a time (`tipc_buf_append`).
///
/// Memory is bounded by [`MAX_MSG_SIZE`]: a message growing beyond it is an error.
///
/// Messages are built in buffers from a [`ChunkPool`].
#[derive(Debug, Default)]
pub struct Reassembler {
    head: Option<BytesMut>,
    pool: ChunkPool,
}

impl Reassembler {
    /// An empty reassembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Is a message being reassembled?
    pub fn in_progress(&self) -> bool {
        self.head.is_some()
    }

    /// Bytes held for the message in progress.
    pub fn pending_len(&self) -> usize {
        self.head.as_ref().map_or(0, |h| h.len())
    }

    /// Drop any message in progress (link reset).
    pub fn reset(&mut self) {
        self.head = None;
    }

    /// Add one MSG_FRAGMENTER packet. Returns the complete message (validated with
    /// [`Header::new_checked`]; it may carry bytes beyond its `size`, like any packet) when
    /// `frag` is the LAST fragment, `None` while more are needed. Any error empties the
    /// reassembler.
    pub fn push(&mut self, frag: Bytes) -> Result<Option<Bytes>, ReassemblyError> {
        let r = self.push_inner(&frag);
        if r.is_err() {
            self.head = None;
        }
        r
    }

    fn push_inner(&mut self, frag: &[u8]) -> Result<Option<Bytes>, ReassemblyError> {
        let h = Header::new_checked(frag).map_err(ReassemblyError::Malformed)?;
        let repr = FragmentRepr::parse(&h).map_err(ReassemblyError::Malformed)?;
        if repr.mtype == FragmentType::First {
            if self.head.is_some() {
                return Err(ReassemblyError::FirstInProgress);
            }
            if repr.data.len() > MAX_MSG_SIZE {
                return Err(ReassemblyError::TooLarge);
            }
            // Room for the whole message at once (its size is in its first word): growing by
            // doubling would copy it again and again and end above the allocator's mmap
            // threshold (a fresh mapping, page faults, per message).
            let whole = repr
                .data
                .get(..4)
                .map(|w| (u32::from_be_bytes([w[0], w[1], w[2], w[3]]) & 0x1FFFF) as usize)
                .unwrap_or(0)
                .clamp(repr.data.len(), MAX_MSG_SIZE);
            let mut head = self.pool.take(whole);
            head.extend_from_slice(repr.data);
            self.head = Some(head);
            return Ok(None);
        }
        let head = self.head.as_mut().ok_or(ReassemblyError::NoFirst)?;
        if head.len() + repr.data.len() > MAX_MSG_SIZE {
            return Err(ReassemblyError::TooLarge);
        }
        head.extend_from_slice(repr.data);
        if repr.mtype != FragmentType::Last {
            return Ok(None);
        }
        let msg = self.head.take().unwrap_or_default().freeze();
        Header::new_checked(&msg[..]).map_err(ReassemblyError::BadMessage)?;
        Ok(Some(msg))
    }
}
