//! The gateway in front of real upstream servers on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::{
        Request, State,
        ws::{Message, WebSocketUpgrade},
    },
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{any, get},
};
use daarion_gateway::{EdgeSettings, Gateway, config::RouteTable};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

/// An upstream that says who it is and echoes what it received.
async fn upstream(name: &'static str) -> (SocketAddr, Arc<AtomicBool>, Arc<AtomicUsize>) {
    let healthy = Arc::new(AtomicBool::new(true));
    let hits = Arc::new(AtomicUsize::new(0));
    #[derive(Clone)]
    struct S(&'static str, Arc<AtomicBool>, Arc<AtomicUsize>);
    async fn echo(State(S(name, _, hits)): State<S>, request: Request) -> Response {
        hits.fetch_add(1, Ordering::SeqCst);
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
        let headers: serde_json::Map<String, Value> = parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    Value::String(v.to_str().unwrap_or("").to_owned()),
                )
            })
            .collect();
        axum::Json(json!({
            "upstream": name, "method": parts.method.as_str(), "uri": parts.uri.to_string(),
            "headers": headers, "body_len": body.len(),
        }))
        .into_response()
    }
    async fn health(State(S(_, healthy, _)): State<S>) -> StatusCode {
        if healthy.load(Ordering::SeqCst) {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_secs(3)).await;
        "late"
    }
    async fn sse() -> Response {
        let stream = futures::stream::unfold(0, |n| async move {
            match n {
                0 => Some((Ok::<_, std::io::Error>("data: first\n\n".to_owned()), 1)),
                1 => {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    Some((Ok("data: second\n\n".to_owned()), 2))
                }
                _ => None,
            }
        });
        (
            [("content-type", "text/event-stream")],
            Body::from_stream(stream),
        )
            .into_response()
    }
    async fn big() -> Response {
        let chunk = vec![b'x'; 64 * 1024];
        let stream =
            futures::stream::iter((0..160).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
        Body::from_stream(stream).into_response()
    }
    async fn ws(upgrade: WebSocketUpgrade) -> Response {
        upgrade.on_upgrade(|mut socket| async move {
            while let Some(Ok(message)) = socket.recv().await {
                match message {
                    Message::Text(t) if t.as_str() == "bye" => {
                        let frame = axum::extract::ws::CloseFrame {
                            code: 4001,
                            reason: "bye from upstream".into(),
                        };
                        let _ = socket.send(Message::Close(Some(frame))).await;
                        return;
                    }
                    Message::Text(t) => {
                        let _ = socket
                            .send(Message::Text(format!("echo:{}", t.as_str()).into()))
                            .await;
                    }
                    Message::Close(_) => return,
                    _ => {}
                }
            }
        })
    }
    let app = Router::new()
        .route("/health", get(health))
        .route("/api/up/slow", get(slow))
        .route("/api/up/sse", get(sse))
        .route("/api/up/big", get(big))
        .route("/ws/up/socket", get(ws))
        .fallback(any(echo))
        .with_state(S(name, healthy.clone(), hits.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, healthy, hits)
}

/// A port nothing listens on.
fn dead_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

struct Edge {
    addr: SocketAddr,
    gateway: Arc<Gateway>,
    client: reqwest::Client,
}

async fn gateway(table: &str, settings: EdgeSettings) -> Edge {
    let table = RouteTable::parse(table).unwrap();
    let cache = daarion_testkit::fresh_cache(daarion_testkit::CacheKind::Memory)
        .await
        .unwrap();
    let gateway = Gateway::new(
        table,
        settings,
        cache,
        CancellationToken::new(),
        TaskTracker::new(),
    );
    let app = daarion_kernel::http::standard_layers(
        gateway.router(),
        "gateway",
        1 << 20,
        Duration::from_secs(30),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .unwrap()
    });
    tokio::spawn(gateway.clone().watch_reloads());
    daarion_kernel::server::install_crypto_provider();
    Edge {
        addr,
        gateway,
        client: reqwest::Client::new(),
    }
}

impl Edge {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
    async fn get(&self, path: &str) -> (u16, HeaderMap, Value) {
        let response = self.client.get(self.url(path)).send().await.unwrap();
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        let text = response.text().await.unwrap();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }
}

fn table(addresses: &[SocketAddr], extra_upstream: &str, extra_route: &str) -> String {
    let list: Vec<String> = addresses.iter().map(|a| format!("\"{a}\"")).collect();
    format!(
        "[[routes]]\nprefix = \"/api/up/\"\nupstream = \"up\"\nrate_limit = \"off\"\n{extra_route}\n\
         [[routes]]\nprefix = \"/ws/up/\"\nupstream = \"up\"\nwebsocket = true\n\
         [[routes]]\nprefix = \"/api/nows/\"\nupstream = \"up\"\nrate_limit = \"off\"\n\
         [upstreams.up]\naddresses = [{}]\n{extra_upstream}\n",
        list.join(", ")
    )
}

#[tokio::test]
async fn requests_are_forwarded_with_the_standard_headers() {
    let (a, _, _) = upstream("a").await;
    let edge = gateway(&table(&[a], "", ""), EdgeSettings::default()).await;
    let response = edge
        .client
        .post(edge.url("/api/up/things?x=1"))
        .header("x-request-id", "req-gw-1")
        .header("x-forwarded-for", "6.6.6.6")
        .header("connection", "x-private")
        .header("x-private", "hop")
        .header("x-end-to-end", "kept")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-request-id"], "req-gw-1");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    assert_eq!(response.headers()["x-frame-options"], "DENY");
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["uri"], "/api/up/things?x=1");
    assert_eq!(seen["method"], "POST");
    assert_eq!(seen["body_len"], 5);
    let h = &seen["headers"];
    assert_eq!(h["x-request-id"], "req-gw-1");
    assert_eq!(
        h["x-forwarded-for"], "127.0.0.1",
        "an untrusted client's X-Forwarded-For is replaced"
    );
    assert_eq!(h["x-real-ip"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], edge.addr.to_string());
    assert_eq!(
        h["host"],
        edge.addr.to_string(),
        "the client's Host reaches the service (its same-origin check reads it)"
    );
    assert_eq!(h["x-end-to-end"], "kept");
    assert!(
        h.get("x-private").is_none(),
        "hop-by-hop headers named in Connection are dropped"
    );
    assert!(h["traceparent"].as_str().unwrap().starts_with("00-"));

    // Trusted proxies' chains are extended, and their client address believed.
    let trusted = EdgeSettings {
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..EdgeSettings::default()
    };
    let edge = gateway(&table(&[a], "", ""), trusted).await;
    let seen: Value = edge
        .client
        .get(edge.url("/api/up/x"))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["headers"]["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen["headers"]["x-real-ip"], "203.0.113.9");
}

#[tokio::test]
async fn large_bodies_stream_both_ways_and_limits_hold() {
    let (a, _, _) = upstream("a").await;
    let edge = gateway(
        &table(&[a], "", "max_body_bytes = 20000000"),
        EdgeSettings::default(),
    )
    .await;
    // 16 MiB up, chunked (no Content-Length).
    let chunks =
        futures::stream::iter((0..256).map(|_| Ok::<_, std::io::Error>(vec![b'y'; 64 * 1024])));
    let response = edge
        .client
        .put(edge.url("/api/up/upload"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    let seen: Value = response.json().await.unwrap();
    assert_eq!(seen["body_len"], 16 * 1024 * 1024);
    // 10 MiB down.
    let bytes = edge
        .client
        .get(edge.url("/api/up/big"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(bytes.len(), 160 * 64 * 1024);
    // Over the route's limit: 413, declared or streamed.
    let small = gateway(
        &table(&[a], "", "max_body_bytes = 1000"),
        EdgeSettings::default(),
    )
    .await;
    let declared = small
        .client
        .post(small.url("/api/up/x"))
        .body(vec![0u8; 5000])
        .send()
        .await
        .unwrap();
    assert_eq!(declared.status(), 413);
    let chunks = futures::stream::iter((0..10).map(|_| Ok::<_, std::io::Error>(vec![b'z'; 1000])));
    let streamed = small
        .client
        .post(small.url("/api/up/x"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(streamed.status(), 413);
    let body: Value = streamed.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn server_sent_events_pass_through_as_they_come() {
    let (a, _, _) = upstream("a").await;
    let edge = gateway(&table(&[a], "", ""), EdgeSettings::default()).await;
    let started = Instant::now();
    let mut stream = edge
        .client
        .get(edge.url("/api/up/sse"))
        .send()
        .await
        .unwrap()
        .bytes_stream();
    let first = stream.next().await.unwrap().unwrap();
    let first_at = started.elapsed();
    assert_eq!(&first[..], b"data: first\n\n");
    assert!(
        first_at < Duration::from_millis(1000),
        "first event took {first_at:?}: buffered?"
    );
    let second = stream.next().await.unwrap().unwrap();
    assert_eq!(&second[..], b"data: second\n\n");
    assert!(started.elapsed() >= Duration::from_millis(1400));
}

#[tokio::test]
async fn websockets_relay_both_ways_with_close_codes() {
    use tokio_tungstenite::tungstenite::Message as Ws;
    let (a, _, _) = upstream("a").await;
    let edge = gateway(&table(&[a], "", ""), EdgeSettings::default()).await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws/up/socket", edge.addr))
            .await
            .unwrap();
    socket.send(Ws::Text("hi".into())).await.unwrap();
    assert_eq!(
        socket.next().await.unwrap().unwrap(),
        Ws::Text("echo:hi".into())
    );
    socket.send(Ws::Text("bye".into())).await.unwrap();
    match socket.next().await.unwrap().unwrap() {
        Ws::Close(Some(frame)) => {
            assert_eq!(u16::from(frame.code), 4001);
            assert_eq!(frame.reason.as_str(), "bye from upstream");
        }
        other => panic!("expected the upstream's close, got {other:?}"),
    }
    // Routes that do not allow WebSockets refuse the upgrade.
    let refused =
        tokio_tungstenite::connect_async(format!("ws://{}/api/nows/socket", edge.addr)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400)
        }
        other => panic!("expected 400, got {other:?}"),
    }
}

#[tokio::test]
async fn round_robin_and_least_requests_spread_the_load() {
    let (a, _, ha) = upstream("a").await;
    let (b, _, hb) = upstream("b").await;
    let (c, _, hc) = upstream("c").await;
    for balance in ["\"round_robin\"", "\"least_requests\""] {
        for h in [&ha, &hb, &hc] {
            h.store(0, Ordering::SeqCst);
        }
        let edge = gateway(
            &table(&[a, b, c], &format!("balance = {balance}"), ""),
            EdgeSettings::default(),
        )
        .await;
        for _ in 0..300 {
            assert_eq!(edge.get("/api/up/x").await.0, 200);
        }
        let counts = [
            ha.load(Ordering::SeqCst),
            hb.load(Ordering::SeqCst),
            hc.load(Ordering::SeqCst),
        ];
        for count in counts {
            assert!((80..=120).contains(&count), "{balance}: {counts:?}");
        }
    }
}

#[tokio::test]
async fn hashing_on_a_header_is_sticky() {
    let (a, _, _) = upstream("a").await;
    let (b, _, _) = upstream("b").await;
    let edge = gateway(
        &table(&[a, b], "balance = { hash = \"header:x-user\" }", ""),
        EdgeSettings::default(),
    )
    .await;
    let mut seen = std::collections::HashSet::new();
    for user in 0..20 {
        let mut names = std::collections::HashSet::new();
        for _ in 0..5 {
            let v: Value = edge
                .client
                .get(edge.url("/api/up/x"))
                .header("x-user", user.to_string())
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            names.insert(v["upstream"].as_str().unwrap().to_owned());
        }
        assert_eq!(names.len(), 1, "user {user} moved between upstreams");
        seen.extend(names);
    }
    assert_eq!(seen.len(), 2, "keys spread over both upstreams");
}

#[tokio::test]
async fn health_checks_eject_and_restore_upstreams() {
    let (a, a_healthy, _) = upstream("a").await;
    let (b, _, _) = upstream("b").await;
    let check =
        "health_check = { path = \"/health\", interval_ms = 100, healthy = 2, unhealthy = 2 }";
    let edge = gateway(&table(&[a, b], check, ""), EdgeSettings::default()).await;
    a_healthy.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(600)).await;
    for _ in 0..20 {
        assert_eq!(edge.get("/api/up/x").await.2["upstream"], "b");
    }
    let (_, _, health) = edge.get("/health").await;
    assert_eq!(health["upstreams"]["up"], json!({"healthy": 1, "total": 2}));
    a_healthy.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut names = std::collections::HashSet::new();
    for _ in 0..10 {
        names.insert(
            edge.get("/api/up/x").await.2["upstream"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(names.len(), 2, "a is back");
}

#[tokio::test]
async fn only_safe_requests_are_retried() {
    let (live, _, hits) = upstream("live").await;
    let dead = dead_address();
    // The dead address comes first in the rotation; passive ejection is off
    // so every request meets it again.
    let edge = gateway(
        &table(
            &[dead, live],
            "passive = { failures = 0, eject_ms = 1 }\nretries = 1",
            "",
        ),
        EdgeSettings::default(),
    )
    .await;
    for _ in 0..10 {
        let (status, _, body) = edge.get("/api/up/x").await;
        assert_eq!(
            (status, body["upstream"].as_str()),
            (200, Some("live")),
            "a GET that met the dead address is retried"
        );
    }
    let before = hits.load(Ordering::SeqCst);
    let mut failed = 0;
    for _ in 0..10 {
        let post = edge
            .client
            .post(edge.url("/api/up/x"))
            .body("once")
            .send()
            .await
            .unwrap();
        if post.status() == 502 {
            let body: Value = post.json().await.unwrap();
            assert_eq!(body["error"]["code"], "bad_gateway");
            failed += 1;
        } else {
            assert_eq!(post.status(), 200);
        }
    }
    assert!(
        failed >= 4,
        "POSTs that met the dead address fail: {failed} of 10"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst) - before,
        10 - failed,
        "no POST reached the upstream twice or after failing"
    );
}

#[tokio::test]
async fn failures_get_json_502_503_504() {
    let (a, a_healthy, _) = upstream("a").await;
    let edge = gateway(
        &table(&[dead_address()], "retries = 0", ""),
        EdgeSettings::default(),
    )
    .await;
    let (status, _, body) = edge.get("/api/up/x").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (502, Some("bad_gateway"))
    );
    assert!(body["error"]["request_id"].is_string());

    let slow = gateway(
        &table(
            &[a],
            "",
            "timeouts = { connect_ms = 500, response_ms = 300, idle_ms = 1000 }",
        ),
        EdgeSettings::default(),
    )
    .await;
    let started = Instant::now();
    let (status, _, body) = slow.get("/api/up/slow").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (504, Some("timeout"))
    );
    assert!(started.elapsed() < Duration::from_secs(2));

    let check =
        "health_check = { path = \"/health\", interval_ms = 50, healthy = 1, unhealthy = 1 }";
    // The only address fails its health check: the gateway says so, and
    // still sends it requests rather than refusing them all.
    let sick = gateway(&table(&[a], check, ""), EdgeSettings::default()).await;
    a_healthy.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _, _) = sick.get("/health").await;
    assert_eq!(status, 503);
    let (status, _, _) = sick.get("/api/up/x").await;
    assert_eq!(status, 200);
    let (status, _, body) = sick.get("/api/nowhere").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let (a, _, _) = upstream("a").await;
    let table = format!(
        "[[routes]]\nprefix = \"/api/up/\"\nupstream = \"up\"\n[[routes]]\nprefix = \"/api/free/\"\nupstream = \"up\"\nrate_limit = \"off\"\n[upstreams.up]\naddresses = [\"{a}\"]\n"
    );
    let settings = EdgeSettings {
        default_rate_limit: daarion_cache::RateLimit {
            per_second: 1.0,
            burst: 3,
        },
        ..EdgeSettings::default()
    };
    let edge = gateway(&table, settings).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let (status, headers, body) = edge.get("/api/up/x").await;
        if status == 429 {
            assert_eq!(body["error"]["code"], "rate_limited");
            assert!(
                headers["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
                    >= 1
            );
        }
        statuses.push(status);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    for _ in 0..10 {
        assert_eq!(edge.get("/api/free/x").await.0, 200);
    }
}

#[tokio::test]
async fn hot_reload_switches_upstreams_without_dropping_requests_and_rejects_broken_tables() {
    let (a, _, _) = upstream("a").await;
    let (b, _, _) = upstream("b").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("routes.toml");
    std::fs::write(&file, table(&[a], "", "")).unwrap();
    let settings = EdgeSettings {
        routes_file: Some(file.clone()),
        ..EdgeSettings::default()
    };
    let edge = gateway(&std::fs::read_to_string(&file).unwrap(), settings).await;
    let edge = Arc::new(edge);
    let load = {
        let edge = edge.clone();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..400 {
                statuses.push(edge.get("/api/up/x").await.0);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            statuses
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(&file, table(&[b], "", "")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while edge.get("/api/up/x").await.2["upstream"] != "b" {
        assert!(Instant::now() < deadline, "reload did not happen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    std::fs::write(&file, "[[routes]]\nprefix = \"broken\"").unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        edge.get("/api/up/x").await.2["upstream"],
        "b",
        "a broken table keeps the old one"
    );
    assert!(edge.gateway.reload_from_file().is_err());
    let statuses = load.await.unwrap();
    assert!(
        statuses.iter().all(|s| *s == 200),
        "a request failed during reload: {statuses:?}"
    );
}

#[tokio::test]
async fn responses_are_compressed_when_accepted_but_event_streams_are_not() {
    let (a, _, _) = upstream("a").await;
    let edge = gateway(&table(&[a], "", ""), EdgeSettings::default()).await;
    // reqwest here has no decompression, so the raw encoding is visible.
    let big = edge
        .client
        .get(edge.url("/api/up/big"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(
        big.headers()
            .get("content-encoding")
            .map(|v| v.to_str().unwrap()),
        Some("gzip"),
        "{:?}",
        big.headers()
    );
    let compressed = big.bytes().await.unwrap();
    assert!(
        compressed.len() < 100_000,
        "10 MiB of 'x' compresses: {}",
        compressed.len()
    );
    let plain = edge
        .client
        .get(edge.url("/api/up/big"))
        .send()
        .await
        .unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let started = Instant::now();
    let sse = edge
        .client
        .get(edge.url("/api/up/sse"))
        .header("accept-encoding", "gzip, br")
        .send()
        .await
        .unwrap();
    assert!(
        sse.headers().get("content-encoding").is_none(),
        "event streams pass uncompressed"
    );
    let mut stream = sse.bytes_stream();
    assert_eq!(
        &stream.next().await.unwrap().unwrap()[..],
        b"data: first\n\n"
    );
    assert!(started.elapsed() < Duration::from_millis(1000));
}

#[tokio::test]
async fn cors_is_off_by_default_and_follows_the_configured_origins() {
    let (a, _, _) = upstream("a").await;
    let closed = gateway(&table(&[a], "", ""), EdgeSettings::default()).await;
    let response = closed
        .client
        .get(closed.url("/api/up/x"))
        .header("origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    let settings = EdgeSettings {
        cors_origins: vec!["https://app.example".into()],
        ..EdgeSettings::default()
    };
    let open = gateway(&table(&[a], "", ""), settings).await;
    let preflight = open
        .client
        .request(reqwest::Method::OPTIONS, open.url("/api/up/x"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, idempotency-key",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert_eq!(
        preflight.headers()["access-control-allow-credentials"],
        "true"
    );
    let other = open
        .client
        .get(open.url("/api/up/x"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn oversized_websocket_frames_are_closed_with_1009() {
    use tokio_tungstenite::tungstenite::Message as Ws;
    let (a, _, _) = upstream("a").await;
    let table = format!(
        "[[routes]]\nprefix = \"/ws/up/\"\nupstream = \"up\"\nwebsocket = true\nmax_ws_frame_bytes = 1000\n[upstreams.up]\naddresses = [\"{a}\"]\n"
    );
    let edge = gateway(&table, EdgeSettings::default()).await;
    let (mut socket, _) =
        tokio_tungstenite::connect_async(format!("ws://{}/ws/up/socket", edge.addr))
            .await
            .unwrap();
    socket.send(Ws::Text("x".repeat(900).into())).await.unwrap();
    assert!(matches!(socket.next().await.unwrap().unwrap(), Ws::Text(t) if t.len() == 905));
    socket
        .send(Ws::Text("y".repeat(5000).into()))
        .await
        .unwrap();
    match socket.next().await.unwrap().unwrap() {
        Ws::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 1009),
        other => panic!("expected a 1009 close, got {other:?}"),
    }
}

/// Two routes to one echoing upstream: `/api/up/` as to a third party
/// (Grafana, Matrix...), `/api/ours/` as to a DAARION service.
fn third_party_and_ours(a: SocketAddr) -> String {
    format!(
        "[[routes]]\nprefix = \"/api/up/\"\nupstream = \"up\"\nrate_limit = \"off\"\n\
         [[routes]]\nprefix = \"/api/ours/\"\nupstream = \"ours\"\nrate_limit = \"off\"\n\
         [upstreams.up]\naddresses = [\"{a}\"]\n\
         [upstreams.ours]\naddresses = [\"{a}\"]\ncredentials = true\n"
    )
}

/// A city session or API key never reaches an upstream that is not one of
/// DAARION's services (#13); the upstream's own cookies and tokens pass.
/// `base` is the edge in front of [`third_party_and_ours`].
async fn only_daarion_services_see_credentials(client: &reqwest::Client, base: &str) {
    let seen = |path: &'static str, cookie: &'static str, authorization: &'static str| async move {
        let seen: Value = client
            .get(format!("{base}{path}"))
            .header("cookie", cookie)
            .header("authorization", authorization)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let header = |name: &str| seen["headers"][name].as_str().map(str::to_owned);
        (header("cookie"), header("authorization"))
    };
    let cookies = [
        (
            "grafana_session=g1; daarion_session=secret; theme=dark",
            Some("grafana_session=g1; theme=dark"),
        ),
        ("daarion_session=secret; theme=dark", Some("theme=dark")),
        ("theme=dark; daarion_session=secret", Some("theme=dark")),
        ("daarion_session=secret", None),
        ("a=1; __Host-daarion_session=secret; b=2", Some("a=1; b=2")),
        (
            "xdaarion_session=kept; a=1",
            Some("xdaarion_session=kept; a=1"),
        ),
    ];
    for (sent, expected) in cookies {
        let (cookie, _) = seen("/api/up/x", sent, "Bearer grafana-token").await;
        assert_eq!(cookie.as_deref(), expected, "{sent}");
        let (cookie, _) = seen("/api/ours/x", sent, "Bearer grafana-token").await;
        assert_eq!(cookie.as_deref(), Some(sent));
    }
    for (sent, third_party_sees) in [
        ("Bearer dk_secret", None),
        ("bearer dk_secret", None),
        ("Bearer grafana-token", Some("Bearer grafana-token")),
    ] {
        let (_, authorization) = seen("/api/up/x", "a=1", sent).await;
        assert_eq!(authorization.as_deref(), third_party_sees, "{sent}");
        let (_, authorization) = seen("/api/ours/x", "a=1", sent).await;
        assert_eq!(authorization.as_deref(), Some(sent));
    }
}

#[tokio::test]
async fn credentials_pass_only_to_upstreams_marked_as_daarion_services() {
    let (a, _, _) = upstream("a").await;
    let edge = gateway(&third_party_and_ours(a), EdgeSettings::default()).await;
    only_daarion_services_see_credentials(&edge.client, &edge.url("")).await;
}

/// The nginx export, run by a real nginx, keeps credentials from third
/// parties exactly as the gateway does.
#[tokio::test]
async fn the_nginx_export_keeps_credentials_from_third_parties_too() {
    let Some(nginx) = daarion_testkit::require_program(daarion_testkit::NGINX) else {
        return;
    };
    let (a, _, _) = upstream("a").await;
    let port = daarion_testkit::free_port("127.0.0.1");
    let conf = daarion_gateway::export::nginx(
        &RouteTable::parse(&third_party_and_ours(a)).unwrap(),
        &daarion_gateway::export::ExportOptions {
            listen: format!("127.0.0.1:{port}"),
            ..Default::default()
        },
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let globals = format!(
        "daemon off; pid {}; error_log {} warn;",
        dir.path().join("nginx.pid").display(),
        dir.path().join("error.log").display()
    );
    let mut server = tokio::process::Command::new(nginx)
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-c")
        .arg(&path)
        .arg("-g")
        .arg(globals)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    daarion_testkit::eventually("nginx listens", Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
    })
    .await;
    daarion_kernel::server::install_crypto_provider();
    only_daarion_services_see_credentials(
        &reqwest::Client::new(),
        &format!("http://127.0.0.1:{port}"),
    )
    .await;
    // A graceful stop: SIGKILL would leave nginx's workers running.
    let pid = server.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    server.wait().await.unwrap();
}
