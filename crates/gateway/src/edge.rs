//! Edge protection shared by both modes: who the client is (through the
//! trusted-proxy list), rate limits per client address and route, and
//! security headers.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use daarion_cache::{Cache, RateLimit};
use daarion_kernel::ApiError;
use ipnet::IpNet;

use crate::{Gateway, proxy::Peer};

/// Resolves the client behind `socket`: a trusted proxy's `X-Forwarded-For`
/// is read right to left, skipping other trusted proxies.
pub fn peer(
    socket: SocketAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
    scheme: &'static str,
) -> Peer {
    let socket_ip = socket.ip().to_canonical();
    let trusted_peer = trusted.iter().any(|net| net.contains(&socket_ip));
    let client_ip = daarion_kernel::http::client_ip(socket, headers, trusted);
    Peer {
        socket_ip,
        client_ip,
        trusted: trusted_peer,
        scheme,
    }
}

/// Middleware: the route's rate limit, per client address.
pub async fn rate_limit(
    State(gateway): State<std::sync::Arc<Gateway>>,
    request: Request,
    next: Next,
) -> Response {
    let loaded = gateway.loaded();
    let default = gateway.settings.default_rate_limit;
    let limit = loaded
        .table
        .route_for(request.uri().path())
        .and_then(|route| {
            let (per_second, burst) = route.limit((default.per_second, default.burst))?;
            Some((route.prefix.clone(), RateLimit { per_second, burst }))
        });
    let Some((prefix, limit)) = limit else {
        return next.run(request).await;
    };
    let socket = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let client = peer(
        socket,
        request.headers(),
        &gateway.settings.trusted_proxies,
        gateway.settings.scheme(),
    );
    let key = format!("gw:rl:{}:{}", prefix, client.client_ip);
    match spend(gateway.cache.as_ref(), &key, limit, prefix).await {
        Some(refused) => refused,
        None => next.run(request).await,
    }
}

/// One request from the bucket at `key`: the 429 to answer when it is
/// empty, counted under `route`.
async fn spend(cache: &dyn Cache, key: &str, limit: RateLimit, route: String) -> Option<Response> {
    match cache.rate_limit(key, limit).await {
        Ok(decision) if !decision.allowed => {
            metrics::counter!("gateway_rate_limited_total", "route" => route).increment(1);
            Some(ApiError::rate_limited(decision.retry_after).into_response())
        }
        Ok(_) => None,
        Err(error) => {
            // Failing open: a cache outage must not take the city down.
            tracing::warn!(%error, "rate limit check failed; request admitted");
            None
        }
    }
}

/// The per-client limit of a service process (`serve <service>`) for the
/// clients that reach it without the gateway: the edge's default limit,
/// before authentication. Requests from a trusted proxy (the gateway) pass:
/// their route's own limit was applied there.
#[derive(Clone)]
pub struct DirectClients {
    pub cache: Arc<dyn Cache>,
    pub trusted_proxies: Arc<[IpNet]>,
    pub limit: RateLimit,
    pub service: &'static str,
}

/// Middleware: [`DirectClients`].
pub async fn direct_client_limit(
    State(direct): State<DirectClients>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_canonical());
    let path = request.uri().path();
    // What the edge's route table limits: the API and its sockets, not
    // `/health` or `/metrics`.
    let limited = path.starts_with("/api/") || path.starts_with("/ws/");
    let Some(peer) =
        peer.filter(|ip| limited && !direct.trusted_proxies.iter().any(|n| n.contains(ip)))
    else {
        return next.run(request).await;
    };
    let key = format!("svc:rl:{}:{peer}", direct.service);
    let route = format!("direct:{}", direct.service);
    match spend(direct.cache.as_ref(), &key, direct.limit, route).await {
        Some(refused) => refused,
        None => next.run(request).await,
    }
}

/// Middleware: security headers on every response (kept when the upstream set its own).
pub async fn security_headers(
    State(gateway): State<std::sync::Arc<Gateway>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let is_html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let mut set = |name: header::HeaderName, value: &'static str| {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    };
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "strict-origin-when-cross-origin");
    if is_html {
        set(
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
             script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'",
        );
    }
    if gateway.settings.tls {
        set(
            header::STRICT_TRANSPORT_SECURITY,
            "max-age=31536000; includeSubDomains",
        );
    }
    response
}

/// CORS for the configured origins; `None` when none are (CORS off).
pub fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    use axum::http::Method;
    Some(
        tower_http::cors::CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                header::HeaderName::from_static("idempotency-key"),
                header::HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([
                header::HeaderName::from_static("x-request-id"),
                header::RETRY_AFTER,
            ])
            .allow_credentials(true)
            .max_age(std::time::Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            HeaderValue::from_static("203.0.113.7, 10.1.1.1"),
        );
        let via_proxy = peer("10.0.0.2:5000".parse().unwrap(), &headers, &trusted, "http");
        assert!(via_proxy.trusted);
        assert_eq!(via_proxy.client_ip.to_string(), "203.0.113.7");
        let direct = peer(
            "198.51.100.1:5000".parse().unwrap(),
            &headers,
            &trusted,
            "http",
        );
        assert!(!direct.trusted);
        assert_eq!(
            direct.client_ip.to_string(),
            "198.51.100.1",
            "a spoofed header is ignored"
        );
    }
}

#[cfg(test)]
mod edge_stack {
    use axum::{Router, body::Body, http::Request, routing::get};
    use tower::ServiceExt;

    #[tokio::test]
    async fn the_edge_compresses_and_sets_security_headers() {
        let gateway = crate::Gateway::new(
            crate::config::RouteTable::default_table(&crate::config::tests::design_services()),
            crate::EdgeSettings::default(),
            std::sync::Arc::new(daarion_cache::MemoryCache::default()),
            Default::default(),
            Default::default(),
        );
        let app = gateway.edge(Router::new().route("/", get(|| async { "x".repeat(1000) })));
        let request = Request::get("/")
            .header("accept-encoding", "gzip")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert_eq!(response.headers()["content-encoding"], "gzip");
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");

        // A text error is left for the standard stack to rewrite as JSON.
        let app = gateway.edge(Router::new().route(
            "/",
            get(|| async { (axum::http::StatusCode::BAD_REQUEST, "x".repeat(1000)) }),
        ));
        let request = Request::get("/")
            .header("accept-encoding", "gzip")
            .body(Body::empty())
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        assert!(response.headers().get("content-encoding").is_none());
    }
}
