//! `tipcctl`: inspect a running `tipc-node`, in the style of iproute2's `tipc`.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tipc_runtime::control::{self, Request};

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
    match rt.block_on(control::request(&args.node, &req, |l| print!("{l}"))) {
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
