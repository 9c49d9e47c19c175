//! Loss with a real Linux 6.1 kernel node (../shared/tipc-peer): 10 % of the UDP bearer's
//! datagrams dropped each way (nftables in the harness namespace: inet input, bridge output). A stream to the kernel's
//! echo server comes back intact and in order, and the holes are repaired with gap ACK blocks
//! (TIPC_GAP_ACK_BLOCK on both sides): our link did not resend packets the kernel's STATEs
//! reported held, and the kernel took our STATEs, records included (the link stayed up).
//!
//! Ignored by default (`#[ignore = "needs the kernel peer VM"]`); scripts/test runs it with
//! `--include-ignored` as root, and it fails if the harness cannot boot the VM.

use std::io::Write;
use std::time::{Duration, Instant};
use tipc_integration::ctl_proc::CtlProc;
use tipc_integration::kernel_peer::{scenario_vm, Bearer};
use tipc_integration::netns::{nft_script_in, DropHook, DropMatch, RandomDrop};
use tipc_integration::node_proc::NodeProc;
use tipc_integration::pattern::block;

const NS: &str = "tpc-loss";
/// Bytes sent, and echoed back.
const TOTAL: usize = 512 * 1024;

#[test]
#[ignore = "needs the kernel peer VM"]
fn stream_with_the_kernel_at_10_percent_loss_each_way_arrives_intact_with_gap_acks() {
    let (_guard, k) = scenario_vm(NS, Bearer::Udp, None);
    let (rc, out) = k
        .exec("tipc-helper stream-server 6001:1 >/tmp/stream.log 2>&1 &")
        .unwrap();
    assert_eq!(rc, 0, "{out}");
    let mut node = NodeProc::start(NS, &["--id", "host", "--udp", "10.99.0.1"], Some(NS));
    assert!(
        node.wait_line("link up", Duration::from_secs(30)).is_some(),
        "link never came up: {:?}",
        node.seen
    );
    assert!(
        node.wait_binding(6001, Duration::from_secs(10)),
        "kernel binding never arrived"
    );
    // our UDP bearer sends GSO batches: the inet output hook would drop a whole batch or none,
    // and a run whose few batches all pass has no loss towards the kernel; after the bridge
    // every datagram is a candidate on its own
    for hook in [DropHook::InetInput, DropHook::BridgeOutput] {
        let rule = RandomDrop {
            percent: 10,
            matcher: DropMatch::UdpDstPort(6118),
            hook,
        };
        nft_script_in(NS, &rule.nft_script()).expect("nft rule");
    }
    let mut c = CtlProc::connect_stream(&node, "6001:1", TOTAL);
    let mut data = vec![0u8; TOTAL];
    for (i, ch) in data.chunks_mut(4096).enumerate() {
        block(i as u64, ch);
    }
    let mut stdin = c.child.stdin.take().expect("stdin");
    let sent = data.clone();
    let writer = std::thread::spawn(move || stdin.write_all(&sent).expect("write to tipcctl"));
    let t = Instant::now();
    let got = c.read(TOTAL, Duration::from_secs(180)).to_vec();
    let took = t.elapsed();
    let (_, stats, _) = node.ctl(&["link", "stat", "show"]);
    assert_eq!(got.len(), TOTAL, "{} bytes echoed\n{stats}", got.len());
    assert!(got == data, "echo altered");
    writer.join().expect("writer");
    let (ok, seen) = c.finish(Duration::from_secs(20));
    assert_eq!(ok, Some(true), "connection did not end orderly: {seen:?}");
    node.drain();
    assert!(
        !node.seen.iter().any(|l| l.starts_with("link down")),
        "the link went down: {:?}",
        node.seen
    );
    let gap_acked: u64 = stats
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Gap acked:")?.parse::<u64>().ok())
        .sum();
    let (_, kstats) = k.exec("tipc link stat show").unwrap();
    eprintln!(
        "{TOTAL} bytes echoed by the kernel at 10 % loss each way in {took:?}; packets the \
         kernel's gap ACK blocks reported held: {gap_acked}\nours:\n{stats}\nkernel:\n\
         {kstats}"
    );
    assert!(
        gap_acked > 0,
        "no gap ACK block from the kernel was used\n{stats}"
    );
}
