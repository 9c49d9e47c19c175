//! UDP multicast and Ethernet media inside network namespaces this test creates (needs root
//! or CAP_SYS_ADMIN + CAP_NET_RAW). Namespaces are named `tmt-<pid>-<tag>` and deleted by an
//! RAII guard, also when a test fails.
//!
//! The namespace tests are marked `#[ignore = "needs root and network namespaces"]` (a plain
//! `cargo test` lists them as ignored); scripts/test runs them with `--include-ignored` as root.
//! Run without root they fail at once saying so.

use bytes::Bytes;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;
use tipc_transport::media::{
    multicast_group, Dest, EthMedia, Media, MediaAddr, RxFrame, TxFrame, UdpConfig, UdpMedia,
    UdpRemote,
};

/// Run `ip ARGS`, failing the test on error.
fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("running ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace deleted on drop.
struct Netns(String);

/// Fails the test unless it runs as root (effective uid from /proc).
fn require_root() {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false);
    assert!(
        root,
        "this test needs root and network namespaces: run it as root, as scripts/test does \
         (a plain `cargo test` leaves it ignored)"
    );
}

impl Netns {
    fn new(tag: &str) -> Netns {
        require_root();
        let name = format!("tmt-{}-{tag}", std::process::id());
        // A leftover from a crashed earlier run with the same pid: remove it first.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        ip(&["netns", "add", &name]);
        let ns = Netns(name);
        ip(&["-n", &ns.0, "link", "set", "lo", "up"]);
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).output();
    }
}

/// Run `f` on a thread that has entered namespace `ns`, inside the current tokio runtime
/// (sockets created there stay in `ns` and are registered with this runtime).
#[allow(unsafe_code)]
fn in_netns<T: Send + 'static>(ns: &Netns, f: impl FnOnce() -> T + Send + 'static) -> T {
    let path = format!("/run/netns/{}", ns.0);
    let handle = tokio::runtime::Handle::current();
    std::thread::spawn(move || {
        let file = File::open(&path).expect("open netns");
        // SAFETY: setns on a valid namespace fd affects only this (short-lived) thread.
        let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "setns: {}", io::Error::last_os_error());
        let _guard = handle.enter();
        f()
    })
    .join()
    .expect("netns thread panicked")
}

async fn recv_until<M: Media>(m: &M, pred: impl Fn(&RxFrame) -> bool) -> RxFrame {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let mut out = Vec::new();
        tokio::time::timeout_at(deadline, m.recv_batch(&mut out))
            .await
            .expect("timed out waiting for a frame")
            .expect("recv failed");
        if let Some(f) = out.into_iter().find(|f| pred(f)) {
            return f;
        }
    }
}

fn tx(dest: Dest, data: &'static [u8]) -> TxFrame {
    TxFrame::new(dest, Bytes::from_static(data))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and network namespaces"]
async fn udp_multicast_nodes_hear_each_others_broadcast() {
    let ns = Netns::new("mc");
    ip(&["-n", &ns.0, "link", "set", "lo", "multicast", "on"]);
    let group = std::net::SocketAddr::new(multicast_group(4711, false), 6118);
    let open = |local: &'static str| {
        in_netns(&ns, move || {
            UdpMedia::bind(UdpConfig {
                local: local.parse().unwrap(),
                remote: UdpRemote::Multicast(group),
                mtu: None,
                name: "mc".into(),
            })
        })
        .expect("bind multicast")
    };
    let a = open("127.0.0.1:6118");
    let b = open("127.0.0.2:6118");
    assert_eq!(a.local_addr().to_string(), "127.0.0.1:6118");
    assert_eq!(a.group(), Some(group));

    a.send_batch(&[tx(Dest::Broadcast, b"from-a")])
        .await
        .unwrap();
    let f = recv_until(&b, |f| &f.data[..] == b"from-a").await;
    assert_eq!(f.src, a.local_addr());
    b.send_batch(&[tx(Dest::Broadcast, b"from-b")])
        .await
        .unwrap();
    let f = recv_until(&a, |f| &f.data[..] == b"from-b").await;
    assert_eq!(f.src, b.local_addr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and network namespaces"]
async fn udp_multicast_ipv6_nodes_hear_each_others_broadcast() {
    let ns = Netns::new("m6");
    // lo has no IPv6 multicast route; a veth device gets ff00::/8 like a real NIC.
    let nsn = ns.0.as_str();
    ip(&[
        "-n", nsn, "link", "add", "tmt6", "type", "veth", "peer", "name", "tmt6p",
    ]);
    ip(&["-n", nsn, "link", "set", "tmt6p", "up"]);
    ip(&["-n", nsn, "link", "set", "tmt6", "up"]);
    for a in ["fd00::1/64", "fd00::2/64"] {
        ip(&["-n", nsn, "addr", "add", a, "dev", "tmt6", "nodad"]);
    }
    let group = std::net::SocketAddr::new(multicast_group(4711, true), 6118);
    let open = |local: &'static str| {
        in_netns(&ns, move || {
            UdpMedia::bind(UdpConfig {
                local: local.parse().unwrap(),
                remote: UdpRemote::Multicast(group),
                mtu: None,
                name: "m6".into(),
            })
        })
        .expect("bind multicast")
    };
    let a = open("[fd00::1]:6118");
    let b = open("[fd00::2]:6118");
    assert_eq!(a.mtu(), 1280);
    a.send_batch(&[tx(Dest::Broadcast, b"from-a")])
        .await
        .unwrap();
    let f = recv_until(&b, |f| &f.data[..] == b"from-a").await;
    assert_eq!(f.src, a.local_addr());
    b.send_batch(&[tx(Dest::Broadcast, b"from-b")])
        .await
        .unwrap();
    let f = recv_until(&a, |f| &f.data[..] == b"from-b").await;
    assert_eq!(f.src, b.local_addr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs root and network namespaces"]
async fn eth_veth_pair_exchanges_unicast_and_broadcast() {
    let na = Netns::new("ea");
    let nb = Netns::new("eb");
    ip(&[
        "-n", &na.0, "link", "add", "tmtA", "type", "veth", "peer", "name", "tmtB", "netns", &nb.0,
    ]);
    ip(&["-n", &na.0, "link", "set", "tmtA", "up"]);
    ip(&["-n", &nb.0, "link", "set", "tmtB", "up"]);
    let a = in_netns(&na, || EthMedia::open("tmtA", None)).expect("open tmtA");
    let b = in_netns(&nb, || EthMedia::open("tmtB", None)).expect("open tmtB");
    assert_eq!(a.mtu(), 1500);
    assert_eq!(a.bearer_name(), "eth:tmtA");
    assert_ne!(a.local_addr(), b.local_addr());

    a.send_batch(&[tx(Dest::Unicast(b.local_addr()), b"a-to-b")])
        .await
        .unwrap();
    let f = recv_until(&b, |_| true).await;
    assert_eq!(&f.data[..6], b"a-to-b");
    assert_eq!(f.src, a.local_addr());

    b.send_batch(&[tx(Dest::Unicast(a.local_addr()), b"b-to-a")])
        .await
        .unwrap();
    let f = recv_until(&a, |_| true).await;
    assert_eq!(&f.data[..6], b"b-to-a");
    assert_eq!(f.src, b.local_addr());

    a.send_batch(&[
        tx(Dest::Broadcast, b"bcast-a"),
        tx(Dest::Broadcast, b"bcast-a2"),
    ])
    .await
    .unwrap();
    let f = recv_until(&b, |f| f.data.starts_with(b"bcast-a")).await;
    assert_eq!(&f.data[..7], b"bcast-a");
    b.send_batch(&[tx(Dest::Broadcast, b"bcast-b")])
        .await
        .unwrap();
    let f = recv_until(&a, |f| f.data.starts_with(b"bcast-b")).await;
    assert_eq!(f.src, b.local_addr());

    // A unicast frame to a third MAC is not delivered to b (the kernel filters by host MAC).
    let MediaAddr::Eth(mut other) = b.local_addr() else {
        panic!("not a MAC")
    };
    other[5] ^= 0x55;
    a.send_batch(&[
        tx(Dest::Unicast(MediaAddr::Eth(other)), b"not-for-b"),
        tx(Dest::Unicast(b.local_addr()), b"for-b"),
    ])
    .await
    .unwrap();
    let f = recv_until(&b, |_| true).await;
    assert_eq!(&f.data[..5], b"for-b");
}

#[tokio::test]
async fn eth_open_missing_interface_is_not_found() {
    let err = EthMedia::open("tmt-nosuch0", None).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(err.to_string().contains("tmt-nosuch0"), "{err}");
}
