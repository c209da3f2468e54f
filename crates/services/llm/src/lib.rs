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
//! (translation), `api` (routes, accounting), `error` (OpenAI-shaped errors).

pub mod api;
pub mod config;
pub mod error;
pub mod ollama;
pub mod proxy;
pub mod route;

use std::sync::Arc;

use daarion_access::AccessDeps;
use daarion_bus::QueuedPublisher;
use daarion_kernel::{ServiceDescriptor, shutdown::TaskTracker};

pub use config::Settings;
pub use error::LlmError;

pub const SERVICE: &str = "llm";

pub const DESCRIPTOR: ServiceDescriptor = ServiceDescriptor {
    name: SERVICE,
    port: 7007,
    version: env!("CARGO_PKG_VERSION"),
};

pub struct Deps {
    /// Where usage records go (`USAGE` stream, in batches).
    pub records: QueuedPublisher,
    pub access: AccessDeps,
    pub meter: daarion_usage::Meter,
    /// Where the response cache keeps replies: in-process for `up`, Redis
    /// (shared by replicas) when configured.
    pub cache: Arc<dyn daarion_cache::Cache>,
    pub settings: Settings,
    /// Settlements of finished calls run here, so shutdown waits for them.
    pub tasks: TaskTracker,
}

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

pub struct Llm {
    pub api: axum::Router,
    pub openapi: utoipa::openapi::OpenApi,
}

pub fn build(deps: Deps) -> Result<Llm, String> {
    let catalog = route::Catalog::new(&deps.settings)?;
    let cache = (deps.settings.cache_ttl_secs > 0).then(|| {
        (
            deps.cache,
            std::time::Duration::from_secs(deps.settings.cache_ttl_secs),
        )
    });
    let max_request_bytes = deps.settings.max_request_bytes;
    let access = daarion_access::Enforcer::new(
        SERVICE,
        api::RULES,
        Arc::new(daarion_access::enforce::NoResources),
        deps.access,
    );
    let state = LlmState {
        catalog: Arc::new(catalog),
        upstreams: proxy::Upstreams::new(Arc::new(deps.settings))?,
        currency: deps.meter.settings().currency.as_str().into(),
        meter: deps.meter,
        records: deps.records,
        access: access.clone(),
        cache,
        tasks: deps.tasks,
    };
    let (api, openapi) = api::router().split_for_parts();
    Ok(Llm {
        api: api
            .route_layer(axum::middleware::from_fn_with_state(
                access,
                daarion_access::enforce::enforce,
            ))
            .layer(axum::extract::DefaultBodyLimit::max(max_request_bytes))
            .with_state(state),
        openapi,
    })
}
