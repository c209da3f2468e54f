//! The PDP over HTTP: decisions with their reasons, policy changes validated
//! and propagated to every replica, and the audit log.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{City, Kind, error_code};
use serde_json::{Value, json};

fn with_rule(extra: &str) -> Value {
    let mut files: Vec<Value> = daarion_access::engine::default_policies()
        .into_iter()
        .map(|f| json!({"name": f.name, "text": f.text}))
        .collect();
    files.push(json!({"name": "local", "text": extra}));
    json!({ "files": files })
}

const NO_NEW_ROOMS: &str = "@id(\"no-new-rooms\") forbid (principal in Daarion::Role::\"city:citizen\", action == Daarion::Action::\"write\", resource is Daarion::City) unless { principal in Daarion::Role::\"city:admin\" };";

#[tokio::test]
async fn decisions_say_which_policies_decided() {
    let Some(city) = City::new(Kind::Embedded).await else {
        return;
    };
    let app = city.spawn().await;
    let (status, d) = app
        .send(
            "POST",
            "/api/pdp/decide",
            "alice",
            Some(json!({"action": "read", "resource": {"type": "City", "id": "city"}})),
        )
        .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(
        d,
        json!({"allowed": true, "policies": ["city/citizen-reads-city"]})
    );
    let (_, d) = app
        .send(
            "POST",
            "/api/pdp/decide",
            "alice",
            Some(json!({"action": "manage", "resource": {"type": "City", "id": "city"}})),
        )
        .await;
    assert_eq!(d, json!({"allowed": false, "policies": []}));
    // Attributes and microDAO membership shape the answer.
    let (_, d) = app.send("POST", "/api/pdp/decide", "alice", Some(json!({"action": "send_message",
        "resource": {"type": "Room", "id": "r", "attrs": {"public": false, "blocked": []}, "dao": "d1"}}))).await;
    assert_eq!(d["allowed"], false);
    let (_, d) = app.send("POST", "/api/pdp/decide", "alice", Some(json!({"action": "send_message",
        "resource": {"type": "Room", "id": "r", "attrs": {"public": true, "blocked": [{"type": "User", "id": "nobody"}]}},
        "context": {"rate_limited": true}}))).await;
    assert_eq!(
        d,
        json!({"allowed": false, "policies": ["room/room-rate-limited"]})
    );

    // Batch, in order.
    let (status, batch) = app
        .send(
            "POST",
            "/api/pdp/decide/batch",
            "alice",
            Some(json!({"requests": [
        {"action": "read", "resource": {"type": "City", "id": "city"}},
        {"action": "admin", "resource": {"type": "Policy", "id": "city"}}]})),
        )
        .await;
    assert_eq!(status, 200, "{batch}");
    assert_eq!(batch["decisions"][0]["allowed"], true);
    assert_eq!(batch["decisions"][1]["allowed"], false);

    // Asking about someone else is for admins and services.
    let (_, me) = app.send("GET", "/api/auth/me", "root", None).await;
    let root_id = me["user"]["id"].clone();
    let about_root = json!({"principal": {"kind": "user", "id": root_id}, "action": "admin", "resource": {"type": "Policy", "id": "city"}});
    let (status, body) = app
        .send("POST", "/api/pdp/decide", "alice", Some(about_root.clone()))
        .await;
    assert_eq!((status, error_code(&body)), (403, "forbidden"));
    let (_, me) = app.send("GET", "/api/auth/me", "alice", None).await;
    let about_alice = json!({"principal": {"kind": "user", "id": me["user"]["id"]}, "action": "admin", "resource": {"type": "Policy", "id": "city"}});
    let (status, d) = app
        .send("POST", "/api/pdp/decide", "root", Some(about_alice))
        .await;
    assert_eq!((status, d["allowed"].as_bool()), (200, Some(false)));

    // Bad input.
    for bad in [
        json!({"action": "fly", "resource": {"type": "City", "id": "city"}}),
        json!({"action": "read", "resource": {"type": "Castle", "id": "x"}}),
        json!({"action": "read", "resource": {"type": "Room", "id": "x", "attrs": {"public": 3}}}),
    ] {
        let (status, body) = app
            .send("POST", "/api/pdp/decide", "alice", Some(bad.clone()))
            .await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    let (status, _) = app
        .send(
            "POST",
            "/api/pdp/decide/batch",
            "alice",
            Some(json!({"requests": []})),
        )
        .await;
    assert_eq!(status, 422);
    app.stop().await;
}

#[tokio::test]
async fn invalid_policies_are_refused_and_change_nothing() {
    let Some(city) = City::new(Kind::Embedded).await else {
        return;
    };
    let app = city.spawn().await;
    let broken = json!({"files": [{"name": "x", "text": "@id(\"p\") permit(principal, action == Daarion::Action::\"fly\", resource);"}]});
    let (status, body) = app
        .send("PUT", "/api/pdp/policies", "root", Some(broken))
        .await;
    assert_eq!((status, error_code(&body)), (422, "validation_failed"));
    assert!(
        body["error"]["message"].as_str().unwrap().contains("fly"),
        "{body}"
    );
    let (status, body) = app
        .send(
            "PUT",
            "/api/pdp/policies",
            "root",
            Some(json!({"files": [{"name": "x", "text": "permit("}]})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (_, current) = app.send("GET", "/api/pdp/policies", "root", None).await;
    assert_eq!(current["version"], 0);
    // Only admins change policies, and the refusal is audited.
    let (status, _) = app
        .send(
            "PUT",
            "/api/pdp/policies",
            "alice",
            Some(with_rule(NO_NEW_ROOMS)),
        )
        .await;
    assert_eq!(status, 403);
    let denied = wait_for_audit(&app, |e| {
        e["record"]["action"] == "admin" && e["record"]["allowed"] == false
    })
    .await;
    assert_eq!(denied["subject"], "audit.action");
    app.stop().await;
}

/// A set with no policy letting admins change policies would lock everyone
/// out for good; it is refused like an invalid one.
#[tokio::test]
async fn a_policy_set_that_locks_admins_out_is_refused() {
    let Some(city) = City::new(Kind::Embedded).await else {
        return;
    };
    let app = city.spawn().await;
    let empty = json!({"files": [{"name": "nothing", "text": ""}]});
    for path in ["/api/pdp/policies", "/api/control/policies"] {
        let (status, body) = app.send("PUT", path, "root", Some(empty.clone())).await;
        assert_eq!(
            (status, error_code(&body)),
            (422, "validation_failed"),
            "{path}"
        );
        assert!(
            body["error"]["message"].as_str().unwrap().contains("lock"),
            "{body}"
        );
    }
    let (status, rooms) = app.send("GET", "/api/city/rooms", "alice", None).await;
    assert_eq!(status, 200, "{rooms}");
    app.stop().await;
}

async fn wait_for_audit(app: &common::TestApp, matches: impl Fn(&Value) -> bool) -> Value {
    daarion_testkit::eventually(
        "a matching audit entry",
        Duration::from_secs(10),
        || async {
            let (status, page) = app
                .send("GET", "/api/pdp/audit?limit=100", "root", None)
                .await;
            assert_eq!(status, 200, "{page}");
            page["items"]
                .as_array()?
                .iter()
                .find(|e| matches(e))
                .cloned()
        },
    )
    .await
}

#[tokio::test]
async fn state_changing_decisions_and_failed_sign_ins_are_audited() {
    let Some(city) = City::new(Kind::Embedded).await else {
        return;
    };
    let app = city.spawn().await;
    let (status, _) = app
        .send(
            "POST",
            "/api/city/rooms",
            "alice",
            Some(json!({"slug": "audited", "title": "A"})),
        )
        .await;
    assert_eq!(status, 201);
    let entry = wait_for_audit(&app, |e| {
        e["record"]["resource"]["type"] == "City" && e["record"]["action"] == "write"
    })
    .await;
    assert_eq!(entry["record"]["handle"], "alice");
    assert_eq!(entry["record"]["allowed"], true);
    assert_eq!(
        entry["record"]["policies"],
        json!(["city/citizen-reads-city"])
    );
    assert!(entry["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    let bad = app.client.post(app.url("/api/auth/login/finish")).json(&json!({"ceremony_id": "forged", "credential": {
        "id": "AA", "rawId": "AA", "type": "public-key", "extensions": {},
        "response": {"authenticatorData": "AA", "clientDataJSON": "AA", "signature": "AA", "userHandle": null}}})).send().await.unwrap();
    assert_eq!(bad.status(), 401);
    wait_for_audit(&app, |e| {
        e["subject"] == "audit.error" && e["record"]["what"] == "sign-in failed"
    })
    .await;
    // Reads are not audited (they change nothing).
    let (_, page) = app
        .send("GET", "/api/pdp/audit?limit=100", "root", None)
        .await;
    assert!(
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["record"]["action"] != "read")
    );
    app.stop().await;
}

/// A policy change made on one replica governs the other within a second.
#[tokio::test]
async fn policy_changes_reach_every_replica_within_a_second() {
    let Some(city) = City::new(Kind::Distributed).await else {
        return;
    };
    let a = city.spawn().await;
    let b = city.spawn().await;
    let (status, _) = b
        .send(
            "POST",
            "/api/city/rooms",
            "alice",
            Some(json!({"slug": "before", "title": "B"})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, body) = a
        .send(
            "PUT",
            "/api/pdp/policies",
            "root",
            Some(with_rule(NO_NEW_ROOMS)),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["version"], 1);
    let changed = Instant::now();
    loop {
        let (status, _) = b
            .send(
                "POST",
                "/api/city/rooms",
                "alice",
                Some(json!({"slug": format!("r{}", changed.elapsed().as_millis()), "title": "x"})),
            )
            .await;
        if status == 403 {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "replica b still allows after {:?}",
            changed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, current) = b.send("GET", "/api/pdp/policies", "root", None).await;
    assert_eq!(current["version"], 1);
    a.stop().await;
    b.stop().await;
}

/// Guessing API keys cannot write without bound (#13): per client and
/// minute the audit log gets the first refusal, then the 10th, 100th...
/// each with its count.
#[tokio::test]
async fn a_flood_of_refused_keys_writes_a_few_audit_rows() {
    let Some(city) = City::new(Kind::Embedded).await else {
        return;
    };
    let app = city.spawn().await;
    for _ in 0..30 {
        let response = app
            .client
            .get(app.url("/api/city/rooms"))
            .header("authorization", "Bearer dk_guessed")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    wait_for_audit(&app, |e| e["record"]["count"] == 10).await;
    // Every refusal reaches the audit queue before the next request is
    // answered; give the consumer a moment for anything past the 10th.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let (_, page) = app
        .send("GET", "/api/pdp/audit?limit=100", "root", None)
        .await;
    let counts: Vec<&Value> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["record"]["what"] == "credential refused")
        .map(|e| &e["record"]["count"])
        .collect();
    assert_eq!(counts, [&json!(10), &json!(1)], "{page}");
    app.stop().await;
}

#[tokio::test]
async fn earlier_policy_versions_can_be_read_and_restored() {
    let Some(city) = City::new(Kind::Embedded).await else {
        return;
    };
    let app = city.spawn().await;
    let (status, _) = app
        .send(
            "PUT",
            "/api/pdp/policies",
            "root",
            Some(with_rule(NO_NEW_ROOMS)),
        )
        .await;
    assert_eq!(status, 200);
    // Restoring version 0 (the shipped set) stores it as version 2.
    let (status, shipped) = app
        .send("GET", "/api/pdp/policies/versions/0", "root", None)
        .await;
    assert_eq!(status, 200);
    let (status, restored) = app
        .send(
            "PUT",
            "/api/pdp/policies",
            "root",
            Some(json!({"files": shipped["files"]})),
        )
        .await;
    assert_eq!((status, &restored["version"]), (200, &json!(2)));

    let root = app.user_id("root").await;
    let (_, page) = app
        .send("GET", "/api/pdp/policies/versions?limit=1", "root", None)
        .await;
    assert_eq!(page["items"][0]["version"], 2);
    assert_eq!(page["items"][0]["author"], format!("user:{root}"));
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (_, older) = app
        .send(
            "GET",
            &format!("/api/pdp/policies/versions?limit=1&cursor={cursor}"),
            "root",
            None,
        )
        .await;
    assert_eq!(older["items"][0]["version"], 1);
    assert!(older["next_cursor"].is_null(), "{older}");

    let (_, first) = app
        .send("GET", "/api/pdp/policies/versions/1", "root", None)
        .await;
    assert!(first.to_string().contains("no-new-rooms"), "{first}");
    let (status, _) = app
        .send("GET", "/api/pdp/policies/versions/9", "root", None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .send("GET", "/api/pdp/policies/versions", "alice", None)
        .await;
    assert_eq!(status, 403, "the policy history is the city admins'");
    app.stop().await;
}
