//! Link failover with a real Linux 6.1 kernel node (../shared/tipc-peer): our node and the
//! kernel's have two links, one over the UDP bearer and one over Ethernet, and every UDP
//! datagram from the kernel to us is dropped from some point on (nftables in the harness
//! namespace). Our UDP link times out, its RESET takes the kernel's down too, and each side
//! sends what that link had not got acknowledged over the Ethernet link in FAILOVER messages.
//!
//! * Equal MTUs: two paced stream connections to the kernel's echo server; every byte comes
//!   back intact and in order, no connection breaks, the node never goes down, and the SYNCH
//!   the kernel sent when its second link came up was honoured.
//! * An Ethernet link with a smaller MTU than the UDP link (the VM's device at 1280): what fails
//!   over from the UDP link goes in the kernel's tunnel fragments (TIPC_TUNNEL_ENHANCED), both
//!   ways. A stream to the kernel's server arrives whole and in order (the kernel reassembled
//!   ours), and the kernel's RDM messages queued on the UDP link reach our sink (we reassembled
//!   the kernel's).
//!
//! Ignored by default (`#[ignore = "needs the kernel peer VM"]`); scripts/test runs it with
//! `--include-ignored` as root, and it fails if the harness cannot boot the VM.

use std::io::Write;
use std::time::{Duration, Instant};
use tipc_integration::ctl_proc::{CtlProc, Lines};
use tipc_integration::kernel_peer::{scenario_vm, Bearer, KernelPeer, PeerNetns};
use tipc_integration::netns::{nft_script_in, DropHook, DropMatch, RandomDrop};
use tipc_integration::node_proc::NodeProc;
use tipc_integration::pattern::block;

/// Bytes each connection sends, paced over about 8 s.
const TOTAL: usize = 768 * 1024;
const CHUNK: usize = 4096;

/// From now on the UDP bearer loses everything the kernel sends us.
fn cut_udp_from_kernel(ns: &str) {
    let rule = RandomDrop {
        percent: 100,
        matcher: DropMatch::UdpDstPort(6118),
        hook: DropHook::InetInput,
    };
    nft_script_in(ns, &rule.nft_script()).expect("nft rule");
}

/// Both sides' counters, for a failure message.
fn diag(node: &NodeProc, k: &KernelPeer) -> String {
    let (_, stat, _) = node.ctl(&["node", "stat"]);
    let (_, links, _) = node.ctl(&["link", "stat", "show"]);
    let (_, kl) = k.exec("tipc link stat show").unwrap_or_default();
    let (_, log) = k.exec("cat /tmp/stream.log").unwrap_or_default();
    format!("ours: {stat}\n{links}\nkernel:\n{kl}\nkernel server:\n{log}")
}

/// A kernel VM in namespace `ns` with both bearers, prepared with `vm_setup` (commands run
/// before our node starts) and running a stream server on 6001:1 (`server_opts`: extra
/// options), and our node with a UDP and an Ethernet link to it, the server's binding known.
fn two_links(ns: &str, vm_setup: &[&str], server_opts: &str) -> (PeerNetns, KernelPeer, NodeProc) {
    let (guard, k) = scenario_vm(ns, Bearer::Both, None);
    for cmd in vm_setup {
        let (rc, out) = k.exec(cmd).unwrap();
        assert_eq!(rc, 0, "{cmd}: {out}");
    }
    let (rc, out) = k
        .exec(&format!(
            "tipc-helper stream-server 6001:1 {server_opts} >/tmp/stream.log 2>&1 &"
        ))
        .unwrap();
    assert_eq!(rc, 0, "{out}");
    let mut node = NodeProc::start(
        ns,
        &["--id", "host", "--udp", "10.99.0.1", "--eth", "tpbr0"],
        Some(ns),
    );
    let end = Instant::now() + Duration::from_secs(30);
    while node
        .seen
        .iter()
        .filter(|l| l.starts_with("link up"))
        .count()
        < 2
    {
        assert!(
            Instant::now() < end,
            "two links never came up: {:?}",
            node.seen
        );
        node.wait_line("link up", Duration::from_millis(200));
    }
    assert!(
        node.wait_binding(6001, Duration::from_secs(10)),
        "kernel binding never arrived"
    );
    (guard, k, node)
}

/// `TOTAL` bytes of connection `c`'s pattern.
fn payload(c: u64) -> Vec<u8> {
    let mut d = vec![0u8; TOTAL];
    for (i, ch) in d.chunks_mut(CHUNK).enumerate() {
        block((c << 32) + i as u64, ch);
    }
    d
}

/// Write `data` to the client's stdin, a chunk per 40 ms, from a thread.
fn paced_writer(c: &mut CtlProc, data: Vec<u8>) -> std::thread::JoinHandle<()> {
    let mut stdin = c.child.stdin.take().expect("stdin");
    std::thread::spawn(move || {
        for ch in data.chunks(CHUNK) {
            stdin.write_all(ch).expect("write to tipcctl");
            std::thread::sleep(Duration::from_millis(40));
        }
    })
}

/// Wait (bounded) for the writers to finish.
fn join_writers(writers: Vec<std::thread::JoinHandle<()>>, node: &NodeProc, k: &KernelPeer) {
    let end = Instant::now() + Duration::from_secs(30);
    while !writers.iter().all(|w| w.is_finished()) {
        assert!(
            Instant::now() < end,
            "writes stalled after the cut\n{}",
            diag(node, k)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for w in writers {
        w.join().expect("writer");
    }
}

/// Our UDP link went down (only it), within 5 s of the cut; how long it took.
fn our_udp_link_fails(node: &mut NodeProc, cut: Instant) -> Duration {
    assert!(
        node.wait_line("link down", Duration::from_secs(5))
            .is_some(),
        "our UDP link never failed: {:?}",
        node.seen
    );
    let took = cut.elapsed();
    let down: Vec<&String> = node
        .seen
        .iter()
        .filter(|l| l.starts_with("link down"))
        .collect();
    assert!(
        down.len() == 1 && down[0].contains("udp"),
        "expected the UDP link only to fail: {down:?}"
    );
    took
}

/// Our node stat counter `name` (the line of the one peer node).
fn counter(stat: &str, name: &str) -> u64 {
    stat.split_whitespace()
        .find_map(|w| w.strip_prefix(name)?.strip_prefix(':')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {stat}"))
}

/// The node never went down, and the kernel's Ethernet link is still up.
fn node_stayed_up(node: &mut NodeProc, k: &KernelPeer) -> String {
    node.drain();
    assert!(
        !node.seen.iter().any(|l| l.starts_with("node down")),
        "the node went down: {:?}",
        node.seen
    );
    let (_, links) = k.exec("tipc link list").unwrap();
    assert!(
        links.lines().any(|l| l.contains("eth") && l.contains("up")),
        "kernel lost the Ethernet link too:\n{links}\n{}",
        diag(node, k)
    );
    links
}

#[test]
#[ignore = "needs the kernel peer VM"]
fn kernel_and_we_fail_the_udp_link_over_to_ethernet_without_losing_a_byte() {
    let (_guard, k, mut node) = two_links("tpc-fo", &[], "");
    let mut clients: Vec<CtlProc> = (0..2)
        .map(|_| CtlProc::connect_stream(&node, "6001:1", TOTAL))
        .collect();
    let data: Vec<Vec<u8>> = (0..2u64).map(payload).collect();
    let writers: Vec<_> = clients
        .iter_mut()
        .zip(data.iter().cloned())
        .map(|(c, d)| paced_writer(c, d))
        .collect();
    // Two seconds in, the cut. The kernel's echoes on the UDP link (the connection whose
    // port selects it) pile up unacknowledged until the failover.
    std::thread::sleep(Duration::from_secs(2));
    let cut = Instant::now();
    cut_udp_from_kernel("tpc-fo");
    let ours_down = our_udp_link_fails(&mut node, cut);
    join_writers(writers, &node, &k);
    for (i, c) in clients.iter_mut().enumerate() {
        let got = c.read(TOTAL, Duration::from_secs(60)).to_vec();
        assert_eq!(
            got.len(),
            TOTAL,
            "connection {i}: {} bytes echoed\n{}",
            got.len(),
            diag(&node, &k)
        );
        assert!(got == data[i], "connection {i}: echo altered");
        let (ok, seen) = c.finish(Duration::from_secs(10));
        assert_eq!(
            ok,
            Some(true),
            "connection {i} did not end orderly: {seen:?}"
        );
    }
    let links = node_stayed_up(&mut node, &k);
    // Each side tunnelled its own queue; the kernel's SYNCH was seen when the second link
    // came up.
    let (_, stat, _) = node.ctl(&["node", "stat"]);
    eprintln!(
        "failover with the kernel: our UDP link down {ours_down:?} after the cut; ours: \
         {stat}kernel links:\n{links}"
    );
    assert!(counter(&stat, "failovers") >= 1, "{stat}");
    assert!(
        counter(&stat, "tx") >= 1,
        "nothing tunnelled to the kernel: {stat}"
    );
    assert!(
        counter(&stat, "rx") >= 1,
        "no FAILOVER message from the kernel: {stat}"
    );
    assert_eq!(counter(&stat, "synchs"), 1, "{stat}");
    let (_, log) = k.exec("cat /tmp/stream.log").unwrap();
    assert_eq!(
        log.matches("reason=eof").count(),
        2,
        "kernel stream-server log:\n{log}"
    );
}

/// FNV-1a 32, as `tipc-helper` prints it.
fn fnv32(d: &[u8]) -> u32 {
    d.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}

#[test]
#[ignore = "needs the kernel peer VM"]
fn kernel_and_we_fail_over_in_tunnel_fragments_when_the_other_link_has_a_smaller_mtu() {
    // The kernel's Ethernet bearer takes its device's MTU, its UDP bearer keeps 14000 (IP
    // fragments): with eth0 at 1280 the Ethernet link's MTU is smaller than the UDP link's
    // (1472, ours). A higher priority on the kernel's UDP bearer puts all traffic on the UDP
    // link, the kernel's and (once the link is idle) ours too. The kernel cannot send more on
    // a connection after such a failover (its socket keeps the old mss: EMSGSIZE), so its
    // server does not echo and the kernel's data comes as RDM messages.
    let setup = [
        "ip link set eth0 mtu 1280",
        "tipc bearer set priority 20 media udp name udp1",
    ];
    let (_guard, k, mut node) = two_links("tpc-fo2", &setup, "--no-echo");
    let mut sink = CtlProc::spawn(&node, &["listen", "rdm", "7000:1"], Lines::Stdout);
    sink.wait_prefix("READY ", Duration::from_secs(10))
        .expect("sink ready");
    // Our binding must be in the kernel's table before its messages are sent.
    let end = Instant::now() + Duration::from_secs(10);
    while !k
        .exec("tipc nametable show")
        .unwrap()
        .1
        .lines()
        .any(|l| l.starts_with("7000 "))
    {
        assert!(Instant::now() < end, "our binding never reached the kernel");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut client = CtlProc::connect_stream(&node, "6001:1", 0);
    let data = payload(7);
    let writer = paced_writer(&mut client, data.clone());
    std::thread::sleep(Duration::from_secs(2));
    let cut = Instant::now();
    cut_udp_from_kernel("tpc-fo2");
    // At once 40 RDM messages of 1400 bytes from the kernel: they go on its UDP link and stay
    // there unacknowledged until the failover tunnels them.
    const MSGS: usize = 40;
    let msgs: Vec<String> = (0..MSGS).map(|i| format!("m{i:02}")).collect();
    let (rc, out) = k
        .exec(&format!(
            "tipc-helper rdm-client 7000:1 {} --size 1400 --no-echo --timeout 100",
            msgs.join(" ")
        ))
        .unwrap();
    assert_eq!(rc, 0, "{out}");
    let ours_down = our_udp_link_fails(&mut node, cut);
    join_writers(vec![writer], &node, &k);
    client.close_stdin();
    // The kernel's messages arrive once each, in order, whole.
    let end = Instant::now() + Duration::from_secs(20);
    let got = loop {
        let got: Vec<String> = sink
            .events()
            .into_iter()
            .filter(|l| l.starts_with("RECV "))
            .collect();
        if got.len() >= MSGS || Instant::now() > end {
            break got;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // "len=1400 data=mNN" (the helper pads by repeating the text).
    let heads: Vec<String> = got
        .iter()
        .map(|l| {
            l.split(" len=")
                .nth(1)
                .unwrap_or("")
                .chars()
                .take(13)
                .collect()
        })
        .collect();
    let want: Vec<String> = (0..MSGS).map(|i| format!("1400 data=m{i:02}")).collect();
    assert_eq!(heads, want, "RDM messages received\n{}", diag(&node, &k));
    // The kernel's server received our whole stream, in order: its per-read lengths and
    // hashes match our data cut the same way.
    let end = Instant::now() + Duration::from_secs(30);
    let log = loop {
        let (_, log) = k.exec("cat /tmp/stream.log").unwrap();
        let total: usize = log
            .lines()
            .filter_map(|l| {
                l.split(" len=")
                    .nth(1)?
                    .split(' ')
                    .next()?
                    .parse::<usize>()
                    .ok()
            })
            .sum();
        if total >= TOTAL || Instant::now() > end {
            break log;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let mut off = 0;
    for l in log.lines().filter(|l| l.starts_with("RECV ")) {
        let field = |name: &str| -> &str {
            l.split(&format!(" {name}="))
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .unwrap_or_else(|| panic!("no {name} in {l}"))
        };
        let len: usize = field("len").parse().expect("len");
        let hash = u32::from_str_radix(field("hash"), 16).expect("hash");
        assert!(off + len <= TOTAL, "kernel received more than we sent");
        assert_eq!(
            hash,
            fnv32(&data[off..off + len]),
            "kernel's read at offset {off} ({len} bytes) differs"
        );
        off += len;
    }
    assert_eq!(
        off,
        TOTAL,
        "kernel received {off} bytes\n{}",
        diag(&node, &k)
    );
    node_stayed_up(&mut node, &k);
    let (_, stat, _) = node.ctl(&["node", "stat"]);
    eprintln!("tunnel fragments with the kernel: our UDP link down {ours_down:?}; ours: {stat}");
    assert!(
        counter(&stat, "fragmented") >= 1,
        "no tunnel fragments to the kernel: {stat}"
    );
    assert!(
        counter(&stat, "reassembled") >= 1,
        "no tunnel fragments from the kernel: {stat}"
    );
    assert_eq!(counter(&stat, "reasm_errors"), 0, "{stat}");
}
