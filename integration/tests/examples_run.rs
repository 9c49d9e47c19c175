//! The examples of `tipc-examples` (issue 13 item 7) run as a user runs them, each starting
//! its own nodes on loopback: exit 0 within a bound, and the lines that show they did what
//! they say. `scripts/test` builds them (`cargo build --workspace --bins`).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tipc_integration::node_proc::bin_path;

/// Run example `name`, killing it after `limit`; its stdout lines.
fn run(name: &str, limit: Duration) -> Vec<String> {
    let mut child = Command::new(bin_path(name))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{name} did not start ({e}); build it: cargo build --bins"));
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let out = child.wait_with_output().expect("output");
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            assert!(status.success(), "{name} exited {status}:\n{text}");
            return text.lines().map(str::to_string).collect();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{name} ran over {limit:?}:\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn example_rpc_alternates_servers_and_a_killed_servers_ask_fails_node_down_at_once() {
    let out = run("rpc", Duration::from_secs(30));
    let answered: Vec<&String> = out.iter().filter(|l| l.contains("answered by")).collect();
    assert_eq!(answered.len(), 5, "{out:#?}");
    assert!(
        answered[..4].iter().any(|l| l.ends_with("server-1")),
        "{out:#?}"
    );
    assert!(
        answered[..4].iter().any(|l| l.ends_with("server-2")),
        "{out:#?}"
    );
    let kill = out
        .iter()
        .find(|l| l.contains("SIGKILLed"))
        .expect("kill line");
    assert!(kill.ends_with("Err(\"node down\")"), "{kill}");
    let secs: f64 = kill
        .split("ended after ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .expect("seconds");
    assert!(secs <= 1.65, "node down after {secs} s: {kill}");
    let victim = kill.split(' ').next().expect("victim");
    assert!(
        !answered[4].ends_with(victim),
        "the dead server answered: {out:#?}"
    );
}

#[test]
fn example_watchdog_sees_three_workers_and_the_killed_one_go_down_within_tolerance() {
    let out = run("watchdog", Duration::from_secs(30));
    assert_eq!(
        out.iter().filter(|l| l.starts_with("up:")).count(),
        3,
        "{out:#?}"
    );
    let down = out
        .iter()
        .find(|l| l.starts_with("down: worker-2"))
        .expect("down line");
    let secs: f64 = down
        .split(", ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .expect("seconds");
    assert!(secs <= 1.65, "{down}");
}

#[test]
fn example_kv_store_routes_keys_to_their_range_shards_and_reads_them_back() {
    let out = run("kv-store", Duration::from_secs(30));
    let puts: Vec<&String> = out.iter().filter(|l| l.starts_with("put ")).collect();
    let gets: Vec<&String> = out.iter().filter(|l| l.starts_with("get ")).collect();
    assert_eq!((puts.len(), gets.len()), (7, 7), "{out:#?}");
    for l in puts {
        // "put KEY hash H -> shardN {2200, LO..=HI}": H within the shard's range.
        let h: u32 = l
            .split("hash")
            .nth(1)
            .and_then(|s| s.split("->").next())
            .map(str::trim)
            .and_then(|s| s.parse().ok())
            .expect("hash");
        let r = l
            .split(", ")
            .nth(1)
            .and_then(|s| s.strip_suffix('}'))
            .expect("range");
        let (lo, hi) = r.split_once("..=").expect("bounds");
        let (lo, hi): (u32, u32) = (lo.parse().expect("lo"), hi.parse().expect("hi"));
        assert!((lo..=hi).contains(&h), "{l}");
    }
    for shard in ["shard0", "shard1", "shard2"] {
        assert!(
            out.iter().any(|l| l.contains(shard)),
            "{shard} got no key: {out:#?}"
        );
    }
}

#[test]
fn example_chat_members_see_joins_every_line_in_order_and_a_leave_after_the_last_line() {
    let out = run("chat", Duration::from_secs(30));
    assert_eq!(
        out.iter().filter(|l| l.contains(" joined")).count(),
        6,
        "{out:#?}"
    );
    for me in ["alice", "bob", "carol"] {
        for other in ["alice", "bob", "carol"].into_iter().filter(|o| *o != me) {
            let lines: Vec<&String> = out
                .iter()
                .filter(|l| l.starts_with(&format!("[{me}] {other}: ")))
                .collect();
            assert_eq!(lines.len(), 2, "{me} heard {other}: {out:#?}");
            assert!(lines[0].ends_with("hello") && lines[1].ends_with("how are you?"));
        }
    }
    let stop = out
        .iter()
        .position(|l| l == "-- carol stops")
        .expect("stop line");
    for me in ["alice", "bob"] {
        let left = out
            .iter()
            .position(|l| l == &format!("[{me}] member 3 left"))
            .unwrap_or_else(|| panic!("{me} did not see carol leave: {out:#?}"));
        assert!(left > stop);
    }
    assert!(
        out.iter().any(|l| l == "-- 12 lines heard in all"),
        "{out:#?}"
    );
}

#[test]
fn example_demo_tells_the_story_asks_a_group_greeting_and_a_kill_seen_within_tolerance() {
    let out = run("demo", Duration::from_secs(60));
    let has = |needle: &str| out.iter().any(|l| l.contains(needle));
    for needle in [
        "alpha  links up to beta and gamma",
        "alpha  watch: beta's service {4000, 1} is up",
        "alpha  watch: gamma's service {4000, 1} is up",
        "beta   heard alpha: \"hello, everyone\"",
        "gamma  heard alpha: \"hello, everyone\"",
        "alpha  heard beta: \"hi alpha, beta here\"",
        "alpha  heard gamma: \"hi alpha, gamma here\"",
        "alpha  group: gamma left",
        "alpha  done",
    ] {
        assert!(has(needle), "missing {needle:?}: {out:#?}");
    }
    let asks: Vec<&String> = out
        .iter()
        .filter(|l| l.contains("ask {4000, 1}: answered by"))
        .collect();
    assert_eq!(asks.len(), 5, "{out:#?}");
    assert!(
        asks[..4].iter().any(|l| l.contains("by beta"))
            && asks[..4].iter().any(|l| l.contains("by gamma"))
    );
    assert!(asks[4].contains("by beta"), "after the kill: {}", asks[4]);
    let failed = out
        .iter()
        .find(|l| l.contains("the ask on gamma failed after"))
        .expect("ask line");
    assert!(failed.ends_with("node down"), "{failed}");
    let down = out
        .iter()
        .find(|l| l.contains("watch: gamma's service is down ("))
        .expect("down line");
    for (l, after) in [(failed, "failed after "), (down, "is down (")] {
        let secs: f64 = l
            .split(after)
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no seconds in {l}"));
        assert!(secs <= 1.65, "{l}");
    }
}
