//! `tipcctl`: inspect a running `tipc-node`, in the style of iproute2's `tipc`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tipc_runtime::control::{self, Request};
use tipc_runtime::dgram::{parse_binding, parse_socket, DgramDest};

/// Inspect a userspace TIPC node through its control socket.
#[derive(Parser, Debug)]
#[command(name = "tipcctl", version)]
struct Args {
    /// The node's control socket (tipc-node --control PATH).
    #[arg(long = "node", value_name = "PATH", env = "TIPC_NODE")]
    node: PathBuf,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Nodes.
    Node {
        #[command(subcommand)]
        cmd: NodeCmd,
    },
    /// Links.
    Link {
        #[command(subcommand)]
        cmd: LinkCmd,
    },
    /// Bearers.
    Bearer {
        #[command(subcommand)]
        cmd: BearerCmd,
    },
    /// The binding table.
    Nametable {
        #[command(subcommand)]
        cmd: NametableCmd,
    },
    /// Local sockets.
    Socket {
        #[command(subcommand)]
        cmd: SocketCmd,
    },
    /// Bind a socket and print what arrives: `READY sock:0xNODE:PORT`, then one
    /// `RECV from=sock:0xNODE:PORT len=N data=TEXT` line per message.
    Listen {
        #[command(subcommand)]
        kind: ListenKind,
    },
    /// Send messages: prints `SENT count=N`, then `REPLY from=... len=N data=TEXT` or
    /// `RETURNED err=NAME orig_dst=... len=N` per reply waited for.
    Send {
        #[command(subcommand)]
        kind: SendKind,
    },
    /// Track a service range: one line per PUBLISHED / WITHDRAWN / TIMEOUT event.
    Subscribe {
        /// TYPE:LOWER:UPPER (or TYPE:INST).
        range: String,
        /// One event per range object (TIPC_SUB_SERVICE) instead of per binding.
        #[arg(long)]
        service: bool,
    },
}

#[derive(Subcommand, Debug)]
enum SocketCmd {
    /// List local sockets and their bindings.
    List,
}

#[derive(Subcommand, Debug)]
enum ListenKind {
    /// A reliable datagram (RDM) socket bound to every BINDING (TYPE:INST or TYPE:LOWER:UPPER).
    Rdm {
        /// Service addresses or ranges to bind.
        #[arg(required = true)]
        bindings: Vec<String>,
        /// Send every message back to its sender.
        #[arg(long)]
        echo: bool,
        /// Exit after N messages.
        #[arg(long)]
        count: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
enum SendKind {
    /// Reliable datagrams to a service (anycast), a range (multicast) or a socket.
    Rdm {
        /// Anycast to TYPE:INST.
        #[arg(long, group = "dest", value_name = "T:I")]
        service: Option<String>,
        /// Multicast to TYPE:LOWER:UPPER.
        #[arg(long, group = "dest", value_name = "T:L:U")]
        range: Option<String>,
        /// Unicast to NODE:PORT (node in hex).
        #[arg(long, group = "dest", value_name = "NODE:PORT")]
        socket: Option<String>,
        /// Messages to send.
        #[arg(long, default_value_t = 1)]
        count: u64,
        /// Pad (with '.') or cut the data to BYTES.
        #[arg(long, value_name = "BYTES")]
        size: Option<usize>,
        /// Ask for rejected messages back (TIPC_DEST_DROPPABLE off).
        #[arg(long)]
        returnable: bool,
        /// Wait for N replies or returned messages.
        #[arg(long, default_value_t = 0, value_name = "N")]
        wait_replies: u64,
        /// How long to wait for them, in ms.
        #[arg(long, default_value_t = 3000, value_name = "MS")]
        timeout: u64,
        /// The data (text).
        #[arg(default_value = "")]
        data: String,
    },
}

#[derive(Subcommand, Debug)]
enum NametableCmd {
    /// Show every binding: type, lower, upper, scope, port, node.
    Show,
}

#[derive(Subcommand, Debug)]
enum NodeCmd {
    /// List nodes: identity, hash (address), state.
    List,
}

#[derive(Subcommand, Debug)]
enum LinkCmd {
    /// List links: `NAME: up|down`.
    List,
    /// Link statistics.
    Stat {
        #[command(subcommand)]
        cmd: StatCmd,
    },
}

#[derive(Subcommand, Debug)]
enum StatCmd {
    /// Show statistics of every link, or of LINK.
    Show {
        /// Link name.
        link: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
enum BearerCmd {
    /// List bearers.
    List,
}

fn usage(msg: &str) -> ExitCode {
    eprintln!("tipcctl: {msg}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let req = match args.cmd {
        Cmd::Node { cmd: NodeCmd::List } => Request::NodeList,
        Cmd::Link { cmd: LinkCmd::List } => Request::LinkList,
        Cmd::Link {
            cmd: LinkCmd::Stat {
                cmd: StatCmd::Show { link },
            },
        } => Request::LinkStat(link),
        Cmd::Bearer {
            cmd: BearerCmd::List,
        } => Request::BearerList,
        Cmd::Nametable {
            cmd: NametableCmd::Show,
        } => Request::NameTable,
        Cmd::Socket {
            cmd: SocketCmd::List,
        } => Request::SocketList,
        Cmd::Listen {
            kind:
                ListenKind::Rdm {
                    bindings,
                    echo,
                    count,
                },
        } => {
            let mut v = Vec::new();
            for b in &bindings {
                match parse_binding(b) {
                    Ok(r) => v.push((r.type_, r.lower, r.upper)),
                    Err(e) => return usage(&e),
                }
            }
            Request::ListenRdm {
                bindings: v,
                echo,
                count,
            }
        }
        Cmd::Send {
            kind:
                SendKind::Rdm {
                    service,
                    range,
                    socket,
                    count,
                    size,
                    returnable,
                    wait_replies,
                    timeout,
                    data,
                },
        } => {
            let dest = if let Some(s) = service {
                match parse_binding(&s) {
                    Ok(r) if r.lower == r.upper => DgramDest::Service(r.type_, r.lower),
                    Ok(_) => return usage("--service takes TYPE:INST"),
                    Err(e) => return usage(&e),
                }
            } else if let Some(s) = range {
                match parse_binding(&s) {
                    Ok(r) => DgramDest::Range(r.type_, r.lower, r.upper),
                    Err(e) => return usage(&e),
                }
            } else if let Some(s) = socket {
                match parse_socket(&s) {
                    Ok((n, p)) => DgramDest::Socket(n, p),
                    Err(e) => return usage(&e),
                }
            } else {
                return usage("send rdm needs one of --service, --range, --socket");
            };
            Request::SendRdm {
                dest,
                count,
                size,
                returnable,
                wait_replies,
                timeout_ms: timeout,
                data: data.into_bytes(),
            }
        }
        Cmd::Subscribe { range, service } => match parse_binding(&range) {
            Ok(r) => Request::Subscribe {
                range: (r.type_, r.lower, r.upper),
                service,
            },
            Err(e) => return usage(&e),
        },
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tipcctl: {e}");
            return ExitCode::from(1);
        }
    };
    let print = |l: &str| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(l.as_bytes());
        let _ = out.flush();
    };
    match rt.block_on(control::request(&args.node, &req, print)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            eprintln!("tipcctl: {e}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("tipcctl: {e}");
            ExitCode::from(1)
        }
    }
}
