//! Who may use a node's control socket, whatever the umask.
//!
//! * The path is checked before anything is created ([`bind`]): an existing file that is not a
//!   socket (a regular file, a directory, a symbolic link) is never replaced, a socket a
//!   running node answers on is refused, only a stale socket (nobody listening) is removed; a
//!   path too long for a Unix socket is refused with its length.
//! * The socket is created with mode 0600 (owner only) under a umask set around the `bind`
//!   (so it is never reachable with a wider mode); with a control group ([`Access::group`]),
//!   it is then given to that group and made 0660.
//! * Each client's credentials are checked on accept ([`check_peer`]: `SO_PEERCRED`, and
//!   `SO_PEERGROUPS` for supplementary groups): root, the node's own user and the members of
//!   the control group are served; anyone else gets a refusal that says why.

use std::ffi::CString;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Mutex;

/// Longest path of a Unix socket in bytes (`sun_path` holds 108, the terminating NUL included).
pub const MAX_PATH: usize = 107;

/// Who may use the control socket besides root and the node's own user.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Access {
    /// The members of this group (a gid) too: the socket is made mode 0660 and this group's.
    pub group: Option<u32>,
}

impl Access {
    /// Root and the node's own user only (mode 0600).
    pub fn owner_only() -> Access {
        Access { group: None }
    }

    /// Also the members of `group`, a group name or a numeric gid (mode 0660).
    pub fn with_group(group: &str) -> io::Result<Access> {
        let gid = match group.parse::<u32>() {
            Ok(gid) => gid,
            Err(_) => group_by_name(group)?.ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("no such group '{group}'"))
            })?,
        };
        Ok(Access { group: Some(gid) })
    }

    /// The socket's file mode.
    pub fn mode(&self) -> u32 {
        if self.group.is_some() {
            0o660
        } else {
            0o600
        }
    }
}

/// Whether a client with these credentials may use the socket of a node running as
/// `node_uid`: root, the node's user, or a member of the control group (primary or
/// supplementary).
pub fn allowed(uid: u32, gid: u32, groups: &[u32], node_uid: u32, access: &Access) -> bool {
    uid == 0
        || uid == node_uid
        || access
            .group
            .is_some_and(|g| gid == g || groups.contains(&g))
}

/// Check the credentials of the client on `s` (see [`allowed`]); `Err` with the refusal's
/// text.
pub fn check_peer(s: &tokio::net::UnixStream, access: &Access) -> Result<(), String> {
    let cred = s
        .peer_cred()
        .map_err(|e| format!("permission denied: cannot read the client's credentials: {e}"))?;
    let node_uid = effective_uid();
    let (uid, gid) = (cred.uid(), cred.gid());
    // Supplementary groups matter only for a client that nothing else admits.
    let groups = match access.group {
        Some(g) if uid != 0 && uid != node_uid && gid != g => {
            peer_groups(s.as_raw_fd()).unwrap_or_default()
        }
        _ => Vec::new(),
    };
    if allowed(uid, gid, &groups, node_uid, access) {
        return Ok(());
    }
    Err(match access.group {
        Some(g) => format!(
            "permission denied: uid {uid} is not root, the node's user (uid {node_uid}) or a \
             member of its control group (gid {g})"
        ),
        None => format!(
            "permission denied: uid {uid} is not root or the node's user (uid {node_uid}); \
             tipc-node --control-group GROUP lets a group's members in"
        ),
    })
}

/// Check `path` and create the control socket there with [`Access::mode`] (see the module
/// docs). The errors say what is wrong with the path.
pub fn bind(path: &Path, access: &Access) -> io::Result<UnixListener> {
    let len = path.as_os_str().len();
    if len > MAX_PATH {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the path is {len} bytes long; a Unix socket path holds at most {MAX_PATH}"),
        ));
    }
    clear_stale(path)?;
    let listener = bind_owner_only(path).map_err(|e| {
        let hint = match e.kind() {
            io::ErrorKind::NotFound => " (does its directory exist?)",
            _ => "",
        };
        io::Error::new(e.kind(), format!("cannot create it: {e}{hint}"))
    })?;
    if let Some(gid) = access.group {
        let given = std::os::unix::fs::chown(path, None, Some(gid)).and_then(|_| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(access.mode()))
        });
        if let Err(e) = given {
            let _ = std::fs::remove_file(path);
            return Err(io::Error::new(
                e.kind(),
                format!(
                    "cannot give it to group {gid} with mode 0660: {e} (the node's user must \
                     be a member of the group)"
                ),
            ));
        }
    }
    Ok(listener)
}

/// What is at `path` before the bind: nothing, or a stale socket (removed); anything else is
/// an error.
fn clear_stale(path: &Path) -> io::Result<()> {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io::Error::new(e.kind(), format!("cannot check it: {e}"))),
    };
    let ft = meta.file_type();
    if !ft.is_socket() {
        let what = if ft.is_dir() {
            "a directory"
        } else if ft.is_symlink() {
            "a symbolic link"
        } else if ft.is_file() {
            "a regular file"
        } else {
            "not a socket"
        };
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("it exists and is {what}, not a socket; refusing to replace it"),
        ));
    }
    match std::os::unix::net::UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            "it is in use by a running node",
        )),
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => std::fs::remove_file(path)
            .map_err(|e| io::Error::new(e.kind(), format!("cannot remove the stale socket: {e}"))),
        Err(e) => Err(io::Error::new(
            e.kind(),
            format!("cannot tell whether a node is using it: {e}"),
        )),
    }
}

/// Serialises our umask changes (the umask is process-wide).
static UMASK: Mutex<()> = Mutex::new(());

/// Bind with the umask at 0177 (mode 0600) for the duration of the call. Another thread of the
/// process creating a file at that moment gets a mode without group and other bits (stricter,
/// never wider).
#[allow(unsafe_code)]
fn bind_owner_only(path: &Path) -> io::Result<UnixListener> {
    let _serial = UMASK.lock().unwrap_or_else(|p| p.into_inner());
    // SAFETY: umask(2) only sets the process's file mode creation mask; it takes no pointers
    // and cannot fail.
    let old = unsafe { libc::umask(0o177) };
    let r = UnixListener::bind(path);
    // SAFETY: as above; restores the previous mask.
    unsafe { libc::umask(old) };
    r
}

/// The node's effective uid.
#[allow(unsafe_code)]
fn effective_uid() -> u32 {
    // SAFETY: geteuid(2) takes no arguments and always succeeds.
    unsafe { libc::geteuid() }
}

/// The supplementary groups of the peer of a connected Unix socket (`SO_PEERGROUPS`).
#[allow(unsafe_code)]
fn peer_groups(fd: RawFd) -> io::Result<Vec<u32>> {
    const MAX_GROUPS: usize = 65536; // NGROUPS_MAX
    let size = std::mem::size_of::<libc::gid_t>();
    let mut v: Vec<libc::gid_t> = vec![0; 64];
    loop {
        let mut len = (v.len() * size) as libc::socklen_t;
        // SAFETY: `v` is valid for writes of `len` bytes and outlives the call; `len` is a
        // valid socklen_t the kernel updates.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_PEERGROUPS,
                v.as_mut_ptr().cast(),
                &mut len,
            )
        };
        if rc == 0 {
            v.truncate(len as usize / size);
            return Ok(v);
        }
        let e = io::Error::last_os_error();
        let want = len as usize / size;
        if e.raw_os_error() == Some(libc::ERANGE) && want > v.len() && want <= MAX_GROUPS {
            v.resize(want, 0);
            continue;
        }
        return Err(e);
    }
}

/// A group's gid by name (`getgrnam_r`); `None` if there is no such group.
#[allow(unsafe_code)]
fn group_by_name(name: &str) -> io::Result<Option<u32>> {
    let cname = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a group name has no NUL byte"))?;
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: a zeroed `group` is a valid value of this plain C struct.
        let mut grp: libc::group = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::group = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: the NUL-terminated name, the struct,
        // the buffer with its length, and the result slot; the struct's strings point into
        // `buf`, which outlives their (unused) reads.
        let rc = unsafe {
            libc::getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut result,
            )
        };
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        return Ok((!result.is_null()).then_some(grp.gr_gid));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn tmp_dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("tipc-access-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir(&d).unwrap();
        d
    }

    #[test]
    fn allowed_admits_root_the_node_user_and_group_members_only() {
        let none = Access::owner_only();
        let grp = Access { group: Some(500) };
        assert!(allowed(0, 0, &[], 1000, &none));
        assert!(allowed(1000, 1000, &[], 1000, &none));
        assert!(!allowed(1001, 500, &[500], 1000, &none));
        assert!(allowed(1001, 500, &[], 1000, &grp));
        assert!(allowed(1001, 100, &[7, 500], 1000, &grp));
        assert!(!allowed(1001, 100, &[7], 1000, &grp));
    }

    #[test]
    fn with_group_takes_a_gid_or_a_name_and_refuses_unknown_names() {
        assert_eq!(Access::with_group("4242").unwrap().group, Some(4242));
        assert_eq!(Access::with_group("root").unwrap().group, Some(0));
        let e = Access::with_group("no-such-group-tipc").unwrap_err();
        assert!(e.to_string().contains("no such group"), "{e}");
        assert_eq!(Access::with_group("4242").unwrap().mode(), 0o660);
        assert_eq!(Access::owner_only().mode(), 0o600);
    }

    #[test]
    fn bind_refuses_a_regular_file_a_directory_and_a_symlink_and_keeps_them() {
        let d = tmp_dir("kinds");
        let f = d.join("file");
        std::fs::write(&f, b"keep me").unwrap();
        let e = bind(&f, &Access::owner_only()).unwrap_err();
        assert!(e.to_string().contains("a regular file"), "{e}");
        assert_eq!(std::fs::read(&f).unwrap(), b"keep me");
        let e = bind(&d, &Access::owner_only()).unwrap_err();
        assert!(e.to_string().contains("a directory"), "{e}");
        let l = d.join("link");
        std::os::unix::fs::symlink(&f, &l).unwrap();
        let e = bind(&l, &Access::owner_only()).unwrap_err();
        assert!(e.to_string().contains("a symbolic link"), "{e}");
        assert_eq!(std::fs::read(&f).unwrap(), b"keep me");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn bind_replaces_a_stale_socket_and_refuses_a_live_one() {
        let d = tmp_dir("stale");
        let p = d.join("s");
        drop(UnixListener::bind(&p).unwrap());
        let live = bind(&p, &Access::owner_only()).unwrap();
        let e = bind(&p, &Access::owner_only()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AddrInUse);
        assert!(e.to_string().contains("in use by a running node"), "{e}");
        drop(live);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn bind_mode_is_0600_or_0660_with_the_group() {
        let d = tmp_dir("mode");
        let p = d.join("s");
        let _l = bind(&p, &Access::owner_only()).unwrap();
        let m = std::fs::metadata(&p).unwrap();
        assert_eq!(m.mode() & 0o777, 0o600);
        // Our own primary group: giving the socket to it needs no privilege.
        let gid = std::fs::metadata(&d).unwrap().gid();
        let q = d.join("g");
        let _g = bind(&q, &Access { group: Some(gid) }).unwrap();
        let m = std::fs::metadata(&q).unwrap();
        assert_eq!((m.mode() & 0o777, m.gid()), (0o660, gid));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn bind_refuses_a_path_over_the_unix_socket_limit_and_a_missing_directory() {
        let long = std::env::temp_dir().join("x".repeat(MAX_PATH));
        let e = bind(&long, &Access::owner_only()).unwrap_err();
        assert!(e.to_string().contains("holds at most 107"), "{e}");
        let d = tmp_dir("missing");
        let e = bind(&d.join("no/such/dir"), &Access::owner_only()).unwrap_err();
        assert!(e.to_string().contains("does its directory exist"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }
}
