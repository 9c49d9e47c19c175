//! An actor service called by a Linux 6.1 kernel node (../shared/tipc-peer; issue 13 item 6):
//! the raw service `Upper` (a `#[handle]` taking `Raw`: no envelope) runs in `svc-host` in the
//! harness namespace over UDP; the kernel's plain RDM client (`tipc-helper rdm-client`) sends
//! to `{2500, 1}` and gets the answer.
//!
//! Ignored by default (`#[ignore = "needs the kernel peer VM"]`); scripts/test runs it with
//! `--include-ignored` as root, and it fails if the harness cannot boot the VM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tipc_integration::kernel_peer::{netns_command, scenario_vm, Bearer};

const NS: &str = "tpc-svc";

#[test]
#[ignore = "needs the kernel peer VM"]
fn kernel_rdm_client_calls_a_raw_actor_service_and_gets_its_answer() {
    let (_guard, k) = scenario_vm(NS, Bearer::Udp, None);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_svc-host"));
    cmd.args(["raw", "10.99.0.1"]);
    let mut child = netns_command(NS, &cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start svc-host");
    let out = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(out).lines();
    let ready = lines.next().and_then(Result::ok);
    assert_eq!(ready.as_deref(), Some("READY"));
    // The kernel learns the binding once the link is up and the names are distributed.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, table) = k.exec("tipc nametable show").expect("exec");
        if table
            .lines()
            .any(|l| l.starts_with("2500 ") && l.trim_end().ends_with("host"))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the kernel never saw {{2500, 1}}:\n{table}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (rc, out) = k
        .exec("tipc-helper rdm-client 2500:1 hello-from-kernel")
        .expect("exec");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(rc, 0, "{out}");
    assert!(
        out.contains("data=\"HELLO-FROM-KERNEL\"") && out.contains("DONE replies=1"),
        "{out}"
    );
}

#[test]
#[ignore = "needs the kernel peer VM"]
fn kernel_group_member_and_an_actor_member_exchange_messages_both_ways() {
    let (_guard, k) = scenario_vm("tpc-svg", Bearer::Udp, None);
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_svc-host"));
    cmd.args(["group-raw", "10.99.0.1"]);
    let mut child = netns_command("tpc-svg", &cmd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start svc-host");
    let out = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                return;
            }
        }
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(20)).ok().as_deref(),
        Some("READY")
    );
    // The kernel member waits for ours, broadcasts, sends it a unicast, answers what it gets
    // with "echo:..." and listens for the rest of its time.
    let (rc, kout) = k
        .exec("tipc-helper group 3200:7 --events --echo --timeout 6000 wait 1 bcast k-one ucast 5 k-two")
        .expect("exec");
    let mut ours = Vec::new();
    while let Ok(l) = rx.recv_timeout(Duration::from_secs(2)) {
        ours.push(l);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(rc, 0, "{kout}");
    assert!(kout.contains("MEMBER_UP member=3200:5"), "{kout}");
    for want in ["data=\"actor-hi\"", "data=\"K-ONE\"", "data=\"K-TWO\""] {
        assert!(kout.contains(want), "kernel member missed {want}:\n{kout}");
    }
    for want in ["JOINED 7", "GOT k-one", "GOT k-two", "GOT echo:actor-hi"] {
        assert!(
            ours.iter().any(|l| l == want),
            "actor member missed {want}: {ours:?}\n{kout}"
        );
    }
    let one = ours.iter().position(|l| l == "GOT k-one");
    let two = ours.iter().position(|l| l == "GOT k-two");
    assert!(
        one < two,
        "the kernel member's messages out of order: {ours:?}"
    );
}
