use daarion_kernel::{RequestContext, context::TraceParent};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Every event on the bus (DESIGN §4). The payload is versioned JSON; the ids
/// of the request that caused the event travel with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// `evt_` + UUIDv7: unique, and ordered by creation time.
    pub id: String,
    pub subject: String,
    /// RFC 3339 UTC.
    pub time: String,
    /// The service that published it.
    pub source: String,
    pub request_id: String,
    pub trace_id: String,
    /// The W3C trace context of the work that published it (as in
    /// CloudEvents' distributed tracing extension): its handling is a
    /// child of that span. Absent on events from before it was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Version of the payload's schema.
    pub version: u32,
    pub payload: Value,
    /// Set on an event replayed from the dead-letter store: only this
    /// consumer processes it, the others acknowledge it unseen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_for: Option<String>,
}

impl Envelope {
    /// A version-1 event carrying the current request's ids (fresh ids when
    /// no request is in progress).
    pub fn new(source: &str, subject: impl Into<String>, payload: Value) -> Self {
        let ctx = RequestContext::current_or_generate();
        Self {
            id: format!("evt_{}", uuid::Uuid::now_v7().simple()),
            subject: subject.into(),
            time: daarion_store::now(),
            source: source.to_owned(),
            traceparent: Some(ctx.traceparent()),
            request_id: ctx.request_id,
            trace_id: ctx.trace_id,
            actor: None,
            version: 1,
            payload,
            replay_for: None,
        }
    }

    pub fn with_actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    pub fn with_version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    /// The context a consumer runs the handler in, so its logs, calls and
    /// the events it publishes carry the original request's ids: a new
    /// span of the event's trace.
    pub fn context(&self) -> RequestContext {
        RequestContext {
            trace_id: self.trace_id.clone(),
            ..RequestContext::continuing(self.request_id.clone(), self.parent())
        }
    }

    /// The span that published the event, when known.
    pub fn parent(&self) -> Option<TraceParent> {
        self.traceparent
            .as_deref()
            .and_then(TraceParent::parse)
            .filter(|p| p.trace_id == self.trace_id)
    }
}
