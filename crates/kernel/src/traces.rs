//! OpenTelemetry traces over OTLP/HTTP (protobuf), off unless a collector
//! is configured.
//!
//! A span is started for each request a service answers (kind server) and
//! each event a consumer handles (kind consumer). Its ids are those of the
//! work's [`RequestContext`]: the W3C trace context the kit already carries
//! on internal calls (`traceparent`) and on bus events. So one trace id
//! follows a request from the gateway through the services and the bus,
//! and it is the same id as the `trace_id` in the logs.
//!
//! The standard `OTEL_*` variables apply: `OTEL_EXPORTER_OTLP_ENDPOINT`
//! (or `_TRACES_ENDPOINT`) turns traces on as the setting does, and
//! `OTEL_SDK_DISABLED=true` turns them off. Other variables tune the
//! exporter (`_HEADERS`, `_TIMEOUT`), the batching (`OTEL_BSP_*`), the
//! sampler (`OTEL_TRACES_SAMPLER`) and the resource (`OTEL_SERVICE_NAME`,
//! `OTEL_RESOURCE_ATTRIBUTES`).

use std::{borrow::Cow, cell::Cell, sync::OnceLock};

use opentelemetry::{
    Context, KeyValue,
    trace::{
        Link, Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt as _, TraceFlags,
        TraceId, TraceState, Tracer as _,
    },
};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::{
    Resource,
    trace::{IdGenerator, RandomIdGenerator, SdkTracerProvider, Tracer},
};

use crate::context::{RequestContext, TraceParent};

/// This process's exporter and the tracer that starts spans on it, once
/// traces are on.
static TRACES: OnceLock<(SdkTracerProvider, Tracer)> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
#[error("traces cannot be exported: {0}")]
pub struct TracesError(String);

/// Starts exporting this process's spans to the OTLP/HTTP collector at
/// `endpoint` (its base URL, e.g. `http://127.0.0.1:4318`), or to the one
/// the `OTEL_EXPORTER_OTLP_*ENDPOINT` variables name. Whether traces are on.
/// Later calls change nothing.
pub fn init(service: &str, version: &str, endpoint: Option<&str>) -> Result<bool, TracesError> {
    if !wanted(endpoint, |name| std::env::var(name).ok()) || TRACES.get().is_some() {
        return Ok(TRACES.get().is_some());
    }
    // The exporter's HTTP client takes the process's TLS provider.
    crate::server::install_crypto_provider();
    let mut exporter = opentelemetry_otlp::SpanExporter::builder().with_http();
    if let Some(base) = endpoint {
        exporter = exporter.with_endpoint(format!("{}/v1/traces", base.trim_end_matches('/')));
    }
    let exporter = exporter.build().map_err(|e| TracesError(e.to_string()))?;
    let mut resource =
        Resource::builder().with_attribute(KeyValue::new("service.version", version.to_owned()));
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service.to_owned());
    }
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_id_generator(ContextIds)
        .with_resource(resource.build())
        .build();
    let tracer = {
        use opentelemetry::trace::TracerProvider as _;
        provider.tracer("daarion")
    };
    let _ = TRACES.set((provider, tracer));
    Ok(true)
}

/// Whether traces are asked for: by the setting or the standard variables,
/// unless the SDK is disabled.
fn wanted(endpoint: Option<&str>, var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
    let disabled = var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        || var("OTEL_TRACES_EXPORTER").is_some_and(|v| v.trim() == "none");
    !disabled
        && (endpoint.is_some_and(|e| !e.trim().is_empty())
            || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            || set("OTEL_EXPORTER_OTLP_ENDPOINT"))
}

/// Sends the spans still batched and stops exporting (at exit).
pub fn shutdown() {
    if let Some((provider, _)) = TRACES.get()
        && let Err(error) = provider.shutdown()
    {
        tracing::warn!(%error, "the last spans were not exported");
    }
}

thread_local! {
    /// The ids of the span being started on this thread (see [`ContextIds`]).
    static STARTING: Cell<Option<(TraceId, SpanId)>> = const { Cell::new(None) };
}

/// The SDK takes a span's ids only from its id generator. This one hands
/// out the ids of the [`RequestContext`] whose span is being started: they
/// are set on this thread just before the span is built, synchronously,
/// and cleared after. (Only [`Span`] starts spans: the provider is not the
/// process's global one.)
#[derive(Debug)]
struct ContextIds;

impl IdGenerator for ContextIds {
    fn new_trace_id(&self) -> TraceId {
        STARTING
            .get()
            .map_or_else(|| RandomIdGenerator::default().new_trace_id(), |ids| ids.0)
    }

    fn new_span_id(&self) -> SpanId {
        STARTING
            .get()
            .map_or_else(|| RandomIdGenerator::default().new_span_id(), |ids| ids.1)
    }
}

/// What a span stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A request this service answers.
    Server,
    /// Events a consumer handles.
    Consumer,
}

/// The span of one piece of work; it ends when dropped. Nothing is recorded
/// when traces are off.
#[must_use = "a span ends when dropped"]
pub struct Span(Option<opentelemetry_sdk::trace::Span>);

impl Span {
    /// Starts the span of `ctx`, a child of `ctx.parent_span_id` when set,
    /// and records in `ctx` whether it is sampled (so the work's calls and
    /// events say so). `name` is called only when traces are on.
    pub fn start(kind: Kind, ctx: &mut RequestContext, name: impl FnOnce() -> String) -> Self {
        Self::linked(kind, ctx, &[], name)
    }

    /// Like [`Span::start`], linked to other spans: a batch's span links
    /// the spans that published its events.
    pub fn linked(
        kind: Kind,
        ctx: &mut RequestContext,
        links: &[TraceParent],
        name: impl FnOnce() -> String,
    ) -> Self {
        Self(
            TRACES
                .get()
                .and_then(|(_, t)| start_on(t, kind, name().into(), ctx, links)),
        )
    }

    /// Whether the span is recorded (worth building attribute values for).
    pub fn is_recording(&self) -> bool {
        self.0.as_ref().is_some_and(|s| s.is_recording())
    }

    pub fn set(&mut self, key: &'static str, value: impl Into<opentelemetry::Value>) {
        if let Some(span) = self.0.as_mut() {
            span.set_attribute(KeyValue::new(key, value));
        }
    }

    /// Marks the work as failed.
    pub fn fail(&mut self, description: impl Into<Cow<'static, str>>) {
        if let Some(span) = self.0.as_mut() {
            span.set_status(Status::error(description));
        }
    }
}

fn start_on(
    tracer: &Tracer,
    kind: Kind,
    name: Cow<'static, str>,
    ctx: &mut RequestContext,
    links: &[TraceParent],
) -> Option<opentelemetry_sdk::trace::Span> {
    let trace_id = TraceId::from_hex(&ctx.trace_id).ok()?;
    let span_id = SpanId::from_hex(&ctx.span_id).ok()?;
    let parent = ctx
        .parent_span_id
        .as_deref()
        .and_then(|parent| remote(&ctx.trace_id, parent, ctx.sampled))
        .map_or_else(Context::new, |parent| {
            Context::new().with_remote_span_context(parent)
        });
    let links = links
        .iter()
        .filter_map(|p| remote(&p.trace_id, &p.span_id, p.sampled))
        .map(Link::with_context)
        .collect();
    let builder = tracer
        .span_builder(name)
        .with_kind(match kind {
            Kind::Server => SpanKind::Server,
            Kind::Consumer => SpanKind::Consumer,
        })
        .with_links(links);
    STARTING.set(Some((trace_id, span_id)));
    let span = builder.start_with_context(tracer, &parent);
    STARTING.set(None);
    ctx.sampled = span.span_context().is_sampled();
    Some(span)
}

/// The context of a span in another process (a caller, a publisher).
fn remote(trace_id: &str, span_id: &str, sampled: bool) -> Option<SpanContext> {
    Some(SpanContext::new(
        TraceId::from_hex(trace_id).ok()?,
        SpanId::from_hex(span_id).ok()?,
        TraceFlags::default().with_sampled(sampled),
        true,
        TraceState::default(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::trace::{InMemorySpanExporter, Sampler, SpanData};

    fn tracer(sampler: Sampler) -> (SdkTracerProvider, Tracer, InMemorySpanExporter) {
        use opentelemetry::trace::TracerProvider as _;
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .with_id_generator(ContextIds)
            .with_sampler(sampler)
            .build();
        let tracer = provider.tracer("test");
        (provider, tracer, exporter)
    }

    fn finished(exporter: &InMemorySpanExporter) -> Vec<SpanData> {
        exporter.get_finished_spans().unwrap()
    }

    /// Starts and ends the span of `ctx`.
    fn record(tracer: &Tracer, kind: Kind, ctx: &mut RequestContext, links: &[TraceParent]) {
        drop(start_on(tracer, kind, "work".into(), ctx, links));
    }

    #[test]
    fn a_span_has_its_contexts_ids_and_parent() {
        let (_provider, tracer, exporter) = tracer(Sampler::AlwaysOn);
        let caller =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").unwrap();
        let mut ctx = RequestContext::continuing("req_1".into(), Some(caller));
        record(&tracer, Kind::Server, &mut ctx, &[]);
        let mut root = RequestContext::generate();
        record(&tracer, Kind::Consumer, &mut root, &[]);

        let spans = finished(&exporter);
        let child = &spans[0];
        assert_eq!(child.span_context.trace_id().to_string(), ctx.trace_id);
        assert_eq!(child.span_context.span_id().to_string(), ctx.span_id);
        assert_eq!(child.parent_span_id.to_string(), "00f067aa0ba902b7");
        assert!(child.parent_span_is_remote);
        assert_eq!(child.span_kind, SpanKind::Server);
        let root_span = &spans[1];
        assert_eq!(root_span.span_context.trace_id().to_string(), root.trace_id);
        assert_eq!(root_span.span_context.span_id().to_string(), root.span_id);
        assert_eq!(root_span.parent_span_id, SpanId::INVALID);
        assert_eq!(root_span.span_kind, SpanKind::Consumer);
    }

    #[test]
    fn a_trace_the_caller_does_not_record_is_not_recorded_below_it() {
        let (_provider, tracer, exporter) =
            tracer(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
        let caller =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        let mut ctx = RequestContext::continuing("req_1".into(), Some(caller));
        record(&tracer, Kind::Server, &mut ctx, &[]);
        assert!(finished(&exporter).is_empty());
        assert!(!ctx.sampled);
        assert!(ctx.traceparent().ends_with("-00"));
    }

    #[test]
    fn a_root_the_sampler_drops_says_so_downstream() {
        let (_provider, tracer, exporter) = tracer(Sampler::AlwaysOff);
        let mut ctx = RequestContext::generate();
        assert!(ctx.sampled);
        record(&tracer, Kind::Server, &mut ctx, &[]);
        assert!(finished(&exporter).is_empty());
        assert!(!ctx.sampled);
    }

    #[test]
    fn a_batch_links_the_spans_of_its_events() {
        let (_provider, tracer, exporter) = tracer(Sampler::AlwaysOn);
        let events: Vec<TraceParent> = (0..2)
            .map(|_| TraceParent::parse(&RequestContext::generate().traceparent()).unwrap())
            .collect();
        let mut ctx = RequestContext::generate();
        record(&tracer, Kind::Consumer, &mut ctx, &events);
        let spans = finished(&exporter);
        let linked: Vec<(String, String)> = spans[0]
            .links
            .iter()
            .map(|l| {
                (
                    l.span_context.trace_id().to_string(),
                    l.span_context.span_id().to_string(),
                )
            })
            .collect();
        let expected: Vec<(String, String)> = events
            .iter()
            .map(|e| (e.trace_id.clone(), e.span_id.clone()))
            .collect();
        assert_eq!(linked, expected);
    }

    #[test]
    fn traces_are_off_unless_a_collector_is_named() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| *k == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert!(!wanted(None, env(&[])));
        assert!(!wanted(Some(" "), env(&[])));
        assert!(wanted(Some("http://127.0.0.1:4318"), env(&[])));
        assert!(wanted(
            None,
            env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")])
        ));
        assert!(wanted(
            None,
            env(&[(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://c:4318/v1/traces"
            )])
        ));
        assert!(!wanted(
            Some("http://127.0.0.1:4318"),
            env(&[("OTEL_SDK_DISABLED", "true")])
        ));
        assert!(!wanted(
            None,
            env(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_TRACES_EXPORTER", "none")
            ])
        ));
    }
}
