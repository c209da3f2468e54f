//! The standard HTTP stack every service router gets, and the extractors
//! handlers use so that bad input always ends in the JSON error shape.

use std::time::Instant;

use axum::{
    Router,
    extract::{
        FromRequest, FromRequestParts, MatchedPath, Request, State, rejection::JsonRejection,
    },
    http::{HeaderName, HeaderValue, request::Parts},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tracing::Instrument;

use crate::{
    ApiError, ErrorCode,
    context::{self, RequestContext},
    metrics::ConnectionGuard,
    traces,
};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// Wraps a service router in the standard stack: request context and access
/// log, JSON errors, panic containment, metrics, a body-size limit and a
/// timeout between the body's reads (a client that stops sending gets 408).
pub fn standard_layers(
    router: Router,
    service: &'static str,
    max_body_bytes: usize,
    body_read_timeout: std::time::Duration,
) -> Router {
    // Install the recorder now: anything recorded before it exists is lost.
    let _ = crate::metrics::handle();
    router
        .layer(axum::extract::DefaultBodyLimit::max(max_body_bytes))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                ApiError::new(ErrorCode::Internal, "internal error").into_response()
            },
        ))
        .layer(middleware::from_fn_with_state(
            Standard {
                service,
                body_read_timeout,
            },
            standard,
        ))
}

#[derive(Clone, Copy)]
struct Standard {
    service: &'static str,
    body_read_timeout: std::time::Duration,
}

/// The standard stack in one pass — a middleware layer per concern cost a
/// boxed service clone and a future per request each, which showed in
/// profiles of the gateway. Accepts or creates the request id and trace id
/// and makes them the task's [`RequestContext`]; times the body's reads;
/// counts the request (`http_requests_total`, its duration, active ones);
/// turns a non-JSON error into the standard body; logs one access line and
/// echoes `X-Request-Id`. Panics are contained inside it, so they are
/// counted and logged as the 500 they become.
async fn standard(State(standard): State<Standard>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let request_id = headers
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .and_then(context::accept_request_id)
        .unwrap_or_else(context::new_request_id);
    let parent = headers
        .get(&TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .and_then(context::TraceParent::parse);
    let method = request.method().clone();
    // Kept as they are (an address, a shared path): formatted only if the
    // access log is on.
    let client = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip());
    let route = request.extensions().get::<MatchedPath>().cloned();
    let mut ctx = RequestContext::continuing(request_id.clone(), parent);
    let mut trace = traces::Span::start(traces::Kind::Server, &mut ctx, || {
        route.as_ref().map_or_else(
            || method.to_string(),
            |route| format!("{method} {}", route.as_str()),
        )
    });
    if trace.is_recording() {
        trace.set("http.request.method", method.to_string());
        trace.set("url.path", request.uri().path().to_owned());
        if let Some(route) = &route {
            trace.set("http.route", route.as_str().to_owned());
        }
        trace.set("daarion.service", standard.service);
        trace.set("daarion.request_id", request_id.clone());
    }
    let span = tracing::info_span!("request", request_id = %request_id, trace_id = %ctx.trace_id);
    let _active = ConnectionGuard::new(standard.service);
    let request = time_body_reads(request, standard.body_read_timeout);
    let started = Instant::now();
    // Normalised inside the request's context: the error body carries its id.
    let mut response = ctx
        .scope(async { crate::error::normalize(next.run(request).await).await })
        .instrument(span.clone())
        .await;
    crate::metrics::record(
        standard.service,
        crate::metrics::method_label(&method),
        &response,
        route.as_ref(),
        started,
    );
    let status = response.status().as_u16();
    trace.set("http.response.status_code", i64::from(status));
    if response.status().is_server_error() {
        trace.fail(status.to_string());
    }
    drop(trace);
    let bytes = response
        .headers()
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let upstream = response.extensions().get::<Upstream>();
    span.in_scope(|| {
        tracing::info!(
            method = %method,
            route = route.as_ref().map_or("unmatched", MatchedPath::as_str),
            status,
            bytes,
            duration_ms = started.elapsed().as_secs_f64() * 1000.0,
            upstream = upstream.map(|u| u.0.as_str()),
            client = client.map(tracing::field::display),
            "request completed"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}

/// A request whose body must keep coming: a pause longer than `timeout`
/// fails the read (408). Most requests have no body to wait for (a GET).
fn time_body_reads(request: Request, timeout: std::time::Duration) -> Request {
    use axum::body::HttpBody as _;
    if request.body().is_end_stream() {
        return request;
    }
    request.map(|body| axum::body::Body::new(tower_http::timeout::TimeoutBody::new(timeout, body)))
}

/// Response extension naming the upstream address a proxied request went to,
/// for the access log.
#[derive(Debug, Clone)]
pub struct Upstream(pub String);

/// `axum::Json` whose rejections are [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<S, T> FromRequest<S> for Json<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let code = match &rejection {
        JsonRejection::JsonDataError(_) => ErrorCode::ValidationFailed,
        JsonRejection::MissingJsonContentType(_) => ErrorCode::UnsupportedMediaType,
        // The client stopped sending its body.
        _ if crate::error::caused_by::<tower_http::timeout::TimeoutError>(&rejection) => {
            ErrorCode::RequestTimeout
        }
        _ => ErrorCode::from_status(rejection.status()),
    };
    ApiError::new(code, rejection.body_text())
}

/// Whether a request says its body is JSON (`application/json` or a
/// `+json` type), as [`Json`] requires. Handlers that read raw bytes check
/// it too: a form or `text/plain` post is what a page on another site can
/// send without a CORS preflight.
pub fn has_json_content_type(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| {
            m.type_() == mime::APPLICATION
                && (m.subtype() == mime::JSON || m.suffix() == Some(mime::JSON))
        })
}

/// `axum::extract::Query` whose rejections are [`ApiError`]s.
#[derive(Debug, Clone, Copy, Default)]
pub struct Query<T>(pub T);

impl<S, T> FromRequestParts<S> for Query<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|r| ApiError::bad_request(r.body_text()))
    }
}

/// The `Idempotency-Key` header of a create that can be retried: a retry
/// with the same key returns the first result, the same key with another
/// body is a `409` (`daarion_store::idempotency`). Absent: `None`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IdempotencyKey(pub Option<String>);

impl IdempotencyKey {
    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(Self(None));
        };
        value
            .to_str()
            .ok()
            .filter(|k| (1..=255).contains(&k.len()))
            .map(|k| Self(Some(k.to_owned())))
            .ok_or_else(|| {
                ApiError::bad_request("Idempotency-Key must be 1 to 255 visible characters")
            })
    }
}

impl utoipa::IntoParams for IdempotencyKey {
    fn into_params(
        _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
    ) -> Vec<utoipa::openapi::path::Parameter> {
        vec![
            utoipa::openapi::path::ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(utoipa::openapi::path::ParameterIn::Header)
                .required(utoipa::openapi::Required::False)
                .description(Some(
                    "Makes a retried create return the first result (1-255 visible characters)",
                ))
                .schema(Some(
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::schema::Type::String)
                        .min_length(Some(1))
                        .max_length(Some(255)),
                ))
                .build(),
        ]
    }
}

/// The session cookie the auth service sets in a city opened over HTTP
/// (`localhost` in development)...
pub const SESSION_COOKIE: &str = "daarion_session";
/// ...and over HTTPS: the `__Host-` prefix makes browsers keep it only when
/// set by this very host, secure, for `/`, so a sibling subdomain cannot
/// plant a session of its choosing (and the plain name is not read then).
pub const HOST_SESSION_COOKIE: &str = "__Host-daarion_session";

/// The session cookie's name in a city whose pages are (all) HTTPS or not.
pub fn session_cookie_name(https: bool) -> &'static str {
    if https {
        HOST_SESSION_COOKIE
    } else {
        SESSION_COOKIE
    }
}
/// API keys start with this, so a bearer token says what it is.
pub const API_KEY_PREFIX: &str = "dk_";

/// The token of an `Authorization: Bearer <token>` value (the scheme is
/// case-insensitive, RFC 9110), or `None` for another scheme or no token.
pub fn bearer_token(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The client behind `socket`: when the peer is a trusted proxy, its
/// `X-Forwarded-For` chain is read right to left, skipping other trusted
/// proxies; otherwise the peer itself.
pub fn client_ip(
    socket: std::net::SocketAddr,
    headers: &axum::http::HeaderMap,
    trusted: &[ipnet::IpNet],
) -> std::net::IpAddr {
    let socket_ip = socket.ip().to_canonical();
    let is_trusted = |ip: &std::net::IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&socket_ip) {
        return socket_ip;
    }
    let chain: Vec<std::net::IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|ip| ip.trim().parse().ok())
        .collect();
    chain
        .iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or_else(|| chain.first())
        .copied()
        .unwrap_or(socket_ip)
}

/// Whose budget a client's attempts spend: its address, or for IPv6 its
/// /64 (what one subscriber is handed, so rotating addresses buys nothing).
pub fn client_bucket(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        _ => ip.to_owned(),
    }
}

/// Query parameters of every list endpoint.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
pub struct PageParams {
    /// Items per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(max_length = 512)]
    pub cursor: Option<String>,
}

impl PageParams {
    pub const DEFAULT_LIMIT: u32 = 50;
    pub const MAX_LIMIT: u32 = 100;

    pub fn limit(&self) -> Result<u32, ApiError> {
        match self.limit {
            None => Ok(Self::DEFAULT_LIMIT),
            Some(n @ 1..=Self::MAX_LIMIT) => Ok(n),
            Some(_) => Err(ApiError::validation(format!(
                "limit must be between 1 and {}",
                Self::MAX_LIMIT
            ))),
        }
    }

    /// The decoded position after which the page starts.
    pub fn after(&self) -> Result<Option<String>, ApiError> {
        self.cursor.as_deref().map(decode_cursor).transpose()
    }
}

/// The answer to a create that honours `Idempotency-Key`: `201` with the new
/// resource, or `200` with the one an earlier request with the same key made.
pub fn created<T: Serialize>(fresh: bool, body: T) -> axum::response::Response {
    let status = if fresh {
        axum::http::StatusCode::CREATED
    } else {
        axum::http::StatusCode::OK
    };
    axum::response::IntoResponse::into_response((status, Json(body)))
}

/// One page of a list: the same shape on every endpoint.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from up to `limit + 1` rows: the extra row only proves
    /// there is a next page. `key` gives the position to resume after.
    pub fn from_rows(mut rows: Vec<T>, limit: u32, key: impl Fn(&T) -> String) -> Self {
        let next_cursor = if rows.len() > limit as usize {
            rows.truncate(limit as usize);
            rows.last().map(|last| encode_cursor(&key(last)))
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }

    /// The same page with each item turned into its wire form.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page {
            items: self.items.into_iter().map(f).collect(),
            next_cursor: self.next_cursor,
        }
    }
}

/// Cursors are opaque to clients; hex keeps them URL-safe without escaping.
pub fn encode_cursor(position: &str) -> String {
    position.bytes().map(|b| format!("{b:02x}")).collect()
}

pub fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    let invalid = || ApiError::bad_request("cursor is not valid");
    if !cursor.len().is_multiple_of(2) || cursor.len() > 512 {
        return Err(invalid());
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(cursor.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| invalid())?;
    String::from_utf8(bytes).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_read_whatever_the_schemes_case() {
        assert_eq!(bearer_token("Bearer dk_a"), Some("dk_a"));
        assert_eq!(bearer_token("BEARER  dk_a "), Some("dk_a"));
        assert_eq!(bearer_token("Basic dk_a"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearerdk_a"), None);
    }

    #[test]
    fn json_content_types_are_told_from_forms_and_text() {
        let with = |value: &str| {
            let mut headers = axum::http::HeaderMap::new();
            headers.insert(
                axum::http::header::CONTENT_TYPE,
                value.parse().expect("header"),
            );
            has_json_content_type(&headers)
        };
        assert!(with("application/json"));
        assert!(with("Application/JSON; charset=utf-8"));
        assert!(with("application/merge-patch+json"));
        for refused in [
            "text/plain",
            "text/json",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonp",
            "garbage",
        ] {
            assert!(!with(refused), "{refused}");
        }
        assert!(!has_json_content_type(&axum::http::HeaderMap::new()));
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = encode_cursor("01HX/é");
        assert_eq!(decode_cursor(&c).ok().as_deref(), Some("01HX/é"));
        assert!(decode_cursor("abc").is_err());
        assert!(decode_cursor("zz").is_err());
        assert!(decode_cursor("ff").is_err());
    }

    #[test]
    fn pages_report_a_next_cursor_only_when_more_rows_exist() {
        let page = Page::from_rows(vec![1, 2, 3], 2, |n| n.to_string());
        assert_eq!(page.items, vec![1, 2]);
        assert_eq!(
            page.next_cursor
                .as_deref()
                .map(decode_cursor)
                .and_then(Result::ok)
                .as_deref(),
            Some("2")
        );
        let last = Page::from_rows(vec![1, 2], 2, |n| n.to_string());
        assert!(last.next_cursor.is_none());
    }

    #[test]
    fn limits_are_bounded() {
        let p = |limit| {
            PageParams {
                limit,
                cursor: None,
            }
            .limit()
            .ok()
        };
        assert_eq!(p(None), Some(50));
        assert_eq!(p(Some(100)), Some(100));
        assert_eq!(p(Some(0)), None);
        assert_eq!(p(Some(101)), None);
    }
}
