//! MCP tools: a tool of a Model Context Protocol server over streamable
//! HTTP, through the official Rust SDK (`rmcp`). Each use opens a session
//! (the `initialize` handshake), asks, and closes it: the city keeps no
//! connection to servers it calls rarely, and a server that restarted in
//! between is no trouble.

use std::time::Duration;

use rmcp::{
    RoleClient, ServiceExt,
    model::{
        CallToolRequestParams, CallToolResult, ClientCapabilities, ClientConfig, Implementation,
    },
    service::RunningService,
    transport::{
        StreamableHttpClientTransport, streamable_http_client::StreamableHttpClientTransportConfig,
    },
};
use serde_json::{Value, json};

use crate::domain::ToolError;

/// The most a server may answer in one message, in bytes.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

/// Where a server is and how to authenticate to it.
pub struct Server<'a> {
    pub http: &'a reqwest::Client,
    pub url: &'a str,
    /// Sent as `Authorization: Bearer <token>`; empty: nothing sent.
    pub token: &'a str,
    pub timeout: Duration,
}

/// A tool a server offers.
#[derive(Debug, Clone, PartialEq)]
pub struct Offered {
    pub name: String,
    pub description: String,
    /// Its input's JSON Schema.
    pub parameters: Value,
}

type Session = RunningService<RoleClient, ClientConfig>;

impl Server<'_> {
    async fn open(&self) -> Result<Session, ToolError> {
        let mut config = StreamableHttpClientTransportConfig::with_uri(self.url)
            .max_json_response_size(MAX_ANSWER_BYTES)
            .max_sse_event_size(MAX_ANSWER_BYTES);
        if !self.token.is_empty() {
            config = config.auth_header(self.token);
        }
        let transport = StreamableHttpClientTransport::with_client(self.http.clone(), config);
        let info = ClientConfig::new(
            ClientCapabilities::default(),
            Implementation::new("daarion-toolcore", env!("CARGO_PKG_VERSION")),
        );
        info.serve(transport).await.map_err(|error| {
            // The address and the details stay in the logs.
            tracing::warn!(%error, url = self.url, "MCP server unreachable");
            ToolError::Failed("the MCP server could not be reached".into())
        })
    }

    /// Runs `ask` in a fresh session, within the timeout, then closes it.
    async fn within<T, F, Fut>(&self, what: &str, ask: F) -> Result<T, ToolError>
    where
        F: FnOnce(Session) -> Fut,
        Fut: Future<Output = (Session, Result<T, ToolError>)>,
    {
        let asked = tokio::time::timeout(self.timeout, async {
            let session = self.open().await?;
            let (session, answer) = ask(session).await;
            let _ = session.cancel().await;
            answer
        })
        .await;
        asked.unwrap_or_else(|_| Err(ToolError::Timeout(what.to_owned())))
    }

    /// Every tool the server offers.
    pub async fn tools(&self) -> Result<Vec<Offered>, ToolError> {
        self.within("the MCP server", |session| async move {
            let listed = session.list_all_tools().await.map_err(|error| {
                tracing::warn!(%error, "MCP tools/list failed");
                ToolError::Failed("the MCP server did not list its tools".into())
            });
            let offered = listed.map(|tools| {
                tools
                    .into_iter()
                    .map(|t| Offered {
                        name: t.name.into_owned(),
                        description: t.description.map(|d| d.into_owned()).unwrap_or_default(),
                        parameters: Value::Object((*t.input_schema).clone()),
                    })
                    .collect()
            });
            (session, offered)
        })
        .await
    }

    /// Calls the server's tool `remote` (named `tool` in the city).
    pub async fn call(
        &self,
        tool: &str,
        remote: &str,
        arguments: &Value,
    ) -> Result<Value, ToolError> {
        let arguments = arguments.as_object().cloned().unwrap_or_default();
        let params = CallToolRequestParams::new(remote.to_owned()).with_arguments(arguments);
        self.within(tool, |session| async move {
            let called = session.call_tool(params).await.map_err(|error| {
                tracing::warn!(%error, tool, "MCP tools/call failed");
                ToolError::Failed("the MCP server did not answer the call".into())
            });
            (session, called.and_then(answer))
        })
        .await
    }
}

/// A call's result as the caller reads it: the structured answer if the
/// tool gave one, else its text; a tool error is a failure.
fn answer(result: CallToolResult) -> Result<Value, ToolError> {
    let text: Vec<&str> = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.as_str()))
        .collect();
    let text = text.join("\n");
    if result.is_error == Some(true) {
        return Err(ToolError::Failed(if text.is_empty() {
            "the MCP tool reported an error".into()
        } else {
            text
        }));
    }
    Ok(match result.structured_content {
        Some(structured) => structured,
        None => json!({ "text": text }),
    })
}

#[cfg(test)]
mod tests {
    use rmcp::model::ContentBlock;

    use super::*;

    #[test]
    fn structured_answers_win_text_is_wrapped_and_errors_fail() {
        let structured = CallToolResult::structured(json!({"sum": 5}));
        assert_eq!(answer(structured).unwrap(), json!({"sum": 5}));
        let text =
            CallToolResult::success(vec![ContentBlock::text("one"), ContentBlock::text("two")]);
        assert_eq!(answer(text).unwrap(), json!({"text": "one\ntwo"}));
        let failed = CallToolResult::error(vec![ContentBlock::text("no disk")]);
        assert!(matches!(answer(failed), Err(ToolError::Failed(m)) if m == "no disk"));
    }
}
