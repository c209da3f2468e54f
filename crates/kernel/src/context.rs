//! Per-request context: ids that travel with a request through handlers,
//! logs, outgoing calls and bus events.

use std::future::Future;

use uuid::Uuid;

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// Ids that identify one request (or one bus delivery) end to end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub request_id: String,
    pub trace_id: String,
}

impl RequestContext {
    /// A context with fresh ids, for work that no request started (timers,
    /// start-up tasks).
    pub fn generate() -> Self {
        Self {
            request_id: new_request_id(),
            trace_id: new_trace_id(),
        }
    }

    /// A W3C `traceparent` header value that continues this trace with a
    /// new span (for a call to another service).
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-01", self.trace_id, new_span_id())
    }

    /// The context of the task in progress, if one was entered with
    /// [`RequestContext::scope`].
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// The current context or a fresh one.
    pub fn current_or_generate() -> Self {
        Self::current().unwrap_or_else(Self::generate)
    }

    /// Runs `fut` with this context as the current one.
    pub async fn scope<F: Future>(self, fut: F) -> F::Output {
        CURRENT.scope(self, fut).await
    }

    /// Runs `f` with this context as the current one (work done for a
    /// request by another task, e.g. a writer batching several requests).
    pub fn sync_scope<R>(self, f: impl FnOnce() -> R) -> R {
        CURRENT.sync_scope(self, f)
    }
}

pub fn new_request_id() -> String {
    format!("req_{}", Uuid::now_v7().simple())
}

/// A W3C trace id: 32 lowercase hex digits.
pub fn new_trace_id() -> String {
    Uuid::new_v4().simple().to_string()
}

/// A W3C parent (span) id: 16 lowercase hex digits, never all zeros.
pub fn new_span_id() -> String {
    let id = Uuid::new_v4().as_u64_pair().0 | 1;
    format!("{id:016x}")
}

/// Accepts a caller's request id when it is short printable ASCII; anything
/// else is replaced so that logs and headers stay safe.
pub fn accept_request_id(candidate: &str) -> Option<String> {
    let ok = !candidate.is_empty()
        && candidate.len() <= 128
        && candidate
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=".contains(&b));
    ok.then(|| candidate.to_owned())
}

/// Extracts the trace id from a W3C `traceparent` header
/// (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`).
pub fn trace_id_from_traceparent(header: &str) -> Option<String> {
    let mut parts = header.trim().split('-');
    let (_version, trace_id) = (parts.next()?, parts.next()?);
    let valid = trace_id.len() == 32
        && trace_id.bytes().all(|b| b.is_ascii_hexdigit())
        && trace_id.bytes().any(|b| b != b'0');
    valid.then(|| trace_id.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_accepted_only_when_safe() {
        assert_eq!(accept_request_id("abc-123").as_deref(), Some("abc-123"));
        assert_eq!(accept_request_id(""), None);
        assert_eq!(accept_request_id("a b"), None);
        assert_eq!(accept_request_id("x\ny"), None);
        assert_eq!(accept_request_id(&"a".repeat(129)), None);
    }

    #[test]
    fn traceparent_yields_the_trace_id() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(
            trace_id_from_traceparent(tp).as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(trace_id_from_traceparent("00-zz-00-01"), None);
        assert_eq!(
            trace_id_from_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
            None
        );
    }

    #[tokio::test]
    async fn scope_sets_the_current_context() {
        assert!(RequestContext::current().is_none());
        let ctx = RequestContext::generate();
        let seen = ctx.clone().scope(async { RequestContext::current() }).await;
        assert_eq!(seen, Some(ctx));
    }
}
