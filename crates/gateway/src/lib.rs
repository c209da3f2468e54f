//! The gateway: DAARION's single entry point.
//!
//! One route table (`config`), hot-swappable, maps path prefixes to upstream
//! groups (`upstream`): load balancing, active health checks, passive
//! ejection. Requests are forwarded by `proxy` (streaming HTTP, WebSocket
//! relay, safe retries, JSON 502/503/504). `edge` holds what both runtime
//! shapes apply in front of every request: client address through trusted
//! proxies, rate limits, security headers. In `daarion gateway` every route
//! is proxied; in `daarion up` the services mounted in-process answer first
//! and the rest (extra upstreams such as Grafana) are proxied the same way.
//!
//! Layout: `config`, `upstream`, `proxy`, `edge`, `export` (nginx and
//! Kubernetes Ingress renderings of the same table), and here [`Gateway`].

pub mod config;
pub mod edge;
pub mod export;
pub mod proxy;
pub mod static_ui;
pub mod upstream;
pub mod ws_limit;

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use arc_swap::ArcSwap;
use axum::{
    Router,
    extract::{ConnectInfo, Request, State},
    middleware,
    response::{IntoResponse, Response},
    routing::get,
};
use daarion_cache::{Cache, RateLimit};
use daarion_kernel::ApiError;
use ipnet::IpNet;
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use tower_http::compression::{Predicate, predicate::DefaultPredicate};

use crate::{
    config::RouteTable,
    proxy::{Target, UpstreamClient},
    upstream::Group,
};

/// Gateway settings outside the route table.
#[derive(Debug, Clone)]
pub struct EdgeSettings {
    /// Proxies whose `X-Forwarded-*` headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// The limit of `/api/` routes that do not set their own.
    pub default_rate_limit: RateLimit,
    /// Whether this listener is TLS (HSTS, `X-Forwarded-Proto: https`).
    pub tls: bool,
    /// The route table file, watched for changes; `None`: the built-in table.
    pub routes_file: Option<PathBuf>,
    /// Origins allowed to call the API from a browser (CORS); empty: CORS off.
    pub cors_origins: Vec<String>,
    /// Serve the embedded web UI on paths no route claims.
    pub web_ui: bool,
    /// Who may read `/metrics`.
    pub metrics: daarion_kernel::metrics::MetricsAccess,
}

impl Default for EdgeSettings {
    fn default() -> Self {
        Self {
            trusted_proxies: Vec::new(),
            default_rate_limit: RateLimit {
                per_second: 10.0,
                burst: 20,
            },
            tls: false,
            routes_file: None,
            cors_origins: Vec::new(),
            web_ui: true,
            metrics: daarion_kernel::metrics::MetricsAccess::default(),
        }
    }
}

impl EdgeSettings {
    pub fn scheme(&self) -> &'static str {
        if self.tls { "https" } else { "http" }
    }
}

/// One loaded route table with its live upstream state.
pub struct Loaded {
    pub table: RouteTable,
    pub groups: BTreeMap<String, Arc<Group>>,
    /// Stops this table's health checks when a newer table replaces it.
    checks: CancellationToken,
}

pub struct Gateway {
    current: ArcSwap<Loaded>,
    /// Upstreams served in this process (`daarion up`): never proxied or probed.
    local: std::collections::BTreeSet<String>,
    pub settings: EdgeSettings,
    pub cache: Arc<dyn Cache>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Gateway {
    pub fn new(
        table: RouteTable,
        settings: EdgeSettings,
        cache: Arc<dyn Cache>,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Arc<Self> {
        Self::with_local(table, settings, cache, shutdown, tasks, Default::default())
    }

    /// A gateway in front of services mounted in this process: routes to the
    /// `local` upstreams are answered by them, not proxied.
    pub fn with_local(
        table: RouteTable,
        settings: EdgeSettings,
        cache: Arc<dyn Cache>,
        shutdown: CancellationToken,
        tasks: TaskTracker,
        local: std::collections::BTreeSet<String>,
    ) -> Arc<Self> {
        let loaded = Self::load(&table, &shutdown, &tasks, &local);
        Arc::new(Self {
            current: ArcSwap::from_pointee(loaded),
            local,
            settings,
            cache,
            shutdown,
            tasks,
        })
    }

    fn load(
        table: &RouteTable,
        shutdown: &CancellationToken,
        tasks: &TaskTracker,
        local: &std::collections::BTreeSet<String>,
    ) -> Loaded {
        let probe_client = proxy::client(Duration::from_secs(2));
        let checks = shutdown.child_token();
        let groups = table
            .upstreams
            .iter()
            .map(|(name, config)| {
                let group = Arc::new(Group::new(name, config.clone()));
                if config.health_check.is_some()
                    && !config.addresses.is_empty()
                    && !local.contains(name)
                {
                    tasks.spawn(upstream::run_health_checks(
                        group.clone(),
                        probe_client.clone(),
                        checks.clone(),
                    ));
                }
                (name.clone(), group)
            })
            .collect();
        Loaded {
            table: table.clone(),
            groups,
            checks,
        }
    }

    pub fn loaded(&self) -> Arc<Loaded> {
        self.current.load_full()
    }

    /// Replaces the route table. Requests in flight finish on the old one;
    /// new requests use the new one; the old health checks stop.
    pub fn reload(&self, table: RouteTable) {
        let loaded = Self::load(&table, &self.shutdown, &self.tasks, &self.local);
        let old = self.current.swap(Arc::new(loaded));
        old.checks.cancel();
        metrics::counter!("gateway_reloads_total", "outcome" => "applied").increment(1);
        tracing::info!(routes = table.routes.len(), "route table reloaded");
    }

    /// Reloads from the routes file; a broken file keeps the current table.
    pub fn reload_from_file(&self) -> Result<(), config::ConfigError> {
        let Some(path) = &self.settings.routes_file else {
            return Ok(());
        };
        match RouteTable::load(path) {
            Ok(table) => {
                self.reload(table);
                Ok(())
            }
            Err(error) => {
                metrics::counter!("gateway_reloads_total", "outcome" => "rejected").increment(1);
                tracing::error!(%error, file = %path.display(), "route table rejected; keeping the current one");
                Err(error)
            }
        }
    }

    /// Reloads on SIGHUP and when the routes file changes, until shutdown.
    pub async fn watch_reloads(self: Arc<Self>) {
        let Some(path) = self.settings.routes_file.clone() else {
            return;
        };
        let modified = |p: &std::path::Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
        let mut last = modified(&path);
        #[cfg(unix)]
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        loop {
            #[cfg(unix)]
            let sighup = async {
                match hangup.as_mut() {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            #[cfg(not(unix))]
            let sighup = std::future::pending::<()>();
            tokio::select! {
                () = self.shutdown.cancelled() => return,
                () = sighup => { let _ = self.reload_from_file(); }
                () = tokio::time::sleep(Duration::from_millis(500)) => {
                    let now = modified(&path);
                    if now != last {
                        last = now;
                        let _ = self.reload_from_file();
                    }
                }
            }
        }
    }

    /// `/health`: the gateway is healthy when every configured upstream has a
    /// usable address.
    pub fn health(&self) -> serde_json::Value {
        let loaded = self.loaded();
        let mut upstreams = serde_json::Map::new();
        let mut healthy = true;
        for (name, group) in &loaded.groups {
            if group.endpoints.is_empty() || self.local.contains(name) {
                continue;
            }
            let up = group.healthy_count();
            healthy &= up > 0;
            upstreams.insert(
                name.clone(),
                serde_json::json!({ "healthy": up, "total": group.endpoints.len() }),
            );
        }
        serde_json::json!({
            "status": if healthy { "healthy" } else { "unhealthy" },
            "service": "gateway",
            "upstreams": upstreams,
        })
    }

    /// Forwards a request along the route table.
    pub async fn proxy(self: &Arc<Self>, socket: SocketAddr, request: Request) -> Response {
        let loaded = self.loaded();
        let route = loaded
            .table
            .route_for(request.uri().path())
            .filter(|route| !self.local.contains(&route.upstream));
        let Some(route) = route else {
            let ui = self.settings.web_ui
                && !request.uri().path().starts_with("/api/")
                && !request.uri().path().starts_with("/ws/");
            if ui
                && let Some(response) =
                    static_ui::serve(request.method(), request.uri().path(), request.headers())
            {
                return response;
            }
            return ApiError::not_found("no such route").into_response();
        };
        let Some(group) = loaded.groups.get(&route.upstream) else {
            return ApiError::not_found("no such route").into_response();
        };
        let client = thread_client(&loaded, route.timeouts.connect_ms);
        let peer = edge::peer(
            socket,
            request.headers(),
            &self.settings.trusted_proxies,
            self.settings.scheme(),
        );
        proxy::forward(
            Target {
                route,
                group,
                client: &client,
                peer: &peer,
                tasks: &self.tasks,
                shutdown: &self.shutdown,
            },
            request,
        )
        .await
    }

    /// Edge middleware in front of `router`: rate limits, response
    /// compression (gzip, brotli; never for event streams), CORS when
    /// configured, and security headers.
    pub fn edge(self: &Arc<Self>, router: Router) -> Router {
        let router = router
            .layer(middleware::from_fn_with_state(
                self.clone(),
                edge::rate_limit,
            ))
            .layer(
                tower_http::compression::CompressionLayer::new()
                    .gzip(true)
                    .br(true)
                    .compress_when(DefaultPredicate::new().and(
                        |status, _, headers: &axum::http::HeaderMap, _: &_| {
                            !daarion_kernel::error::needs_standard_body(status, headers)
                        },
                    )),
            );
        let router = match edge::cors(&self.settings.cors_origins) {
            Some(cors) => router.layer(cors),
            None => router,
        };
        router.layer(middleware::from_fn_with_state(
            self.clone(),
            edge::security_headers,
        ))
    }

    /// The proxying router of `daarion gateway`: `/healthz`, `/health`,
    /// `/metrics`, and every other path through the route table.
    pub fn router(self: &Arc<Self>) -> Router {
        let health = self.clone();
        let router = Router::new()
            .route("/healthz", get(|| async { "OK" }))
            .route(
                "/health",
                get(move || {
                    let report = health.health();
                    async move {
                        let status = if report["status"] == "healthy" {
                            axum::http::StatusCode::OK
                        } else {
                            axum::http::StatusCode::SERVICE_UNAVAILABLE
                        };
                        (status, axum::Json(report))
                    }
                }),
            )
            .route(
                "/metrics",
                self.settings
                    .metrics
                    .clone()
                    .route(self.settings.trusted_proxies.clone()),
            )
            .fallback(fallback)
            .with_state(self.clone());
        self.edge(router)
    }
}

thread_local! {
    /// This thread's upstream clients (their pools) for the loaded table, by
    /// connect timeout: a pooled connection is served by the runtime that
    /// opened it, so a thread that borrows another's would hand every
    /// request across threads (with `connection_threads`, never).
    static CLIENTS: std::cell::RefCell<(usize, BTreeMap<u64, UpstreamClient>)> =
        std::cell::RefCell::default();
}

fn thread_client(loaded: &Arc<Loaded>, connect_ms: u64) -> UpstreamClient {
    // A reloaded table starts new pools.
    let generation = Arc::as_ptr(loaded) as usize;
    CLIENTS.with_borrow_mut(|(current, clients)| {
        if *current != generation {
            clients.clear();
            *current = generation;
        }
        clients
            .entry(connect_ms)
            .or_insert_with(|| proxy::client(Duration::from_millis(connect_ms)))
            .clone()
    })
}

/// The catch-all: forwards along the route table.
pub async fn fallback(
    State(gateway): State<Arc<Gateway>>,
    ConnectInfo(socket): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    gateway.proxy(socket, request).await
}

/// The metrics this crate records, with their `# HELP` text.
pub const METRICS: &[daarion_kernel::metrics::Help] = &[
    (
        "gateway_rate_limited_total",
        "Requests the edge refused for their client address rate limit, by route.",
    ),
    ("gateway_reloads_total", "Route table reloads, by outcome."),
    (
        "gateway_upstream_connections_opened_total",
        "Connections opened to upstream addresses, by address.",
    ),
    (
        "gateway_upstream_ejections_total",
        "Upstream addresses ejected after repeated errors, by upstream.",
    ),
    (
        "gateway_upstream_requests_total",
        "Requests proxied, by upstream, address and outcome.",
    ),
    (
        "gateway_upstream_retries_total",
        "Requests retried on another address, by upstream.",
    ),
    (
        "gateway_ws_frames_refused_total",
        "WebSocket frames refused for their size.",
    ),
    (
        "gateway_upstream_healthy",
        "Whether an upstream address passes its health check (1) or not (0).",
    ),
];
