//! `tipcctl`: inspect a running `tipc-node`, in the style of iproute2's `tipc`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tipc_runtime::ctl::fmt::{parse_binding, parse_group_actions, parse_socket};
use tipc_runtime::ctl::{
    self, BcastMode, ConnTarget, DgramDest, GroupSendReq, Kind, Linger, Request,
};

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
    /// Open a connection and pipe stdin to it and it to stdout (netcat-like). Event lines
    /// (`CONNECTED sock=... peer=... kind=...`) go to stderr. A seqpacket connection sends one
    /// message per input line. At end of input the connection stays open for what the peer
    /// sends until the peer ends it, --expect or --linger says stop (then it is shut down).
    /// Exit status 0 on an orderly end, 1 with the reason if the connection broke.
    Connect {
        /// Connect to the service TYPE:INST.
        #[arg(long, group = "dest", value_name = "T:I")]
        service: Option<String>,
        /// Connect to the socket NODE:PORT (node in hex).
        #[arg(long, group = "dest", value_name = "NODE:PORT")]
        socket: Option<String>,
        /// A byte stream (SOCK_STREAM; the default).
        #[arg(long, group = "kind")]
        stream: bool,
        /// Messages (SOCK_SEQPACKET): one per input line.
        #[arg(long, group = "kind")]
        seqpacket: bool,
        /// Set the connection up with the first data ("0-RTT": no empty SYN first).
        #[arg(long)]
        implicit: bool,
        /// No Nagle on a stream's small writes (TIPC_NODELAY; by default they may wait for
        /// the peer's ack and leave together).
        #[arg(long)]
        nodelay: bool,
        /// After end of input, shut down once BYTES have been received in all.
        #[arg(long, value_name = "BYTES")]
        expect: Option<u64>,
        /// After end of input, shut down after MS ms without data (0: at once).
        #[arg(long, value_name = "MS")]
        linger: Option<u64>,
    },
    /// Communication groups: join and print what arrives, or join and send.
    Group {
        #[command(subcommand)]
        cmd: GroupCmd,
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
enum GroupCmd {
    /// Join group T as member T:I and print what arrives: `JOINED group=T member=T:I
    /// sock=sock:0xNODE:PORT`, then `RECV from=sock:0xNODE:PORT member=T:I
    /// mode=bcast|mcast|ucast len=N data=TEXT` per message and `MEMBER_UP|MEMBER_DOWN
    /// member=T:I sock=...` per member event (--events).
    Join {
        /// Group type and member instance, T:I.
        member: String,
        /// Print member events.
        #[arg(long)]
        events: bool,
        /// Receive our own broadcasts, multicasts and anycasts.
        #[arg(long)]
        loopback: bool,
        /// Answer each message with a unicast `echo:TEXT`.
        #[arg(long)]
        echo: bool,
        /// node or cluster (the default).
        #[arg(long, default_value = "cluster", value_parser = ["node", "cluster"])]
        scope: String,
        /// Exit after N messages.
        #[arg(long)]
        count: Option<u64>,
        /// Exit after MS ms (an error if --count messages did not come by then).
        #[arg(long, value_name = "MS")]
        timeout: Option<u64>,
    },
    /// Join group T as member T:I, wait for N other members, then perform the ACTIONs in
    /// order, the whole list --count times: `bcast DATA`, `mcast INST DATA`, `anycast INST
    /// DATA`, `ucast sock:0xNODE:PORT DATA`. Prints `SENT count=N`; leaves once the messages
    /// are delivered (or their members are gone).
    Send {
        /// Group type and member instance, T:I.
        member: String,
        /// Wait until N other members are up.
        #[arg(long, default_value_t = 0, value_name = "N")]
        wait_members: usize,
        /// Rounds of the whole action list.
        #[arg(long, default_value_t = 1)]
        count: u64,
        /// Number every message DATA-NNNNNN, from 1 across all actions and rounds.
        #[arg(long)]
        seq: bool,
        /// node or cluster (the default).
        #[arg(long, default_value = "cluster", value_parser = ["node", "cluster"])]
        scope: String,
        /// The actions.
        #[arg(required = true, num_args = 1.., allow_hyphen_values = true)]
        actions: Vec<String>,
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
    /// A stream listener bound to every BINDING: accepts connections; what they send goes to
    /// stdout (or back with --echo). Event lines on stderr: `READY sock=... kind=stream`,
    /// `ACCEPT conn=N peer=...`, `CLOSED conn=N reason=eof|ERROR sent=B received=B`.
    Stream(ConnListen),
    /// A seqpacket listener: as `listen stream`, message by message.
    Seqpacket(ConnListen),
}

/// The options of `listen stream` and `listen seqpacket`.
#[derive(clap::Args, Debug)]
struct ConnListen {
    /// Service addresses or ranges to bind.
    #[arg(required = true)]
    bindings: Vec<String>,
    /// Send everything back on the connection it came from.
    #[arg(long)]
    echo: bool,
    /// Exit after N connections have ended.
    #[arg(long)]
    count: Option<u64>,
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
    /// Each peer node's counters (failovers, tunnel messages, synchronisations, restarts,
    /// duplicates, spoofed sources), then what the node dropped: from the network by cause,
    /// in the receive dispatch, in groups, at the control socket, and the encryption's
    /// counters (decrypt failures, replays, plaintext refused...).
    Stat,
    /// Set a node property: `key`.
    Set {
        #[command(subcommand)]
        cmd: NodeSetCmd,
    },
    /// Remove a node property: `key` (every key: the node sends in clear again).
    Flush {
        #[command(subcommand)]
        cmd: NodeFlushCmd,
    },
}

#[derive(Subcommand, Debug)]
enum NodeSetCmd {
    /// `key KEY [algname gcm(aes)] [nodeid ID] [master] [rekeying N|now]`, as iproute2's
    /// `tipc node set key`: KEY is `0x` and hex digits or text (20, 28 or 36 bytes). In place
    /// of KEY, `file PATH` reads it from a file (keeps it out of the process list and shell
    /// history).
    Key {
        /// The key (or `file PATH`) and options.
        #[arg(num_args = 1.., allow_hyphen_values = true, value_name = "KEY [OPTIONS]")]
        args: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum NodeFlushCmd {
    /// Remove every key, own and peers'.
    Key,
}

#[derive(Subcommand, Debug)]
enum LinkCmd {
    /// List links: `NAME: up|down`.
    List,
    /// Set a node-wide property: `broadcast BROADCAST|REPLICAST|AUTOSELECT`, the method of
    /// group broadcasts and datagram range multicasts.
    Set {
        #[command(subcommand)]
        cmd: LinkSetCmd,
    },
    /// Show a node-wide property: `broadcast`.
    Get {
        #[command(subcommand)]
        cmd: LinkGetCmd,
    },
    /// Link statistics.
    Stat {
        #[command(subcommand)]
        cmd: StatCmd,
    },
}

#[derive(Subcommand, Debug)]
enum LinkSetCmd {
    /// The multicast method: the broadcast link, replicast, or by the ratio (the default).
    Broadcast {
        /// BROADCAST, REPLICAST or AUTOSELECT.
        #[arg(value_parser = ["BROADCAST", "REPLICAST", "AUTOSELECT"])]
        mode: String,
    },
}

#[derive(Subcommand, Debug)]
enum LinkGetCmd {
    /// The multicast method.
    Broadcast,
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

/// `--service TYPE:INST`.
fn service_arg(s: &str) -> Result<(u32, u32), String> {
    match parse_binding(s) {
        Ok(r) if r.lower() == r.upper() => Ok((r.type_(), r.lower())),
        Ok(_) => Err("--service takes TYPE:INST".into()),
        Err(e) => Err(e),
    }
}

fn parse_bindings(bindings: &[String]) -> Result<Vec<(u32, u32, u32)>, String> {
    bindings
        .iter()
        .map(|b| parse_binding(b).map(|r| (r.type_(), r.lower(), r.upper())))
        .collect()
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("tipcctl: {e}");
            ExitCode::from(1)
        })
}

fn verdict(r: std::io::Result<Result<(), String>>) -> ExitCode {
    match r {
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

fn stderr_line(l: &str) {
    use std::io::Write;
    let mut e = std::io::stderr().lock();
    let _ = e.write_all(l.as_bytes());
    let _ = e.flush();
}

/// `connect`: the control socket becomes a pipe.
fn conn_command(node: &std::path::Path, cmd: Cmd) -> ExitCode {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(c) => return c,
    };
    match cmd {
        Cmd::Connect {
            service,
            socket,
            stream: _,
            seqpacket,
            implicit,
            nodelay,
            expect,
            linger,
        } => {
            let target = if let Some(s) = service {
                match service_arg(&s) {
                    Ok((t, i)) => ConnTarget::Service(t, i),
                    Err(e) => return usage(&e),
                }
            } else if let Some(s) = socket {
                match parse_socket(&s) {
                    Ok((n, p)) => ConnTarget::Socket(n, p),
                    Err(e) => return usage(&e),
                }
            } else {
                return usage("connect needs --service or --socket");
            };
            let kind = if seqpacket {
                Kind::Seqpacket
            } else {
                Kind::Stream
            };
            let r = rt.block_on(async {
                let mut input =
                    tokio::io::BufReader::with_capacity(ctl::MAX_DATA_FRAME, tokio::io::stdin());
                let first = if implicit {
                    Some(
                        ctl::read_chunk(&mut input, seqpacket)
                            .await?
                            .unwrap_or_default(),
                    )
                } else {
                    None
                };
                let req = Request::Connect {
                    target,
                    kind,
                    first,
                    linger: Linger {
                        expect,
                        idle_ms: linger,
                    },
                    nodelay,
                };
                ctl::pipe(
                    node,
                    &req,
                    Some((input, seqpacket)),
                    tokio::io::stdout(),
                    stderr_line,
                )
                .await
            });
            // A stdin read may still be blocked in a runtime thread: do not wait for it.
            rt.shutdown_background();
            verdict(r)
        }
        _ => usage("not a connection command"),
    }
}

fn listen_conn(node: &std::path::Path, kind: Kind, l: ConnListen) -> ExitCode {
    let ConnListen {
        bindings,
        echo,
        count,
    } = l;
    let bindings = match parse_bindings(&bindings) {
        Ok(b) => b,
        Err(e) => return usage(&e),
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(c) => return c,
    };
    let req = Request::ListenConn {
        kind,
        bindings,
        echo,
        count,
    };
    verdict(rt.block_on(ctl::pipe(
        node,
        &req,
        None::<(tokio::io::BufReader<tokio::io::Stdin>, bool)>,
        tokio::io::stdout(),
        stderr_line,
    )))
}

/// `node set key` arguments: `file PATH` replaced by the file's key in hex; checked here so
/// that a typo is reported before anything is sent.
fn key_args(mut args: Vec<String>) -> Result<Vec<String>, String> {
    if args.first().map(String::as_str) == Some("file") {
        let path = args.get(1).ok_or("node set key file: missing PATH")?;
        let key = tipc_runtime::config::read_key_file(std::path::Path::new(path))
            .map_err(|e| e.to_string())?;
        let hex: String = key.material().iter().map(|b| format!("{b:02x}")).collect();
        args.splice(0..2, [format!("0x{hex}")]);
    }
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    tipc_transport::crypto::KeySetting::parse(&a).map_err(|e| format!("node set key: {e}"))?;
    Ok(args)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let req = match args.cmd {
        Cmd::Listen {
            kind: ListenKind::Stream(l),
        } => return listen_conn(&args.node, Kind::Stream, l),
        Cmd::Listen {
            kind: ListenKind::Seqpacket(l),
        } => return listen_conn(&args.node, Kind::Seqpacket, l),
        cmd @ Cmd::Connect { .. } => return conn_command(&args.node, cmd),
        Cmd::Node { cmd: NodeCmd::List } => Request::NodeList,
        Cmd::Node { cmd: NodeCmd::Stat } => Request::NodeStat,
        Cmd::Node {
            cmd: NodeCmd::Set {
                cmd: NodeSetCmd::Key { args },
            },
        } => match key_args(args) {
            Ok(a) => Request::NodeSetKey(a),
            Err(e) => return usage(&e),
        },
        Cmd::Node {
            cmd: NodeCmd::Flush {
                cmd: NodeFlushCmd::Key,
            },
        } => Request::NodeFlushKey,
        Cmd::Link { cmd: LinkCmd::List } => Request::LinkList,
        Cmd::Link {
            cmd: LinkCmd::Set {
                cmd: LinkSetCmd::Broadcast { mode },
            },
        } => Request::LinkSetBroadcast(match mode.as_str() {
            "BROADCAST" => BcastMode::Broadcast,
            "REPLICAST" => BcastMode::Replicast,
            _ => BcastMode::Autoselect,
        }),
        Cmd::Link {
            cmd: LinkCmd::Get {
                cmd: LinkGetCmd::Broadcast,
            },
        } => Request::LinkGetBroadcast,
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
                    Ok(r) => v.push((r.type_(), r.lower(), r.upper())),
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
                match service_arg(&s) {
                    Ok((t, i)) => DgramDest::Service(t, i),
                    Err(e) => return usage(&e),
                }
            } else if let Some(s) = range {
                match parse_binding(&s) {
                    Ok(r) => DgramDest::Range(r.type_(), r.lower(), r.upper()),
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
        Cmd::Group {
            cmd:
                GroupCmd::Join {
                    member,
                    events,
                    loopback,
                    echo,
                    scope,
                    count,
                    timeout,
                },
        } => match service_arg(&member) {
            Ok(m) => Request::GroupJoin {
                member: m,
                node_scope: scope == "node",
                events,
                loopback,
                echo,
                count,
                timeout_ms: timeout,
            },
            Err(_) => return usage("group join takes T:I"),
        },
        Cmd::Group {
            cmd:
                GroupCmd::Send {
                    member,
                    wait_members,
                    count,
                    seq,
                    scope,
                    actions,
                },
        } => {
            let Ok(m) = service_arg(&member) else {
                return usage("group send takes T:I");
            };
            match parse_group_actions(&actions) {
                Ok(actions) => Request::GroupSend(GroupSendReq {
                    member: m,
                    node_scope: scope == "node",
                    wait_members,
                    count,
                    seq,
                    actions,
                }),
                Err(e) => return usage(&e),
            }
        }
        Cmd::Subscribe { range, service } => match parse_binding(&range) {
            Ok(r) => Request::Subscribe {
                range: (r.type_(), r.lower(), r.upper()),
                service,
            },
            Err(e) => return usage(&e),
        },
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(c) => return c,
    };
    let print = |l: &str| {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(l.as_bytes());
        let _ = out.flush();
    };
    verdict(rt.block_on(ctl::request(&args.node, &req, print)))
}
