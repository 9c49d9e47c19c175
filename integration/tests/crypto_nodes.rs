//! Keys on `tipc-node` processes on 127.0.0.1: `--key-file` (a file others can read is
//! refused at start), and `tipcctl node set key` / `node flush key` on a running pair: the link
//! stays up while both sides go from clear to sealed and back, and `node stat` shows it.

use std::time::Duration;
use tipc_integration::node_proc::{bin_path, NodeProc};

const KEY: &str = "this_is_a_key16_salt";

fn key_file(tag: &str, mode: u32) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = std::env::temp_dir().join(format!("tipc-cn-{}-{tag}.key", std::process::id()));
    std::fs::write(&p, format!("{KEY}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    p
}

fn crypto_line(n: &NodeProc) -> String {
    let (ok, out, err) = n.ctl(&["node", "stat"]);
    assert!(ok, "{err}");
    out.lines()
        .find(|l| l.starts_with("crypto: "))
        .unwrap_or_else(|| panic!("no crypto line: {out}"))
        .to_string()
}

fn counter(line: &str, name: &str) -> u64 {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}

#[test]
fn tipc_node_refuses_a_key_file_other_users_can_read() {
    let f = key_file("open", 0o644);
    let port = tipc_integration::cluster::free_udp_ports(1)[0];
    let out = std::process::Command::new(bin_path("tipc-node"))
        .args(["--id", "kf", "--udp", &format!("127.0.0.1:{port}")])
        .arg("--key-file")
        .arg(&f)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started with an open key file");
    assert!(err.contains("readable by other users"), "{err}");
    let _ = std::fs::remove_file(f);
}

#[test]
fn tipcctl_set_key_on_both_nodes_keeps_link_up_and_flush_returns_to_clear() {
    let (mut a, mut b) = NodeProc::loopback_pair("ska", "skb");
    assert!(crypto_line(&a).starts_with("crypto: off"));
    let f = key_file("ctl", 0o600);
    for n in [&a, &b] {
        let (ok, out, err) = n.ctl(&["node", "set", "key", "file", f.to_str().unwrap()]);
        assert!(ok, "{out}{err}");
    }
    let (ok, _, err) = a.ctl(&["node", "set", "key", "0x1234"]);
    assert!(!ok && err.contains("key"), "a bad key was taken: {err}");
    // Probes and STATEs cross the sealed link for two seconds.
    std::thread::sleep(Duration::from_secs(2));
    let la = crypto_line(&a);
    assert!(la.starts_with("crypto: on"), "{la}");
    assert!(
        counter(&la, "opened") > 0 && counter(&la, "sealed") > 0,
        "{la}"
    );
    for n in [&a, &b] {
        let (ok, _, err) = n.ctl(&["node", "flush", "key"]);
        assert!(ok, "{err}");
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(crypto_line(&a).starts_with("crypto: off"));
    let (ok, out, _) = a.ctl(&["link", "list"]);
    assert!(ok && out.contains("ska:udp0-skb:udp0: up"), "{out}");
    a.drain();
    b.drain();
    assert!(
        !a.seen
            .iter()
            .chain(b.seen.iter())
            .any(|l| l.starts_with("link down")),
        "the link went down: {:?} {:?}",
        a.seen,
        b.seen
    );
    let _ = std::fs::remove_file(f);
}
