//! `tracing` events as span events: [`events_layer`] records every event made while a traced
//! message is handled (in the handler, or in a future it spawned) on that message's span, so
//! a handler's `tracing::info!` shows up in the collector under the request it belongs to.
//!
//! The layer looks at the current OpenTelemetry context, the one the service layer makes
//! current while a handler runs ([`super::ServeSpan`]); it needs no `tracing` span of its own.
//! An event outside a handled message, or in one whose span the sampler did not record, costs
//! one look at the current context and is not recorded. The event's name is its message (or
//! its callsite name without one); its fields become attributes, with `level` and `target`
//! added as `tracing-opentelemetry` adds them; an `ERROR` event marks the span as failed.

use opentelemetry::trace::{Status, TraceContextExt};
use opentelemetry::{Context, KeyValue};
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context as LayerContext, Layer};

/// The `tracing` layer that records events on the span of the message being handled: add it
/// to the application's subscriber, beside its own layers. It records what the subscriber's
/// filter lets through: give the subscriber one (a level, or an `EnvFilter`), or give the layer
/// its own with `.with_filter(..)`, so that `debug!` and `trace!` on hot paths stay disabled.
///
/// ```no_run
/// use tracing_subscriber::prelude::*;
/// tracing_subscriber::registry()
///     .with(tracing_subscriber::filter::LevelFilter::INFO)
///     .with(tracing_subscriber::fmt::layer())
///     .with(tipc_runtime::telemetry::events_layer())
///     .init();
/// ```
pub fn events_layer() -> EventsLayer {
    EventsLayer { _private: () }
}

/// See [`events_layer`].
#[derive(Debug, Clone)]
pub struct EventsLayer {
    _private: (),
}

impl<S: Subscriber> Layer<S> for EventsLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: LayerContext<'_, S>) {
        if !super::enabled() {
            return;
        }
        Context::map_current(|cx| {
            let span = cx.span();
            if !span.is_recording() {
                return;
            }
            let meta = event.metadata();
            let mut fields = Fields {
                message: None,
                attrs: Vec::with_capacity(4),
            };
            fields
                .attrs
                .push(KeyValue::new("level", meta.level().as_str()));
            fields.attrs.push(KeyValue::new("target", meta.target()));
            event.record(&mut fields);
            let name = fields.message.unwrap_or_else(|| meta.name().to_string());
            if *meta.level() == Level::ERROR {
                span.set_status(Status::error(name.clone()));
            }
            span.add_event(name, fields.attrs);
        });
    }
}

/// An event's fields: its message apart, the others as attributes.
struct Fields {
    message: Option<String>,
    attrs: Vec<KeyValue>,
}

impl Visit for Fields {
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.attrs.push(KeyValue::new(field.name(), value));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        match i64::try_from(value) {
            Ok(v) => self.attrs.push(KeyValue::new(field.name(), v)),
            Err(_) => self
                .attrs
                .push(KeyValue::new(field.name(), value.to_string())),
        }
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.attrs.push(KeyValue::new(field.name(), value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.attrs.push(KeyValue::new(field.name(), value));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_string());
        } else {
            self.attrs
                .push(KeyValue::new(field.name(), value.to_string()));
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.attrs
            .push(KeyValue::new(field.name(), value.to_string()));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let v = format!("{value:?}");
        if field.name() == "message" {
            self.message = Some(v);
        } else {
            self.attrs.push(KeyValue::new(field.name(), v));
        }
    }
}
