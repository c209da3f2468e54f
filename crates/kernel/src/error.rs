//! One error type for every HTTP API, rendered as
//! `{"error":{"code","message","request_id"}}` (DESIGN §6).
//!
//! Handlers return [`ApiError`]; library errors convert into it once, here at
//! the edge. Responses that did not come from a handler (axum's own
//! rejections, body-limit layers, unknown routes) are rewritten into the same
//! shape by [`normalize`], so a client never has to parse two formats.

use std::time::Duration;

use axum::{
    body::Body,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::context::RequestContext;

/// Stable, machine-readable error codes; the HTTP status follows from the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    /// Forbidden until the person proves a passkey again (a recent sign-in
    /// or `reauth`), like GitHub's sudo mode.
    ReauthenticationRequired,
    NotFound,
    MethodNotAllowed,
    Conflict,
    PayloadTooLarge,
    UnsupportedMediaType,
    ValidationFailed,
    RateLimited,
    Internal,
    BadGateway,
    Unavailable,
    Timeout,
    /// The client did not send its request body in time.
    RequestTimeout,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        match self {
            Self::BadRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden | Self::ReauthenticationRequired => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict => StatusCode::CONFLICT,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::ValidationFailed => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            Self::BadGateway => StatusCode::BAD_GATEWAY,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// The code for a status produced outside our handlers.
    pub fn from_status(status: StatusCode) -> Self {
        match status.as_u16() {
            401 => Self::Unauthorized,
            403 => Self::Forbidden,
            404 => Self::NotFound,
            405 => Self::MethodNotAllowed,
            409 => Self::Conflict,
            413 => Self::PayloadTooLarge,
            415 => Self::UnsupportedMediaType,
            422 => Self::ValidationFailed,
            429 => Self::RateLimited,
            502 => Self::BadGateway,
            503 => Self::Unavailable,
            504 => Self::Timeout,
            408 => Self::RequestTimeout,
            400..=499 => Self::BadRequest,
            _ => Self::Internal,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::ReauthenticationRequired => "reauthentication_required",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::ValidationFailed => "validation_failed",
            Self::RateLimited => "rate_limited",
            Self::Internal => "internal",
            Self::BadGateway => "bad_gateway",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::RequestTimeout => "request_timeout",
        }
    }
}

/// An error a handler returns. 5xx messages are generic: the cause is logged,
/// never sent.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
    retry_after: Option<Duration>,
    /// With `405`: the methods the path answers (`Allow`).
    allow: Option<String>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
            allow: None,
        }
    }

    /// `405` with `Allow` naming the methods the path does answer.
    pub fn method_not_allowed(allowed: &[&str]) -> Self {
        let allow = allowed.join(", ");
        Self {
            allow: Some(allow.clone()),
            ..Self::new(
                ErrorCode::MethodNotAllowed,
                format!("this path answers {allow}"),
            )
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ValidationFailed, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn reauthentication_required(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ReauthenticationRequired, message)
    }

    pub fn rate_limited(retry_after: Duration) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(ErrorCode::RateLimited, "too many requests")
        }
    }

    /// Tells the client when to try again (`Retry-After`).
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    /// A dependency is down; the request may be retried later.
    pub fn unavailable(cause: &dyn std::error::Error) -> Self {
        tracing::error!(error = %ErrorChain(cause), "dependency unavailable");
        Self::new(
            ErrorCode::Unavailable,
            "a dependency is unavailable, retry later",
        )
    }

    /// Something that should not happen; logged with its cause chain.
    pub fn internal(cause: &dyn std::error::Error) -> Self {
        tracing::error!(error = %ErrorChain(cause), "internal error");
        Self::new(ErrorCode::Internal, "internal error")
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The JSON body for this error in the current request context.
    pub fn body(&self) -> serde_json::Value {
        let request_id = RequestContext::current().map(|c| c.request_id);
        serde_json::json!({
            "error": {
                "code": self.code.as_str(),
                "message": self.message,
                "request_id": request_id,
            }
        })
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.code.status(), axum::Json(self.body())).into_response();
        if let Some(after) = self.retry_after {
            set_retry_after(&mut response, after);
        }
        if let Some(allow) = self.allow.and_then(|a| HeaderValue::from_str(&a).ok()) {
            response.headers_mut().insert(header::ALLOW, allow);
        }
        response
    }
}

/// `Retry-After` in whole seconds, rounded up and at least 1.
pub fn set_retry_after(response: &mut Response, after: std::time::Duration) {
    let secs = after.as_secs_f64().ceil().max(1.0) as u64;
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
}

/// Whether `error`, or an error it was caused by, is a `T`.
pub fn caused_by<T: std::error::Error + 'static>(
    error: &(dyn std::error::Error + 'static),
) -> bool {
    std::iter::successors(Some(error), |e| e.source()).any(|e| e.is::<T>())
}

/// Formats an error with its sources, `outer: inner: root`.
pub struct ErrorChain<'a>(pub &'a dyn std::error::Error);

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

/// Whether [`normalize`] replaces this response's body: a 4xx/5xx that is
/// not JSON. A layer inside the standard stack that transforms bodies (the
/// edge's compression, in the all-in-one shape) leaves these alone.
pub fn needs_standard_body(status: StatusCode, headers: &axum::http::HeaderMap) -> bool {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    (status.is_client_error() || status.is_server_error()) && !is_json
}

/// Any 4xx/5xx response that is not already JSON gets the standard error
/// body, keeping its status and `Retry-After` (part of the standard stack).
pub async fn normalize(response: Response) -> Response {
    let status = response.status();
    if !needs_standard_body(status, response.headers()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let code = ErrorCode::from_status(status);
    // An encoded body's bytes are not its text, and the new body is not
    // encoded.
    let encoded = parts.headers.remove(header::CONTENT_ENCODING).is_some();
    // Rejection texts from axum are safe and useful ("Failed to parse the
    // request body as JSON: ..."); 5xx texts may not be, so they are dropped.
    let message = if status.is_client_error() && !encoded {
        let bytes = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).trim().to_owned();
        if text.is_empty() {
            status.canonical_reason().unwrap_or("error").to_lowercase()
        } else {
            text
        }
    } else {
        status.canonical_reason().unwrap_or("error").to_lowercase()
    };
    let body = ApiError::new(code, message).body();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Response::from_parts(parts, Body::from(body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_statuses_and_back() {
        for code in [
            ErrorCode::BadRequest,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::NotFound,
            ErrorCode::Conflict,
            ErrorCode::PayloadTooLarge,
            ErrorCode::ValidationFailed,
            ErrorCode::RateLimited,
            ErrorCode::Unavailable,
        ] {
            assert_eq!(ErrorCode::from_status(code.status()), code, "{code:?}");
        }
    }

    #[tokio::test]
    async fn rate_limited_sets_retry_after_in_whole_seconds() {
        let response = ApiError::rate_limited(Duration::from_millis(1500)).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }

    async fn normalized(response: Response) -> (Response, serde_json::Value) {
        let (parts, body) = normalize(response).await.into_parts();
        let bytes = axum::body::to_bytes(body, 4096).await.unwrap();
        (
            Response::from_parts(parts, Body::empty()),
            serde_json::from_slice(&bytes).unwrap(),
        )
    }

    #[tokio::test]
    async fn a_text_rejection_becomes_the_standard_body_with_its_text() {
        let rejection = (StatusCode::BAD_REQUEST, "Cannot parse `abc` to a `u64`").into_response();
        let (response, body) = normalized(rejection).await;
        assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(body["error"]["code"], "bad_request");
        assert_eq!(body["error"]["message"], "Cannot parse `abc` to a `u64`");
    }

    #[tokio::test]
    async fn an_encoded_rejection_loses_its_encoding_not_just_its_body() {
        let mut rejection =
            (StatusCode::BAD_REQUEST, vec![0x1f_u8, 0x8b, 0x08, 0x00]).into_response();
        rejection
            .headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        let (response, body) = normalized(rejection).await;
        assert!(response.headers().get(header::CONTENT_ENCODING).is_none());
        assert_eq!(body["error"]["message"], "bad request");
    }
}
