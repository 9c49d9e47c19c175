//! `tipc-node`: run a userspace TIPC node.
//!
//! Prints one line per transport event on stdout (`link up NAME`, `link down NAME REASON`,
//! `node up ADDR`, `node down ADDR`) and serves `tipcctl` on `--control PATH` (mode 0600: root
//! and the node's user; with `--control-group GROUP`, 0660 and that group's members too).
//!
//! A startup error (bad flags, a bearer or the control socket that cannot be set up) ends the
//! process with one `tipc-node: ...` line on stderr and exit status 2 (configuration) or 1.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use tipc_runtime::{ctl, Node, NodeConfig, NodeEvent};

/// Run a userspace TIPC node that interoperates with Linux kernel TIPC nodes.
#[derive(Parser, Debug)]
#[command(name = "tipc-node", version)]
struct Args {
    /// Node identity (1..16 bytes of text); default: from the first bearer's address.
    #[arg(long = "id", value_name = "IDENTITY")]
    id: Option<String>,
    /// Network (cluster) id, 1..9999 [default: 4711].
    #[arg(long = "net-id", value_name = "N")]
    net_id: Option<u32>,
    /// Enable a UDP bearer on IP or IP:PORT (port 6118 by default). Repeatable.
    #[arg(long = "udp", value_name = "IP[:PORT]")]
    udp: Vec<String>,
    /// Discover by unicast to this peer instead of multicast (the kernel's remoteip). Repeatable.
    #[arg(long = "udp-peer", value_name = "IP[:PORT]")]
    udp_peer: Vec<String>,
    /// Enable an Ethernet bearer on this interface. Repeatable.
    #[arg(long = "eth", value_name = "IFNAME")]
    eth: Vec<String>,
    /// Control socket for tipcctl, created with mode 0600 (put it in a private directory,
    /// e.g. $XDG_RUNTIME_DIR). An existing path is replaced only if it is a stale socket.
    #[arg(long = "control", value_name = "PATH")]
    control: Option<PathBuf>,
    /// Let the members of GROUP (a name or a gid) use the control socket too (mode 0660).
    #[arg(long = "control-group", value_name = "GROUP")]
    control_group: Option<String>,
    /// Link tolerance in ms (50..30000) [default: 1500].
    #[arg(long = "tolerance", value_name = "MS")]
    tolerance: Option<u32>,
    /// Most peer nodes kept, up or not [default: 4096]: discovery messages from further new
    /// nodes are refused and counted (`tipcctl node stat`).
    #[arg(long = "max-peers", value_name = "N")]
    max_peers: Option<usize>,
    /// Encrypt with the cluster key in FILE (one key as `tipc node set key` takes it: `0x` and
    /// hex digits, or text; 20, 28 or 36 bytes). The file must not be readable by others.
    #[arg(long = "key-file", value_name = "FILE")]
    key_file: Option<PathBuf>,
    /// Set the master key in FILE: session keys are made and exchanged automatically.
    #[arg(long = "master-key-file", value_name = "FILE")]
    master_key_file: Option<PathBuf>,
    /// Read settings from a TOML file (command-line flags override it).
    #[arg(long = "config", value_name = "FILE")]
    config: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = NodeConfig {
        id: args.id,
        net_id: args.net_id,
        udp: args.udp,
        udp_peer: args.udp_peer,
        eth: args.eth,
        control: args.control,
        control_group: args.control_group,
        tolerance_ms: args.tolerance,
        max_peers: args.max_peers,
        key_file: args.key_file,
        master_key_file: args.master_key_file,
        ..Default::default()
    };
    let cfg = match args.config {
        Some(p) => match NodeConfig::from_file(&p) {
            Ok(f) => f.merge(cli),
            Err(e) => {
                eprintln!("tipc-node: {e}");
                return ExitCode::from(2);
            }
        },
        None => cli,
    };
    if let Err(e) = cfg.validate() {
        eprintln!("tipc-node: {e}");
        return ExitCode::from(2);
    }
    let access = match &cfg.control_group {
        Some(g) => match ctl::Access::with_group(g) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("tipc-node: --control-group {g}: {e}");
                return ExitCode::from(2);
            }
        },
        None => ctl::Access::owner_only(),
    };
    let sys = actix_rt::System::new();
    let code = sys.block_on(run(cfg, access));
    // Leave without tearing the actix System down: on an early error, actors that were
    // spawned but never polled would be started by that teardown outside the runtime, and
    // panic ("there is no reactor running").
    std::process::exit(code.into())
}

async fn run(cfg: NodeConfig, access: ctl::Access) -> u8 {
    // The control socket first: a path that cannot serve stops the node before any bearer
    // talks to the network.
    let control = match &cfg.control {
        Some(p) => match ctl::bind(p, access) {
            Ok(c) => Some(c),
            Err(e) => {
                eprintln!(
                    "tipc-node: cannot serve control socket {}: {e}",
                    p.display()
                );
                return 1;
            }
        },
        None => None,
    };
    let node = match Node::start(&cfg) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("tipc-node: {e}");
            if let Some(c) = control {
                let _ = std::fs::remove_file(c.path());
            }
            return 1;
        }
    };
    if let Some(c) = control {
        let path = c.path().to_path_buf();
        if let Err(e) = c.serve(node.clone()) {
            eprintln!(
                "tipc-node: cannot serve control socket {}: {e}",
                path.display()
            );
            let _ = std::fs::remove_file(&path);
            node.shutdown().await;
            return 1;
        }
    }
    say(format_args!(
        "node {} {:08x} started, bearers: {}",
        node.id(),
        node.addr(),
        ctl::views::bearer_list(&node).trim_end().replace('\n', " ")
    ));
    let mut events = node.events();
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tipc-node: cannot install signal handler: {e}");
            node.shutdown().await;
            if let Some(p) = &cfg.control {
                let _ = std::fs::remove_file(p);
            }
            return 1;
        }
    };
    loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(NodeEvent::LinkUp { name, .. }) => say(format_args!("link up {name}")),
                Ok(NodeEvent::LinkDown { name, reason, .. }) => say(format_args!("link down {name} {reason}")),
                Ok(NodeEvent::NodeUp(a)) => say(format_args!("node up {a:08x}")),
                Ok(NodeEvent::NodeDown(a)) => say(format_args!("node down {a:08x}")),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => break,
            },
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
        }
    }
    node.shutdown().await;
    // Give the bearers' send tasks a moment to put the RESETs on the wire.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    if let Some(p) = &cfg.control {
        let _ = std::fs::remove_file(p);
    }
    say(format_args!("node stopped"));
    0
}

/// One event line on stdout. A node keeps running when nobody reads its stdout any more (a
/// closed pipe is not a reason to stop, unlike `println!`'s panic).
fn say(line: std::fmt::Arguments) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    let _ = writeln!(o, "{line}");
    let _ = o.flush();
}
