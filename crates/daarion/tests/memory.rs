//! Memory end to end: a microDAO's members add documents, the indexer
//! makes them searchable by words and meaning, authors and admins remove
//! them; knowledge never reaches outsiders or another microDAO; bad input;
//! idempotent creates; and the hybrid search's quality on the retrieval
//! set (`crates/embed/tests/fixtures/retrieval.json`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{City, Kind, TestApp, community, error_code, models_installed};
use daarion_testkit::llm::{FakeLlm, Flavor, Step};
use serde_json::{Value, json};

on_every_backend!(
    members_add_knowledge_and_find_it_by_words_and_meaning,
    knowledge_never_reaches_outsiders_or_another_community,
    bad_input_is_refused_and_creates_are_idempotent,
    a_person_exports_then_erases_what_memory_holds_about_them,
    hybrid_search_quality_on_the_retrieval_set,
    embeddings_come_through_the_llm_proxy_and_failures_store_nothing,
    facts_supersede_keep_their_history_and_link_into_a_graph,
    a_persons_own_facts_are_theirs_alone_and_leave_with_them,
    a_persons_own_documents_are_theirs_alone,
    a_search_keeps_to_a_rooms_documents,
);

/// A test city; distributed, on PostgreSQL with pgvector
/// (`DAARION_PGVECTOR_URL`, which `scripts/test.sh` starts), searching
/// vectors there rather than in the embedded index.
async fn city(kind: Kind) -> Option<City> {
    let mut city = City::new(kind).await?;
    if kind == Kind::Distributed {
        let server = daarion_testkit::require_env("DAARION_PGVECTOR_URL")?;
        city.settings.database_url = Some(daarion_testkit::fresh_postgres_database(&server).await);
        city.settings
            .services
            .update(&daarion_memory::SPEC, |m: &mut daarion_memory::Settings| {
                m.vectors = "pgvector".into();
            })
            .unwrap();
    }
    Some(city)
}

/// A city (skipped without the models) with Alice's public community
/// `garden`.
async fn garden(kind: Kind) -> Option<(City, TestApp)> {
    if !models_installed() {
        return None;
    }
    let city = city(kind).await?;
    let app = city.spawn().await;
    community(&app, "alice", "garden", "public").await;
    Some((city, app))
}

async fn join(app: &TestApp, user: &str, slug: &str) {
    let path = format!("/api/microdao/daos/{slug}/join");
    let (status, body) = app.send("POST", &path, user, None).await;
    assert_eq!(status, 200, "{body}");
}

/// Adds a document and waits until the indexer has made it searchable.
async fn add(app: &TestApp, user: &str, dao: &str, title: &str, body: &str) -> String {
    let path = format!("/api/memory/daos/{dao}/documents");
    let (status, document) = app
        .send(
            "POST",
            &path,
            user,
            Some(json!({"title": title, "format": "markdown", "body": body})),
        )
        .await;
    assert_eq!(status, 201, "{document}");
    assert!(document["indexed_at"].is_null(), "indexed after the answer");
    let id = document["id"].as_str().unwrap().to_owned();
    indexed(app, user, &id).await;
    id
}

async fn indexed(app: &TestApp, user: &str, id: &str) {
    let path = format!("/api/memory/documents/{id}");
    daarion_testkit::eventually(
        &format!("{id} indexed"),
        Duration::from_secs(30),
        || async {
            let (_, document) = app.get_as(&path, Some(user)).await;
            document["indexed_at"].is_string().then_some(())
        },
    )
    .await;
}

async fn search(app: &TestApp, user: &str, dao: &str, q: &str) -> (u16, Value) {
    let path = format!("/api/memory/daos/{dao}/search?{}", query(&[("q", q)]));
    app.get_as(&path, Some(user)).await
}

/// A URL query string of `pairs`, encoded.
fn query(pairs: &[(&str, &str)]) -> String {
    let url = reqwest::Url::parse_with_params("http://x/", pairs).unwrap();
    url.query().unwrap_or_default().to_owned()
}

fn documents_of(hits: &Value) -> Vec<&str> {
    hits["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["document"].as_str().unwrap())
        .collect()
}

const BUDGET: &str = "# Decisions\n\n## Budget\n\nAt the March assembly the members voted to spend the remaining 1 200 hryvnias of the quarterly budget on seedlings and tools for the shared garden.\n\n## Meetings\n\nThe assembly now meets in the school gym, which has its own generator.";
const BUDGET_UK: &str = "# Рішення\n\nНа березневих зборах учасники проголосували витратити решту квартального бюджету на розсаду та інструменти для спільного саду.";
const CHESS: &str =
    "The chess club meets every Thursday at six in the reading room; beginners are welcome.";
const CLEANUP: &str = "The spring clean-up of the riverbank starts at nine; gloves and bags are handed out at the bridge.";

async fn members_add_knowledge_and_find_it_by_words_and_meaning(kind: Kind) {
    let Some((_city, app)) = garden(kind).await else {
        return;
    };
    join(&app, "bob", "garden").await;
    let budget = add(&app, "alice", "garden", "Assembly decisions", BUDGET).await;
    let budget_uk = add(&app, "alice", "garden", "Рішення зборів", BUDGET_UK).await;
    let chess = add(&app, "bob", "garden", "Chess club", CHESS).await;
    add(&app, "bob", "garden", "Clean-up", CLEANUP).await;

    let (status, document) = app
        .get_as(&format!("/api/memory/documents/{budget}"), Some("bob"))
        .await;
    assert_eq!(status, 200, "{document}");
    assert_eq!(document["body"], BUDGET);
    assert_eq!(document["chunk_count"], 2, "one chunk per section");
    assert_eq!(document["author_name"], "alice");
    assert_eq!(document["model"], "e5-static");

    // The question an agent gets asked, in either language.
    let (status, hits) = search(
        &app,
        "bob",
        "garden",
        "what did we decide about the budget?",
    )
    .await;
    assert_eq!(status, 200, "{hits}");
    assert_eq!(hits["semantic"], true);
    let top = &hits["hits"][0];
    assert_eq!(top["document"], budget.as_str(), "{hits}");
    assert_eq!(top["heading"], "Decisions › Budget");
    assert!(
        top["vector_rank"].is_u64() && top["text_rank"].is_u64(),
        "{top}"
    );
    let (_, hits) = search(&app, "bob", "garden", "що ми вирішили щодо бюджету?").await;
    assert_eq!(hits["hits"][0]["document"], budget_uk.as_str(), "{hits}");
    // Meaning without the words: nothing here says "chess" or "club".
    let (_, hits) = search(&app, "bob", "garden", "when do people play board games?").await;
    let top = &hits["hits"][0];
    assert_eq!(top["document"], chess.as_str(), "{hits}");
    assert!(
        top["text_rank"].is_null(),
        "found by its vector alone: {top}"
    );

    // What one person wrote, by words and by meaning alike.
    let bob = format!("user:{}", app.user_id("bob").await);
    for q in ["what did we decide about the budget?", "chess"] {
        let path = format!(
            "/api/memory/daos/garden/search?{}",
            query(&[("q", q), ("author", &bob)])
        );
        let (status, hits) = app.get_as(&path, Some("alice")).await;
        assert_eq!(status, 200, "{hits}");
        let found = documents_of(&hits);
        assert!(!found.is_empty(), "{q}: {hits}");
        assert!(
            !found.contains(&budget.as_str()) && !found.contains(&budget_uk.as_str()),
            "{q}: {hits}"
        );
    }
    let (status, body) = app
        .get_as(
            "/api/memory/daos/garden/search?q=chess&author=bob",
            Some("alice"),
        )
        .await;
    assert_eq!(status, 422, "{body}");

    let (status, list) = app
        .get_as("/api/memory/daos/garden/documents?limit=2", Some("bob"))
        .await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    assert!(list["next_cursor"].is_string());

    // Bob may not remove Alice's document; she may, and it is gone from
    // both indexes at once.
    let path = format!("/api/memory/documents/{budget}");
    let (status, body) = app.send("DELETE", &path, "bob", None).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(error_code(&body), "forbidden");
    let (status, _) = app.send("DELETE", &path, "alice", None).await;
    assert_eq!(status, 204);
    let (_, hits) = search(
        &app,
        "bob",
        "garden",
        "what did we decide about the budget?",
    )
    .await;
    assert!(!documents_of(&hits).contains(&budget.as_str()), "{hits}");
    let (_, hits) = search(&app, "bob", "garden", "hryvnias seedlings").await;
    assert!(!documents_of(&hits).contains(&budget.as_str()), "{hits}");
    let (status, _) = app.get_as(&path, Some("alice")).await;
    assert_eq!(status, 404);
    // An admin removes anyone's document.
    let chess_path = format!("/api/memory/documents/{chess}");
    let (status, _) = app.send("DELETE", &chess_path, "alice", None).await;
    assert_eq!(status, 204);
}

async fn knowledge_never_reaches_outsiders_or_another_community(kind: Kind) {
    let Some((_city, app)) = garden(kind).await else {
        return;
    };
    community(&app, "alice", "inner", "private").await;
    community(&app, "dave", "orchard", "public").await;
    join(&app, "bob", "garden").await;
    let secret = add(
        &app,
        "alice",
        "garden",
        "Budget",
        "Our budget reserve is 500.",
    )
    .await;
    let private = add(&app, "alice", "inner", "Budget", "The inner budget is 900.").await;
    let theirs = add(
        &app,
        "dave",
        "orchard",
        "Budget",
        "The orchard budget is 300.",
    )
    .await;

    // Each community's search holds its own documents only.
    let (_, hits) = search(&app, "dave", "orchard", "budget").await;
    assert_eq!(documents_of(&hits), [theirs.as_str()], "{hits}");
    let (_, hits) = search(&app, "alice", "garden", "budget").await;
    assert_eq!(documents_of(&hits), [secret.as_str()], "{hits}");

    // A citizen who is not a member (of a public community too), a member
    // of another community, and nobody signed in.
    for (user, dao, document) in [
        ("carol", "garden", &secret),
        ("dave", "garden", &secret),
        ("bob", "inner", &private),
    ] {
        let (status, body) = search(&app, user, dao, "budget").await;
        assert_eq!(status, 403, "{user} searching {dao}: {body}");
        let path = format!("/api/memory/documents/{document}");
        let (status, _) = app.get_as(&path, Some(user)).await;
        assert_eq!(status, 403, "{user} reading {document}");
        let (status, _) = app
            .send(
                "POST",
                &format!("/api/memory/daos/{dao}/documents"),
                user,
                Some(json!({"title": "x", "body": "y"})),
            )
            .await;
        assert_eq!(status, 403, "{user} writing to {dao}");
        let (status, _) = app.send("DELETE", &path, user, None).await;
        assert_eq!(status, 403, "{user} removing {document}");
    }
    let (status, body) = app
        .get_as("/api/memory/daos/garden/search?q=budget", None)
        .await;
    assert_eq!(status, 401, "{body}");
}

async fn bad_input_is_refused_and_creates_are_idempotent(kind: Kind) {
    let Some(city) = city(kind).await else {
        return;
    };
    let app = city.spawn().await;
    community(&app, "alice", "garden", "public").await;
    let documents = "/api/memory/daos/garden/documents";
    for (body, code) in [
        (json!({"title": " ", "body": "x"}), 422),
        (json!({"title": "t", "body": " \n"}), 422),
        (json!({"title": "t".repeat(201), "body": "x"}), 422),
        (json!({"title": "t", "body": "x", "format": "pdf"}), 422),
        (json!({"title": "t", "body": "x", "extra": 1}), 422),
        (json!({"title": "t"}), 422),
    ] {
        let (status, error) = app
            .send("POST", documents, "alice", Some(body.clone()))
            .await;
        assert_eq!(status, code, "{body}: {error}");
        error_code(&error);
    }
    let (status, _) = app
        .send(
            "POST",
            "/api/memory/daos/nowhere/documents",
            "alice",
            Some(json!({"title": "t", "body": "x"})),
        )
        .await;
    assert_eq!(status, 404);
    for query in ["q=", "q=%20", "q=x&limit=0", "q=x&limit=51", "limit=5"] {
        let path = format!("/api/memory/daos/garden/search?{query}");
        let (status, error) = app.get_as(&path, Some("alice")).await;
        assert!([400, 422].contains(&status), "{query}: {status} {error}");
        error_code(&error);
    }
    for (method, path) in [
        ("GET", "/api/memory/documents/doc_none"),
        ("DELETE", "/api/memory/documents/doc_none"),
    ] {
        let (status, _) = app.send(method, path, "alice", None).await;
        assert_eq!(status, 404, "{method} {path}");
    }

    // A retried create with the same key is the same document; the same key
    // for another document is a conflict. Nothing was written by the
    // refusals above.
    let alice = app.cookie("alice").await;
    let post = |key: &'static str, body: Value| {
        app.client
            .post(app.url(documents))
            .header("cookie", alice.clone())
            .header("idempotency-key", key)
            .json(&body)
    };
    let once = json!({"title": "Rules", "body": "Quiet after ten."});
    let (first_status, first) =
        common::decode(post("k-1", once.clone()).send().await.unwrap()).await;
    let (again_status, again) = common::decode(post("k-1", once).send().await.unwrap()).await;
    assert_eq!((first_status, again_status), (201, 200), "{first} {again}");
    assert_eq!(first["id"], again["id"]);
    let (status, body) = common::decode(
        post("k-1", json!({"title": "Rules", "body": "Loud after ten."}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (_, list) = app.get_as(documents, Some("alice")).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
}

async fn a_person_exports_then_erases_what_memory_holds_about_them(kind: Kind) {
    let Some((_city, app)) = garden(kind).await else {
        return;
    };
    join(&app, "bob", "garden").await;
    let rota = add(
        &app,
        "alice",
        "garden",
        "Rota",
        "# Watering\n\nAlice waters on Fridays.",
    )
    .await;
    let seeds = add(
        &app,
        "alice",
        "garden",
        "Seeds",
        "Alice keeps the tomato seeds.",
    )
    .await;
    let bobs = add(
        &app,
        "bob",
        "garden",
        "Tools",
        "Bob keeps the spades in the shed.",
    )
    .await;

    let (status, export) = app.get_as("/api/memory/me/export", Some("alice")).await;
    assert_eq!(status, 200, "{export}");
    assert_eq!(
        export["subject"],
        format!("user:{}", app.user_id("alice").await)
    );
    let documents = export["documents"].as_array().unwrap();
    let ids: Vec<&str> = documents
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [rota.as_str(), seeds.as_str()],
        "hers only, oldest first"
    );
    assert_eq!(
        documents[0]["body"],
        "# Watering\n\nAlice waters on Fridays."
    );
    assert_eq!(documents[0]["chunks"][0]["heading"], "Watering");
    assert_eq!(
        documents[0]["chunks"][0]["text"],
        "Alice waters on Fridays."
    );

    let (status, erased) = app.send("DELETE", "/api/memory/me", "alice", None).await;
    assert_eq!(
        (status, erased["removed"].clone()),
        (200, json!(2)),
        "{erased}"
    );
    // Nothing of hers is found any more, by words or meaning; Bob's stays.
    for q in [
        "Alice waters on Fridays",
        "tomato seeds",
        "who keeps the seeds?",
    ] {
        let (_, hits) = search(&app, "bob", "garden", q).await;
        let found = documents_of(&hits);
        assert!(
            !found.contains(&rota.as_str()) && !found.contains(&seeds.as_str()),
            "{q}: {hits}"
        );
    }
    let (_, hits) = search(&app, "bob", "garden", "spades").await;
    assert_eq!(documents_of(&hits), [bobs.as_str()]);
    let (_, export) = app.get_as("/api/memory/me/export", Some("alice")).await;
    assert_eq!(export["documents"], json!([]));
    let (status, _) = app.get_as("/api/memory/me/export", None).await;
    assert_eq!(status, 401);
    let (status, _) = app
        .client
        .delete(app.url("/api/memory/me"))
        .send()
        .await
        .map(|r| (r.status().as_u16(), ()))
        .unwrap();
    assert_eq!(status, 401);
}

/// The hybrid search on the retrieval set, with each model (the table
/// alone on pgvector): each language's passages and distractors as the
/// documents of one community, each question asked there in its language.
/// Prints nDCG@10 and recall@10 (the README's figures) and holds them to
/// floors a few points below.
async fn hybrid_search_quality_on_the_retrieval_set(kind: Kind) {
    if !models_installed() {
        return;
    }
    let set: Value =
        serde_json::from_str(include_str!("../../embed/tests/fixtures/retrieval.json")).unwrap();
    // nDCG@10 at the default alpha (0.75), en then uk, measured 0.545 and
    // 0.566 with the table, 0.792 and 0.712 with the encoder (2026-12-06);
    // the floors sit a few points below. Words alone (alpha 0) and meaning
    // alone (1) are printed beside them.
    let models: &[_] = match kind {
        Kind::Embedded => &[("static", [0.50, 0.52]), ("e5", [0.74, 0.66])],
        Kind::Distributed => &[("static", [0.50, 0.52])],
    };
    for &(embedder, floors) in models {
        let Some(city) = city(kind).await else {
            return;
        };
        let mut settings = city.settings.clone();
        settings
            .services
            .update(&daarion_memory::SPEC, |m: &mut daarion_memory::Settings| {
                m.embedder = embedder.into();
            })
            .unwrap();
        let mut app = common::spawn_with(settings, daarion::Shape::AllInOne).await;
        app.people = city.people.clone();
        let (mut ids, mut written) = (std::collections::HashMap::new(), Vec::new());
        for lang in ["en", "uk"] {
            // One community per language: the corpus the model is measured
            // on in `crates/embed/tests/retrieval.rs`.
            let dao = format!("memory-{lang}");
            community(&app, "alice", &dao, "private").await;
            let path = format!("/api/memory/daos/{dao}/documents");
            let passages = set["passages"].as_array().unwrap().iter();
            let texts = passages
                .map(|p| (Some(p["id"].as_str().unwrap()), p[lang].as_str().unwrap()))
                .chain(
                    set["distractors"][lang]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|d| (None, d.as_str().unwrap())),
                );
            for (passage, text) in texts {
                let (status, document) = app
                    .send(
                        "POST",
                        &path,
                        "alice",
                        Some(json!({"title": "Note", "format": "text", "body": text})),
                    )
                    .await;
                assert_eq!(status, 201, "{document}");
                let id = document["id"].as_str().unwrap().to_owned();
                if let Some(passage) = passage {
                    ids.insert((lang, passage.to_owned()), id.clone());
                }
                written.push(id);
            }
        }
        // Indexed in the order written, the last one last.
        for id in &written {
            indexed(&app, "alice", id).await;
        }
        for ((lang, floor), alpha) in ["en", "uk"]
            .into_iter()
            .zip(floors)
            .flat_map(|lang| [0.0, 0.75, 1.0].map(|alpha| (lang, alpha)))
        {
            let (mut recall, mut ndcg, mut n) = (0.0, 0.0, 0.0);
            for question in set["questions"].as_array().unwrap() {
                let relevant = &ids[&(lang, question["passage"].as_str().unwrap().to_owned())];
                let q = question[lang].as_str().unwrap();
                let dao = format!("memory-{lang}");
                let weight = alpha.to_string();
                let path = format!(
                    "/api/memory/daos/{dao}/search?{}",
                    query(&[("q", q), ("alpha", &weight)])
                );
                let (status, hits) = app.get_as(&path, Some("alice")).await;
                assert_eq!(status, 200, "{hits}");
                assert_eq!(hits["semantic"], true);
                n += 1.0;
                if let Some(rank) = documents_of(&hits).iter().position(|d| d == relevant) {
                    recall += 1.0;
                    ndcg += 1.0 / (rank as f64 + 2.0).log2();
                }
            }
            let (recall, ndcg) = (recall / n, ndcg / n);
            eprintln!(
                "hybrid search ({kind:?}, {embedder} + full text, alpha {alpha}), {lang}: recall@10 {recall:.3}, nDCG@10 {ndcg:.3}"
            );
            assert!(
                alpha != 0.75 || ndcg >= floor,
                "{embedder} {lang}: nDCG@10 {ndcg:.3} under {floor}"
            );
        }
    }
}

/// `memory.embedder = "llm:embed"`: chunks and questions are embedded by
/// the LLM proxy's `embed` model (the fake OpenAI provider, whose vectors
/// are sums of the text's bytes: the same text, the same vector). A
/// provider that fails, or answers something not JSON, stores nothing: the
/// document waits with the reason and is indexed when the bus brings it
/// again and the provider answers; a search meanwhile uses words alone.
async fn embeddings_come_through_the_llm_proxy_and_failures_store_nothing(kind: Kind) {
    let fake = FakeLlm::start(Flavor::OpenAi).await;
    let Some(mut city) = city(kind).await else {
        return;
    };
    city.settings.services.set(
        &daarion_llm::SPEC,
        json!({
            "providers": {"p0": {"kind": "openai", "base_url": fake.base_url()}},
            "models": {"embed": {"deployments": [{"provider": "p0", "model": "fake-embed"}]}},
            "max_retries": 0,
            "retry_backoff_ms": 10,
        }),
    );
    city.settings
        .services
        .update(&daarion_memory::SPEC, |m: &mut daarion_memory::Settings| {
            m.embedder = "llm:embed".into();
            m.embedding_dims = 8;
        })
        .unwrap();
    let app = city.spawn().await;
    community(&app, "alice", "garden", "public").await;

    fake.push([Step::Status(500, None), Step::Garbage]);
    let (status, document) = app
        .send(
            "POST",
            "/api/memory/daos/garden/documents",
            "alice",
            Some(json!({"title": "Chess", "format": "text", "body": CHESS})),
        )
        .await;
    assert_eq!(status, 201, "{document}");
    let id = document["id"].as_str().unwrap().to_owned();
    let path = format!("/api/memory/documents/{id}");
    let waiting =
        daarion_testkit::eventually("the failure noted", Duration::from_secs(10), || async {
            let (_, document) = app.get_as(&path, Some("alice")).await;
            document["index_error"].as_str().map(str::to_owned)
        })
        .await;
    assert!(waiting.contains("llm:embed"), "{waiting}");
    // Then the provider answers (the third delivery): indexed once, with
    // its vectors.
    indexed(&app, "alice", &id).await;
    let (_, document) = app.get_as(&path, Some("alice")).await;
    assert_eq!(document["model"], "llm:embed");
    assert!(document["index_error"].is_null(), "{document}");
    let asked: Vec<Value> = fake
        .bodies()
        .into_iter()
        .filter(|b| b["input"].is_array())
        .collect();
    assert!(
        asked.iter().all(|b| b["model"] == "fake-embed"),
        "{asked:?}"
    );

    // The question is the document's own text: its vector is the chunk's.
    let other = add(&app, "alice", "garden", "Clean-up", CLEANUP).await;
    let (status, hits) = search(&app, "alice", "garden", CHESS).await;
    assert_eq!(status, 200, "{hits}");
    assert_eq!(hits["semantic"], true, "{hits}");
    assert_eq!(hits["hits"][0]["document"], id.as_str(), "{hits}");
    assert_eq!(hits["hits"][0]["vector_rank"], 1, "{hits}");
    // The provider down: words alone answer, and say so.
    fake.push([Step::Status(500, None)]);
    let (status, hits) = search(&app, "alice", "garden", "riverbank gloves").await;
    assert_eq!(status, 200, "{hits}");
    assert_eq!(hits["semantic"], false, "{hits}");
    assert_eq!(documents_of(&hits), [other.as_str()]);
}

/// Remembers a fact in `dao` as `user`: the status and the answer.
async fn remember(app: &TestApp, user: &str, dao: &str, fact: Value) -> (u16, Value) {
    let path = format!("/api/memory/daos/{dao}/facts");
    app.send("POST", &path, user, Some(fact)).await
}

fn objects(page: &Value) -> Vec<&str> {
    let mut objects: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["object"].as_str().unwrap())
        .collect();
    objects.sort_unstable();
    objects
}

async fn facts_supersede_keep_their_history_and_link_into_a_graph(kind: Kind) {
    let Some(city) = city(kind).await else {
        return;
    };
    let app = city.spawn().await;
    community(&app, "alice", "garden", "public").await;
    join(&app, "bob", "garden").await;
    let budget = json!({"subject": "Garden budget", "predicate": "is", "object": "1 200 hryvnias",
        "source": "March assembly", "confidence": 0.8});
    let (status, first) = remember(&app, "alice", "garden", budget.clone()).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["outcome"], "stored");
    let first_id = first["fact"]["id"].as_str().unwrap().to_owned();
    // The same fact again is the one known (written differently).
    let (status, again) = remember(
        &app,
        "bob",
        "garden",
        json!({"subject": "garden  BUDGET", "predicate": "Is", "object": "1 200 Hryvnias"}),
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (again["outcome"].as_str(), again["fact"]["id"].as_str()),
        (Some("known"), Some(first_id.as_str()))
    );
    assert_eq!(again["fact"]["confidence"], 1.0, "raised to the surer one");

    // A different object supersedes it; the old one stays as history.
    let (status, newer) = remember(
        &app,
        "bob",
        "garden",
        json!({"subject": "Garden budget", "predicate": "is", "object": "1 500 hryvnias"}),
    )
    .await;
    assert_eq!(status, 201, "{newer}");
    assert_eq!(newer["superseded"], first_id.as_str());
    let newer_id = newer["fact"]["id"].as_str().unwrap().to_owned();
    let current = "/api/memory/daos/garden/facts?subject=garden%20budget";
    let (_, page) = app.get_as(current, Some("alice")).await;
    assert_eq!(objects(&page), ["1 500 hryvnias"]);
    // Learnt late, an older value goes straight into history.
    let (status, older) = remember(
        &app,
        "alice",
        "garden",
        json!({"subject": "Garden budget", "predicate": "is", "object": "900 hryvnias",
            "valid_from": "2020-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(status, 201, "{older}");
    assert_eq!(older["outcome"], "history");
    assert_eq!(older["fact"]["superseded_by"], newer_id.as_str());
    let (_, page) = app.get_as(current, Some("alice")).await;
    assert_eq!(objects(&page), ["1 500 hryvnias"]);
    let (_, page) = app
        .get_as(&format!("{current}&history=true"), Some("alice"))
        .await;
    assert_eq!(
        objects(&page),
        ["1 200 hryvnias", "1 500 hryvnias", "900 hryvnias"]
    );
    let (status, view) = app
        .get_as(&format!("/api/memory/facts/{newer_id}"), Some("alice"))
        .await;
    assert_eq!(status, 200, "{view}");
    let history: Vec<&str> = view["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["object"].as_str().unwrap())
        .collect();
    assert_eq!(
        history,
        ["1 500 hryvnias", "1 200 hryvnias", "900 hryvnias"]
    );

    // A predicate of several objects keeps them all.
    for language in ["Ukrainian", "English"] {
        let (status, body) = remember(
            &app,
            "alice",
            "garden",
            json!({"subject": "Olena", "predicate": "speaks", "object": language, "cardinality": "many"}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let (_, page) = app
        .get_as(
            "/api/memory/daos/garden/facts?subject=Olena&predicate=speaks",
            Some("bob"),
        )
        .await;
    assert_eq!(objects(&page), ["English", "Ukrainian"]);

    // The graph: Olena → the garden project → its budget → the amount.
    for (subject, predicate, object) in [
        ("Olena", "coordinates", "Garden project"),
        ("Garden project", "is funded by", "Garden budget"),
    ] {
        let (status, body) = remember(
            &app,
            "alice",
            "garden",
            json!({"subject": subject, "predicate": predicate, "object": object}),
        )
        .await;
        assert_eq!(status, 201, "{body}");
    }
    let (status, near) = app
        .get_as(
            "/api/memory/daos/garden/graph/neighbours?entity=olena",
            Some("bob"),
        )
        .await;
    assert_eq!(status, 200, "{near}");
    assert_eq!(near["edges"].as_array().unwrap().len(), 3, "{near}");
    let (_, far) = app
        .get_as(
            "/api/memory/daos/garden/graph/neighbours?entity=olena&depth=2",
            Some("bob"),
        )
        .await;
    assert!(
        far["entities"]
            .as_array()
            .unwrap()
            .contains(&json!("Garden budget")),
        "{far}"
    );
    let path = format!(
        "/api/memory/daos/garden/graph/path?{}",
        query(&[("from", "Olena"), ("to", "1 500 hryvnias")])
    );
    let (status, route) = app.get_as(&path, Some("bob")).await;
    assert_eq!(status, 200, "{route}");
    let steps: Vec<&str> = route["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["predicate"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["coordinates", "is funded by", "is"], "{route}");
    let (_, none) = app
        .get_as(
            "/api/memory/daos/garden/graph/path?from=Olena&to=nobody",
            Some("bob"),
        )
        .await;
    assert_eq!(none["found"], false);

    // Forgetting the current value brings back the one it replaced.
    let fact = format!("/api/memory/facts/{newer_id}");
    let (status, _) = app.send("DELETE", &fact, "carol", None).await;
    assert_eq!(status, 403, "an outsider");
    let (status, _) = app.send("DELETE", &fact, "bob", None).await;
    assert_eq!(status, 204, "its author");
    let (_, page) = app.get_as(current, Some("alice")).await;
    assert_eq!(objects(&page), ["1 200 hryvnias"]);
    let (status, _) = app
        .send(
            "DELETE",
            &format!("/api/memory/facts/{first_id}"),
            "bob",
            None,
        )
        .await;
    assert_eq!(status, 403, "a member, not its author");
    let (status, _) = app
        .send(
            "DELETE",
            &format!("/api/memory/facts/{first_id}"),
            "alice",
            None,
        )
        .await;
    assert_eq!(status, 204, "its author");

    // Outsiders reach none of it; bad input is refused.
    let (status, _) = app
        .get_as("/api/memory/daos/garden/facts", Some("carol"))
        .await;
    assert_eq!(status, 403);
    let (status, _) = remember(&app, "carol", "garden", budget.clone()).await;
    assert_eq!(status, 403);
    let (status, _) = app
        .get_as(
            "/api/memory/daos/garden/graph/neighbours?entity=Olena",
            Some("carol"),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .get_as(
            &format!(
                "/api/memory/facts/{}",
                older["fact"]["id"].as_str().unwrap()
            ),
            Some("carol"),
        )
        .await;
    assert_eq!(status, 403);
    for (bad, why) in [
        (
            json!({"subject": "", "predicate": "is", "object": "x"}),
            "empty subject",
        ),
        (
            json!({"subject": "x", "predicate": "is", "object": "y", "confidence": 2}),
            "confidence",
        ),
        (
            json!({"subject": "x", "predicate": "is", "object": "y", "valid_from": "yesterday"}),
            "time",
        ),
        (
            json!({"subject": "x", "predicate": "is", "object": "y", "about": "bob"}),
            "about",
        ),
        (
            json!({"subject": "x".repeat(301), "predicate": "is", "object": "y"}),
            "long",
        ),
    ] {
        let (status, body) = remember(&app, "alice", "garden", bad).await;
        assert_eq!(status, 422, "{why}: {body}");
        assert_eq!(error_code(&body), "validation_failed", "{why}");
    }
    let (status, _) = app
        .get_as(
            "/api/memory/daos/garden/graph/neighbours?entity=Olena&depth=9",
            Some("bob"),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = app
        .get_as("/api/memory/facts/fact_nothing", Some("alice"))
        .await;
    assert_eq!(status, 404);
}

async fn a_persons_own_facts_are_theirs_alone_and_leave_with_them(kind: Kind) {
    let Some(city) = city(kind).await else {
        return;
    };
    let app = city.spawn().await;
    // root, the city's admin, is registered first.
    app.session("root").await;
    community(&app, "alice", "garden", "public").await;
    join(&app, "bob", "garden").await;
    let (status, own) = app
        .send(
            "POST",
            "/api/memory/me/facts",
            "bob",
            Some(json!({"subject": "I", "predicate": "am allergic to", "object": "peanuts"})),
        )
        .await;
    assert_eq!(status, 201, "{own}");
    let own_id = own["fact"]["id"].as_str().unwrap().to_owned();
    let (status, page) = app.get_as("/api/memory/me/facts", Some("bob")).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(objects(&page), ["peanuts"]);
    let (_, page) = app.get_as("/api/memory/me/facts", Some("alice")).await;
    assert_eq!(
        objects(&page),
        Vec::<&str>::new(),
        "alice has her own, empty"
    );
    let fact = format!("/api/memory/facts/{own_id}");
    for user in ["alice", "root"] {
        let (status, _) = app.get_as(&fact, Some(user)).await;
        assert_eq!(status, 403, "{user} reading bob's own fact");
        let (status, _) = app.send("DELETE", &fact, user, None).await;
        assert_eq!(status, 403, "{user} forgetting bob's own fact");
    }
    let (status, _) = app.get_as(&fact, Some("bob")).await;
    assert_eq!(status, 200);

    // What bob wrote in the garden, and what alice wrote about him.
    let bob_id = app.user_id("bob").await;
    let (status, _) = remember(
        &app,
        "bob",
        "garden",
        json!({"subject": "Tool shed", "predicate": "key is with", "object": "Bob"}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, about) = remember(
        &app,
        "alice",
        "garden",
        json!({"subject": "Bob", "predicate": "waters", "object": "the tomatoes",
            "about": format!("user:{bob_id}")}),
    )
    .await;
    assert_eq!(status, 201, "{about}");
    let (status, _) = remember(
        &app,
        "alice",
        "garden",
        json!({"subject": "Olena", "predicate": "waters", "object": "the roses"}),
    )
    .await;
    assert_eq!(status, 201);
    let (_, export) = app.get_as("/api/memory/me/export", Some("bob")).await;
    let mut exported: Vec<&str> = export["facts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["object"].as_str().unwrap())
        .collect();
    exported.sort_unstable();
    assert_eq!(exported, ["Bob", "peanuts", "the tomatoes"]);

    let (status, erased) = app.send("DELETE", "/api/memory/me", "bob", None).await;
    assert_eq!(status, 200, "{erased}");
    assert_eq!(erased["facts_removed"], 3);
    let (_, export) = app.get_as("/api/memory/me/export", Some("bob")).await;
    assert_eq!(export["facts"], json!([]));
    let (_, left) = app
        .get_as("/api/memory/daos/garden/facts", Some("alice"))
        .await;
    assert_eq!(objects(&left), ["the roses"]);
    let (status, _) = app.get_as(&fact, Some("bob")).await;
    assert_eq!(status, 404);
}

async fn a_persons_own_documents_are_theirs_alone(kind: Kind) {
    let Some((_city, app)) = garden(kind).await else {
        return;
    };
    let (status, document) = app
        .send(
            "POST",
            "/api/memory/me/documents",
            "bob",
            Some(json!({"title": "Health", "body": "I am allergic to peanuts; my doctor is Dr Koval."})),
        )
        .await;
    assert_eq!(status, 201, "{document}");
    let id = document["id"].as_str().unwrap().to_owned();
    assert_eq!(
        document["dao"],
        format!("user:{}", app.user_id("bob").await)
    );
    indexed(&app, "bob", &id).await;
    let asked = format!(
        "/api/memory/me/search?{}",
        query(&[("q", "who is my doctor")])
    );
    let (status, hits) = app.get_as(&asked, Some("bob")).await;
    assert_eq!(status, 200, "{hits}");
    assert_eq!(documents_of(&hits), [id.as_str()]);
    let (_, page) = app.get_as("/api/memory/me/documents", Some("bob")).await;
    assert_eq!(page["items"][0]["id"], id.as_str());

    // No one else reaches it: not through their own memory, a community's,
    // the document itself — not the city's admin either.
    let (_, theirs) = app.get_as(&asked, Some("alice")).await;
    assert_eq!(documents_of(&theirs), Vec::<&str>::new());
    let (_, garden) = search(&app, "alice", "garden", "who is my doctor").await;
    assert!(!documents_of(&garden).contains(&id.as_str()), "{garden}");
    let path = format!("/api/memory/documents/{id}");
    for user in ["alice", "root"] {
        let (status, _) = app.get_as(&path, Some(user)).await;
        assert_eq!(status, 403, "{user} reading");
        let (status, _) = app.send("DELETE", &path, user, None).await;
        assert_eq!(status, 403, "{user} removing");
    }
    let (status, _) = app
        .get_as("/api/memory/daos/user:x/search?q=doctor", Some("bob"))
        .await;
    assert_eq!(status, 404, "a person's memory is no community");

    let (_, export) = app.get_as("/api/memory/me/export", Some("bob")).await;
    assert_eq!(
        export["documents"][0]["body"],
        "I am allergic to peanuts; my doctor is Dr Koval."
    );
    let (status, _) = app.send("DELETE", "/api/memory/me", "bob", None).await;
    assert_eq!(status, 200);
    let (_, hits) = app.get_as(&asked, Some("bob")).await;
    assert_eq!(documents_of(&hits), Vec::<&str>::new());
}

async fn a_search_keeps_to_a_rooms_documents(kind: Kind) {
    let Some((_city, app)) = garden(kind).await else {
        return;
    };
    let orchard = community(&app, "dave", "orchard", "public").await;
    let (_, rooms) = app
        .get_as("/api/messaging/daos/garden/rooms", Some("alice"))
        .await;
    let general = rooms["items"][0]["id"].as_str().unwrap().to_owned();
    let post = |body: Value| {
        let app = &app;
        async move {
            app.send(
                "POST",
                "/api/memory/daos/garden/documents",
                "alice",
                Some(body),
            )
            .await
        }
    };
    let (status, in_room) =
        post(json!({"title": "Watering", "body": CLEANUP, "room": general})).await;
    assert_eq!(status, 201, "{in_room}");
    assert_eq!(in_room["room"], general.as_str());
    let in_room = in_room["id"].as_str().unwrap().to_owned();
    indexed(&app, "alice", &in_room).await;
    let at_large = add(&app, "alice", "garden", "Chess club", CHESS).await;

    // Kept to the room, a search finds its document and not the other,
    // however well the other matches.
    let room_q = |q: &str| {
        format!(
            "/api/memory/daos/garden/search?{}",
            query(&[("q", q), ("room", &general)])
        )
    };
    for q in ["chess club on Thursday", "clean-up of the riverbank"] {
        let (status, hits) = app.get_as(&room_q(q), Some("alice")).await;
        assert_eq!(status, 200, "{hits}");
        let found = documents_of(&hits);
        assert!(found.iter().all(|d| *d == in_room), "{q}: {hits}");
        assert!(found.contains(&in_room.as_str()), "{q}: {hits}");
    }
    let (_, hits) = search(&app, "alice", "garden", "chess club on Thursday").await;
    assert_eq!(documents_of(&hits)[0], at_large, "{hits}");

    // A room of another microDAO, or none, is refused.
    for room in [orchard.as_str(), "no-such-room"] {
        let (status, body) = post(json!({"title": "x", "body": "y", "room": room})).await;
        assert_eq!(
            (status, error_code(&body)),
            (422, "validation_failed"),
            "{body}"
        );
    }
    app.stop().await;
}
