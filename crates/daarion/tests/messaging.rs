//! Messaging end to end, on both backends: a microDAO's `general` room
//! with topics, edits, reactions, deletes and unread counts; rooms bound
//! to roles; direct and group conversations that outsiders (a city admin
//! included) never read; history both ways; search within what one may
//! read; bad input and limits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{City, Kind, TestApp, Ws, community, error_code, next_json, next_of, send_text};
use serde_json::{Value, json};

on_every_backend!(
    a_community_talks_in_its_general_room,
    rooms_bound_to_roles_keep_lower_roles_out,
    conversations_are_for_those_in_them,
    history_pages_both_ways_and_search_sees_only_what_one_may_read,
    bad_input_and_limits_are_refused_and_nothing_is_half_written,
    one_socket_follows_rooms_in_order_and_resumes,
    a_removed_member_stops_receiving_at_once,
    too_far_behind_is_told_to_reload,
    a_room_tells_its_reader_whether_they_manage_it,
    posts_arriving_together_each_get_their_own_answer,
);

/// Posts are written in batches (group commit): a burst into two rooms,
/// with a retried key, a reply to nothing and a post into an archived
/// room among them, answers each post as if it came alone, and each room
/// numbers exactly the messages it accepted, in a row.
async fn posts_arriving_together_each_get_their_own_answer(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let mut rooms = Vec::new();
    for slug in ["north", "south", "shut"] {
        let (status, room) = app
            .send(
                "POST",
                "/api/messaging/rooms",
                "root",
                Some(json!({"slug": slug, "title": slug})),
            )
            .await;
        assert_eq!(status, 201, "{room}");
        rooms.push(room["id"].as_str().unwrap().to_owned());
    }
    let shut = format!("/api/messaging/rooms/{}", rooms[2]);
    let (status, _) = app
        .send("POST", &format!("{shut}/archive"), "root", None)
        .await;
    assert_eq!(status, 204);
    let mut cookies = Vec::new();
    for user in ["alice", "bob", "carol"] {
        cookies.push(app.cookie(user).await);
    }
    let client = reqwest::Client::new();
    let send = |room: &str, cookie: &str, key: Option<&str>, body: Value| {
        let mut request = client
            .post(app.url(&format!("/api/messaging/rooms/{room}/messages")))
            .header("cookie", cookie)
            .json(&body);
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        async move { common::decode(request.send().await.unwrap()).await }
    };
    let mut burst = Vec::new();
    for n in 0..8 {
        for (who, cookie) in cookies.iter().enumerate() {
            let room = &rooms[(n + who) % 2];
            burst.push((
                201,
                send(room, cookie, None, json!({"body": format!("m{n}-{who}")})),
            ));
        }
    }
    for _ in 0..2 {
        let twice = send(&rooms[0], &cookies[0], Some("k1"), json!({"body": "twice"}));
        burst.push((0, twice));
    }
    let nowhere = json!({"body": "to nothing", "reply_to": "msg_00000000000000000000000000000000"});
    burst.push((422, send(&rooms[1], &cookies[1], None, nowhere)));
    burst.push((
        409,
        send(&rooms[2], &cookies[2], None, json!({"body": "late"})),
    ));
    let (expected, requests): (Vec<u16>, Vec<_>) = burst.into_iter().unzip();
    let answers = futures::future::join_all(requests).await;
    let mut accepted: Vec<Vec<(i64, String)>> = vec![Vec::new(), Vec::new()];
    let mut retried = Vec::new();
    for (expected, (status, answer)) in expected.into_iter().zip(answers) {
        if expected == 0 {
            retried.push((status, answer["id"].clone()));
        } else {
            assert_eq!(status, expected, "{answer}");
        }
        if status == 201 {
            let room = rooms.iter().position(|r| answer["room"] == **r).unwrap();
            let seq = answer["seq"].as_i64().unwrap();
            accepted[room].push((seq, answer["body"].as_str().unwrap().to_owned()));
        }
    }
    retried.sort_by_key(|(status, _)| *status);
    assert_eq!(
        (retried[0].0, retried[1].0),
        (200, 201),
        "one post, one replay"
    );
    assert_eq!(retried[0].1, retried[1].1);
    for (room, mut answered) in rooms.iter().zip(accepted) {
        answered.sort();
        let count = answered.len() as i64;
        let seqs: Vec<i64> = answered.iter().map(|(seq, _)| *seq).collect();
        assert_eq!(seqs, (1..=count).collect::<Vec<_>>(), "no gaps, no repeats");
        let (_, page) = app
            .get_as(
                &format!("/api/messaging/rooms/{room}/messages?after_seq=0&limit=100"),
                Some("alice"),
            )
            .await;
        let stored: Vec<(i64, String)> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                (
                    m["seq"].as_i64().unwrap(),
                    m["body"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(stored, answered, "what was answered is what was stored");
    }
    let (_, state) = app.get_as(&shut, Some("alice")).await;
    assert_eq!(state["last_seq"], 0);
    let metrics = app.client.get(app.url("/metrics")).send().await.unwrap();
    let metrics = metrics.text().await.unwrap();
    let figure = |name: &str| -> f64 {
        let line = metrics.lines().find(|l| l.starts_with(name)).unwrap();
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let (posts, batches) = (
        figure("messaging_post_batch_size_sum"),
        figure("messaging_post_batch_size_count"),
    );
    assert!(posts > batches, "{posts} posts in {batches} batches");
    app.stop().await;
}

/// `may_manage` on a room's answer: what the web UI offers settings and
/// archiving on; asking writes no audit row.
async fn a_room_tells_its_reader_whether_they_manage_it(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let general = community(&app, "alice", "makers", "public").await;
    let (status, _) = app
        .send("POST", "/api/microdao/daos/makers/join", "bob", None)
        .await;
    assert_eq!(status, 200);
    let path = format!("/api/messaging/rooms/{general}");
    let (_, owner) = app.get_as(&path, Some("alice")).await;
    let (_, member) = app.get_as(&path, Some("bob")).await;
    assert_eq!(
        (owner["may_manage"].clone(), member["may_manage"].clone()),
        (json!(true), json!(false))
    );
    let (_, listed) = app
        .get_as("/api/messaging/rooms?kind=public", Some("bob"))
        .await;
    let square = listed["items"][0]["id"].as_str().unwrap().to_owned();
    let square = format!("/api/messaging/rooms/{square}");
    let (_, citizen) = app.get_as(&square, Some("bob")).await;
    let (_, admin) = app.get_as(&square, Some("root")).await;
    assert_eq!(
        (citizen["may_manage"].clone(), admin["may_manage"].clone()),
        (json!(false), json!(true))
    );
    let (status, body) = app
        .send("PATCH", &path, "bob", Some(json!({ "slow_mode_secs": 5 })))
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (403, "forbidden"),
        "and the answer is the truth"
    );
    let (status, _) = app
        .send(
            "PATCH",
            &path,
            "alice",
            Some(json!({ "slow_mode_secs": 5 })),
        )
        .await;
    assert_eq!(status, 200);
    app.stop().await;
}

async fn post(app: &TestApp, room: &str, user: &str, body: Value) -> (u16, Value) {
    app.send(
        "POST",
        &format!("/api/messaging/rooms/{room}/messages"),
        user,
        Some(body),
    )
    .await
}

fn bodies(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["body"].as_str().unwrap().to_owned())
        .collect()
}

async fn a_community_talks_in_its_general_room(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let general = community(&app, "alice", "makers", "public").await;
    let room = format!("/api/messaging/rooms/{general}");

    // Carol is not a member: she neither reads nor posts.
    let (status, _) = app.get_as(&format!("{room}/messages"), Some("carol")).await;
    assert_eq!(status, 403);
    let (status, _) = post(&app, &general, "carol", json!({"body": "hi"})).await;
    assert_eq!(status, 403);

    let (status, _) = app
        .send("POST", "/api/microdao/daos/makers/join", "bob", None)
        .await;
    assert_eq!(status, 200);
    let (status, first) = post(
        &app,
        &general,
        "bob",
        json!({"body": "**Plan**: ship it <script>alert(1)</script> @alice @agent:helper", "topic": "release"}),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["seq"], 1);
    assert_eq!(first["topic"], "release");
    assert_eq!(first["mentions"], json!(["alice", "agent:helper"]));
    let html = first["html"].as_str().unwrap();
    assert!(html.contains("<strong>Plan</strong>"), "{html}");
    assert!(!html.contains("<script"), "{html}");
    let first_id = first["id"].as_str().unwrap().to_owned();

    let (status, reply) = post(
        &app,
        &general,
        "alice",
        json!({"body": "agreed", "topic": "release", "reply_to": first_id}),
    )
    .await;
    assert_eq!(status, 201, "{reply}");
    let (_, other) = post(
        &app,
        &general,
        "alice",
        json!({"body": "lunch?", "topic": "food"}),
    )
    .await;
    let reply_id = reply["id"].as_str().unwrap().to_owned();

    // Only the author edits; the earlier body is kept.
    let message = format!("{room}/messages/{reply_id}");
    let (status, _) = app
        .send("PATCH", &message, "bob", Some(json!({"body": "mine now"})))
        .await;
    assert_eq!(status, 403);
    let (status, edited) = app
        .send(
            "PATCH",
            &message,
            "alice",
            Some(json!({"body": "agreed, _today_"})),
        )
        .await;
    assert_eq!(status, 200, "{edited}");
    assert!(edited["edited_at"].is_string());
    assert!(edited["html"].as_str().unwrap().contains("<em>today</em>"));
    let (_, edits) = app.get_as(&format!("{message}/edits"), Some("bob")).await;
    assert_eq!(bodies(&edits), ["agreed"]);

    // Reactions: once per person and emoji.
    let thumbs = format!("{room}/messages/{first_id}/reactions/%F0%9F%91%8D");
    let (status, reacted) = app.send("PUT", &thumbs, "alice", None).await;
    assert_eq!(status, 200, "{reacted}");
    assert_eq!(
        reacted["reactions"],
        json!([{"emoji": "👍", "count": 1, "mine": true}])
    );
    let (status, again) = app.send("PUT", &thumbs, "alice", None).await;
    assert_eq!((status, error_code(&again)), (409, "conflict"));
    let (_, seen) = app.send("PUT", &thumbs, "bob", None).await;
    assert_eq!(
        seen["reactions"],
        json!([{"emoji": "👍", "count": 2, "mine": true}])
    );
    let (status, _) = app.send("DELETE", &thumbs, "bob", None).await;
    assert_eq!(status, 200);
    let (status, _) = app.send("DELETE", &thumbs, "bob", None).await;
    assert_eq!(status, 404);

    // Unread: bob has not read alice's two messages, one per topic.
    let (_, topics) = app.get_as(&format!("{room}/topics"), Some("bob")).await;
    let unread: Vec<(String, i64)> = topics["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["topic"].as_str().unwrap().to_owned(),
                t["unread"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(unread, [("food".to_owned(), 1), ("release".to_owned(), 1)]);
    let (_, rooms) = app
        .get_as("/api/messaging/rooms?kind=dao", Some("bob"))
        .await;
    assert_eq!(rooms["items"][0]["unread"], 2, "{rooms}");
    // Alice was mentioned once, and has read nothing of bob's.
    let (_, rooms) = app
        .get_as("/api/messaging/rooms?kind=dao", Some("alice"))
        .await;
    assert_eq!(
        (
            rooms["items"][0]["unread"].clone(),
            rooms["items"][0]["unread_mentions"].clone()
        ),
        (json!(1), json!(1))
    );
    let (status, _) = app
        .send(
            "POST",
            &format!("{room}/read"),
            "bob",
            Some(json!({"seq": other["seq"], "topic": "food"})),
        )
        .await;
    assert_eq!(status, 204);
    let (_, rooms) = app
        .get_as("/api/messaging/rooms?kind=dao", Some("bob"))
        .await;
    assert_eq!(rooms["items"][0]["unread"], 1);
    let (_, room_now) = app.get_as(&room, Some("bob")).await;
    let (status, _) = app
        .send(
            "POST",
            &format!("{room}/read"),
            "bob",
            Some(json!({"seq": room_now["last_seq"]})),
        )
        .await;
    assert_eq!(status, 204);
    let (_, rooms) = app
        .get_as("/api/messaging/rooms?kind=dao", Some("bob"))
        .await;
    assert_eq!(rooms["items"][0]["unread"], 0);

    // Deleting leaves a tombstone; only the author or a manager deletes.
    let first_path = format!("{room}/messages/{first_id}");
    let (status, _) = app.send("DELETE", &message, "bob", None).await;
    assert_eq!(status, 403, "bob deletes alice's message");
    let (status, _) = app.send("DELETE", &first_path, "alice", None).await;
    assert_eq!(status, 204, "the owner moderates");
    let (_, page) = app.get_as(&format!("{room}/messages"), Some("bob")).await;
    let tombstone = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == first_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (tombstone["deleted"].clone(), tombstone["body"].clone()),
        (json!(true), json!(""))
    );
    assert_eq!(tombstone["reactions"], json!([]));
    let (status, _) = app
        .send("PATCH", &first_path, "bob", Some(json!({"body": "back"})))
        .await;
    assert_eq!(status, 409);
    app.stop().await;
}

async fn rooms_bound_to_roles_keep_lower_roles_out(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    community(&app, "alice", "guild", "public").await;
    app.send("POST", "/api/microdao/daos/guild/join", "bob", None)
        .await;
    // A member may not open rooms; an owner may, for admins only.
    let rooms = "/api/messaging/daos/guild/rooms";
    let (status, _) = app
        .send(
            "POST",
            rooms,
            "bob",
            Some(json!({"slug": "council", "title": "Council"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, council) = app
        .send(
            "POST",
            rooms,
            "alice",
            Some(json!({"slug": "council", "title": "Council", "audience": "admin"})),
        )
        .await;
    assert_eq!(status, 201, "{council}");
    let (status, news) = app
        .send(
            "POST",
            rooms,
            "alice",
            Some(json!({"slug": "news", "title": "News", "posters": "admin", "agents_allowed": false})),
        )
        .await;
    assert_eq!(status, 201, "{news}");
    let (status, dup) = app
        .send(
            "POST",
            rooms,
            "alice",
            Some(json!({"slug": "news", "title": "Again"})),
        )
        .await;
    assert_eq!((status, error_code(&dup)), (409, "conflict"));
    let council = council["id"].as_str().unwrap();
    let news = news["id"].as_str().unwrap();

    let (status, _) = app
        .get_as(
            &format!("/api/messaging/rooms/{council}/messages"),
            Some("bob"),
        )
        .await;
    assert_eq!(status, 403, "a member reads an admins' room");
    let (_, listed) = app.get_as(rooms, Some("bob")).await;
    let slugs: Vec<&str> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["slug"].as_str().unwrap())
        .collect();
    assert_eq!(
        slugs,
        ["general", "news"],
        "bob's list leaves out the council"
    );
    let (status, _) = post(&app, council, "alice", json!({"body": "owners talk"})).await;
    assert_eq!(status, 201);
    let (status, _) = app
        .get_as(
            &format!("/api/messaging/rooms/{news}/messages"),
            Some("bob"),
        )
        .await;
    assert_eq!(status, 200, "members read the news");
    let (status, _) = post(&app, news, "bob", json!({"body": "me too"})).await;
    assert_eq!(status, 403, "only admins post news");

    // Promoted to admin, bob reads the council at once.
    let bob = app.user_id("bob").await;
    let (status, _) = app
        .send(
            "PUT",
            &format!("/api/microdao/daos/guild/members/user:{bob}"),
            "alice",
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .get_as(
            &format!("/api/messaging/rooms/{council}/messages"),
            Some("bob"),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = post(&app, news, "bob", json!({"body": "now I may"})).await;
    assert_eq!(status, 201);

    // Settings: only managers change them; the audience goes back to the default.
    let (status, _) = app
        .send(
            "PATCH",
            &format!("/api/messaging/rooms/{council}"),
            "carol",
            Some(json!({"title": "x"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, changed) = app
        .send(
            "PATCH",
            &format!("/api/messaging/rooms/{council}"),
            "alice",
            Some(json!({"audience": "", "slow_mode_secs": 30})),
        )
        .await;
    assert_eq!(status, 200, "{changed}");
    assert!(changed.get("audience").is_none(), "{changed}");
    assert_eq!(changed["slow_mode_secs"], 30);
    let (status, _) = app
        .send(
            "POST",
            &format!("/api/messaging/rooms/{council}/archive"),
            "alice",
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, closed) = post(&app, council, "alice", json!({"body": "late"})).await;
    assert_eq!((status, error_code(&closed)), (409, "conflict"));
    app.stop().await;
}

async fn conversations_are_for_those_in_them(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let bob = format!("user:{}", app.user_id("bob").await);
    let carol = format!("user:{}", app.user_id("carol").await);
    let (status, dm) = app
        .send(
            "POST",
            "/api/messaging/direct",
            "alice",
            Some(json!({"with": bob})),
        )
        .await;
    assert_eq!(status, 201, "{dm}");
    assert_eq!(dm["kind"], "direct");
    let (status, same) = app
        .send(
            "POST",
            "/api/messaging/direct",
            "bob",
            Some(json!({"with": format!("user:{}", app.user_id("alice").await)})),
        )
        .await;
    assert_eq!(
        (status, same["id"].clone()),
        (200, dm["id"].clone()),
        "one conversation per pair"
    );
    let dm = dm["id"].as_str().unwrap();
    let (status, _) = post(&app, dm, "bob", json!({"body": "just us"})).await;
    assert_eq!(status, 201);
    for outsider in ["carol", "root"] {
        let (status, _) = app
            .get_as(
                &format!("/api/messaging/rooms/{dm}/messages"),
                Some(outsider),
            )
            .await;
        assert_eq!(status, 403, "{outsider} reads a direct conversation");
        let (status, _) = post(&app, dm, outsider, json!({"body": "me too"})).await;
        assert_eq!(status, 403);
    }
    let (status, nobody) = app
        .send(
            "POST",
            "/api/messaging/direct",
            "alice",
            Some(json!({"with": "user:nobody"})),
        )
        .await;
    assert_eq!((status, error_code(&nobody)), (404, "not_found"));
    let (status, _) = app
        .send(
            "POST",
            "/api/messaging/direct",
            "alice",
            Some(json!({"with": "someone"})),
        )
        .await;
    assert_eq!(status, 422);

    // A group: its manager brings people in; others may only leave.
    let (status, group) = app
        .send(
            "POST",
            "/api/messaging/groups",
            "alice",
            Some(json!({"title": "Trip", "participants": [bob]})),
        )
        .await;
    assert_eq!(status, 201, "{group}");
    let group = group["id"].as_str().unwrap();
    let participants = format!("/api/messaging/rooms/{group}/participants");
    let (status, _) = app.get_as(&participants, Some("carol")).await;
    assert_eq!(status, 403);
    let (status, _) = app
        .send(
            "POST",
            &participants,
            "bob",
            Some(json!({"principal": carol})),
        )
        .await;
    assert_eq!(status, 403, "a participant brings people in");
    let (status, _) = app
        .send(
            "POST",
            &participants,
            "alice",
            Some(json!({"principal": carol})),
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = post(&app, group, "carol", json!({"body": "thanks"})).await;
    assert_eq!(status, 201);
    let (status, _) = app
        .send("DELETE", &format!("{participants}/{carol}"), "bob", None)
        .await;
    assert_eq!(status, 403, "bob takes carol out");
    let (status, _) = app
        .send("DELETE", &format!("{participants}/{bob}"), "bob", None)
        .await;
    assert_eq!(status, 204, "bob leaves");
    let (status, _) = app
        .get_as(
            &format!("/api/messaging/rooms/{group}/messages"),
            Some("bob"),
        )
        .await;
    assert_eq!(status, 403, "gone is gone");
    let (_, mine) = app
        .get_as("/api/messaging/rooms?kind=group", Some("carol"))
        .await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 1);
    let (_, mine) = app
        .get_as("/api/messaging/rooms?kind=group", Some("bob"))
        .await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 0);
    app.stop().await;
}

async fn history_pages_both_ways_and_search_sees_only_what_one_may_read(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let (status, square) = app
        .send(
            "POST",
            "/api/messaging/rooms",
            "alice",
            Some(json!({"slug": "square", "title": "Square"})),
        )
        .await;
    assert_eq!(status, 201, "{square}");
    let square = square["id"].as_str().unwrap();
    for n in 1..=7 {
        let (status, _) = post(
            &app,
            square,
            "alice",
            json!({"body": format!("note {n} about the Bridge")}),
        )
        .await;
        assert_eq!(status, 201);
    }
    let history = format!("/api/messaging/rooms/{square}/messages");
    let (_, page) = app.get_as(&format!("{history}?limit=3"), Some("bob")).await;
    assert_eq!(bodies(&page)[0], "note 7 about the Bridge");
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, older) = app
        .get_as(&format!("{history}?limit=3&cursor={cursor}"), Some("bob"))
        .await;
    let seqs: Vec<i64> = older["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [4, 3, 2]);
    let (_, newer) = app
        .get_as(&format!("{history}?limit=4&after_seq=2"), Some("bob"))
        .await;
    let seqs: Vec<i64> = newer["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 4, 5, 6]);
    let cursor = newer["next_cursor"].as_str().unwrap();
    let (_, rest) = app
        .get_as(&format!("{history}?limit=4&cursor={cursor}"), Some("bob"))
        .await;
    assert_eq!(bodies(&rest), ["note 7 about the Bridge"]);
    assert!(rest.get("next_cursor").is_none());

    // Search: whole words, any case, only where the reader may read.
    let bob = format!("user:{}", app.user_id("bob").await);
    let (_, dm) = app
        .send(
            "POST",
            "/api/messaging/direct",
            "alice",
            Some(json!({"with": bob})),
        )
        .await;
    let dm = dm["id"].as_str().unwrap();
    post(
        &app,
        dm,
        "alice",
        json!({"body": "the bridge code is 1234"}),
    )
    .await;
    let (_, found) = app
        .get_as("/api/messaging/search?q=BRIDGE&limit=20", Some("bob"))
        .await;
    assert_eq!(found["items"].as_array().unwrap().len(), 8, "{found}");
    let (_, found) = app
        .get_as("/api/messaging/search?q=bridge%20code", Some("bob"))
        .await;
    assert_eq!(bodies(&found), ["the bridge code is 1234"]);
    let (_, found) = app
        .get_as("/api/messaging/search?q=bridge%20code", Some("carol"))
        .await;
    assert_eq!(
        found["items"],
        json!([]),
        "carol finds what she may not read"
    );
    let (_, found) = app
        .get_as(
            &format!("/api/messaging/rooms/{square}/search?q=note%203"),
            Some("carol"),
        )
        .await;
    assert_eq!(bodies(&found), ["note 3 about the Bridge"]);
    let (status, _) = app
        .get_as(
            &format!("/api/messaging/rooms/{dm}/search?q=code"),
            Some("carol"),
        )
        .await;
    assert_eq!(status, 403);
    let (_, found) = app
        .get_as("/api/messaging/search?q=%22%20OR%20*", Some("bob"))
        .await;
    assert!(
        found["items"].is_array(),
        "FTS operators are words: {found}"
    );
    app.stop().await;
}

async fn bad_input_and_limits_are_refused_and_nothing_is_half_written(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let general = community(&app, "alice", "tidy", "private").await;
    let (_, other) = app
        .send(
            "POST",
            "/api/messaging/rooms",
            "alice",
            Some(json!({"slug": "elsewhere", "title": "Elsewhere"})),
        )
        .await;
    let (_, foreign) = post(
        &app,
        other["id"].as_str().unwrap(),
        "alice",
        json!({"body": "there"}),
    )
    .await;
    let long = "x".repeat(10_001);
    for (body, code) in [
        (json!({"body": "   "}), 422),
        (json!({"body": long}), 422),
        (json!({"body": "ok", "topic": "two\nlines"}), 422),
        (json!({"body": "ok", "reply_to": foreign["id"]}), 422),
        (
            json!({"body": "ok", "attachments": [{"url": "javascript:alert(1)", "name": "x"}]}),
            422,
        ),
        (json!({"body": "ok", "extra": true}), 422),
        (json!({"text": "ok"}), 422),
    ] {
        let (status, answer) = post(&app, &general, "alice", body.clone()).await;
        assert_eq!(status, code, "{body} -> {answer}");
        assert!(answer["error"]["request_id"].is_string(), "{answer}");
    }
    let room = format!("/api/messaging/rooms/{general}");
    let (_, state) = app.get_as(&room, Some("alice")).await;
    assert_eq!(state["last_seq"], 0, "nothing was written");
    let (status, _) = app
        .get_as("/api/messaging/rooms/rm_nope/messages", Some("alice"))
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .send(
            "POST",
            &format!("{room}/read"),
            "alice",
            Some(json!({"seq": 5})),
        )
        .await;
    assert_eq!(status, 422, "a marker past the room's end");

    // A retried post with its Idempotency-Key is the same message.
    let cookie = app.cookie("alice").await;
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for expected in [201, 200] {
        let response = client
            .post(app.url(&format!("{room}/messages")))
            .header("cookie", &cookie)
            .header("idempotency-key", "post-1")
            .json(&json!({"body": "once"}))
            .send()
            .await
            .unwrap();
        let (status, message) = common::decode(response).await;
        assert_eq!(status, expected, "{message}");
        ids.push(message["id"].clone());
    }
    assert_eq!(ids[0], ids[1]);
    let bad_reaction = format!(
        "{room}/messages/{}/reactions/%3Cscript%3E",
        ids[0].as_str().unwrap()
    );
    let (status, _) = app.send("PUT", &bad_reaction, "alice", None).await;
    assert_eq!(status, 422);

    // Slow mode: the second post within the window waits, and is told how long.
    let (status, _) = app
        .send("PATCH", &room, "alice", Some(json!({"slow_mode_secs": 60})))
        .await;
    assert_eq!(status, 200);
    let (status, _) = post(&app, &general, "alice", json!({"body": "first"})).await;
    assert_eq!(status, 201);
    let response = client
        .post(app.url(&format!("{room}/messages")))
        .header("cookie", &cookie)
        .json(&json!({"body": "second"}))
        .send()
        .await
        .unwrap();
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let (status, answer) = common::decode(response).await;
    assert_eq!((status, error_code(&answer)), (429, "rate_limited"));
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let (_, state) = app.get_as(&room, Some("alice")).await;
    assert_eq!(state["last_seq"], 2);
    app.stop().await;
}

async fn subscribe(ws: &mut Ws, room: &str, since: Option<i64>) -> Value {
    let frame = match since {
        Some(since) => json!({"type": "subscribe", "room": room, "since": since}),
        None => json!({"type": "subscribe", "room": room}),
    };
    send_text(ws, frame.to_string()).await;
    next_of(ws, "subscribed").await
}

/// The next room event (typing and other frames skipped).
async fn next_event(ws: &mut Ws) -> Value {
    next_of(ws, "event").await
}

async fn one_socket_follows_rooms_in_order_and_resumes(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let general = community(&app, "alice", "wired", "public").await;
    app.send("POST", "/api/microdao/daos/wired/join", "bob", None)
        .await;
    let (_, square) = app
        .send(
            "POST",
            "/api/messaging/rooms",
            "alice",
            Some(json!({"slug": "plaza", "title": "Plaza"})),
        )
        .await;
    let square = square["id"].as_str().unwrap().to_owned();

    // Carol may follow the city room, not the community's.
    let mut carol = app.ws_as("/ws/messaging/live", "carol").await;
    send_text(
        &mut carol,
        json!({"type": "subscribe", "room": general}).to_string(),
    )
    .await;
    let refused = next_json(&mut carol).await;
    assert_eq!(
        (refused["type"].clone(), refused["error"]["code"].clone()),
        (json!("error"), json!("forbidden")),
        "{refused}"
    );

    let mut bob = app.ws_as("/ws/messaging/live", "bob").await;
    assert_eq!(subscribe(&mut bob, &general, None).await["last_seq"], 0);
    subscribe(&mut bob, &square, None).await;
    let mut alice = app.ws_as("/ws/messaging/live", "alice").await;
    subscribe(&mut alice, &general, None).await;

    let (_, posted) = post(&app, &general, "alice", json!({"body": "hello *all*"})).await;
    let event = next_event(&mut bob).await;
    assert_eq!(
        (
            event["kind"].clone(),
            event["room"].clone(),
            event["room_seq"].clone()
        ),
        (json!("received"), json!(general), json!(1))
    );
    assert_eq!(event["message"]["html"], "<p>hello <em>all</em></p>\n");
    post(&app, &square, "alice", json!({"body": "in the plaza"})).await;
    let event = next_event(&mut bob).await;
    assert_eq!(
        (event["room"].clone(), event["message"]["body"].clone()),
        (json!(square), json!("in the plaza"))
    );

    // An edit and a reaction arrive live, in order.
    let message = format!(
        "/api/messaging/rooms/{general}/messages/{}",
        posted["id"].as_str().unwrap()
    );
    app.send(
        "PATCH",
        &message,
        "alice",
        Some(json!({"body": "hello everyone"})),
    )
    .await;
    app.send(
        "PUT",
        &format!("{message}/reactions/%F0%9F%8E%89"),
        "alice",
        None,
    )
    .await;
    let edited = next_event(&mut bob).await;
    assert_eq!(
        (
            edited["kind"].clone(),
            edited["room_seq"].clone(),
            edited["message"]["body"].clone()
        ),
        (json!("edited"), json!(2), json!("hello everyone"))
    );
    let reacted = next_event(&mut bob).await;
    assert_eq!(
        (reacted["kind"].clone(), reacted["room_seq"].clone()),
        (json!("reacted"), json!(3))
    );
    assert_eq!(reacted["message"]["reactions"][0]["count"], 1);
    // Who reacted, so that alice's other screens mark it as hers.
    let alice_id = app.user_id("alice").await;
    assert_eq!(
        reacted["reaction"],
        json!({"by": format!("user:{alice_id}"), "emoji": "🎉", "added": true})
    );

    // Typing reaches the others in the room.
    send_text(
        &mut alice,
        json!({"type": "typing", "room": general}).to_string(),
    )
    .await;
    let typing = next_of(&mut bob, "typing").await;
    assert_eq!(typing["room"], json!(general));

    // Bob leaves, misses two messages and a delete, and resumes from seq 3.
    drop(bob);
    let (_, gone) = post(&app, &general, "alice", json!({"body": "one"})).await;
    post(&app, &general, "alice", json!({"body": "two"})).await;
    let gone = format!(
        "/api/messaging/rooms/{general}/messages/{}",
        gone["id"].as_str().unwrap()
    );
    assert_eq!(app.send("DELETE", &gone, "alice", None).await.0, 204);
    let mut bob = app.ws_as("/ws/messaging/live", "bob").await;
    send_text(
        &mut bob,
        json!({"type": "subscribe", "room": general, "since": 3}).to_string(),
    )
    .await;
    let mut replayed = Vec::new();
    for _ in 0..3 {
        let event = next_event(&mut bob).await;
        replayed.push((
            event["room_seq"].as_i64().unwrap(),
            event["kind"].as_str().unwrap().to_owned(),
        ));
    }
    assert_eq!(
        replayed,
        [
            (4, "received".into()),
            (5, "received".into()),
            (6, "deleted".into())
        ]
    );
    assert_eq!(next_of(&mut bob, "subscribed").await["last_seq"], 6);
    post(&app, &general, "alice", json!({"body": "live again"})).await;
    assert_eq!(next_event(&mut bob).await["room_seq"], 7);
    subscribe(&mut bob, &square, None).await;

    // Unsubscribed, the room goes quiet.
    send_text(
        &mut bob,
        json!({"type": "unsubscribe", "room": general}).to_string(),
    )
    .await;
    next_of(&mut bob, "unsubscribed").await;
    post(&app, &general, "alice", json!({"body": "unheard"})).await;
    post(&app, &square, "alice", json!({"body": "heard"})).await;
    let event = next_event(&mut bob).await;
    assert_eq!(event["message"]["body"], "heard");
    app.stop().await;
}

async fn a_removed_member_stops_receiving_at_once(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let general = community(&app, "alice", "strict", "public").await;
    app.send("POST", "/api/microdao/daos/strict/join", "bob", None)
        .await;
    let mut bob = app.ws_as("/ws/messaging/live", "bob").await;
    subscribe(&mut bob, &general, None).await;
    post(&app, &general, "alice", json!({"body": "welcome"})).await;
    assert_eq!(next_event(&mut bob).await["message"]["body"], "welcome");

    let id = app.user_id("bob").await;
    let (status, _) = app
        .send(
            "DELETE",
            &format!("/api/microdao/daos/strict/members/user:{id}"),
            "alice",
            None,
        )
        .await;
    assert_eq!(status, 200);
    let dropped = next_of(&mut bob, "unsubscribed").await;
    assert_eq!(
        (dropped["room"].clone(), dropped["reason"].clone()),
        (json!(general), json!("forbidden"))
    );
    post(&app, &general, "alice", json!({"body": "after you left"})).await;
    let quiet = tokio::time::timeout(Duration::from_millis(500), next_of(&mut bob, "event")).await;
    assert!(quiet.is_err(), "a removed member still receives: {quiet:?}");
    app.stop().await;
}

async fn too_far_behind_is_told_to_reload(kind: Kind) {
    let Some(mut city) = City::new(kind).await else {
        return;
    };
    city.settings
        .services
        .update(
            &daarion_messaging::SPEC,
            |x: &mut daarion_messaging::Settings| x.ws_replay_max = 3,
        )
        .unwrap();
    let app = city.spawn().await;
    let (_, room) = app
        .send(
            "POST",
            "/api/messaging/rooms",
            "alice",
            Some(json!({"slug": "busy", "title": "Busy"})),
        )
        .await;
    let room = room["id"].as_str().unwrap().to_owned();
    for n in 0..5 {
        post(&app, &room, "alice", json!({"body": format!("m{n}")})).await;
    }
    let mut bob = app.ws_as("/ws/messaging/live", "bob").await;
    // Three behind: replayed. Four behind: too many, reload.
    send_text(
        &mut bob,
        json!({"type": "subscribe", "room": room, "since": 2}).to_string(),
    )
    .await;
    for seq in [3, 4, 5] {
        assert_eq!(next_event(&mut bob).await["room_seq"], seq);
    }
    next_of(&mut bob, "subscribed").await;
    send_text(
        &mut bob,
        json!({"type": "unsubscribe", "room": room}).to_string(),
    )
    .await;
    next_of(&mut bob, "unsubscribed").await;
    send_text(
        &mut bob,
        json!({"type": "subscribe", "room": room, "since": 1}).to_string(),
    )
    .await;
    let reset = next_json(&mut bob).await;
    assert_eq!(
        (reset["type"].clone(), reset["last_seq"].clone()),
        (json!("reset"), json!(5)),
        "{reset}"
    );
    assert_eq!(next_of(&mut bob, "subscribed").await["last_seq"], 5);
    post(&app, &room, "alice", json!({"body": "next"})).await;
    assert_eq!(next_event(&mut bob).await["room_seq"], 6);
    app.stop().await;
}

/// Two replicas of messaging on NATS: a client of one sees, in order and
/// once each, what is posted through both.
#[tokio::test]
async fn replicas_deliver_every_change_once_and_in_order() {
    let Some(city) = City::new(Kind::Distributed).await else {
        return;
    };
    let (mut auth, a, b) = city.auth_and_two_replicas("messaging").await;
    auth.people = a.people.clone();
    let (status, room) = a
        .send(
            "POST",
            "/api/messaging/rooms",
            "alice",
            Some(json!({"slug": "both", "title": "Both"})),
        )
        .await;
    assert_eq!(status, 201, "{room}");
    let room = room["id"].as_str().unwrap().to_owned();
    let mut on_b = b.ws_as("/ws/messaging/live", "bob").await;
    send_text(
        &mut on_b,
        json!({"type": "subscribe", "room": room}).to_string(),
    )
    .await;
    next_of(&mut on_b, "subscribed").await;
    let posts = (0..20).map(|n| {
        let (app, room) = (if n % 2 == 0 { &a } else { &b }, room.clone());
        async move {
            post(app, &room, "alice", json!({"body": format!("p{n}")}))
                .await
                .0
        }
    });
    for status in futures::future::join_all(posts).await {
        assert_eq!(status, 201);
    }
    let mut seqs = Vec::new();
    while seqs.len() < 20 {
        seqs.push(next_event(&mut on_b).await["room_seq"].as_i64().unwrap());
    }
    assert_eq!(seqs, (1..=20).collect::<Vec<i64>>());
    for app in [a, b, auth] {
        app.stop().await;
    }
}

/// What the agent platform will listen to: a message naming an agent
/// raises `message.mention.<agent>` (durable, on `MESSAGES`), with the room
/// and the message; a message naming nobody raises none.
#[tokio::test]
async fn mentioning_an_agent_raises_its_event() {
    use daarion_bus::{Bus, ConsumerSpec, NatsBus};
    let Some(city) = City::new(Kind::Distributed).await else {
        return;
    };
    let app = city.spawn().await;
    let streams = daarion_service::streams(daarion::SERVICES).unwrap();
    let bus = NatsBus::connect(
        city.settings.nats_url.as_deref().unwrap(),
        &city.settings.nats_namespace,
        streams,
    )
    .await
    .unwrap();
    let mut mentions = bus
        .consumer(&ConsumerSpec::new("mention-probe", "message.mention.>"))
        .await
        .unwrap();
    let (_, room) = app
        .send(
            "POST",
            "/api/messaging/rooms",
            "alice",
            Some(json!({"slug": "ask", "title": "Ask"})),
        )
        .await;
    let room = room["id"].as_str().unwrap().to_owned();
    post(&app, &room, "alice", json!({"body": "nobody named here"})).await;
    let (_, asked) = post(
        &app,
        &room,
        "alice",
        json!({"body": "@agent:helper what is the plan?", "topic": "plans"}),
    )
    .await;
    let delivery = tokio::time::timeout(Duration::from_secs(10), mentions.next())
        .await
        .expect("a mention event")
        .unwrap();
    let event = &delivery.envelope;
    assert_eq!(event.subject, "message.mention.helper");
    assert_eq!(event.payload["room"]["id"], json!(room));
    assert_eq!(event.payload["message"]["id"], asked["id"]);
    assert_eq!(event.payload["message"]["topic"], "plans");
    assert_eq!(event.actor.as_deref(), Some("alice"));
    delivery.ack().await.unwrap();
    let more = tokio::time::timeout(Duration::from_millis(500), mentions.next()).await;
    assert!(more.is_err(), "one mention, one event");
    app.stop().await;
}

/// A city of the previous version: its rooms and messages live in the
/// city's tables, and move into messaging's when it migrates.
mod city_rooms_move_into_messaging {
    use daarion_store::{MigrationSet, sql};
    use daarion_testkit::{SqlKind, migrated_db};

    async fn moved(kind: SqlKind) {
        let city = daarion_city::SPEC.migration_set();
        let before = MigrationSet {
            service: "messaging",
            migrations: &daarion_messaging::SPEC.migrations[..1],
        };
        let Some(t) = migrated_db(kind, &[city, before]).await else {
            return;
        };
        let db = &t.db;
        for statement in [
            "INSERT INTO city_rooms VALUES ('room_01', 'square', 'Square', 'old', 'alice', '2026-11-01T00:00:00.000000Z')",
            "INSERT INTO city_messages VALUES ('msg_01', 'room_01', 'alice', 'first <b>bold</b> & more', '2026-11-01T00:00:01.000000Z')",
            "INSERT INTO city_messages VALUES ('msg_02', 'room_01', 'bob', 'second', '2026-11-01T00:00:02.000000Z')",
        ] {
            sql::query(statement).execute(db.pool()).await.unwrap();
        }
        daarion_store::migrate::apply(db, &[city, daarion_messaging::SPEC.migration_set()])
            .await
            .unwrap();
        let room = daarion_messaging::store::public_room(db, "square")
            .await
            .unwrap()
            .expect("the room moved");
        assert_eq!((room.id.as_str(), room.last_seq), ("rm_01", 2));
        let history = daarion_messaging::store::history(
            db,
            &room.id,
            None,
            daarion_messaging::store::Window::Latest,
            10,
        )
        .await
        .unwrap();
        let moved: Vec<(i64, &str, &str)> = history
            .iter()
            .map(|m| (m.seq, m.author_handle.as_str(), m.html.as_str()))
            .collect();
        assert_eq!(
            moved,
            [
                (2, "bob", "<p>second</p>"),
                (
                    1,
                    "alice",
                    "<p>first &lt;b&gt;bold&lt;/b&gt; &amp; more</p>"
                ),
            ]
        );
        let left = sql::query("SELECT COUNT(*) AS n FROM city_messages")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!(sql::Row::try_get::<i64, _>(&left, "n").unwrap(), 0);
    }

    #[tokio::test]
    async fn embedded() {
        moved(SqlKind::Sqlite).await;
    }

    #[tokio::test]
    async fn distributed() {
        moved(SqlKind::Postgres).await;
    }
}
