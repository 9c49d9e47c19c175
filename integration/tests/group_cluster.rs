//! Communication groups across real `tipc-node` processes on 127.0.0.1, driven by `tipcctl
//! group join` and `tipcctl group send`: mixed-mode traffic in send order with nothing
//! missing or doubled (also with a slow reader, which holds the senders back in bounded
//! memory), member events for a join, a leave and a killed node, and a closed group.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};
use tipc_integration::ctl_proc::{CtlProc, Lines};
use tipc_integration::node_proc::NodeProc;

const G: u32 = 4711;

/// Three nodes that see each other up (panics after 5 s).
fn three_nodes(tag: &str) -> Vec<NodeProc> {
    let p = tipc_integration::cluster::free_udp_ports(3);
    let mut v: Vec<NodeProc> = (0..3)
        .map(|i| {
            let others: Vec<u16> = (0..3).filter(|j| *j != i).map(|j| p[j]).collect();
            NodeProc::loopback(&format!("{tag}{i}"), p[i], &others)
        })
        .collect();
    for n in &mut v {
        for _ in 0..2 {
            n.wait_line("node up", Duration::from_secs(5))
                .expect("node up");
        }
    }
    v
}

/// `group join G:INST` with `extra` flags on `node`, once JOINED; and its socket.
fn join(node: &NodeProc, inst: u32, extra: &[&str], pace: Duration) -> (CtlProc, String) {
    let m = format!("{G}:{inst}");
    let mut args = vec!["group", "join", m.as_str()];
    args.extend_from_slice(extra);
    let mut c = CtlProc::spawn_paced(node, &args, Lines::Stdout, pace);
    let l = c
        .wait_prefix("JOINED ", Duration::from_secs(10))
        .expect("JOINED");
    assert!(
        l.starts_with(&format!("JOINED group={G} member={m} sock=sock:0x")),
        "{l}"
    );
    let sock = l.rsplit("sock=").next().expect("sock").to_string();
    (c, sock)
}

/// One RECV line: (sender socket, mode, action letter, sequence number).
fn parse_recv(l: &str) -> Option<(String, String, char, u32)> {
    let l = l.strip_prefix("RECV ")?;
    let field = |k: &str| {
        l.split(' ')
            .find_map(|w| w.strip_prefix(k))
            .map(str::to_string)
    };
    let member = field("from=")?;
    let mode = field("mode=")?;
    let data = field("data=")?;
    let (a, n) = data.split_once('-')?;
    Some((member, mode, a.chars().next()?, n.parse().ok()?))
}

/// Per sender socket: the (action, seq) it delivered, in delivery order.
fn by_sender(lines: &[String]) -> BTreeMap<String, Vec<(char, u32)>> {
    let mut m: BTreeMap<String, Vec<(char, u32)>> = BTreeMap::new();
    for l in lines {
        if let Some((member, mode, a, n)) = parse_recv(l) {
            let want = match a {
                'b' => "bcast",
                'm' => "mcast",
                _ => "ucast",
            };
            assert_eq!(mode, want, "{l}");
            m.entry(member).or_default().push((a, n));
        }
    }
    m
}

/// Peak resident memory of a process in kB (`VmHWM`).
fn peak_rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Two senders (G:3 on nodes 0 and 1) each send `rounds` × (bcast, mcast 2, anycast 2,
/// ucast to R1) numbered with --seq; receivers R1 = G:1 on node 0, R2 = G:2 on node 1 and
/// R3 = G:2 on node 2 (read at `slow_pace` per line). Checks every receiver got every
/// sender's messages for it in send order, none missing or doubled, and the anycasts split
/// between R2 and R3. Returns the receivers' RECV line counts read when the senders reported
/// SENT and at the end, and the nodes' peak RSS in kB.
fn mixed_traffic(tag: &str, rounds: u32, slow_pace: Duration) -> Traffic {
    let nodes = three_nodes(tag);
    let (mut r1, r1_sock) = join(&nodes[0], 1, &[], Duration::ZERO);
    let (mut r2, _) = join(&nodes[1], 2, &[], Duration::ZERO);
    let (mut r3, _) = join(&nodes[2], 2, &[], slow_pace);
    let rounds_s = rounds.to_string();
    let sender = |n: &NodeProc| {
        let args = [
            "group",
            "send",
            "4711:3",
            "--wait-members",
            "4",
            "--count",
            rounds_s.as_str(),
            "--seq",
            "bcast",
            "b",
            "mcast",
            "2",
            "m",
            "anycast",
            "2",
            "a",
            "ucast",
            r1_sock.as_str(),
            "u",
        ];
        CtlProc::spawn(n, &args, Lines::Stdout)
    };
    let started = Instant::now();
    let mut s1 = sender(&nodes[0]);
    let mut s2 = sender(&nodes[1]);
    let total = 4 * rounds;
    let sent = format!("SENT count={total}");
    let limit = Duration::from_secs(300);
    s1.wait_prefix(&sent, limit).expect("sender 1 SENT");
    s2.wait_prefix(&sent, limit).expect("sender 2 SENT");
    let count = |r: &mut CtlProc| r.events().iter().filter(|l| l.starts_with("RECV ")).count();
    let at_sent = vec![count(&mut r1), count(&mut r2), count(&mut r3)];
    for s in [&mut s1, &mut s2] {
        let (ok, lines) = s.finish(Duration::from_secs(60));
        assert_eq!(ok, Some(true), "sender: {lines:?}");
    }
    // Everything arrives: R1 2 per round per sender, R2 and R3 2 each plus the anycasts.
    let want_r1 = 2 * 2 * rounds as usize;
    let want_r23 = 2 * 2 * 2 * rounds as usize + 2 * rounds as usize;
    let end = Instant::now() + limit;
    while count(&mut r1) < want_r1 || count(&mut r2) + count(&mut r3) < want_r23 {
        assert!(Instant::now() < end, "receivers stalled");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Nothing doubled comes after.
    std::thread::sleep(Duration::from_millis(300));
    let l1 = r1.events();
    let l2 = r2.events();
    let l3 = r3.events();
    let (g1, g2, g3) = (by_sender(&l1), by_sender(&l2), by_sender(&l3));
    let senders: Vec<String> = g1.keys().cloned().collect();
    assert_eq!(senders.len(), 2, "{senders:?}");
    for s in &senders {
        let seqs = |a: char| -> BTreeSet<u32> {
            (0..rounds)
                .map(|r| {
                    4 * r
                        + match a {
                            'b' => 1,
                            'm' => 2,
                            'a' => 3,
                            _ => 4,
                        }
                })
                .collect()
        };
        for (name, g) in [("R1", &g1), ("R2", &g2), ("R3", &g3)] {
            let v = g.get(s).cloned().unwrap_or_default();
            assert!(
                v.windows(2).all(|w| w[0].1 < w[1].1),
                "{name}: {s}'s messages out of order or doubled"
            );
        }
        let of = |g: &BTreeMap<String, Vec<(char, u32)>>, a: char| -> BTreeSet<u32> {
            g.get(s)
                .map(|v| v.iter().filter(|x| x.0 == a).map(|x| x.1).collect())
                .unwrap_or_default()
        };
        assert_eq!(of(&g1, 'b'), seqs('b'), "R1 broadcasts from {s}");
        assert_eq!(of(&g1, 'u'), seqs('u'), "R1 unicasts from {s}");
        for (name, g) in [("R2", &g2), ("R3", &g3)] {
            assert_eq!(of(g, 'b'), seqs('b'), "{name} broadcasts from {s}");
            assert_eq!(of(g, 'm'), seqs('m'), "{name} multicasts from {s}");
            assert!(of(g, 'u').is_empty() && of(g, 'a').len() < rounds as usize + 1);
        }
        let a2 = of(&g2, 'a');
        let a3 = of(&g3, 'a');
        assert!(a2.is_disjoint(&a3), "an anycast from {s} went to both");
        assert_eq!(&a2 | &a3, seqs('a'), "anycasts from {s}");
        assert!(!a2.is_empty() && !a3.is_empty(), "round robin from {s}");
    }
    let rss: Vec<u64> = nodes.iter().map(|n| peak_rss_kb(n.child.id())).collect();
    let at_end = vec![count(&mut r1), count(&mut r2), count(&mut r3)];
    eprintln!(
        "{tag}: {} messages sent; RECV lines at SENT {at_sent:?}, at the end {at_end:?}; \
         node peak RSS {rss:?} kB; {:.1} s",
        2 * total,
        started.elapsed().as_secs_f64()
    );
    Traffic {
        at_sent,
        at_end,
        rss,
    }
}

struct Traffic {
    at_sent: Vec<usize>,
    at_end: Vec<usize>,
    rss: Vec<u64>,
}

/// Peak RSS bound of a node process in these tests, in kB (measured about 12 MB).
const NODE_RSS_BOUND_KB: u64 = 32 * 1024;

#[test]
fn group_of_five_members_on_three_node_processes_delivers_100000_mixed_messages_in_send_order() {
    // 2 senders × 12,500 rounds × 4 actions = 100,000 messages.
    let t = mixed_traffic("gm", 12_500, Duration::ZERO);
    for (i, r) in t.rss.iter().enumerate() {
        assert!(*r < NODE_RSS_BOUND_KB, "node {i} peaked at {r} kB");
    }
}

/// What may be under way to a reader when its senders finish: both senders' full windows
/// (2 × 780 one-block messages), the node's side of the control socket and the pipe to the
/// test (about 90 bytes a line: some 3,000 lines).
const IN_FLIGHT_LINES: usize = 6_000;

#[test]
fn group_reader_ten_times_slower_holds_the_senders_back_in_bounded_memory() {
    // R3 reads one line per 500 µs (2,000 lines/s; unpaced readers take well over 20,000/s).
    let t = mixed_traffic("gs", 5_000, Duration::from_micros(500));
    // About 25,000 lines for R3. Unheld, the senders would be done after some 3 s with R3
    // at about 6,000.
    let (sent, end) = (t.at_sent[2], t.at_end[2]);
    assert!(
        end - sent <= IN_FLIGHT_LINES,
        "R3 had read {sent} of {end} when the senders were done"
    );
    for (i, r) in t.rss.iter().enumerate() {
        assert!(*r < NODE_RSS_BOUND_KB, "node {i} peaked at {r} kB");
    }
}

#[test]
fn group_member_events_for_a_join_a_leave_and_a_killed_node() {
    let mut nodes = three_nodes("ge");
    let (mut r, _) = join(&nodes[0], 1, &["--events"], Duration::ZERO);
    // A join on node 1, then its leave (the client goes away).
    let (mut b, b_sock) = join(&nodes[1], 2, &[], Duration::ZERO);
    let up = format!("MEMBER_UP member={G}:2 sock={b_sock}");
    r.wait_prefix(&up, Duration::from_secs(5)).expect(&up);
    drop(b.child.kill());
    let _ = b.child.wait();
    let down = format!("MEMBER_DOWN member={G}:2 sock={b_sock}");
    r.wait_prefix(&down, Duration::from_secs(5)).expect(&down);
    // A member on node 2, then node 2 is killed.
    let (_c, c_sock) = join(&nodes[2], 3, &[], Duration::ZERO);
    let up = format!("MEMBER_UP member={G}:3 sock={c_sock}");
    r.wait_prefix(&up, Duration::from_secs(5)).expect(&up);
    std::thread::sleep(Duration::from_millis(300));
    let killed = Instant::now();
    nodes[2].kill();
    let down = format!("MEMBER_DOWN member={G}:3 sock={c_sock}");
    let (t, _) = r
        .wait(|l| l.starts_with(&down), Duration::from_secs(5))
        .expect(&down);
    let took = t - killed;
    assert!(
        took <= Duration::from_millis(1650),
        "MEMBER_DOWN {took:?} after SIGKILL (tolerance 1.5 s + 10 %)"
    );
}

#[test]
fn group_drops_a_message_from_a_socket_that_is_not_a_member() {
    let nodes = three_nodes("gc");
    let (mut r, r_sock) = join(&nodes[0], 1, &[], Duration::ZERO);
    let (ok, _, err) = nodes[1].ctl(&["send", "rdm", "--socket", &r_sock, "intruder"]);
    assert!(ok, "{err}");
    let (ok, _, err) = nodes[1].ctl(&["send", "rdm", "--service", "4711:1", "intruder"]);
    assert!(ok, "{err}");
    let (ok, out, err) = nodes[2].ctl(&[
        "group",
        "send",
        "4711:9",
        "--wait-members",
        "1",
        "ucast",
        &r_sock,
        "member",
    ]);
    assert!(ok && out.contains("SENT count=1"), "{out} {err}");
    let l = r
        .wait_prefix("RECV ", Duration::from_secs(5))
        .expect("the member's message");
    assert!(l.ends_with("data=member"), "{l}");
    std::thread::sleep(Duration::from_millis(300));
    let recvs: Vec<String> = r
        .events()
        .into_iter()
        .filter(|l| l.starts_with("RECV "))
        .collect();
    assert_eq!(recvs.len(), 1, "{recvs:?}");
    // The two outsiders' messages are counted where they were dropped.
    let (ok, out, err) = nodes[0].ctl(&["node", "stat"]);
    assert!(ok, "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("group dropped: "))
        .unwrap_or_else(|| panic!("no group line in {out}"));
    let field = |k: &str| -> u64 {
        line.split(' ')
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{k} in {line}"))
    };
    assert_eq!(field("non_member:") + field("malformed:"), 2, "{line}");
}

#[test]
fn group_join_flags_echo_loopback_node_scope_count_and_timeout() {
    let nodes = three_nodes("gf");
    // --loopback with --events: the member sees itself join; --echo answers each message.
    let (mut r, r_sock) = join(
        &nodes[0],
        1,
        &["--events", "--loopback", "--echo", "--count", "2"],
        Duration::ZERO,
    );
    let own = format!("MEMBER_UP member={G}:1 sock={r_sock}");
    r.wait_prefix(&own, Duration::from_secs(5)).expect(&own);
    let (ok, out, err) = nodes[1].ctl(&[
        "group",
        "send",
        "4711:2",
        "--wait-members",
        "1",
        "ucast",
        &r_sock,
        "one",
        "bcast",
        "two",
    ]);
    assert!(ok && out.contains("SENT count=2"), "{out} {err}");
    let (status, lines) = r.finish(Duration::from_secs(5));
    assert_eq!(status, Some(true), "--count 2 ends the command: {lines:?}");
    let data: Vec<&String> = lines.iter().filter(|l| l.starts_with("RECV ")).collect();
    assert!(data[0].contains("mode=ucast len=3 data=one"), "{data:?}");
    assert!(data[1].contains("mode=bcast len=3 data=two"), "{data:?}");
    // The echo went back to the sender (which reads and drops it): counted nowhere as a drop.
    let (_, stat, _) = nodes[1].ctl(&["node", "stat"]);
    assert!(
        stat.contains("group dropped: non_member:0 malformed:0"),
        "{stat}"
    );

    // Node scope: a member and a sender on the same node find each other.
    let (mut n, n_sock) = join(
        &nodes[2],
        5,
        &["--scope", "node", "--count", "1", "--timeout", "10000"],
        Duration::ZERO,
    );
    // Its binding is node scope: listed here, not in the other nodes' tables.
    let (_, here, _) = nodes[2].ctl(&["nametable", "show"]);
    let (_, there, _) = nodes[0].ctl(&["nametable", "show"]);
    assert!(
        !there
            .lines()
            .any(|l| l.starts_with("4711 ") && l.contains(" node ")),
        "{there}"
    );
    assert!(
        here.lines()
            .any(|l| l.starts_with("4711       5          5          node")),
        "{here}"
    );

    let (ok, out, err) = nodes[2].ctl(&[
        "group",
        "send",
        "4711:6",
        "--scope",
        "node",
        "--wait-members",
        "1",
        "ucast",
        &n_sock,
        "x",
    ]);
    assert!(ok && out.contains("SENT count=1"), "{out} {err}");
    let (status, lines) = n.finish(Duration::from_secs(5));
    assert_eq!(status, Some(true), "{lines:?}");

    // --timeout without enough messages: an error after the time.
    let mut t = CtlProc::spawn(
        &nodes[1],
        &[
            "group",
            "join",
            "4711:7",
            "--count",
            "1",
            "--timeout",
            "300",
        ],
        Lines::Stdout,
    );
    let (status, _) = t.finish(Duration::from_secs(5));
    assert_eq!(status, Some(false));
}

#[test]
fn group_bindings_are_listed_by_nametable_show_and_socket_list() {
    let nodes = three_nodes("gl");
    let (_m, sock) = join(&nodes[0], 3, &[], Duration::ZERO);
    let port = sock.rsplit(':').next().unwrap().to_string();
    let (_, table, _) = nodes[0].ctl(&["socket", "list"]);
    let at = table
        .find(&format!("socket {port}"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(table[at..].contains("bound to {4711,3,3}"), "{table}");
    assert!(nodes[1].wait_binding(G, Duration::from_secs(5)));
    let (_, t1, _) = nodes[1].ctl(&["nametable", "show"]);
    let line = t1
        .lines()
        .find(|l| l.starts_with("4711 "))
        .unwrap_or_else(|| panic!("{t1}"));
    let f: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        &f[..5],
        &["4711", "3", "3", "cluster", port.as_str()],
        "{line}"
    );
}

#[test]
fn link_set_broadcast_forces_the_multicast_method_node_wide() {
    let nodes = three_nodes("gb");
    let (ok, out, _) = nodes[0].ctl(&["link", "get", "broadcast"]);
    assert!(ok && out.trim() == "AUTOSELECT ratio:10%", "{out}");
    let (ok, _, err) = nodes[0].ctl(&["link", "set", "broadcast", "REPLICAST"]);
    assert!(ok, "{err}");
    let (_, out, _) = nodes[0].ctl(&["link", "get", "broadcast"]);
    assert_eq!(out.trim(), "REPLICAST");
    let tx = |n: &NodeProc| -> String {
        let (_, s, _) = n.ctl(&["link", "stat", "show", "broadcast-link"]);
        s.lines()
            .find(|l| l.trim().starts_with("TX packets:"))
            .unwrap_or_default()
            .trim()
            .to_string()
    };
    let before = tx(&nodes[0]);
    // Two remote members: the ratio would pick the broadcast link; REPLICAST does not.
    let (_r1, _) = join(&nodes[1], 1, &[], Duration::ZERO);
    let (_r2, _) = join(&nodes[2], 2, &[], Duration::ZERO);
    let send20 = || {
        let args = [
            "group",
            "send",
            "4711:9",
            "--wait-members",
            "2",
            "--count",
            "20",
            "bcast",
            "x",
        ];
        let (ok, out, err) = nodes[0].ctl(&args);
        assert!(ok && out.contains("SENT count=20"), "{out} {err}");
    };
    send20();
    assert_eq!(tx(&nodes[0]), before, "nothing on the broadcast link");
    // AUTOSELECT again: the same broadcasts take the broadcast link.
    let (ok, _, _) = nodes[0].ctl(&["link", "set", "broadcast", "AUTOSELECT"]);
    assert!(ok);
    send20();
    assert_ne!(tx(&nodes[0]), before, "the broadcast link was used");
}
