//! OpenTelemetry in the service layer (issue 13 item 5), three in-process nodes over UDP on
//! loopback: an ask from node A to a service on B whose handler asks a service on C makes
//! one trace, A.client -> B.server -> B.client -> C.server, seen by an in-memory exporter and
//! by a real OTLP/gRPC collector (fake-opentelemetry-collector, in-process); with the sampler
//! off nothing is exported but the handlers still see the caller's trace id. The collector
//! test runs B and C as `svc-host traced` processes (A is this test's process). Group sends
//! (all four modes) parent their members' spans; a raw handler gets a root server span. The
//! same collector receives the metrics (`telemetry::init` sets up both): the tells and asks
//! counted by the client and by the service in another process, and the links' packets.
//!
//! A handler's `tracing` events are recorded on its span (`telemetry::events_layer`), in
//! memory and as the collector received them from another process.
//!
//! The tracer provider is process-wide: the tests take a lock so they run one at a time.

use fake_opentelemetry_collector::{ExportedMetric, ExportedSpan, FakeCollectorServer};
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
};
use opentelemetry::Context;
use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SdkTracerProvider, SpanData};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use tipc_integration::cluster::{free_udp_ports, udp_cluster, udp_node};
use tipc_integration::services::{
    clear_trace_ids_seen, trace_ids_seen as seen, Back, Front, GroupProbe, Inc, Num, Relay, Upper,
    BACK_TYPE as BACK, FRONT_TYPE as FRONT, GROUP_PROBE_TYPE, UPPER_TYPE,
};
use tipc_runtime::service::{AskError, Binding};
use tipc_runtime::{telemetry, Node, ServiceAddr, ServiceHandle, ServiceRange};

/// One test at a time (one global tracer provider).
static SERIAL: Mutex<()> = Mutex::new(());

/// Wait until `node` sees a binding of `type_` (bounded).
async fn wait_binding(node: &Node, type_: u32) {
    for _ in 0..500 {
        if node
            .transport()
            .nametable()
            .await
            .iter()
            .any(|p| p.range.type_() == type_)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("binding of {type_} never appeared");
}

/// The service handles are kept with the nodes.
type Nodes = (Node, Node, Node, ServiceHandle<Front>, ServiceHandle<Back>);

/// Three nodes, Front served on B and Back on C, both visible where they are asked from.
async fn three_nodes() -> Nodes {
    let mut v = udp_cluster("otel", 3).await;
    let c = Node::from_transport(v.pop().expect("node"));
    let b = Node::from_transport(v.pop().expect("node"));
    let a = Node::from_transport(v.pop().expect("node"));
    let hb = b.serve(Front).await.expect("serve Front");
    let hc = c.serve(Back).await.expect("serve Back");
    wait_binding(&a, FRONT).await;
    wait_binding(&b, BACK).await;
    (a, b, c, hb, hc)
}

/// Ask Front on B (which asks Back on C) from A.
async fn ask_chain(a: &Node) -> u64 {
    a.service(FRONT, 1)
        .ask(&Relay(41))
        .await
        .expect("ask through B to C")
}

fn one<'a>(spans: &'a [SpanData], kind: SpanKind, service: &str) -> &'a SpanData {
    let v: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.span_kind == kind && s.name.contains(service))
        .collect();
    assert_eq!(v.len(), 1, "one {kind:?} span of {service} in {spans:#?}");
    v[0]
}

fn node_of(s: &SpanData) -> i64 {
    s.attributes
        .iter()
        .find(|kv| kv.key.as_str() == "tipc.node")
        .and_then(|kv| match kv.value {
            opentelemetry::Value::I64(n) => Some(n),
            _ => None,
        })
        .expect("tipc.node attribute")
}

/// Wait until `exporter` holds at least `n` finished spans (at most `tries` × 5 ms); the
/// number it holds then.
async fn await_spans(exporter: &InMemorySpanExporter, n: usize, tries: usize) -> usize {
    let mut got = 0;
    for _ in 0..tries {
        got = exporter.get_finished_spans().expect("spans").len();
        if got >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    got
}

#[test]
fn ask_chain_spans_share_one_trace_with_parentage_across_three_nodes_in_memory() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    clear_trace_ids_seen();
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let mut t = telemetry::install(provider);
    let (na, nb, nc) = actix_rt::System::new().block_on(async {
        let (a, b, c, _hb, _hc) = three_nodes().await;
        assert_eq!(ask_chain(&a).await, 42);
        // B's server span ends when its spawned future has finished (after the reply left).
        assert_eq!(await_spans(&exporter, 4, 200).await, 4, "four spans");
        (a.addr(), b.addr(), c.addr())
    });
    // Read before the shutdown (which empties the in-memory exporter).
    let spans = exporter.get_finished_spans().expect("spans");
    t.shutdown();
    assert_eq!(spans.len(), 4, "{spans:#?}");
    let a_client = one(&spans, SpanKind::Client, "2001:1");
    let b_server = one(&spans, SpanKind::Server, "2001:1");
    let b_client = one(&spans, SpanKind::Client, "2002:1");
    let c_server = one(&spans, SpanKind::Server, "2002:1");
    let trace = a_client.span_context.trace_id();
    assert!(a_client.span_context.is_valid());
    assert!(a_client.span_context.is_sampled());
    for s in &spans {
        assert_eq!(s.span_context.trace_id(), trace, "{}", s.name);
    }
    assert_eq!(a_client.parent_span_id, SpanId::INVALID);
    assert_eq!(b_server.parent_span_id, a_client.span_context.span_id());
    assert!(b_server.parent_span_is_remote);
    assert_eq!(b_client.parent_span_id, b_server.span_context.span_id());
    assert!(!b_client.parent_span_is_remote);
    assert_eq!(c_server.parent_span_id, b_client.span_context.span_id());
    assert!(c_server.parent_span_is_remote);
    assert_eq!(
        [a_client, b_server, b_client, c_server].map(node_of),
        [na, nb, nb, nc].map(|n| n as i64)
    );
    assert_eq!(
        seen(),
        vec![(FRONT, trace.to_bytes()), (BACK, trace.to_bytes())]
    );
}

/// The events layer in this thread's subscriber (the three nodes run on it).
fn events_subscriber() -> tracing::subscriber::DefaultGuard {
    use tracing_subscriber::prelude::*;
    tracing::subscriber::set_default(tracing_subscriber::registry().with(telemetry::events_layer()))
}

fn event<'a>(s: &'a SpanData, name: &str) -> &'a opentelemetry::trace::Event {
    let v: Vec<_> = s.events.iter().filter(|e| e.name == name).collect();
    assert_eq!(
        v.len(),
        1,
        "one event {name} on {}: {:#?}",
        s.name,
        s.events
    );
    v[0]
}

fn event_attr(e: &opentelemetry::trace::Event, key: &str) -> opentelemetry::Value {
    e.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
        .unwrap_or_else(|| panic!("no {key} in {e:?}"))
}

#[test]
fn handler_tracing_events_are_recorded_on_the_handled_message_span_and_nowhere_else() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let mut t = telemetry::install(provider);
    let _sub = events_subscriber();
    actix_rt::System::new().block_on(async {
        let (a, _b, _c, _hb, _hc) = three_nodes().await;
        // Outside any handled message: no span to record it on.
        tracing::info!("before the ask");
        assert_eq!(ask_chain(&a).await, 42);
        await_spans(&exporter, 4, 200).await;
    });
    let spans = exporter.get_finished_spans().expect("spans");
    t.shutdown();
    assert_eq!(spans.len(), 4, "{spans:#?}");
    // Back's handler logged in the handler, Front's in the future its handler spawned.
    let c_server = one(&spans, SpanKind::Server, "2002:1");
    let e = event(c_server, "back answered");
    assert_eq!(event_attr(e, "n"), opentelemetry::Value::I64(41));
    assert_eq!(event_attr(e, "level"), "INFO".into());
    assert_eq!(event_attr(e, "target"), "tipc_integration::services".into());
    let b_server = one(&spans, SpanKind::Server, "2001:1");
    let e = event(b_server, "front relayed");
    assert_eq!(event_attr(e, "answer"), opentelemetry::Value::I64(42));
    assert_eq!(c_server.events.len(), 1, "{:#?}", c_server.events);
    assert_eq!(b_server.events.len(), 1, "{:#?}", b_server.events);
    for kind in [SpanKind::Client] {
        for s in spans.iter().filter(|s| s.span_kind == kind) {
            assert!(s.events.is_empty(), "{}: {:#?}", s.name, s.events);
        }
    }
}

#[test]
fn handlers_see_the_callers_trace_id_and_nothing_is_exported_when_sampler_is_off() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    clear_trace_ids_seen();
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .with_sampler(Sampler::AlwaysOff)
        .build();
    let mut t = telemetry::install(provider);
    // The handlers' events are not recorded on unsampled spans either.
    let _sub = events_subscriber();
    let trace = TraceId::from_bytes(*b"unsampled-trace!");
    let caller = Context::new().with_remote_span_context(SpanContext::new(
        trace,
        SpanId::from_bytes(*b"caller!!"),
        TraceFlags::default(),
        true,
        TraceState::default(),
    ));
    actix_rt::System::new().block_on(async {
        use opentelemetry::context::FutureExt;
        let _nodes = three_nodes().await;
        let a = &_nodes.0;
        assert_eq!(ask_chain(a).with_context(caller).await, 42);
        // A root ask (no caller context) gets a fresh trace id, unsampled, passed on too.
        assert_eq!(ask_chain(a).await, 42);
    });
    t.flush();
    // Read before the shutdown (which empties the in-memory exporter).
    let exported = exporter.get_finished_spans().expect("spans");
    t.shutdown();
    assert!(exported.is_empty(), "{exported:#?}");
    let s = seen();
    assert_eq!(s.len(), 4, "{s:?}");
    assert_eq!(
        &s[..2],
        &[(FRONT, trace.to_bytes()), (BACK, trace.to_bytes())]
    );
    let root = s[2].1;
    assert_ne!(root, [0; 16]);
    assert_ne!(root, trace.to_bytes());
    assert_eq!(&s[2..], &[(FRONT, root), (BACK, root)]);
}

/// A `svc-host traced` process: its standard input closed on [`Host::finish`] (it flushes its
/// spans and exits), SIGKILLed if dropped before.
struct Host {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Host {
    /// Start `svc-host traced` on `port` and wait for its `READY` (bounded).
    fn start(port: u16, peers: &[u16], role: &str, endpoint: &str) -> Host {
        let peers: Vec<String> = peers.iter().map(u16::to_string).collect();
        let mut child = Command::new(env!("CARGO_BIN_EXE_svc-host"))
            .args([
                "traced",
                &port.to_string(),
                &peers.join(","),
                role,
                endpoint,
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start svc-host");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    return;
                }
            }
        });
        let h = Host { child, lines };
        match h.lines.recv_timeout(Duration::from_secs(20)) {
            Ok(l) if l == "READY" => h,
            other => panic!("svc-host {role} did not get ready: {other:?}"),
        }
    }

    /// Close its standard input and wait for `FLUSHED` and its exit (bounded).
    fn finish(mut self) {
        drop(self.child.stdin.take());
        match self.lines.recv_timeout(Duration::from_secs(20)) {
            Ok(l) if l == "FLUSHED" => {}
            other => panic!("svc-host did not flush: {other:?}"),
        }
        let status = self.child.wait().expect("wait for svc-host");
        assert!(status.success(), "svc-host exited with {status}");
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn exported<'a>(spans: &'a [ExportedSpan], kind: &str, service: &str) -> &'a ExportedSpan {
    let v: Vec<&ExportedSpan> = spans
        .iter()
        .filter(|s| s.kind == kind && s.name.contains(service))
        .collect();
    assert_eq!(v.len(), 1, "one {kind} span of {service} in {spans:#?}");
    v[0]
}

#[test]
fn collector_receives_one_trace_through_three_node_processes_with_parentage() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    // The collector runs on its own tokio runtime (its server is a tokio task).
    let rt = tokio::runtime::Runtime::new().expect("collector runtime");
    let mut collector = rt
        .block_on(FakeCollectorServer::start())
        .expect("start the collector");
    let endpoint = collector.endpoint();
    let ports = free_udp_ports(3);
    let b = Host::start(ports[1], &[ports[0], ports[2]], "front", &endpoint);
    let c = Host::start(ports[2], &[ports[0], ports[1]], "back", &endpoint);
    let answers = actix_rt::System::new().block_on(async {
        // Set up and shut down on the actix thread (where a user's code runs).
        let mut t = telemetry::init("node-a", &endpoint).expect("telemetry");
        let a = Node::from_transport(udp_node("otelA", ports[0], &[ports[1], ports[2]]));
        wait_binding(&a, FRONT).await;
        wait_binding(&a, BACK).await;
        // B may learn of C's binding a little after A: an ask that meets no Back on B fails
        // with an error reply (its spans are in another trace). One answer is enough.
        let mut answers = Vec::new();
        for _ in 0..50 {
            let r = a.service(FRONT, 1).ask(&Relay(41)).await;
            answers.push(r.clone());
            if r.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        t.shutdown();
        answers
    });
    b.finish();
    c.finish();
    assert_eq!(answers.last(), Some(&Ok(42)), "{answers:?}");
    let n = answers.len();
    // Each failed attempt made 3 spans (A.client, B.server, B.client), the good one 4.
    let mut spans = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while spans.len() < 3 * (n - 1) + 4 && Instant::now() < deadline {
        spans.extend(rt.block_on(collector.exported_spans(1, Duration::from_millis(200))));
    }
    // The good trace is the one C served.
    let c_servers: Vec<&ExportedSpan> = spans
        .iter()
        .filter(|s| s.kind == "SPAN_KIND_SERVER" && s.name.contains("2002:1"))
        .collect();
    assert_eq!(c_servers.len(), 1, "{spans:#?}");
    let trace = c_servers[0].trace_id.clone();
    let spans: Vec<ExportedSpan> = spans.into_iter().filter(|s| s.trace_id == trace).collect();
    assert_eq!(spans.len(), 4, "{spans:#?}");
    let a_client = exported(&spans, "SPAN_KIND_CLIENT", "2001:1");
    let b_server = exported(&spans, "SPAN_KIND_SERVER", "2001:1");
    let b_client = exported(&spans, "SPAN_KIND_CLIENT", "2002:1");
    let c_server = exported(&spans, "SPAN_KIND_SERVER", "2002:1");
    assert_ne!(trace, "0".repeat(32));
    assert_eq!(a_client.parent_span_id, "");
    assert_eq!(b_server.parent_span_id, a_client.span_id);
    assert_eq!(b_client.parent_span_id, b_server.span_id);
    assert_eq!(c_server.parent_span_id, b_client.span_id);
    // Each span came from its own process (node address attribute).
    // The handlers' `tracing` events (svc-host has the events layer) on their spans.
    let ev = |s: &ExportedSpan, name: &str| -> std::collections::BTreeMap<String, String> {
        let v: Vec<_> = s.events.iter().filter(|e| e.name == name).collect();
        assert_eq!(v.len(), 1, "one {name} in {:#?}", s.events);
        v[0].attributes.clone()
    };
    let back = ev(c_server, "back answered");
    assert!(back["n"].contains(&int_attr(41)), "{back:?}");
    assert!(back["level"].contains("StringValue(\"INFO\")"), "{back:?}");
    let front = ev(b_server, "front relayed");
    assert!(front["answer"].contains(&int_attr(42)), "{front:?}");
    assert!(a_client.events.is_empty() && b_client.events.is_empty());
    let node = |s: &ExportedSpan| s.attributes.get("tipc.node").cloned();
    assert_ne!(node(a_client), node(b_server));
    assert_eq!(node(b_server), node(b_client));
    assert_ne!(node(b_client), node(c_server));
    assert_ne!(node(a_client), node(c_server));
}

#[test]
fn caller_context_passes_through_nodes_without_a_provider_and_none_is_made_up() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    clear_trace_ids_seen();
    assert!(!telemetry::enabled());
    let trace = TraceId::from_bytes(*b"no-provider-here");
    let caller = Context::new().with_remote_span_context(SpanContext::new(
        trace,
        SpanId::from_bytes(*b"caller!!"),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    ));
    actix_rt::System::new().block_on(async {
        use opentelemetry::context::FutureExt;
        let nodes = three_nodes().await;
        assert_eq!(ask_chain(&nodes.0).with_context(caller).await, 42);
        assert_eq!(ask_chain(&nodes.0).await, 42);
    });
    assert_eq!(
        seen(),
        vec![
            (FRONT, trace.to_bytes()),
            (BACK, trace.to_bytes()),
            (FRONT, [0; 16]),
            (BACK, [0; 16]),
        ]
    );
}

#[test]
fn tell_makes_producer_and_consumer_spans_and_failed_ask_spans_carry_error_status() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    clear_trace_ids_seen();
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let mut t = telemetry::install(provider);
    actix_rt::System::new().block_on(async {
        let nodes = three_nodes().await;
        let back = nodes.0.service(BACK, 1);
        back.tell(&Inc(1)).await.expect("tell");
        // Back does not handle Relay: the ask fails "unknown message" at once.
        let e = back.ask(&Relay(1)).await;
        assert!(
            matches!(e, Err(AskError::Remote { .. })),
            "unexpected answer {e:?}"
        );
        await_spans(&exporter, 4, 200).await;
    });
    let spans = exporter.get_finished_spans().expect("spans");
    t.shutdown();
    assert_eq!(spans.len(), 4, "{spans:#?}");
    let producer = one(&spans, SpanKind::Producer, "2002:1");
    let consumer = one(&spans, SpanKind::Consumer, "2002:1");
    assert_eq!(
        consumer.span_context.trace_id(),
        producer.span_context.trace_id()
    );
    assert_eq!(consumer.parent_span_id, producer.span_context.span_id());
    assert!(consumer.parent_span_is_remote);
    assert_eq!(producer.status, Status::Unset);
    assert_eq!(consumer.status, Status::Unset);
    let client = one(&spans, SpanKind::Client, "2002:1");
    let server = one(&spans, SpanKind::Server, "2002:1");
    assert_eq!(server.parent_span_id, client.span_context.span_id());
    assert!(matches!(client.status, Status::Error { .. }), "{client:#?}");
    assert!(matches!(server.status, Status::Error { .. }), "{server:#?}");
}

#[test]
fn group_sends_make_producer_spans_parenting_member_spans_and_raw_handlers_get_root_server_spans() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let mut t = telemetry::install(provider);
    let (sender, receiver) = actix_rt::System::new().block_on(async {
        let mut v = udp_cluster("otelgrp", 2).await;
        let b = Node::from_transport(v.pop().expect("node"));
        let a = Node::from_transport(v.pop().expect("node"));
        let log: Arc<Mutex<Vec<String>>> = Default::default();
        let member = |instance| {
            let mut at = Binding::of::<GroupProbe>();
            at.range = ServiceRange::single(GROUP_PROBE_TYPE, instance);
            let probe = GroupProbe {
                log: log.clone(),
                slow: Duration::ZERO,
                echo: false,
                held: Vec::new(),
            };
            (probe, at)
        };
        let (pa, at_a) = member(1);
        let (pb, at_b) = member(2);
        let ha = a.serve_at(pa, at_a).await.expect("join on A");
        let hb = b.serve_at(pb, at_b).await.expect("join on B");
        let _upper = b.serve(Upper).await.expect("serve Upper");
        let g = ha.group().expect("group");
        for _ in 0..2_000 {
            if g.members_up() == 1 && hb.group().is_some_and(|g| g.members_up() == 1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        g.broadcast(&Num { n: 0 }).await.expect("broadcast");
        g.multicast(2, &Num { n: 1 }).await.expect("multicast");
        g.anycast(2, &Num { n: 2 }).await.expect("anycast");
        g.unicast(hb.socket(), &Num { n: 3 })
            .await
            .expect("unicast");
        // A plain RDM datagram to the raw service (no envelope, no trace context).
        wait_binding(&a, UPPER_TYPE).await;
        let raw = a.transport().dgram_socket();
        let upper = ServiceAddr {
            type_: UPPER_TYPE,
            instance: 1,
        };
        raw.send_to_service(upper, b"hi").await.expect("raw send");
        let r = tokio::time::timeout(Duration::from_secs(2), raw.recv())
            .await
            .expect("a raw reply")
            .expect("socket open");
        assert_eq!(&r.data[..], b"HI");
        await_spans(&exporter, 9, 400).await;
        let got = log.lock().unwrap_or_else(|p| p.into_inner()).clone();
        assert_eq!(
            got.iter().filter(|l| l.starts_with("MSG 1 ")).count(),
            4,
            "{got:?}"
        );
        (a.addr(), b.addr())
    });
    let spans = exporter.get_finished_spans().expect("spans");
    t.shutdown();
    assert_eq!(spans.len(), 9, "{spans:#?}");
    for (how, mode) in [
        ("group 3100 broadcast", "broadcast"),
        ("group 3100:2 multicast", "multicast"),
        ("group 3100:2 anycast", "anycast"),
        ("group 3100 unicast", "unicast"),
    ] {
        let producer = one(&spans, SpanKind::Producer, how);
        assert_eq!(node_of(producer), sender as i64, "{mode}");
        assert_eq!(producer.parent_span_id, SpanId::INVALID, "{mode}");
        let children: Vec<&SpanData> = spans
            .iter()
            .filter(|s| s.parent_span_id == producer.span_context.span_id())
            .collect();
        assert_eq!(children.len(), 1, "{mode}: {spans:#?}");
        let consumer = children[0];
        assert_eq!(consumer.span_kind, SpanKind::Consumer, "{mode}");
        assert!(consumer.parent_span_is_remote, "{mode}");
        assert!(consumer.name.contains("3100:2"), "{}", consumer.name);
        assert_eq!(
            consumer.span_context.trace_id(),
            producer.span_context.trace_id()
        );
        assert_eq!(node_of(consumer), receiver as i64, "{mode}");
    }
    let raw = one(&spans, SpanKind::Server, "tipc.handle raw 2500:1");
    assert_eq!(raw.parent_span_id, SpanId::INVALID);
    assert!(raw.span_context.is_valid());
    assert_eq!(node_of(raw), receiver as i64);
}

/// Every number data point the collector received: (metric name, attributes, value).
fn metric_points(batches: &[ExportedMetric]) -> Vec<(String, String, i64)> {
    let mut out = Vec::new();
    for b in batches {
        let v = serde_json::to_value(b).expect("metrics as JSON");
        for m in v["metrics"].as_array().into_iter().flatten() {
            let name = m["name"].as_str().unwrap_or_default().to_string();
            let Some(data) = m["data"].as_object() else {
                continue;
            };
            for (_, body) in data {
                for p in body["data_points"].as_array().into_iter().flatten() {
                    let Some(value) = p["value"]["AsInt"].as_i64() else {
                        continue;
                    };
                    out.push((name.clone(), p["attributes"].to_string(), value));
                }
            }
        }
    }
    out
}

/// The largest value of `name` among the points whose attributes contain every `needle`
/// (counters are cumulative: the largest is the last).
fn largest(points: &[(String, String, i64)], name: &str, needles: &[String]) -> Option<i64> {
    points
        .iter()
        .filter(|(n, attrs, _)| n == name && needles.iter().all(|w| attrs.contains(w.as_str())))
        .map(|p| p.2)
        .max()
}

fn int_attr(v: u32) -> String {
    format!("IntValue({v})")
}

fn str_attr(v: &str) -> String {
    format!("StringValue(\\\"{v}\\\")")
}

#[test]
fn collector_receives_link_and_service_metrics_with_the_counts_sent_from_two_node_processes() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    const TELLS: u64 = 25;
    let rt = tokio::runtime::Runtime::new().expect("collector runtime");
    let mut collector = rt
        .block_on(FakeCollectorServer::start())
        .expect("start the collector");
    let endpoint = collector.endpoint();
    let ports = free_udp_ports(2);
    let c = Host::start(ports[1], &[ports[0]], "back", &endpoint);
    let a_addr = actix_rt::System::new().block_on(async {
        let mut t = telemetry::init("node-a", &endpoint).expect("telemetry");
        let a = Node::from_transport(udp_node("otelMetA", ports[0], &[ports[1]]));
        wait_binding(&a, BACK).await;
        let back = a.service(BACK, 1);
        for i in 0..TELLS {
            back.tell(&Inc(i)).await.expect("tell");
        }
        // Answered after the tells (one client socket, one link, one service: in order).
        assert_eq!(back.ask(&Inc(1)).await, Ok(2));
        // Flushed while the node runs (its actors report the links), then shut down.
        t.flush_async().await;
        t.shutdown();
        a.addr()
    });
    c.finish();
    let mut batches = Vec::new();
    let mut points = Vec::new();
    let a = || vec![int_attr(a_addr)];
    let back = || vec![str_attr("2002:1")];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        batches.extend(rt.block_on(collector.exported_metrics(1, Duration::from_millis(200))));
        points = metric_points(&batches);
        if largest(&points, "tipc.client.tells", &a()) == Some(TELLS as i64)
            && largest(&points, "tipc.service.tells", &back()) == Some(TELLS as i64)
        {
            break;
        }
    }
    let show = || format!("{points:#?}");
    // The service layer on both sides counted what was sent.
    assert_eq!(
        largest(&points, "tipc.client.tells", &a()),
        Some(TELLS as i64),
        "{}",
        show()
    );
    assert_eq!(largest(&points, "tipc.client.asks", &a()), Some(1));
    assert_eq!(
        largest(&points, "tipc.service.tells", &back()),
        Some(TELLS as i64),
        "{}",
        show()
    );
    assert_eq!(largest(&points, "tipc.service.asks", &back()), Some(1));
    assert_eq!(largest(&points, "tipc.service.replies", &back()), Some(1));
    let no_errors = [back(), vec![str_attr("error_reply")]].concat();
    assert_eq!(largest(&points, "tipc.service.errors", &no_errors), Some(0));
    // The links carried them (bundled: fewer packets than messages), and C received them.
    let a_tx = [a(), vec![str_attr("tx")]].concat();
    let sent = largest(&points, "tipc.link.packets", &a_tx).expect("A's link packets");
    assert!(sent > 0, "A sent {sent} packets: {}", show());
    let received = points
        .iter()
        .filter(|(n, attrs, _)| {
            n == "tipc.link.packets"
                && attrs.contains(&str_attr("rx"))
                && !attrs.contains(&int_attr(a_addr))
        })
        .map(|p| p.2)
        .max()
        .expect("C's link packets");
    assert!(received > 0, "C received {received}");
    assert!(largest(&points, "tipc.link.retransmitted", &a()).is_some());
    assert_eq!(largest(&points, "tipc.peer.up", &a()), Some(1));
    assert!(largest(&points, "tipc.node.sockets", &a()).is_some_and(|n| n >= 1));
}
