//! Space end to end: the node registry (credentials, heartbeats, going
//! offline) and the directory of planets built from what happens in the
//! communities, on the embedded backends and on PostgreSQL + NATS + Redis.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{City, Kind, TestApp, error_code};
use serde_json::{Value, json};

on_every_backend!(
    admins_register_nodes_that_report_and_go_offline,
    planets_show_what_happens_in_public_communities,
);

async fn beat(app: &TestApp, node: &str, token: &str, body: Value) -> (u16, Value) {
    let response = app
        .client
        .post(app.url(&format!("/api/space/nodes/{node}/heartbeat")))
        .header("x-node-token", token)
        .json(&body)
        .send()
        .await
        .unwrap();
    common::decode(response).await
}

fn fast(city: &mut City) {
    city.settings
        .services
        .update(&daarion_space::SPEC, |x: &mut daarion_space::Settings| {
            x.heartbeat_secs = 1;
            x.node_offline_secs = 3;
        })
        .unwrap();
}

async fn admins_register_nodes_that_report_and_go_offline(kind: Kind) {
    let Some(mut city) = City::new(kind).await else {
        return;
    };
    fast(&mut city);
    let app = city.spawn().await;
    let node = json!({ "id": "edge-1", "name": "Edge one", "role": "worker", "kind": "worker", "dao": "makers" });
    let (status, body) = app
        .send("POST", "/api/space/nodes", "alice", Some(node.clone()))
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (403, "forbidden"),
        "citizens do not register nodes"
    );
    let anonymous = app
        .client
        .get(app.url("/api/space/nodes"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    let (status, created) = app
        .send("POST", "/api/space/nodes", "root", Some(node.clone()))
        .await;
    assert_eq!(status, 201, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("dn_"));
    assert_eq!(created["node"]["status"], "registered");
    let (status, _) = app
        .send("POST", "/api/space/nodes", "root", Some(node.clone()))
        .await;
    assert_eq!(status, 409, "a retry never makes a second node");
    for bad in [
        json!({ "id": "Edge!", "name": "x", "role": "worker", "kind": "worker" }),
        json!({ "id": "edge-2", "name": " ", "role": "worker", "kind": "worker" }),
        json!({ "id": "edge-2", "name": "x", "role": "mainframe", "kind": "worker" }),
        json!({ "id": "edge-2", "name": "x", "role": "worker", "kind": "worker", "extra": 1 }),
    ] {
        let (status, body) = app
            .send("POST", "/api/space/nodes", "root", Some(bad.clone()))
            .await;
        assert_eq!(status, 422, "{bad} → {body}");
    }

    // Heartbeats need the node's own token, and sane figures.
    let good = json!({ "version": "1.2.3", "hostname": "edge-1.local",
        "metrics": { "cpu_percent": 12.5, "memory_percent": 40.0, "latency_ms": 8.0, "agents": 3 } });
    for (node, token, body, expected) in [
        ("edge-1", "", good.clone(), 401),
        ("edge-1", "dn_wrong", good.clone(), 401),
        ("edge-2", token.as_str(), good.clone(), 401),
        (
            "edge-1",
            token.as_str(),
            json!({ "metrics": { "cpu_percent": 150 } }),
            422,
        ),
        (
            "edge-1",
            token.as_str(),
            json!({ "status": "offline" }),
            422,
        ),
    ] {
        let (status, body) = beat(&app, node, token, body).await;
        assert_eq!(status, expected, "{node} {token}: {body}");
    }
    let (status, ack) = beat(&app, "edge-1", &token, good.clone()).await;
    assert_eq!(
        (status, ack["status"].clone()),
        (200, json!("online")),
        "{ack}"
    );
    assert_eq!(ack["heartbeat_secs"], 1);
    let (status, profile) = app.get_as("/api/space/nodes/edge-1", Some("root")).await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["node"]["status"], "online");
    assert_eq!(profile["node"]["metrics"]["agents"], 3);
    assert_eq!(profile["node"]["hostname"], "edge-1.local");
    assert_eq!(profile["heartbeats"].as_array().unwrap().len(), 1);
    for (query, expected) in [
        ("?status=online", 1),
        ("?role=backup", 0),
        ("?dao=makers", 1),
        ("", 1),
    ] {
        let (status, page) = app
            .get_as(&format!("/api/space/nodes{query}"), Some("root"))
            .await;
        assert_eq!(status, 200);
        assert_eq!(page["items"].as_array().unwrap().len(), expected, "{query}");
    }

    // A new token replaces the old one at once.
    let (status, rotated) = app
        .send("POST", "/api/space/nodes/edge-1/token", "root", None)
        .await;
    assert_eq!(status, 200);
    let fresh = rotated["token"].as_str().unwrap().to_owned();
    assert_eq!(beat(&app, "edge-1", &token, good.clone()).await.0, 401);
    assert_eq!(beat(&app, "edge-1", &fresh, good.clone()).await.0, 200);

    // Silent past the limit: offline.
    let offline =
        daarion_testkit::eventually("the node goes offline", Duration::from_secs(10), || async {
            let (_, page) = app
                .get_as("/api/space/nodes?status=offline", Some("root"))
                .await;
            (page["items"].as_array().unwrap().len() == 1).then_some(page)
        })
        .await;
    assert_eq!(offline["items"][0]["id"], "edge-1");
    let (_, ack) = beat(&app, "edge-1", &fresh, good.clone()).await;
    assert_eq!(ack["status"], "online", "a heartbeat brings it back");

    for expected in [204, 404] {
        let (status, _) = app
            .send("DELETE", "/api/space/nodes/edge-1", "root", None)
            .await;
        assert_eq!(status, expected);
    }
    assert_eq!(
        beat(&app, "edge-1", &fresh, good).await.0,
        401,
        "a removed node's token is dead"
    );
    app.stop().await;
}

async fn planet(app: &TestApp, slug: &str, ready: impl Fn(&Value) -> bool) -> Value {
    daarion_testkit::eventually(
        &format!("planet {slug}"),
        Duration::from_secs(15),
        || async {
            let (status, planet) = app
                .get_as(&format!("/api/space/planets/{slug}"), None)
                .await;
            (status == 200 && ready(&planet)).then_some(planet)
        },
    )
    .await
}

async fn planets_show_what_happens_in_public_communities(kind: Kind) {
    let Some(mut city) = City::new(kind).await else {
        return;
    };
    fast(&mut city);
    let app = city.spawn().await;
    let room = common::community(&app, "bob", "makers", "public").await;
    common::community(&app, "bob", "council", "private").await;
    let (status, _) = app
        .send("POST", "/api/microdao/daos/makers/join", "alice", None)
        .await;
    assert_eq!(status, 200);
    let (status, body) = app
        .send(
            "POST",
            "/api/microdao/daos/makers/treasury/mint",
            "bob",
            Some(json!({ "to": "dao:makers", "amount": 100 })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    for body in ["first", "second"] {
        let (status, _) = app
            .post(
                &format!("/api/messaging/rooms/{room}/messages"),
                Some("alice"),
                json!({ "body": body }),
            )
            .await;
        assert_eq!(status, 201);
    }
    let (status, created) = app
        .send(
            "POST",
            "/api/space/nodes",
            "root",
            Some(json!({ "id": "makers-box", "name": "Makers' box", "role": "production", "kind": "gateway", "dao": "makers" })),
        )
        .await;
    assert_eq!(status, 201);
    let token = created["token"].as_str().unwrap();
    assert_eq!(
        beat(
            &app,
            "makers-box",
            token,
            json!({ "metrics": { "latency_ms": 4.5 } })
        )
        .await
        .0,
        200
    );

    let makers = planet(&app, "makers", |p| {
        p["members"] == 2 && p["messages_today"] == 2
    })
    .await;
    assert_eq!(makers["name"], "makers");
    assert_eq!(makers["treasury_supply"], 100);
    assert_eq!(makers["messages_7d"], 2);
    assert_eq!(makers["activity"].as_array().unwrap().len(), 15);
    assert!(
        makers["anomaly"]["score"].is_null(),
        "a day-old planet has no baseline yet"
    );
    assert!(
        makers["anomaly"]["explanation"]
            .as_str()
            .unwrap()
            .contains("not enough history")
    );
    assert_eq!(makers["satellites"][0]["id"], "makers-box");
    assert_eq!(makers["satellites"][0]["status"], "online");
    assert_eq!(makers["satellites"][0]["metrics"]["latency_ms"], 4.5);

    let (status, _) = app.get_as("/api/space/planets/council", None).await;
    assert_eq!(status, 404, "a private community is not in the directory");
    for (query, expected) in [
        ("", vec!["makers"]),
        ("?q=MAK", vec!["makers"]),
        ("?q=zzz", vec![]),
        ("?q=%25", vec![]),
    ] {
        let (status, page) = app
            .get_as(&format!("/api/space/planets{query}"), None)
            .await;
        assert_eq!(status, 200, "{query}: {page}");
        let slugs: Vec<&str> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["slug"].as_str().unwrap())
            .collect();
        assert_eq!(slugs, expected, "{query}");
    }
    let long = "q".repeat(101);
    let (status, _) = app
        .get_as(&format!("/api/space/planets?q={long}"), None)
        .await;
    assert_eq!(status, 422);

    let (status, _) = app
        .send("POST", "/api/microdao/daos/makers/leave", "alice", None)
        .await;
    assert_eq!(status, 200);
    planet(&app, "makers", |p| p["members"] == 1).await;
    app.stop().await;

    city.settings
        .services
        .update(&daarion_space::SPEC, |x: &mut daarion_space::Settings| {
            x.public_directory = false
        })
        .unwrap();
    let closed = city.spawn().await;
    let (status, _) = closed.get_as("/api/space/planets", None).await;
    assert_eq!(status, 401);
    let (status, _) = closed.get_as("/api/space/planets", Some("alice")).await;
    assert_eq!(status, 200);
    closed.stop().await;
}
