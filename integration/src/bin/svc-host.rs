//! `svc-host PORT PEERS INSTANCE TAG`: a node on 127.0.0.1:PORT (UDP, replicast to the
//! comma-separated PEERS ports) serving [`Probe`] at `{1100, INSTANCE}` answering TAG; prints
//! `READY` once serving and runs until killed. Started by the service-layer tests.
//!
//! `svc-host raw IP`: a node `host` with a UDP bearer in multicast mode on IP:6118 (inside the
//! kernel peer's namespace) serving the raw [`Upper`] service at `{2500, 1}`.
//!
//! `svc-host group-raw IP`: the same node with the raw group member [`Shout`] at `{3200, 5}`.
//!
//! `svc-host group PORT PEERS INSTANCE SLOW_US`: the same node with a [`GroupProbe`] member
//! of group 3100 at INSTANCE, sleeping SLOW_US per message and printing its log lines.
//!
//! `svc-host traced PORT PEERS front|back|client OTLP_ENDPOINT`: the node serving [`Front`] or
//! [`Back`] with telemetry (spans with the handlers' `tracing` events, and metrics) exported
//! to the OTLP/gRPC collector at OTLP_ENDPOINT; prints `READY`, and when its standard input closes, flushes (while the node
//! still runs, so its link figures are read then), prints `FLUSHED` and exits.
//! As `client` it waits for Front and Back (at most 10 s), asks Front once, prints
//! `ANSWER n` (or `FAILED reason`), flushes and exits.

use tipc_integration::services::{
    Back, Front, GroupProbe, Probe, Relay, Shout, Upper, BACK_TYPE, FRONT_TYPE, GROUP_PROBE_TYPE,
    PROBE_TYPE,
};
use tipc_runtime::service::Binding;
use tipc_runtime::{Node, Scope, ServiceRange};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("group") {
        return group(&args[2..]);
    }
    if args.get(1).map(String::as_str) == Some("traced") {
        return traced(&args[2..]);
    }
    if args.get(1).map(String::as_str) == Some("raw") {
        return raw(&args[2..], false);
    }
    if args.get(1).map(String::as_str) == Some("group-raw") {
        return raw(&args[2..], true);
    }
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
        let _h = or_exit(node.serve_at(Probe::new(tag), binding).await);
        println!("READY");
        std::future::pending::<()>().await;
    });
}

fn group(args: &[String]) {
    let num = |i: usize| -> u64 {
        args.get(i).and_then(|v| v.parse().ok()).unwrap_or_else(|| {
            eprintln!("usage: svc-host group PORT PEERS INSTANCE SLOW_US");
            std::process::exit(2)
        })
    };
    let port = num(0) as u16;
    let peers: Vec<u16> = args[1].split(',').filter_map(|p| p.parse().ok()).collect();
    let (inst, slow) = (num(2) as u32, std::time::Duration::from_micros(num(3)));
    actix_rt::System::new().block_on(async move {
        let t = tipc_integration::cluster::udp_node(&format!("grp{port}"), port, &peers);
        let node = Node::from_transport(t);
        let mut at = Binding::of::<GroupProbe>();
        at.range = ServiceRange::single(GROUP_PROBE_TYPE, inst);
        let probe = GroupProbe {
            log: Default::default(),
            slow,
            echo: true,
            held: Vec::new(),
        };
        let _h = or_exit(node.serve_at(probe, at).await);
        println!("READY");
        std::future::pending::<()>().await;
    });
}

fn raw(args: &[String], group: bool) {
    let Some(ip) = args
        .first()
        .and_then(|a| a.parse::<std::net::IpAddr>().ok())
    else {
        eprintln!("usage: svc-host raw IP");
        std::process::exit(2)
    };
    actix_rt::System::new().block_on(async move {
        let cfg = tipc_runtime::NodeConfig {
            id: Some("host".into()),
            udp: vec![format!("{ip}:6118")],
            ..Default::default()
        };
        let node = or_exit(Node::start(&cfg));
        // The handle is kept: the service runs until the process ends.
        let _keep = if group {
            serve_kept(&node, Shout).await
        } else {
            serve_kept(&node, Upper).await
        };
        println!("READY");
        std::future::pending::<()>().await;
    });
}

fn traced(args: &[String]) {
    let usage = || -> ! {
        eprintln!("usage: svc-host traced PORT PEERS front|back OTLP_ENDPOINT");
        std::process::exit(2)
    };
    let (Some(port), Some(peers), Some(role), Some(endpoint)) = (
        args.first().and_then(|p| p.parse::<u16>().ok()),
        args.get(1),
        args.get(2),
        args.get(3),
    ) else {
        usage()
    };
    let front = match role.as_str() {
        "front" => true,
        "back" => false,
        "client" => return traced_client(port, peers, endpoint),
        _ => usage(),
    };
    let peers: Vec<u16> = peers.split(',').filter_map(|p| p.parse().ok()).collect();
    let mut telemetry = or_exit(tipc_runtime::telemetry::init(
        &format!("svc-{role}"),
        endpoint,
    ));
    // The handlers' `tracing` events go to their spans.
    {
        use tracing_subscriber::prelude::*;
        tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::INFO)
            .with(tipc_runtime::telemetry::events_layer())
            .init();
    }
    let flusher = &telemetry;
    actix_rt::System::new().block_on(async move {
        let t = tipc_integration::cluster::udp_node(&format!("otel{port}"), port, &peers);
        let node = Node::from_transport(t);
        let _keep = if front {
            serve_kept(&node, Front).await
        } else {
            serve_kept(&node, Back).await
        };
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
            let _ = tx.send(());
        });
        println!("READY");
        let _ = rx.await;
        flusher.flush_async().await;
    });
    telemetry.shutdown();
    println!("FLUSHED");
}

fn traced_client(port: u16, peers: &str, endpoint: &str) {
    let peers: Vec<u16> = peers.split(',').filter_map(|p| p.parse().ok()).collect();
    let mut telemetry = or_exit(tipc_runtime::telemetry::init("svc-client", endpoint));
    let ok = actix_rt::System::new().block_on(async move {
        let t = tipc_integration::cluster::udp_node(&format!("otel{port}"), port, &peers);
        let node = Node::from_transport(t);
        for _ in 0..1_000 {
            let table = node.transport().nametable().await;
            let has = |ty: u32| table.iter().any(|p| p.range.type_() == ty);
            if has(FRONT_TYPE) && has(BACK_TYPE) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        match node.service(FRONT_TYPE, 1).ask(&Relay(41)).await {
            Ok(n) => {
                println!("ANSWER {n}");
                true
            }
            Err(e) => {
                println!("FAILED {e}");
                false
            }
        }
    });
    telemetry.shutdown();
    println!("FLUSHED");
    std::process::exit(if ok { 0 } else { 1 });
}

/// The value, or the error on stderr and exit status 1.
fn or_exit<T, E: std::fmt::Display>(r: Result<T, E>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => {
            eprintln!("svc-host: {e}");
            std::process::exit(1)
        }
    }
}

/// Start `svc` on `node`; the handle is kept by the caller until the process ends.
async fn serve_kept<S: tipc_runtime::service::Service>(
    node: &Node,
    svc: S,
) -> Box<dyn std::any::Any> {
    Box::new(or_exit(node.serve(svc).await))
}
