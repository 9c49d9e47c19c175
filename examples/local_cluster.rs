//! `local-cluster`: several TIPC nodes on 127.0.0.1 discover each other, bring links up and
//! report them, in the format of iproute2's `tipc link list` and `tipc node list`.
//!
//! ```text
//! cargo run -p tipc-examples --bin local-cluster -- --nodes 3
//! ```
//!
//! Every node gets a UDP bearer on its own port and the other nodes' ports as unicast
//! discovery peers (the kernel's `remoteip`). The program exits 0 once every node has a working
//! link to every other node, or 1 if that did not happen within `--timeout` seconds.

use clap::Parser;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tipc_runtime::ctl::views;
use tipc_runtime::{Node, NodeConfig, NodeEvent};

/// Start a cluster of userspace TIPC nodes on loopback and report their links.
#[derive(Parser, Debug)]
struct Args {
    /// Number of nodes (2..=16).
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// First UDP port; node i uses port + i.
    #[arg(long, default_value_t = 16118)]
    port: u16,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !(2..=16).contains(&args.nodes) {
        eprintln!("local-cluster: --nodes must be 2..16");
        return ExitCode::from(2);
    }
    actix_rt_main(args)
}

fn actix_rt_main(args: Args) -> ExitCode {
    // Actors need an actix System (a tokio LocalSet); the runtime's Node starts inside it.
    let sys = tipc_runtime::System::new();
    sys.block_on(async move {
        let ports: Vec<u16> = (0..args.nodes).map(|i| args.port + i as u16).collect();
        let mut nodes = Vec::new();
        for (i, port) in ports.iter().enumerate() {
            let cfg = NodeConfig {
                id: Some(format!("node{}", i + 1)),
                udp: vec![format!("127.0.0.1:{port}")],
                udp_peer: ports
                    .iter()
                    .filter(|p| *p != port)
                    .map(|p| format!("127.0.0.1:{p}"))
                    .collect(),
                ..Default::default()
            };
            match Node::start(&cfg) {
                Ok(n) => {
                    println!("started {} ({:08x}) on 127.0.0.1:{port}", n.id(), n.addr());
                    nodes.push(n);
                }
                Err(e) => {
                    eprintln!("local-cluster: {e}");
                    return ExitCode::from(1);
                }
            }
        }
        let want = args.nodes * (args.nodes - 1);
        let mut events: Vec<_> = nodes.iter().map(|n| n.events()).collect();
        let start = Instant::now();
        let deadline = start + Duration::from_secs(args.timeout);
        let mut up = 0;
        while up < want && Instant::now() < deadline {
            for (i, ev) in events.iter_mut().enumerate() {
                while let Ok(e) = ev.try_recv() {
                    if let NodeEvent::LinkUp { name, .. } = e {
                        up += 1;
                        println!(
                            "{:>8.1} ms  node{}: link up {name}",
                            start.elapsed().as_secs_f64() * 1e3,
                            i + 1
                        );
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        for n in &nodes {
            println!("\n== {} ({:08x})", n.id(), n.addr());
            print!("{}", views::node_list(n).await);
            print!("{}", views::link_list(n).await);
        }
        for n in &nodes {
            n.shutdown().await;
        }
        if up < want {
            eprintln!("local-cluster: only {up} of {want} links came up");
            return ExitCode::from(1);
        }
        println!(
            "\nall {want} links up in {:.1} ms",
            start.elapsed().as_secs_f64() * 1e3
        );
        ExitCode::SUCCESS
    })
}
