//! Host queries shared by the media: the MTU of a network interface, which the kernel reads as
//! the bearer device's `dev->mtu` (`bearer.c`, `udp_media.c`), spec §3.1.
//!
//! Kept apart from the media themselves so that no media file imports another.

use socket2::{Domain, Socket, Type};
use std::io;
use std::os::fd::AsRawFd;

/// The MTU of interface `name` in the calling thread's network namespace (`SIOCGIFMTU`).
#[allow(unsafe_code)]
pub(crate) fn interface_mtu(name: &str) -> io::Result<usize> {
    let sock = Socket::new(Domain::IPV4, Type::DGRAM, None)?;
    // SAFETY: `ifreq` is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    let bytes = name.as_bytes();
    if bytes.len() >= ifr.ifr_name.len() || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid interface name {name:?}"),
        ));
    }
    for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFMTU reads `ifr_name` (NUL-terminated, checked above) and writes
    // `ifr_ifru.ifru_mtu` of the `ifreq` we own; the fd is a valid open socket.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFMTU as _, &mut ifr) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: after a successful SIOCGIFMTU the union holds `ifru_mtu`.
    let mtu = unsafe { ifr.ifr_ifru.ifru_mtu };
    usize::try_from(mtu).map_err(|_| io::Error::other(format!("negative MTU on {name}")))
}
