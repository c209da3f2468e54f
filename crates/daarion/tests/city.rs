//! The city API end to end, as a client sees it, on the embedded backends
//! and on PostgreSQL + NATS JetStream + Redis.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{City, Kind, close_code, error_code, next_json, next_of, send_text};
use futures::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as WsMessage;

on_every_backend!(
    general_exists_and_rooms_can_be_created,
    bad_room_input_is_refused_and_nothing_is_written,
    idempotency_keys_make_creates_safe_to_retry,
    history_is_newest_first_with_cursor_pages,
    message_limits_hold_and_nothing_partial_is_written,
    request_ids_are_kept_or_made_and_errors_carry_them,
    a_method_a_path_does_not_answer_is_405_with_allow,
    health_metrics_and_openapi_are_served,
    operator_endpoints_are_for_city_admins,
    room_sockets_deliver_live_messages_both_ways,
    bad_socket_input_gets_errors_and_close_codes,
    socket_errors_carry_the_upgrade_request_id,
    presence_joins_heartbeats_leaves_and_expires,
    a_user_stays_present_while_any_connection_is_open,
    shutdown_closes_sockets_with_going_away,
    sockets_close_when_their_session_or_key_is_revoked,
    anyone_reads_the_city_unless_it_says_otherwise,
);

/// `city.public_read` (on by default): the city's rooms and their history,
/// the map, the feed and agents' presence are readable without signing
/// in; posting, people's presence and communities' rooms are not. Off,
/// reading needs credentials again.
async fn anyone_reads_the_city_unless_it_says_otherwise(kind: Kind) {
    let Some(mut city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let (status, _) = app
        .post(
            "/api/city/rooms/general/messages",
            Some("alice"),
            json!({"body": "hello, world"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, rooms) = app.get_as("/api/city/rooms", None).await;
    assert_eq!(status, 200, "{rooms}");
    let (status, history) = app.get_as("/api/city/rooms/general/messages", None).await;
    assert_eq!(
        (status, history["items"][0]["body"].clone()),
        (200, json!("hello, world"))
    );
    let (status, _) = app.get_as("/api/city/rooms/nowhere/messages", None).await;
    assert_eq!(status, 404);
    let (status, _) = app
        .post(
            "/api/city/rooms/general/messages",
            None,
            json!({"body": "anonymous"}),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = app.get_as("/api/city/presence", None).await;
    assert_eq!(status, 401);
    let (_, listed) = app
        .get_as("/api/messaging/rooms?kind=public", Some("alice"))
        .await;
    let general = listed["items"][0]["id"].as_str().unwrap().to_owned();
    let (status, _) = app
        .get_as(&format!("/api/messaging/rooms/{general}/messages"), None)
        .await;
    assert_eq!(status, 401, "messaging's own API needs credentials");
    app.stop().await;

    city.settings
        .services
        .update(&daarion_city::SPEC, |x: &mut daarion_city::Settings| {
            x.public_read = false
        })
        .unwrap();
    let closed = city.spawn().await;
    let paths = [
        "/api/city/rooms",
        "/api/city/rooms/general/messages",
        "/api/city/map",
        "/api/city/feed",
        "/api/city/agents",
    ];
    for path in paths {
        let (status, _) = closed.get_as(path, None).await;
        assert_eq!(status, 401, "{path}");
        let (status, _) = closed.get_as(path, Some("alice")).await;
        assert_eq!(status, 200, "{path}");
    }
    closed.stop().await;
}

async fn general_exists_and_rooms_can_be_created(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let (status, body) = app.get("/api/city/rooms").await;
    assert_eq!(status, 200);
    assert_eq!(body["items"][0]["slug"], "general");

    let (status, room) = app
        .post(
            "/api/city/rooms",
            Some("alice"),
            json!({"slug": "makers", "title": "Makers", "description": "We build"}),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    assert_eq!(room["created_by"], "alice");
    let (status, fetched) = app.get("/api/city/rooms/makers").await;
    assert_eq!(status, 200);
    assert_eq!(fetched["id"], room["id"]);

    let (status, body) = app
        .post(
            "/api/city/rooms",
            Some("bob"),
            json!({"slug": "makers", "title": "Again"}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (409, "conflict"));
    app.stop().await;
}

async fn bad_room_input_is_refused_and_nothing_is_written(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let cases = [
        (
            json!({"slug": "Bad Slug", "title": "x"}),
            422,
            "validation_failed",
        ),
        (
            json!({"slug": "ok-slug", "title": ""}),
            422,
            "validation_failed",
        ),
        (
            json!({"slug": "ok-slug", "title": "t".repeat(121)}),
            422,
            "validation_failed",
        ),
        (
            json!({"slug": "ok-slug", "title": 5}),
            422,
            "validation_failed",
        ),
        (json!({"slug": "ok-slug"}), 422, "validation_failed"),
        (
            json!({"slug": "ok-slug", "title": "x", "admin": true}),
            422,
            "validation_failed",
        ),
    ];
    for (input, status, code) in cases {
        let (got, body) = app
            .post("/api/city/rooms", Some("alice"), input.clone())
            .await;
        assert_eq!((got, error_code(&body)), (status, code), "{input}");
    }
    // Malformed JSON, no caller, wrong content type, oversized body.
    let alice = app.cookie("alice").await;
    let raw = |body: &'static str, ctype: &'static str| {
        app.client
            .post(app.url("/api/city/rooms"))
            .header("cookie", alice.clone())
            .header("content-type", ctype)
            .body(body)
    };
    let (status, body) =
        common::decode(raw("{not json", "application/json").send().await.unwrap()).await;
    assert_eq!((status, error_code(&body)), (400, "bad_request"));
    let (status, body) = common::decode(raw("{}", "text/plain").send().await.unwrap()).await;
    assert_eq!((status, error_code(&body)), (415, "unsupported_media_type"));
    let (status, body) = app
        .post(
            "/api/city/rooms",
            None,
            json!({"slug": "ok-slug", "title": "x"}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (401, "unauthorized"));
    let forged = app
        .client
        .post(app.url("/api/city/rooms"))
        .header("cookie", "daarion_session=forged")
        .json(&json!({"slug": "ok-slug", "title": "x"}))
        .send()
        .await
        .unwrap();
    let (status, body) = common::decode(forged).await;
    assert_eq!((status, error_code(&body)), (401, "unauthorized"));
    let huge = json!({"slug": "ok-slug", "title": "x", "description": "d".repeat(2 * 1024 * 1024)});
    let (status, body) = app.post("/api/city/rooms", Some("alice"), huge).await;
    assert_eq!((status, error_code(&body)), (413, "payload_too_large"));

    let (_, rooms) = app.get("/api/city/rooms").await;
    assert_eq!(
        rooms["items"].as_array().unwrap().len(),
        1,
        "only general: {rooms}"
    );
    let (status, body) = app.get("/api/city/rooms/no-such-room").await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    let (status, body) = app.get("/api/city/rooms/NOT_A_SLUG").await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    app.stop().await;
}

async fn idempotency_keys_make_creates_safe_to_retry(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let alice = app.cookie("alice").await;
    let post = |key: &'static str, body: serde_json::Value| {
        app.client
            .post(app.url("/api/city/rooms/general/messages"))
            .header("cookie", alice.clone())
            .header("idempotency-key", key)
            .json(&body)
    };
    let (first_status, first) =
        common::decode(post("k-1", json!({"body": "once"})).send().await.unwrap()).await;
    let (second_status, second) =
        common::decode(post("k-1", json!({"body": "once"})).send().await.unwrap()).await;
    assert_eq!((first_status, second_status), (201, 200));
    assert_eq!(first["id"], second["id"]);
    let (status, body) = common::decode(
        post("k-1", json!({"body": "different"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, error_code(&body)), (409, "conflict"));
    let (_, page) = app.get("/api/city/rooms/general/messages").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    app.stop().await;
}

async fn history_is_newest_first_with_cursor_pages(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    for n in 0..7 {
        let (status, _) = app
            .post(
                "/api/city/rooms/general/messages",
                Some("alice"),
                json!({"body": format!("m{n}")}),
            )
            .await;
        assert_eq!(status, 201);
    }
    let mut seen = Vec::new();
    let mut path = "/api/city/rooms/general/messages?limit=3".to_owned();
    loop {
        let (status, page) = app.get(&path).await;
        assert_eq!(status, 200, "{page}");
        seen.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| m["body"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(cursor) => {
                path = format!("/api/city/rooms/general/messages?limit=3&cursor={cursor}")
            }
            None => break,
        }
    }
    assert_eq!(seen, ["m6", "m5", "m4", "m3", "m2", "m1", "m0"]);
    for bad in ["?limit=0", "?limit=101", "?limit=x", "?cursor=zz"] {
        let (status, body) = app
            .get(&format!("/api/city/rooms/general/messages{bad}"))
            .await;
        assert!(status == 400 || status == 422, "{bad}: {status}");
        error_code(&body);
    }
    app.stop().await;
}

async fn message_limits_hold_and_nothing_partial_is_written(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let too_long = "x".repeat(4001);
    for body in [
        json!({"body": too_long}),
        json!({"body": "   "}),
        json!({"body": 42}),
        json!({}),
    ] {
        let (status, error) = app
            .post(
                "/api/city/rooms/general/messages",
                Some("alice"),
                body.clone(),
            )
            .await;
        assert_eq!(
            (status, error_code(&error)),
            (422, "validation_failed"),
            "{body}"
        );
    }
    let (status, body) = app
        .post(
            "/api/city/rooms/nowhere/messages",
            Some("alice"),
            json!({"body": "hi"}),
        )
        .await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    let (status, _) = app
        .post(
            "/api/city/rooms/general/messages",
            Some("alice"),
            json!({"body": "x".repeat(4000)}),
        )
        .await;
    assert_eq!(status, 201);
    let (_, page) = app.get("/api/city/rooms/general/messages").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    app.stop().await;
}

async fn request_ids_are_kept_or_made_and_errors_carry_them(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let response = app
        .client
        .get(app.url("/api/city/rooms/missing"))
        .header("x-request-id", "req-from-client-1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-from-client-1");
    let (_, body) = common::decode(response).await;
    assert_eq!(body["error"]["request_id"], "req-from-client-1");
    let response = app
        .client
        .get(app.url("/api/city/rooms"))
        .header("x-request-id", "bad id\twith tab")
        .send()
        .await
        .unwrap();
    let made = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(made.starts_with("req_"), "{made}");
    let (status, body) = app.get("/api/no/such/route").await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    app.stop().await;
}

async fn a_method_a_path_does_not_answer_is_405_with_allow(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let response = app
        .client
        .delete(app.url("/api/city/rooms"))
        .header("cookie", app.cookie("alice").await)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["allow"], "GET, HEAD, POST");
    let (status, body) = common::decode(response).await;
    assert_eq!((status, error_code(&body)), (405, "method_not_allowed"));
    app.stop().await;
}

async fn health_metrics_and_openapi_are_served(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let text = app
        .client
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(text, "OK");
    let (status, health) = app.get("/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "healthy");
    assert!(health["uptime"].is_u64());
    let expected = match kind {
        Kind::Embedded => json!({"database": "embedded", "bus": "embedded", "cache": "embedded"}),
        Kind::Distributed => {
            json!({"database": "connected", "nats": "connected", "redis": "connected"})
        }
    };
    assert_eq!(health["dependencies"], expected);
    assert_eq!(health["services"]["city"], "healthy");
    let (status, city_health) = app.get("/api/city/health").await;
    assert_eq!(
        (status, city_health["service"].as_str()),
        (200, Some("city"))
    );

    app.get("/api/city/rooms/general").await;
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains(r#"http_requests_total{service="city",method="GET",route="/api/city/rooms/{slug}",status="200"}"#), "{metrics}");
    assert!(metrics.contains("http_request_duration_seconds_bucket"));
    assert!(metrics.contains("active_connections"));
    assert!(metrics.contains(r#"service_health{service="city",dependency="database"} 1"#));
    // Prometheus' own linter finds nothing to say: names, types, help.
    if let Some(promtool) = daarion_testkit::require_program(&["/usr/bin/promtool"]) {
        use std::io::Write as _;
        let mut lint = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        lint.stdin
            .take()
            .unwrap()
            .write_all(metrics.as_bytes())
            .unwrap();
        let output = lint.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    let (status, spec) = app.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(spec["openapi"], "3.1.0");
    for path in [
        "/api/city/rooms",
        "/api/city/rooms/{slug}",
        "/api/city/rooms/{slug}/messages",
        "/api/city/presence",
        "/api/ops/dead-letters",
    ] {
        assert!(
            spec["paths"][path].is_object(),
            "{path} missing from OpenAPI"
        );
    }
    let docs = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));
    app.stop().await;
}

async fn operator_endpoints_are_for_city_admins(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let anonymous = app
        .client
        .get(app.url("/api/ops/dead-letters"))
        .send()
        .await
        .unwrap();
    let (status, body) = common::decode(anonymous).await;
    assert_eq!((status, error_code(&body)), (401, "unauthorized"));
    let (status, body) = app.get_as("/api/ops/dead-letters", Some("alice")).await;
    assert_eq!((status, error_code(&body)), (403, "forbidden"));
    let (status, body) = app.get_as("/api/ops/dead-letters", Some("root")).await;
    assert_eq!(
        (status, body["items"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    let missing = app
        .client
        .post(app.url("/api/ops/dead-letters/dlq_x/replay"))
        .header("cookie", app.cookie("root").await)
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    app.stop().await;
}

async fn room_sockets_deliver_live_messages_both_ways(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let mut watcher = app.ws_as("/ws/city/rooms/general", "watcher").await;
    let mut alice = app.ws_as("/ws/city/rooms/general", "alice").await;
    // Posted over HTTP, seen live.
    let (_, posted) = app
        .post(
            "/api/city/rooms/general/messages",
            Some("bob"),
            json!({"body": "hello city"}),
        )
        .await;
    let frame = next_of(&mut watcher, "message").await;
    assert_eq!(frame["message"]["id"], posted["id"]);
    assert_eq!(frame["message"]["body"], "hello city");
    // Posted over the socket: acknowledged, and seen by the others.
    send_text(
        &mut alice,
        json!({"type": "message", "body": "from ws", "ref": "r1"}).to_string(),
    )
    .await;
    let ack = next_of(&mut alice, "ack").await;
    assert_eq!(ack["ref"], "r1");
    let live = next_of(&mut watcher, "message").await;
    assert_eq!(live["message"]["body"], "from ws");
    assert_eq!(live["message"]["author"], "alice");
    // A read-only API key may watch but not post.
    let key = app.api_key("dora", &["city:read"]).await;
    let mut reader = app
        .ws_with(
            "/ws/city/rooms/general",
            "authorization",
            &format!("Bearer {key}"),
        )
        .await;
    send_text(
        &mut reader,
        json!({"type": "message", "body": "sneaky"}).to_string(),
    )
    .await;
    assert_eq!(
        next_of(&mut reader, "error").await["error"]["code"],
        "forbidden"
    );
    let (_, page) = app.get("/api/city/rooms/general/messages").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    app.stop().await;
}

async fn bad_socket_input_gets_errors_and_close_codes(kind: Kind) {
    let Some(mut city) = City::new(kind).await else {
        return;
    };
    city.settings
        .services
        .update(&daarion_city::SPEC, |x: &mut daarion_city::Settings| {
            x.ws_burst = 5
        })
        .unwrap();
    city.settings
        .services
        .update(&daarion_city::SPEC, |x: &mut daarion_city::Settings| {
            x.ws_messages_per_second = 1.0
        })
        .unwrap();
    let app = city.spawn().await;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = app
        .ws_url("/ws/city/rooms/nowhere")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("cookie", app.cookie("alice").await.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 404)
        }
        other => panic!("expected a 404, got {other:?}"),
    }
    match tokio_tungstenite::connect_async(app.ws_url("/ws/city/rooms/general")).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 401)
        }
        other => panic!("expected a 401 without credentials, got {other:?}"),
    }

    let mut socket = app.ws_as("/ws/city/rooms/general", "alice").await;
    send_text(&mut socket, "{not json".into()).await;
    assert_eq!(next_json(&mut socket).await["error"]["code"], "bad_request");
    send_text(
        &mut socket,
        json!({"type": "message", "body": "x".repeat(4001)}).to_string(),
    )
    .await;
    assert_eq!(
        next_of(&mut socket, "error").await["error"]["code"],
        "validation_failed"
    );
    send_text(&mut socket, "y".repeat(17 * 1024)).await;
    assert_eq!(close_code(&mut socket).await, 1009);

    let mut binary = app.ws_as("/ws/city/rooms/general", "bob").await;
    binary
        .send(WsMessage::Binary(vec![1, 2, 3].into()))
        .await
        .unwrap();
    assert_eq!(close_code(&mut binary).await, 1003);

    let mut flood = app.ws_as("/ws/city/rooms/general", "carol").await;
    for _ in 0..40 {
        if flood
            .send(WsMessage::Text(
                json!({"type": "heartbeat"}).to_string().into(),
            ))
            .await
            .is_err()
        {
            break;
        }
    }
    assert_eq!(close_code(&mut flood).await, 1008);

    // The process keeps serving.
    let (status, _) = app.get("/api/city/rooms").await;
    assert_eq!(status, 200);
    let (_, page) = app.get("/api/city/rooms/general/messages").await;
    assert!(
        page["items"].as_array().unwrap().is_empty(),
        "nothing partial written: {page}"
    );
    app.stop().await;
}

async fn socket_errors_carry_the_upgrade_request_id(kind: Kind) {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let mut request = app
        .ws_url("/ws/city/rooms/general")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("x-request-id", "ws-req-1".parse().unwrap());
    request
        .headers_mut()
        .insert("cookie", app.cookie("alice").await.parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    send_text(&mut socket, "{bad".into()).await;
    assert_eq!(
        next_json(&mut socket).await["error"]["request_id"],
        "ws-req-1"
    );
    app.stop().await;
}

async fn presence_joins_heartbeats_leaves_and_expires(kind: Kind) {
    let Some(mut city) = City::new(kind).await else {
        return;
    };
    city.settings
        .services
        .update(&daarion_city::SPEC, |x: &mut daarion_city::Settings| {
            x.presence_ttl_secs = 3
        })
        .unwrap();
    let app = city.spawn().await;
    let mut watcher = app.ws_as("/ws/city/presence?observe=true", "watcher").await;
    assert_eq!(next_json(&mut watcher).await["type"], "snapshot");

    let mut alice = app.ws_as("/ws/city/presence", "alice").await;
    assert_eq!(next_json(&mut alice).await["type"], "snapshot");
    let join = next_of(&mut watcher, "join").await;
    assert_eq!(join["user"], "alice");
    let (_, present) = app.get("/api/city/presence").await;
    assert_eq!(present["items"], json!([{"user": "alice"}]));

    send_text(&mut alice, json!({"type": "heartbeat"}).to_string()).await;
    assert_eq!(next_of(&mut watcher, "heartbeat").await["user"], "alice");

    alice.close(None).await.unwrap();
    let leave = next_of(&mut watcher, "leave").await;
    assert_eq!(
        (leave["user"].as_str(), leave["reason"].as_str()),
        (Some("alice"), Some("disconnect"))
    );

    // A client that stops heartbeating expires, and its leave is announced once.
    let mut bob = app.ws_as("/ws/city/presence", "bob").await;
    next_json(&mut bob).await;
    assert_eq!(next_of(&mut watcher, "join").await["user"], "bob");
    let leave = next_of(&mut watcher, "leave").await;
    assert_eq!(
        (leave["user"].as_str(), leave["reason"].as_str()),
        (Some("bob"), Some("timeout"))
    );
    let (_, present) = app.get("/api/city/presence").await;
    assert_eq!(present["items"], json!([]));
    drop(bob);
    app.stop().await;
}

async fn a_user_stays_present_while_any_connection_is_open(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let mut watcher = app.ws_as("/ws/city/presence?observe=true", "watcher").await;
    next_json(&mut watcher).await;
    let mut tab1 = app.ws_as("/ws/city/presence", "alice").await;
    next_json(&mut tab1).await;
    assert_eq!(next_of(&mut watcher, "join").await["user"], "alice");
    let mut tab2 = app.ws_as("/ws/city/presence", "alice").await;
    next_json(&mut tab2).await;
    // The second tab is a heartbeat, not a second join.
    assert_eq!(next_json(&mut watcher).await["type"], "heartbeat");

    tab1.close(None).await.unwrap();
    assert_eq!(close_code(&mut tab1).await, 1005);
    let (_, present) = app.get("/api/city/presence").await;
    assert_eq!(present["items"], json!([{"user": "alice"}]));
    let quiet =
        tokio::time::timeout(Duration::from_millis(500), next_of(&mut watcher, "leave")).await;
    assert!(quiet.is_err(), "no leave while a tab is open");

    tab2.close(None).await.unwrap();
    let leave = next_of(&mut watcher, "leave").await;
    assert_eq!(leave["user"], "alice");
    let (_, present) = app.get("/api/city/presence").await;
    assert_eq!(present["items"], json!([]));
    app.stop().await;
}

async fn shutdown_closes_sockets_with_going_away(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let mut socket = app.ws_as("/ws/city/rooms/general", "watcher").await;
    let stopping = tokio::spawn(app.stop());
    assert_eq!(close_code(&mut socket).await, 1001);
    tokio::time::timeout(Duration::from_secs(15), stopping)
        .await
        .unwrap()
        .unwrap();
}

/// Two `serve city` replicas on PostgreSQL + NATS + Redis behave as one.
#[tokio::test]
async fn two_city_replicas_share_rooms_messages_and_presence() {
    let Some(city) = City::new(Kind::Distributed).await else {
        return;
    };
    let (auth, a, b) = city.auth_and_two_replicas("city").await;

    let (status, _) = a
        .post(
            "/api/city/rooms",
            Some("alice"),
            json!({"slug": "shared", "title": "Shared"}),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = b.get("/api/city/rooms/shared").await;
    assert_eq!(status, 200);

    let mut on_a = a.ws_as("/ws/city/rooms/shared", "watcher").await;
    let mut on_b = b.ws_as("/ws/city/rooms/shared", "bob").await;
    let mut presence_on_a = a.ws_as("/ws/city/presence?observe=true", "watcher").await;
    next_json(&mut presence_on_a).await;

    let (_, posted) = b
        .post(
            "/api/city/rooms/shared/messages",
            Some("carol"),
            json!({"body": "via b"}),
        )
        .await;
    assert_eq!(
        next_of(&mut on_a, "message").await["message"]["id"],
        posted["id"]
    );
    assert_eq!(
        next_of(&mut on_b, "message").await["message"]["id"],
        posted["id"]
    );
    send_text(
        &mut on_b,
        json!({"type": "message", "body": "ws on b"}).to_string(),
    )
    .await;
    assert_eq!(
        next_of(&mut on_a, "message").await["message"]["body"],
        "ws on b"
    );

    let mut dave = b.ws_as("/ws/city/presence", "dave").await;
    next_json(&mut dave).await;
    assert_eq!(next_of(&mut presence_on_a, "join").await["user"], "dave");
    let (_, present) = a.get("/api/city/presence").await;
    assert_eq!(present["items"], json!([{"user": "dave"}]));

    let (_, health) = a.get("/health").await;
    assert_eq!(health["service"], "city");
    drop((on_a, on_b, presence_on_a, dave));
    a.stop().await;
    b.stop().await;
    auth.stop().await;
}

/// `daarion up` applies the edge's default rate limit (10 r/s, burst 20 per
/// client on /api/) and its security headers.
#[tokio::test]
async fn up_applies_the_default_edge_protection() {
    let Some(mut city) = City::new(Kind::Embedded).await else {
        return;
    };
    city.settings.gateway = daarion::config::GatewaySettings::default();
    let app = city.spawn().await;
    let mut statuses = Vec::new();
    let visitor = app.cookie("visitor").await;
    for _ in 0..25 {
        let response = app
            .client
            .get(app.url("/api/city/rooms"))
            .header("cookie", &visitor)
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        if response.status() == 429 {
            assert!(response.headers().contains_key("retry-after"));
        }
        statuses.push(response.status().as_u16());
    }
    // The burst of 20, plus at most the tokens refilled (10/s) while the
    // loop ran: authenticated requests take a few milliseconds each here.
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    assert!((20..=22).contains(&admitted), "{statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        25 - admitted,
        "{statuses:?}"
    );
    // WebSocket upgrade attempts, signed in or not, spend a bucket of their own.
    let mut upgrades = Vec::new();
    for _ in 0..25 {
        let response = app
            .client
            .get(app.url("/ws/city/rooms/general"))
            .send()
            .await
            .unwrap();
        upgrades.push(response.status().as_u16());
    }
    let limited = upgrades.iter().filter(|s| **s == 429).count();
    assert!((3..=5).contains(&limited), "{upgrades:?}");
    // Not under /api/ or /ws/: not limited.
    for _ in 0..5 {
        assert_eq!(
            app.client
                .get(app.url("/healthz"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
    }
    // Routes of upstreams not served here and not configured: JSON 404.
    let (status, body) = app.get("/grafana/").await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    // The web UI: its page with a CSP, client-side routes, but never /api/.
    let page = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'self'"), "{csp}");
    // Sockets to this host only ('self' covers ws: and wss: to it, CSP 3).
    assert!(csp.contains("connect-src 'self';"), "{csp}");
    assert!(page.headers().contains_key("etag"));
    assert!(
        page.text()
            .await
            .unwrap()
            .contains("<title>DAARION</title>")
    );
    let route = app
        .client
        .get(app.url("/rooms/general"))
        .send()
        .await
        .unwrap();
    assert_eq!(route.status(), 200);
    let (status, body) = app.get("/api/nowhere").await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    app.stop().await;
}

/// The distributed shape end to end: `daarion gateway` in front of two
/// `daarion serve city` replicas on PostgreSQL + NATS + Redis.
#[tokio::test]
async fn the_gateway_fronts_two_city_replicas() {
    let Some(city) = City::new(Kind::Distributed).await else {
        return;
    };
    let (auth, a, b) = city.auth_and_two_replicas("city").await;
    let dir = tempfile::tempdir().unwrap();
    let routes = common::routes_file(
        dir.path(),
        &format!(
            "[[routes]]\nprefix = \"/api/city/\"\nupstream = \"city\"\n\
             [[routes]]\nprefix = \"/ws/city/\"\nupstream = \"city\"\nwebsocket = true\n\
             [upstreams.city]\naddresses = [\"{}\", \"{}\"]\ncredentials = true\n\
             health_check = {{ path = \"/health\", interval_ms = 200, healthy = 1, unhealthy = 2 }}\n",
            a.addr, b.addr
        ),
    );
    let mut settings = city.settings.clone();
    settings.gateway.routes_file = Some(routes);
    let mut gateway = common::spawn_with(settings, daarion::Shape::Gateway).await;
    gateway.auth_base = auth.url("");
    gateway.people = city.people.clone();

    let mut live = gateway.ws_as("/ws/city/rooms/general", "watcher").await;
    let mut posted = Vec::new();
    for n in 0..6 {
        let (status, message) = gateway
            .post(
                "/api/city/rooms/general/messages",
                Some("alice"),
                json!({"body": format!("m{n}")}),
            )
            .await;
        assert_eq!(status, 201, "{message}");
        posted.push(message["id"].clone());
    }
    for id in &posted {
        assert_eq!(&next_of(&mut live, "message").await["message"]["id"], id);
    }
    send_text(
        &mut live,
        json!({"type": "message", "body": "through the gateway"}).to_string(),
    )
    .await;
    assert_eq!(
        next_of(&mut live, "ack").await["message"]["body"],
        "through the gateway"
    );

    let (status, health) = gateway.get("/health").await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(
        health["upstreams"]["city"],
        json!({"healthy": 2, "total": 2})
    );
    let metrics = gateway
        .client
        .get(gateway.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gateway_upstream_requests_total"),
        "{metrics}"
    );

    drop(live);
    gateway.stop().await;
    a.stop().await;
    b.stop().await;
    auth.stop().await;
}

/// With a collector set (`otlp_endpoint`), every process sends its spans
/// over OTLP, and one trace follows a post from the caller through
/// `daarion gateway`, the city service that stores it and the living map's
/// consumer of its event, each span the child of the one before (#19).
#[tokio::test]
async fn one_trace_follows_a_post_through_the_gateway_the_service_and_the_bus() {
    use daarion_testkit::otlp::{FakeCollector, SpanKind};
    let Some(city) = City::new(Kind::Distributed).await else {
        return;
    };
    let collector = FakeCollector::start().await;
    let endpoint = collector.endpoint();
    let env = [
        ("DAARION__OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
    ];
    let auth = common::spawn_with(
        city.settings.clone(),
        daarion::Shape::Service("auth".into()),
    )
    .await;
    let nats_url = city.settings.nats_url.as_deref().unwrap();
    let city_port = daarion_testkit::free_port("127.0.0.1");
    let _city = common::serve_child(&city.settings, "city", city_port, nats_url, &env).await;
    let map_port = daarion_testkit::free_port("127.0.0.1");
    let _map = common::serve_child(&city.settings, "living-map", map_port, nats_url, &env).await;
    let dir = tempfile::tempdir().unwrap();
    let routes = common::routes_file(
        dir.path(),
        &format!(
            "[[routes]]\nprefix = \"/api/city/\"\nupstream = \"city\"\n\
             [upstreams.city]\naddresses = [\"127.0.0.1:{city_port}\"]\ncredentials = true\n"
        ),
    );
    let routes = routes.to_str().unwrap();
    let gateway_port = daarion_testkit::free_port("127.0.0.1");
    let listen = format!("127.0.0.1:{gateway_port}");
    let gateway_env = [env[0], env[1], ("DAARION__GATEWAY__ROUTES_FILE", routes)];
    let _gateway = common::daarion_child(
        &city.settings,
        &["gateway", "--listen", &listen],
        gateway_port,
        nats_url,
        &gateway_env,
    )
    .await;

    let caller = daarion_kernel::RequestContext::generate();
    let posted = auth
        .client
        .post(format!("http://{listen}/api/city/rooms/general/messages"))
        .header("cookie", auth.cookie("alice").await)
        .header("traceparent", caller.traceparent())
        .header("x-request-id", "req_traced")
        .json(&json!({"body": "followed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 201);

    let spans = daarion_testkit::eventually(
        "the post's spans at the collector",
        Duration::from_secs(30),
        || async {
            let spans: Vec<_> = collector
                .spans()
                .into_iter()
                .filter(|s| s.trace_id == caller.trace_id)
                .collect();
            // Each process sends its own, in its own time.
            let all = [
                ("gateway", SpanKind::Server),
                ("city", SpanKind::Server),
                ("living-map", SpanKind::Consumer),
            ]
            .iter()
            .all(|(service, kind)| {
                spans
                    .iter()
                    .any(|s| s.service == *service && s.kind == *kind)
            });
            all.then_some(spans)
        },
    )
    .await;
    let one = |service: &str, kind: SpanKind| {
        let found: Vec<_> = spans
            .iter()
            .filter(|s| s.service == service && s.kind == kind)
            .collect();
        assert_eq!(found.len(), 1, "{service}: {spans:#?}");
        found[0].clone()
    };
    let gateway = one("gateway", SpanKind::Server);
    assert_eq!(
        gateway.parent_span_id.as_deref(),
        Some(caller.span_id.as_str())
    );
    let service = one("city", SpanKind::Server);
    assert_eq!(
        service.parent_span_id.as_deref(),
        Some(gateway.span_id.as_str())
    );
    assert_eq!(service.name, "POST /api/city/rooms/{slug}/messages");
    let consumer = spans
        .iter()
        .find(|s| s.service == "living-map" && s.kind == SpanKind::Consumer)
        .unwrap();
    assert_eq!(
        consumer.parent_span_id.as_deref(),
        Some(service.span_id.as_str())
    );
    assert_eq!(consumer.name, "process message.received.*");
    for span in [&gateway, &service] {
        assert_eq!(
            span.attributes["http.response.status_code"], "201",
            "{span:?}"
        );
        assert!(!span.error, "{span:?}");
    }
    for span in [&gateway, &service, consumer] {
        assert_eq!(
            span.attributes["daarion.request_id"], "req_traced",
            "{span:?}"
        );
    }
    auth.stop().await;
}

/// `/metrics` shows the city's traffic: it answers loopback clients, the
/// networks of `server.metrics_allow` and the bearer of
/// `server.metrics_token`, and nobody else, also behind a reverse proxy on
/// the same host (#13).
#[tokio::test]
async fn metrics_are_for_loopback_an_allow_list_or_a_token() {
    let Some(mut city) = City::new(Kind::Embedded).await else {
        return;
    };
    // A reverse proxy on this host, which names its clients.
    city.settings.gateway.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    city.settings.server.metrics_allow = vec!["203.0.113.0/24".parse().unwrap()];
    city.settings.server.metrics_token = Some("scrape-Vq8n-Lm3x-Pz7k-Hd2w-Ty6".into());
    let app = city.spawn().await;
    let status = |client: Option<&'static str>, token: Option<&'static str>| {
        let mut request = app.client.get(app.url("/metrics"));
        if let Some(client) = client {
            request = request.header("x-forwarded-for", client);
        }
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status(None, None).await, 200, "loopback");
    assert_eq!(status(Some("203.0.113.9"), None).await, 200, "allowed");
    assert_eq!(status(Some("198.51.100.7"), None).await, 403, "a visitor");
    assert_eq!(
        status(Some("198.51.100.7"), Some("scrape-Vq8n-Lm3x-Pz7k-Hd2w-Ty6")).await,
        200,
        "the token"
    );
    assert_eq!(
        status(Some("198.51.100.7"), Some("scrape-wrong")).await,
        403,
        "a wrong token"
    );
    let refused = app
        .client
        .get(app.url("/metrics"))
        .header("x-forwarded-for", "198.51.100.7")
        .send()
        .await
        .unwrap();
    let (code, body) = common::decode(refused).await;
    assert_eq!((code, error_code(&body)), (403, "forbidden"));
    app.stop().await;
}

/// A `serve <service>` reached without the gateway limits each client
/// before authentication, as the edge does (#13); the gateway, a trusted
/// proxy, is not limited there: its routes' own limits applied already.
#[tokio::test]
async fn a_service_reached_directly_limits_each_client() {
    let Some(mut city) = City::new(Kind::Embedded).await else {
        return;
    };
    city.settings.gateway = daarion::config::GatewaySettings::default();
    let statuses = |replica: common::TestApp| async move {
        let mut statuses = Vec::new();
        for _ in 0..25 {
            let response = replica
                .client
                .get(replica.url("/api/city/rooms"))
                .bearer_auth("dk_not_a_key")
                .send()
                .await
                .unwrap();
            statuses.push(response.status().as_u16());
        }
        replica.stop().await;
        statuses
    };
    let direct = statuses(
        common::spawn_with(
            city.settings.clone(),
            daarion::Shape::Service("city".into()),
        )
        .await,
    )
    .await;
    let limited = direct.iter().filter(|s| **s == 429).count();
    assert!((3..=5).contains(&limited), "{direct:?}");
    assert!(direct[..20].iter().all(|s| *s == 401), "{direct:?}");

    city.settings.gateway.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
    let through_the_gateway = statuses(
        common::spawn_with(
            city.settings.clone(),
            daarion::Shape::Service("city".into()),
        )
        .await,
    )
    .await;
    assert!(
        through_the_gateway.iter().all(|s| *s == 401),
        "{through_the_gateway:?}"
    );
}

/// A service process behind the gateway sees every connection come from the
/// gateway's one address: it must not apply the edge's per-client cap.
#[tokio::test]
async fn a_service_process_does_not_cap_connections_per_client() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(mut city) = City::new(Kind::Embedded).await else {
        return;
    };
    city.settings.server.max_connections_per_client = 2;
    let replica = common::spawn_with(
        city.settings.clone(),
        daarion::Shape::Service("city".into()),
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..6 {
        let mut stream = tokio::net::TcpStream::connect(replica.addr).await.unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
            "connection {} refused",
            held.len() + 1
        );
        held.push(stream);
    }
    drop(held);
    replica.stop().await;
}

/// Signing out or revoking a key reaches open sockets (#13): they close
/// with 4401 and post nothing more.
async fn sockets_close_when_their_session_or_key_is_revoked(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let mut by_session = app.ws_as("/ws/city/rooms/general", "alice").await;
    let (status, key) = app
        .send(
            "POST",
            "/api/auth/api-keys",
            "alice",
            Some(json!({"name": "bot"})),
        )
        .await;
    assert_eq!(status, 201, "{key}");
    let mut by_key = app
        .ws_with(
            "/ws/city/rooms/general",
            "authorization",
            &format!("Bearer {}", key["key"].as_str().unwrap()),
        )
        .await;

    let (status, _) = app
        .send(
            "DELETE",
            &format!("/api/auth/api-keys/{}", key["id"].as_str().unwrap()),
            "alice",
            None,
        )
        .await;
    assert_eq!(status, 204);
    assert_eq!(close_code(&mut by_key).await, 4401);
    // The session's socket is another credential: still open.
    send_text(
        &mut by_session,
        json!({"type": "message", "body": "still here", "ref": "r1"}).to_string(),
    )
    .await;
    assert_eq!(next_of(&mut by_session, "ack").await["ref"], "r1");

    let (status, _) = app.send("POST", "/api/auth/logout", "alice", None).await;
    assert_eq!(status, 204);
    assert_eq!(close_code(&mut by_session).await, 4401);
    let _ = by_session
        .send(WsMessage::Text(
            json!({"type": "message", "body": "after logout"})
                .to_string()
                .into(),
        ))
        .await;
    let (_, page) = app
        .get_as("/api/city/rooms/general/messages", Some("root"))
        .await;
    let bodies: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap())
        .collect();
    assert_eq!(bodies, ["still here"]);
    app.stop().await;
}

/// Another site's page cannot act with a person's session (#13): CSRF on
/// writes and cross-site WebSocket hijacking are refused; same-origin
/// pages, scripts without browser headers and bearer keys pass.
#[tokio::test]
async fn cross_site_requests_cannot_ride_the_session_cookie() {
    let city = City::new(Kind::Embedded).await.unwrap();
    let app = city.spawn().await;
    let cookie = app.cookie("alice").await;
    let post = |headers: &[(&'static str, String)]| {
        let mut request = app
            .client
            .post(app.url("/api/city/rooms/general/messages"))
            .header("cookie", &cookie)
            .json(&json!({"body": "hello"}));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    let own = format!("http://{}", app.addr);
    assert_eq!(
        post(&[("origin", "https://evil.example".into())]).await,
        403
    );
    assert_eq!(post(&[("sec-fetch-site", "cross-site".into())]).await, 403);
    assert_eq!(post(&[("origin", own.clone())]).await, 201);
    assert_eq!(post(&[("sec-fetch-site", "same-origin".into())]).await, 201);
    assert_eq!(post(&[]).await, 201, "no browser headers: a script");
    let key = app.api_key("alice", &["*"]).await;
    let by_key = app
        .client
        .post(app.url("/api/city/rooms/general/messages"))
        .bearer_auth(&key)
        .header("origin", "https://evil.example")
        .json(&json!({"body": "from a script"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        by_key.status(),
        201,
        "a bearer key is no ambient credential"
    );

    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut hijack = app
        .ws_url("/ws/city/rooms/general")
        .into_client_request()
        .unwrap();
    hijack
        .headers_mut()
        .insert("cookie", cookie.parse().unwrap());
    hijack
        .headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(hijack).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 403)
        }
        other => panic!("expected a 403, got {other:?}"),
    }
    app.stop().await;
}
