//! A Linux-kernel TIPC node for interop tests: thin wrapper around the tipc-peer harness
//! (`shared/tipc-peer`: `up`, `exec`, `down`; see its README), which boots Debian's 6.1 kernel in
//! QEMU on a bridge inside a network namespace.
//!
//! Kernel side: `net/tipc/*` of Linux 6.1 (spec tipc-protocol.md, all sections; interop is
//! ARCHITECTURE.md §Tests 5). Tests using it are marked `#[ignore = "needs the kernel peer VM"]`:
//! a plain `cargo test` lists them as ignored, `scripts/test` runs them (`--include-ignored`,
//! as root, after `scripts/setup` installed the harness' images). They begin with
//! [`require_kernel_peer`] (through [`scenario_vm`]), so that run where the VM cannot boot they
//! fail saying what is missing instead of passing.
//!
//! ```no_run
//! use tipc_integration::kernel_peer::{Bearer, KernelPeer, UpOptions};
//! let peer = KernelPeer::up("a", &UpOptions { bearer: Bearer::Udp, netns: Some("tpt1".into()),
//!     ..UpOptions::default() })?;
//! let (rc, out) = peer.exec("tipc node list")?;
//! assert_eq!(rc, 0, "{out}");
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Default namespace of the harness (`TIPC_PEER_NETNS` unset).
pub const DEFAULT_NETNS: &str = "tipcpeer";

/// The harness directory (holding `up`, `exec`, `down`): `$TIPC_PEER_HOME` if set, else the
/// first `shared/tipc-peer` found walking up from this crate's manifest directory (the repository
/// is checked out beside `shared/`).
pub fn harness_dir() -> Option<PathBuf> {
    if let Some(home) = std::env::var_os("TIPC_PEER_HOME") {
        let p = PathBuf::from(home);
        return p.join("up").is_file().then_some(p);
    }
    find_harness_from(Path::new(env!("CARGO_MANIFEST_DIR")))
}

/// Walks up from `start` looking for `shared/tipc-peer/up`.
fn find_harness_from(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|d| d.join("shared").join("tipc-peer"))
        .find(|p| p.join("up").is_file())
}

/// The harness' state directory (`$TIPC_PEER_DIR`, default `/var/tmp/tipc-peer`).
fn state_dir() -> PathBuf {
    std::env::var_os("TIPC_PEER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/tipc-peer"))
}

/// Fails the calling test, saying what is missing, unless a kernel VM can boot here: root with
/// iproute2 (the harness' namespace), the harness ([`harness_dir`]) and its images (its `setup`,
/// which scripts/setup runs). Returns the harness directory.
pub fn require_kernel_peer() -> PathBuf {
    const NEEDS: &str = "this test needs the kernel peer VM";
    assert!(
        crate::netns::netns_supported(),
        "{NEEDS}: run it as root with iproute2, as scripts/test does (a plain `cargo test` \
         leaves it ignored)"
    );
    let Some(home) = harness_dir() else {
        panic!(
            "{NEEDS}, but the tipc-peer harness was not found: set TIPC_PEER_HOME or check the \
             repository out beside shared/"
        );
    };
    let images = state_dir().join("images");
    assert!(
        images.join("vmlinuz").is_file() && images.join("initramfs.cpio.gz").is_file(),
        "{NEEDS}, but {} has no kernel image: run scripts/setup (or {}/setup) as root",
        images.display(),
        home.display()
    );
    home
}

/// Which bearers the kernel node enables (`up --bearer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Bearer {
    /// UDP bearer `udp:udp1` on port 6118.
    #[default]
    Udp,
    /// Ethernet bearer `eth:eth0`.
    Eth,
    /// Both bearers.
    Both,
    /// No bearer (enable one later with [`KernelPeer::exec`]).
    None,
}

impl Bearer {
    fn as_arg(self) -> &'static str {
        match self {
            Bearer::Udp => "udp",
            Bearer::Eth => "eth",
            Bearer::Both => "both",
            Bearer::None => "none",
        }
    }
}

/// Options of [`KernelPeer::up`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UpOptions {
    /// Bearers to enable.
    pub bearer: Bearer,
    /// UDP unicast discovery peers (`--remote`, e.g. `"host"` = 10.99.0.1); `None` = multicast.
    pub remote: Option<String>,
    /// Namespace (`TIPC_PEER_NETNS`); `None` = the harness default [`DEFAULT_NETNS`].
    pub netns: Option<String>,
    /// Node identity (`--id`); `None` = the VM name, `"auto"` = derived by the kernel.
    pub id: Option<String>,
}

/// A running kernel TIPC node (a QEMU VM); shut down by [`KernelPeer::down`] or on drop.
#[derive(Debug)]
pub struct KernelPeer {
    name: String,
    netns: String,
    home: PathBuf,
    info: HashMap<String, String>,
    up_output: String,
    running: bool,
}

/// Builds a command for harness script `script` with the namespace in the environment.
fn harness_command(home: &Path, netns: &str, script: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(home.join(script))
        .current_dir(home)
        .env("TIPC_PEER_NETNS", netns)
        .stdin(Stdio::null());
    cmd
}

fn not_found(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, what.to_owned())
}

/// Parses `key=value` lines.
fn parse_info(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// Parses `tipc link list` output (`name: state` lines) into `(name, state)` pairs.
pub fn parse_link_list(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.rsplit_once(": "))
        .map(|(n, s)| (n.trim().to_owned(), s.trim().to_owned()))
        .filter(|(n, _)| !n.is_empty())
        .collect()
}

impl KernelPeer {
    /// Boots VM `name` (`./up NAME ...`); the namespace and bridge are created if needed.
    /// Takes ~7 s with TCG (see the harness README).
    pub fn up(name: &str, opts: &UpOptions) -> io::Result<KernelPeer> {
        let home = harness_dir().ok_or_else(|| {
            not_found("tipc-peer harness not found (set TIPC_PEER_HOME or check out shared/)")
        })?;
        let netns = opts.netns.clone().unwrap_or_else(|| DEFAULT_NETNS.into());
        let mut cmd = harness_command(&home, &netns, "up");
        cmd.arg(name).args(["--bearer", opts.bearer.as_arg()]);
        if let Some(r) = &opts.remote {
            cmd.args(["--remote", r]);
        }
        if let Some(id) = &opts.id {
            cmd.args(["--id", id]);
        }
        let out = cmd.output()?;
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // from here on a VM may be running: the guard's Drop takes it down on error
        let mut peer = KernelPeer {
            name: name.to_owned(),
            netns,
            home,
            info: HashMap::new(),
            up_output: text,
            running: true,
        };
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "up {name} failed ({}): {}",
                out.status, peer.up_output
            )));
        }
        peer.info = std::fs::read_to_string(peer.run_dir().join("info"))
            .map(|t| parse_info(&t))
            .unwrap_or_default();
        Ok(peer)
    }

    /// The VM name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace the VM's bridge lives in.
    pub fn netns(&self) -> &str {
        &self.netns
    }

    /// What `up` printed (boot time, addresses, bearers).
    pub fn up_output(&self) -> &str {
        &self.up_output
    }

    /// The VM's run directory (`info`, `console.log`, ...).
    pub fn run_dir(&self) -> PathBuf {
        state_dir().join("run").join(&self.netns).join(&self.name)
    }

    /// A value from the VM's `info` file (`ip`, `mac`, `node_id`, `node_addr`, `accel`, `boot_s`...).
    pub fn info(&self, key: &str) -> Option<&str> {
        self.info.get(key).map(String::as_str)
    }

    /// The kernel node's 32-bit TIPC address (`node_addr` in `info`), if known.
    pub fn node_addr(&self) -> Option<u32> {
        let v = self.info("node_addr")?;
        u32::from_str_radix(v.trim_start_matches("0x"), 16).ok()
    }

    /// Runs `cmd` with `sh` in the VM; returns its exit status and its stdout+stderr.
    /// Status 124 = no answer in time (`TIPC_PEER_TIMEOUT`, default 60 s).
    pub fn exec(&self, cmd: &str) -> io::Result<(i32, String)> {
        let mut c = harness_command(&self.home, &self.netns, "exec");
        c.arg(&self.name).arg(cmd);
        let out = c.output()?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok((out.status.code().unwrap_or(-1), text))
    }

    /// `tipc link list` as `(link name, state)` pairs, e.g. `("a:udp1-host:u", "up")`.
    pub fn link_list(&self) -> io::Result<Vec<(String, String)>> {
        let (rc, out) = self.exec("tipc link list")?;
        if rc != 0 {
            return Err(io::Error::other(format!(
                "tipc link list: status {rc}: {out}"
            )));
        }
        Ok(parse_link_list(&out))
    }

    /// Polls [`KernelPeer::link_list`] (every 200 ms, at most `timeout`) until a link whose name
    /// contains `peer` is up; returns whether it came up.
    pub fn wait_link_up(&self, peer: &str, timeout: Duration) -> io::Result<bool> {
        let end = Instant::now() + timeout;
        loop {
            let links = self.link_list()?;
            if links.iter().any(|(n, s)| n.contains(peer) && s == "up") {
                return Ok(true);
            }
            if Instant::now() >= end {
                return Ok(false);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops the VM (`./down NAME`). Idempotent.
    pub fn down(&mut self) -> io::Result<()> {
        if !self.running {
            return Ok(());
        }
        self.running = false;
        let mut c = harness_command(&self.home, &self.netns, "down");
        c.arg(&self.name);
        let out = c.output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "down {}: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }
}

impl Drop for KernelPeer {
    fn drop(&mut self) {
        let _ = self.down();
    }
}

/// Deletes a harness namespace with every VM in it (`./down --netns`); the harness refuses
/// namespaces it did not create.
pub fn down_netns(netns: &str) -> io::Result<()> {
    let home = harness_dir().ok_or_else(|| not_found("tipc-peer harness not found"))?;
    let out = harness_command(&home, netns, "down")
        .arg("--netns")
        .output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "down --netns {netns}: {}",
            String::from_utf8_lossy(&out.stderr)
        )))
    }
}

/// RAII guard for a harness namespace: [`down_netns`] on drop. Create it before the
/// [`KernelPeer`]s (so they are dropped first).
#[derive(Debug)]
pub struct PeerNetns {
    name: String,
}

impl PeerNetns {
    /// Guards namespace `name` (created later by the first [`KernelPeer::up`] in it). A
    /// namespace of that name left by an interrupted run (with its VMs, and whatever filter
    /// rules a test put in it) is deleted first, so every scenario starts clean.
    pub fn new(name: &str) -> PeerNetns {
        if Path::new("/run/netns").join(name).exists() {
            let _ = down_netns(name);
        }
        PeerNetns {
            name: name.to_owned(),
        }
    }

    /// The namespace name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// The start of every kernel interop scenario: a kernel VM "k" with `bearer` (and `remote`, for
/// unicast UDP discovery) in namespace `ns`, with the namespace's guard. Keep both; the VM is
/// dropped (stopped) before the guard deletes the namespace. Fails the test if the VM cannot
/// boot ([`require_kernel_peer`]).
pub fn scenario_vm(ns: &str, bearer: Bearer, remote: Option<&str>) -> (PeerNetns, KernelPeer) {
    require_kernel_peer();
    let guard = PeerNetns::new(ns);
    let k = KernelPeer::up(
        "k",
        &UpOptions {
            bearer,
            remote: remote.map(str::to_string),
            netns: Some(ns.into()),
            id: None,
        },
    )
    .expect("kernel VM up");
    (guard, k)
}

impl Drop for PeerNetns {
    fn drop(&mut self) {
        if Path::new("/run/netns").join(&self.name).exists() {
            let _ = down_netns(&self.name);
        }
    }
}

/// `cmd` rewritten to run inside namespace `ns` (`ip netns exec NS program args...`), keeping
/// its environment changes and working directory.
pub fn netns_command(ns: &str, cmd: &Command) -> Command {
    let mut c = Command::new("ip");
    c.args([OsStr::new("netns"), OsStr::new("exec"), OsStr::new(ns)])
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    if let Some(d) = cmd.get_current_dir() {
        c.current_dir(d);
    }
    c
}

/// Runs `cmd` inside namespace `ns` to completion and returns its output (stdin is null).
pub fn run_in_netns(ns: &str, cmd: Command) -> io::Result<Output> {
    netns_command(ns, &cmd).stdin(Stdio::null()).output()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_link_list_reads_names_and_states() {
        let l = parse_link_list("broadcast-link: up\na:udp1-b:udp1: up\na:eth0-b:eth0: down\n");
        assert_eq!(
            l,
            vec![
                ("broadcast-link".to_owned(), "up".to_owned()),
                ("a:udp1-b:udp1".to_owned(), "up".to_owned()),
                ("a:eth0-b:eth0".to_owned(), "down".to_owned()),
            ]
        );
    }

    #[test]
    fn parse_info_reads_key_values() {
        let i = parse_info("name=a\nnode_addr=0x61000000\ngarbage\n");
        assert_eq!(i.get("name").map(String::as_str), Some("a"));
        assert_eq!(i.get("node_addr").map(String::as_str), Some("0x61000000"));
        assert_eq!(i.len(), 2);
    }

    #[test]
    fn find_harness_walks_up_to_shared() {
        let tmp = std::env::temp_dir().join(format!("kpeer-find-{}", std::process::id()));
        let h = tmp.join("shared").join("tipc-peer");
        std::fs::create_dir_all(&h).expect("mkdir");
        std::fs::write(h.join("up"), "#!/bin/bash\n").expect("write");
        let deep = tmp.join("repo").join("integration");
        std::fs::create_dir_all(&deep).expect("mkdir");
        assert_eq!(find_harness_from(&deep), Some(h.clone()));
        std::fs::remove_dir_all(&tmp).expect("cleanup");
        assert_eq!(find_harness_from(&deep), None);
    }

    #[test]
    fn netns_command_prefixes_ip_netns_exec_and_keeps_env() {
        let mut c = Command::new("echo");
        c.arg("hi").env("X", "1").current_dir("/tmp");
        let n = netns_command("tpx", &c);
        assert_eq!(n.get_program(), "ip");
        let args: Vec<_> = n.get_args().collect();
        assert_eq!(args, ["netns", "exec", "tpx", "echo", "hi"]);
        assert!(n
            .get_envs()
            .any(|(k, v)| k == "X" && v == Some(OsStr::new("1"))));
        assert_eq!(n.get_current_dir(), Some(Path::new("/tmp")));
    }

    #[test]
    #[ignore = "needs root and network namespaces"]
    fn run_in_netns_runs_inside_created_namespace() {
        crate::netns::require_netns();
        let ns = crate::netns::NetNs::create_unique("trn").expect("netns");
        let mut c = Command::new("ip");
        c.args(["-o", "link", "show"]);
        let out = run_in_netns(ns.name(), c).expect("run");
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        // a fresh namespace has only loopback
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("lo:"), "{text}");
    }

    /// Boots one kernel VM, checks its identity, exec and link listing, and shuts it down.
    #[test]
    #[ignore = "needs the kernel peer VM"]
    fn kernel_peer_up_exec_down_roundtrip() {
        require_kernel_peer();
        let guard = PeerNetns::new(&format!("tpk{}", std::process::id()));
        let mut peer = KernelPeer::up(
            "ka",
            &UpOptions {
                bearer: Bearer::Udp,
                netns: Some(guard.name().to_owned()),
                ..UpOptions::default()
            },
        )
        .expect("up");
        // identity "ka" hashes to 0x6b610000
        assert_eq!(peer.node_addr(), Some(0x6b61_0000), "{}", peer.up_output());
        let (rc, out) = peer.exec("tipc-helper info; exit 3").expect("exec");
        assert_eq!(rc, 3);
        assert!(out.contains("NODE node=0x6b610000"), "{out}");
        let links = peer.link_list().expect("links");
        assert!(
            links.iter().any(|(n, _)| n == "broadcast-link"),
            "{links:?}"
        );
        peer.down().expect("down");
        assert!(peer.exec("true").map(|(rc, _)| rc != 0).unwrap_or(true));
    }
}
