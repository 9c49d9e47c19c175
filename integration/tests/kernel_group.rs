//! Communication groups with real Linux 6.1 kernel nodes (../shared/tipc-peer), over UDP and
//! over Ethernet: two kernel VMs and two of our nodes in one group. The kernel's mixed-mode
//! sequence (with runs of broadcasts that its broadcast link carries) reaches our members in
//! its send order; ours (whose runs of broadcasts our broadcast link carries) reaches the
//! kernel's helper in our send order, broadcasts after unicasts; member events both ways.
//!
//! Ignored by default (`#[ignore = "needs the kernel peer VM"]`); scripts/test runs it with
//! `--include-ignored` as root, and it fails if the harness cannot boot the VMs.

use std::process::Command;
use std::time::{Duration, Instant};
use tipc_integration::ctl_proc::{CtlProc, Lines};
use tipc_integration::kernel_peer::{
    require_kernel_peer, run_in_netns, Bearer, KernelPeer, PeerNetns, UpOptions,
};
use tipc_integration::node_proc::NodeProc;

const G: u32 = 4711;

fn vm(ns: &str, name: &str, bearer: Bearer) -> KernelPeer {
    KernelPeer::up(
        name,
        &UpOptions {
            bearer,
            remote: None,
            netns: Some(ns.into()),
            id: None,
        },
    )
    .expect("kernel VM up")
}

fn sh(ns: &str, cmd: &str) {
    let out = run_in_netns(ns, {
        let mut c = Command::new("sh");
        c.args(["-c", cmd]);
        c
    })
    .expect("run in namespace");
    assert!(out.status.success(), "{cmd}: {out:?}");
}

/// A network namespace of the test's own, for a second node of ours: a veth pair, `tpgv0`
/// (10.99.0.2/24) inside it and `tpgv1` on the scenario's bridge. Deleted on drop.
struct HostNs {
    name: String,
}

impl HostNs {
    fn new(name: &str, bridge_ns: &str) -> HostNs {
        let host = |cmd: &str| {
            let out = Command::new("sh").args(["-c", cmd]).output().expect("sh");
            assert!(out.status.success(), "{cmd}: {out:?}");
        };
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        host(&format!("ip netns add {name}"));
        let ns = HostNs { name: name.into() };
        host(&format!(
            "ip link add tpgv0 netns {name} type veth peer name tpgv1 netns {bridge_ns}"
        ));
        sh(
            bridge_ns,
            "ip link set tpgv1 master tpbr0 && ip link set tpgv1 up",
        );
        sh(
            name,
            "ip link set lo up && ip addr add 10.99.0.2/24 dev tpgv0 && ip link set tpgv0 up",
        );
        ns
    }
}

impl Drop for HostNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Wait until `node` has `n` nodes up (`tipcctl node list`).
fn wait_nodes(node: &NodeProc, n: usize) {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, out, _) = node.ctl(&["node", "list"]);
        if out
            .lines()
            .filter(|l| l.trim_end().ends_with(" up"))
            .count()
            >= n
        {
            return;
        }
        assert!(Instant::now() < end, "nodes not up:\n{out}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Data of the kernel helper's or tipcctl's RECV lines from sender `from_member`, in order.
fn data_from(lines: &[String], from_member: &str) -> Vec<String> {
    let m = format!("member={from_member} ");
    lines
        .iter()
        .filter(|l| l.starts_with("RECV ") && l.contains(&m))
        .filter_map(|l| l.rsplit("data=").next())
        .map(|d| d.trim_matches('"').to_string())
        .collect()
}

fn exec_ok(k: &KernelPeer, cmd: &str) -> String {
    let (rc, out) = k.exec(cmd).expect("exec in VM");
    assert_eq!(rc, 0, "{cmd}: {out}");
    out
}

/// A kernel node's broadcast-link counter `what` (`TX packets:`: its sends).
fn kernel_bcast(k: &KernelPeer, what: &str) -> u64 {
    let out = exec_ok(k, "tipc link stat show link broadcast-link");
    out.lines()
        .find_map(|l| l.trim().strip_prefix(what))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {what} in {out}"))
}

/// The messages our node's broadcast link carried (`TX packets:`, plus the messages that
/// went into another's packet, `bundles:N/M`), and the whole `link stat show broadcast-link`.
fn our_bcast_tx(n: &NodeProc) -> (u64, String) {
    let (_, ours, _) = n.ctl(&["link", "stat", "show", "broadcast-link"]);
    let line = ours
        .lines()
        .find(|l| l.trim().starts_with("TX packets:"))
        .unwrap_or_else(|| panic!("{ours}"));
    let field = |k: &str| -> u64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .map(|v| v.rsplit('/').next().unwrap_or(v))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} in {line}"))
    };
    (field("packets:") + field("bundles:"), ours)
}

fn kernel_bcast_tx(k: &KernelPeer) -> u64 {
    kernel_bcast(k, "TX packets:")
}

fn scenario(ns: &str, bearer: Bearer) {
    require_kernel_peer();
    let _guard = PeerNetns::new(ns);
    let k1 = vm(ns, "k1", bearer);
    let k2 = vm(ns, "k2", bearer);
    // Our two nodes: h1 on the bridge itself, h2 in a namespace of its own (a second host)
    // on a veth port of the bridge, both as the kernel nodes are configured (UDP multicast
    // discovery on port 6118, or Ethernet).
    let h2ns = HostNs::new(&format!("{ns}-h2"), ns);
    let (h1_args, h2_args): (&[&str], &[&str]) = match bearer {
        Bearer::Udp => (
            &["--id", "host", "--udp", "10.99.0.1"],
            &["--id", "host2", "--udp", "10.99.0.2"],
        ),
        _ => (
            &["--id", "host", "--eth", "tpbr0"],
            &["--id", "host2", "--eth", "tpgv0"],
        ),
    };
    let h1 = NodeProc::start(&format!("{ns}-h1"), h1_args, Some(ns));
    let h2 = NodeProc::start(&format!("{ns}-h2"), h2_args, Some(&h2ns.name));
    wait_nodes(&h1, 3);
    wait_nodes(&h2, 3);

    // Our receiving members, with events; the kernel's on k2, with events.
    let join = |n: &NodeProc, inst: u32| {
        let m = format!("{G}:{inst}");
        let mut c = CtlProc::spawn(n, &["group", "join", &m, "--events"], Lines::Stdout);
        let l = c
            .wait_prefix("JOINED ", Duration::from_secs(10))
            .expect("JOINED");
        let sock = l.rsplit("sock=").next().unwrap().to_string();
        (c, sock)
    };
    let (mut j1, _) = join(&h1, 1);
    let (mut j2, _) = join(&h2, 2);
    exec_ok(
        &k2,
        "tipc-helper group 4711:4 --events --timeout 40000 >/tmp/g4.log 2>&1 &",
    );

    // The kernel's sequence from k1 (member 3): runs of broadcasts, a unicast to our member
    // 1, a multicast to instance 2 (one target: sent as a unicast), an anycast to the kernel
    // member 4.
    let bcast_tx_before = kernel_bcast_tx(&k1);
    let mut acts = String::new();
    let mut expect1 = Vec::new();
    let mut expect2 = Vec::new();
    let mut n = 0;
    for _ in 0..6 {
        for _ in 0..4 {
            n += 1;
            acts += &format!(" bcast kb-{n}");
            expect1.push(format!("kb-{n}"));
            expect2.push(format!("kb-{n}"));
        }
        n += 1;
        acts += &format!(" ucast 1 ku-{n}");
        expect1.push(format!("ku-{n}"));
        n += 1;
        acts += &format!(" mcast 2 km-{n}");
        expect2.push(format!("km-{n}"));
        n += 1;
        acts += &format!(" anycast 4 ka-{n}");
    }
    exec_ok(
        &k1,
        &format!(
            "tipc-helper group 4711:3 --events --timeout 30000 wait 3 {acts} >/tmp/g3.log 2>&1 &"
        ),
    );
    let end = Instant::now() + Duration::from_secs(30);
    let got = |c: &mut CtlProc, want: usize| {
        while data_from(&c.events(), &format!("{G}:3")).len() < want {
            assert!(
                Instant::now() < end,
                "kernel's messages missing: {:?}",
                c.events()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        data_from(&c.events(), &format!("{G}:3"))
    };
    assert_eq!(got(&mut j1, expect1.len()), expect1, "at our member 1");
    assert_eq!(got(&mut j2, expect2.len()), expect2, "at our member 2");
    for l in j1.events().iter().filter(|l| l.contains("member=4711:3 ")) {
        if l.starts_with("RECV ") {
            let mode = if l.contains("data=kb-") {
                "bcast"
            } else {
                "ucast"
            };
            assert!(l.contains(&format!("mode={mode} ")), "{l}");
        }
    }
    let tx = kernel_bcast_tx(&k1) - bcast_tx_before;
    assert!(tx > 0, "the kernel's broadcast link carried nothing");

    // Our sequence from h2 (member 5): broadcasts, a unicast to the kernel member 4, a
    // multicast to instance 4 (one target), an anycast to the kernel member 3.
    let k4 = {
        let out = exec_ok(&k2, "head -1 /tmp/g4.log");
        out.trim()
            .split(' ')
            .find_map(|w| w.strip_prefix("sock="))
            .expect("k2 sock")
            .to_string()
    };
    let (ok, out, err) = h2.ctl(&[
        "group",
        "send",
        "4711:5",
        "--wait-members",
        "4",
        "--count",
        "5",
        "--seq",
        "bcast",
        "hb",
        "bcast",
        "hb",
        "ucast",
        &k4,
        "hu",
        "mcast",
        "4",
        "hm",
        "anycast",
        "3",
        "ha",
    ]);
    assert!(ok && out.contains("SENT count=25"), "{out} {err}");
    let want4: Vec<String> = (1..=25)
        .filter(|i| i % 5 != 0)
        .map(|i| {
            let a = ["hb", "hb", "hu", "hm"][(i - 1) % 5];
            format!("{a}-{i:06}")
        })
        .collect();
    let want3: Vec<String> = (1..=25)
        .filter(|i| i % 5 == 0 || (i - 1) % 5 < 2)
        .map(|i| {
            let a = if i % 5 == 0 { "ha" } else { "hb" };
            format!("{a}-{i:06}")
        })
        .collect();
    let end = Instant::now() + Duration::from_secs(20);
    let (log3, log4) = loop {
        let l3: Vec<String> = exec_ok(&k1, "cat /tmp/g3.log")
            .lines()
            .map(String::from)
            .collect();
        let l4: Vec<String> = exec_ok(&k2, "cat /tmp/g4.log")
            .lines()
            .map(String::from)
            .collect();
        let done = data_from(&l3, "4711:5").len() >= want3.len()
            && data_from(&l4, "4711:5").len() >= want4.len()
            && l4
                .iter()
                .any(|l| l.starts_with("MEMBER_DOWN member=4711:5 "));
        if done || Instant::now() > end {
            break (l3, l4);
        }
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(
        data_from(&log4, "4711:5"),
        want4,
        "at the kernel's member 4: {log4:?}"
    );
    // Our runs of broadcasts went on our broadcast link (the first of each run is a forced
    // replicast with an ack request, the second is free): the kernel's member got them above.
    let (tx, ours) = our_bcast_tx(&h2);
    assert!(tx >= 5, "our broadcast link sent {tx} packets:\n{ours}");
    // 300 broadcasts in a row, beyond the window (50) and the backlog (200): they go on
    // the broadcast link while it takes them (by replicast when it is full), and the kernel
    // nodes acknowledge all of it.
    let (ok, out, err) = h2.ctl(&[
        "group",
        "send",
        "4711:6",
        "--wait-members",
        "4",
        "--count",
        "300",
        "bcast",
        "z",
    ]);
    assert!(ok && out.contains("SENT count=300"), "{out} {err}");
    let end = Instant::now() + Duration::from_secs(10);
    let ours = loop {
        let (_, ours, _) = h2.ctl(&["link", "stat", "show", "broadcast-link"]);
        if ours.contains("Queued now:0 ") || Instant::now() > end {
            break ours;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        ours.contains("Queued now:0 "),
        "not all acknowledged:\n{ours}"
    );
    let (tx2, _) = our_bcast_tx(&h2);
    assert!(tx2 - tx >= 200, "{} more packets:\n{ours}", tx2 - tx);

    // Datagram range multicast to three remote nodes (two kernels and h1) goes on our
    // broadcast link too; every copy is echoed.
    exec_ok(&k1, "tipc-helper rdm-server 5100:1 >/tmp/r1.log 2>&1 &");
    exec_ok(&k2, "tipc-helper rdm-server 5100:2 >/tmp/r2.log 2>&1 &");
    let mut l = CtlProc::spawn(&h1, &["listen", "rdm", "5100:3", "--echo"], Lines::Stdout);
    l.wait_prefix("READY ", Duration::from_secs(5))
        .expect("listener");
    let end = Instant::now() + Duration::from_secs(10);
    while h2
        .ctl(&["nametable", "show"])
        .1
        .lines()
        .filter(|l| l.starts_with("5100 "))
        .count()
        < 3
    {
        assert!(Instant::now() < end, "bindings of 5100 never all seen");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (ok, out, err) = h2.ctl(&[
        "send",
        "rdm",
        "--range",
        "5100:0:9",
        "--count",
        "20",
        "--wait-replies",
        "60",
        "--timeout",
        "10000",
        "x",
    ]);
    assert!(ok, "{out} {err}");
    assert_eq!(
        out.lines().filter(|l| l.starts_with("REPLY ")).count(),
        60,
        "{out}"
    );
    let (tx3, ours) = our_bcast_tx(&h2);
    assert_eq!(
        tx3 - tx2,
        20,
        "range multicasts on the broadcast link:\n{ours}"
    );
    assert_eq!(
        data_from(&log3, "4711:5"),
        want3,
        "at the kernel's member 3: {log3:?}"
    );
    // Member events both ways: the kernel saw ours come (and the sender go, after its last
    // message), ours saw the kernel's.
    for m in ["4711:1", "4711:2", "4711:5"] {
        assert!(
            log4.iter()
                .any(|l| l.starts_with(&format!("MEMBER_UP member={m} "))),
            "kernel missed {m} up: {log4:?}"
        );
    }
    let last_data = log4
        .iter()
        .rposition(|l| l.contains("member=4711:5 ") && l.starts_with("RECV "));
    let down = log4
        .iter()
        .position(|l| l.starts_with("MEMBER_DOWN member=4711:5 "));
    assert!(
        down > last_data,
        "MEMBER_DOWN before the last message: {log4:?}"
    );
    for c in [&mut j1, &mut j2] {
        let ev = c.events();
        for m in ["4711:3", "4711:4"] {
            assert!(
                ev.iter()
                    .any(|l| l.starts_with(&format!("MEMBER_UP member={m} "))),
                "we missed {m} up: {ev:?}"
            );
        }
    }
}

#[test]
#[ignore = "needs the kernel peer VM"]
fn kernel_group_two_vms_and_two_of_our_nodes_over_udp() {
    scenario("tpg-udp", Bearer::Udp);
}

#[test]
#[ignore = "needs the kernel peer VM"]
fn kernel_group_two_vms_and_two_of_our_nodes_over_ethernet() {
    scenario("tpg-eth", Bearer::Eth);
}
