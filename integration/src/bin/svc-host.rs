//! `svc-host PORT PEERS INSTANCE TAG`: a node on 127.0.0.1:PORT (UDP, replicast to the
//! comma-separated PEERS ports) serving [`Probe`] at `{1100, INSTANCE}` answering TAG; prints
//! `READY` once serving and runs until killed. Started by the service-layer tests.

use tipc_integration::services::{Probe, PROBE_TYPE};
use tipc_runtime::service::Binding;
use tipc_runtime::{Node, Scope, ServiceRange};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: svc-host PORT PEERS INSTANCE TAG";
    let (Some(port), Some(peers), Some(inst), Some(tag)) = (
        args.get(1).and_then(|p| p.parse::<u16>().ok()),
        args.get(2),
        args.get(3).and_then(|i| i.parse::<u32>().ok()),
        args.get(4).and_then(|i| i.parse::<u32>().ok()),
    ) else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let peers: Vec<u16> = peers.split(',').filter_map(|p| p.parse().ok()).collect();
    actix_rt::System::new().block_on(async move {
        let t = tipc_integration::cluster::udp_node(&format!("svc{port}"), port, &peers);
        let node = Node::from_transport(t);
        let binding = Binding::service(ServiceRange::single(PROBE_TYPE, inst), Scope::Cluster);
        let _h = match node.serve_at(Probe::new(tag), binding).await {
            Ok(h) => h,
            Err(e) => {
                eprintln!("svc-host: {e}");
                std::process::exit(1);
            }
        };
        println!("READY");
        std::future::pending::<()>().await;
    });
}
