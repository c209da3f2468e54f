//! Forwarding one request to an upstream group: HTTP with streaming bodies
//! both ways, or a WebSocket upgrade relayed byte for byte (so frames and
//! close codes pass unchanged).

use std::{
    net::IpAddr,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    body::Body,
    extract::Request,
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
};
use daarion_kernel::{ApiError, ErrorCode, RequestContext};
use futures::StreamExt;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};

use crate::{
    config::{Balance, Route},
    upstream::Group,
};

/// The pooled HTTP/1.1 client to upstreams.
pub type UpstreamClient = Client<CountingConnector, Body>;

/// Counts new upstream connections, so the pool's reuse rate shows in
/// metrics (`1 - connections_opened / requests`).
#[derive(Clone)]
pub struct CountingConnector(HttpConnector);

impl tower::Service<Uri> for CountingConnector {
    type Response = <HttpConnector as tower::Service<Uri>>::Response;
    type Error = <HttpConnector as tower::Service<Uri>>::Error;
    type Future = <HttpConnector as tower::Service<Uri>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let address = uri.authority().map(ToString::to_string).unwrap_or_default();
        metrics::counter!("gateway_upstream_connections_opened_total", "address" => address)
            .increment(1);
        self.0.call(uri)
    }
}

pub fn client(connect_timeout: Duration) -> UpstreamClient {
    let mut http = HttpConnector::new();
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_max_idle_per_host(1024)
        .build(CountingConnector(http))
}

/// A GET that succeeds with 2xx within `timeout`.
pub async fn probe(client: &UpstreamClient, uri: &str, timeout: Duration) -> bool {
    let Ok(request) = Request::get(uri).body(Body::empty()) else {
        return false;
    };
    matches!(
        tokio::time::timeout(timeout, client.request(request)).await,
        Ok(Ok(response)) if response.status().is_success()
    )
}

/// Who the request came from, as far as the trusted-proxy list allows us to tell.
#[derive(Debug, Clone)]
pub struct Peer {
    /// The TCP peer.
    pub socket_ip: IpAddr,
    /// The client: the peer, or what a trusted proxy in front said.
    pub client_ip: IpAddr,
    /// Whether the peer is a trusted proxy (its X-Forwarded-* are kept).
    pub trusted: bool,
    /// `http` or `https` on our listener.
    pub scheme: &'static str,
}

/// Everything `forward` needs about the request's route.
pub struct Target<'a> {
    pub route: &'a Route,
    pub group: &'a Arc<Group>,
    pub client: &'a UpstreamClient,
    pub peer: &'a Peer,
    pub tasks: &'a tokio_util::task::TaskTracker,
    pub shutdown: &'a tokio_util::sync::CancellationToken,
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
];

/// Removes DAARION's credentials (the session cookie, API keys) for an
/// upstream that is not one of its services; other cookies and
/// authorization schemes are the upstream's own and pass.
pub fn strip_credentials(headers: &mut HeaderMap) {
    let cookies: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|pair| {
            pair.split_once('=').is_none_or(|(name, _)| {
                let name = name.trim();
                name != daarion_kernel::http::SESSION_COOKIE
                    && name != daarion_kernel::http::HOST_SESSION_COOKIE
            })
        })
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !cookies.is_empty()
        && let Ok(value) = HeaderValue::from_str(&cookies.join("; "))
    {
        headers.insert(header::COOKIE, value);
    }
    let ours = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(daarion_kernel::http::bearer_token)
        .is_some_and(|token| token.starts_with(daarion_kernel::http::API_KEY_PREFIX));
    if ours {
        headers.remove(header::AUTHORIZATION);
    }
}

/// Removes hop-by-hop headers, including those the `Connection` header names.
/// An upgrade keeps `Connection: upgrade` and `Upgrade`.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let listed: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    let upgrade_value = headers.get(header::UPGRADE).cloned();
    for name in listed {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
    if upgrade && let Some(value) = upgrade_value {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, value);
    }
}

pub fn is_upgrade(headers: &HeaderMap) -> bool {
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"));
    connection_upgrade && headers.contains_key(header::UPGRADE)
}

/// The upstream path and query for `uri` under `route`.
pub fn upstream_path(route: &Route, uri: &Uri) -> String {
    let path = uri.path();
    let rest = path.strip_prefix(route.prefix.as_str()).unwrap_or_else(|| {
        // `/api/city` for the prefix `/api/city/`.
        path.strip_prefix(route.prefix.trim_end_matches('/'))
            .unwrap_or("")
    });
    let mut target = if route.strip_prefix {
        format!("/{rest}")
    } else if let Some(rewrite) = &route.rewrite {
        format!("{rewrite}{rest}")
    } else {
        path.to_owned()
    };
    if let Some(query) = uri.query() {
        target.push('?');
        target.push_str(query);
    }
    target
}

fn set_forwarding_headers(headers: &mut HeaderMap, peer: &Peer) {
    let host = headers.get(header::HOST).cloned();
    let forwarded_for = match headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()) {
        Some(chain) if peer.trusted => format!("{chain}, {}", peer.socket_ip),
        _ => peer.socket_ip.to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded_for) {
        headers.insert("x-forwarded-for", value);
    }
    if let Ok(value) = HeaderValue::from_str(&peer.client_ip.to_string()) {
        headers.insert("x-real-ip", value);
    }
    if !(peer.trusted && headers.contains_key("x-forwarded-proto")) {
        headers.insert("x-forwarded-proto", HeaderValue::from_static(peer.scheme));
    }
    if !(peer.trusted && headers.contains_key("x-forwarded-host"))
        && let Some(host) = host
    {
        headers.insert("x-forwarded-host", host);
    }
    if let Some(ctx) = RequestContext::current()
        && let Ok(value) = HeaderValue::from_str(&ctx.request_id)
    {
        headers.insert("x-request-id", value);
        if let Ok(tp) = HeaderValue::from_str(&ctx.traceparent()) {
            headers.insert("traceparent", tp);
        }
    }
}

fn sticky_key<'a>(group: &Group, headers: &'a HeaderMap) -> Option<&'a str> {
    let Balance::Hash(spec) = &group.config.balance else {
        return None;
    };
    if let Some(name) = spec.strip_prefix("header:") {
        return headers.get(name).and_then(|v| v.to_str().ok());
    }
    let name = spec.strip_prefix("cookie:")?;
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() != "0")
}

fn upstream_error(code: ErrorCode, message: &str) -> Response {
    ApiError::new(code, message).into_response()
}

/// Forwards `request` along `target`; never fails: errors become JSON responses.
pub async fn forward(target: Target<'_>, mut request: Request) -> Response {
    let route = target.route;
    let group = target.group;
    if group.endpoints.is_empty() {
        return upstream_error(
            ErrorCode::NotFound,
            "this route's upstream is not configured here",
        );
    }
    let upgrade = is_upgrade(request.headers());
    if upgrade && !route.websocket {
        return upstream_error(
            ErrorCode::BadRequest,
            "WebSocket upgrades are not allowed on this route",
        );
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > route.max_body_bytes) {
        return upstream_error(
            ErrorCode::PayloadTooLarge,
            "request body is too large for this route",
        );
    }
    let path = upstream_path(route, request.uri());
    let key = sticky_key(group, request.headers()).map(str::to_owned);
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (mut parts, body) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers, upgrade);
    if !group.config.credentials {
        strip_credentials(&mut parts.headers);
    }
    set_forwarding_headers(&mut parts.headers, target.peer);
    // A retry goes to another address, so a group of one never retries.
    let replayable = idempotent(&parts.method)
        && !has_body(&parts.headers)
        && !upgrade
        && group.endpoints.len() > 1;
    let max_body = usize::try_from(route.max_body_bytes).unwrap_or(usize::MAX);
    let mut body = Some(Body::new(http_body_util::Limited::new(body, max_body)));
    group.earn_retry();

    let mut tried: Vec<String> = Vec::new();
    loop {
        let Some(in_flight) = group.pick(key.as_deref(), &tried) else {
            return if tried.is_empty() {
                upstream_error(ErrorCode::Unavailable, "no healthy upstream")
            } else {
                upstream_error(ErrorCode::BadGateway, "upstream unreachable")
            };
        };
        let endpoint = in_flight.endpoint().clone();
        let Ok(uri) = format!("http://{}{}", endpoint.address, path).parse::<Uri>() else {
            return upstream_error(ErrorCode::BadRequest, "request path cannot be forwarded");
        };
        let mut upstream_request = Request::new(body.take().unwrap_or_else(Body::empty));
        *upstream_request.method_mut() = parts.method.clone();
        *upstream_request.uri_mut() = uri;
        // Only a request that may be retried keeps its headers for the next try.
        *upstream_request.headers_mut() = if replayable {
            parts.headers.clone()
        } else {
            std::mem::take(&mut parts.headers)
        };
        let sent = tokio::time::timeout(
            route.timeouts.response(),
            target.client.request(upstream_request),
        )
        .await;
        let outcome = match sent {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(error)) => Err(Some(error)),
            Err(_elapsed) => Err(None),
        };
        match outcome {
            Ok(mut response) => {
                let status = response.status();
                group.record(&endpoint, !matches!(status.as_u16(), 502..=504));
                endpoint.outcomes[0].increment(1);
                if status == StatusCode::SWITCHING_PROTOCOLS {
                    if let Some(client_side) = client_upgrade {
                        let upstream_side = hyper::upgrade::on(&mut response);
                        let idle = route.timeouts.idle();
                        let max_frame = route.max_ws_frame_bytes;
                        let shutdown = target.shutdown.clone();
                        target.tasks.spawn(async move {
                            let _in_flight = in_flight;
                            if let (Ok(client), Ok(upstream)) =
                                tokio::join!(client_side, upstream_side)
                            {
                                relay(
                                    TokioIo::new(client),
                                    TokioIo::new(upstream),
                                    idle,
                                    max_frame,
                                    shutdown,
                                )
                                .await;
                            }
                        });
                    }
                    let (parts, _) = response.into_parts();
                    return Response::from_parts(parts, Body::empty());
                }
                let (mut parts, incoming) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers, false);
                parts
                    .extensions
                    .insert(daarion_kernel::http::Upstream(endpoint.address.clone()));
                let body = idle_timeout(Body::new(incoming), route.timeouts.idle(), in_flight);
                return Response::from_parts(parts, body);
            }
            Err(error) => {
                let connect_failure = error.as_ref().is_some_and(|e| e.is_connect());
                group.record(&endpoint, false);
                endpoint.outcomes[if error.is_none() { 2 } else { 1 }].increment(1);
                if let Some(e) = &error
                    && daarion_kernel::error::caused_by::<http_body_util::LengthLimitError>(e)
                {
                    return upstream_error(
                        ErrorCode::PayloadTooLarge,
                        "request body is too large for this route",
                    );
                }
                tried.push(endpoint.address.clone());
                let may_retry = replayable
                    && connect_failure
                    && tried.len() <= usize::try_from(group.config.retries).unwrap_or(0)
                    && group.spend_retry();
                if may_retry {
                    metrics::counter!("gateway_upstream_retries_total", "upstream" => group.name.clone()).increment(1);
                    continue;
                }
                return match error {
                    None => upstream_error(ErrorCode::Timeout, "upstream did not answer in time"),
                    Some(e) if connect_failure => {
                        tracing::warn!(upstream = %group.name, address = %endpoint.address, error = %daarion_kernel::error::ErrorChain(&e), "upstream unreachable");
                        upstream_error(ErrorCode::BadGateway, "upstream unreachable")
                    }
                    Some(e) => {
                        tracing::warn!(upstream = %group.name, address = %endpoint.address, error = %daarion_kernel::error::ErrorChain(&e), "upstream failed");
                        upstream_error(ErrorCode::BadGateway, "upstream failed")
                    }
                };
            }
        }
    }
}

/// Streams `body`, ending it if no data arrives for `idle`. `guard` (the
/// in-flight mark) lives as long as the body.
fn idle_timeout<G: Send + 'static>(body: Body, idle: Duration, guard: G) -> Body {
    let stream = body.into_data_stream();
    let timed = futures::stream::unfold(
        (stream, guard, false),
        move |(mut stream, guard, done)| async move {
            if done {
                return None;
            }
            match tokio::time::timeout(idle, stream.next()).await {
                Ok(Some(Ok(chunk))) => Some((Ok(chunk), (stream, guard, false))),
                Ok(Some(Err(error))) => {
                    Some((Err(std::io::Error::other(error)), (stream, guard, true)))
                }
                Ok(None) => None,
                Err(_) => Some((
                    Err(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "upstream body idle too long",
                    )),
                    (stream, guard, true),
                )),
            }
        },
    );
    // Fused: a consumer (the compression layer does) may poll again after the end.
    Body::from_stream(timed.fuse())
}

/// Copies bytes both ways until either side closes, nothing moves for
/// `idle`, shutdown, or the client sends a frame over `max_frame` bytes
/// (answered with a 1009 close).
async fn relay<A, B>(
    client: A,
    upstream: B,
    idle: Duration,
    max_frame: u64,
    shutdown: tokio_util::sync::CancellationToken,
) where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut client_read, mut client_write) = tokio::io::split(client);
    let (mut upstream_read, mut upstream_write) = tokio::io::split(upstream);
    let mut up = vec![0u8; 8 * 1024];
    let mut down = vec![0u8; 8 * 1024];
    let _guard = daarion_kernel::metrics::ConnectionGuard::new("gateway");
    let mut frames = crate::ws_limit::FrameWatch::new(max_frame);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(idle) => break,
            read = client_read.read(&mut up) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if frames.feed(&up[..n]).is_err() {
                        metrics::counter!("gateway_ws_frames_refused_total").increment(1);
                        let _ = client_write.write_all(crate::ws_limit::CLOSE_TOO_BIG).await;
                        break;
                    }
                    if upstream_write.write_all(&up[..n]).await.is_err() { break }
                }
            },
            read = upstream_read.read(&mut down) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => if client_write.write_all(&down[..n]).await.is_err() { break },
            },
        }
    }
    let _ = upstream_write.shutdown().await;
    let _ = client_write.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RouteTable;

    #[test]
    fn paths_are_kept_stripped_or_rewritten() {
        let table = RouteTable::parse(
            "[[routes]]\nprefix = \"/api/living-map/\"\nupstream = \"a\"\nrewrite = \"/living-map/\"\n\
             [[routes]]\nprefix = \"/strip/\"\nupstream = \"a\"\nstrip_prefix = true\n\
             [[routes]]\nprefix = \"/api/city/\"\nupstream = \"a\"\n[upstreams.a]\n",
        )
        .unwrap();
        let check = |uri: &str, expected: &str| {
            let uri: Uri = uri.parse().unwrap();
            let route = table.route_for(uri.path()).unwrap();
            assert_eq!(upstream_path(route, &uri), expected, "{uri}");
        };
        check("/api/living-map/snapshot?x=1", "/living-map/snapshot?x=1");
        check("/strip/a/b", "/a/b");
        check("/strip", "/");
        check("/api/city/rooms?limit=2", "/api/city/rooms?limit=2");
    }

    #[test]
    fn hop_by_hop_headers_go_and_upgrades_keep_theirs() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        headers.insert("x-secret-hop", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
        headers.insert("x-end-to-end", HeaderValue::from_static("kept"));
        strip_hop_by_hop(&mut headers, false);
        assert_eq!(headers.len(), 1);
        assert_eq!(headers["x-end-to-end"], "kept");

        let mut ws = HeaderMap::new();
        ws.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        ws.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        ws.insert("sec-websocket-key", HeaderValue::from_static("k"));
        assert!(is_upgrade(&ws));
        strip_hop_by_hop(&mut ws, true);
        assert_eq!(ws[header::CONNECTION], "upgrade");
        assert_eq!(ws[header::UPGRADE], "websocket");
        assert_eq!(ws["sec-websocket-key"], "k");
    }
}
