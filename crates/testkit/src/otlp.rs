//! A fake OpenTelemetry collector: it receives traces over OTLP/HTTP with
//! protobuf bodies on `/v1/traces`, as a real collector does, and keeps
//! the spans for the test to read.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::post,
};
pub use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::{
    collector::trace::v1::{ExportTraceServiceRequest, ExportTraceServiceResponse},
    common::v1::{AnyValue, KeyValue, any_value},
    trace::v1::status::StatusCode as SpanStatus,
};
use prost::Message;

/// One span as the collector received it, its ids in lowercase hex.
#[derive(Debug, Clone, PartialEq)]
pub struct Span {
    /// The `service.name` of the process that sent it.
    pub service: String,
    pub name: String,
    pub kind: SpanKind,
    pub trace_id: String,
    pub span_id: String,
    /// `None` for a trace's root.
    pub parent_span_id: Option<String>,
    /// Values as text (`"201"`, `"GET"`).
    pub attributes: BTreeMap<String, String>,
    /// The `(trace id, span id)` of each linked span.
    pub links: Vec<(String, String)>,
    pub error: bool,
}

type Received = Arc<Mutex<Vec<Span>>>;

pub struct FakeCollector {
    addr: SocketAddr,
    spans: Received,
}

impl FakeCollector {
    pub async fn start() -> Self {
        let spans = Received::default();
        let router = Router::new()
            .route("/v1/traces", post(receive))
            .with_state(spans.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("fake collector cannot listen: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("fake collector has no address: {e}"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { addr, spans }
    }

    /// The collector's base URL, as `OTEL_EXPORTER_OTLP_ENDPOINT` takes it.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

async fn receive(State(spans): State<Received>, headers: HeaderMap, body: Bytes) -> Response {
    if headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        != Some("application/x-protobuf")
    {
        return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response();
    }
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let mut received = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans
            .resource
            .map(|r| attributes(r.attributes))
            .unwrap_or_default();
        let service = resource.get("service.name").cloned().unwrap_or_default();
        for span in resource_spans
            .scope_spans
            .into_iter()
            .flat_map(|scope| scope.spans)
        {
            received.push(Span {
                service: service.clone(),
                kind: span.kind(),
                name: span.name,
                trace_id: hex::encode(&span.trace_id),
                span_id: hex::encode(&span.span_id),
                parent_span_id: (!span.parent_span_id.is_empty())
                    .then(|| hex::encode(&span.parent_span_id)),
                attributes: attributes(span.attributes),
                links: span
                    .links
                    .iter()
                    .map(|l| (hex::encode(&l.trace_id), hex::encode(&l.span_id)))
                    .collect(),
                error: span.status.is_some_and(|s| s.code() == SpanStatus::Error),
            });
        }
    }
    if let Ok(mut spans) = spans.lock() {
        spans.extend(received);
    }
    (
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    )
        .into_response()
}

fn attributes(list: Vec<KeyValue>) -> BTreeMap<String, String> {
    list.into_iter()
        .map(|kv| (kv.key, kv.value.map(text).unwrap_or_default()))
        .collect()
}

fn text(value: AnyValue) -> String {
    match value.value {
        Some(any_value::Value::StringValue(s)) => s,
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}
