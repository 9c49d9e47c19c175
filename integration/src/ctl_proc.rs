//! A running `tipcctl` command (listen, subscribe, connect) whose event lines are collected on
//! a thread with their arrival times, with its stdin piped and, for connection commands, its
//! raw stdout readable.

use crate::node_proc::{bin_path, NodeProc};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Which output stream carries the event lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lines {
    /// Datagram and subscription commands print their lines on stdout.
    Stdout,
    /// Connection commands print events on stderr; stdout carries the data.
    Stderr,
}

/// A `tipcctl` child process. Killed on drop.
pub struct CtlProc {
    /// The child (stdin piped; stdout piped and, with [`Lines::Stderr`], not yet read).
    pub child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    /// Every event line read so far, with its arrival time.
    pub seen: Vec<(Instant, String)>,
    out: Option<mpsc::Receiver<Vec<u8>>>,
    data: Vec<u8>,
}

impl CtlProc {
    /// Run `tipcctl --node <node's control socket> ARGS`.
    pub fn spawn(node: &NodeProc, args: &[&str], lines: Lines) -> CtlProc {
        CtlProc::spawn_paced(node, args, lines, Duration::ZERO)
    }

    /// [`CtlProc::spawn`], reading its event lines no faster than one per `pace` (a slow
    /// consumer: the pipe, then the control socket fill and hold the node's side back).
    pub fn spawn_paced(node: &NodeProc, args: &[&str], lines: Lines, pace: Duration) -> CtlProc {
        let mut child = Command::new(bin_path("tipcctl"))
            .arg("--node")
            .arg(&node.control)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(match lines {
                Lines::Stdout => Stdio::inherit(),
                Lines::Stderr => Stdio::piped(),
            })
            .spawn()
            .expect("spawn tipcctl");
        let src: Box<dyn Read + Send> = match lines {
            Lines::Stdout => Box::new(child.stdout.take().expect("stdout")),
            Lines::Stderr => Box::new(child.stderr.take().expect("stderr")),
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(src).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), l)).is_err() {
                    break;
                }
                if !pace.is_zero() {
                    std::thread::sleep(pace);
                }
            }
        });
        CtlProc {
            child,
            lines: rx,
            seen: Vec::new(),
            out: None,
            data: Vec::new(),
        }
    }

    /// The first event line (seen before or arriving within `timeout`) that satisfies `pred`,
    /// with its arrival time.
    pub fn wait(
        &mut self,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> Option<(Instant, String)> {
        if let Some(x) = self.seen.iter().find(|(_, l)| pred(l)) {
            return Some(x.clone());
        }
        let end = Instant::now() + timeout;
        while let Ok((t, l)) = self
            .lines
            .recv_timeout(end.saturating_duration_since(Instant::now()))
        {
            self.seen.push((t, l.clone()));
            if pred(&l) {
                return Some((t, l));
            }
        }
        None
    }

    /// [`CtlProc::wait`] for a line starting with `prefix`; the line.
    pub fn wait_prefix(&mut self, prefix: &str, timeout: Duration) -> Option<String> {
        self.wait(|l| l.starts_with(prefix), timeout)
            .map(|(_, l)| l)
    }

    /// `tipcctl connect --service SERVICE --stream --expect EXPECT` on `node`, once connected
    /// (panics after 20 s), its stdout drained from the start (a full pipe would stall the
    /// connection; [`CtlProc::read`] returns what arrived).
    pub fn connect_stream(node: &NodeProc, service: &str, expect: usize) -> CtlProc {
        let expect = expect.to_string();
        let args = [
            "connect",
            "--service",
            service,
            "--stream",
            "--expect",
            &expect,
        ];
        let mut c = CtlProc::spawn(node, &args, Lines::Stderr);
        c.wait_prefix("CONNECTED ", Duration::from_secs(20))
            .expect("connected");
        c.read(0, Duration::ZERO);
        c
    }

    /// A stream connection between two nodes through tipcctl: `listen stream SERVICE --count 1`
    /// on `server` (its stdout: what arrives), then `connect --service SERVICE --stream
    /// --linger 0` on `client` (its stdin: what to send; at end of input it shuts down).
    /// Returns (listener, client) once connected; panics if that takes over 10 s.
    pub fn stream_pair(client: &NodeProc, server: &NodeProc, service: &str) -> (CtlProc, CtlProc) {
        let mut l = CtlProc::spawn(
            server,
            &["listen", "stream", service, "--count", "1"],
            Lines::Stderr,
        );
        l.wait_prefix("READY sock=", Duration::from_secs(5))
            .expect("listener ready");
        // The binding must have reached the client's node, or the connect finds no service.
        let ty: u32 = service
            .split(':')
            .next()
            .and_then(|t| t.parse().ok())
            .expect("TYPE:INST");
        assert!(
            client.wait_binding(ty, Duration::from_secs(10)),
            "binding {service} never reached the client's node"
        );
        let mut c = CtlProc::spawn(
            client,
            &["connect", "--service", service, "--stream", "--linger", "0"],
            Lines::Stderr,
        );
        c.wait_prefix("CONNECTED ", Duration::from_secs(10))
            .expect("connected");
        (l, c)
    }

    /// Every event line so far (after collecting what has arrived).
    pub fn events(&mut self) -> Vec<String> {
        while let Ok(x) = self.lines.try_recv() {
            self.seen.push(x);
        }
        self.seen.iter().map(|(_, l)| l.clone()).collect()
    }

    /// Raw stdout ([`Lines::Stderr`] commands): wait until `n` bytes have arrived in all (or
    /// `timeout` passed); everything received so far.
    pub fn read(&mut self, n: usize, timeout: Duration) -> &[u8] {
        if self.out.is_none() {
            let mut stdout = self.child.stdout.take().expect("stdout not taken");
            let (tx, rx) = mpsc::channel();
            std::thread::spawn(move || {
                let mut b = vec![0u8; 65536];
                while let Ok(n) = stdout.read(&mut b) {
                    if n == 0 || tx.send(b[..n].to_vec()).is_err() {
                        break;
                    }
                }
            });
            self.out = Some(rx);
        }
        let end = Instant::now() + timeout;
        while self.data.len() < n {
            let Some(rx) = &self.out else { break };
            match rx.recv_timeout(end.saturating_duration_since(Instant::now())) {
                Ok(d) => self.data.extend_from_slice(&d),
                Err(_) => break,
            }
        }
        &self.data
    }

    /// Write to its stdin.
    pub fn write(&mut self, d: &[u8]) {
        self.child
            .stdin
            .as_mut()
            .expect("stdin open")
            .write_all(d)
            .expect("write tipcctl stdin");
    }

    /// Close its stdin (end of input).
    pub fn close_stdin(&mut self) {
        drop(self.child.stdin.take());
    }

    /// Wait up to `timeout` for it to exit: `Some(success)`, or `None` if still running; and
    /// every event line.
    pub fn finish(&mut self, timeout: Duration) -> (Option<bool>, Vec<String>) {
        let end = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().expect("try_wait") {
                break Some(s.success());
            }
            if Instant::now() > end {
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        // The line reader may still hold the last lines.
        std::thread::sleep(Duration::from_millis(50));
        (status, self.events())
    }
}

impl Drop for CtlProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
