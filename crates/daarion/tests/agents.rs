//! The agent hub end to end, on both backends: agents made from blueprints
//! or from scratch, versioned with their prompt and tools in the control
//! plane, seen and changed by whom the policies say, bad input refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{City, Kind, TestApp, decode, error_code};
use serde_json::{Value, json};

on_every_backend!(
    an_agent_is_made_from_a_blueprint_changed_in_versions_and_archived,
    agents_are_seen_and_changed_only_as_the_policies_say,
    bad_agents_are_refused_and_nothing_is_half_written,
);

const AGENTS: &str = "/api/agents/agents";

fn agent(slug: &str) -> String {
    format!("{AGENTS}/{slug}")
}

/// A create as `user` with an `Idempotency-Key`.
async fn create_once(app: &TestApp, user: &str, key: &str, body: Value) -> (u16, Value) {
    let response = app
        .client
        .post(app.url(AGENTS))
        .header("cookie", app.cookie(user).await)
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .unwrap();
    decode(response).await
}

fn slugs(page: &Value) -> Vec<&str> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["slug"].as_str().unwrap())
        .collect()
}

async fn an_agent_is_made_from_a_blueprint_changed_in_versions_and_archived(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let (status, blueprints) = app.get_as("/api/agents/blueprints", Some("alice")).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = blueprints
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["helper", "moderator", "summariser"]);

    let body = json!({"slug": "olha", "blueprint": "helper"});
    let (status, made) = create_once(&app, "alice", "k1", body.clone()).await;
    assert_eq!(status, 201, "{made}");
    let alice = format!("user:{}", app.user_id("alice").await);
    assert_eq!(made["name"], "Helper");
    assert_eq!(made["owner"], json!(alice));
    assert_eq!(made["visibility"], "private");
    assert_eq!(made["status"], "active");
    assert_eq!(made["version"], 1);
    assert_eq!(made["prompt_version"], 1);
    assert_eq!(
        made["tools"],
        json!(["city.rooms", "microdao.members", "time.now"])
    );
    assert!(made["prompt"].as_str().unwrap().contains("helpful"));
    // A retry answers the same agent; the key with another body is refused.
    let (status, again) = create_once(&app, "alice", "k1", body).await;
    assert_eq!((status, again["slug"].clone()), (200, json!("olha")));
    let (status, _) = create_once(
        &app,
        "alice",
        "k1",
        json!({"slug": "other", "blueprint": "helper"}),
    )
    .await;
    assert_eq!(status, 409);

    // A change is the next version; the prompt and tools are the control
    // plane's next versions, where the prompt also rolls back.
    let (status, changed) = app
        .send(
            "PATCH",
            &agent("olha"),
            "alice",
            Some(json!({"name": "Olha", "prompt": "Answer in one line.", "tools": ["time.now"]})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(
        (
            changed["version"].clone(),
            changed["prompt_version"].clone(),
            changed["tools"].clone()
        ),
        (json!(2), json!(2), json!(["time.now"]))
    );
    let (_, prompt) = app.get_as("/api/control/prompts/olha", Some("alice")).await;
    assert_eq!(prompt["value"]["text"], "Answer in one line.");
    let (status, _) = app
        .send(
            "PUT",
            "/api/control/prompts/olha/current",
            "alice",
            Some(json!({"version": 1})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, rolled) = app.get_as(&agent("olha"), Some("alice")).await;
    assert_eq!(rolled["prompt_version"], 1, "{rolled}");
    assert!(rolled["prompt"].as_str().unwrap().contains("helpful"));

    let (_, versions) = app
        .get_as(&format!("{}/versions", agent("olha")), Some("alice"))
        .await;
    let items = versions["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(
        (
            items[0]["version"].clone(),
            items[0]["definition"]["name"].clone(),
            items[0]["definition"]["control"]["prompt_version"].clone()
        ),
        (json!(2), json!("Olha"), json!(2))
    );
    assert_eq!(items[1]["definition"]["name"], "Helper");

    // Its owner may give it API keys: the hub made its identity.
    app.api_key_for_agent("alice", "olha").await;

    // Paused, then archived: read-only, and listed only on request.
    let (status, paused) = app
        .send(
            "PATCH",
            &agent("olha"),
            "alice",
            Some(json!({"status": "paused"})),
        )
        .await;
    assert_eq!((status, paused["status"].clone()), (200, json!("paused")));
    let (status, archived) = app
        .send("POST", &format!("{}/archive", agent("olha")), "alice", None)
        .await;
    assert_eq!(
        (status, archived["status"].clone()),
        (200, json!("archived"))
    );
    let (status, body) = app
        .send(
            "PATCH",
            &agent("olha"),
            "alice",
            Some(json!({"name": "Again"})),
        )
        .await;
    assert_eq!((status, error_code(&body)), (409, "conflict"));
    let (_, listed) = app.get_as(AGENTS, Some("alice")).await;
    assert!(slugs(&listed).is_empty(), "{listed}");
    let (_, listed) = app
        .get_as(&format!("{AGENTS}?archived=true"), Some("alice"))
        .await;
    assert_eq!(slugs(&listed), ["olha"]);
    app.stop().await;
}

async fn agents_are_seen_and_changed_only_as_the_policies_say(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let (status, _) = app
        .send(
            "POST",
            AGENTS,
            "alice",
            Some(json!({"slug": "scribe", "blueprint": "summariser"})),
        )
        .await;
    assert_eq!(status, 201);
    // Private: Bob neither sees, lists nor changes it, nor takes its id.
    let (status, _) = app.get_as(&agent("scribe"), Some("bob")).await;
    assert_eq!(status, 403);
    let (_, listed) = app.get_as(AGENTS, Some("bob")).await;
    assert!(slugs(&listed).is_empty());
    let (status, _) = app
        .send(
            "PATCH",
            &agent("scribe"),
            "bob",
            Some(json!({"name": "Mine"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = app
        .send(
            "POST",
            AGENTS,
            "bob",
            Some(json!({"slug": "scribe", "blueprint": "helper"})),
        )
        .await;
    assert_eq!((status, error_code(&body)), (409, "conflict"));
    // Nor an agent id someone claimed with an API key.
    app.api_key_for_agent("carol", "keeper").await;
    let (status, _) = app
        .send(
            "POST",
            AGENTS,
            "bob",
            Some(json!({"slug": "keeper", "blueprint": "helper"})),
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = app.get_as(&agent("scribe"), None).await;
    assert_eq!(status, 401);

    // Public: every citizen sees it; only its owner changes it.
    app.send(
        "PATCH",
        &agent("scribe"),
        "alice",
        Some(json!({"visibility": "public"})),
    )
    .await;
    let (status, _) = app.get_as(&agent("scribe"), Some("bob")).await;
    assert_eq!(status, 200);
    let (_, listed) = app.get_as(AGENTS, Some("bob")).await;
    assert_eq!(slugs(&listed), ["scribe"]);
    let (status, _) = app
        .send("POST", &format!("{}/archive", agent("scribe")), "bob", None)
        .await;
    assert_eq!(status, 403);

    // A microDAO's agent: made by its admins, read by its members,
    // managed by its admins.
    common::community(&app, "alice", "guild", "public").await;
    let for_guild = json!({"slug": "steward", "blueprint": "moderator", "dao": "guild"});
    let (status, _) = app
        .send("POST", AGENTS, "bob", Some(for_guild.clone()))
        .await;
    assert_eq!(status, 403, "only the microDAO's admins make its agents");
    let (status, made) = app.send("POST", AGENTS, "alice", Some(for_guild)).await;
    assert_eq!(
        (status, made["dao"].clone()),
        (201, json!("guild")),
        "{made}"
    );
    app.send("POST", "/api/microdao/daos/guild/join", "bob", None)
        .await;
    let (status, _) = app.get_as(&agent("steward"), Some("bob")).await;
    assert_eq!(status, 200, "a member reads the microDAO's agent");
    let (_, listed) = app.get_as(AGENTS, Some("bob")).await;
    assert_eq!(slugs(&listed), ["scribe", "steward"]);
    let (status, _) = app
        .send(
            "PATCH",
            &agent("steward"),
            "bob",
            Some(json!({"name": "Mine"})),
        )
        .await;
    assert_eq!(status, 403, "a member does not manage it");
    let bob = format!("user:{}", app.user_id("bob").await);
    app.send(
        "PUT",
        &format!("/api/microdao/daos/guild/members/{bob}"),
        "alice",
        Some(json!({"role": "admin"})),
    )
    .await;
    let (status, body) = app
        .send(
            "PATCH",
            &agent("steward"),
            "bob",
            Some(json!({"name": "Warden"})),
        )
        .await;
    assert_eq!(
        (status, body["name"].clone()),
        (200, json!("Warden")),
        "an admin manages it"
    );

    // Agents do not make agents.
    let key = app.api_key_for_agent("alice", "scribe").await;
    let (status, _) = app
        .send_with(
            "POST",
            AGENTS,
            ("authorization", format!("Bearer {key}")),
            Some(json!({"slug": "spawn", "blueprint": "helper"})),
        )
        .await;
    assert_eq!(status, 403);
    app.stop().await;
}

async fn bad_agents_are_refused_and_nothing_is_half_written(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    for body in [
        json!({"slug": "Bad Slug", "blueprint": "helper"}),
        json!({"slug": "plain"}),
        json!({"slug": "plain", "name": "Plain"}),
        json!({"slug": "plain", "blueprint": "wizard"}),
        json!({"slug": "plain", "blueprint": "helper", "tools": ["Bad Tool"]}),
        json!({"slug": "plain", "blueprint": "helper", "prompt": ""}),
        json!({"slug": "plain", "blueprint": "helper", "model": "no spaces"}),
        json!({"slug": "plain", "blueprint": "helper", "avatar_url": "javascript:x"}),
        json!({"slug": "plain", "blueprint": "helper", "visibility": "everyone"}),
        json!({"slug": "plain", "blueprint": "helper", "colour": "red"}),
        json!({"slug": "plain", "name": "x".repeat(81), "prompt": "Hi"}),
    ] {
        let (status, answer) = app.send("POST", AGENTS, "alice", Some(body.clone())).await;
        assert_eq!(status, 422, "{body}: {answer}");
        assert!(answer["error"]["request_id"].is_string());
    }
    let (_, listed) = app.get_as(AGENTS, Some("alice")).await;
    assert!(slugs(&listed).is_empty(), "nothing was written");
    let (status, _) = app
        .get_as("/api/control/prompts/plain", Some("alice"))
        .await;
    assert_eq!(status, 404, "no prompt either");

    app.send(
        "POST",
        AGENTS,
        "alice",
        Some(json!({"slug": "plain", "name": "Plain", "prompt": "Hi"})),
    )
    .await;
    for body in [
        json!({"status": "archived"}),
        json!({"prompt": ""}),
        json!({"tools": ["x".repeat(65)]}),
        json!({"version": 3}),
    ] {
        let (status, answer) = app
            .send("PATCH", &agent("plain"), "alice", Some(body.clone()))
            .await;
        assert_eq!(status, 422, "{body}: {answer}");
    }
    let (_, versions) = app
        .get_as(&format!("{}/versions", agent("plain")), Some("alice"))
        .await;
    assert_eq!(
        versions["items"].as_array().unwrap().len(),
        1,
        "no half-made versions"
    );
    let (status, _) = app.get_as(&agent("nobody-here"), Some("alice")).await;
    assert_eq!(status, 404);
    app.stop().await;
}
