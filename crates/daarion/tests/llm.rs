//! The LLM proxy against fake providers that speak the real protocols:
//! OpenAI-compatible and Ollama, whole and streamed replies, tool calls,
//! retries, fallback, circuit breaking, timeouts, a client hanging up,
//! limits, budgets under concurrency, bad input; and the usage records
//! every call leaves behind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{City, Kind, TestApp, decode};
use daarion_testkit::llm::{FakeLlm, Flavor, Step};
use futures::StreamExt;
use serde_json::{Value, json};

on_every_backend!(
    openai_compatible_chat_whole_streamed_with_tools_and_embeddings,
    api_keys_are_limited_to_their_models_scopes_and_rates,
    budgets_hold_under_concurrency_and_raise_alerts,
);

/// A running city of `kind` whose `[llm]` has one provider per fake (`p0`,
/// `p1`…) and the aliases given.
async fn city_with(
    kind: Kind,
    fakes: &[&FakeLlm],
    models: Value,
    tweak: impl FnOnce(&mut daarion_llm::Settings),
) -> Option<(City, TestApp)> {
    let city = llm_city(kind, fakes, models, tweak).await?;
    let app = city.spawn().await;
    Some((city, app))
}

/// A city of `kind` whose `[llm]` has one provider per fake and the
/// aliases given.
async fn llm_city(
    kind: Kind,
    fakes: &[&FakeLlm],
    models: Value,
    tweak: impl FnOnce(&mut daarion_llm::Settings),
) -> Option<City> {
    let mut city = City::new(kind).await?;
    let mut providers = serde_json::Map::new();
    for (i, fake) in fakes.iter().enumerate() {
        let kind = match fake.flavor {
            Flavor::OpenAi => "openai",
            Flavor::Ollama => "ollama",
        };
        providers.insert(
            format!("p{i}"),
            json!({"kind": kind, "base_url": fake.base_url()}),
        );
    }
    city.settings.services.set(
        &daarion_llm::SPEC,
        json!({
            "providers": providers,
            "models": models,
            "retry_backoff_ms": 10,
            "breaker_cooldown_ms": 60000,
        }),
    );
    city.settings
        .services
        .update(&daarion_llm::SPEC, tweak)
        .unwrap();
    Some(city)
}

fn one_model(alias: &str) -> Value {
    json!({ alias: {"deployments": [{"provider": "p0", "model": "fake-model"}],
        "price": {"input_per_million": 1000.0, "output_per_million": 2000.0}} })
}

fn chat(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": text}]})
}

async fn post_llm(app: &TestApp, path: &str, key: &str, body: &Value) -> (u16, Value) {
    let response = app
        .client
        .post(app.url(&format!("/api/llm/v1/{path}")))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap();
    decode(response).await
}

/// Starts a chat completion and returns the raw response (streams are read
/// with [`sse`]).
async fn post_stream(app: &TestApp, key: &str, body: &Value) -> reqwest::Response {
    app.client
        .post(app.url("/api/llm/v1/chat/completions"))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// Reads an SSE body into its `data:` payloads, with when each arrived.
async fn sse(response: reqwest::Response) -> Vec<(Duration, String)> {
    let started = Instant::now();
    let mut out = Vec::new();
    let mut buffer = String::new();
    let mut body = response.bytes_stream();
    while let Some(chunk) = body.next().await {
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            if let Some(data) = event.trim().strip_prefix("data: ") {
                out.push((started.elapsed(), data.to_owned()));
            }
        }
    }
    out
}

/// The usage summary of a subject, grouped by model, once `events` arrived.
async fn usage_of(app: &TestApp, subject: &str, events: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = app
            .get_as(
                &format!("/api/usage/subjects/{subject}/summary?group_by=model&granularity=total"),
                Some("root"),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let total: i64 = body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["events"].as_i64().unwrap())
            .sum();
        if total >= events || Instant::now() > deadline {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Gives a person a monthly budget, as the city admin.
async fn set_budget(app: &TestApp, user_id: &str, cents: u64) {
    let response = app
        .client
        .put(app.url(&format!("/api/control/quotas/user:{user_id}")))
        .header("cookie", app.cookie("root").await)
        .json(&json!({ "budget_cents_per_month": cents }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn openai_compatible_chat_whole_streamed_with_tools_and_embeddings(kind: Kind) {
    let fake = FakeLlm::start(Flavor::OpenAi).await;
    let Some((_city, app)) = city_with(kind, &[&fake], one_model("chat"), |_| {}).await else {
        return;
    };
    let key = app.api_key("alice", &["llm:*"]).await;

    let (status, reply) =
        post_llm(&app, "chat/completions", &key, &chat("chat", "hello there")).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(
        reply["choices"][0]["message"]["content"],
        "echo: hello there"
    );
    assert_eq!(
        fake.bodies()[0]["model"],
        "fake-model",
        "the alias maps to the deployment's model"
    );

    // Tools pass through and come back as tool calls.
    let mut with_tools = chat("chat", "please use the tool");
    with_tools["tools"] = json!([{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]);
    let (status, reply) = post_llm(&app, "chat/completions", &key, &with_tools).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(
        reply["choices"][0]["message"]["tool_calls"][0]["function"]["name"],
        "lookup"
    );

    // Streaming is passed through chunk by chunk, before the provider is done.
    fake.set_chunk_delay(Duration::from_millis(150));
    let mut streamed = chat("chat", "one two three four");
    streamed["stream"] = true.into();
    let response = post_stream(&app, &key, &streamed).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let events = sse(response).await;
    let (first_at, _) = &events[0];
    let (last_at, last) = events.last().unwrap();
    assert_eq!(last, "[DONE]");
    assert!(
        *last_at - *first_at >= Duration::from_millis(500),
        "chunks arrive as they are made: first at {first_at:?}, last at {last_at:?}"
    );
    let text: String = events
        .iter()
        .filter_map(|(_, d)| serde_json::from_str::<Value>(d).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "echo: one two three four");
    assert!(
        events.iter().all(|(_, d)| !d.contains("\"choices\":[]")),
        "no usage chunk the client did not ask for"
    );
    // The proxy asked the provider for usage anyway.
    assert_eq!(fake.bodies()[2]["stream_options"]["include_usage"], true);

    // With include_usage the client gets the usage chunk.
    streamed["stream_options"] = json!({"include_usage": true});
    fake.set_chunk_delay(Duration::ZERO);
    let response = post_stream(&app, &key, &streamed).await;
    let events = sse(response).await;
    assert!(
        events
            .iter()
            .any(|(_, d)| d.contains("\"usage\"") && d.contains("\"choices\":[]"))
    );

    let (status, list) = post_llm(
        &app,
        "embeddings",
        &key,
        &json!({"model": "chat", "input": ["a", "bb"]}),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["data"].as_array().unwrap().len(), 2);

    let response = app
        .client
        .get(app.url("/api/llm/v1/models"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    let (status, models) = decode(response).await;
    assert_eq!(
        (status, models["data"][0]["id"].as_str()),
        (200, Some("chat"))
    );
    // The prices the meter charges, for clients that show a call's cost.
    assert_eq!(
        models["data"][0]["pricing"],
        json!({"input_per_million": 1000.0, "output_per_million": 2000.0,
               "cached_input_per_million": 1000.0, "currency": "USD"})
    );

    // Five calls, each metered with real token counts and cost.
    let alice = app.user_id("alice").await;
    let summary = usage_of(&app, &format!("user:{alice}"), 5).await;
    let bucket = &summary["items"][0];
    assert_eq!(bucket["key"], "chat");
    assert_eq!(bucket["events"], 5, "{summary}");
    assert_eq!(
        bucket["estimated"], 0,
        "the provider reported usage: {summary}"
    );
    assert!(bucket["tokens_in"].as_i64().unwrap() > 0);
    assert!(bucket["cost_micros"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn ollama_is_translated_both_ways() {
    let fake = FakeLlm::start(Flavor::Ollama).await;
    let Some((_city, app)) = city_with(Kind::Embedded, &[&fake], one_model("local"), |_| {}).await
    else {
        return;
    };
    let key = app.api_key("alice", &["*"]).await;
    let (status, reply) =
        post_llm(&app, "chat/completions", &key, &chat("local", "hi ollama")).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["object"], "chat.completion");
    assert_eq!(reply["choices"][0]["message"]["content"], "echo: hi ollama");
    assert!(reply["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert_eq!(fake.bodies()[0]["stream"], false);

    let mut streamed = chat("local", "a b c");
    streamed["stream"] = true.into();
    streamed["stream_options"] = json!({"include_usage": true});
    let response = post_stream(&app, &key, &streamed).await;
    let events = sse(response).await;
    let chunks: Vec<Value> = events
        .iter()
        .filter_map(|(_, d)| serde_json::from_str(d).ok())
        .collect();
    let text: String = chunks
        .iter()
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(text, "echo: a b c");
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );
    assert!(
        chunks
            .iter()
            .any(|c| c["usage"]["completion_tokens"].as_u64().is_some())
    );
    assert_eq!(events.last().unwrap().1, "[DONE]");

    let (status, list) = post_llm(
        &app,
        "embeddings",
        &key,
        &json!({"model": "local", "input": "text"}),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["data"][0]["embedding"].as_array().unwrap().len(), 8);
}

#[tokio::test]
async fn retries_then_fallback_then_open_circuit() {
    let primary = FakeLlm::start(Flavor::OpenAi).await;
    let backup = FakeLlm::start(Flavor::Ollama).await;
    let models = json!({"chat": {"deployments": [
        {"provider": "p0", "model": "fake-model"},
        {"provider": "p1", "model": "llama", "priority": 1},
    ]}});
    let Some((_city, app)) = city_with(Kind::Embedded, &[&primary, &backup], models, |l| {
        l.max_retries = 2;
        l.breaker_failures = 3;
    })
    .await
    else {
        return;
    };
    let key = app.api_key("alice", &["*"]).await;

    // Two failures, then success: retried on the same deployment.
    primary.push([Step::Status(503, None), Step::Status(429, Some(0))]);
    let (status, reply) = post_llm(&app, "chat/completions", &key, &chat("chat", "x")).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!((primary.requests(), backup.requests()), (3, 0));

    // Three failures: the retries are spent, the backup answers.
    primary.push([
        Step::Status(500, None),
        Step::Garbage,
        Step::Status(502, None),
    ]);
    let (status, reply) = post_llm(&app, "chat/completions", &key, &chat("chat", "y")).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["choices"][0]["message"]["content"], "echo: y");
    assert_eq!((primary.requests(), backup.requests()), (6, 1));

    // Three failures in a row opened the primary's circuit: it is skipped.
    let (status, _) = post_llm(&app, "chat/completions", &key, &chat("chat", "z")).await;
    assert_eq!(status, 200);
    assert_eq!(
        (primary.requests(), backup.requests()),
        (6, 2),
        "the open circuit is not called"
    );

    // A client error is the client's: no retry, no fallback, the provider's reason.
    backup.push([Step::Status(400, None)]);
    let (status, body) = post_llm(&app, "chat/completions", &key, &chat("chat", "w")).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["code"], "upstream_rejected");
    assert_eq!(backup.requests(), 3);
}

#[tokio::test]
async fn timeouts_and_broken_providers_answer_clearly_and_are_metered() {
    let fake = FakeLlm::start(Flavor::OpenAi).await;
    let Some((_city, app)) = city_with(Kind::Embedded, &[&fake], one_model("chat"), |l| {
        l.first_token_timeout_ms = 300;
        l.max_retries = 1;
        l.breaker_failures = 100;
    })
    .await
    else {
        return;
    };
    let key = app.api_key("alice", &["*"]).await;

    // Slow twice: the first-token timeout fires on each attempt.
    fake.push([
        Step::Delay(Duration::from_secs(2)),
        Step::Delay(Duration::from_secs(2)),
    ]);
    let started = Instant::now();
    let (status, body) = post_llm(&app, "chat/completions", &key, &chat("chat", "slow")).await;
    assert_eq!(status, 504, "{body}");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(body["error"]["type"], "api_error");
    assert!(body["error"]["request_id"].is_string());

    // Garbage on every attempt: 502, not a panic.
    fake.push([Step::Garbage, Step::Garbage]);
    let (status, body) = post_llm(&app, "chat/completions", &key, &chat("chat", "junk")).await;
    assert_eq!(status, 502, "{body}");

    // A stream cut off midway: the client gets an error event; usage is kept.
    fake.push([Step::CloseAfter(2)]);
    let mut streamed = chat("chat", "one two three four five");
    streamed["stream"] = true.into();
    let response = post_stream(&app, &key, &streamed).await;
    let events = sse(response).await;
    let last = &events.last().unwrap().1;
    assert!(last.contains("\"error\""), "{events:?}");
    assert!(events.iter().all(|(_, d)| d != "[DONE]"));

    let alice = app.user_id("alice").await;
    let summary = usage_of(&app, &format!("user:{alice}"), 3).await;
    assert_eq!(summary["items"][0]["errors"], 3, "{summary}");
}

#[tokio::test]
async fn a_client_hanging_up_cancels_the_upstream_call() {
    let fake = FakeLlm::start(Flavor::OpenAi).await;
    fake.set_chunk_delay(Duration::from_millis(300));
    let Some((_city, app)) = city_with(Kind::Embedded, &[&fake], one_model("chat"), |_| {}).await
    else {
        return;
    };
    let key = app.api_key("alice", &["*"]).await;
    let mut streamed = chat("chat", "a long answer with many many words in it");
    streamed["stream"] = true.into();
    let response = post_stream(&app, &key, &streamed).await;
    let mut body = response.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(first.starts_with(b"data: "));
    drop(body);
    let deadline = Instant::now() + Duration::from_secs(3);
    while fake.cancelled() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        (fake.cancelled(), fake.completed()),
        (1, 0),
        "the provider saw the call dropped"
    );
    let alice = app.user_id("alice").await;
    let summary = usage_of(&app, &format!("user:{alice}"), 1).await;
    assert_eq!(
        summary["items"][0]["events"], 1,
        "the cancelled call is metered: {summary}"
    );
    assert_eq!(summary["items"][0]["estimated"], 1, "{summary}");
}

#[tokio::test]
async fn bad_input_gets_openai_style_errors() {
    let fake = FakeLlm::start(Flavor::OpenAi).await;
    let Some((_city, app)) = city_with(Kind::Embedded, &[&fake], one_model("chat"), |l| {
        l.max_request_bytes = 64 * 1024;
    })
    .await
    else {
        return;
    };
    let key = app.api_key("alice", &["*"]).await;
    let cases = [
        (chat("nope", "x"), 404, "model_not_found"),
        (
            json!({"model": "chat", "messages": "hi"}),
            400,
            "invalid_request",
        ),
        (
            json!({"model": "chat", "messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function", "function": {"name": "has space"}}]}),
            400,
            "invalid_request",
        ),
        (json!({"messages": []}), 400, "invalid_request"),
    ];
    for (body, status, code) in cases {
        let (got, reply) = post_llm(&app, "chat/completions", &key, &body).await;
        assert_eq!(
            (got, reply["error"]["code"].as_str().unwrap()),
            (status, code),
            "{body} -> {reply}"
        );
        assert!(reply["error"]["message"].is_string());
    }
    let response = app
        .client
        .post(app.url("/api/llm/v1/chat/completions"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    // JSON only (#13): a form or text post, which a page on another site
    // can send without a preflight, is refused before anything is spent.
    let valid = chat("chat", "x").to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        for path in ["chat/completions", "embeddings"] {
            let mut request = app
                .client
                .post(app.url(&format!("/api/llm/v1/{path}")))
                .bearer_auth(&key)
                .body(valid.clone());
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let (status, reply) = decode(request.send().await.unwrap()).await;
            assert_eq!(
                (status, reply["error"]["code"].as_str()),
                (415, Some("unsupported_media_type")),
                "{content_type:?} {path}: {reply}"
            );
        }
    }
    let response = app
        .client
        .post(app.url("/api/llm/v1/chat/completions"))
        .bearer_auth(&key)
        .header("content-type", "application/json; charset=utf-8")
        .body(valid)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(fake.requests(), 1);
    let huge = chat("chat", &"x".repeat(100 * 1024));
    let (status, _) = post_llm(&app, "chat/completions", &key, &huge).await;
    assert_eq!(status, 413);
    assert_eq!(fake.requests(), 1, "nothing bad reached the provider");
    // Nobody anonymous.
    let response = app
        .client
        .post(app.url("/api/llm/v1/chat/completions"))
        .json(&chat("chat", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

async fn api_keys_are_limited_to_their_models_scopes_and_rates(kind: Kind) {
    let fake = FakeLlm::start(Flavor::OpenAi).await;
    let models = json!({
        "chat": {"deployments": [{"provider": "p0", "model": "fake-model"}]},
        "big": {"deployments": [{"provider": "p0", "model": "fake-model"}], "requests_per_minute": 2},
    });
    let Some((_city, app)) = city_with(kind, &[&fake], models, |_| {}).await else {
        return;
    };
    let limited = app
        .new_api_key("alice", json!({"name": "bot", "scopes": ["llm:*"], "limits": {"models": ["chat"], "requests_per_minute": 3}}))
        .await;
    let (status, body) = post_llm(&app, "chat/completions", &limited, &chat("big", "x")).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("model_not_allowed")),
        "{body}"
    );
    let models = app
        .client
        .get(app.url("/api/llm/v1/models"))
        .bearer_auth(&limited)
        .send()
        .await
        .unwrap();
    let (_, models) = decode(models).await;
    assert_eq!(models["data"].as_array().unwrap().len(), 1, "{models}");
    for _ in 0..3 {
        let (status, body) = post_llm(&app, "chat/completions", &limited, &chat("chat", "x")).await;
        assert_eq!(status, 200, "{body}");
    }
    let response = app
        .client
        .post(app.url("/api/llm/v1/chat/completions"))
        .bearer_auth(&limited)
        .json(&chat("chat", "x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let (_, body) = decode(response).await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("API key") && message.contains("resets in"),
        "{message}"
    );

    // A key without an llm scope is refused; so is the model's own limit.
    let city_only = app.api_key("alice", &["city:*"]).await;
    let (status, _) = post_llm(&app, "chat/completions", &city_only, &chat("chat", "x")).await;
    assert_eq!(status, 403);
    let open = app.api_key("bob", &["*"]).await;
    for _ in 0..2 {
        assert_eq!(
            post_llm(&app, "chat/completions", &open, &chat("big", "x"))
                .await
                .0,
            200
        );
    }
    let (status, body) = post_llm(&app, "chat/completions", &open, &chat("big", "x")).await;
    assert_eq!(status, 429);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("model big"),
        "{body}"
    );
}

async fn budgets_hold_under_concurrency_and_raise_alerts(kind: Kind) {
    let fake = FakeLlm::start(Flavor::OpenAi).await;
    fake.set_chunk_delay(Duration::from_millis(20));
    // A call costs about 0.3 cents (30 tokens at 100 per million tokens);
    // the budget is 1 cent.
    let models = json!({"chat": {"deployments": [{"provider": "p0", "model": "fake-model"}],
        "price": {"input_per_million": 100.0, "output_per_million": 100.0},
        "max_output_tokens": 20}});
    let Some((_city, app)) = city_with(kind, &[&fake], models, |_| {}).await else {
        return;
    };
    let key = app.api_key("alice", &["*"]).await;
    let alice = app.user_id("alice").await;
    set_budget(&app, &alice, 1).await;

    let calls = (0..12).map(|i| {
        let app = &app;
        let key = &key;
        async move {
            post_llm(
                app,
                "chat/completions",
                key,
                &chat("chat", &format!("call {i}")),
            )
            .await
        }
    });
    let mut results = futures::future::join_all(calls).await;
    assert!(
        results.iter().any(|(s, _)| *s == 429),
        "concurrent calls were held back: {results:?}"
    );
    // Then one at a time until the budget refuses.
    for i in 0..20 {
        let result = post_llm(
            &app,
            "chat/completions",
            &key,
            &chat("chat", &format!("more {i}")),
        )
        .await;
        let refused = result.0 == 429;
        results.push(result);
        if refused {
            break;
        }
    }
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let refused: Vec<&Value> = results
        .iter()
        .filter(|(s, _)| *s == 429)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(ok + refused.len(), results.len(), "{results:?}");
    assert!(ok >= 2, "{ok} admitted");
    assert_eq!(refused[0]["error"]["code"], "insufficient_quota");
    assert!(
        refused[0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("budget")
    );

    // Calls settle just after their replies: wait for the last one.
    let deadline = Instant::now() + Duration::from_secs(10);
    let quota = loop {
        let (status, quota) = app
            .get_as(
                &format!("/api/usage/subjects/user:{alice}/quota"),
                Some("alice"),
            )
            .await;
        assert_eq!(status, 200, "{quota}");
        if quota["reserved_micros"] == 0 || Instant::now() > deadline {
            break quota;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let budget = quota["budget_micros_per_month"].as_i64().unwrap();
    let spent = quota["spent_micros"].as_i64().unwrap();
    let per_call = spent / i64::try_from(ok).unwrap();
    assert!(spent >= budget, "the budget was used up: {quota}");
    assert!(
        spent <= budget + per_call,
        "overspent by more than one call: {quota}"
    );
    assert_eq!(quota["reserved_micros"], 0, "{quota}");

    // 80 % and 100 % alerts went to AUDIT.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, audit) = app.get_as("/api/pdp/audit?limit=100", Some("root")).await;
        let alerts: Vec<&Value> = audit["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["subject"] == "ops.alert")
            .collect();
        if alerts.len() >= 2 || Instant::now() > deadline {
            assert_eq!(alerts.len(), 2, "{audit}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn usage_views_are_for_whom_they_describe() {
    let fake = FakeLlm::start(Flavor::OpenAi).await;
    let Some((_city, app)) = city_with(Kind::Embedded, &[&fake], one_model("chat"), |_| {}).await
    else {
        return;
    };
    let key = app.api_key("alice", &["*"]).await;
    assert_eq!(
        post_llm(&app, "chat/completions", &key, &chat("chat", "x"))
            .await
            .0,
        200
    );
    let (status, _) = app
        .post(
            "/api/city/rooms/general/messages",
            Some("alice"),
            json!({"body": "hello"}),
        )
        .await;
    assert_eq!(status, 201);
    let alice = app.user_id("alice").await;
    let by_model = usage_of(&app, &format!("user:{alice}"), 2).await;
    let kinds: Vec<&Value> = by_model["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["key"])
        .collect();
    assert_eq!(kinds.len(), 2, "an LLM call and a message: {by_model}");
    let (status, messages) = app
        .get_as(
            &format!("/api/usage/subjects/user:{alice}/summary?kind=message&granularity=total"),
            Some("alice"),
        )
        .await;
    assert_eq!(status, 200, "{messages}");
    assert_eq!(messages["items"][0]["events"], 1, "{messages}");
    let mine = format!("/api/usage/subjects/user:{alice}/summary");
    assert_eq!(app.get_as(&mine, Some("alice")).await.0, 200);
    assert_eq!(app.get_as(&mine, Some("bob")).await.0, 403);
    assert_eq!(app.get_as(&mine, None).await.0, 401);
    assert_eq!(app.get_as("/api/usage/summary", Some("bob")).await.0, 403);
    let (status, city) = app
        .get_as(
            "/api/usage/summary?group_by=user&granularity=hour",
            Some("root"),
        )
        .await;
    assert_eq!(status, 200, "{city}");
    assert_eq!(city["items"][0]["key"], alice.as_str());
    let (status, bad) = app
        .get_as("/api/usage/summary?group_by=colour", Some("root"))
        .await;
    assert_eq!(status, 400, "{bad}");
    let (status, bad) = app
        .get_as("/api/usage/summary?from=yesterday", Some("root"))
        .await;
    assert_eq!(status, 422, "{bad}");
    let csv = app
        .client
        .get(app.url("/api/usage/summary?group_by=model&format=csv"))
        .header("cookie", app.cookie("root").await)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let text = csv.text().await.unwrap();
    assert!(text.starts_with("period,key,events"), "{text}");
    assert!(text.contains(",chat,1,0,"), "{text}");
    let (status, plans) = app.get_as("/api/usage/plans", Some("bob")).await;
    assert_eq!(
        (status, plans["free"]["tokens_per_minute"].as_u64()),
        (200, Some(500))
    );
}

/// Two identical whole calls, the second answered from the response cache
/// of `second` (another replica, or the same app); streams are never cached.
async fn second_call_is_a_cache_hit(fake: &FakeLlm, first: &TestApp, second: &TestApp) {
    let key = first.api_key("alice", &["llm:*"]).await;
    let ask = chat("chat", "cache me");
    let (status, reply) = post_llm(first, "chat/completions", &key, &ask).await;
    assert_eq!(status, 200, "{reply}");
    let hit = second
        .client
        .post(second.url("/api/llm/v1/chat/completions"))
        .bearer_auth(&key)
        .json(&ask)
        .send()
        .await
        .unwrap();
    assert_eq!(hit.headers()["x-daarion-cache"], "hit");
    let (status, cached) = decode(hit).await;
    assert_eq!((status, &cached), (200, &reply));
    assert_eq!(fake.requests(), 1, "the provider was asked once");

    let (status, other) = post_llm(second, "chat/completions", &key, &chat("chat", "not me")).await;
    assert_eq!(status, 200, "{other}");
    let mut streamed = ask.clone();
    streamed["stream"] = json!(true);
    for _ in 0..2 {
        let events = sse(post_stream(second, &key, &streamed).await).await;
        assert_eq!(events.last().unwrap().1, "[DONE]");
    }
    assert_eq!(fake.requests(), 4, "streams are not cached");
}

fn with_cache(l: &mut daarion_llm::Settings) {
    l.cache_ttl_secs = 60;
}

#[tokio::test]
async fn exact_repeats_are_served_from_the_response_cache() {
    let fake = FakeLlm::start(Flavor::OpenAi).await;
    let Some((_city, app)) =
        city_with(Kind::Embedded, &[&fake], one_model("chat"), with_cache).await
    else {
        return;
    };
    second_call_is_a_cache_hit(&fake, &app, &app).await;
}

#[tokio::test]
async fn replicas_share_the_response_cache_through_redis() {
    let fake = FakeLlm::start(Flavor::OpenAi).await;
    let Some(city) = llm_city(Kind::Distributed, &[&fake], one_model("chat"), with_cache).await
    else {
        return;
    };
    let (_auth, a, b) = city.auth_and_two_replicas("llm").await;
    second_call_is_a_cache_hit(&fake, &a, &b).await;
}

/// A stored quota that no longer reads as one refuses calls instead of
/// lifting every limit.
#[tokio::test]
async fn an_unreadable_quota_fails_closed() {
    let fake = FakeLlm::start(Flavor::OpenAi).await;
    let Some((city, app)) = city_with(Kind::Embedded, &[&fake], one_model("chat"), |_| {}).await
    else {
        return;
    };
    let key = app.api_key("alice", &["*"]).await;
    let alice = app.user_id("alice").await;
    set_budget(&app, &alice, 100).await;
    let db = daarion_store::Db::connect(&city.settings.database())
        .await
        .unwrap();
    daarion_store::sql::query(
        "UPDATE control_versions SET value = $1 WHERE kind = 'quota' AND doc_key = $2",
    )
    .bind(r#"{"budget_cents_per_month": "lots"}"#)
    .bind(format!("user:{alice}"))
    .execute(db.pool())
    .await
    .unwrap();

    let (status, body) = post_llm(&app, "chat/completions", &key, &chat("chat", "hi")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(fake.completed(), 0, "the provider was called");
    let (status, _) = app
        .get_as(
            &format!("/api/usage/subjects/user:{alice}/quota"),
            Some("root"),
        )
        .await;
    assert_eq!(status, 503);
    app.stop().await;
}

/// A new account never spends without limit (#13): without a quota of its
/// own it is on the `free` plan, which has a monthly budget.
#[tokio::test]
async fn a_new_account_is_on_the_free_plan_with_a_budget() {
    let city = City::new(Kind::Embedded).await.unwrap();
    let app = city.spawn().await;
    let alice = app.user_id("alice").await;
    let (status, quota) = app
        .get_as(
            &format!("/api/usage/subjects/user:{alice}/quota"),
            Some("alice"),
        )
        .await;
    assert_eq!(status, 200, "{quota}");
    assert_eq!(quota["tokens_per_minute"], 500, "{quota}");
    assert_eq!(quota["budget_micros_per_month"], 5_000_000, "{quota}");
    app.stop().await;
}

/// A provider that cannot be reached is named, but its address is not
/// told to the caller (#13): it is in the log.
#[tokio::test]
async fn an_unreachable_provider_is_reported_without_its_address() {
    let fake = FakeLlm::start(Flavor::OpenAi).await;
    let closed = {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        probe.local_addr().unwrap().port()
    };
    let Some(mut city) = llm_city(Kind::Embedded, &[&fake], one_model("m"), |_| {}).await else {
        return;
    };
    let mut llm = city.settings.services.get(&daarion_llm::SPEC);
    llm["providers"]["p0"]["base_url"] = json!(format!("http://127.0.0.1:{closed}/v1"));
    city.settings.services.set(&daarion_llm::SPEC, llm);
    let app = city.spawn().await;
    let (status, body) = app
        .post(
            "/api/llm/v1/chat/completions",
            Some("alice"),
            chat("m", "hi"),
        )
        .await;
    assert_eq!(status, 502, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("p0"), "{message}");
    assert!(
        !message.contains("127.0.0.1") && !message.contains("http://"),
        "{message}"
    );
    app.stop().await;
}

/// One caller's cached reply never answers another's identical request
/// (#13), unless the alias shares its cache.
#[tokio::test]
async fn another_callers_identical_request_is_not_served_from_the_cache() {
    let fake = FakeLlm::start(Flavor::OpenAi).await;
    let mut models = one_model("private");
    models["public"] = models["private"].clone();
    models["public"]["shared_cache"] = json!(true);
    let Some((_city, app)) = city_with(Kind::Embedded, &[&fake], models, with_cache).await else {
        return;
    };
    let alice = app.api_key("alice", &["llm:*"]).await;
    let bob = app.api_key("bob", &["llm:*"]).await;
    let cache_of = |key: String, model: &'static str| {
        let request = app
            .client
            .post(app.url("/api/llm/v1/chat/completions"))
            .bearer_auth(key)
            .json(&chat(model, "the same question"))
            .send();
        async move {
            let response = request.await.unwrap();
            assert_eq!(response.status(), 200);
            response
                .headers()
                .get("x-daarion-cache")
                .map_or("miss", |v| v.to_str().unwrap())
                .to_owned()
        }
    };
    assert_eq!(cache_of(alice.clone(), "private").await, "miss");
    assert_eq!(cache_of(alice.clone(), "private").await, "hit");
    assert_eq!(cache_of(bob.clone(), "private").await, "miss");
    assert_eq!(fake.requests(), 2);

    assert_eq!(cache_of(alice, "public").await, "miss");
    assert_eq!(cache_of(bob, "public").await, "hit");
    assert_eq!(fake.requests(), 3);
}

/// Tokens per minute hold for calls in parallel (#13): each call holds its
/// estimate at admission, so a window admits calls only while under its
/// limit — at most the limit plus one call, not every call in flight.
#[tokio::test]
async fn parallel_calls_cannot_exceed_the_tokens_per_minute() {
    let fake = FakeLlm::start(Flavor::OpenAi).await;
    fake.push((0..20).map(|_| Step::Delay(Duration::from_millis(300))));
    let Some((_city, app)) = city_with(Kind::Embedded, &[&fake], one_model("chat"), |_| {}).await
    else {
        return;
    };
    let key = app.api_key("alice", &["llm:*"]).await;
    let alice = app.user_id("alice").await;
    let response = app
        .client
        .put(app.url(&format!("/api/control/quotas/user:{alice}")))
        .header("cookie", app.cookie("root").await)
        .json(&json!({ "tokens_per_minute": 100 }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut ask = chat("chat", "hi");
    ask["max_tokens"] = json!(50);
    let calls = (0..20).map(|_| post_llm(&app, "chat/completions", &key, &ask));
    let statuses: Vec<u16> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|(status, _)| status)
        .collect();
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        (1..=2).contains(&admitted),
        "a 100-token minute admits at most two 50-token calls: {statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        20 - admitted,
        "{statuses:?}"
    );
}
