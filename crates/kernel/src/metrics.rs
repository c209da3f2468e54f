//! The process-wide Prometheus recorder and the HTTP metrics middleware.
//!
//! Names follow STANDARDS.md: `http_requests_total{service,method,route,status}`,
//! `http_request_duration_seconds{service,route}` (histogram),
//! `active_connections{service}`, `service_health{service,dependency}`.
//! Routes are labelled by their template (`/api/city/rooms/{slug}`), never
//! the raw path, so label cardinality stays bounded.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
    time::Instant,
};

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Buckets of every `*_seconds` histogram: histograms (unlike the
/// exporter's default summaries) add up across replicas in PromQL.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Installs the recorder once per process and returns its handle. `None` when
/// another recorder was installed first (only possible in foreign tests).
pub fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .ok()?
                .install_recorder()
                .ok()
        })
        .as_ref()
}

/// Who may read `/metrics`, which shows the city's traffic, errors and
/// dependencies: clients on loopback, clients in `allow`, and requests with
/// `Authorization: Bearer <token>` (Prometheus' `authorization`). The client
/// is the socket peer, or the client a trusted proxy names, so a reverse
/// proxy on the same host does not make every visitor local.
#[derive(Clone, Debug, Default)]
pub struct MetricsAccess {
    pub allow: Vec<ipnet::IpNet>,
    pub token: Option<crate::Secret>,
}

impl MetricsAccess {
    fn admits(
        &self,
        socket: Option<std::net::SocketAddr>,
        headers: &axum::http::HeaderMap,
        trusted_proxies: &[ipnet::IpNet],
    ) -> bool {
        use subtle::ConstantTimeEq;
        let token_matches = self.token.as_ref().is_some_and(|token| {
            headers
                .get(axum::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(crate::http::bearer_token)
                .is_some_and(|given| bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())))
        });
        let client = socket.map(|s| crate::http::client_ip(s, headers, trusted_proxies));
        token_matches
            || client
                .is_some_and(|ip| ip.is_loopback() || self.allow.iter().any(|n| n.contains(&ip)))
    }

    /// `GET /metrics` behind this guard (403 otherwise); the client is the
    /// one `trusted_proxies` name.
    pub fn route<S: Clone + Send + Sync + 'static>(
        self,
        trusted_proxies: Vec<ipnet::IpNet>,
    ) -> axum::routing::MethodRouter<S> {
        let access = std::sync::Arc::new((self, trusted_proxies));
        axum::routing::get(move |request: Request| {
            let access = access.clone();
            async move {
                let socket = request
                    .extensions()
                    .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
                    .map(|c| c.0);
                let (access, trusted_proxies) = access.as_ref();
                if access.admits(socket, request.headers(), trusted_proxies) {
                    render().await
                } else {
                    crate::ApiError::forbidden(
                        "metrics are for loopback, server.metrics_allow or server.metrics_token",
                    )
                    .into_response()
                }
            }
        })
    }
}

/// The Prometheus text exposition.
async fn render() -> Response {
    let body = handle().map(PrometheusHandle::render).unwrap_or_default();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Middleware state: which service the requests belong to.
#[derive(Clone, Copy)]
pub struct ServiceLabel(pub &'static str);

/// The request metrics of one service, route, method and status.
struct RouteHandles {
    requests: metrics::Counter,
    duration: metrics::Histogram,
}

type HandleKey = (&'static str, &'static str, u16);

/// The method as a label: the standard ones, else `OTHER`, so a client
/// inventing methods cannot grow the label set.
pub(crate) fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// Metric handles, registered on first use: building a registry key (label
/// strings, hashing) for every request showed in profiles of the gateway.
#[derive(Default)]
struct Handles {
    routes: std::sync::RwLock<HashMap<HandleKey, HashMap<String, Arc<RouteHandles>>>>,
    active: std::sync::RwLock<HashMap<&'static str, metrics::Gauge>>,
}

static HANDLES: std::sync::LazyLock<Handles> = std::sync::LazyLock::new(Handles::default);

fn route_handles(key: HandleKey, route: &str) -> Arc<RouteHandles> {
    let read = HANDLES.routes.read().unwrap_or_else(|p| p.into_inner());
    if let Some(found) = read.get(&key).and_then(|routes| routes.get(route)) {
        return found.clone();
    }
    drop(read);
    let (service, method, status) = key;
    let handles = Arc::new(RouteHandles {
        requests: metrics::counter!("http_requests_total", "service" => service,
            "method" => method, "route" => route.to_owned(),
            "status" => status.to_string()),
        duration: metrics::histogram!("http_request_duration_seconds", "service" => service,
            "route" => route.to_owned()),
    });
    HANDLES
        .routes
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .entry(key)
        .or_default()
        .entry(route.to_owned())
        .or_insert(handles)
        .clone()
}

fn active_gauge(service: &'static str) -> metrics::Gauge {
    let read = HANDLES.active.read().unwrap_or_else(|p| p.into_inner());
    if let Some(gauge) = read.get(service) {
        return gauge.clone();
    }
    drop(read);
    HANDLES
        .active
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .entry(service)
        .or_insert_with(|| metrics::gauge!("active_connections", "service" => service))
        .clone()
}

/// Records request count, latency and in-flight connections per service.
pub async fn track_http(
    State(ServiceLabel(service)): State<ServiceLabel>,
    request: Request,
    next: Next,
) -> Response {
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = method_label(request.method());
    let _active = ConnectionGuard::new(service);
    let started = Instant::now();
    let response = next.run(request).await;
    record(service, method, &response, route.as_ref(), started);
    response
}

/// Counts a finished request and its duration.
pub(crate) fn record(
    service: &'static str,
    method: &'static str,
    response: &Response,
    route: Option<&MatchedPath>,
    started: Instant,
) {
    let handles = route_handles(
        (service, method, response.status().as_u16()),
        route.map_or("unmatched", MatchedPath::as_str),
    );
    handles.requests.increment(1);
    handles.duration.record(started.elapsed().as_secs_f64());
}

/// Counts one open connection (HTTP request in flight or WebSocket) while alive.
pub struct ConnectionGuard(metrics::Gauge);

impl ConnectionGuard {
    pub fn new(service: &'static str) -> Self {
        let gauge = active_gauge(service);
        gauge.increment(1.0);
        Self(gauge)
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.0.decrement(1.0);
    }
}

/// Resident memory of this process, in bytes (Linux; `None` elsewhere).
pub fn resident_bytes() -> Option<u64> {
    resident_bytes_of("self")
}

/// Resident memory of process `pid` (`self` for this one), in bytes.
pub fn resident_bytes_of(pid: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// Where start-up memory goes: each step's growth of the resident set is
/// kept as `startup_memory_bytes{component}` (the first, `runtime`, is
/// what the process held before building anything).
pub struct StartupMemory {
    last: u64,
}

impl StartupMemory {
    pub fn begin() -> Self {
        // The recorder must exist before the first gauge is set.
        handle();
        let now = resident_bytes().unwrap_or(0);
        metrics::gauge!("startup_memory_bytes", "component" => "runtime").set(now as f64);
        Self { last: now }
    }

    /// Records what `component` added since the previous step.
    pub fn step(&mut self, component: &str) {
        let now = resident_bytes().unwrap_or(self.last);
        metrics::gauge!("startup_memory_bytes", "component" => component.to_owned())
            .set(now.saturating_sub(self.last) as f64);
        self.last = now;
    }
}

/// A metric's name and what it measures, for its `# HELP` line.
pub type Help = (&'static str, &'static str);

/// Gives each of `described` its `# HELP` text (once the recorder is
/// installed; a description made before it would be lost).
pub fn describe(described: &[Help]) {
    if handle().is_none() {
        return;
    }
    for (name, help) in described {
        // The exporter keeps one description per name, whatever the kind.
        metrics::describe_counter!(*name, *help);
    }
}

/// The metrics the kit records for every service, with their `# HELP` text.
pub const METRICS: &[Help] = &[
    (
        "http_connections_refused_total",
        "Connections refused, by reason.",
    ),
    (
        "http_requests_total",
        "HTTP requests answered, by service, method, route and status.",
    ),
    ("active_connections", "Requests in progress, by service."),
    (
        "service_health",
        "Whether a dependency of a service is reachable (1) or not (0).",
    ),
    (
        "startup_memory_bytes",
        "Resident memory each start-up step added, by component.",
    ),
    (
        "http_request_duration_seconds",
        "HTTP request latency, by service and route.",
    ),
];
