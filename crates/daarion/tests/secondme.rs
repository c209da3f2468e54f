//! Second Me end to end on both backends: a person's own agent, made at
//! their first message, answers on the runtime (metered to them); what
//! they tell it is kept in their own memory and recalled in a new
//! conversation; conversations go on with their earlier turns; retries
//! with an Idempotency-Key are the same run; and nobody else — another
//! person, a city admin — reads their conversations, their agent or its
//! runs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{City, Kind, TestApp, decode, error_code};
use daarion_testkit::llm::{FakeLlm, Flavor};
use serde_json::{Value, json};

on_every_backend!(
    second_me_remembers_what_a_person_told_it_in_a_new_conversation,
    a_second_me_and_its_conversations_are_its_persons_alone,
    a_long_conversations_earlier_turns_reach_second_me_as_its_summary,
);

/// A running city (skipped without the local models) whose LLM proxy's
/// `chat` alias, which Second Me thinks with, is the fake model beside it
/// (the city keeps its data while it lives).
async fn city(kind: Kind) -> Option<(FakeLlm, City, TestApp)> {
    city_with(kind, json!({"model": "chat"})).await
}

/// [`city`] with these `[secondme]` settings.
async fn city_with(kind: Kind, secondme: Value) -> Option<(FakeLlm, City, TestApp)> {
    let fake = FakeLlm::start(Flavor::OpenAi).await;
    if !common::models_installed() {
        return None;
    }
    let mut city = City::new(kind).await?;
    city.settings.services.set(
        &daarion_llm::SPEC,
        json!({
            "providers": {"p0": {"kind": "openai", "base_url": fake.base_url()}},
            "models": {"chat": {"deployments": [{"provider": "p0", "model": "fake-model"}]}},
        }),
    );
    city.settings
        .services
        .set(&daarion_secondme::SPEC, secondme);
    let app = city.spawn().await;
    Some((fake, city, app))
}

async fn invoke(app: &TestApp, who: &str, key: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = app
        .client
        .post(app.url("/api/secondme/invoke"))
        .header("cookie", app.cookie(who).await)
        .json(&body);
    if let Some(key) = key {
        request = request.header("idempotency-key", key);
    }
    decode(request.send().await.unwrap()).await
}

async fn second_me_remembers_what_a_person_told_it_in_a_new_conversation(kind: Kind) {
    let Some((fake, _city, app)) = city(kind).await else {
        return;
    };
    let alice = app.user_id("alice").await;
    common::on_a_bigger_plan(&app, &format!("user:{alice}")).await;
    let (status, me) = app.get_as("/api/secondme/me", Some("alice")).await;
    assert_eq!((status, &me["agent"]), (200, &Value::Null), "{me}");

    // The first message makes her agent, and is answered by it.
    let told = "My daughter Olena was born on the twelfth of May 2015.";
    let (status, first) = invoke(&app, "alice", None, json!({"message": told})).await;
    assert_eq!(status, 200, "{first}");
    let agent = format!("me-{}", alice.replace('-', ""));
    assert_eq!(first["agent"], agent.as_str());
    // Its plan too (the free one allows a few calls a minute).
    common::on_a_bigger_plan(&app, &format!("agent:{agent}")).await;
    assert_eq!(
        first["answer"]["recalled"], false,
        "nothing to recall yet: {first}"
    );
    assert_eq!(first["said"]["seq"], 1);
    assert_eq!(first["answer"]["seq"], 2);
    assert_eq!(first["answer"]["role"], "assistant");
    let echo = format!("echo: {told}");
    assert_eq!(
        first["answer"]["content"], echo,
        "the fake model echoes the last user turn"
    );
    assert_eq!(first["conversation"]["title"], told);
    let opening = first["conversation"]["id"].as_str().unwrap().to_owned();
    let turns = common::asked_with(&fake, told);
    assert_eq!(turns[0]["role"], "system");
    assert!(
        turns[0]["content"]
            .as_str()
            .unwrap()
            .contains("Second Me of alice"),
        "{turns:?}"
    );
    let (_, me) = app.get_as("/api/secondme/me", Some("alice")).await;
    assert_eq!(me["agent"], agent.as_str(), "{me}");
    assert_eq!(me["status"], "active");

    // What she said is in her own memory, indexed like any note.
    let note = daarion_testkit::eventually("the note indexed", Duration::from_secs(30), || async {
        let (_, page) = app.get_as("/api/memory/me/documents", Some("alice")).await;
        let doc = page["items"].as_array()?.first()?.clone();
        doc["indexed_at"].is_string().then_some(doc)
    })
    .await;
    assert!(
        note["title"]
            .as_str()
            .unwrap()
            .starts_with("Second Me — My daughter"),
        "{note}"
    );

    // A new conversation recalls it, just before her question.
    let asked = "When was my daughter born?";
    let (status, second) = invoke(&app, "alice", None, json!({"message": asked})).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["answer"]["recalled"], true, "{second}");
    assert_ne!(second["conversation"]["id"], opening.as_str());
    let turns = common::asked_with(&fake, asked);
    assert_eq!(turns.len(), 3, "prompt, memory, question: {turns:?}");
    let recalled = turns[1]["content"].as_str().unwrap();
    assert_eq!(turns[1]["role"], "system");
    assert!(
        recalled.contains("their own memory") && recalled.contains("twelfth of May 2015"),
        "{recalled}"
    );

    // The first conversation goes on with its earlier turns.
    let more = "And what is her name?";
    let (status, third) = invoke(
        &app,
        "alice",
        None,
        json!({"message": more, "conversation": opening}),
    )
    .await;
    assert_eq!(status, 200, "{third}");
    assert_eq!(third["said"]["seq"], 3, "{third}");
    let turns = common::asked_with(&fake, more);
    let said: Vec<(&str, &str)> = turns
        .iter()
        .filter(|t| t["role"] != "system")
        .map(|t| (t["role"].as_str().unwrap(), t["content"].as_str().unwrap()))
        .collect();
    assert_eq!(
        said,
        [("user", told), ("assistant", echo.as_str()), ("user", more)],
        "{turns:?}"
    );

    // Her conversations, the latest spoken in first, and their turns.
    let (status, page) = app
        .get_as("/api/secondme/conversations", Some("alice"))
        .await;
    assert_eq!(status, 200, "{page}");
    let ids: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "{page}");
    assert_eq!(ids[0], opening, "{page}");
    let (_, first_page) = app
        .get_as(
            &format!("/api/secondme/conversations/{opening}/turns?limit=3"),
            Some("alice"),
        )
        .await;
    let cursor = first_page["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .get_as(
            &format!("/api/secondme/conversations/{opening}/turns?cursor={cursor}"),
            Some("alice"),
        )
        .await;
    let seqs: Vec<i64> = [&first_page, &rest]
        .iter()
        .flat_map(|p| p["items"].as_array().unwrap().clone())
        .map(|t| t["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4], "{first_page} {rest}");

    // A retry with the same key is the same run and the same answer; the
    // same key with another message is refused.
    let asked_before = fake.requests();
    let once = json!({"message": "Remember that I like plums.", "conversation": opening});
    let (status, a) = invoke(&app, "alice", Some("plums-1"), once.clone()).await;
    assert_eq!(status, 200, "{a}");
    let (status, b) = invoke(&app, "alice", Some("plums-1"), once).await;
    assert_eq!(status, 200, "{b}");
    assert_eq!(a["answer"], b["answer"]);
    assert_eq!(a["said"]["run_id"], b["said"]["run_id"]);
    assert_eq!(fake.requests(), asked_before + 1, "one model call for both");
    let (status, body) = invoke(
        &app,
        "alice",
        Some("plums-1"),
        json!({"message": "Something else", "conversation": opening}),
    )
    .await;
    assert_eq!((status, error_code(&body)), (409, "conflict"), "{body}");
    let (_, notes) = app.get_as("/api/memory/me/documents", Some("alice")).await;
    assert_eq!(
        notes["items"].as_array().unwrap().len(),
        4,
        "a note per message, once: {notes}"
    );

    // The runs are hers: metered to her, seen by her.
    let runs = format!("/api/usage/subjects/user:{alice}/summary?kind=agent_run&granularity=total");
    daarion_testkit::eventually("runs metered", Duration::from_secs(30), || async {
        let (_, summary) = app.get_as(&runs, Some("alice")).await;
        (summary["items"][0]["events"].as_i64() == Some(4)).then_some(())
    })
    .await;
    let (status, page) = app
        .get_as(&format!("/api/runtime/agents/{agent}/runs"), Some("alice"))
        .await;
    assert_eq!(status, 200, "{page}");

    // Bad input.
    for (body, code) in [
        (json!({"message": "  "}), 422),
        (json!({"message": "x".repeat(4001)}), 422),
        (json!({"message": "hi", "colour": "red"}), 422),
        (json!({"message": "hi", "conversation": "smc_nope"}), 404),
    ] {
        let (status, answer) = invoke(&app, "alice", None, body.clone()).await;
        assert_eq!(status, code, "{body}: {answer}");
        error_code(&answer);
    }

    // Deleting a conversation, then all of them.
    let path = format!("/api/secondme/conversations/{opening}");
    assert_eq!(app.send("DELETE", &path, "alice", None).await.0, 204);
    assert_eq!(app.get_as(&path, Some("alice")).await.0, 404);
    let (status, erased) = app
        .send("DELETE", "/api/secondme/conversations", "alice", None)
        .await;
    assert_eq!((status, &erased["removed"]), (200, &json!(1)), "{erased}");
    app.stop().await;
}

async fn a_second_me_and_its_conversations_are_its_persons_alone(kind: Kind) {
    let Some((fake, _city, app)) = city(kind).await else {
        return;
    };
    let secret = "The code of my safe is 4711.";
    let (status, said) = invoke(&app, "alice", None, json!({"message": secret})).await;
    assert_eq!(status, 200, "{said}");
    let conversation = said["conversation"]["id"].as_str().unwrap().to_owned();
    let agent = said["agent"].as_str().unwrap().to_owned();
    let run = said["said"]["run_id"].as_str().unwrap().to_owned();

    // Neither Bob nor the city's admin reads her conversation or goes on
    // with it.
    let path = format!("/api/secondme/conversations/{conversation}");
    for who in ["bob", "root"] {
        assert_eq!(app.get_as(&path, Some(who)).await.0, 404, "{who}");
        let turns = format!("{path}/turns");
        assert_eq!(app.get_as(&turns, Some(who)).await.0, 404, "{who}");
        assert_eq!(app.send("DELETE", &path, who, None).await.0, 404, "{who}");
        let (status, _) = invoke(
            &app,
            who,
            None,
            json!({"message": "what is the code?", "conversation": conversation}),
        )
        .await;
        assert_eq!(status, 404, "{who}");
        let (_, mine) = app.get_as("/api/secondme/conversations", Some(who)).await;
        assert!(
            !mine.to_string().contains(&conversation),
            "{who} lists {mine}"
        );
    }
    // Bob's own Second Me recalls nothing of hers.
    let (status, bobs) = invoke(
        &app,
        "bob",
        None,
        json!({"message": "What is the code of my safe?"}),
    )
    .await;
    assert_eq!(status, 200, "{bobs}");
    assert_eq!(bobs["answer"]["recalled"], false, "{bobs}");
    assert!(!fake.bodies().last().unwrap().to_string().contains("4711"));

    // Her agent, its runs and what it was told are hers alone: a city
    // admin reaches none of it through the API.
    for (path, what) in [
        (format!("/api/agents/agents/{agent}"), "the agent"),
        (format!("/api/runtime/agents/{agent}/runs"), "its runs"),
        (format!("/api/runtime/runs/{run}"), "a run"),
    ] {
        assert_eq!(app.get_as(&path, Some("alice")).await.0, 200, "{what}");
        for who in ["bob", "root"] {
            assert_eq!(app.get_as(&path, Some(who)).await.0, 403, "{who}: {what}");
        }
    }
    let (status, _) = app
        .send(
            "PATCH",
            &format!("/api/agents/agents/{agent}"),
            "root",
            Some(json!({"prompt": "Tell me everything."})),
        )
        .await;
    assert_eq!(status, 403, "an admin rewrites her agent");
    let (status, body) = app
        .send(
            "POST",
            "/api/agents/v1/chat/completions",
            "root",
            Some(json!({"model": agent, "messages": [{"role": "user", "content": "the code?"}]})),
        )
        .await;
    assert_eq!(status, 403, "an admin talks to her agent: {body}");

    // It stays private, and nobody takes a slug kept for people's agents.
    let (status, body) = app
        .send(
            "PATCH",
            &format!("/api/agents/agents/{agent}"),
            "alice",
            Some(json!({"visibility": "public"})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "validation_failed"),
        "{body}"
    );
    let (_, detail) = app
        .get_as(&format!("/api/agents/agents/{agent}"), Some("alice"))
        .await;
    assert_eq!(detail["personal"], true, "{detail}");
    let (status, body) = app
        .send(
            "POST",
            "/api/agents/agents",
            "bob",
            Some(json!({"slug": "me-squatter", "name": "Mine", "prompt": "Hi."})),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (422, "validation_failed"),
        "{body}"
    );

    // Paused, it answers nobody, her included, until resumed.
    let (status, body) = app
        .send(
            "PATCH",
            &format!("/api/agents/agents/{agent}"),
            "alice",
            Some(json!({"status": "paused"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = invoke(&app, "alice", None, json!({"message": "hello?"})).await;
    assert_eq!((status, error_code(&body)), (409, "conflict"), "{body}");
    app.stop().await;
}

async fn a_long_conversations_earlier_turns_reach_second_me_as_its_summary(kind: Kind) {
    // Runs read the last 2 turns; 2 that have left are folded.
    let settings = json!({"model": "chat", "window_turns": 2, "summary_every": 2});
    let Some((fake, _city, app)) = city_with(kind, settings).await else {
        return;
    };
    let alice = app.user_id("alice").await;
    common::on_a_bigger_plan(&app, &format!("user:{alice}")).await;
    let say = |message: &'static str, conversation: Option<String>| {
        let app = &app;
        async move {
            let (status, said) = invoke(
                app,
                "alice",
                None,
                json!({"message": message, "conversation": conversation}),
            )
            .await;
            assert_eq!(status, 200, "{said}");
            said
        }
    };
    let first = say("We plant the pear trees in April.", None).await;
    let agent = first["agent"].as_str().unwrap().to_owned();
    common::on_a_bigger_plan(&app, &format!("agent:{agent}")).await;
    let id = first["conversation"]["id"].as_str().unwrap().to_owned();
    say("The apples follow in May.", Some(id.clone())).await;
    // Turns 1-2 have left the window of the third: they are folded.
    say("Who digs the holes?", Some(id.clone())).await;
    let path = format!("/api/memory/agents/{agent}/summaries?conversation=secondme:{id}");
    let version = |n: i64| {
        let (app, path) = (&app, &path);
        daarion_testkit::eventually(
            "the summary's version",
            Duration::from_secs(30),
            move || async move {
                let (status, page) = app.get_as(path, Some("alice")).await;
                assert_eq!(status, 200, "{page}");
                let latest = page["items"][0].clone();
                (latest["version"] == n).then_some(latest)
            },
        )
    };
    let v1 = version(1).await;
    assert_eq!(
        (&v1["through"], &v1["messages"]),
        (&json!(2), &json!(2)),
        "{v1}"
    );
    let fold = common::asked_with(&fake, "Messages to fold in");
    let folded = fold.last().unwrap()["content"].as_str().unwrap();
    assert!(
        folded.contains("@alice: We plant the pear trees in April.")
            && folded.contains("Second Me: echo: We plant")
            && !folded.contains("apples"),
        "{folded}"
    );

    // The next run reads it before its window, and the window moves on.
    let asked = "And the fence?";
    say(asked, Some(id.clone())).await;
    let turns = common::asked_with(&fake, asked);
    assert_eq!(turns[1]["role"], "system", "{turns:?}");
    let told = turns[1]["content"].as_str().unwrap();
    assert!(
        told.starts_with("Earlier in this conversation")
            && told.contains(v1["summary"].as_str().unwrap()),
        "{told}"
    );
    assert!(
        !turns
            .iter()
            .any(|t| t["content"] == "We plant the pear trees in April.")
    );
    let v2 = version(2).await;
    assert_eq!(
        (&v2["through"], &v2["messages"]),
        (&json!(4), &json!(4)),
        "{v2}"
    );

    // Others do not read it; deleting the conversation forgets it.
    assert_eq!(app.get_as(&path, Some("root")).await.0, 403);
    let conversation = format!("/api/secondme/conversations/{id}");
    assert_eq!(
        app.send("DELETE", &conversation, "alice", None).await.0,
        204
    );
    let (_, page) = app.get_as(&path, Some("alice")).await;
    assert_eq!(page["items"], json!([]), "{page}");
    app.stop().await;
}
