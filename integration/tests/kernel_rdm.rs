//! Datagram messaging with a real Linux 6.1 kernel node (../shared/tipc-peer) over UDP and
//! Ethernet: both name tables, RDM echo both ways, anycast and multicast spanning our node and the
//! kernel's, returned messages with error codes both ways, and the kernel's topology subscription
//! seeing our publish and withdraw.
//!
//! Ignored by default (`#[ignore = "needs the kernel peer VM"]`); scripts/test runs it with
//! `--include-ignored` as root, and it fails if the harness cannot boot the VM.

use std::time::{Duration, Instant};
use tipc_integration::ctl_proc::{CtlProc, Lines};
use tipc_integration::kernel_peer::{scenario_vm, Bearer};
use tipc_integration::node_proc::NodeProc;

fn scenario(ns: &str, bearer: Bearer, node_args: &[&str]) {
    let (_guard, mut k) = scenario_vm(ns, bearer, None);
    let mut args = vec!["--id", "host"];
    args.extend_from_slice(node_args);
    let mut node = NodeProc::start(ns, &args, Some(ns));
    node.wait_line("link up", Duration::from_secs(20))
        .expect("link up");
    assert!(k.wait_link_up("host", Duration::from_secs(10)).unwrap());
    let kaddr = format!("{:08x}", k.node_addr().expect("kernel node address"));
    let ctl = |a: &[&str]| node.ctl(a);

    // Kernel services: an echo server bound to 1000:1 (anycast target) and 4000:1 (multicast).
    let (rc, out) = k
        .exec("tipc-helper rdm-server 1000:1 4000:1 5000:1 >/tmp/srv.log 2>&1 &")
        .unwrap();
    assert_eq!(rc, 0, "{out}");
    // Ours: an echo listener on 2000:1, 4000:2 and 5000:1.
    let mut listen = CtlProc::spawn(
        &node,
        &["listen", "rdm", "2000:1", "4000:2", "5000:1", "--echo"],
        Lines::Stdout,
    );
    assert!(listen
        .wait(
            |l| l.starts_with("READY sock:0x686f7374:"),
            Duration::from_secs(5)
        )
        .is_some());

    // Both name tables list the other side's bindings.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, ours, _) = ctl(&["nametable", "show"]);
        let (_, theirs) = k.exec("tipc nametable show").unwrap();
        let ok = ours
            .lines()
            .any(|l| l.starts_with("1000 ") && l.trim_end().ends_with(" k"))
            && theirs
                .lines()
                .any(|l| l.starts_with("2000 ") && l.trim_end().ends_with("host"));
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "name tables did not converge:\n{ours}\n{theirs}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // We send to the kernel's service and get its echo.
    let (ok, out, err) = ctl(&[
        "send",
        "rdm",
        "--service",
        "1000:1",
        "--wait-replies",
        "1",
        "hello kernel",
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("REPLY from=sock:0x{kaddr}:")) && out.contains("data=hello kernel"),
        "{out}"
    );

    // The kernel sends to our service and gets our echo.
    let (rc, out) = k
        .exec("tipc-helper rdm-client 2000:1 hello-from-kernel")
        .unwrap();
    assert_eq!(rc, 0, "{out}");
    assert!(
        out.contains("RECV from=sock:0x686f7374:") && out.contains("DONE replies=1"),
        "{out}"
    );
    assert!(listen
        .wait(
            |l| l.starts_with(&format!("RECV from=sock:0x{kaddr}:"))
                && l.ends_with("data=hello-from-kernel"),
            Duration::from_secs(3)
        )
        .is_some());

    // Multicast over a range spanning both nodes, from each side: each server once.
    let (rc, out) = k
        .exec("tipc-helper rdm-client 4000:0:5 mc-k --count 2")
        .unwrap();
    assert_eq!(rc, 0, "{out}");
    assert!(
        out.contains("RECV from=sock:0x686f7374:") && out.contains("DONE replies=2"),
        "{out}"
    );
    let (ok, out, err) = ctl(&[
        "send",
        "rdm",
        "--range",
        "4000:0:5",
        "--wait-replies",
        "2",
        "mc-u",
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("REPLY from=sock:0x{kaddr}:"))
            && out.contains("REPLY from=sock:0x686f7374:"),
        "{out}"
    );

    // Anycast to 5000:1, bound on both nodes: replies alternate between them.
    let (ok, out, err) = ctl(&[
        "send",
        "rdm",
        "--service",
        "5000:1",
        "--count",
        "4",
        "--wait-replies",
        "4",
        "any",
    ]);
    assert!(ok, "{out}{err}");
    let from_k = out.matches(&format!("REPLY from=sock:0x{kaddr}:")).count();
    let from_us = out.matches("REPLY from=sock:0x686f7374:").count();
    assert_eq!(
        (from_k, from_us),
        (2, 2),
        "anycast round robin over both nodes: {out}"
    );

    // Returned messages, both ways.
    let (ok, out, err) = ctl(&[
        "send",
        "rdm",
        "--socket",
        &format!("{kaddr}:1"),
        "--returnable",
        "--wait-replies",
        "1",
        "x",
    ]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("RETURNED err=no_port orig_dst=sock:0x{kaddr}:1")),
        "{out}"
    );
    let (_, out) = k
        .exec("tipc-helper rdm-client sock:0x686f7374:1 x --droppable 0")
        .unwrap();
    assert!(
        out.contains("RETURNED err=2 errname=no_port orig_dst=sock:0x686f7374:1"),
        "{out}"
    );
    // Droppable (default): the kernel hears nothing back.
    let (rc, out) = k
        .exec("tipc-helper rdm-client sock:0x686f7374:1 x --timeout 500")
        .unwrap();
    assert!(
        rc == 2 && out.contains("DONE replies=0 returned=0"),
        "{rc} {out}"
    );

    // The kernel's topology service sees our publish and withdraw.
    let (rc, out) = k
        .exec("tipc-helper topsrv 3000:0:100 --timeout 4000 >/tmp/top.log 2>&1 &")
        .unwrap();
    assert_eq!(rc, 0, "{out}");
    std::thread::sleep(Duration::from_millis(500));
    let mut l3 = CtlProc::spawn(&node, &["listen", "rdm", "3000:5"], Lines::Stdout);
    assert!(l3.wait_prefix("READY", Duration::from_secs(5)).is_some());
    std::thread::sleep(Duration::from_millis(500));
    drop(l3);
    std::thread::sleep(Duration::from_millis(3500));
    let (_, top) = k.exec("cat /tmp/top.log").unwrap();
    assert!(
        top.contains("PUBLISHED type=3000 lower=5 upper=5 sock=sock:0x686f7374:"),
        "{top}"
    );
    assert!(
        top.contains("WITHDRAWN type=3000 lower=5 upper=5 sock=sock:0x686f7374:"),
        "{top}"
    );
    drop(listen);
    k.down().unwrap();
}

#[test]
#[ignore = "needs the kernel peer VM"]
fn kernel_rdm_over_udp() {
    scenario("tpr-udp", Bearer::Udp, &["--udp", "10.99.0.1"]);
}

#[test]
#[ignore = "needs the kernel peer VM"]
fn kernel_rdm_over_ethernet() {
    scenario("tpr-eth", Bearer::Eth, &["--eth", "tpbr0"]);
}
