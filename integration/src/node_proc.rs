//! Run the `tipc-node` binary as a child process (optionally inside a network namespace), read
//! its event lines (`link up NAME`, `link down NAME REASON`, `node up ADDR`...) with arrival
//! times, and drive `tipcctl` against its control socket.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Path of a workspace binary (`tipc-node`, `tipcctl`) next to the running test's directory.
/// `cargo test --workspace --all-targets` builds them; panics with a hint if missing.
pub fn bin_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe
        .parent()
        .and_then(|d| {
            if d.ends_with("deps") {
                d.parent()
            } else {
                Some(d)
            }
        })
        .expect("target dir")
        .to_path_buf();
    let p = dir.join(name);
    assert!(
        p.is_file(),
        "{} not built: run `cargo build --bins` (scripts/test builds every target)",
        p.display()
    );
    p
}

/// A running `tipc-node`.
pub struct NodeProc {
    /// The child process.
    pub child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    /// Every stdout line read so far.
    pub seen: Vec<String>,
    /// The control socket path.
    pub control: PathBuf,
}

impl NodeProc {
    /// Start a node `id` with one UDP bearer on 127.0.0.1:`port`, discovering the nodes on
    /// `peers` (unicast discovery).
    pub fn loopback(id: &str, port: u16, peers: &[u16]) -> NodeProc {
        let mut args = vec![
            "--id".to_string(),
            id.to_string(),
            "--udp".to_string(),
            format!("127.0.0.1:{port}"),
        ];
        for p in peers {
            args.push("--udp-peer".into());
            args.push(format!("127.0.0.1:{p}"));
        }
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        NodeProc::start(id, &a, None)
    }

    /// Two loopback nodes that see each other up (panics after 5 s).
    pub fn loopback_pair(a: &str, b: &str) -> (NodeProc, NodeProc) {
        let p = crate::cluster::free_udp_ports(2);
        let mut na = NodeProc::loopback(a, p[0], &[p[1]]);
        let mut nb = NodeProc::loopback(b, p[1], &[p[0]]);
        na.wait_line("node up", Duration::from_secs(5))
            .expect("node up on the first node");
        nb.wait_line("node up", Duration::from_secs(5))
            .expect("node up on the second node");
        (na, nb)
    }

    /// Start `tipc-node ARGS --control <tmp>` (inside `netns` if given).
    pub fn start(tag: &str, args: &[&str], netns: Option<&str>) -> NodeProc {
        let control =
            std::env::temp_dir().join(format!("tipc-it-{}-{tag}.sock", std::process::id()));
        let _ = std::fs::remove_file(&control);
        let node = bin_path("tipc-node");
        let cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(&node);
                c
            }
            None => Command::new(&node),
        };
        NodeProc::spawn(cmd, args, control)
    }

    /// Start `sh -c 'PRELUDE; exec tipc-node ARGS --control CONTROL'`: the node after shell
    /// commands that shape its process (`ulimit -n 64`, `umask 000`); the child is the node
    /// itself after the `exec`. `control` is not removed first.
    pub fn start_after(prelude: &str, args: &[&str], control: PathBuf) -> NodeProc {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("{prelude}; exec \"$0\" \"$@\""))
            .arg(bin_path("tipc-node"));
        NodeProc::spawn(cmd, args, control)
    }

    fn spawn(mut cmd: Command, args: &[&str], control: PathBuf) -> NodeProc {
        cmd.args(args)
            .arg("--control")
            .arg(&control)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawn tipc-node");
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if tx.send((Instant::now(), l)).is_err() {
                    break;
                }
            }
        });
        NodeProc {
            child,
            lines: rx,
            seen: Vec::new(),
            control,
        }
    }

    /// Wait for a stdout line starting with `prefix`; returns its arrival time.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Option<Instant> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok((t, l)) => {
                    self.seen.push(l.clone());
                    if l.starts_with(prefix) {
                        return Some(t);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Read lines that arrived so far without waiting.
    pub fn drain(&mut self) {
        while let Ok((_, l)) = self.lines.try_recv() {
            self.seen.push(l);
        }
    }

    /// Wait up to `timeout` until the node's binding table (`tipcctl nametable show`) holds a
    /// binding of service type `ty`; whether it did.
    pub fn wait_binding(&self, ty: u32, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let prefix = format!("{ty} ");
        loop {
            let (_, table, _) = self.ctl(&["nametable", "show"]);
            if table.lines().any(|l| l.starts_with(&prefix)) {
                return true;
            }
            if Instant::now() > end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Run `tipcctl --node <control> ARGS`: (success, stdout, stderr).
    pub fn ctl(&self, args: &[&str]) -> (bool, String, String) {
        let o = Command::new(bin_path("tipcctl"))
            .arg("--node")
            .arg(&self.control)
            .args(args)
            .output()
            .expect("run tipcctl");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    /// SIGKILL the node (through `ip netns exec`, the child is the node itself after exec).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM the node and wait for it to exit.
    pub fn terminate(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.control);
    }
}
