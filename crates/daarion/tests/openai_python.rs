//! The official `openai` Python client (from PyPI) against the proxy:
//! models, chat, streaming with usage, tools, embeddings, errors. Needs a
//! Python with `openai` installed: `DAARION_PYTHON` (scripts/test.sh sets
//! it to a virtualenv it prepares) or `python3`. Required under CI.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{City, Kind};
use daarion_testkit::llm::{FakeLlm, Flavor};
use serde_json::json;

#[tokio::test]
async fn the_official_openai_python_client_works_against_the_proxy() {
    let python = std::env::var("DAARION_PYTHON").unwrap_or_else(|_| "python3".into());
    let has_openai = std::process::Command::new(&python)
        .args(["-c", "import openai"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_openai {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI needs a Python with `openai` (DAARION_PYTHON)"
        );
        eprintln!("SKIPPED: no Python with the `openai` package (set DAARION_PYTHON)");
        return;
    }
    let fake = FakeLlm::start(Flavor::OpenAi).await;
    let Some(mut city) = City::new(Kind::Embedded).await else {
        return;
    };
    city.settings.services.set(
        &daarion_llm::SPEC,
        json!({
            "providers": {"fake": {"kind": "openai", "base_url": fake.base_url()}},
            "models": {"chat": {"deployments": [{"provider": "fake", "model": "fake-model"}]}},
        }),
    );
    let app = city.spawn().await;
    // An agent of Alice's on the same model, talked to through the hub.
    let (status, made) = app
        .send(
            "POST",
            "/api/agents/agents",
            "alice",
            Some(json!({"slug": "echo", "name": "Echo", "prompt": "Repeat.", "model": "chat"})),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let key = app.api_key("alice", &["llm:*", "agents:*"]).await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openai_client.py");
    let output = tokio::process::Command::new(&python)
        .arg(script)
        .env("OPENAI_BASE_URL", app.url("/api/llm/v1"))
        .env("DAARION_AGENTS_URL", app.url("/api/agents/v1"))
        .env("OPENAI_API_KEY", key)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
