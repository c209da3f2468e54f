//! LLM proxy (port 7007, `/api/llm/v1/`): one OpenAI-compatible door to
//! every configured model. A call is authenticated and authorized like any
//! request (the model alias is a `Tool` named `llm:<alias>` to the
//! policies; an API key may be limited to some aliases and its own per-
//! minute budgets), admitted by the usage [`daarion_usage::Meter`]
//! (quotas, budgets), served by the first deployment that answers
//! (`proxy`), and metered: one `usage.llm` / `usage.embedding` record per
//! call, whatever its outcome, and the budget settled with the real cost.
//!
//! Layout: `config` (settings), `route` (aliases, deployment order,
//! circuit breakers), `proxy` (attempts, retries, streams), `ollama`
//! (translation), `api` (routes, accounting), `access` (rules), `error`
//! (OpenAI-shaped errors).

pub mod access;
pub mod api;
pub mod config;
pub mod error;
pub mod ollama;
pub mod proxy;
pub mod route;

use std::sync::Arc;

use daarion_bus::QueuedPublisher;
use daarion_kernel::shutdown::TaskTracker;
use daarion_service::{BuildError, Context, Event, Mount, Section, Service};

pub use config::Settings;
pub use error::LlmError;

pub const SERVICE: &str = "llm";

pub static SPEC: Service = Service {
    name: SERVICE,
    port: 7007,
    version: env!("CARGO_PKG_VERSION"),
    migrations: &[],
    rules: access::RULES,
    websocket: false,
    streams: &[],
    events: &[
        Event::durable("usage.llm"),
        Event::durable("usage.embedding"),
        Event::durable(daarion_usage::meter::ALERT_SUBJECT),
    ],
    settings: Some(Section::of::<Settings>()),
    example: daarion_service::no_example,
    build: |ctx| Box::pin(async move { build(ctx) }),
};

#[derive(Clone)]
pub struct LlmState {
    catalog: Arc<route::Catalog>,
    upstreams: proxy::Upstreams,
    meter: daarion_usage::Meter,
    records: QueuedPublisher,
    access: Arc<daarion_access::Enforcer>,
    currency: Arc<str>,
    tasks: TaskTracker,
    /// Exact-match replies (non-streaming) and how long they live, when
    /// enabled.
    cache: Option<(Arc<dyn daarion_cache::Cache>, std::time::Duration)>,
}

fn build(ctx: Context) -> Result<Mount, BuildError> {
    let settings: Settings = ctx.settings()?;
    let meter: daarion_usage::Meter = ctx.component()?;
    let catalog = route::Catalog::new(&settings).map_err(BuildError::new)?;
    // Exact-match replies live in the process's cache: in-process for `up`,
    // Redis (shared by replicas) when configured.
    let cache = (settings.cache_ttl_secs > 0).then(|| {
        (
            ctx.cache.clone(),
            std::time::Duration::from_secs(settings.cache_ttl_secs),
        )
    });
    let max_request_bytes = settings.max_request_bytes;
    let access = ctx.enforcer(daarion_access::enforce::NoResources);
    let state = LlmState {
        catalog: Arc::new(catalog),
        upstreams: proxy::Upstreams::new(Arc::new(settings)).map_err(BuildError::new)?,
        currency: meter.settings().currency.as_str().into(),
        meter,
        records: ctx.events,
        access: access.clone(),
        cache,
        // Settlements of finished calls run here, so shutdown waits for them.
        tasks: ctx.tasks,
    };
    let api = api::router()
        .layer(axum::extract::DefaultBodyLimit::max(max_request_bytes))
        .with_state(state);
    Ok(Mount::new(access, api))
}

/// The metrics this crate records, with their `# HELP` text.
pub const METRICS: &[daarion_kernel::metrics::Help] = &[
    (
        "llm_requests_total",
        "LLM proxy requests, by model alias and outcome.",
    ),
    (
        "llm_streams_cancelled_total",
        "Streamed completions the client left before the end.",
    ),
    (
        "llm_tokens_total",
        "Tokens through the LLM proxy, by model alias and direction.",
    ),
    (
        "llm_upstream_attempts_total",
        "Calls to provider deployments, by deployment and outcome.",
    ),
];
