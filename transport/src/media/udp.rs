//! UDP media on quinn-udp (kernel `net/tipc/udp_media.c`), spec §3.1 and §12.
//!
//! The TIPC message is the whole UDP payload. A bearer is configured with a local `ip:port`
//! and a remote that is either a multicast group ([`UdpRemote::Multicast`]: bind the wildcard
//! address, join the group) or a replicast list ([`UdpRemote::Replicast`]: bind `ip:port`,
//! copy broadcast-class frames to every entry).
//!
//! Receiving uses `recvmmsg` with GRO into a fixed scratch buffer (64 KiB per slot, allocated
//! once); the received bytes are then packed into one compact buffer handed out as [`Bytes`]
//! slices (one small copy instead of a freshly zeroed multi-MiB arena per batch). A batch that
//! did not fill every slot drained the socket, so its read readiness is cleared at once and no
//! extra `recvmmsg` is spent to learn `EAGAIN`. Sending groups consecutive equal-sized frames
//! to one destination into a single GSO `sendmsg`.
//!
//! Limitation: in multicast mode the socket is bound to the wildcard address with
//! `SO_REUSEADDR`, as the kernel binds `INADDR_ANY`. Two bearers on one host in multicast mode
//! on the same port therefore both hear the group, but the kernel delivers a *unicast* datagram
//! to only one of them. Use replicast (or distinct hosts/namespaces) for several nodes on one
//! host.

use super::{Dest, Media, MediaAddr, MediaKind, RxFrame, TxFrame};
use bytes::{Bytes, BytesMut};
use quinn_udp::{RecvMeta, Transmit, UdpSocketState, BATCH_SIZE};
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Mutex;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// The default TIPC UDP port (iproute2 `tipc/bearer.c`, kernel `UDP_PORT_DEFAULT`).
pub const DEFAULT_PORT: u16 = 6118;
/// Default IPv4 bearer MTU (`TIPC_DEF_LINK_UDP_MTU`), spec §3.1.
pub const IPV4_DEFAULT_MTU: usize = 14000;
/// IPv6 bearer MTU, spec §3.1.
pub const IPV6_MTU: usize = 1280;
/// IPv4 + UDP header bytes (`encap_hlen` for IPv4).
const IPV4_ENCAP: usize = 28;
/// Receive slot per datagram: large enough for a full 64 KiB GRO buffer.
const RX_SLOT: usize = 64 * 1024;
/// Largest UDP payload of one `sendmsg`, also the bound on a GSO batch's total size.
const MAX_UDP_PAYLOAD: usize = 65_507;
/// Socket buffer size requested (capped by the kernel at `rmem_max`/`wmem_max`).
const SOCKET_BUFFER: usize = 4 * 1024 * 1024;
/// Allocation unit of the compact buffer received frames are packed into.
const RX_CHUNK: usize = 256 * 1024;
/// Largest batch [`Media::try_send_now`] sends with plain `sendto`s (more go by GSO).
const INLINE_MAX: usize = 2;

/// Where broadcast-class frames go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UdpRemote {
    /// A multicast group `ip:port`; the bearer binds the wildcard address on its local port.
    Multicast(SocketAddr),
    /// A list of unicast peers; every broadcast frame is copied to each of them.
    Replicast(Vec<SocketAddr>),
}

/// Configuration of a [`UdpMedia`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpConfig {
    /// The local `ip:port`. The IP must be assigned to an interface; it is what peers reach.
    /// Port 0 picks a free port (replicast mode; in multicast mode all nodes need one port).
    pub local: SocketAddr,
    /// Multicast group or replicast list.
    pub remote: UdpRemote,
    /// Bearer MTU override; `None` derives it (IPv4 `min(14000, ifmtu - 28)`, IPv6 1280).
    pub mtu: Option<usize>,
    /// The bearer name after `udp:` (e.g. `udp1`).
    pub name: String,
}

/// The multicast group iproute2 derives from a network id when no remote IP is given
/// (`tipc/bearer.c: generate_multicast`).
///
/// IPv4: `228.0.(id>>8 & 0xFF).(id & 0xFF)`. IPv6: iproute2 prints `ff02::%u` with the id in
/// *decimal* and parses that text as an IPv6 address, so the decimal digits become hex digits:
/// id 4711 gives `ff02::4711` (= 0x4711). Kernel network ids are 1..9999, which fit one group;
/// larger ids (which iproute2 cannot express) are spread over the low 32 bits the same way,
/// e.g. 12345 gives `ff02::1:2345`.
pub fn multicast_group(net_id: u32, v6: bool) -> IpAddr {
    if !v6 {
        return IpAddr::V4(Ipv4Addr::new(
            228,
            0,
            ((net_id >> 8) & 0xFF) as u8,
            (net_id & 0xFF) as u8,
        ));
    }
    // Reinterpret the decimal digits as hexadecimal digits.
    let mut hexval: u64 = 0;
    for d in net_id.to_string().bytes() {
        hexval = (hexval << 4) | u64::from(d - b'0');
    }
    let low = (hexval & 0xFFFF) as u16;
    let high = ((hexval >> 16) & 0xFFFF) as u16;
    IpAddr::V6(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, high, low))
}

/// Receive buffers: one slot per datagram of a `recvmmsg` batch (allocated and zeroed once),
/// and a compact buffer small datagrams are packed into and split off as [`Bytes`].
///
/// A large datagram (a GRO train, a big fragment) is not copied: its slot is handed out with
/// it ("lent") and replaced by one whose frames are all gone, or a new one. A frame kept alive
/// keeps its compact chunk (at least [`RX_CHUNK`] bytes) or its slot alive; long-term holders
/// of many small frames may prefer to copy them.
#[derive(Debug)]
pub(crate) struct RxBufs {
    slots: Vec<BytesMut>,
    compact: BytesMut,
    /// Slots lent out with large datagrams, oldest first, taken back once unshared.
    lent: std::collections::VecDeque<Bytes>,
    slot: usize,
}

/// Datagrams at least this large are lent out in their slot rather than copied.
const LEND_MIN: usize = 8 * 1024;
/// Most slots out on loan at once (4 MiB of 64 KiB slots). When all are still held (a
/// receiver that lags, or a flood of large datagrams ahead of a gap) further large datagrams
/// are copied out instead: a datagram then pins no more than its own size.
const LENT_MAX: usize = 64;

impl RxBufs {
    /// Buffers for `slots` datagrams of up to `slot` bytes each.
    pub(crate) fn new(slots: usize, slot: usize) -> Self {
        RxBufs {
            slots: (0..slots).map(|_| BytesMut::zeroed(slot)).collect(),
            compact: BytesMut::new(),
            lent: std::collections::VecDeque::new(),
            slot,
        }
    }

    /// The slots, for `recvmmsg`.
    fn bufs(&mut self) -> impl Iterator<Item = &mut [u8]> {
        self.slots.iter_mut().map(|s| &mut s[..])
    }

    /// Take the datagrams that arrived (`lens[i]` bytes in slot `i`) into `out[i]`: small ones
    /// packed into one compact buffer, large ones in their own slot. Allocates nothing per
    /// batch (a new chunk or slot only when none can be taken back).
    fn land(&mut self, lens: &[usize], out: &mut [Bytes]) {
        let lens = &lens[..lens.len().min(out.len())];
        let total: usize = lens.iter().filter(|&&l| l < LEND_MIN).sum();
        if self.compact.capacity() < total {
            // `reserve` takes the whole chunk back when every frame split off it is gone
            // (the common case once a batch was delivered): no fresh allocation, hence no
            // mmap/page-fault churn per batch; otherwise it allocates a new chunk.
            self.compact.reserve(total.max(RX_CHUNK));
        }
        // Large ones lent at once; small ones copied, then cut from the packed buffer in the
        // same order.
        for (i, &len) in lens.iter().enumerate() {
            let len = len.min(self.slot);
            if len < LEND_MIN {
                self.compact.extend_from_slice(&self.slots[i][..len]);
                continue;
            }
            let Some(fresh) = self.take_back() else {
                out[i] = Bytes::copy_from_slice(&self.slots[i][..len]);
                continue;
            };
            let whole = std::mem::replace(&mut self.slots[i], fresh).freeze();
            out[i] = whole.slice(..len);
            self.lent.push_back(whole);
        }
        let packed = self.compact.split().freeze();
        let mut off = 0;
        for (i, &len) in lens.iter().enumerate() {
            let len = len.min(self.slot);
            if len < LEND_MIN {
                out[i] = packed.slice(off..off + len);
                off += len;
            }
        }
    }

    /// A lent slot whose frames are all gone, or a new one while fewer than [`LENT_MAX`] are
    /// out; `None` when that many are out and all still held.
    fn take_back(&mut self) -> Option<BytesMut> {
        for _ in 0..self.lent.len() {
            let Some(b) = self.lent.pop_front() else {
                break;
            };
            match b.try_into_mut() {
                Ok(m) if m.len() == self.slot => return Some(m),
                Ok(_) => {}
                Err(b) => self.lent.push_back(b),
            }
        }
        (self.lent.len() < LENT_MAX).then(|| BytesMut::zeroed(self.slot))
    }
}

/// Most frames in one GSO group (one datagram train of a `sendmmsg`).
const MAX_IOV_SEGMENTS: usize = 64;

/// Most GSO groups one [`send_groups`] call hands to `sendmmsg`.
const MAX_MMSG: usize = 64;

/// One frame in one datagram: a plain `sendto`, or a `sendmsg` with an iovec per part.
fn send_frame_to(sock: &std::net::UdpSocket, f: &TxFrame, dest: SocketAddr) -> io::Result<usize> {
    if f.tail.is_empty() {
        return sock.send_to(&f.data, dest);
    }
    let parts = [io::IoSlice::new(&f.data), io::IoSlice::new(&f.tail)];
    socket2::SockRef::from(sock).send_to_vectored(&parts, &socket2::SockAddr::from(dest))
}

/// One `sendmmsg` for up to [`MAX_MMSG`] `groups` (each a destination and a range of `list`,
/// sent as one GSO datagram train, each frame its own iovec, or two). Returns how many groups
/// the kernel took (the first one's error if none).
#[allow(unsafe_code)]
fn send_groups(
    sock: &std::net::UdpSocket,
    list: &[(SocketAddr, &TxFrame)],
    groups: &[(SocketAddr, std::ops::Range<usize>)],
) -> io::Result<usize> {
    #[repr(C, align(8))]
    #[derive(Clone, Copy)]
    struct Cmsg([u8; 32]);
    let groups = &groups[..groups.len().min(MAX_MMSG)];
    let addrs: Vec<socket2::SockAddr> = groups
        .iter()
        .map(|(d, _)| socket2::SockAddr::from(*d))
        .collect();
    // A frame is one iovec, or two when its payload came by reference.
    let iovs_of = |r: &std::ops::Range<usize>| -> usize {
        list.get(r.clone())
            .unwrap_or_default()
            .iter()
            .map(|(_, f)| 1 + usize::from(!f.tail.is_empty()))
            .sum()
    };
    let mut iov: Vec<libc::iovec> =
        Vec::with_capacity(groups.iter().map(|(_, r)| iovs_of(r)).sum());
    for (_, r) in groups {
        for (_, f) in list.get(r.clone()).unwrap_or_default() {
            let parts = if f.tail.is_empty() {
                &[&f.data][..]
            } else {
                &[&f.data, &f.tail][..]
            };
            for part in parts {
                iov.push(libc::iovec {
                    iov_base: part.as_ptr() as *mut libc::c_void,
                    iov_len: part.len(),
                });
            }
        }
    }
    let mut cbufs = vec![Cmsg([0; 32]); groups.len()];
    let mut msgs: Vec<libc::mmsghdr> = Vec::with_capacity(groups.len());
    let mut at = 0usize;
    for (i, (_, r)) in groups.iter().enumerate() {
        let frames = list.get(r.clone()).map_or(0, |g| g.len());
        let n = iovs_of(r);
        let seg = list.get(r.start).map_or(0, |(_, f)| f.len());
        let seg = u16::try_from(seg).map_err(|_| invalid(format!("GSO segment of {seg} bytes")))?;
        // SAFETY: the header points into `addrs`, `iov` and `cbufs`, which are fully built
        // (never reallocated from here on) and outlive the `sendmmsg` call below; the control
        // message is written inside the group's own 32-byte buffer (CMSG_SPACE(2) is 24).
        unsafe {
            let mut h: libc::msghdr = std::mem::zeroed();
            h.msg_name = addrs[i].as_ptr() as *mut libc::c_void;
            h.msg_namelen = addrs[i].len();
            h.msg_iov = iov.as_mut_ptr().add(at);
            h.msg_iovlen = n as _;
            if frames > 1 {
                h.msg_control = cbufs[i].0.as_mut_ptr().cast();
                h.msg_controllen = libc::CMSG_SPACE(std::mem::size_of::<u16>() as u32) as _;
                let c = libc::CMSG_FIRSTHDR(&h);
                if c.is_null() {
                    return Err(invalid("no room for the GSO control message".into()));
                }
                (*c).cmsg_level = libc::SOL_UDP;
                (*c).cmsg_type = libc::UDP_SEGMENT;
                (*c).cmsg_len = libc::CMSG_LEN(std::mem::size_of::<u16>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<u16>(), seg);
            }
            msgs.push(libc::mmsghdr {
                msg_hdr: h,
                msg_len: 0,
            });
        }
        at += n;
    }
    // SAFETY: `msgs` holds `msgs.len()` initialized headers whose pointers are valid (above).
    let rc = unsafe { libc::sendmmsg(sock.as_raw_fd(), msgs.as_mut_ptr(), msgs.len() as _, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as usize)
}

/// A TIPC bearer on UDP/IP.
///
/// The socket is registered with the runtime for read readiness only. Registered for write
/// readiness too, an edge-triggered `EPOLLOUT` would wake the thread every time the peer
/// consumed one of our datagrams (on loopback the freed buffer space is reported at once):
/// one wasted `epoll_wait` per message sent. Sends are plain non-blocking calls; only a send
/// that finds the buffer full registers a duplicate of the descriptor for write readiness
/// and waits on it.
#[derive(Debug)]
pub struct UdpMedia {
    sock: AsyncFd<std::net::UdpSocket>,
    /// Where a send waits for buffer space.
    wait_fd: super::WriteWait,
    state: UdpSocketState,
    local: SocketAddr,
    mtu: usize,
    name: String,
    /// Multicast group, when in multicast mode.
    group: Option<SocketAddr>,
    /// Source IP for transmits (set in multicast mode, where the socket is bound to the wildcard).
    src_ip: Option<IpAddr>,
    replicast: Mutex<Vec<SocketAddr>>,
    rx: Mutex<RxBufs>,
    /// The GSO staging buffer, kept between sends (taken out for the duration of one send):
    /// allocating and freeing up to 64 KiB per batch made the allocator consolidate its
    /// free lists on every send.
    gso: Mutex<Vec<u8>>,
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// The interface that owns `ip`: (name, index).
fn interface_of(ip: IpAddr) -> Option<(String, u32)> {
    pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.ips.iter().any(|n| n.ip() == ip))
        .map(|i| (i.name, i.index))
}

fn bind_error(e: io::Error, local: SocketAddr) -> io::Error {
    match e.kind() {
        io::ErrorKind::AddrInUse => io::Error::new(
            e.kind(),
            format!(
                "UDP port {} on {} is already in use",
                local.port(),
                local.ip()
            ),
        ),
        io::ErrorKind::AddrNotAvailable => io::Error::new(
            e.kind(),
            format!(
                "address {} is not available (not assigned to any interface)",
                local.ip()
            ),
        ),
        _ => io::Error::new(e.kind(), format!("binding UDP {local}: {e}")),
    }
}

/// Set an `int` socket option.
#[allow(unsafe_code)]
fn set_int_option(
    sock: &std::net::UdpSocket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: `sock` is an open socket for the duration of the call; the option value is a
    // live `c_int` whose exact size is passed, as setsockopt(2) requires for int options.
    let rc = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Turn off the ancillary data `UdpSocketState::new` asks for and this media never reads
/// (receive timestamps, TOS/traffic class, destination address): each costs the kernel a
/// control message per received datagram, and `SO_TIMESTAMPNS` makes it timestamp every
/// packet. Only `UDP_GRO` (segment size) is kept. Best effort: a failure only costs time.
fn drop_unused_ancillary(sock: &std::net::UdpSocket, v6: bool) {
    let mut off = vec![(libc::SOL_SOCKET, libc::SO_TIMESTAMPNS)];
    if v6 {
        off.push((libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO));
        off.push((libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS));
    } else {
        off.push((libc::IPPROTO_IP, libc::IP_PKTINFO));
        off.push((libc::IPPROTO_IP, libc::IP_RECVTOS));
    }
    for (level, name) in off {
        if let Err(e) = set_int_option(sock, level, name, 0) {
            tracing::debug!("could not turn off socket option {level}/{name}: {e}");
        }
    }
}

impl UdpMedia {
    /// Open the bearer. Must be called inside a tokio runtime.
    ///
    /// Errors: `InvalidInput` for an unspecified local IP, a non-multicast group or mixed
    /// address families; `AddrInUse`/`AddrNotAvailable` with a message naming the address.
    #[allow(unsafe_code)]
    pub fn bind(cfg: UdpConfig) -> io::Result<Self> {
        let local = cfg.local;
        if local.ip().is_unspecified() {
            return Err(invalid(format!(
                "UDP bearer needs a specific local IP, not {}",
                local.ip()
            )));
        }
        let v6 = local.is_ipv6();
        let (group, replicast) = match &cfg.remote {
            UdpRemote::Multicast(g) => {
                if !g.ip().is_multicast() || g.is_ipv6() != v6 {
                    return Err(invalid(format!(
                        "{g} is not a multicast group of the local address family"
                    )));
                }
                (Some(*g), Vec::new())
            }
            UdpRemote::Replicast(list) => {
                if let Some(bad) = list.iter().find(|a| a.is_ipv6() != v6) {
                    return Err(invalid(format!(
                        "replicast peer {bad} is not of the local address family"
                    )));
                }
                (None, list.clone())
            }
        };
        let iface = interface_of(local.ip());

        let sock = Socket::new(Domain::for_address(local), Type::DGRAM, Some(Protocol::UDP))?;
        if v6 {
            sock.set_only_v6(true)?;
        }
        let bind_addr = match group {
            Some(_) => {
                // Several of our nodes on one host may share the group port.
                sock.set_reuse_address(true)?;
                let any = if v6 {
                    IpAddr::V6(Ipv6Addr::UNSPECIFIED)
                } else {
                    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
                };
                SocketAddr::new(any, local.port())
            }
            None => local,
        };
        sock.bind(&bind_addr.into())
            .map_err(|e| bind_error(e, local))?;
        if let Some(g) = group {
            match (g.ip(), local.ip()) {
                (IpAddr::V4(gip), IpAddr::V4(lip)) => {
                    sock.join_multicast_v4(&gip, &lip)?;
                    sock.set_multicast_if_v4(&lip)?;
                    sock.set_multicast_loop_v4(true)?;
                }
                (IpAddr::V6(gip), _) => {
                    let index = iface.as_ref().map(|(_, i)| *i).ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::AddrNotAvailable,
                            format!("no interface owns {}", local.ip()),
                        )
                    })?;
                    sock.join_multicast_v6(&gip, index)?;
                    sock.set_multicast_if_v6(index)?;
                    sock.set_multicast_loop_v6(true)?;
                }
                _ => return Err(invalid(format!("{g} and {local} differ in family"))),
            }
        }
        let std_sock: std::net::UdpSocket = sock.into();
        // Port 0 asks the kernel for a port: report the one it chose.
        let local = if local.port() == 0 {
            SocketAddr::new(local.ip(), std_sock.local_addr()?.port())
        } else {
            local
        };
        let state = UdpSocketState::new((&std_sock).into())?;
        drop_unused_ancillary(&std_sock, v6);
        // Best effort: the kernel caps these at rmem_max/wmem_max.
        let _ = state.set_recv_buffer_size((&std_sock).into(), SOCKET_BUFFER);
        let _ = state.set_send_buffer_size((&std_sock).into(), SOCKET_BUFFER);
        std_sock.set_nonblocking(true)?;
        let wait_fd = super::WriteWait::new(OwnedFd::from(std_sock.try_clone()?));
        // SAFETY: the AsyncFd owns the socket, so its fd stays open and unchanged for the
        // AsyncFd's whole lifetime.
        let sock = unsafe { AsyncFd::register_with_interest(std_sock, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;

        let mtu = match cfg.mtu {
            Some(m) => m,
            None if v6 => IPV6_MTU,
            None => {
                let ifmtu = iface
                    .as_ref()
                    .and_then(|(n, _)| super::sys::interface_mtu(n).ok())
                    .unwrap_or(IPV4_DEFAULT_MTU + IPV4_ENCAP);
                IPV4_DEFAULT_MTU.min(ifmtu.saturating_sub(IPV4_ENCAP))
            }
        };
        Ok(UdpMedia {
            sock,
            wait_fd,
            state,
            local,
            mtu,
            name: cfg.name,
            group,
            src_ip: group.map(|_| local.ip()),
            replicast: Mutex::new(replicast),
            rx: Mutex::new(RxBufs::new(BATCH_SIZE, RX_SLOT)),
            gso: Mutex::new(Vec::new()),
        })
    }

    /// Add a peer to the replicast list (ignored if present or in multicast mode's group).
    pub fn add_replicast(&self, addr: SocketAddr) {
        let mut list = self.replicast.lock().unwrap_or_else(|p| p.into_inner());
        if !list.contains(&addr) {
            list.push(addr);
        }
    }

    /// The current replicast list.
    pub fn replicast(&self) -> Vec<SocketAddr> {
        self.replicast
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The multicast group in multicast mode.
    pub fn group(&self) -> Option<SocketAddr> {
        self.group
    }

    /// Largest number of segments one GSO send may carry.
    pub fn max_gso_segments(&self) -> usize {
        self.state.max_gso_segments()
    }

    /// One non-blocking `recvmmsg`; appends the frames to `out` and returns how many datagram
    /// slots were filled.
    fn try_recv(&self, out: &mut Vec<RxFrame>) -> io::Result<usize> {
        let mut rx = self.rx.lock().unwrap_or_else(|p| p.into_inner());
        let mut meta = [RecvMeta::default(); BATCH_SIZE];
        let n = {
            let mut slots = rx.bufs();
            let mut bufs: [IoSliceMut<'_>; BATCH_SIZE] =
                std::array::from_fn(|_| IoSliceMut::new(slots.next().unwrap_or_default()));
            self.state
                .recv(self.sock.get_ref().into(), &mut bufs, &mut meta)?
        };
        let n = n.min(BATCH_SIZE);
        if n == 0 {
            return Ok(0);
        }
        let lens: [usize; BATCH_SIZE] = std::array::from_fn(|i| meta[i].len.min(RX_SLOT));
        let mut datagrams: [Bytes; BATCH_SIZE] = std::array::from_fn(|_| Bytes::new());
        rx.land(&lens[..n], &mut datagrams);
        drop(rx);
        for (m, d) in meta[..n].iter().zip(datagrams) {
            let len = d.len();
            let stride = if m.stride == 0 { len } else { m.stride };
            let src = MediaAddr::Udp(m.addr);
            let mut off = 0;
            while off < len {
                let end = (off + stride).min(len);
                out.push(RxFrame {
                    src,
                    data: d.slice(off..end),
                });
                off = end;
            }
        }
        Ok(n)
    }

    /// Wait until the socket has buffer space again (after a send found it full).
    async fn wait_writable(&self) -> io::Result<()> {
        self.wait_fd.wait().await
    }

    async fn transmit(&self, t: &Transmit<'_>) -> io::Result<()> {
        loop {
            match self.state.try_send(self.sock.get_ref().into(), t) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait_writable().await?,
                r => return r,
            }
        }
    }

    /// Send `frames` (all to `dest`, all of `seg` bytes except perhaps the last) in one GSO
    /// transmit, falling back to one datagram each if the kernel refuses GSO.
    async fn send_group(
        &self,
        dest: SocketAddr,
        frames: &[&TxFrame],
        gso_buf: &mut Vec<u8>,
    ) -> io::Result<()> {
        if let [one] = frames {
            return self.send_one(dest, one).await;
        }
        // Multicast mode (the source address goes in ancillary data) and the fallback after
        // `sendmmsg` failed: one staged GSO transmit through quinn-udp.
        gso_buf.clear();
        for f in frames {
            gso_buf.extend_from_slice(&f.data);
            gso_buf.extend_from_slice(&f.tail);
        }
        let t = Transmit {
            destination: dest,
            ecn: None,
            contents: gso_buf,
            segment_size: Some(frames.first().map(|f| f.len()).unwrap_or(0)),
            src_ip: self.src_ip,
        };
        let r = self.transmit(&t).await;
        match r {
            Err(e) if matches!(e.raw_os_error(), Some(libc::EIO) | Some(libc::EINVAL)) => {
                tracing::debug!("GSO send to {dest} failed ({e}); sending one by one");
                let mut first_err = None;
                for f in frames {
                    if let Err(e) = self.send_one(dest, f).await {
                        first_err.get_or_insert(e);
                    }
                }
                first_err.map_or(Ok(()), Err)
            }
            r => r,
        }
    }

    async fn send_one(&self, dest: SocketAddr, f: &TxFrame) -> io::Result<()> {
        if self.src_ip.is_none() {
            // A plain `sendto`: no ancillary data for the kernel to parse.
            loop {
                match send_frame_to(self.sock.get_ref(), f, dest) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait_writable().await?,
                    r => return r.map(drop),
                }
            }
        }
        let whole = f.contiguous();
        let t = Transmit {
            destination: dest,
            ecn: None,
            contents: &whole,
            segment_size: None,
            src_ip: self.src_ip,
        };
        self.transmit(&t).await
    }

    /// Expand frames into (destination, frame) in send order; a run of consecutive broadcast
    /// frames is emitted destination by destination so that each can go as one GSO batch.
    fn expand<'f>(
        &self,
        frames: &'f [TxFrame],
    ) -> (Vec<(SocketAddr, &'f TxFrame)>, Option<io::Error>) {
        let mut out = Vec::with_capacity(frames.len());
        let mut err = None;
        let bcast: Vec<SocketAddr> = if frames.iter().any(|f| f.dest == Dest::Broadcast) {
            match self.group {
                Some(g) => vec![g],
                None => self.replicast(),
            }
        } else {
            Vec::new()
        };
        let mut i = 0;
        while i < frames.len() {
            match frames[i].dest {
                Dest::Unicast(MediaAddr::Udp(sa)) => {
                    out.push((sa, &frames[i]));
                    i += 1;
                }
                Dest::Unicast(other) => {
                    err.get_or_insert_with(|| invalid(format!("{other} is not a UDP address")));
                    i += 1;
                }
                Dest::Broadcast => {
                    let start = i;
                    while i < frames.len() && frames[i].dest == Dest::Broadcast {
                        i += 1;
                    }
                    for d in &bcast {
                        out.extend(frames[start..i].iter().map(|f| (*d, f)));
                    }
                }
            }
        }
        (out, err)
    }
}

impl Media for UdpMedia {
    fn kind(&self) -> MediaKind {
        MediaKind::Udp
    }

    fn local_addr(&self) -> MediaAddr {
        MediaAddr::Udp(self.local)
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn bearer_name(&self) -> String {
        format!("udp:{}", self.name)
    }

    /// A short run of unicast frames goes out with plain non-blocking `sendto`s from the
    /// caller's task (request/reply traffic skips the send task's wake-up); longer batches are
    /// left to [`Media::send_batch`], which groups them into GSO sends. Nothing in multicast
    /// mode (its frames need the source IP as ancillary data).
    fn try_send_now(&self, frames: &[TxFrame]) -> usize {
        if self.src_ip.is_some() || frames.len() > INLINE_MAX {
            return 0;
        }
        let mut sent = 0;
        for f in frames {
            let Dest::Unicast(MediaAddr::Udp(dest)) = f.dest else {
                break;
            };
            match send_frame_to(self.sock.get_ref(), f, dest) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => tracing::debug!("send to {dest} failed: {e}"),
            }
            sent += 1;
        }
        sent
    }

    async fn recv_batch(&self, out: &mut Vec<RxFrame>) -> io::Result<()> {
        loop {
            let mut ready = self.sock.readable().await?;
            let before = out.len();
            let r = ready.try_io(|_| {
                match self.try_recv(out) {
                    // `recvmmsg` stopped before filling every slot: the queue was empty.
                    // Reporting `WouldBlock` makes tokio clear the read readiness now (a
                    // datagram arriving later raises a new event), instead of learning it from
                    // one more `recvmmsg` returning `EAGAIN`. The frames are already in `out`.
                    Ok(n) if n < BATCH_SIZE => Err(io::ErrorKind::WouldBlock.into()),
                    r => r.map(drop),
                }
            });
            match r {
                // Would block: readiness cleared.
                Err(_) => {}
                Ok(Err(e)) if e.kind() == io::ErrorKind::WouldBlock => {}
                Ok(Err(e)) => return Err(e),
                Ok(Ok(())) => {}
            }
            if out.len() > before {
                return Ok(());
            }
        }
    }

    async fn send_batch(&self, frames: &[TxFrame]) -> io::Result<()> {
        // The common case of a lone unicast frame: no grouping.
        if let [f @ TxFrame {
            dest: Dest::Unicast(MediaAddr::Udp(sa)),
            ..
        }] = frames
        {
            return self.send_one(*sa, f).await;
        }
        let (list, mut first_err) = self.expand(frames);
        let max_segs = self.state.max_gso_segments().clamp(1, MAX_IOV_SEGMENTS);
        // Cut the list into GSO groups: runs of frames to one destination, all of the first
        // frame's size except perhaps a shorter last one.
        let mut groups: Vec<(SocketAddr, std::ops::Range<usize>)> = Vec::new();
        let mut i = 0;
        while i < list.len() {
            let (dest, first) = list[i];
            let seg = first.len();
            let mut total = seg;
            let mut j = i + 1;
            // Only frames within the bearer MTU are segmented: a GSO segment larger than the
            // path MTU is refused by the kernel.
            if seg > 0 && seg <= self.mtu {
                while j < list.len() && j - i < max_segs {
                    let (d, f) = list[j];
                    if d != dest
                        || f.len() > seg
                        || f.is_empty()
                        || total + f.len() > MAX_UDP_PAYLOAD
                    {
                        break;
                    }
                    total += f.len();
                    j += 1;
                    if f.len() < seg {
                        break; // a shorter frame ends the segment run
                    }
                }
            }
            groups.push((dest, i..j));
            i = j;
        }
        let frames_of = |r: &std::ops::Range<usize>| -> Vec<&TxFrame> {
            list[r.clone()].iter().map(|(_, f)| *f).collect()
        };
        // Every group in one `sendmmsg` (as few as possible when the kernel takes fewer).
        let mut next = 0;
        if self.src_ip.is_none() {
            while next < groups.len() {
                match send_groups(self.sock.get_ref(), &list, &groups[next..]) {
                    Ok(k) => next += k.max(1),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait_writable().await?,
                    // GSO refused: the remaining groups one by one (with their fallback).
                    Err(e) if matches!(e.raw_os_error(), Some(libc::EIO) | Some(libc::EINVAL)) => {
                        break
                    }
                    Err(e) => {
                        // This group could not be sent (e.g. an unreachable destination);
                        // go on with the next.
                        tracing::debug!("UDP send to {} failed: {e}", groups[next].0);
                        first_err.get_or_insert(e);
                        next += 1;
                    }
                }
            }
        }
        let mut gso_buf = std::mem::take(&mut *self.gso.lock().unwrap_or_else(|p| p.into_inner()));
        for (dest, r) in &groups[next..] {
            if let Err(e) = self.send_group(*dest, &frames_of(r), &mut gso_buf).await {
                tracing::debug!("UDP send to {dest} failed: {e}");
                first_err.get_or_insert(e);
            }
        }
        gso_buf.clear();
        *self.gso.lock().unwrap_or_else(|p| p.into_inner()) = gso_buf;
        first_err.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multicast_group_v4_default_netid() {
        assert_eq!(
            multicast_group(4711, false),
            "228.0.18.103".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn multicast_group_v6_reads_decimal_as_hex() {
        assert_eq!(
            multicast_group(4711, true),
            "ff02::4711".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            multicast_group(12345, true),
            "ff02::1:2345".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn rxbufs_land_packs_small_datagrams_and_lends_large_ones() {
        let mut r = RxBufs::new(3, 2 * LEND_MIN);
        r.slots[0][..3].copy_from_slice(b"abc");
        r.slots[1][..LEND_MIN].fill(7);
        r.slots[2][..2].copy_from_slice(b"de");
        let slot1 = r.slots[1].as_ptr();
        let mut got: [Bytes; 3] = Default::default();
        r.land(&[3, LEND_MIN, 2], &mut got);
        assert_eq!(&got[0][..], b"abc");
        assert_eq!(&got[2][..], b"de");
        // The small ones share one compact buffer; the large one is its slot, not a copy.
        assert_eq!(got[2].as_ptr(), got[0].as_ptr().wrapping_add(3));
        assert_eq!(got[1].len(), LEND_MIN);
        assert!(got[1].iter().all(|&x| x == 7));
        assert_eq!(got[1].as_ptr(), slot1);
        // Its slot was replaced: the next batch does not overwrite frames handed out before.
        r.slots[1][..LEND_MIN].fill(9);
        let mut again: [Bytes; 3] = Default::default();
        r.land(&[0, LEND_MIN, 0], &mut again);
        assert!(got[1].iter().all(|&x| x == 7));
        assert!(again[1].iter().all(|&x| x == 9));
        // Once its frames are gone a lent slot is taken back (no new allocation).
        drop(got);
        let before = r.slots[1].as_ptr();
        r.slots[1][..LEND_MIN].fill(1);
        let mut third: [Bytes; 3] = Default::default();
        r.land(&[0, LEND_MIN, 0], &mut third);
        assert_eq!(third[1].as_ptr(), before);
        assert_eq!(r.slots[1].as_ptr(), slot1, "the first lent slot came back");
    }

    /// A receiver that holds every large frame (a lagging one, or a flood ahead of a gap):
    /// after [`LENT_MAX`] slots are out, large datagrams are copied to their own size, so the
    /// memory they pin is bounded by what arrived, not 64 KiB each.
    #[test]
    fn rxbufs_copy_large_datagrams_once_lent_max_slots_are_held() {
        let mut r = RxBufs::new(1, 8 * LEND_MIN);
        let mut held = Vec::new();
        let mut slot = r.slots[0].as_ptr();
        for n in 0..LENT_MAX + 10 {
            r.slots[0][..LEND_MIN].fill(n as u8);
            let mut got: [Bytes; 1] = Default::default();
            r.land(&[LEND_MIN], &mut got);
            assert!(got[0].iter().all(|&x| x == n as u8), "frame {n} altered");
            if n < LENT_MAX {
                // Lent: the frame is the slot, and a fresh slot takes its place.
                assert_eq!(got[0].as_ptr(), slot);
                assert_ne!(r.slots[0].as_ptr(), slot);
            } else {
                // Copied: the slot stays (no new 64 KiB buffer), the frame is elsewhere.
                assert_eq!(r.slots[0].as_ptr(), slot);
                assert_ne!(got[0].as_ptr(), slot);
            }
            slot = r.slots[0].as_ptr();
            held.push(got[0].clone());
        }
        assert_eq!(r.lent.len(), LENT_MAX);
        assert!(held
            .iter()
            .enumerate()
            .all(|(n, b)| b.iter().all(|&x| x == n as u8)));
        // Frames released: lending resumes with a slot taken back.
        held.clear();
        let mut got: [Bytes; 1] = Default::default();
        r.land(&[LEND_MIN], &mut got);
        assert_eq!(r.lent.len(), LENT_MAX);
    }

    fn loopback_pair() -> (UdpMedia, UdpMedia, SocketAddr) {
        let open = || {
            UdpMedia::bind(UdpConfig {
                local: "127.0.0.1:0".parse().unwrap(),
                remote: UdpRemote::Replicast(Vec::new()),
                mtu: None,
                name: "t".into(),
            })
            .unwrap()
        };
        let (a, b) = (open(), open());
        let to = b.local;
        (a, b, to)
    }

    fn unicast(to: SocketAddr, data: &'static [u8]) -> TxFrame {
        TxFrame::new(Dest::Unicast(MediaAddr::Udp(to)), Bytes::from_static(data))
    }

    async fn recv_n(m: &UdpMedia, n: usize) -> Vec<Bytes> {
        let mut out = Vec::new();
        while out.len() < n {
            tokio::time::timeout(std::time::Duration::from_secs(5), m.recv_batch(&mut out))
                .await
                .expect("frames arrive")
                .expect("recv");
        }
        out.into_iter().map(|f| f.data).collect()
    }

    #[tokio::test]
    async fn try_send_now_sends_short_unicast_run_in_order() {
        let (a, b, to) = loopback_pair();
        let frames = [unicast(to, b"first"), unicast(to, b"second")];
        // No write readiness needed first: the socket is not registered for it.
        assert_eq!(a.try_send_now(&frames), 2);
        let got = recv_n(&b, 2).await;
        assert_eq!(got, vec![&b"first"[..], &b"second"[..]]);
    }

    #[tokio::test]
    async fn wait_writable_registers_afresh_each_time_and_sees_buffer_space() {
        let (a, b, to) = loopback_pair();
        for _ in 0..3 {
            tokio::time::timeout(std::time::Duration::from_secs(5), a.wait_writable())
                .await
                .expect("an empty send buffer is writable at once")
                .expect("registration");
        }
        a.send_batch(&[unicast(to, b"after")]).await.expect("send");
        assert_eq!(recv_n(&b, 1).await, vec![&b"after"[..]]);
    }

    #[tokio::test]
    async fn try_send_now_leaves_long_batches_to_send_batch() {
        let (a, _b, to) = loopback_pair();
        let frames: Vec<TxFrame> = (0..=INLINE_MAX).map(|_| unicast(to, b"x")).collect();
        assert_eq!(a.try_send_now(&frames), 0);
    }

    #[tokio::test]
    async fn try_send_now_stops_at_a_broadcast_frame() {
        let (a, b, to) = loopback_pair();
        let frames = [
            unicast(to, b"one"),
            TxFrame::new(Dest::Broadcast, Bytes::from_static(b"all")),
        ];
        assert_eq!(a.try_send_now(&frames), 1);
        assert_eq!(recv_n(&b, 1).await, vec![&b"one"[..]]);
    }

    #[allow(unsafe_code)]
    fn int_option(m: &UdpMedia, level: libc::c_int, name: libc::c_int) -> libc::c_int {
        use std::os::fd::AsRawFd;
        let mut v: libc::c_int = -1;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: a live socket, and a `c_int` out-value with its exact length.
        let rc = unsafe {
            libc::getsockopt(
                m.sock.as_raw_fd(),
                level,
                name,
                (&mut v as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "getsockopt: {}", io::Error::last_os_error());
        v
    }

    #[tokio::test]
    async fn bind_turns_off_ancillary_data_it_never_reads() {
        let (a, _b, _) = loopback_pair();
        assert_eq!(int_option(&a, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS), 0);
        assert_eq!(int_option(&a, libc::IPPROTO_IP, libc::IP_PKTINFO), 0);
        assert_eq!(int_option(&a, libc::IPPROTO_IP, libc::IP_RECVTOS), 0);
        // Segment sizes of coalesced datagrams are still reported.
        assert_eq!(int_option(&a, libc::SOL_UDP, libc::UDP_GRO), 1);
    }

    #[test]
    fn rxbufs_land_clamps_lengths_to_the_slot() {
        let mut r = RxBufs::new(1, 4);
        r.slots[0].copy_from_slice(b"wxyz");
        let mut b: [Bytes; 1] = Default::default();
        r.land(&[9], &mut b);
        assert_eq!(&b[0][..], b"wxyz");
    }
}
