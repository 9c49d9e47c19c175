//! Ethernet media (kernel `net/tipc/eth_media.c`), spec §3.1.
//!
//! An `AF_PACKET`/`SOCK_RAW` socket bound to one interface and to EtherType 0x88CA
//! (`ETH_P_TIPC`), so the kernel filters out every other protocol and our own outgoing frames.
//! The TIPC message directly follows the 14-byte Ethernet header, which this media adds and
//! strips. Broadcast goes to `ff:ff:ff:ff:ff:ff`. Received frames are accepted only when sent
//! to our MAC, broadcast or multicast, and not from our own MAC. The interface's MAC, index and MTU are looked
//! up with `pnet_datalink` and `SIOCGIFMTU`; frames move through the raw socket, driven by a
//! tokio [`AsyncFd`].
//!
//! Opening the socket needs `CAP_NET_RAW` in the owning user namespace of the interface's
//! network namespace. A socket stays in the namespace it was created in.

use super::rx::RxArena;
use super::sys::interface_mtu;
use super::{Dest, Media, MediaAddr, MediaKind, RxFrame, TxFrame};
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// The TIPC EtherType.
pub const ETH_P_TIPC: u16 = 0x88CA;
/// Ethernet header length (destination, source, EtherType).
pub const ETH_HLEN: usize = 14;
/// The Ethernet broadcast address.
pub const BROADCAST_MAC: [u8; 6] = [0xff; 6];
/// Frames read per `recv_batch` at most.
const RX_BATCH: usize = 64;
/// Receive arena chunk.
const RX_CHUNK: usize = 256 * 1024;

/// Bind a packet socket to (`ETH_P_TIPC`, interface `index`).
#[allow(unsafe_code)]
fn bind_packet(sock: &Socket, index: u32) -> io::Result<()> {
    // SAFETY: `sockaddr_ll` is plain old data; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_TIPC.to_be();
    sll.sll_ifindex = i32::try_from(index)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index too large"))?;
    // SAFETY: we pass a valid `sockaddr_ll` and its exact size; the fd is open.
    let rc = unsafe {
        libc::bind(
            sock.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast::<libc::sockaddr>(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A TIPC bearer on an Ethernet interface.
#[derive(Debug)]
pub struct EthMedia {
    /// Registered for read readiness only (see [`super::WriteWait`]).
    fd: AsyncFd<Socket>,
    /// Where a send waits for buffer space.
    wait_fd: super::WriteWait,
    ifname: String,
    mac: [u8; 6],
    mtu: usize,
    rx: std::sync::Mutex<RxArena>,
}

impl EthMedia {
    /// Open interface `ifname` (in the calling thread's network namespace). `mtu` overrides
    /// the interface MTU. Must be called inside a tokio runtime.
    ///
    /// Errors: `NotFound` naming an unknown interface; `PermissionDenied` when `CAP_NET_RAW`
    /// is missing.
    #[allow(unsafe_code)]
    pub fn open(ifname: &str, mtu: Option<usize>) -> io::Result<Self> {
        let iface = pnet_datalink::interfaces()
            .into_iter()
            .find(|i| i.name == ifname)
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("network interface {ifname:?} not found"),
                )
            })?;
        let mac = iface.mac.map(|m| m.octets()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("interface {ifname} has no MAC address"),
            )
        })?;
        let mtu = match mtu {
            Some(m) => m,
            None => interface_mtu(ifname)?,
        };
        let proto = Protocol::from(i32::from(ETH_P_TIPC.to_be()));
        let sock = Socket::new(Domain::PACKET, Type::RAW, Some(proto)).map_err(|e| {
            if e.kind() == io::ErrorKind::PermissionDenied {
                io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("opening a raw Ethernet socket on {ifname} needs CAP_NET_RAW: {e}"),
                )
            } else {
                e
            }
        })?;
        bind_packet(&sock, iface.index)
            .map_err(|e| io::Error::new(e.kind(), format!("binding to {ifname}: {e}")))?;
        sock.set_nonblocking(true)?;
        let wait_fd = super::WriteWait::new(std::os::fd::OwnedFd::from(sock.try_clone()?));
        // SAFETY: the AsyncFd owns the socket, so its fd stays open and unchanged for the
        // AsyncFd's whole lifetime.
        let fd = unsafe { AsyncFd::register_with_interest(sock, Interest::READABLE) }
            .map_err(|e| e.into_parts().1)?;
        Ok(EthMedia {
            fd,
            wait_fd,
            ifname: ifname.to_string(),
            mac,
            mtu,
            rx: std::sync::Mutex::new(RxArena::new(RX_CHUNK)),
        })
    }

    /// The interface MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Read frames without waiting until the socket is empty or the batch is full.
    /// Returns `WouldBlock` only if nothing at all was read.
    fn try_recv(&self, sock: &Socket, out: &mut Vec<RxFrame>) -> io::Result<()> {
        let mut arena = self.rx.lock().unwrap_or_else(|p| p.into_inner());
        let need = ETH_HLEN + self.mtu.max(1500) + 64;
        let mut got = 0;
        for _ in 0..RX_BATCH {
            let n = match (&*sock).read(arena.space(need)) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            got += 1;
            let buf = arena.space(need);
            // Like the kernel (`tipc_l2_rcv_msg`), accept only frames for our MAC, broadcast or
            // multicast: a packet socket also sees frames for other hosts (PACKET_OTHERHOST).
            let for_us = buf[..6] == self.mac || buf[0] & 1 == 1;
            if n < ETH_HLEN
                || !for_us
                || buf[12..14] != ETH_P_TIPC.to_be_bytes()
                || buf[6..12] == self.mac
            {
                continue; // runt, not ours, foreign EtherType or our own frame: reuse the space
            }
            let mut src = [0u8; 6];
            src.copy_from_slice(&buf[6..12]);
            let frame = arena.take(n);
            out.push(RxFrame {
                src: MediaAddr::Eth(src),
                data: frame.slice(ETH_HLEN..),
            });
        }
        Ok(())
    }
}

impl Media for EthMedia {
    fn kind(&self) -> MediaKind {
        MediaKind::Eth
    }

    fn local_addr(&self) -> MediaAddr {
        MediaAddr::Eth(self.mac)
    }

    fn mtu(&self) -> usize {
        self.mtu
    }

    fn bearer_name(&self) -> String {
        format!("eth:{}", self.ifname)
    }

    async fn recv_batch(&self, out: &mut Vec<RxFrame>) -> io::Result<()> {
        loop {
            let mut guard = self.fd.readable().await?;
            let before = out.len();
            match guard.try_io(|fd| self.try_recv(fd.get_ref(), out)) {
                Ok(Ok(())) if out.len() > before => return Ok(()),
                Ok(Ok(())) => continue,
                Ok(Err(e)) => return Err(e),
                Err(_would_block) => continue,
            }
        }
    }

    async fn send_batch(&self, frames: &[TxFrame]) -> io::Result<()> {
        let mut first_err = None;
        let mut buf = Vec::with_capacity(ETH_HLEN + self.mtu);
        for f in frames {
            let dst = match f.dest {
                Dest::Broadcast => BROADCAST_MAC,
                Dest::Unicast(MediaAddr::Eth(m)) => m,
                Dest::Unicast(other) => {
                    first_err.get_or_insert_with(|| {
                        io::Error::new(
                            io::ErrorKind::InvalidInput,
                            format!("{other} is not an Ethernet address"),
                        )
                    });
                    continue;
                }
            };
            buf.clear();
            buf.extend_from_slice(&dst);
            buf.extend_from_slice(&self.mac);
            buf.extend_from_slice(&ETH_P_TIPC.to_be_bytes());
            buf.extend_from_slice(&f.data);
            buf.extend_from_slice(&f.tail);
            let res = loop {
                match self.fd.get_ref().send(&buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if let Err(e) = self.wait_fd.wait().await {
                            break Err(e);
                        }
                    }
                    r => break r,
                }
            };
            if let Err(e) = res {
                tracing::debug!("Ethernet send on {} failed: {e}", self.ifname);
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}
