//! Real `tipc-node` processes on 127.0.0.1 (unicast discovery) and `tipcctl` against them.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tipc_integration::ctl_proc::{CtlProc, Lines};
use tipc_integration::node_proc::{bin_path, NodeProc};

fn start(id: &str, port: u16, peer: u16) -> NodeProc {
    NodeProc::loopback(id, port, &[peer])
}

/// Two free UDP ports on 127.0.0.1.
fn free_ports() -> (u16, u16) {
    let p = tipc_integration::cluster::free_udp_ports(2);
    (p[0], p[1])
}

#[test]
fn two_nodes_bring_link_up_within_one_second_and_detect_sigkill_within_tolerance() {
    let (pa, pb) = free_ports();
    let mut a = start("alpha", pa, pb);
    a.wait_line("node alpha", Duration::from_secs(10))
        .expect("alpha started");
    let t0 = Instant::now();
    let mut b = start("beta", pb, pa);
    let up_a = a
        .wait_line("link up", Duration::from_secs(5))
        .expect("alpha: link up");
    let up_b = b
        .wait_line("link up", Duration::from_secs(5))
        .expect("beta: link up");
    let took = up_a.max(up_b) - t0;
    assert!(
        took <= Duration::from_secs(1),
        "link came up after {took:?}: {:?}",
        a.seen
    );
    assert!(
        a.seen.iter().any(|l| l == "link up alpha:udp0-beta:udp0"),
        "{:?}",
        a.seen
    );

    let (ok, out, err) = a.ctl(&["link", "list"]);
    assert!(ok, "{err}");
    assert!(out.contains("alpha:udp0-beta:udp0: up"), "{out}");
    let (ok, out, _) = a.ctl(&["node", "list"]);
    assert!(ok && out.contains("beta") && out.contains(" up"), "{out}");
    let (ok, out, _) = a.ctl(&["bearer", "list"]);
    assert!(ok && out.trim() == "udp:udp0", "{out}");
    let (ok, out, _) = a.ctl(&["link", "stat", "show", "alpha:udp0-beta:udp0"]);
    assert!(
        ok && out.contains("ACTIVE") && out.contains("Tolerance:1500 ms"),
        "{out}"
    );
    let (ok, _, err) = a.ctl(&["link", "stat", "show", "nosuch"]);
    assert!(!ok && err.contains("link not found"), "{err}");
    // Node counters, and what the receive dispatch dropped (nothing on a quiet pair).
    let (ok, out, err) = a.ctl(&["node", "stat"]);
    assert!(ok, "{err}");
    assert!(
        out.contains("beta") && out.contains("unreturned:0") && out.contains("bad_user:0"),
        "{out}"
    );
    assert!(
        out.contains(
            "dispatch dropped: malformed:0 not_for_sockets:0 not_returnable:0 sender_gone:0"
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "group dropped: non_member:0 malformed:0 stale:0 deferred_overflow:0 rcvbuf:0 \
             early:0 after_leave:0"
        ),
        "{out}"
    );

    // Let the link idle (probes keep it up), then kill beta hard.
    std::thread::sleep(Duration::from_millis(500));
    let killed = Instant::now();
    b.kill();
    let down = a
        .wait_line("link down", Duration::from_secs(5))
        .expect("alpha: link down after SIGKILL");
    let took = down - killed;
    assert!(
        took <= Duration::from_millis(1650),
        "link down {took:?} after SIGKILL (tolerance 1.5 s + 10 %)"
    );
    let (_, out, _) = a.ctl(&["link", "list"]);
    assert!(out.contains("alpha:udp0-beta:udp0: down"), "{out}");
}

#[test]
fn stopping_node_resets_peer_link_at_once() {
    let (pa, pb) = free_ports();
    let mut a = start("gamma", pa, pb);
    let mut b = start("delta", pb, pa);
    a.wait_line("link up", Duration::from_secs(5))
        .expect("link up");
    b.wait_line("link up", Duration::from_secs(5))
        .expect("link up");
    // SIGTERM: delta sends RESET with peer_stopping.
    let pid = b.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let t = Instant::now();
    let down = a
        .wait_line("link down", Duration::from_secs(5))
        .expect("link down");
    assert!(down - t < Duration::from_millis(500), "took {:?}", down - t);
    assert!(
        a.seen.last().unwrap().contains("PeerStopping"),
        "{:?}",
        a.seen
    );
}

fn run_node(args: &[&str]) -> (Option<i32>, String) {
    let o = Command::new(bin_path("tipc-node"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tipc-node");
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn node_reports_bad_flags_busy_port_and_missing_interface_clearly() {
    let (code, err) = run_node(&["--udp", "not-an-ip"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("invalid UDP address 'not-an-ip'"), "{err}");
    let (code, err) = run_node(&["--net-id", "0", "--udp", "127.0.0.1"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("network id 0"), "{err}");
    let (code, err) = run_node(&["--id", "x"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no bearer configured"), "{err}");
    let (code, err) = run_node(&["--bogus"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--bogus"), "{err}");

    let busy = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let (code, err) = run_node(&[
        "--id",
        "x",
        "--udp",
        &format!("127.0.0.1:{port}"),
        "--udp-peer",
        "127.0.0.1:1",
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("already in use"), "{err}");

    let (code, err) = run_node(&["--id", "x", "--eth", "nosuch0"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("nosuch0"), "{err}");
}

#[test]
#[ignore = "needs root (setpriv drops to an unprivileged user)"]
fn node_reports_missing_privilege_for_ethernet() {
    assert!(
        tipc_integration::netns::is_root(),
        "this test needs root to drop privileges with setpriv: run it as root, as scripts/test \
         does (a plain `cargo test` leaves it ignored)"
    );
    // Drop to an unprivileged user: opening a packet socket needs CAP_NET_RAW.
    let o = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(bin_path("tipc-node"))
        .args(["--id", "x", "--eth", "lo"])
        .output()
        .expect("setpriv (util-linux) must be installed");
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("CAP_NET_RAW"), "{err}");
}

#[test]
fn sigkilled_node_bindings_are_withdrawn_on_the_others_within_tolerance() {
    let ports = tipc_integration::cluster::free_udp_ports(3);
    let mut nodes: Vec<NodeProc> = (0..3)
        .map(|i| {
            let others: Vec<u16> = (0..3).filter(|j| *j != i).map(|j| ports[j]).collect();
            NodeProc::loopback(&format!("k{i}"), ports[i], &others)
        })
        .collect();
    for n in nodes.iter_mut() {
        n.wait_line("link up", Duration::from_secs(5))
            .expect("link up");
        n.wait_line("link up", Duration::from_secs(5))
            .expect("second link up");
    }
    // Node 2 binds a service; nodes 0 and 1 track it.
    let mut l = CtlProc::spawn(&nodes[2], &["listen", "rdm", "7000:1"], Lines::Stdout);
    assert!(l.wait_prefix("READY", Duration::from_secs(5)).is_some());
    let mut subs: Vec<CtlProc> = (0..2)
        .map(|i| CtlProc::spawn(&nodes[i], &["subscribe", "7000:0:10"], Lines::Stdout))
        .collect();
    for s in subs.iter_mut() {
        assert!(s
            .wait_prefix(
                "PUBLISHED type=7000 lower=1 upper=1",
                Duration::from_secs(3)
            )
            .is_some());
    }
    // Anycast reaches it.
    let (ok, out, err) = nodes[0].ctl(&["send", "rdm", "--service", "7000:1", "hi"]);
    assert!(ok, "{out}{err}");
    // SIGKILL node 2: both others withdraw its binding within the link tolerance (+10 %).
    let killed = Instant::now();
    nodes[2].kill();
    for s in subs.iter_mut() {
        let (t, _) = s
            .wait(
                |l| l.starts_with("WITHDRAWN type=7000 lower=1 upper=1"),
                Duration::from_secs(5),
            )
            .expect("WITHDRAWN after SIGKILL");
        assert!(
            t - killed <= Duration::from_millis(1650),
            "withdrawn after {:?}",
            t - killed
        );
    }
    let (_, table, _) = nodes[0].ctl(&["nametable", "show"]);
    assert!(!table.lines().any(|l| l.starts_with("7000 ")), "{table}");
    drop((l, subs));
}
