//! Webhook tools: a signed JSON POST to the tool's address, answered with
//! JSON. The signature (`X-Daarion-Signature: sha256=<hex>`, an
//! HMAC-SHA256 with the tool's secret over `<timestamp>.<body>`, the
//! timestamp in `X-Daarion-Timestamp`) lets the receiver check that the
//! request comes from this city and is fresh, as Stripe's and GitHub's
//! webhooks do.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::domain::ToolError;

pub const SIGNATURE: &str = "x-daarion-signature";
pub const TIMESTAMP: &str = "x-daarion-timestamp";

/// The most a webhook may answer, in bytes.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// `sha256=<hex>` of `<timestamp>.<body>` under `secret`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// One call: what the tool is told.
pub struct Request<'a> {
    pub tool: &'a str,
    pub call_id: &'a str,
    pub caller: &'a str,
    pub acting_for: Option<&'a str>,
    pub arguments: &'a Value,
}

pub async fn call(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    timeout: Duration,
    request: &Request<'_>,
) -> Result<Value, ToolError> {
    let body = serde_json::to_vec(&json!({
        "tool": request.tool,
        "call_id": request.call_id,
        "caller": request.caller,
        "acting_for": request.acting_for,
        "arguments": request.arguments,
    }))
    .map_err(|e| ToolError::Failed(e.to_string()))?;
    let timestamp = chrono::Utc::now().timestamp();
    let sent = http
        .post(url)
        .timeout(timeout)
        .header("content-type", "application/json")
        .header(TIMESTAMP, timestamp.to_string())
        .header(SIGNATURE, signature(secret, timestamp, &body))
        .body(body)
        .send()
        .await;
    let response = match sent {
        Ok(response) => response,
        Err(e) if e.is_timeout() => return Err(ToolError::Timeout(request.tool.to_owned())),
        // The address stays in the logs, not in the answer.
        Err(e) => {
            tracing::warn!(error = %e, tool = request.tool, "webhook unreachable");
            return Err(ToolError::Failed(
                "the tool's endpoint is unreachable".into(),
            ));
        }
    };
    let status = response.status();
    let bytes = match response.bytes().await {
        Ok(bytes) => bytes,
        Err(e) if e.is_timeout() => return Err(ToolError::Timeout(request.tool.to_owned())),
        Err(_) => return Err(ToolError::Failed("the tool's answer was cut short".into())),
    };
    if !status.is_success() {
        return Err(ToolError::Failed(format!("the tool answered {status}")));
    }
    if bytes.len() > MAX_ANSWER_BYTES {
        return Err(ToolError::Failed(format!(
            "the tool's answer is over {MAX_ANSWER_BYTES} bytes"
        )));
    }
    serde_json::from_slice(&bytes)
        .map_err(|_| ToolError::Failed("the tool's answer is not JSON".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_timestamp_dot_body() {
        // Python: hmac.new(b"key", b"1700000000.{}", hashlib.sha256).hexdigest()
        assert_eq!(
            signature("key", 1_700_000_000, b"{}"),
            "sha256=9d713ed406bb7076d4123f0dc2c39d2df5c654ed4b0cd56b52c8b4c940bd63ae"
        );
        assert_ne!(
            signature("key", 1_700_000_001, b"{}"),
            signature("key", 1_700_000_000, b"{}")
        );
    }
}
