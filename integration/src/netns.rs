//! RAII network namespaces, veth pairs and `nft` random-loss rules for tests.
//!
//! Tests that need a real Ethernet segment (the TIPC Ethernet bearer, kernel `bearer.c` /
//! `eth_media.c`, spec tipc-protocol.md §3.1) or real packet loss (ARCHITECTURE.md §Tests 5) create
//! their own namespaces with [`NetNs`], connect them with [`NetNs::add_veth`] and inject loss with
//! [`NetNs::add_random_drop`]. Everything goes through the `ip` and `nft` command-line tools (root
//! required); a namespace is deleted when its [`NetNs`] is dropped, which also removes its
//! interfaces and nftables tables.
//!
//! Tests that need these are marked `#[ignore = "needs root and network namespaces"]` (a plain
//! `cargo test` lists them as ignored) and begin with [`require_netns`] (and [`require_nft`]), so
//! that when they are run (`--include-ignored`, as `scripts/test` does, as root) without what
//! they need they fail saying what is missing instead of passing.
//!
//! Loss for AF_PACKET (Ethernet bearer) traffic: use [`DropHook::NetdevEgress`] on the sending
//! interface. An ingress hook runs after `ETH_P_ALL` packet taps, so a socket bound to all
//! protocols would still see "dropped" frames; the egress hook runs before them.

use std::io::{self, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Counter that makes [`NetNs::create_unique`] names unique within one process.
static UNIQUE: AtomicU32 = AtomicU32::new(0);

/// Runs a command, turning a non-zero exit status into an error that carries its stderr.
fn run_checked(mut cmd: Command) -> io::Result<String> {
    let out = cmd.stdin(Stdio::null()).output()?;
    check_output(&cmd, out)
}

/// Feeds an nftables script to `nft -f -` inside namespace `ns` (one this program made, or
/// the kernel-peer harness's).
pub fn nft_script_in(ns: &str, script: &str) -> io::Result<()> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    check_output(&cmd, out).map(drop)
}

fn check_output(cmd: &Command, out: Output) -> io::Result<String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(io::Error::other(format!(
            "{:?} failed ({}): {}",
            cmd,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Whether this process runs as root (effective uid 0).
pub fn is_root() -> bool {
    // effective uid from /proc (keeps this module free of libc)
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Whether this process can create network namespaces: running as root with the `ip` tool.
pub fn netns_supported() -> bool {
    is_root()
        && Command::new("ip")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
}

/// Fails the calling test unless this process can create network namespaces
/// ([`netns_supported`]). For tests marked `#[ignore = "needs root and network namespaces"]`.
pub fn require_netns() {
    assert!(
        netns_supported(),
        "this test needs root and iproute2 (network namespaces): run it as root, as \
         scripts/test does (a plain `cargo test` leaves it ignored)"
    );
}

/// Fails the calling test unless `nft` (nftables) runs; scripts/setup installs it.
pub fn require_nft() {
    let ok = Command::new("nft")
        .arg("-v")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "this test needs nft (package nftables; scripts/setup installs it)"
    );
}

/// Whether a namespace called `name` exists (`/run/netns/NAME`).
pub fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// A network namespace created by this process; deleted on drop.
#[derive(Debug)]
pub struct NetNs {
    name: String,
    deleted: bool,
}

impl NetNs {
    /// Creates namespace `name` (fails if it exists) and brings its loopback up.
    pub fn create(name: &str) -> io::Result<NetNs> {
        let ok = !name.is_empty()
            && name.len() <= 64
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !ok {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bad namespace name {name:?} (1..=64 of [A-Za-z0-9_-])"),
            ));
        }
        let mut add = Command::new("ip");
        add.args(["netns", "add", name]);
        run_checked(add)?;
        let ns = NetNs {
            name: name.to_owned(),
            deleted: false,
        };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Creates a namespace named `prefix` + process id + `x` + a per-process counter.
    pub fn create_unique(prefix: &str) -> io::Result<NetNs> {
        let n = UNIQUE.fetch_add(1, Ordering::Relaxed);
        let name = format!("{}{}x{}", prefix, std::process::id(), n);
        NetNs::create(&name)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS...` and returns its stdout; non-zero exit is an error.
    pub fn ip(&self, args: &[&str]) -> io::Result<String> {
        let mut cmd = Command::new("ip");
        cmd.arg("-n").arg(&self.name).args(args);
        run_checked(cmd)
    }

    /// A [`Command`] that runs `program` inside this namespace (`ip netns exec NAME program`).
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, program]);
        cmd
    }

    /// Runs `program ARGS...` in the namespace and returns its stdout; non-zero exit is an error.
    pub fn exec(&self, program: &str, args: &[&str]) -> io::Result<String> {
        let mut cmd = self.command(program);
        cmd.args(args);
        run_checked(cmd)
    }

    /// Creates a veth pair: `ifname` in this namespace and `peer_ifname` in `peer`; both ends up.
    pub fn add_veth(&self, ifname: &str, peer: &NetNs, peer_ifname: &str) -> io::Result<()> {
        self.ip(&[
            "link",
            "add",
            ifname,
            "type",
            "veth",
            "peer",
            "name",
            peer_ifname,
            "netns",
            &peer.name,
        ])?;
        self.link_up(ifname)?;
        peer.link_up(peer_ifname)
    }

    /// Sets interface `ifname` up.
    pub fn link_up(&self, ifname: &str) -> io::Result<()> {
        self.ip(&["link", "set", ifname, "up"]).map(drop)
    }

    /// Adds an address in CIDR form (`10.1.0.1/24`, `fd00::1/64`) to `ifname`.
    pub fn addr_add(&self, ifname: &str, cidr: &str) -> io::Result<()> {
        self.ip(&["addr", "add", cidr, "dev", ifname]).map(drop)
    }

    /// Sets the MAC address of `ifname` (`52:54:00:12:34:56`).
    pub fn set_mac(&self, ifname: &str, mac: &str) -> io::Result<()> {
        self.ip(&["link", "set", ifname, "address", mac]).map(drop)
    }

    /// The MAC address of `ifname`.
    pub fn mac(&self, ifname: &str) -> io::Result<[u8; 6]> {
        let out = self.ip(&["-o", "link", "show", ifname])?;
        let text = out
            .split_whitespace()
            .skip_while(|w| *w != "link/ether")
            .nth(1)
            .ok_or_else(|| io::Error::other(format!("no link/ether in {out:?}")))?;
        parse_mac(text).ok_or_else(|| io::Error::other(format!("bad MAC {text:?}")))
    }

    /// Whether `ifname` exists in this namespace and is administratively and operationally up
    /// (the `UP` and `LOWER_UP` flags).
    pub fn link_is_up(&self, ifname: &str) -> io::Result<bool> {
        let out = self.ip(&["-o", "link", "show", ifname])?;
        let flags = out
            .split('<')
            .nth(1)
            .and_then(|s| s.split('>').next())
            .unwrap_or("");
        let mut it = flags.split(',');
        let up = it.clone().any(|f| f == "UP");
        Ok(up && it.any(|f| f == "LOWER_UP"))
    }

    /// Installs a random-drop rule (see [`RandomDrop`]); rules accumulate until
    /// [`NetNs::clear_drops`] or the namespace is deleted.
    pub fn add_random_drop(&self, rule: &RandomDrop) -> io::Result<()> {
        self.nft_script(&rule.nft_script())
    }

    /// Removes every table installed by [`NetNs::add_random_drop`].
    pub fn clear_drops(&self) -> io::Result<()> {
        let list = self.exec("nft", &["list", "tables"])?;
        for line in list.lines() {
            let mut w = line.split_whitespace();
            if let (Some("table"), Some(family), Some(name)) = (w.next(), w.next(), w.next()) {
                if name.starts_with(TABLE_PREFIX) {
                    self.exec("nft", &["delete", "table", family, name])?;
                }
            }
        }
        Ok(())
    }

    /// Feeds an nftables script to `nft -f -` inside the namespace.
    pub fn nft_script(&self, script: &str) -> io::Result<()> {
        nft_script_in(&self.name, script)
    }

    /// Deletes the namespace now, reporting errors (drop does the same silently).
    pub fn delete(mut self) -> io::Result<()> {
        self.deleted = true;
        let mut del = Command::new("ip");
        del.args(["netns", "del", &self.name]);
        run_checked(del).map(drop)
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if !self.deleted {
            let _ = Command::new("ip")
                .args(["netns", "del", &self.name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Parses `aa:bb:cc:dd:ee:ff`.
fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.split(':');
    for b in mac.iter_mut() {
        *b = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Name prefix of the nftables tables this module creates.
const TABLE_PREFIX: &str = "tipctest";

/// What a [`RandomDrop`] rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropMatch {
    /// UDP datagrams to this destination port (the TIPC UDP bearer uses 6118).
    UdpDstPort(u16),
    /// Ethernet frames of this ethertype (TIPC: 0x88ca); only with netdev hooks.
    EtherType(u16),
    /// Every packet seen by the hook.
    All,
}

/// Where a [`RandomDrop`] rule is hooked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropHook {
    /// `inet` family, `input` hook: packets delivered to local sockets.
    InetInput,
    /// `inet` family, `output` hook: locally generated packets. It sees a UDP GSO batch
    /// (`UDP_SEGMENT`, which our UDP bearer uses) as one packet, so it drops a whole batch or
    /// none of it; use [`DropHook::BridgeOutput`] for per-datagram loss.
    InetOutput,
    /// `bridge` family, `output` hook: frames this namespace sends out of a bridge (the
    /// kernel-peer harness's `tpbr0`). GSO batches are segmented before the bridge, so each
    /// datagram is a candidate of its own.
    BridgeOutput,
    /// `netdev` family, `ingress` hook on this device.
    NetdevIngress(String),
    /// `netdev` family, `egress` hook on this device (host kernel 5.16+); the right place to
    /// lose AF_PACKET frames.
    NetdevEgress(String),
}

/// A rule dropping `percent` % of the matching packets at random (`numgen random mod 100`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RandomDrop {
    /// Drop probability in percent (0..=100).
    pub percent: u8,
    /// Which packets are candidates.
    pub matcher: DropMatch,
    /// Where the rule sits.
    pub hook: DropHook,
}

impl RandomDrop {
    /// The nftables script that installs this rule (one table per hook, created if missing).
    pub fn nft_script(&self) -> String {
        let (family, table, chain_hook) = match &self.hook {
            DropHook::InetInput => (
                "inet",
                format!("{TABLE_PREFIX}_in"),
                "hook input".to_owned(),
            ),
            DropHook::InetOutput => (
                "inet",
                format!("{TABLE_PREFIX}_out"),
                "hook output".to_owned(),
            ),
            DropHook::BridgeOutput => (
                "bridge",
                format!("{TABLE_PREFIX}_bout"),
                "hook output".to_owned(),
            ),
            DropHook::NetdevIngress(dev) => (
                "netdev",
                format!("{TABLE_PREFIX}_i_{}", sanitize(dev)),
                format!("hook ingress device \"{dev}\""),
            ),
            DropHook::NetdevEgress(dev) => (
                "netdev",
                format!("{TABLE_PREFIX}_e_{}", sanitize(dev)),
                format!("hook egress device \"{dev}\""),
            ),
        };
        let matcher = match self.matcher {
            DropMatch::UdpDstPort(p) => format!("udp dport {p} "),
            DropMatch::EtherType(t) => format!("ether type {t:#06x} "),
            DropMatch::All => String::new(),
        };
        // nft's `numgen random mod 100` yields 0..=99: `< 100` is rejected, so 100 % is a plain drop
        let pct = self.percent.min(100);
        let chance = if pct >= 100 {
            String::new()
        } else {
            format!("numgen random mod 100 < {pct} ")
        };
        format!(
            "table {family} {table} {{\n  chain c {{\n    type filter {chain_hook} priority 0; policy accept;\n  }}\n}}\n\
             add rule {family} {table} c {matcher}{chance}drop\n"
        )
    }
}

/// Keeps `[A-Za-z0-9_]` for use in an nftables identifier.
fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_mac_accepts_colon_form_and_rejects_garbage() {
        assert_eq!(
            parse_mac("52:54:00:63:00:0b"),
            Some([0x52, 0x54, 0, 0x63, 0, 0x0b])
        );
        assert_eq!(parse_mac("52:54:00:63:00"), None);
        assert_eq!(parse_mac("52:54:00:63:00:0b:01"), None);
        assert_eq!(parse_mac("zz:54:00:63:00:0b"), None);
    }

    #[test]
    fn random_drop_script_udp_input_matches_architecture_rule() {
        let r = RandomDrop {
            percent: 20,
            matcher: DropMatch::UdpDstPort(6118),
            hook: DropHook::InetInput,
        };
        let s = r.nft_script();
        assert!(s.contains("table inet tipctest_in"), "{s}");
        assert!(s.contains("type filter hook input priority 0"), "{s}");
        assert!(
            s.contains("udp dport 6118 numgen random mod 100 < 20 drop"),
            "{s}"
        );
    }

    #[test]
    fn random_drop_script_ethertype_egress_names_device() {
        let r = RandomDrop {
            percent: 150,
            matcher: DropMatch::EtherType(0x88ca),
            hook: DropHook::NetdevEgress("veth-a".into()),
        };
        let s = r.nft_script();
        assert!(s.contains("table netdev tipctest_e_veth_a"), "{s}");
        assert!(s.contains("hook egress device \"veth-a\""), "{s}");
        assert!(s.contains("c ether type 0x88ca drop"), "{s}");
    }

    #[test]
    fn netns_create_rejects_path_like_name() {
        let e = NetNs::create("../etc").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    #[ignore = "needs root and network namespaces"]
    fn netns_is_deleted_on_drop() {
        require_netns();
        let ns = NetNs::create_unique("tnd").expect("create");
        let name = ns.name().to_owned();
        assert!(netns_exists(&name));
        drop(ns);
        assert!(!netns_exists(&name));
    }

    #[test]
    #[ignore = "needs root and network namespaces"]
    fn netns_veth_pair_comes_up_with_addresses_and_mac() {
        require_netns();
        let a = NetNs::create_unique("tva").expect("create a");
        let b = NetNs::create_unique("tvb").expect("create b");
        a.add_veth("va", &b, "vb").expect("veth");
        a.addr_add("va", "10.77.0.1/24").expect("addr a");
        b.addr_add("vb", "10.77.0.2/24").expect("addr b");
        a.set_mac("va", "52:54:00:77:00:01").expect("mac");
        assert_eq!(a.mac("va").expect("mac"), [0x52, 0x54, 0, 0x77, 0, 1]);
        assert!(a.link_is_up("va").expect("state a"));
        assert!(b.link_is_up("vb").expect("state b"));
        // the pair carries traffic: one ping across it
        a.exec("ping", &["-c", "1", "-W", "2", "10.77.0.2"])
            .expect("ping over veth");
        let name = a.name().to_owned();
        a.delete().expect("delete");
        assert!(!netns_exists(&name));
    }

    #[test]
    #[ignore = "needs root, network namespaces and nft"]
    fn netns_random_drop_all_blocks_ping_and_clear_restores_it() {
        require_netns();
        require_nft();
        let a = NetNs::create_unique("tda").expect("create a");
        let b = NetNs::create_unique("tdb").expect("create b");
        a.add_veth("va", &b, "vb").expect("veth");
        a.addr_add("va", "10.78.0.1/24").expect("addr a");
        b.addr_add("vb", "10.78.0.2/24").expect("addr b");
        b.add_random_drop(&RandomDrop {
            percent: 100,
            matcher: DropMatch::All,
            hook: DropHook::InetInput,
        })
        .expect("nft rule");
        assert!(a
            .exec("ping", &["-c", "1", "-W", "1", "10.78.0.2"])
            .is_err());
        b.clear_drops().expect("clear");
        a.exec("ping", &["-c", "1", "-W", "2", "10.78.0.2"])
            .expect("ping after clear");
    }
}
