//! A real MCP server for tests of MCP tools: the official Rust SDK's
//! streamable HTTP transport at `/mcp`, with three tools — `add` (a
//! structured answer), `shout` (text) and `broken` (a tool error) — a
//! count of the calls it ran, and, when started with a token, a
//! `401` for any request without `Authorization: Bearer <token>`.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use axum::{
    extract::Request,
    http::{StatusCode, header},
    middleware::{self, Next},
    response::Response,
};
use rmcp::{
    ServerHandler,
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{CallToolResult, ContentBlock, ServerCapabilities, ServerConfig},
    schemars, tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct Add {
    a: i64,
    b: i64,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct Shout {
    text: String,
}

#[derive(Clone)]
struct Tools {
    calls: Arc<AtomicUsize>,
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Tools {
    #[tool(description = "Adds two integers")]
    fn add(&self, Parameters(Add { a, b }): Parameters<Add>) -> CallToolResult {
        self.calls.fetch_add(1, Ordering::SeqCst);
        CallToolResult::structured(json!({ "sum": a + b }))
    }

    #[tool(description = "Says the text louder")]
    fn shout(&self, Parameters(Shout { text }): Parameters<Shout>) -> CallToolResult {
        self.calls.fetch_add(1, Ordering::SeqCst);
        CallToolResult::success(vec![ContentBlock::text(text.to_uppercase())])
    }

    #[tool(description = "Always fails")]
    fn broken(&self) -> CallToolResult {
        self.calls.fetch_add(1, Ordering::SeqCst);
        CallToolResult::error(vec![ContentBlock::text("the disk is on fire")])
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
    }
}

pub struct FakeMcp {
    addr: std::net::SocketAddr,
    calls: Arc<AtomicUsize>,
}

impl FakeMcp {
    /// Serves on a random port; with `token`, only to its bearer.
    pub async fn start(token: Option<&str>) -> Self {
        let calls = Arc::new(AtomicUsize::new(0));
        let tools = Tools {
            calls: calls.clone(),
            tool_router: Tools::tool_router(),
        };
        let service: StreamableHttpService<Tools, LocalSessionManager> = StreamableHttpService::new(
            move || Ok(tools.clone()),
            Arc::default(),
            StreamableHttpServerConfig::default().with_sse_keep_alive(None),
        );
        let expected = token.map(|t| format!("Bearer {t}"));
        let router = axum::Router::new()
            .nest_service("/mcp", service)
            .layer(middleware::from_fn(move |request: Request, next: Next| {
                let expected = expected.clone();
                async move { bearer(expected.as_deref(), request, next).await }
            }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the MCP server");
        let addr = listener.local_addr().expect("its address");
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { addr, calls }
    }

    /// The MCP endpoint.
    pub fn url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Tool calls it ran.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

async fn bearer(expected: Option<&str>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match expected {
        Some(expected) if given != Some(expected) => {
            let mut refused = Response::new(axum::body::Body::empty());
            *refused.status_mut() = StatusCode::UNAUTHORIZED;
            refused
        }
        _ => next.run(request).await,
    }
}
