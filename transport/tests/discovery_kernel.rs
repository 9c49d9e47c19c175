//! Live discovery check against a real Linux kernel TIPC node (shared/tipc-peer).
//!
//! Ignored by default (`#[ignore = "needs the kernel peer VM"]`); scripts/test runs it with
//! `--include-ignored` as root, and it fails loudly if it is not root or the harness or its
//! images are missing. It boots VM `d1` in the dedicated namespace `tpdisc` (UDP bearer,
//! multicast discovery), re-runs itself inside that namespace with `ip netns exec`, and checks:
//!
//! 1. our `DSC_REQ`, sent from 10.99.0.1:6118 to the VM's 10.99.0.11:6118, is answered with a
//!    `DSC_RESP` that [`Discoverer::handle_frame`] accepts as the right neighbour;
//! 2. the kernel's periodic `DSC_REQ` on 228.0.18.103:6118 is accepted too.
//!
//! The namespace is always torn down (`down --netns`) by an RAII guard.
//!
//! ```text
//! cargo test -p tipc-transport --test discovery_kernel -- --include-ignored --nocapture
//! ```

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tipc_transport::discovery::{Discoverer, DiscoveryConfig, Neighbor};
use tipc_transport::media::Dest;
use tipc_transport::wire::{DiscRepr, DiscType, Header, MediaAddr};
use tipc_transport::{caps, NodeId, OWN_CAPABILITIES};

const NETNS: &str = "tpdisc";
const VM: &str = "d1";
const TEST_NAME: &str = "discovery_kernel_answers_our_request_and_its_request_is_accepted";
const HOST_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
const GROUP: Ipv4Addr = Ipv4Addr::new(228, 0, 18, 103);
const PORT: u16 = 6118;
const NET_ID: u32 = 4711;

/// The harness: `$TIPC_PEER_HOME`, else the first `shared/tipc-peer` walking up from this crate
/// (the repository is checked out beside `shared/`), as scripts/setup finds it.
fn harness_dir() -> PathBuf {
    if let Some(home) = std::env::var_os("TIPC_PEER_HOME") {
        return PathBuf::from(home);
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|d| d.join("shared").join("tipc-peer"))
        .find(|p| p.join("up").is_file())
        .unwrap_or_else(|| {
            panic!(
                "this test needs the kernel peer VM, but the tipc-peer harness was not found: \
                 set TIPC_PEER_HOME or check the repository out beside shared/"
            )
        })
}

/// Whether this process runs as root (effective uid from /proc).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn state_dir() -> PathBuf {
    std::env::var_os("TIPC_PEER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/tipc-peer"))
}

/// Stops the VM and deletes the namespace when dropped (also on panic).
struct NetnsGuard {
    harness: PathBuf,
}

impl NetnsGuard {
    fn down(harness: &Path) {
        let st = Command::new(harness.join("down"))
            .arg("--netns")
            .env("TIPC_PEER_NETNS", NETNS)
            .status();
        eprintln!("[discovery_kernel] down --netns ({NETNS}): {st:?}");
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        Self::down(&self.harness);
    }
}

#[test]
#[ignore = "needs the kernel peer VM"]
fn discovery_kernel_answers_our_request_and_its_request_is_accepted() {
    if std::env::var("TIPC_DISC_INNER").as_deref() == Ok("1") {
        inner();
        return;
    }
    let t0 = Instant::now();
    assert!(
        is_root(),
        "this test needs the kernel peer VM: run it as root, as scripts/test does (a plain \
         `cargo test` leaves it ignored)"
    );
    let harness = harness_dir();
    for f in ["up", "down", "common.sh"] {
        assert!(
            harness.join(f).exists(),
            "this test needs the kernel peer VM, but the tipc-peer harness is missing: no {}",
            harness.join(f).display()
        );
    }
    assert!(
        state_dir().join("images").join("vmlinuz").is_file(),
        "this test needs the kernel peer VM, but {} has no kernel image: run scripts/setup \
         (or the harness's ./setup) as root",
        state_dir().join("images").display()
    );
    // A leftover namespace from an aborted run would keep an old VM: start clean.
    NetnsGuard::down(&harness);
    let _guard = NetnsGuard {
        harness: harness.clone(),
    };

    let up = Command::new(harness.join("up"))
        .arg(VM)
        .env("TIPC_PEER_NETNS", NETNS)
        .output()
        .expect("run tipc-peer up");
    eprintln!(
        "[discovery_kernel] up: {}{}",
        String::from_utf8_lossy(&up.stdout),
        String::from_utf8_lossy(&up.stderr)
    );
    assert!(
        up.status.success(),
        "tipc-peer up {VM} failed: {:?}",
        up.status
    );
    let t_up = t0.elapsed();

    let info_path = state_dir().join("run").join(NETNS).join(VM).join("info");
    let info = std::fs::read_to_string(&info_path)
        .unwrap_or_else(|e| panic!("read {}: {e}", info_path.display()));
    let field = |k: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k}= in {}", info_path.display()))
            .to_string()
    };
    let vm_ip = field("ip");
    let node_addr = field("node_addr");
    let node_id = field("node_id");

    let exe = std::env::current_exe().expect("test binary path");
    let st = Command::new("ip")
        .args(["netns", "exec", NETNS])
        .arg(&exe)
        .args([
            "--exact",
            TEST_NAME,
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TIPC_DISC_INNER", "1")
        .env("TIPC_DISC_VM_IP", &vm_ip)
        .env("TIPC_DISC_VM_ADDR", &node_addr)
        .env("TIPC_DISC_VM_ID", &node_id)
        .status()
        .expect("ip netns exec");
    assert!(
        st.success(),
        "checks inside namespace {NETNS} failed: {st:?}"
    );
    eprintln!(
        "[discovery_kernel] passed: VM up after {:.1} s, total {:.1} s (before teardown)",
        t_up.as_secs_f64(),
        t0.elapsed().as_secs_f64()
    );
}

/// Runs inside the namespace.
fn inner() {
    let vm_ip: Ipv4Addr = env("TIPC_DISC_VM_IP").parse().expect("VM ip");
    let vm_addr = u32::from_str_radix(env("TIPC_DISC_VM_ADDR").trim_start_matches("0x"), 16)
        .expect("VM node address");
    let vm_id = NodeId::from_str_id(&env("TIPC_DISC_VM_ID")).expect("VM identity");
    assert_eq!(vm_addr, vm_id.hash(), "kernel address is the identity hash");
    let vm_media = MediaAddr::Udp(SocketAddr::V4(SocketAddrV4::new(vm_ip, PORT)));

    // Multicast socket first, so no periodic request is missed.
    let mcast = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP)).expect("socket");
    mcast.set_reuse_address(true).expect("SO_REUSEADDR");
    mcast
        .bind(&SocketAddr::V4(SocketAddrV4::new(GROUP, PORT)).into())
        .expect("bind 228.0.18.103:6118");
    let mcast: UdpSocket = mcast.into();
    mcast
        .join_multicast_v4(&GROUP, &HOST_IP)
        .expect("IP_ADD_MEMBERSHIP");
    mcast
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let ucast = UdpSocket::bind(SocketAddrV4::new(HOST_IP, PORT)).expect("bind 10.99.0.1:6118");
    ucast
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");

    let own_id = NodeId::from_str_id("host").expect("id");
    let cfg = DiscoveryConfig {
        net_id: NET_ID,
        own_addr: own_id.hash(),
        own_id,
        caps: OWN_CAPABILITIES,
        signature: 0x5a5a,
        bearer_id: 0,
        media_addr: MediaAddr::Udp(SocketAddr::V4(SocketAddrV4::new(HOST_IP, PORT))),
        domain: 0,
        net_hash: 0,
    };
    let start = Instant::now();
    let mut d = Discoverer::new(cfg.clone(), start);
    let check = |n: &Neighbor, is_request: bool| {
        assert_eq!(n.addr, vm_addr, "address");
        assert_eq!(n.id, vm_id, "identity");
        assert_eq!(n.media_addr, vm_media, "media address from the message");
        assert_eq!(n.caps, 0x0FFF, "Linux 6.1 TIPC_NODE_CAPABILITIES");
        assert_ne!(n.caps & caps::NODE_ID128, 0);
        assert_eq!(n.is_request, is_request);
    };

    // 1. Our request to the VM's unicast address; the kernel answers with DSC_RESP.
    let mut buf = [0u8; 2048];
    let deadline = start + Duration::from_secs(10);
    let mut resp: Option<Neighbor> = None;
    let mut frames = 0u32;
    while Instant::now() < deadline && resp.is_none() {
        let now = Instant::now();
        d.handle_timeout(now);
        while let Some((dest, msg)) = d.poll_transmit() {
            assert_eq!(dest, Dest::Broadcast);
            // Our "broadcast" on this test bearer is the VM's unicast address.
            ucast
                .send_to(&msg, SocketAddrV4::new(vm_ip, PORT))
                .expect("send request");
        }
        match ucast.recv_from(&mut buf) {
            Ok((len, from)) => {
                frames += 1;
                if let Some(n) = d.handle_frame(Instant::now(), &buf[..len]) {
                    eprintln!("[discovery_kernel] from {from}: {n:?}");
                    let h = Header::new_checked(&buf[..len]).expect("accepted => valid");
                    let r = DiscRepr::parse(&h).expect("accepted => parses");
                    assert_eq!(r.mtype, DiscType::Response);
                    assert_eq!(
                        r.dest_domain, cfg.own_addr,
                        "RESP dest domain = our address"
                    );
                    if !n.is_request {
                        resp = Some(n);
                    }
                }
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
    let resp = resp.unwrap_or_else(|| {
        panic!(
            "no DSC_RESP within 10 s ({frames} frames, stats {:?})",
            d.stats()
        )
    });
    check(&resp, false);
    let t_resp = start.elapsed();

    // 2. The kernel's periodic request on the multicast group (every ~1 s: it has no link up).
    let mut d2 = Discoverer::new(cfg, Instant::now());
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut req: Option<Neighbor> = None;
    while Instant::now() < deadline && req.is_none() {
        match mcast.recv_from(&mut buf) {
            Ok((len, from)) => {
                let n = d2.handle_frame(Instant::now(), &buf[..len]);
                eprintln!("[discovery_kernel] multicast from {from}: {n:?}");
                req = n;
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("recv: {e}"),
        }
    }
    let req = req.unwrap_or_else(|| {
        panic!(
            "no kernel DSC_REQ on the group within 10 s (stats {:?})",
            d2.stats()
        )
    });
    check(&req, true);
    // The same node instance answered us: same signature in both.
    assert_eq!(req.signature, resp.signature);
    eprintln!(
        "[discovery_kernel] RESP after {:.2} s, multicast REQ after {:.2} s",
        t_resp.as_secs_f64(),
        start.elapsed().as_secs_f64()
    );
}

fn env(k: &str) -> String {
    std::env::var(k).unwrap_or_else(|_| panic!("{k} not set"))
}
