//! The control plane: versioned prompts with rollback, agent entitlements,
//! typed config, quotas, policy changes; who may do each; and cached copies
//! on other replicas refreshing within a second.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{City, Kind, error_code};
use serde_json::{Value, json};

async fn as_user(app: &common::TestApp, name: &str) -> (&'static str, String) {
    ("cookie", app.cookie(name).await)
}

#[tokio::test]
async fn prompts_are_versioned_rolled_back_and_owned() {
    let Some(city) = City::new(Kind::Embedded).await else {
        return;
    };
    let app = city.spawn().await;
    let alice = as_user(&app, "alice").await;
    // Alice's agent identity exists once she made it a key.
    let agent_key = app.api_key_for_agent("alice", "helper").await;
    for text in ["You help.", "You help, briefly."] {
        let (status, doc) = app
            .send_with(
                "POST",
                "/api/control/prompts/helper",
                alice.clone(),
                Some(json!({"text": text})),
            )
            .await;
        assert_eq!(status, 201, "{doc}");
    }
    let (_, current) = app
        .send_with("GET", "/api/control/prompts/helper", alice.clone(), None)
        .await;
    assert_eq!(
        (
            current["version"].as_u64(),
            current["value"]["text"].as_str()
        ),
        (Some(2), Some("You help, briefly."))
    );
    assert!(current["author"].as_str().unwrap().starts_with("user:"));
    let (status, draft) = app
        .send_with(
            "POST",
            "/api/control/prompts/helper",
            alice.clone(),
            Some(json!({"text": "Draft", "activate": false})),
        )
        .await;
    assert_eq!((status, draft["version"].as_u64()), (201, Some(3)));
    let (_, current) = app
        .send_with("GET", "/api/control/prompts/helper", alice.clone(), None)
        .await;
    assert_eq!(current["version"], 2, "a draft is not current");

    let (_, versions) = app
        .send_with(
            "GET",
            "/api/control/prompts/helper/versions?limit=2",
            alice.clone(),
            None,
        )
        .await;
    let items = versions["items"].as_array().unwrap();
    assert_eq!(
        items
            .iter()
            .map(|d| d["version"].as_u64().unwrap())
            .collect::<Vec<_>>(),
        vec![3, 2]
    );
    let cursor = versions["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .send_with(
            "GET",
            &format!("/api/control/prompts/helper/versions?limit=2&cursor={cursor}"),
            alice.clone(),
            None,
        )
        .await;
    assert_eq!(rest["items"][0]["version"], 1);
    let (_, v1) = app
        .send_with(
            "GET",
            "/api/control/prompts/helper/versions/1",
            alice.clone(),
            None,
        )
        .await;
    assert_eq!(v1["value"]["text"], "You help.");

    // Roll back, and the agent reads its own prompt with its key.
    let (status, _) = app
        .send_with(
            "PUT",
            "/api/control/prompts/helper/current",
            alice.clone(),
            Some(json!({"version": 1})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, mine) = app
        .send_with(
            "GET",
            "/api/control/prompts/helper",
            ("authorization", format!("Bearer {agent_key}")),
            None,
        )
        .await;
    assert_eq!(
        (status, mine["value"]["text"].as_str()),
        (200, Some("You help."))
    );
    let (status, _) = app
        .send_with(
            "POST",
            "/api/control/prompts/helper",
            ("authorization", format!("Bearer {agent_key}")),
            Some(json!({"text": "I rewrite myself"})),
        )
        .await;
    assert_eq!(status, 403, "an agent does not rewrite its own prompt");

    // Others may not; unknown agents and bad input are clear.
    let bob = as_user(&app, "bob").await;
    let (status, _) = app
        .send_with("GET", "/api/control/prompts/helper", bob.clone(), None)
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .send_with(
            "POST",
            "/api/control/prompts/helper",
            bob,
            Some(json!({"text": "mine now"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .send_with("GET", "/api/control/prompts/ghost", alice.clone(), None)
        .await;
    assert_eq!(status, 404);
    let (status, body) = app
        .send_with(
            "POST",
            "/api/control/prompts/helper",
            alice.clone(),
            Some(json!({"text": ""})),
        )
        .await;
    assert_eq!((status, error_code(&body)), (422, "validation_failed"));
    let (status, _) = app
        .send_with(
            "PUT",
            "/api/control/prompts/helper/current",
            alice.clone(),
            Some(json!({"version": 99})),
        )
        .await;
    assert_eq!(status, 404);
    // The city admin may manage any agent.
    let (status, _) = app
        .send_with(
            "GET",
            "/api/control/prompts/helper",
            as_user(&app, "root").await,
            None,
        )
        .await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn agent_policies_config_and_quotas_are_validated_and_guarded() {
    let Some(city) = City::new(Kind::Embedded).await else {
        return;
    };
    let app = city.spawn().await;
    let root = as_user(&app, "root").await;
    let alice = as_user(&app, "alice").await;
    app.api_key_for_agent("alice", "scout").await;

    let (status, doc) = app.send_with("PUT", "/api/control/policy/scout", alice.clone(), Some(json!({"autonomy": "assisted", "allowed_tools": ["search"], "allowed_rooms": ["general"]}))).await;
    assert_eq!((status, doc["version"].as_u64()), (200, Some(1)), "{doc}");
    let (status, body) = app
        .send_with(
            "PUT",
            "/api/control/policy/scout",
            alice.clone(),
            Some(json!({"autonomy": "reckless"})),
        )
        .await;
    assert_eq!((status, error_code(&body)), (422, "validation_failed"));

    let (status, _) = app
        .send_with(
            "PUT",
            "/api/control/config/feature.map",
            root.clone(),
            Some(json!(true)),
        )
        .await;
    assert_eq!(status, 200);
    let (status, flag) = app
        .send_with(
            "GET",
            "/api/control/config/feature.map",
            alice.clone(),
            None,
        )
        .await;
    assert_eq!((status, flag["value"].clone()), (200, json!(true)));
    let (status, _) = app
        .send_with(
            "PUT",
            "/api/control/config/feature.map",
            alice.clone(),
            Some(json!(false)),
        )
        .await;
    assert_eq!(status, 403);
    for (key, value) in [
        ("feature.map", json!("yes")),
        ("colour", json!(true)),
        ("routing.llm", json!({"rules": [{"to": "x"}]})),
    ] {
        let (status, body) = app
            .send_with(
                "PUT",
                &format!("/api/control/config/{key}"),
                root.clone(),
                Some(value),
            )
            .await;
        assert_eq!(status, 422, "{key}: {body}");
    }
    // The admin console lists what is set, a page at a time, in key order.
    for key in ["feature.chat", "feature.voice"] {
        let path = format!("/api/control/config/{key}");
        let (status, _) = app
            .send_with("PUT", &path, root.clone(), Some(json!(false)))
            .await;
        assert_eq!(status, 200);
    }
    let (status, first) = app
        .send_with("GET", "/api/control/config?limit=2", alice.clone(), None)
        .await;
    assert_eq!(status, 200, "{first}");
    let keys = |page: &Value| -> Vec<String> {
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["key"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(keys(&first), ["feature.chat", "feature.map"]);
    assert_eq!(first["items"][1]["current"]["value"], json!(true));
    let cursor = first["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .send_with(
            "GET",
            &format!("/api/control/config?limit=2&cursor={cursor}"),
            alice.clone(),
            None,
        )
        .await;
    assert_eq!(keys(&rest), ["feature.voice"]);
    assert!(rest.get("next_cursor").is_none(), "{rest}");

    let alice_id = app.user_id("alice").await;
    let subject = format!("user:{alice_id}");
    let (status, _) = app.send_with("PUT", &format!("/api/control/quotas/{subject}"), root.clone(), Some(json!({"plan": "pro", "tokens_per_minute": 20000, "budget_cents_per_month": 5000, "currency": "EUR"}))).await;
    assert_eq!(status, 200);
    let (status, quota) = app
        .send_with(
            "GET",
            &format!("/api/control/quotas/{subject}"),
            alice.clone(),
            None,
        )
        .await;
    assert_eq!(
        (status, quota["value"]["tokens_per_minute"].as_u64()),
        (200, Some(20000))
    );
    let (status, _) = app
        .send_with(
            "GET",
            &format!("/api/control/quotas/{subject}"),
            as_user(&app, "bob").await,
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .send_with(
            "PUT",
            &format!("/api/control/quotas/{subject}"),
            alice,
            Some(json!({"plan": "enterprise"})),
        )
        .await;
    assert_eq!(status, 403, "nobody raises their own quota");
    let (status, _) = app
        .send_with(
            "PUT",
            "/api/control/quotas/team:x",
            root.clone(),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = app
        .send_with(
            "PUT",
            &format!("/api/control/quotas/{subject}"),
            root,
            Some(json!({"tokens_per_minute": -5})),
        )
        .await;
    assert_eq!(status, 422);
    app.stop().await;
}

#[tokio::test]
async fn policy_changes_go_through_the_control_plane() {
    let Some(city) = City::new(Kind::Embedded).await else {
        return;
    };
    let app = city.spawn().await;
    let root = as_user(&app, "root").await;
    let (status, body) = app.send_with("PUT", "/api/control/policies", root.clone(), Some(json!({"files": [{"name": "x", "text": "@id(\"p\") permit(principal, action == Daarion::Action::\"fly\", resource);"}]}))).await;
    assert_eq!((status, error_code(&body)), (422, "validation_failed"));
    let files: Vec<Value> = daarion_access::engine::default_policies()
        .into_iter()
        .map(|f| json!({"name": f.name, "text": f.text}))
        .collect();
    let (status, body) = app
        .send_with(
            "PUT",
            "/api/control/policies",
            root.clone(),
            Some(json!({"files": files})),
        )
        .await;
    assert_eq!((status, body["version"].as_u64()), (200, Some(1)), "{body}");
    let (_, current) = app.send_with("GET", "/api/pdp/policies", root, None).await;
    assert_eq!(current["version"], 1);
    let (status, _) = app
        .send_with(
            "PUT",
            "/api/control/policies",
            as_user(&app, "alice").await,
            Some(json!({"files": files})),
        )
        .await;
    assert_eq!(status, 403);
    app.stop().await;
}

/// A change on one replica is what every replica serves within a second,
/// although each reads through its cache.
#[tokio::test]
async fn cached_copies_on_every_replica_refresh_within_a_second() {
    let Some(city) = City::new(Kind::Distributed).await else {
        return;
    };
    let a = city.spawn().await;
    let b = city.spawn().await;
    let root = as_user(&a, "root").await;
    let (status, _) = a
        .send_with(
            "PUT",
            "/api/control/config/feature.map",
            root.clone(),
            Some(json!(false)),
        )
        .await;
    assert_eq!(status, 200);
    let (_, cached) = b
        .send_with("GET", "/api/control/config/feature.map", root.clone(), None)
        .await;
    assert_eq!(cached["value"], false);
    let (status, _) = a
        .send_with(
            "PUT",
            "/api/control/config/feature.map",
            root.clone(),
            Some(json!(true)),
        )
        .await;
    assert_eq!(status, 200);
    let changed = Instant::now();
    loop {
        let (_, seen) = b
            .send_with("GET", "/api/control/config/feature.map", root.clone(), None)
            .await;
        if seen["value"] == true {
            break;
        }
        assert!(
            changed.elapsed() < Duration::from_secs(1),
            "replica b still serves the old value after {:?}",
            changed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.stop().await;
    b.stop().await;
}

/// A path the extractors refuse is the standard JSON error, with its
/// request id, even for a client that accepts gzip (the edge's compression
/// once labelled the rewritten body gzip).
#[tokio::test]
async fn refused_paths_are_json_errors_under_compression() {
    let Some(city) = City::new(Kind::Embedded).await else {
        return;
    };
    let app = city.spawn().await;
    let cookie = app.cookie("root").await;
    app.api_key_for_agent("root", "helper").await;
    for path in [
        "/api/control/prompts/helper/versions/abc",
        "/api/pdp/policies/versions/not-a-number",
    ] {
        let response = app
            .client
            .get(app.url(path))
            .header("cookie", &cookie)
            .header("accept-encoding", "gzip, br")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{path}");
        assert!(
            response.headers().get("content-encoding").is_none(),
            "{path}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(error_code(&body), "bad_request", "{path}: {body}");
        assert!(
            body["error"]["message"].as_str().unwrap().contains("u64"),
            "{body}"
        );
    }
    app.stop().await;
}
