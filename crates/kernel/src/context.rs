//! Per-request context: ids that travel with a request through handlers,
//! logs, outgoing calls and bus events.

use std::future::Future;

use uuid::Uuid;

tokio::task_local! {
    static CURRENT: RequestContext;
}

/// Ids that identify one request (or one bus delivery) end to end, and
/// its place in the trace: the W3C trace context of the work in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    pub request_id: String,
    pub trace_id: String,
    /// This work's span: the parent of the spans it causes elsewhere (the
    /// calls it makes, the events it publishes).
    pub span_id: String,
    /// The span that caused this work (a caller's, an event publisher's).
    pub parent_span_id: Option<String>,
    /// The W3C `sampled` flag: whether the trace is recorded.
    pub sampled: bool,
}

impl RequestContext {
    /// A context with fresh ids, for work that no request started (timers,
    /// start-up tasks).
    pub fn generate() -> Self {
        Self::continuing(new_request_id(), None)
    }

    /// The context of the request `request_id`, in a new span of `parent`'s
    /// trace (of a new trace without one).
    pub fn continuing(request_id: String, parent: Option<TraceParent>) -> Self {
        let (trace_id, parent_span_id, sampled) = match parent {
            Some(p) => (p.trace_id, Some(p.span_id), p.sampled),
            None => (new_trace_id(), None, true),
        };
        Self {
            request_id,
            trace_id,
            span_id: new_span_id(),
            parent_span_id,
            sampled,
        }
    }

    /// The W3C `traceparent` header value that makes this work's span the
    /// parent (of a call to another service, of an event's handling).
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id,
            self.span_id,
            u8::from(self.sampled)
        )
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

/// Adds the current request's id and trace context to a call to another
/// service, so its work joins this request's logs and trace.
pub fn propagate(request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    match RequestContext::current() {
        Some(ctx) => request
            .header("traceparent", ctx.traceparent())
            .header("x-request-id", ctx.request_id),
        None => request,
    }
}

/// A caller's place in a trace, from a W3C `traceparent`
/// (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: String,
    pub span_id: String,
    pub sampled: bool,
}

impl TraceParent {
    /// `None` for a header that is not a valid `traceparent` (which then
    /// starts a new trace, as the W3C recommendation says).
    pub fn parse(header: &str) -> Option<Self> {
        let mut parts = header.trim().split('-');
        let (version, trace_id, span_id, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        // Version 00 has exactly four fields; later versions may add some.
        if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        if flags.len() != 2 || !flags.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let flags = u8::from_str_radix(flags, 16).ok()?;
        Some(Self {
            trace_id: hex_id(trace_id, 32)?,
            span_id: hex_id(span_id, 16)?,
            sampled: flags & 1 == 1,
        })
    }
}

/// `id` in lowercase when it is `len` hex digits, not all zeros.
fn hex_id(id: &str, len: usize) -> Option<String> {
    let valid = id.len() == len
        && id.bytes().all(|b| b.is_ascii_hexdigit())
        && id.bytes().any(|b| b != b'0');
    valid.then(|| id.to_ascii_lowercase())
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
    fn traceparent_yields_the_callers_place_in_the_trace() {
        let tp = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01";
        assert_eq!(
            TraceParent::parse(tp),
            Some(TraceParent {
                trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
                span_id: "00f067aa0ba902b7".into(),
                sampled: true,
            })
        );
        let unsampled =
            TraceParent::parse("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").unwrap();
        assert!(!unsampled.sampled);
        // A later version may carry more fields.
        assert!(
            TraceParent::parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-xyz")
                .is_some()
        );
        for bad in [
            "00-zz-00-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_context_continues_its_callers_trace_in_a_span_of_its_own() {
        let caller = RequestContext::generate();
        let parent = TraceParent::parse(&caller.traceparent()).unwrap();
        let ctx = RequestContext::continuing("req_2".into(), Some(parent));
        assert_eq!(ctx.trace_id, caller.trace_id);
        assert_eq!(ctx.parent_span_id.as_deref(), Some(caller.span_id.as_str()));
        assert_ne!(ctx.span_id, caller.span_id);
        assert!(
            ctx.traceparent()
                .starts_with(&format!("00-{}-{}-01", ctx.trace_id, ctx.span_id))
        );
        let root = RequestContext::generate();
        assert_eq!(root.parent_span_id, None);
        assert_ne!(root.trace_id, caller.trace_id);
    }

    #[tokio::test]
    async fn scope_sets_the_current_context() {
        assert!(RequestContext::current().is_none());
        let ctx = RequestContext::generate();
        let seen = ctx.clone().scope(async { RequestContext::current() }).await;
        assert_eq!(seen, Some(ctx));
    }
}
