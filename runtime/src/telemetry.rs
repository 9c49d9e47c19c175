//! OpenTelemetry for the service layer: one call ([`init`]) sets up an OTLP/gRPC exporter,
//! and every tell and ask ([`crate::ServiceRef`]) and every handled message gets a span.
//!
//! - A tell is a `Producer` span, an ask a `Client` span (ended when the reply or the error
//!   arrives; errors are its status). Its span context travels in the envelope's binary trace
//!   context ([`crate::service::envelope::TraceContext`]), not in W3C text headers.
//! - The service handling it opens a `Server` span (ask) or `Consumer` span (tell) whose parent
//!   is that remote span context, and makes it current while the handler runs and in the
//!   futures the handler spawns ([`crate::Ctx::spawn`]): asks made there are its children, so a
//!   request keeps one trace id across nodes.
//! - Unsampled traces are not exported, but their context still propagates (sampled flag 0).
//!   The sampler sees a span's short name (`tipc.tell`, `tipc.handle ask`...) and its kind;
//!   only a span it records gets its full name and attributes, so an unsampled span formats
//!   and allocates nothing of ours.
//! - Without [`init`] (or [`install`]) no span is built; a trace context that came in with a
//!   message is still passed on by the asks its handler makes. With neither, a message costs
//!   a look at the current context: no span and no trace context are built.
//! - A handler's span ends when the handler returns and the futures it spawned have finished
//!   (a deferred reply is inside it).
//! - Group sends ([`crate::service::GroupRef`]: broadcast, multicast, anycast, unicast) are
//!   `Producer` spans whose context travels in the envelope like a tell's, and the member
//!   handling one opens a `Consumer` span under it. A raw send (no envelope) has a span but
//!   carries no context; a raw handler ([`crate::service::Raw`]) gets a `Server` span without
//!   a parent.
//!
//! `tracing` events made while a message is handled become events of its span when the
//! application's subscriber has [`events_layer`] (a handler's `tracing::info!` is then seen
//! in the collector under the request it served).
//!
//! [`init`] also exports metrics ([`metrics`]): observable instruments read from the counters
//! the node and its services keep anyway (links, peers, sockets, queues, retransmissions,
//! returned messages, the service layer), collected every `OTEL_METRIC_EXPORT_INTERVAL`
//! milliseconds (the SDK's default: 60 s) and at [`Telemetry::flush`] and shutdown.
//!
//! The exporters run on their own small tokio runtime (two worker threads), so they work from
//! an actix System; [`Telemetry`] flushes and shuts them down when dropped. A flush made on the
//! node's own thread cannot hear from its actors: the link figures it exports are those read
//! last; [`Telemetry::flush_async`] flushes from another thread while the node keeps running.

use crate::service::envelope::TraceContext;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
};
use opentelemetry::{global, Context, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};

mod events;
pub mod metrics;

pub use events::{events_layer, EventsLayer};

/// The samplers [`init_with`] takes (re-exported from `opentelemetry_sdk`).
pub use opentelemetry_sdk::trace::Sampler;
use opentelemetry_sdk::Resource;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// The instrumentation scope of the spans made here.
pub const TRACER_NAME: &str = "tipc";

/// Whether a provider is installed (spans are built only then).
static ENABLED: AtomicBool = AtomicBool::new(false);

/// The installed provider's tracer (concrete: no global lock and no boxing per span).
static TRACER: std::sync::RwLock<Option<SdkTracer>> = std::sync::RwLock::new(None);

fn set_tracer(t: Option<SdkTracer>) {
    *TRACER.write().unwrap_or_else(|p| p.into_inner()) = t;
}

/// Start a span of `kind` under `parent` with the installed tracer. The sampler sees the
/// short `name` only; a span that records then gets its full name (`full`) and attributes
/// (`attrs`), so a span the sampler drops formats and allocates nothing of ours.
fn start_span<const N: usize>(
    name: &'static str,
    kind: SpanKind,
    parent: &Context,
    full: impl FnOnce() -> String,
    attrs: impl FnOnce() -> [KeyValue; N],
) -> Option<opentelemetry_sdk::trace::Span> {
    use opentelemetry::trace::Span as _;
    let guard = TRACER.read().unwrap_or_else(|p| p.into_inner());
    let tracer = guard.as_ref()?;
    let mut span = tracer
        .span_builder(name)
        .with_kind(kind)
        .start_with_context(tracer, parent);
    if span.is_recording() {
        span.update_name(full());
        span.set_attributes(attrs());
    }
    Some(span)
}

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TelemetryError {
    /// The exporter's runtime could not start.
    #[error("cannot start the exporter runtime: {0}")]
    Runtime(#[from] std::io::Error),
    /// The OTLP exporter could not be built (a bad endpoint, for one).
    #[error("cannot build the OTLP exporter: {0}")]
    Exporter(String),
}

/// Installed telemetry: flushes the spans not yet exported and shuts the exporter down when
/// dropped (or at [`shutdown`](Self::shutdown)). Keep it alive for as long as spans are made.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    meter: Option<SdkMeterProvider>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Telemetry {
    /// The tracer provider (to make spans of one's own, or to flush).
    pub fn provider(&self) -> Option<&SdkTracerProvider> {
        self.provider.as_ref()
    }

    /// The meter provider (to make instruments of one's own), when metrics are exported.
    pub fn meter_provider(&self) -> Option<&SdkMeterProvider> {
        self.meter.as_ref()
    }

    /// Export what is buffered now: the spans, and the metrics as they are now. Blocks; on a
    /// node's own thread the link figures are those read last ([`Telemetry::flush_async`]).
    pub fn flush(&self) {
        flush_providers(self.provider.as_ref(), self.meter.as_ref());
    }

    /// [`flush`](Self::flush) on a helper thread, waiting without blocking: from a node's
    /// own thread (an actix System) its actors go on answering, so the metrics exported are
    /// read now.
    pub async fn flush_async(&self) {
        let (p, m) = (self.provider.clone(), self.meter.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let spawned = std::thread::Builder::new()
            .name("otel-flush".into())
            .spawn(move || {
                flush_providers(p.as_ref(), m.as_ref());
                let _ = tx.send(());
            });
        if spawned.is_ok() {
            let _ = rx.await;
        }
    }

    /// Flush, shut the exporters down and uninstall the providers (spans stop being made,
    /// metrics stop being read).
    pub fn shutdown(&mut self) {
        if let Some(p) = self.provider.take() {
            ENABLED.store(false, Ordering::Release);
            set_tracer(None);
            global::set_tracer_provider(opentelemetry::trace::noop::NoopTracerProvider::new());
            let _ = p.force_flush();
            let _ = p.shutdown();
        }
        if let Some(m) = self.meter.take() {
            global::set_meter_provider(opentelemetry::metrics::noop::NoopMeterProvider::new());
            // Shutting down collects and exports one last time.
            let _ = m.shutdown();
            metrics::set_installed(false);
        }
        if let Some(rt) = self.runtime.take() {
            // Dropping a runtime may not block inside another runtime (an actix System).
            rt.shutdown_background();
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn flush_providers(p: Option<&SdkTracerProvider>, m: Option<&SdkMeterProvider>) {
    if let Some(p) = p {
        let _ = p.force_flush();
    }
    if let Some(m) = m {
        let _ = m.force_flush();
    }
}

/// Export spans and metrics of `service_name` to the OTLP/gRPC collector at `otlp_endpoint`
/// (for example `http://127.0.0.1:4317`), sampling every trace.
pub fn init(service_name: &str, otlp_endpoint: &str) -> Result<Telemetry, TelemetryError> {
    init_with(service_name, otlp_endpoint, Sampler::AlwaysOn)
}

/// [`init`] with another sampler (`Sampler::AlwaysOff` exports nothing but still propagates
/// trace contexts; `Sampler::ParentBased(..)` follows the caller's decision).
pub fn init_with(
    service_name: &str,
    otlp_endpoint: &str,
    sampler: Sampler,
) -> Result<Telemetry, TelemetryError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("otel-export")
        .enable_all()
        .build()?;
    // tonic's channel starts its tasks on the runtime it is built under: ours, not the
    // caller's (an actix System's current-thread runtime would deadlock a flush).
    let (exporter, metric_exporter) = {
        let _g = runtime.enter();
        let spans = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(otlp_endpoint)
            .with_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        let metrics = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .with_endpoint(otlp_endpoint)
            .with_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
        (spans, metrics)
    };
    let resource = Resource::builder()
        .with_service_name(service_name.to_string())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(sampler)
        .with_resource(resource.clone())
        .build();
    let meter = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(metric_exporter).build())
        .with_resource(resource)
        .build();
    let mut t = install(provider);
    t.meter = install_meter(meter).meter.take();
    t.runtime = Some(runtime);
    Ok(t)
}

/// Install `provider` (built with any exporter and sampler) as the global provider and start
/// making spans. No propagator is set: contexts travel in the envelope.
pub fn install(provider: SdkTracerProvider) -> Telemetry {
    use opentelemetry::trace::TracerProvider as _;
    global::set_tracer_provider(provider.clone());
    set_tracer(Some(provider.tracer(TRACER_NAME)));
    ENABLED.store(true, Ordering::Release);
    Telemetry {
        provider: Some(provider),
        meter: None,
        runtime: None,
    }
}

/// Install `provider` (built with any reader, an in-memory one for instance) as the global
/// meter provider and make the node's instruments on it ([`metrics`]). Metrics only: no
/// spans are made unless [`install`] (or [`init`]) is used too.
pub fn install_meter(provider: SdkMeterProvider) -> Telemetry {
    use opentelemetry::metrics::MeterProvider as _;
    metrics::register(&provider.meter(TRACER_NAME));
    metrics::set_installed(true);
    global::set_meter_provider(provider.clone());
    Telemetry {
        provider: None,
        meter: Some(provider),
        runtime: None,
    }
}

/// Whether spans are being made.
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

fn to_envelope(sc: &SpanContext) -> TraceContext {
    TraceContext {
        trace_id: sc.trace_id().to_bytes(),
        span_id: sc.span_id().to_bytes(),
        flags: sc.trace_flags().to_u8(),
    }
}

/// The remote span context a message's trace context names.
pub fn remote_span_context(t: &TraceContext) -> SpanContext {
    SpanContext::new(
        TraceId::from_bytes(t.trace_id),
        SpanId::from_bytes(t.span_id),
        TraceFlags::new(t.flags),
        true,
        TraceState::default(),
    )
}

/// A sending span (tell or ask) and the trace context to put in its envelope.
pub(crate) struct SendSpan {
    span: Option<opentelemetry_sdk::trace::Span>,
    /// What goes into the envelope (None: no trace here).
    pub trace: Option<TraceContext>,
}

impl SendSpan {
    /// A span for sending message `id` to `target` from `node`; `ask` chooses `Client` over
    /// `Producer`. Without a provider: no span, the current context (if any) passed on.
    pub fn start(ask: bool, target: &dyn std::fmt::Display, id: u32, node: u32) -> SendSpan {
        if !enabled() {
            let trace = Context::map_current(|cx| {
                let span = cx.span();
                let sc = span.span_context();
                sc.is_valid().then(|| to_envelope(sc))
            });
            return SendSpan { span: None, trace };
        }
        let (name, kind) = if ask {
            ("tipc.ask", SpanKind::Client)
        } else {
            ("tipc.tell", SpanKind::Producer)
        };
        let span = Context::map_current(|current| {
            start_span(
                name,
                kind,
                current,
                || format!("{name} {target} id={id}"),
                || {
                    [
                        KeyValue::new("tipc.node", node as i64),
                        KeyValue::new("tipc.message_id", id as i64),
                        KeyValue::new("tipc.target", target.to_string()),
                    ]
                },
            )
        });
        use opentelemetry::trace::Span as _;
        let trace = span
            .as_ref()
            .map(|s| s.span_context())
            .filter(|sc| sc.is_valid())
            .map(to_envelope);
        SendSpan { span, trace }
    }

    /// Record a failure as the span's status.
    pub fn fail(&mut self, e: &dyn std::fmt::Display) {
        use opentelemetry::trace::Span as _;
        if let Some(s) = &mut self.span {
            s.set_status(Status::error(e.to_string()));
        }
    }
}

impl Drop for SendSpan {
    fn drop(&mut self) {
        use opentelemetry::trace::Span as _;
        // An unsampled span has nothing to end (the SDK would still read the clock).
        if let Some(s) = self.span.as_mut().filter(|s| s.is_recording()) {
            s.end();
        }
    }
}

/// The span of one handled message, current while it lives (not `Send`: drop it on the thread
/// that made it, before anything attached after it).
pub(crate) struct ServeSpan {
    _guard: Option<opentelemetry::ContextGuard>,
}

impl ServeSpan {
    /// The span for handling message `id` at `service` on `node`, child of the sender's
    /// `trace` context; `ask` chooses `Server` over `Consumer`. Without a provider: the
    /// sender's context made current (so it propagates), or nothing at all.
    pub fn start(
        ask: bool,
        trace: Option<&TraceContext>,
        service: &dyn std::fmt::Display,
        id: u32,
        node: u32,
    ) -> ServeSpan {
        let parent = trace
            .map(remote_span_context)
            .filter(SpanContext::is_valid)
            .map(|sc| Context::new().with_remote_span_context(sc));
        if !enabled() {
            return ServeSpan {
                _guard: parent.map(Context::attach),
            };
        }
        let parent = parent.unwrap_or_default();
        let (name, kind) = if ask {
            ("tipc.handle ask", SpanKind::Server)
        } else {
            ("tipc.handle tell", SpanKind::Consumer)
        };
        let span = start_span(
            name,
            kind,
            &parent,
            || format!("{name} {service} id={id}"),
            || {
                [
                    KeyValue::new("tipc.node", node as i64),
                    KeyValue::new("tipc.message_id", id as i64),
                    KeyValue::new("tipc.service", service.to_string()),
                ]
            },
        );
        use opentelemetry::trace::Span as _;
        ServeSpan {
            _guard: Some(match span {
                // Unsampled: nothing to end or record, only its context to make current.
                Some(span) if !span.is_recording() => Context::new()
                    .with_remote_span_context(span.span_context().clone())
                    .attach(),
                Some(span) => parent.with_span(span).attach(),
                None => parent.attach(),
            }),
        }
    }

    /// The span for handling a raw datagram (no envelope, so no parent) at `service` on
    /// `node`: a `Server` span. Without a provider: nothing.
    pub fn raw(service: &dyn std::fmt::Display, node: u32) -> ServeSpan {
        if !enabled() {
            return ServeSpan { _guard: None };
        }
        let name = "tipc.handle raw";
        let span = start_span(
            name,
            SpanKind::Server,
            &Context::new(),
            || format!("{name} {service}"),
            || {
                [
                    KeyValue::new("tipc.node", node as i64),
                    KeyValue::new("tipc.service", service.to_string()),
                ]
            },
        );
        ServeSpan {
            _guard: span.map(|s| Context::new().with_span(s).attach()),
        }
    }

    /// Record a failure as the span's status.
    pub fn fail(&self, e: &dyn std::fmt::Display) {
        if self._guard.is_some() && enabled() {
            Context::map_current(|cx| cx.span().set_status(Status::error(e.to_string())));
        }
    }
}

/// The current context, when it carries a span worth passing to a spawned future.
pub(crate) fn current_traced() -> Option<Context> {
    Context::map_current(|cx| cx.span().span_context().is_valid().then(|| cx.clone()))
}
