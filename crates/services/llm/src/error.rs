//! Errors in OpenAI's shape, which is also DAARION's: `{"error": {"message",
//! "type", "param", "code", "request_id"}}` — OpenAI clients read `message`
//! and `type`, DAARION clients `code` and `request_id`.

use std::time::Duration;

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
};
use daarion_kernel::{ApiError, ErrorCode, RequestContext};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct LlmError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub param: Option<&'static str>,
    pub retry_after: Option<Duration>,
}

impl LlmError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            param: None,
            retry_after: None,
        }
    }

    /// A request the proxy cannot accept, naming the field at fault.
    pub fn invalid(param: &'static str, message: impl Into<String>) -> Self {
        Self {
            param: Some(param),
            ..Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
        }
    }

    pub fn model_not_found(model: &str) -> Self {
        Self {
            param: Some("model"),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "model_not_found",
                format!("the model `{model}` does not exist or you do not have access to it"),
            )
        }
    }

    /// Every deployment failed before answering.
    pub fn upstream(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, "upstream_error", message)
    }

    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, "timeout", message)
    }

    /// OpenAI's error `type` for the status.
    fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            429 if self.code == "insufficient_quota" => "insufficient_quota",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            _ => "api_error",
        }
    }

    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind(),
                "param": self.param,
                "code": self.code,
                "request_id": RequestContext::current().map(|c| c.request_id),
            }
        })
    }
}

impl From<ApiError> for LlmError {
    fn from(e: ApiError) -> Self {
        let code = match e.code() {
            ErrorCode::RateLimited => "rate_limit_exceeded",
            other => other.as_str(),
        };
        Self {
            retry_after: e.retry_after(),
            ..Self::new(e.code().status(), code, e.message())
        }
    }
}

impl From<daarion_usage::MeterError> for LlmError {
    fn from(e: daarion_usage::MeterError) -> Self {
        match e {
            daarion_usage::MeterError::Exceeded(e) => Self {
                retry_after: Some(e.retry_after),
                ..Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    if e.limit == daarion_usage::LimitKind::Budget {
                        "insufficient_quota"
                    } else {
                        "rate_limit_exceeded"
                    },
                    e.message,
                )
            },
            other => ApiError::from(other).into(),
        }
    }
}

impl IntoResponse for LlmError {
    fn into_response(self) -> Response {
        let mut response = (self.status, axum::Json(self.body())).into_response();
        if let Some(after) = self.retry_after {
            daarion_kernel::error::set_retry_after(&mut response, after);
        }
        response
    }
}
