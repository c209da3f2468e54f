//! Toolcore end to end, on both backends: built-in tools run for agents
//! that have them, within what the caller may read; webhook tools are
//! signed, timed out and governed by city admins; tools of MCP servers
//! are registered from what the server lists and called over streamable
//! HTTP; bad arguments and denied tools never run; every call is logged
//! and metered.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    body::Bytes,
    http::{HeaderMap, StatusCode},
    routing::post,
};
use common::{City, Kind, TestApp, error_code};
use serde_json::{Value, json};

on_every_backend!(
    built_in_tools_run_for_agents_that_have_them_within_what_they_may_read,
    an_agent_posts_with_its_tool_where_it_and_its_person_may,
    an_agent_founds_a_community_it_orchestrates_for_its_person,
    http_fetch_reads_only_allow_listed_hosts_at_public_addresses,
    webhook_tools_are_signed_timed_out_and_governed,
    tools_of_an_mcp_server_are_registered_and_called,
);

const TOOLS: &str = "/api/toolcore/tools";

/// An agent of Alice's with the helper blueprint's tools, in `guild`;
/// its API key.
async fn helper_in_guild(app: &TestApp) -> String {
    common::community(app, "alice", "guild", "public").await;
    app.send("POST", "/api/microdao/daos/guild/join", "bob", None)
        .await;
    let (status, made) = app
        .send(
            "POST",
            "/api/agents/agents",
            "alice",
            Some(json!({"slug": "helper", "blueprint": "helper"})),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let (status, body) = app
        .send(
            "POST",
            "/api/microdao/daos/guild/agents",
            "alice",
            Some(json!({"agent": "helper"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.api_key_for_agent("alice", "helper").await
}

async fn call(app: &TestApp, key: &str, tool: &str, body: Value) -> (u16, Value) {
    app.send_with(
        "POST",
        &format!("{TOOLS}/{tool}/call"),
        ("authorization", format!("Bearer {key}")),
        Some(body),
    )
    .await
}

async fn built_in_tools_run_for_agents_that_have_them_within_what_they_may_read(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let key = helper_in_guild(&app).await;
    let (_, tools) = app.get_as(TOOLS, Some("bob")).await;
    let names: Vec<&str> = tools["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "time.now",
            "math.evaluate",
            "city.rooms",
            "http.fetch",
            "messaging.post",
            "microdao.members",
            "microdao.found",
            "memory.search",
            "memory.remember",
            "memory.fact",
            "memory.facts",
            "memory.forget"
        ]
    );

    // "How many members do we have?": the agent looks it up.
    let (status, answer) = call(
        &app,
        &key,
        "microdao.members",
        json!({"arguments": {"dao": "guild"}}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["result"]["total"], 3,
        "alice, bob and the agent: {answer}"
    );
    assert!(answer["call_id"].as_str().unwrap().starts_with("call_"));

    // Paused in the hub, it runs nothing until resumed.
    let helper = "/api/agents/agents/helper";
    app.send("PATCH", helper, "alice", Some(json!({"status": "paused"})))
        .await;
    let members = json!({"arguments": {"dao": "guild"}});
    assert_eq!(
        call(&app, &key, "microdao.members", members.clone())
            .await
            .0,
        403
    );
    app.send("PATCH", helper, "alice", Some(json!({"status": "active"})))
        .await;
    assert_eq!(call(&app, &key, "microdao.members", members).await.0, 200);

    // Not among its tools: refused, nothing ran.
    let (status, body) = call(
        &app,
        &key,
        "math.evaluate",
        json!({"arguments": {"expression": "2+2"}}),
    )
    .await;
    assert_eq!((status, error_code(&body)), (403, "forbidden"), "{body}");
    // Arguments that do not fit the schema: refused before running.
    for arguments in [
        json!({"dao": 5}),
        json!({"dao": "guild", "extra": true}),
        json!({}),
        json!([1]),
    ] {
        let (status, body) = call(
            &app,
            &key,
            "microdao.members",
            json!({"arguments": arguments}),
        )
        .await;
        assert_eq!(
            (status, error_code(&body)),
            (422, "validation_failed"),
            "{arguments}: {body}"
        );
    }
    // A private community it is not in reads as none.
    common::community(&app, "carol", "vault", "private").await;
    let (status, _) = call(
        &app,
        &key,
        "microdao.members",
        json!({"arguments": {"dao": "vault"}}),
    )
    .await;
    assert_eq!(status, 404);
    // Acting for a person, the tool reads only what both may: Carol, in
    // the vault, cannot lend the agent her access.
    let carol = format!("user:{}", app.user_id("carol").await);
    let (status, _) = call(
        &app,
        &key,
        "microdao.members",
        json!({"arguments": {"dao": "vault"}, "acting_for": carol}),
    )
    .await;
    assert_eq!(status, 404);
    let (status, answer) = call(
        &app,
        &key,
        "microdao.members",
        json!({"arguments": {"dao": "guild", "limit": 1}, "acting_for": carol}),
    )
    .await;
    assert_eq!(
        (status, answer["result"]["members"].as_array().map(Vec::len)),
        (200, Some(1))
    );
    let (status, _) = call(
        &app,
        &key,
        "time.now",
        json!({"arguments": {}, "acting_for": "user:nobody"}),
    )
    .await;
    assert_eq!(status, 422);

    // People call the open built-ins themselves.
    let (status, answer) = app
        .send(
            "POST",
            &format!("{TOOLS}/math.evaluate/call"),
            "bob",
            Some(json!({"arguments": {"expression": "(2+3)*4^2"}})),
        )
        .await;
    assert_eq!(
        (status, answer["result"]["value"].clone()),
        (200, json!(80.0)),
        "{answer}"
    );
    let (status, body) = app
        .send(
            "POST",
            &format!("{TOOLS}/math.evaluate/call"),
            "bob",
            Some(json!({"arguments": {"expression": "1/0"}})),
        )
        .await;
    assert_eq!((status, error_code(&body)), (502, "bad_gateway"), "{body}");
    // Under an idempotency key a call that succeeded is answered again
    // from the log, not run again; one that failed runs again.
    let keyed = |key: &'static str, arguments: Value| {
        let app = &app;
        async move {
            let response = app
                .client
                .post(app.url(&format!("{TOOLS}/time.now/call")))
                .header("cookie", app.cookie("bob").await)
                .header("idempotency-key", key)
                .json(&json!({ "arguments": arguments }))
                .send()
                .await
                .unwrap();
            common::decode(response).await
        }
    };
    let (status, first) = keyed("run:1:1", json!({})).await;
    assert_eq!(status, 200, "{first}");
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (status, again) = keyed("run:1:1", json!({})).await;
    assert_eq!(status, 200);
    assert_eq!(
        (again["call_id"].clone(), again["result"].clone()),
        (first["call_id"].clone(), first["result"].clone())
    );
    let (status, other) = keyed("run:1:2", json!({})).await;
    assert_eq!(status, 200);
    assert_ne!(other["call_id"], first["call_id"]);
    let (status, _) = keyed("run:1:3", json!({"zone": 5})).await;
    assert_eq!(status, 422);
    let (status, _) = keyed("run:1:3", json!({"zone": 5})).await;
    assert_eq!(status, 422, "a refused call is not remembered");
    let (_, log) = app
        .get_as("/api/toolcore/calls?tool=time.now", Some("root"))
        .await;
    let bob = format!("user:{}", app.user_id("bob").await);
    let by_bob = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["caller"] == bob.as_str())
        .count();
    assert_eq!(by_bob, 4, "two ran, two were refused: {log}");

    let (status, _) = app
        .send(
            "POST",
            &format!("{TOOLS}/no.such/call"),
            "bob",
            Some(json!({"arguments": {}})),
        )
        .await;
    assert_eq!(status, 404);

    // Every call is logged (city admins read the log) and metered.
    let (status, log) = app
        .get_as("/api/toolcore/calls?tool=microdao.members", Some("root"))
        .await;
    assert_eq!(status, 200, "{log}");
    let outcomes: Vec<&str> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes.iter().filter(|o| **o == "ok").count(), 3, "{log}");
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| **o == "invalid_arguments")
            .count(),
        4,
        "{log}"
    );
    assert_eq!(app.get_as("/api/toolcore/calls", Some("bob")).await.0, 403);
    let helpers = "/api/usage/subjects/agent:helper/summary";
    assert_eq!(
        app.get_as(helpers, Some("bob")).await.0,
        403,
        "only its owner (and admins)"
    );
    daarion_testkit::eventually("tool calls metered", Duration::from_secs(10), || async {
        let (_, usage) = app
            .get_as(
                "/api/usage/subjects/agent:helper/summary?kind=tool&granularity=total",
                Some("alice"),
            )
            .await;
        (usage["items"][0]["events"].as_u64() >= Some(10)).then_some(())
    })
    .await;
    app.stop().await;
}

/// A webhook tool's far end: checks each request's signature with the
/// secret it is given, counts calls, and answers per path.
#[derive(Clone, Default)]
struct FakeWebhook {
    secret: Arc<Mutex<String>>,
    calls: Arc<AtomicUsize>,
}

impl FakeWebhook {
    async fn start(&self) -> String {
        let me = self.clone();
        let hook = move |headers: HeaderMap, body: Bytes| {
            let me = me.clone();
            async move {
                me.calls.fetch_add(1, Ordering::SeqCst);
                let timestamp: i64 = headers["x-daarion-timestamp"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                let expected = daarion_toolcore::webhook::signature(
                    &me.secret.lock().unwrap(),
                    timestamp,
                    &body,
                );
                let verified = headers["x-daarion-signature"] == expected.as_str();
                let request: Value = serde_json::from_slice(&body).unwrap();
                Json(
                    json!({"verified": verified, "echo": request["arguments"], "caller": request["caller"]}),
                )
            }
        };
        let slow = || async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            Json(json!({}))
        };
        let broken = || async { (StatusCode::INTERNAL_SERVER_ERROR, "down") };
        let app = Router::new()
            .route("/hook", post(hook))
            .route("/slow", post(slow))
            .route("/broken", post(broken));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    }
}

async fn webhook_tools_are_signed_timed_out_and_governed(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let fake = FakeWebhook::default();
    let base = fake.start().await;
    let key = helper_in_guild(&app).await;
    let schema = json!({
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 40}},
        "required": ["city"],
        "additionalProperties": false
    });
    let weather = json!({"name": "weather.lookup", "description": "The weather in a city.",
        "parameters": schema, "url": format!("{base}/hook"), "timeout_ms": 2000});
    let (status, _) = app.send("POST", TOOLS, "bob", Some(weather.clone())).await;
    assert_eq!(status, 403, "only city admins register tools");
    let (status, registered) = app.send("POST", TOOLS, "root", Some(weather.clone())).await;
    assert_eq!(status, 201, "{registered}");
    *fake.secret.lock().unwrap() = registered["secret"].as_str().unwrap().to_owned();
    let (status, _) = app.send("POST", TOOLS, "root", Some(weather)).await;
    assert_eq!(status, 409);
    let (_, shown) = app
        .get_as(&format!("{TOOLS}/weather.lookup"), Some("bob"))
        .await;
    assert!(
        shown.get("secret").is_none(),
        "the secret is shown once: {shown}"
    );

    // The agent gets the tool among its own, then calls it: a signed request.
    app.give_tools("alice", "helper", &["microdao.members", "weather.lookup"])
        .await;
    let ask = json!({"arguments": {"city": "Kyiv"}});
    let (status, answer) = call(&app, &key, "weather.lookup", ask.clone()).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["verified"], true, "{answer}");
    assert_eq!(answer["result"]["echo"], json!({"city": "Kyiv"}));
    assert_eq!(answer["result"]["caller"], "agent:helper");
    let (status, _) = call(
        &app,
        &key,
        "weather.lookup",
        json!({"arguments": {"town": "Lviv"}}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        fake.calls.load(Ordering::SeqCst),
        1,
        "refused arguments never reach the tool"
    );

    // Governed: disabled, or limited to other agents, it runs for nobody else.
    let path = format!("{TOOLS}/weather.lookup");
    for (change, expected) in [
        (json!({"enabled": false}), 403),
        (
            json!({"enabled": true, "allowed_agents": ["someone-else"]}),
            403,
        ),
        (json!({"allowed_agents": ["helper"]}), 200),
    ] {
        let (status, body) = app.send("PATCH", &path, "root", Some(change.clone())).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            call(&app, &key, "weather.lookup", ask.clone()).await.0,
            expected,
            "{change}"
        );
    }
    assert_eq!(
        app.send("PATCH", &path, "bob", Some(json!({"enabled": false})))
            .await
            .0,
        403
    );

    // Slow and broken ends: a timeout and a failure, both logged.
    for (name, url, expected) in [("slow.tool", "slow", 504), ("broken.tool", "broken", 502)] {
        let (status, body) = app
            .send(
                "POST",
                TOOLS,
                "root",
                Some(json!({"name": name, "parameters": {"type": "object"}, "url": format!("{base}/{url}"), "timeout_ms": 300})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        let (status, body) = app
            .send(
                "POST",
                &format!("{TOOLS}/{name}/call"),
                "bob",
                Some(json!({"arguments": {}})),
            )
            .await;
        assert_eq!(status, expected, "{name}: {body}");
        assert!(
            !body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("127.0.0.1"),
            "{body}"
        );
    }
    let (_, log) = app
        .get_as("/api/toolcore/calls?tool=slow.tool", Some("root"))
        .await;
    assert_eq!(log["items"][0]["outcome"], "timeout", "{log}");

    // Bad registrations, built-ins kept, and removal.
    for bad in [
        json!({"name": "xy", "parameters": {"type": "object"}, "url": format!("{base}/hook")}),
        json!({"name": "bad.schema", "parameters": {"type": "string"}, "url": format!("{base}/hook")}),
        json!({"name": "bad.url", "parameters": {"type": "object"}, "url": "ftp://example.org"}),
        json!({"name": "bad.timeout", "parameters": {"type": "object"}, "url": format!("{base}/hook"), "timeout_ms": 1}),
    ] {
        let (status, body) = app.send("POST", TOOLS, "root", Some(bad.clone())).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    let builtin = json!({"name": "time.now", "parameters": {"type": "object"}, "url": format!("{base}/hook")});
    assert_eq!(app.send("POST", TOOLS, "root", Some(builtin)).await.0, 409);
    assert_eq!(
        app.send("DELETE", &format!("{TOOLS}/time.now"), "root", None)
            .await
            .0,
        409
    );
    assert_eq!(app.send("DELETE", &path, "root", None).await.0, 204);
    assert_eq!(call(&app, &key, "weather.lookup", ask).await.0, 404);
    app.stop().await;
}

async fn an_agent_posts_with_its_tool_where_it_and_its_person_may(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let key = helper_in_guild(&app).await;
    app.give_tools("alice", "helper", &["messaging.post"]).await;
    let (_, rooms) = app
        .get_as("/api/messaging/daos/guild/rooms", Some("alice"))
        .await;
    let general = rooms["items"][0]["id"].as_str().unwrap().to_owned();
    let bob = format!("user:{}", app.user_id("bob").await);
    let post = |room: String, acting_for: String| {
        json!({"arguments": {"room": room, "body": "Welcome, **everyone**", "topic": "hello"},
            "acting_for": acting_for})
    };

    // For Bob, a member, the agent posts in the guild's room as itself.
    let (status, posted) = call(
        &app,
        &key,
        "messaging.post",
        post(general.clone(), bob.clone()),
    )
    .await;
    assert_eq!(status, 200, "{posted}");
    let (_, history) = app
        .get_as(
            &format!("/api/messaging/rooms/{general}/messages"),
            Some("bob"),
        )
        .await;
    let message = &history["items"][0];
    assert_eq!(message["id"], posted["result"]["message_id"]);
    assert_eq!(
        (message["author"].clone(), message["topic"].clone()),
        (json!("agent:helper"), json!("hello"))
    );
    assert!(
        message["html"]
            .as_str()
            .unwrap()
            .contains("<strong>everyone</strong>")
    );

    // Not for someone who cannot read the room (Carol is not in the guild),
    // nor in a room the agent cannot read.
    let carol = format!("user:{}", app.user_id("carol").await);
    let (status, _) = call(
        &app,
        &key,
        "messaging.post",
        post(general.clone(), carol.clone()),
    )
    .await;
    assert_eq!(
        status, 404,
        "Carol cannot lend the agent a room she does not read"
    );
    let vault = common::community(&app, "carol", "vault", "private").await;
    let (status, _) = call(&app, &key, "messaging.post", post(vault, carol)).await;
    assert_eq!(status, 404, "nor can the agent post where it is not");
    let (status, body) = call(&app, &key, "messaging.post", post("rm_nope".into(), bob)).await;
    assert_eq!((status, error_code(&body)), (404, "not_found"));
    app.stop().await;
}

async fn an_agent_founds_a_community_it_orchestrates_for_its_person(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let key = helper_in_guild(&app).await;
    app.give_tools("alice", "helper", &["microdao.found"]).await;
    let bob = format!("user:{}", app.user_id("bob").await);
    let found = |slug: &str, acting_for: Option<&str>| {
        json!({"arguments": {"slug": slug, "name": "Lighthouse", "public": false},
            "acting_for": acting_for})
    };

    // A community needs a person to own it.
    let (status, body) = call(&app, &key, "microdao.found", found("lighthouse", None)).await;
    assert_eq!((status, error_code(&body)), (403, "forbidden"), "{body}");

    // For Bob: he owns it, the agent orchestrates it.
    let (status, founded) = call(
        &app,
        &key,
        "microdao.found",
        found("lighthouse", Some(&bob)),
    )
    .await;
    assert_eq!(status, 200, "{founded}");
    assert_eq!(
        founded["result"],
        json!({"dao": "lighthouse", "name": "Lighthouse", "owner": "bob",
            "orchestrator": "helper", "visibility": "private"})
    );
    // Bob's roles are refreshed by the founding's event, on every replica.
    let dao = daarion_testkit::eventually("Bob owns it", Duration::from_secs(10), || async {
        let (status, dao) = app
            .get_as("/api/microdao/daos/lighthouse", Some("bob"))
            .await;
        (status == 200).then_some(dao)
    })
    .await;
    assert_eq!(
        (dao["my_role"].clone(), dao["orchestrator"].clone()),
        (json!("owner"), json!("helper")),
        "{dao}"
    );
    let (status, _) = app
        .get_as("/api/microdao/daos/lighthouse", Some("carol"))
        .await;
    assert_eq!(status, 403, "private: by invitation");
    let (_, members) = app
        .get_as("/api/microdao/daos/lighthouse/members", Some("bob"))
        .await;
    let mut who: Vec<&str> = members["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["principal"].as_str().unwrap())
        .collect();
    who.sort_unstable();
    assert_eq!(who, ["agent:helper", bob.as_str()]);
    let rooms = common::orchestrated_rooms(&app, "lighthouse", "bob").await;
    let general = rooms.iter().find(|r| r["slug"] == "general").unwrap();
    assert_eq!(general["responder"], "helper", "{general}");

    // Taken, or not an address: refused, nothing written.
    let (status, body) = call(
        &app,
        &key,
        "microdao.found",
        found("lighthouse", Some(&bob)),
    )
    .await;
    assert_eq!((status, error_code(&body)), (409, "conflict"), "{body}");
    let (status, body) = call(
        &app,
        &key,
        "microdao.found",
        found("Light House", Some(&bob)),
    )
    .await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "validation_failed"),
        "{body}"
    );
    app.stop().await;
}

/// A local web page (loopback: private, as far as `http.fetch` knows).
async fn page_server() -> std::net::SocketAddr {
    let router = Router::new()
        .route(
            "/page",
            axum::routing::get(|| async { "<p>Kyiv makers meet on Fridays</p>" }),
        )
        .route("/big", axum::routing::get(|| async { "x".repeat(5000) }))
        .route(
            "/moved",
            axum::routing::get(|| async {
                (
                    StatusCode::FOUND,
                    [("location", "http://169.254.169.254/")],
                    "",
                )
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

async fn http_fetch_reads_only_allow_listed_hosts_at_public_addresses(kind: Kind) {
    let server = page_server().await;
    for allow_private in [false, true] {
        let Some(mut city) = City::new(kind).await else {
            return;
        };
        city.settings.services.set(
            &daarion_toolcore::SPEC,
            json!({"fetch_allow_hosts": ["localhost"], "fetch_allow_private": allow_private,
                "fetch_max_bytes": 1000}),
        );
        let app = city.spawn().await;
        let key = helper_in_guild(&app).await;
        app.give_tools("alice", "helper", &["http.fetch"]).await;
        let fetch = |url: String| json!({"arguments": {"url": url}});
        let port = server.port();
        // Not on the allow-list: refused, whatever the address.
        let (status, body) = call(
            &app,
            &key,
            "http.fetch",
            fetch(format!("http://127.0.0.1:{port}/page")),
        )
        .await;
        assert_eq!((status, error_code(&body)), (403, "forbidden"), "{body}");
        let (status, body) =
            call(&app, &key, "http.fetch", fetch("file:///etc/passwd".into())).await;
        assert_eq!(status, 422, "{body}");
        let (status, page) = call(
            &app,
            &key,
            "http.fetch",
            fetch(format!("http://localhost:{port}/page")),
        )
        .await;
        if !allow_private {
            // Allowed by name, but it resolves to a private address.
            assert_eq!((status, error_code(&page)), (403, "forbidden"), "{page}");
            assert!(
                page["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("private")
            );
            app.stop().await;
            continue;
        }
        // A city on a closed network lets agents read its own hosts.
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["result"]["status"], 200);
        assert!(page["result"]["body"].as_str().unwrap().contains("Fridays"));
        let (_, big) = call(
            &app,
            &key,
            "http.fetch",
            fetch(format!("http://localhost:{port}/big")),
        )
        .await;
        assert_eq!(big["result"]["body"].as_str().unwrap().len(), 1000);
        assert_eq!(big["result"]["truncated"], true);
        // Redirects are not followed (they could lead anywhere).
        let (_, moved) = call(
            &app,
            &key,
            "http.fetch",
            fetch(format!("http://localhost:{port}/moved")),
        )
        .await;
        assert_eq!(moved["result"]["status"], 302, "{moved}");
        app.stop().await;
    }
}

async fn tools_of_an_mcp_server_are_registered_and_called(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let key = helper_in_guild(&app).await;
    let server = daarion_testkit::mcp::FakeMcp::start(Some("mcp-token-1")).await;
    let url = server.url();

    // City admins see what a server offers (its token needed).
    let listing = |token: &str| json!({"url": url, "token": token});
    let (status, offered) = app
        .send(
            "POST",
            "/api/toolcore/mcp/tools",
            "root",
            Some(listing("mcp-token-1")),
        )
        .await;
    assert_eq!(status, 200, "{offered}");
    let mut names: Vec<&str> = offered["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["add", "broken", "shout"]);
    let (status, refused) = app
        .send(
            "POST",
            "/api/toolcore/mcp/tools",
            "root",
            Some(listing("wrong")),
        )
        .await;
    assert_eq!(status, 502, "{refused}");
    assert!(
        !refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1"),
        "the address stays in the logs: {refused}"
    );
    let (status, _) = app
        .send(
            "POST",
            "/api/toolcore/mcp/tools",
            "bob",
            Some(listing("mcp-token-1")),
        )
        .await;
    assert_eq!(status, 403);

    // Registered under the city's names: schema and description from the server.
    let register = |name: &str, extra: Value| {
        let mut body = json!({"name": name, "kind": "mcp", "url": url, "token": "mcp-token-1"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let (status, added) = app
        .send("POST", TOOLS, "root", Some(register("calc.add", json!({}))))
        .await;
    assert_eq!(status, 201, "{added}");
    assert_eq!(
        (
            added["executor"].clone(),
            added["remote_name"].clone(),
            added["secret"].clone()
        ),
        (json!("mcp"), json!("add"), Value::Null),
        "{added}"
    );
    assert_eq!(added["description"], "Adds two integers");
    assert!(
        added["parameters"]["properties"]["a"].is_object(),
        "{added}"
    );
    for (name, extra) in [
        (
            "loud.speaker",
            json!({"remote_name": "shout", "description": "Louder"}),
        ),
        ("fire.broken", json!({})),
    ] {
        let (status, body) = app
            .send("POST", TOOLS, "root", Some(register(name, extra)))
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, body) = app
        .send(
            "POST",
            TOOLS,
            "root",
            Some(register("calc.nothing", json!({}))),
        )
        .await;
    assert_eq!(status, 502, "a tool the server does not offer: {body}");
    let (status, body) = app
        .send(
            "POST",
            TOOLS,
            "root",
            Some(json!({"name": "calc.hook", "url": url, "token": "x",
                "parameters": {"type": "object"}})),
        )
        .await;
    assert_eq!(status, 422, "a token is for MCP tools: {body}");
    let (_, shown) = app
        .get_as(&format!("{TOOLS}/loud.speaker"), Some("bob"))
        .await;
    assert_eq!(shown["description"], "Louder");
    assert!(!shown.to_string().contains("mcp-token-1"), "{shown}");

    // The agent calls them: structured answers, text, a tool's error.
    app.give_tools(
        "alice",
        "helper",
        &["calc.add", "loud.speaker", "fire.broken"],
    )
    .await;
    let (status, sum) = call(
        &app,
        &key,
        "calc.add",
        json!({"arguments": {"a": 2, "b": 3}}),
    )
    .await;
    assert_eq!(
        (status, sum["result"].clone()),
        (200, json!({"sum": 5})),
        "{sum}"
    );
    let (status, loud) = call(
        &app,
        &key,
        "loud.speaker",
        json!({"arguments": {"text": "hi"}}),
    )
    .await;
    assert_eq!(
        (status, loud["result"].clone()),
        (200, json!({"text": "HI"})),
        "{loud}"
    );
    let (status, broken) = call(&app, &key, "fire.broken", json!({"arguments": {}})).await;
    assert_eq!(status, 502, "{broken}");
    assert!(
        broken["error"]["message"]
            .as_str()
            .unwrap()
            .contains("the disk is on fire"),
        "{broken}"
    );
    assert_eq!(server.calls(), 3);
    // Arguments that do not fit the server's schema never reach it.
    let (status, _) = call(&app, &key, "calc.add", json!({"arguments": {"a": "two"}})).await;
    assert_eq!(status, 422);
    assert_eq!(server.calls(), 3);

    // A wrong token (changed by an admin) fails the call, not the city.
    let (status, _) = app
        .send(
            "PATCH",
            &format!("{TOOLS}/calc.add"),
            "root",
            Some(json!({"token": "stale"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &app,
        &key,
        "calc.add",
        json!({"arguments": {"a": 1, "b": 1}}),
    )
    .await;
    assert_eq!(status, 502);
    let (_, calls) = app
        .get_as("/api/toolcore/calls?tool=calc.add", Some("root"))
        .await;
    let outcomes: Vec<&str> = calls["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["failed", "invalid_arguments", "ok"]);
    app.stop().await;
}
