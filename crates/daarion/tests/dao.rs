//! Governance end to end, on both backends: a proposal drafted, opened,
//! voted on and closed by itself at its deadline, with its room told;
//! power read at the snapshot; delegation without cycles; concurrent
//! double votes; the deadline's edge; a hidden tally; the record checked
//! by a verifier written here (not the service's), which finds a tampered
//! vote; who may and who may not; bad input; passed actions carried out
//! once, agents brought in by their owners' proposals, changed and let go;
//! a community's spending limited by vote, within the city's limits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{collections::HashMap, time::Duration};

use common::{City, Kind, TestApp, error_code};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

on_every_backend!(
    a_proposal_is_opened_voted_and_closes_by_itself_at_its_deadline,
    power_is_read_at_the_snapshot_and_delegation_passes_it_on,
    a_voter_votes_once_and_never_after_the_deadline,
    a_hidden_tally_and_its_record_wait_for_the_close,
    a_tampered_vote_is_found_by_the_verifier,
    who_may_propose_vote_and_read,
    bad_input_is_refused_with_reasons,
    passed_actions_are_carried_out_once_as_the_community,
    an_execution_cut_off_mid_way_is_finished_once,
    agents_vote_only_where_their_community_lets_them,
    agents_are_brought_in_changed_and_let_go_by_vote,
    a_community_lowers_its_spending_and_never_raises_it,
);

/// The service token secret of test cities here (the tests sign tokens
/// as governance too).
const SECRET: &str = "q8J2m0ZxP4vT7nR1kW9yB3cL6hD5gF0aS2eU";

/// A city whose proposals may be open for a second, swept every 100 ms;
/// `makers` (public), founded by alice, with bob and carol as members.
async fn governed(kind: Kind) -> Option<(City, TestApp)> {
    governed_with(kind, |_| {}).await
}

async fn governed_with(
    kind: Kind,
    tune: impl FnOnce(&mut daarion_dao::Settings),
) -> Option<(City, TestApp)> {
    let mut city = City::new(kind).await?;
    city.settings.service_token_secret = Some(daarion_kernel::Secret::new(SECRET.to_owned()));
    city.settings
        .services
        .update(&daarion_dao::SPEC, |x: &mut daarion_dao::Settings| {
            x.min_voting_secs = 1;
            x.sweep_ms = 100;
            tune(x);
        })
        .unwrap();
    let app = city.spawn().await;
    common::community(&app, "alice", "makers", "public").await;
    for who in ["bob", "carol"] {
        let (status, body) = app
            .send("POST", "/api/microdao/daos/makers/join", who, None)
            .await;
        assert_eq!(status, 200, "{body}");
    }
    Some((city, app))
}

async fn propose(app: &TestApp, who: &str, body: Value) -> Value {
    let (status, p) = app
        .send("POST", "/api/dao/daos/makers/proposals", who, Some(body))
        .await;
    assert_eq!(status, 201, "{p}");
    assert_eq!(p["status"], "draft");
    p
}

async fn open(app: &TestApp, who: &str, id: &str) -> Value {
    let (status, p) = app
        .send("POST", &format!("/api/dao/proposals/{id}/open"), who, None)
        .await;
    assert_eq!(status, 200, "{p}");
    assert_eq!(p["status"], "active");
    p
}

async fn vote(app: &TestApp, who: &str, id: &str, ballot: Value) -> (u16, Value) {
    app.send(
        "POST",
        &format!("/api/dao/proposals/{id}/votes"),
        who,
        Some(json!({ "ballot": ballot })),
    )
    .await
}

async fn user(app: &TestApp, name: &str) -> String {
    format!("user:{}", app.user_id(name).await)
}

/// Waits until the proposal is no longer open, reading it (which closes
/// a due one).
async fn closed(app: &TestApp, who: &str, id: &str) -> Value {
    daarion_testkit::eventually("the close", Duration::from_secs(10), || async {
        let (_, p) = app
            .get_as(&format!("/api/dao/proposals/{id}"), Some(who))
            .await;
        (p["status"] != "active").then_some(p)
    })
    .await
}

/// RFC 8785's key order for the values the record holds, written here
/// apart from the service's own code.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let fields: Vec<String> = keys
                .into_iter()
                .map(|k| format!("{}:{}", Value::String(k.clone()), canonical(&map[k])))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

fn sha256(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Checks a record as anyone reading it could: the genesis from the
/// definition, each vote's hash from the one before, the head, and the
/// stored result recounted from the electorate and each voter's last
/// ballot. The first vote that does not hold, if any.
fn verify(record: &Value) -> Result<(), String> {
    let id = record["proposal"].as_str().unwrap();
    let genesis = sha256(&["daarion-dao/1\n", &canonical(&record["definition"])]);
    if genesis != record["genesis"] {
        return Err("genesis".into());
    }
    if record["definition"]["electorate"] != record["electorate"] {
        return Err("electorate".into());
    }
    let mut prev = genesis;
    let mut last: HashMap<String, Value> = HashMap::new();
    for (i, v) in record["votes"].as_array().unwrap().iter().enumerate() {
        let seq = v["seq"].as_i64().unwrap();
        if seq != i as i64 + 1 || v["prev"] != prev.as_str() {
            return Err(format!("vote {seq} out of place"));
        }
        let entry = json!({
            "proposal": id, "seq": seq, "voter": v["voter"],
            "ballot": v["ballot"], "cast_at": v["cast_at"],
        });
        let hash = sha256(&[&prev, "\n", &canonical(&entry)]);
        if hash != v["hash"] {
            return Err(format!("vote {seq} does not match its hash"));
        }
        last.insert(v["voter"].as_str().unwrap().to_owned(), v["ballot"].clone());
        prev = hash;
    }
    if prev != record["head"] {
        return Err("head".into());
    }
    if let Some(result) = record["result"].as_object() {
        let d = &record["definition"];
        let rules = daarion_dao::tally::Rules {
            method: serde_json::from_value(d["method"].clone()).unwrap(),
            options: d["options"].as_array().unwrap().len(),
            quorum: serde_json::from_value(d["quorum"].clone()).unwrap(),
            threshold: serde_json::from_value(d["threshold"].clone()).unwrap(),
        };
        let electorate: Vec<daarion_dao::tally::Elector> =
            serde_json::from_value(record["electorate"].clone()).unwrap();
        let ballots: Vec<(String, daarion_dao::domain::Ballot)> = last
            .into_iter()
            .map(|(voter, b)| (voter, serde_json::from_value(b).unwrap()))
            .collect();
        let recount = daarion_dao::tally::count(&rules, &electorate, &ballots);
        if serde_json::to_value(recount).unwrap() != Value::Object(result.clone()) {
            return Err("the result is not the recount".into());
        }
    }
    Ok(())
}

async fn record(app: &TestApp, who: &str, id: &str) -> (u16, Value) {
    app.get_as(&format!("/api/dao/proposals/{id}/record"), Some(who))
        .await
}

async fn room_says(app: &TestApp, who: &str, room: &str, text: &str) {
    daarion_testkit::eventually(text, Duration::from_secs(10), || async {
        let (_, page) = app
            .get_as(&format!("/api/messaging/rooms/{room}/messages"), Some(who))
            .await;
        page["items"]
            .as_array()?
            .iter()
            .any(|m| m["body"].as_str().is_some_and(|b| b.contains(text)))
            .then_some(())
    })
    .await;
}

async fn a_proposal_is_opened_voted_and_closes_by_itself_at_its_deadline(kind: Kind) {
    let Some((_city, app)) = governed(kind).await else {
        return;
    };
    let (_, rooms) = app
        .get_as("/api/messaging/daos/makers/rooms", Some("alice"))
        .await;
    let general = rooms["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["slug"] == "general")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let draft = propose(
        &app,
        "alice",
        json!({"title": "Buy a kettle", "body": "For the *workshop*.", "voting_secs": 60}),
    )
    .await;
    let id = draft["id"].as_str().unwrap();
    assert_eq!(draft["kind"], "signal");
    assert_eq!(draft["options"], json!(["for", "against", "abstain"]));
    assert_eq!(draft["quorum"], json!({"kind": "share", "value": 2000}));
    // A draft is its author's: others do not see it, nor open it.
    let (status, _) = app
        .get_as(&format!("/api/dao/proposals/{id}"), Some("bob"))
        .await;
    assert_eq!(status, 404);
    let (_, listed) = app
        .get_as("/api/dao/daos/makers/proposals", Some("bob"))
        .await;
    assert_eq!(listed["items"], json!([]));
    // Its author rewrites it: two seconds of voting, half must take part.
    let (status, revised) = app
        .send(
            "PATCH",
            &format!("/api/dao/proposals/{id}"),
            "alice",
            Some(json!({"title": "Buy a kettle", "voting_secs": 2,
                "quorum": {"kind": "share", "value": 5000}})),
        )
        .await;
    assert_eq!(status, 200, "{revised}");
    assert_eq!(revised["voting_secs"], 2);

    let opened = open(&app, "alice", id).await;
    assert!(opened["closes_at"].as_str().unwrap() > opened["opened_at"].as_str().unwrap());
    room_says(&app, "bob", &general, "Voting is open on **Buy a kettle**").await;

    let (status, receipt) = vote(&app, "bob", id, json!({"choice": 0})).await;
    assert_eq!(status, 201, "{receipt}");
    assert_eq!(receipt["seq"], 1);
    assert_eq!(receipt["power"], 1);
    let (status, _) = vote(&app, "carol", id, json!({"choice": 1})).await;
    assert_eq!(status, 201);
    let (status, _) = vote(&app, "alice", id, json!({"choice": 0})).await;
    assert_eq!(status, 201);
    // The live tally: two for, one against, everyone took part.
    let (status, live) = app
        .get_as(&format!("/api/dao/proposals/{id}/tally"), Some("carol"))
        .await;
    assert_eq!(status, 200, "{live}");
    assert_eq!(live["final"], false);
    assert_eq!(live["tally"]["scores"], json!([2000, 1000, 0]));
    assert_eq!(live["tally"]["turnout_power"], 3);
    assert_eq!(live["tally"]["outcome"], "passed");
    // Bob's receipt is his vote in the record.
    let (_, mine) = app
        .get_as(&format!("/api/dao/proposals/{id}/receipt"), Some("bob"))
        .await;
    assert_eq!(mine["hash"], receipt["hash"]);

    // Nobody reads the proposal: the sweep closes it, and its room hears.
    room_says(&app, "bob", &general, "has closed: **passed**").await;
    let p = closed(&app, "bob", id).await;
    assert_eq!(p["status"], "passed");
    assert_eq!(p["result"]["scores"], json!([2000, 1000, 0]));
    assert_eq!(p["execution"], Value::Null, "a signal executes nothing");
    let (status, rec) = record(&app, "carol", id).await;
    assert_eq!(status, 200, "{rec}");
    assert_eq!(rec["intact"], true);
    assert_eq!(rec["votes"].as_array().unwrap().len(), 3);
    assert_eq!(rec["electorate"].as_array().unwrap().len(), 3);
    verify(&rec).unwrap();
    let (status, _) = vote(&app, "carol", id, json!({"choice": 0})).await;
    assert_eq!(status, 409, "voting has closed");

    // A withdrawn proposal: its author, before anyone voted.
    let other = propose(
        &app,
        "bob",
        json!({"title": "Paint the door", "voting_secs": 60}),
    )
    .await;
    let other = other["id"].as_str().unwrap();
    open(&app, "bob", other).await;
    let (status, _) = app
        .send(
            "POST",
            &format!("/api/dao/proposals/{other}/cancel"),
            "alice",
            None,
        )
        .await;
    assert_eq!(status, 403, "only its author");
    let (status, cancelled) = app
        .send(
            "POST",
            &format!("/api/dao/proposals/{other}/cancel"),
            "bob",
            None,
        )
        .await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("cancelled"))
    );
    let third = propose(
        &app,
        "bob",
        json!({"title": "Paint it red", "voting_secs": 60}),
    )
    .await;
    let third = third["id"].as_str().unwrap();
    open(&app, "bob", third).await;
    vote(&app, "carol", third, json!({"choice": 1})).await;
    let (status, body) = app
        .send(
            "POST",
            &format!("/api/dao/proposals/{third}/cancel"),
            "bob",
            None,
        )
        .await;
    assert_eq!(status, 409, "someone voted: {body}");

    // Every method's ballot, counted live.
    let cases = [
        (
            "single",
            json!({"choice": 1}),
            json!({"choice": 1}),
            json!([0, 2000, 0]),
        ),
        (
            "approval",
            json!({"approve": [0, 1]}),
            json!({"approve": [1]}),
            json!([1000, 2000, 0]),
        ),
        (
            "ranked",
            json!({"rank": [0, 2]}),
            json!({"rank": [0]}),
            json!([2000, 0, 0]),
        ),
        (
            "weighted",
            json!({"spread": [1, 1, 2]}),
            json!({"spread": [0, 0, 1]}),
            json!([250, 250, 1500]),
        ),
        (
            "quadratic",
            json!({"spread": [1, 0, 3]}),
            json!({"spread": [0, 0, 1]}),
            json!([500, 0, 1866]),
        ),
    ];
    for (method, bob, carol, scores) in cases {
        let p = propose(
            &app,
            "alice",
            json!({"title": format!("Pick a colour ({method})"), "method": method,
                "options": ["red", "green", "blue"], "threshold": {"kind": "plurality"},
                "voting_secs": 60}),
        )
        .await;
        let id = p["id"].as_str().unwrap();
        open(&app, "alice", id).await;
        assert_eq!(vote(&app, "bob", id, bob).await.0, 201, "{method}");
        assert_eq!(vote(&app, "carol", id, carol).await.0, 201, "{method}");
        let (_, live) = app
            .get_as(&format!("/api/dao/proposals/{id}/tally"), Some("alice"))
            .await;
        assert_eq!(live["tally"]["scores"], scores, "{method}: {live}");
    }
}

async fn power_is_read_at_the_snapshot_and_delegation_passes_it_on(kind: Kind) {
    let Some((_city, app)) = governed(kind).await else {
        return;
    };
    let (bob, carol, dave) = (
        user(&app, "bob").await,
        user(&app, "carol").await,
        user(&app, "dave").await,
    );
    app.send("POST", "/api/microdao/daos/makers/join", "dave", None)
        .await;
    let minter = &app;
    let mint = |to: &str, amount: i64| {
        let body = json!({"to": to, "amount": amount});
        async move {
            let (status, m) = minter
                .send(
                    "POST",
                    "/api/microdao/daos/makers/treasury/mint",
                    "alice",
                    Some(body),
                )
                .await;
            assert_eq!(status, 201, "{m}");
        }
    };
    mint(&bob, 10).await;
    mint(&carol, 5).await;
    mint(&dave, 3).await;

    // Dave lends his power to carol; a delegation back to him from her
    // chain would be a cycle; a stranger cannot be a delegate.
    let delegation = "/api/dao/daos/makers/delegation";
    let (status, d) = app
        .send("PUT", delegation, "dave", Some(json!({"delegate": carol})))
        .await;
    assert_eq!(status, 200, "{d}");
    assert_eq!(d["delegate"], carol.as_str());
    let (_, theirs) = app.get_as(delegation, Some("carol")).await;
    assert_eq!(theirs["delegators"], json!([dave]));
    let (status, body) = app
        .send("PUT", delegation, "carol", Some(json!({"delegate": dave})))
        .await;
    assert_eq!(status, 409, "a cycle: {body}");
    let stranger = user(&app, "erin").await;
    let (status, _) = app
        .send(
            "PUT",
            delegation,
            "bob",
            Some(json!({"delegate": stranger})),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = app
        .send("PUT", delegation, "bob", Some(json!({"delegate": bob})))
        .await;
    assert_eq!(status, 422, "not oneself");

    let p = propose(
        &app,
        "alice",
        json!({"title": "Points decide", "power": {"kind": "treasury"},
            "quorum": {"kind": "none"}, "voting_secs": 1}),
    )
    .await;
    let id = p["id"].as_str().unwrap();
    open(&app, "alice", id).await;
    // Carol gets far more points after the snapshot: they do not count.
    mint(&carol, 100).await;
    let (_, receipt) = vote(&app, "carol", id, json!({"choice": 1})).await;
    assert_eq!(receipt["power"], 5);
    vote(&app, "bob", id, json!({"choice": 0})).await;
    let p = closed(&app, "alice", id).await;
    // Bob 10 for; carol 5 + dave's 3 against.
    assert_eq!(p["result"]["scores"], json!([10000, 8000, 0]), "{p}");
    assert_eq!(p["status"], "passed");

    // Dave votes himself next time: his power is his own again.
    let p = propose(
        &app,
        "alice",
        json!({"title": "Points decide again", "power": {"kind": "treasury"},
            "quorum": {"kind": "none"}, "voting_secs": 1}),
    )
    .await;
    let id = p["id"].as_str().unwrap();
    open(&app, "alice", id).await;
    vote(&app, "carol", id, json!({"choice": 1})).await;
    vote(&app, "dave", id, json!({"choice": 0})).await;
    let p = closed(&app, "alice", id).await;
    // Carol now holds 105 at this snapshot; dave's 3 are his.
    assert_eq!(p["result"]["scores"], json!([3000, 105000, 0]), "{p}");
    assert_eq!(p["status"], "rejected");

    let (status, gone) = app.send("DELETE", delegation, "dave", None).await;
    assert_eq!((status, gone["delegate"].clone()), (200, Value::Null));
    let (status, _) = app.send("DELETE", delegation, "dave", None).await;
    assert_eq!(status, 404);
}

async fn a_voter_votes_once_and_never_after_the_deadline(kind: Kind) {
    let Some((_city, app)) = governed(kind).await else {
        return;
    };
    let p = propose(
        &app,
        "alice",
        json!({"title": "Once each", "voting_secs": 60}),
    )
    .await;
    let id = p["id"].as_str().unwrap().to_owned();
    open(&app, "alice", &id).await;
    // Ten tries at once by one voter: one vote.
    let tries = (0..10).map(|i| {
        let (app, id) = (&app, id.clone());
        async move { vote(app, "bob", &id, json!({"choice": i % 3})).await.0 }
    });
    let statuses = futures::future::join_all(tries).await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 409),
        "{statuses:?}"
    );
    // Others at once: every vote a link, none lost.
    let others = ["alice", "carol"].map(|who| {
        let (app, id) = (&app, id.clone());
        async move { vote(app, who, &id, json!({"choice": 0})).await.0 }
    });
    assert_eq!(futures::future::join_all(others).await, [201, 201]);
    let (_, rec) = record(&app, "alice", &id).await;
    let seqs: Vec<i64> = rec["votes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [1, 2, 3]);
    verify(&rec).unwrap();

    // Where a vote may change, the last one counts.
    let p = propose(
        &app,
        "alice",
        json!({"title": "Changeable", "vote_change": true, "voting_secs": 1}),
    )
    .await;
    let id = p["id"].as_str().unwrap();
    let opened = open(&app, "alice", id).await;
    assert_eq!(vote(&app, "bob", id, json!({"choice": 1})).await.0, 201);
    assert_eq!(vote(&app, "bob", id, json!({"choice": 0})).await.0, 201);
    // The deadline is exclusive: from closes_at on, no vote is taken,
    // whether or not anything has closed the proposal yet.
    let closes_at = daarion_store::parse_time(opened["closes_at"].as_str().unwrap()).unwrap();
    let now = daarion_store::parse_time(&daarion_store::now()).unwrap();
    let wait = closes_at
        .signed_duration_since(now)
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(wait).await;
    let (status, body) = vote(&app, "carol", id, json!({"choice": 1})).await;
    assert_eq!(status, 409, "{body}");
    let p = closed(&app, "alice", id).await;
    assert_eq!(p["result"]["scores"], json!([1000, 0, 0]));
    assert_eq!(p["result"]["ballots"], 1);
    assert_eq!(p["votes"], 2);
}

async fn a_hidden_tally_and_its_record_wait_for_the_close(kind: Kind) {
    let Some((_city, app)) = governed(kind).await else {
        return;
    };
    let p = propose(
        &app,
        "alice",
        json!({"title": "Secret ballot", "hidden": true, "voting_secs": 2,
            "quorum": {"kind": "power", "value": 1}}),
    )
    .await;
    let id = p["id"].as_str().unwrap();
    open(&app, "alice", id).await;
    vote(&app, "bob", id, json!({"choice": 1})).await;
    let (status, live) = app
        .get_as(&format!("/api/dao/proposals/{id}/tally"), Some("alice"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        (live["tally"].clone(), live["votes"].clone()),
        (Value::Null, json!(1))
    );
    let (status, _) = record(&app, "alice", id).await;
    assert_eq!(status, 409);
    let p = closed(&app, "alice", id).await;
    // One took part (the power needed), against.
    assert_eq!(p["status"], "rejected", "{p}");
    assert_eq!(p["result"]["scores"], json!([0, 1000, 0]));
    let (status, rec) = record(&app, "carol", id).await;
    assert_eq!(status, 200);
    verify(&rec).unwrap();
}

async fn a_tampered_vote_is_found_by_the_verifier(kind: Kind) {
    let Some((city, app)) = governed(kind).await else {
        return;
    };
    let p = propose(
        &app,
        "alice",
        json!({"title": "Honest count", "voting_secs": 1}),
    )
    .await;
    let id = p["id"].as_str().unwrap();
    open(&app, "alice", id).await;
    for (who, choice) in [("alice", 0), ("bob", 1), ("carol", 1)] {
        assert_eq!(vote(&app, who, id, json!({"choice": choice})).await.0, 201);
    }
    let p = closed(&app, "alice", id).await;
    assert_eq!(p["status"], "rejected");
    let (_, before) = record(&app, "bob", id).await;
    verify(&before).unwrap();

    // Write access to the database is not enough to change a vote...
    let db = daarion_store::Db::connect(&city.settings.database())
        .await
        .unwrap();
    let turn = "UPDATE dao_votes SET ballot = '{\"choice\":0}' WHERE proposal = $1 AND seq = 3";
    let refused = daarion_store::sql::query(turn)
        .bind(id)
        .execute(db.pool())
        .await;
    assert!(refused.is_err(), "votes are append-only");
    let removed = daarion_store::sql::query("DELETE FROM dao_votes WHERE proposal = $1")
        .bind(id)
        .execute(db.pool())
        .await;
    assert!(removed.is_err(), "votes are append-only");
    // ...but someone with the schema's keys drops the guard and turns
    // carol's vote around.
    let unguard = match db.backend() {
        daarion_store::Backend::Sqlite => "DROP TRIGGER dao_votes_no_update",
        daarion_store::Backend::Postgres => "DROP TRIGGER dao_votes_append_only ON dao_votes",
    };
    daarion_store::sql::query(unguard)
        .execute(db.pool())
        .await
        .unwrap();
    daarion_store::sql::query(turn)
        .bind(id)
        .execute(db.pool())
        .await
        .unwrap();
    db.close().await;
    let (_, after) = record(&app, "bob", id).await;
    assert_eq!(after["intact"], false);
    assert_eq!(verify(&after), Err("vote 3 does not match its hash".into()));
}

async fn who_may_propose_vote_and_read(kind: Kind) {
    let Some((_city, app)) = governed(kind).await else {
        return;
    };
    common::community(&app, "alice", "inner", "private").await;
    // A citizen outside reads a public microDAO's proposals, but neither
    // proposes nor votes.
    let p = propose(
        &app,
        "alice",
        json!({"title": "Open door", "voting_secs": 60}),
    )
    .await;
    let id = p["id"].as_str().unwrap();
    open(&app, "alice", id).await;
    let (status, _) = app
        .get_as(&format!("/api/dao/proposals/{id}"), Some("dave"))
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .send(
            "POST",
            "/api/dao/daos/makers/proposals",
            "dave",
            Some(json!({"title": "Let me in"})),
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(vote(&app, "dave", id, json!({"choice": 0})).await.0, 403);
    // A member who joins after the snapshot does not vote on it.
    app.send("POST", "/api/microdao/daos/makers/join", "dave", None)
        .await;
    let (status, body) = vote(&app, "dave", id, json!({"choice": 0})).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("when it opened")
    );
    // A private microDAO's proposals are its members' alone.
    let secret = app
        .send(
            "POST",
            "/api/dao/daos/inner/proposals",
            "alice",
            Some(json!({"title": "Inner matter", "voting_secs": 60})),
        )
        .await
        .1;
    let secret = secret["id"].as_str().unwrap();
    open(&app, "alice", secret).await;
    for path in [
        format!("/api/dao/proposals/{secret}"),
        format!("/api/dao/proposals/{secret}/tally"),
        format!("/api/dao/proposals/{secret}/record"),
        "/api/dao/daos/inner/proposals".to_owned(),
    ] {
        assert_eq!(app.get_as(&path, Some("bob")).await.0, 403, "{path}");
    }
    assert_eq!(
        app.get_as(&format!("/api/dao/proposals/{secret}"), None)
            .await
            .0,
        401
    );
    // Governance settings are the owners'.
    let (status, _) = app
        .send(
            "PUT",
            "/api/dao/daos/makers/settings",
            "bob",
            Some(json!({"agents_vote": true})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, s) = app
        .send(
            "PUT",
            "/api/dao/daos/makers/settings",
            "alice",
            Some(json!({"agents_vote": true})),
        )
        .await;
    assert_eq!((status, s["agents_vote"].clone()), (200, json!(true)));
}

async fn bad_input_is_refused_with_reasons(kind: Kind) {
    let Some((_city, app)) = governed(kind).await else {
        return;
    };
    let bad = [
        json!({"title": ""}),
        json!({"title": "x", "method": "single", "options": ["only one"]}),
        json!({"title": "x", "method": "single", "options": ["a", "A"]}),
        json!({"title": "x", "method": "approval", "options": ["a", "b"],
            "quorum": {"kind": "veto", "value": 1000}}),
        json!({"title": "x", "threshold": {"kind": "supermajority", "value": 5000}}),
        json!({"title": "x", "quorum": {"kind": "share", "value": 10001}}),
        json!({"title": "x", "voting_secs": 0}),
        json!({"title": "x", "action": {"type": "transfer", "to": "user:x", "amount": -1}}),
        json!({"title": "x", "method": "ranked", "options": ["a", "b"],
            "action": {"type": "remove_member", "principal": "user:x"}}),
    ];
    for body in bad {
        let (status, err) = app
            .send(
                "POST",
                "/api/dao/daos/makers/proposals",
                "alice",
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, 422, "{body} → {err}");
        assert_eq!(error_code(&err), "validation_failed", "{err}");
    }
    for body in [
        json!({"title": "x", "method": "plurality"}),
        json!({"title": "x", "sneaky": true}),
        json!({"title": "x", "action": {"type": "launch_rocket"}}),
    ] {
        let (status, _) = app
            .send(
                "POST",
                "/api/dao/daos/makers/proposals",
                "alice",
                Some(body.clone()),
            )
            .await;
        assert!(status == 400 || status == 422, "{body}: {status}");
    }
    let (status, _) = app
        .send(
            "POST",
            "/api/dao/daos/nowhere/proposals",
            "alice",
            Some(json!({"title": "x"})),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        app.get_as("/api/dao/proposals/prp_missing", Some("alice"))
            .await
            .0,
        404
    );

    let p = propose(
        &app,
        "alice",
        json!({"title": "Colours", "method": "ranked", "options": ["red", "green"], "voting_secs": 60}),
    )
    .await;
    let id = p["id"].as_str().unwrap();
    // Not open yet: no votes, no tally.
    assert_eq!(
        vote(&app, "bob", id, json!({"rank": [0]})).await.0,
        404,
        "a draft is hidden"
    );
    assert_eq!(vote(&app, "alice", id, json!({"rank": [0]})).await.0, 409);
    open(&app, "alice", id).await;
    assert_eq!(
        app.send(
            "POST",
            &format!("/api/dao/proposals/{id}/open"),
            "alice",
            None
        )
        .await
        .0,
        409,
        "opened twice"
    );
    for ballot in [
        json!({"choice": 0}),
        json!({"rank": []}),
        json!({"rank": [0, 0]}),
        json!({"rank": [2]}),
    ] {
        let (status, err) = vote(&app, "bob", id, ballot.clone()).await;
        assert_eq!(status, 422, "{ballot}: {err}");
    }
    let (status, _) = app
        .get_as(
            &format!("/api/dao/proposals/{id}/record?limit=0"),
            Some("bob"),
        )
        .await;
    assert_eq!(status, 422);
    // An Idempotency-Key makes a retried create the same proposal.
    let body = json!({"title": "Once", "voting_secs": 60});
    let mut ids = Vec::new();
    for _ in 0..2 {
        let cookie = app.cookie("alice").await;
        let response = app
            .client
            .post(app.url("/api/dao/daos/makers/proposals"))
            .header("cookie", cookie)
            .header("idempotency-key", "prop-1")
            .json(&body)
            .send()
            .await
            .unwrap();
        let (status, p) = common::decode(response).await;
        assert!(status == 201 || status == 200, "{p}");
        ids.push(p["id"].clone());
    }
    assert_eq!(ids[0], ids[1]);
}

/// Proposes `action`, opens it for a second with no quorum, and has bob
/// and carol vote for it; the proposal once carried out (or failed).
async fn decided(app: &TestApp, action: Value) -> Value {
    decided_by(app, "alice", action).await
}

async fn decided_by(app: &TestApp, author: &str, action: Value) -> Value {
    let p = propose(
        app,
        author,
        json!({"title": "Act", "action": action, "quorum": {"kind": "none"}, "voting_secs": 1}),
    )
    .await;
    assert_eq!(p["kind"], "action");
    let id = p["id"].as_str().unwrap().to_owned();
    open(app, author, &id).await;
    for who in ["bob", "carol"] {
        assert_eq!(vote(app, who, &id, json!({"choice": 0})).await.0, 201);
    }
    settled(app, &id).await
}

/// A proposal that passed and whose action the owning service refused.
fn refused(p: &Value, said: &str) {
    assert_eq!(
        (p["status"].as_str(), p["execution"].as_str()),
        (Some("passed"), Some("failed")),
        "{p}"
    );
    assert!(p["execution_error"].as_str().unwrap().contains(said), "{p}");
}

async fn settled(app: &TestApp, id: &str) -> Value {
    daarion_testkit::eventually("the execution", Duration::from_secs(15), || async {
        let (_, p) = app
            .get_as(&format!("/api/dao/proposals/{id}"), Some("alice"))
            .await;
        (p["execution"] == "done" || p["execution"] == "failed").then_some(p)
    })
    .await
}

async fn balance(app: &TestApp, account: &str) -> i64 {
    let (_, t) = app
        .get_as("/api/microdao/daos/makers/treasury", Some("alice"))
        .await;
    t["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["account"] == account)
        .map_or(0, |b| b["balance"].as_i64().unwrap())
}

async fn mint(app: &TestApp, to: &str, amount: i64) {
    let (status, m) = app
        .send(
            "POST",
            "/api/microdao/daos/makers/treasury/mint",
            "alice",
            Some(json!({"to": to, "amount": amount})),
        )
        .await;
    assert_eq!(status, 201, "{m}");
}

async fn passed_actions_are_carried_out_once_as_the_community(kind: Kind) {
    let Some((_city, app)) = governed(kind).await else {
        return;
    };
    let erin = user(&app, "erin").await;
    let bob = user(&app, "bob").await;

    // The community admits erin: the microDAO service did it for the
    // microDAO's governance, and audited it so.
    let p = decided(
        &app,
        json!({"type": "add_member", "principal": erin, "role": "member"}),
    )
    .await;
    assert_eq!(
        (p["status"].as_str(), p["execution"].as_str()),
        (Some("executed"), Some("done")),
        "{p}"
    );
    assert!(p["executed_at"].is_string());
    let (_, members) = app
        .get_as("/api/microdao/daos/makers/members", Some("erin"))
        .await;
    let erin_in = members["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["principal"] == erin.as_str());
    assert_eq!(erin_in.unwrap()["role"], "member");
    daarion_testkit::eventually(
        "the audit of governance's change",
        Duration::from_secs(10),
        || async {
            let (_, page) = app
                .send("GET", "/api/pdp/audit?limit=100", "root", None)
                .await;
            page["items"]
                .as_array()?
                .iter()
                .any(|e| {
                    e["record"]["principal"] == "service:dao:makers"
                        && e["record"]["allowed"] == true
                })
                .then_some(())
        },
    )
    .await;

    // Points from the treasury.
    mint(&app, "dao:makers", 100).await;
    let p = decided(
        &app,
        json!({"type": "transfer", "to": bob, "amount": 30, "memo": "tools"}),
    )
    .await;
    assert_eq!(p["execution"], "done", "{p}");
    assert_eq!(balance(&app, &bob).await, 30);
    assert_eq!(balance(&app, "dao:makers").await, 70);

    // More than the treasury holds: refused by the owning service,
    // recorded, tried again by an admin once there is enough.
    let p = decided(&app, json!({"type": "transfer", "to": bob, "amount": 500})).await;
    refused(&p, "microdao refused");
    let id = p["id"].as_str().unwrap();
    let retry = format!("/api/dao/proposals/{id}/execute");
    assert_eq!(
        app.send("POST", &retry, "bob", None).await.0,
        403,
        "members do not retry"
    );
    mint(&app, "dao:makers", 1000).await;
    let (status, again) = app.send("POST", &retry, "alice", None).await;
    assert_eq!(
        (status, again["execution"].as_str()),
        (202, Some("pending")),
        "{again}"
    );
    let p = settled(&app, id).await;
    assert_eq!(p["execution"], "done", "{p}");
    assert_eq!(balance(&app, &bob).await, 530);
    assert_eq!(
        app.send("POST", &retry, "alice", None).await.0,
        409,
        "done is done"
    );

    // The microDAO's settings, and a member taken out.
    let p = decided(
        &app,
        json!({"type": "change_settings", "name": "Kyiv Makers"}),
    )
    .await;
    assert_eq!(p["execution"], "done", "{p}");
    let (_, dao) = app.get_as("/api/microdao/daos/makers", Some("bob")).await;
    assert_eq!(dao["name"], "Kyiv Makers");
    let p = decided(&app, json!({"type": "remove_member", "principal": erin})).await;
    assert_eq!(p["execution"], "done", "{p}");
    let (_, members) = app
        .get_as("/api/microdao/daos/makers/members", Some("alice"))
        .await;
    assert!(
        !members["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["principal"] == erin.as_str())
    );

    // Governance's token is good for its own microDAO only.
    common::community(&app, "dave", "other", "public").await;
    let token = daarion_access::token::ServiceTokens::new(SECRET.as_bytes())
        .unwrap()
        .issue_for_dao("dao", "makers", "microdao", Duration::from_secs(60))
        .unwrap();
    let (status, _) = app
        .send_with(
            "PATCH",
            "/api/microdao/daos/other",
            ("authorization", format!("Bearer {token}")),
            Some(json!({"name": "Taken"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .send_with(
            "PATCH",
            "/api/microdao/daos/makers",
            ("authorization", format!("Bearer {token}")),
            Some(json!({"description": "Governed"})),
        )
        .await;
    assert_eq!(status, 200);
}

/// A TCP proxy to `upstream` that forwards the first connection's request
/// and hangs up without its answer (an executor that never learns whether
/// its call worked, as if it had crashed right after it); later
/// connections pass both ways.
async fn losing_first_answer(
    upstream: std::sync::Arc<std::sync::OnceLock<std::net::SocketAddr>>,
) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut first = true;
        while let Ok((mut client, _)) = listener.accept().await {
            let to = *upstream.get().unwrap();
            let mut server = tokio::net::TcpStream::connect(to).await.unwrap();
            if std::mem::take(&mut first) {
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    let n = client.read(&mut buf).await.unwrap();
                    server.write_all(&buf[..n]).await.unwrap();
                    // The answer is read, and dropped with both sockets.
                    let _ = server.read(&mut buf).await;
                });
            } else {
                tokio::spawn(async move {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
            }
        }
    });
    addr
}

async fn an_execution_cut_off_mid_way_is_finished_once(kind: Kind) {
    let upstream = std::sync::Arc::new(std::sync::OnceLock::new());
    let proxy = losing_first_answer(upstream.clone()).await;
    let Some((_city, app)) = governed_with(kind, |x| {
        x.city_url = format!("http://{proxy}");
        x.execution_lease_secs = 1;
    })
    .await
    else {
        return;
    };
    upstream.set(app.addr).unwrap();
    let bob = user(&app, "bob").await;
    mint(&app, "dao:makers", 100).await;
    let p = decided(&app, json!({"type": "transfer", "to": bob, "amount": 40})).await;
    // The first try moved the points but never heard so; the second, once
    // the first's hold lapsed, found them moved (the same Idempotency-Key).
    assert_eq!(p["execution"], "done", "{p}");
    assert_eq!(p["execution_attempts"], 2, "{p}");
    assert_eq!(balance(&app, &bob).await, 40);
    assert_eq!(balance(&app, "dao:makers").await, 60);
    let (_, moves) = app
        .get_as(
            "/api/microdao/daos/makers/treasury/movements",
            Some("alice"),
        )
        .await;
    let transfers = moves["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "transfer")
        .count();
    assert_eq!(transfers, 1);
}

async fn agents_vote_only_where_their_community_lets_them(kind: Kind) {
    let Some((_city, app)) = governed(kind).await else {
        return;
    };
    let key = app.api_key_for_agent("alice", "scribe").await;
    let (status, body) = app
        .send(
            "POST",
            "/api/microdao/daos/makers/agents",
            "alice",
            Some(json!({"agent": "scribe"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let as_scribe = ("authorization", format!("Bearer {key}"));
    let vote_as_scribe = |id: String| {
        let (app, as_scribe) = (&app, as_scribe.clone());
        async move {
            app.send_with(
                "POST",
                &format!("/api/dao/proposals/{id}/votes"),
                as_scribe,
                Some(json!({"ballot": {"choice": 0}})),
            )
            .await
        }
    };
    let first = propose(
        &app,
        "alice",
        json!({"title": "People only", "voting_secs": 60}),
    )
    .await;
    let first = first["id"].as_str().unwrap().to_owned();
    let opened = open(&app, "alice", &first).await;
    assert_eq!(opened["status"], "active");
    let (status, _) = vote_as_scribe(first.clone()).await;
    assert_eq!(status, 403, "agents do not vote here (yet)");

    // Its owners let agents take part: proposals opened from now on count
    // them in their electorate.
    let (status, _) = app
        .send(
            "PUT",
            "/api/dao/daos/makers/settings",
            "alice",
            Some(json!({"agents_vote": true})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = vote_as_scribe(first).await;
    assert_eq!(status, 403, "not in the electorate it opened with: {body}");
    let second = propose(
        &app,
        "alice",
        json!({"title": "Everyone", "voting_secs": 60}),
    )
    .await;
    let second = second["id"].as_str().unwrap().to_owned();
    open(&app, "alice", &second).await;
    let (status, receipt) = vote_as_scribe(second.clone()).await;
    assert_eq!(status, 201, "{receipt}");
    assert_eq!(receipt["voter"], "agent:scribe");
    let (_, rec) = record(&app, "alice", &second).await;
    let electorate: Vec<&str> = rec["electorate"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["principal"].as_str().unwrap())
        .collect();
    assert!(electorate.contains(&"agent:scribe"), "{electorate:?}");
}

async fn new_agent(app: &TestApp, owner: &str, slug: &str, dao: Option<&str>) {
    let (status, body) = app
        .send(
            "POST",
            "/api/agents/agents",
            owner,
            Some(json!({"slug": slug, "name": slug, "prompt": "Help.", "dao": dao})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

async fn member_role(app: &TestApp, principal: &str) -> Option<String> {
    let (_, members) = app
        .get_as("/api/microdao/daos/makers/members", Some("alice"))
        .await;
    members["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["principal"] == principal)
        .map(|m| m["role"].as_str().unwrap().to_owned())
}

async fn agents_are_brought_in_changed_and_let_go_by_vote(kind: Kind) {
    let Some((_city, app)) = governed(kind).await else {
        return;
    };
    new_agent(&app, "bob", "helper", None).await;
    new_agent(&app, "alice", "clerk", Some("makers")).await;

    // Only its owner proposes bringing an agent in.
    let attach =
        json!({"title": "Bring helper", "action": {"type": "attach_agent", "agent": "helper"}});
    let (status, body) = app
        .send(
            "POST",
            "/api/dao/daos/makers/proposals",
            "alice",
            Some(attach.clone()),
        )
        .await;
    assert_eq!((status, error_code(&body)), (403, "forbidden"), "{body}");
    let nobody = json!({"title": "Bring", "action": {"type": "attach_agent", "agent": "nobody"}});
    let (status, body) = app
        .send(
            "POST",
            "/api/dao/daos/makers/proposals",
            "bob",
            Some(nobody),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let p = decided_by(
        &app,
        "bob",
        json!({"type": "attach_agent", "agent": "helper"}),
    )
    .await;
    assert_eq!(p["execution"], "done", "{p}");
    assert_eq!(
        member_role(&app, "agent:helper").await.as_deref(),
        Some("agent")
    );

    // The community's own agent answers to its vote: a new prompt (the
    // control plane's next version) and a pause.
    let p = decided(
        &app,
        json!({"type": "change_agent", "agent": "clerk", "prompt": "Answer in Ukrainian.", "status": "paused"}),
    )
    .await;
    assert_eq!(p["execution"], "done", "{p}");
    let (_, clerk) = app.get_as("/api/agents/agents/clerk", Some("alice")).await;
    assert_eq!(
        (clerk["prompt"].as_str(), clerk["status"].as_str()),
        (Some("Answer in Ukrainian."), Some("paused")),
        "{clerk}"
    );
    assert_eq!(clerk["prompt_version"], 2, "{clerk}");

    // An agent lent to the community is still its owner's to change.
    let p = decided(
        &app,
        json!({"type": "change_agent", "agent": "helper", "model": "gpt-4o"}),
    )
    .await;
    refused(&p, "agents refused (403");
    let (_, helper) = app.get_as("/api/agents/agents/helper", Some("bob")).await;
    assert_eq!(helper["model"], "default");

    let p = decided(&app, json!({"type": "detach_agent", "agent": "helper"})).await;
    assert_eq!(p["execution"], "done", "{p}");
    assert_eq!(member_role(&app, "agent:helper").await, None);
}

async fn a_community_lowers_its_spending_and_never_raises_it(kind: Kind) {
    let Some((_city, app)) = governed(kind).await else {
        return;
    };
    // The city gives makers 50.00 a month and 100 requests a minute.
    let (status, body) = app
        .send(
            "PUT",
            "/api/control/quotas/dao:makers",
            "root",
            Some(json!({"budget_cents_per_month": 5000, "requests_per_minute": 100})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app
        .send(
            "PUT",
            "/api/control/quotas/dao:makers",
            "alice",
            Some(json!({"budget_cents_per_month": 9000})),
        )
        .await;
    assert_eq!(status, 403, "its owner does not set the city's limits");

    let p = decided(
        &app,
        json!({"type": "limit_spending", "budget_cents_per_month": 2000}),
    )
    .await;
    assert_eq!(p["execution"], "done", "{p}");
    let (_, quota) = app
        .get_as("/api/control/quotas/dao:makers", Some("alice"))
        .await;
    assert_eq!(
        (
            &quota["value"]["budget_cents_per_month"],
            &quota["value"]["requests_per_minute"]
        ),
        (&json!(2000), &json!(100)),
        "lowered, the rest kept: {quota}"
    );
    assert_eq!(quota["author"], "service:dao:makers");
    let (_, status) = app
        .get_as("/api/usage/subjects/dao:makers/quota", Some("alice"))
        .await;
    assert_eq!(status["budget_micros_per_month"], 20_000_000, "{status}");

    // Back up to 30.00: above what it has now, so refused and recorded.
    let p = decided(
        &app,
        json!({"type": "limit_spending", "budget_cents_per_month": 3000}),
    )
    .await;
    refused(&p, "above the 2000");
    let (status, body) = app
        .send(
            "POST",
            "/api/dao/daos/makers/proposals",
            "alice",
            Some(json!({"title": "Nothing", "action": {"type": "limit_spending"}})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
}
