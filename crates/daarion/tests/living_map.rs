//! The living map end to end, on both backends: it follows the city
//! (communities, memberships, rooms and their activity, people present,
//! open proposals), each viewer sees only what they may, and the deltas
//! after a snapshot, applied to it, give the later snapshot exactly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{City, Kind, TestApp};
use daarion_livingmap::{
    domain::{Delta, MapEdge, MapNode},
    store::replay,
};
use serde_json::{Value, json};

on_every_backend!(
    the_map_follows_the_city_and_its_deltas_replay_to_the_next_snapshot,
    bad_resumes_are_refused,
    the_socket_streams_changes_and_resumes_where_it_left,
);

async fn snapshot(app: &TestApp, who: &str) -> Value {
    let (status, s) = app.get_as("/api/living-map/snapshot", Some(who)).await;
    assert_eq!(status, 200, "{s}");
    s
}

fn ids(s: &Value) -> Vec<String> {
    s["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect()
}

fn parts(s: &Value) -> (Vec<MapNode>, Vec<MapEdge>) {
    (
        serde_json::from_value(s["nodes"].clone()).unwrap(),
        serde_json::from_value(s["edges"].clone()).unwrap(),
    )
}

/// Every delta `who` may see after `since`, up to `until`.
async fn deltas(app: &TestApp, who: &str, since: i64, until: i64) -> Vec<Delta> {
    let (status, page) = app
        .get_as(&format!("/api/living-map/deltas?since={since}"), Some(who))
        .await;
    assert_eq!(status, 200, "{page}");
    let all: Vec<Delta> = serde_json::from_value(page["deltas"].clone()).unwrap();
    all.into_iter().filter(|d| d.seq() <= until).collect()
}

async fn the_map_follows_the_city_and_its_deltas_replay_to_the_next_snapshot(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    app.session("root").await;
    let before = snapshot(&app, "alice").await;
    let before_bob = snapshot(&app, "bob").await;

    let general = common::community(&app, "alice", "makers", "public").await;
    common::community(&app, "alice", "inner", "private").await;
    let (status, _) = app
        .send("POST", "/api/microdao/daos/makers/join", "bob", None)
        .await;
    assert_eq!(status, 200);
    for text in ["hello", "again"] {
        let (status, body) = app
            .send(
                "POST",
                &format!("/api/messaging/rooms/{general}/messages"),
                "alice",
                Some(json!({"body": text})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (_, p) = app
        .send(
            "POST",
            "/api/dao/daos/makers/proposals",
            "alice",
            Some(json!({"title": "Map it", "voting_secs": 3600})),
        )
        .await;
    let (status, _) = app
        .send(
            "POST",
            &format!("/api/dao/proposals/{}/open", p["id"].as_str().unwrap()),
            "alice",
            None,
        )
        .await;
    assert_eq!(status, 200);
    // Bob is present in the city while his socket is open.
    let _socket = app.ws_as("/ws/city/presence", "bob").await;

    let after =
        daarion_testkit::eventually("the map to catch up", Duration::from_secs(15), || async {
            let s = snapshot(&app, "alice").await;
            let ids = ids(&s);
            let activity = s["edges"].as_array().unwrap().iter().any(|e| {
                e["kind"] == "activity" && e["from"] == "person:alice" && e["weight"] == 2
            });
            (ids.contains(&"person:bob".to_owned())
                && ids.contains(&"dao:inner".to_owned())
                && activity
                && s["counters"]["open_proposals"] == 1)
                .then_some(s)
        })
        .await;
    let nodes = ids(&after);
    assert!(nodes.contains(&"dao:makers".to_owned()));
    assert!(nodes.contains(&format!("room:{general}")), "{nodes:?}");
    assert!(after["counters"]["messages_per_min"].as_f64().unwrap() >= 1.0);
    let member = after["edges"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["kind"] == "member" && e["from"] == "person:bob" && e["to"] == "dao:makers");
    assert!(member, "{}", after["edges"]);
    let makers = after["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["id"] == "dao:makers")
        .unwrap();
    assert!(makers["x"].is_f64() && makers["y"].is_f64());

    // The deltas after the first snapshot, applied to it, are the second.
    let (since, until) = (
        before["seq"].as_i64().unwrap(),
        after["seq"].as_i64().unwrap(),
    );
    let (mut nodes, mut edges) = parts(&before);
    replay(
        &mut nodes,
        &mut edges,
        &deltas(&app, "alice", since, until).await,
    );
    let (want_nodes, want_edges) = parts(&after);
    assert_eq!(nodes, want_nodes);
    assert_eq!(edges, want_edges);

    // Bob sees the public community, not alice's private one — in the
    // snapshot and in the deltas alike.
    let bob_after = snapshot(&app, "bob").await;
    let bob_ids = ids(&bob_after);
    assert!(bob_ids.contains(&"dao:makers".to_owned()));
    assert!(!bob_ids.contains(&"dao:inner".to_owned()));
    let (mut nodes, mut edges) = parts(&before_bob);
    let bob_until = bob_after["seq"].as_i64().unwrap();
    replay(
        &mut nodes,
        &mut edges,
        &deltas(&app, "bob", before_bob["seq"].as_i64().unwrap(), bob_until).await,
    );
    assert_eq!((nodes, edges), parts(&bob_after));
    assert_eq!(
        bob_after["counters"]["open_proposals"], 1,
        "makers is public"
    );
}

async fn bad_resumes_are_refused(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    for query in ["since=-1", "since=999999", "since=0&limit=0", "since=x", ""] {
        let (status, body) = app
            .get_as(&format!("/api/living-map/deltas?{query}"), Some("alice"))
            .await;
        assert!(status == 400 || status == 422, "{query}: {status} {body}");
    }
    assert_eq!(app.get_as("/api/living-map/snapshot", None).await.0, 401);
}

/// Frames of `ws` until one holds a node `id` (answers the frame's deltas
/// and the last number it carried).
async fn until_node(ws: &mut common::Ws, id: &str) -> i64 {
    loop {
        let frame = common::next_json(ws).await;
        assert_ne!(frame["type"], "error", "{frame}");
        let deltas = frame["deltas"].as_array().cloned().unwrap_or_default();
        if deltas
            .iter()
            .any(|d| d["op"] == "node" && d["node"]["id"] == id)
        {
            return frame["seq"].as_i64().unwrap();
        }
    }
}

/// Frames of `ws` until a snapshot.
async fn until_snapshot(ws: &mut common::Ws) -> Value {
    loop {
        let frame = common::next_json(ws).await;
        assert_ne!(frame["type"], "error", "{frame}");
        if frame["type"] == "snapshot" {
            return frame;
        }
    }
}

async fn the_socket_streams_changes_and_resumes_where_it_left(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    app.session("root").await;
    let mut alice = app.ws_as("/ws/living-map/stream", "alice").await;
    let first = common::next_json(&mut alice).await;
    assert_eq!(first["type"], "snapshot", "{first}");
    assert!(first["seq"].is_i64());
    let mut bob = app.ws_as("/ws/living-map/stream", "bob").await;
    assert_eq!(common::next_json(&mut bob).await["type"], "snapshot");

    common::community(&app, "alice", "secret", "private").await;
    common::community(&app, "alice", "open", "public").await;
    let seq = until_node(&mut alice, "dao:open").await;
    // Bob hears of the public one only.
    loop {
        let frame = common::next_json(&mut bob).await;
        let text = frame.to_string();
        assert!(!text.contains("dao:secret"), "{text}");
        if text.contains("dao:open") {
            break;
        }
    }

    // Let into the private one, bob's map shows it at once (a snapshot
    // with it); taken out, his map drops it and hears no more of it.
    let (status, invite) = app
        .send(
            "POST",
            "/api/microdao/daos/secret/invites",
            "alice",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 201, "{invite}");
    let (status, body) = app
        .send(
            "POST",
            "/api/microdao/invites/accept",
            "bob",
            Some(json!({"code": invite["code"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let bob_id = app.user_id("bob").await;
    let shown = until_snapshot(&mut bob).await;
    assert!(shown.to_string().contains("dao:secret"), "{shown}");
    let (status, body) = app
        .send(
            "DELETE",
            &format!("/api/microdao/daos/secret/members/user:{bob_id}"),
            "alice",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let shown = until_snapshot(&mut bob).await;
    assert!(!shown.to_string().contains("dao:secret"), "{shown}");
    common::community(&app, "alice", "after", "public").await;
    loop {
        let frame = common::next_json(&mut bob).await;
        let text = frame.to_string();
        assert!(!text.contains("dao:secret"), "{text}");
        if text.contains("dao:after") {
            break;
        }
    }
    drop(alice);

    // Away, alice misses a community; back with the last number she has,
    // she gets what she missed (not a snapshot).
    common::community(&app, "alice", "later", "public").await;
    let mut back = app
        .ws_as(&format!("/ws/living-map/stream?since={seq}"), "alice")
        .await;
    let missed = common::next_json(&mut back).await;
    assert_eq!(missed["type"], "deltas", "{missed}");
    let mut back_seq = missed["seq"].as_i64().unwrap();
    if !missed.to_string().contains("dao:later") {
        back_seq = until_node(&mut back, "dao:later").await;
    }
    assert!(back_seq > seq);
    // A number the map never gave: a fresh snapshot instead.
    let mut lost = app
        .ws_as("/ws/living-map/stream?since=999999", "alice")
        .await;
    let fresh = common::next_json(&mut lost).await;
    assert_eq!(fresh["type"], "snapshot");
    assert!(fresh.to_string().contains("dao:later"));
}
