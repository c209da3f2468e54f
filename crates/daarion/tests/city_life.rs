//! The city as it moves: the map, the feed and agents' presence, end to
//! end on the embedded backends and on PostgreSQL + NATS JetStream + Redis.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::{City, Kind, TestApp, error_code, next_of};
use serde_json::{Value, json};

on_every_backend!(
    admins_draw_the_map_and_anyone_reads_it,
    concurrent_placements_never_overlap,
    the_feed_tells_what_happens_in_public,
    agents_report_presence_and_go_offline_when_silent,
    public_communities_stand_in_their_districts,
);

fn area(x: u32, y: u32, w: u32, h: u32) -> Value {
    json!({ "x": x, "y": y, "w": w, "h": h })
}

fn place(district: Option<&str>, area: Value) -> Value {
    json!({ "district": district, "area": area, "zone": "core", "role": "lobby",
        "icon": "door", "color": "#336699" })
}

async fn open_room(app: &TestApp, slug: &str) {
    let (status, body) = app
        .post(
            "/api/city/rooms",
            Some("alice"),
            json!({ "slug": slug, "title": format!("Room {slug}") }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
}

/// The map's communities: a public community naming a district of the map
/// stands in it (for visitors too); moved, made private or archived, it
/// follows; a private one, or one in a district the map lacks, is not shown.
async fn public_communities_stand_in_their_districts(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    for (slug, x) in [("harbour", 0), ("hills", 6)] {
        let district = json!({ "name": slug, "color": "#336699", "area": area(x, 0, 6, 4) });
        let path = format!("/api/city/map/districts/{slug}");
        let (status, body) = app.send("PUT", &path, "root", Some(district)).await;
        assert_eq!(status, 201, "{body}");
    }
    for (slug, visibility, district) in [
        ("sailors", "public", "harbour"),
        ("secret", "private", "harbour"),
        ("nowhere", "public", "marsh"),
    ] {
        let body = json!({"slug": slug, "name": format!("The {slug}"),
            "visibility": visibility, "district": district});
        let (status, dao) = app
            .send("POST", "/api/microdao/daos", "alice", Some(body))
            .await;
        assert_eq!(status, 201, "{dao}");
    }
    let shown = |want: Value| {
        let app = &app;
        async move {
            daarion_testkit::eventually(
                &format!("the map shows {want}"),
                Duration::from_secs(10),
                || {
                    let want = want.clone();
                    async move {
                        let (_, map) = app.get_as("/api/city/map", None).await;
                        (map["communities"] == want).then_some(())
                    }
                },
            )
            .await;
        }
    };
    shown(json!([{"slug": "sailors", "name": "The sailors", "district": "harbour"}])).await;
    let moved = json!({"district": "hills"});
    let (status, _) = app
        .send("PATCH", "/api/microdao/daos/sailors", "alice", Some(moved))
        .await;
    assert_eq!(status, 200);
    shown(json!([{"slug": "sailors", "name": "The sailors", "district": "hills"}])).await;
    let (status, _) = app
        .send("POST", "/api/microdao/daos/sailors/archive", "alice", None)
        .await;
    assert_eq!(status, 200);
    shown(json!([])).await;
    app.stop().await;
}

async fn admins_draw_the_map_and_anyone_reads_it(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let north = json!({ "name": "North", "color": "#AA0000", "area": area(0, 0, 6, 4) });
    let (status, body) = app
        .send(
            "PUT",
            "/api/city/map/districts/north",
            "root",
            Some(north.clone()),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["color"], "#aa0000");
    let (status, _) = app
        .send(
            "PUT",
            "/api/city/map/districts/north",
            "root",
            Some(north.clone()),
        )
        .await;
    assert_eq!(status, 200, "drawing it again redraws it");
    let (status, body) = app
        .send(
            "PUT",
            "/api/city/map/districts/south",
            "alice",
            Some(north.clone()),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (403, "forbidden"),
        "citizens do not draw"
    );
    let anonymous = app
        .client
        .put(app.url("/api/city/map/districts/south"))
        .json(&north)
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);

    // Shapes that do not fit are refused, and nothing is written.
    let refused = [
        (
            "east",
            json!({ "name": "East", "color": "#00aa00", "area": area(5, 0, 3, 3) }),
            409,
        ),
        (
            "east",
            json!({ "name": "East", "color": "#00aa00", "area": area(10, 0, 3, 3) }),
            422,
        ),
        (
            "east",
            json!({ "name": "East", "color": "green", "area": area(7, 0, 3, 3) }),
            422,
        ),
        (
            "east",
            json!({ "name": " ", "color": "#00aa00", "area": area(7, 0, 3, 3) }),
            422,
        ),
        (
            "east",
            json!({ "name": "East", "color": "#00aa00", "area": area(7, 0, 0, 3) }),
            422,
        ),
        (
            "East!",
            json!({ "name": "East", "color": "#00aa00", "area": area(7, 0, 3, 3) }),
            422,
        ),
    ];
    for (slug, body, expected) in refused {
        let path = format!("/api/city/map/districts/{slug}");
        let (status, answer) = app.send("PUT", &path, "root", Some(body.clone())).await;
        assert_eq!(status, expected, "{body} → {answer}");
        assert!(answer["error"]["message"].is_string(), "{answer}");
    }

    open_room(&app, "lab").await;
    let (status, body) = app
        .send(
            "PUT",
            "/api/city/map/places/general",
            "root",
            Some(place(Some("north"), area(0, 0, 2, 2))),
        )
        .await;
    assert_eq!(
        (status, body["title"].clone()),
        (201, json!("General")),
        "{body}"
    );
    let attempts = [
        ("lab", place(Some("north"), area(1, 1, 2, 2)), 409),
        ("lab", place(Some("north"), area(5, 3, 2, 2)), 422),
        ("lab", place(Some("nowhere"), area(8, 0, 1, 1)), 422),
        ("nowhere", place(None, area(8, 0, 1, 1)), 404),
        (
            "lab",
            json!({ "area": area(8, 0, 1, 1), "zone": "core", "role": "mall",
            "icon": "door", "color": "#336699" }),
            422,
        ),
        (
            "lab",
            place(None, area(8, 0, 1, 1))
                .as_object()
                .map(|o| {
                    let mut o = o.clone();
                    o.insert("icon".into(), json!("<script>"));
                    Value::Object(o)
                })
                .unwrap(),
            422,
        ),
        ("lab", place(Some("north"), area(2, 0, 2, 2)), 201),
    ];
    for (room, body, expected) in attempts {
        let path = format!("/api/city/map/places/{room}");
        let (status, answer) = app.send("PUT", &path, "root", Some(body.clone())).await;
        assert_eq!(status, expected, "{room} {body} → {answer}");
    }
    let shrink = json!({ "name": "North", "color": "#aa0000", "area": area(0, 0, 3, 3) });
    let (status, body) = app
        .send("PUT", "/api/city/map/districts/north", "root", Some(shrink))
        .await;
    assert_eq!(status, 409, "lab would fall outside: {body}");
    let (status, _) = app
        .send("DELETE", "/api/city/map/districts/north", "root", None)
        .await;
    assert_eq!(status, 409, "a district with places stays");

    let (status, map) = app.get_as("/api/city/map", None).await;
    assert_eq!(status, 200, "anyone reads the map: {map}");
    assert_eq!(
        (map["width"].clone(), map["height"].clone()),
        (json!(12), json!(8))
    );
    assert_eq!(map["districts"].as_array().unwrap().len(), 1);
    assert_eq!(map["districts"][0]["area"], area(0, 0, 6, 4));
    let rooms: Vec<&str> = map["places"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["room"].as_str().unwrap())
        .collect();
    assert_eq!(rooms, ["general", "lab"]);
    assert_eq!(map["places"][1]["title"], "Room lab");

    let (status, _) = app
        .send("DELETE", "/api/city/map/places/lab", "alice", None)
        .await;
    assert_eq!(status, 403);
    for expected in [204, 404] {
        let (status, _) = app
            .send("DELETE", "/api/city/map/places/lab", "root", None)
            .await;
        assert_eq!(status, expected);
    }
    app.send("DELETE", "/api/city/map/places/general", "root", None)
        .await;
    for expected in [204, 404] {
        let (status, _) = app
            .send("DELETE", "/api/city/map/districts/north", "root", None)
            .await;
        assert_eq!(status, expected);
    }
    let (_, map) = app.get_as("/api/city/map", None).await;
    assert_eq!(
        (map["districts"].clone(), map["places"].clone()),
        (json!([]), json!([]))
    );
    app.stop().await;
}

/// Admins placing rooms on one spot at once: one wins, the rest are told
/// it is taken; the map never holds two overlapping places.
async fn concurrent_placements_never_overlap(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let rooms: Vec<String> = (0..8).map(|i| format!("spot-{i}")).collect();
    for room in &rooms {
        open_room(&app, room).await;
    }
    let cookie = app.cookie("root").await;
    let attempts = rooms.iter().enumerate().map(|(i, room)| {
        let cookie = cookie.clone();
        let app = &app;
        async move {
            let x = u32::try_from(i % 2).unwrap();
            let path = format!("/api/city/map/places/{room}");
            app.send_with(
                "PUT",
                &path,
                ("cookie", cookie),
                Some(place(None, area(x, 0, 2, 2))),
            )
            .await
            .0
        }
    });
    let mut statuses = futures::future::join_all(attempts).await;
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);
    let (_, map) = app.get("/api/city/map").await;
    assert_eq!(map["places"].as_array().unwrap().len(), 1);
    app.stop().await;
}

/// The feed's entries, polled until `ready` holds of them.
async fn feed_until(app: &TestApp, query: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    daarion_testkit::eventually("the feed", Duration::from_secs(15), || async {
        let (status, page) = app.get_as(&format!("/api/city/feed{query}"), None).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().cloned().unwrap_or_default();
        ready(&items).then_some(items)
    })
    .await
}

fn texts(items: &[Value]) -> Vec<&str> {
    items.iter().map(|i| i["text"].as_str().unwrap()).collect()
}

async fn the_feed_tells_what_happens_in_public(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let mut live = app.ws_as("/ws/city/feed", "visitor").await;
    let (status, first) = app
        .post(
            "/api/city/rooms/general/messages",
            Some("alice"),
            json!({ "body": "Good morning, city" }),
        )
        .await;
    assert_eq!(status, 201);
    let frame = next_of(&mut live, "entry").await;
    assert_eq!(
        (
            frame["entry"]["kind"].clone(),
            frame["entry"]["text"].clone()
        ),
        (json!("room_message"), json!("Good morning, city"))
    );

    let makers = common::community(&app, "bob", "makers", "public").await;
    common::community(&app, "bob", "council", "private").await;
    let key = app.api_key_for_agent("carol", "helper").await;
    let (status, body) = app
        .send_with(
            "POST",
            "/api/city/rooms/general/messages",
            ("authorization", format!("Bearer {key}")),
            Some(json!({ "body": "I can help with that" })),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    // A community's room is not public: its messages stay out of the feed.
    let (status, _) = app
        .post(
            &format!("/api/messaging/rooms/{makers}/messages"),
            Some("bob"),
            json!({ "body": "members only" }),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = app
        .post(
            "/api/city/rooms/general/messages",
            Some("alice"),
            json!({ "body": "<script>alert(1)</script> **bold**" }),
        )
        .await;
    assert_eq!(status, 201);

    let items = feed_until(&app, "", |items| items.len() >= 4).await;
    let kinds: Vec<&str> = items.iter().map(|i| i["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["room_message", "agent_reply", "dao_event", "room_message"],
        "{items:?}"
    );
    assert_eq!(
        texts(&items),
        [
            "<script>alert(1)</script> **bold**",
            "I can help with that",
            "makers",
            "Good morning, city"
        ],
        "plain text, for the page to escape; no private community, no community room"
    );
    assert_eq!(items[1]["actor"], "agent:helper");
    assert_eq!(items[2]["dao"], "makers");

    // Edits rewrite an entry; a deletion takes it out.
    let (_, listed) = app
        .get_as("/api/messaging/rooms?kind=public", Some("alice"))
        .await;
    let general = listed["items"][0]["id"].as_str().unwrap().to_owned();
    let message = first["id"].as_str().unwrap();
    let path = format!("/api/messaging/rooms/{general}/messages/{message}");
    let (status, body) = app
        .send(
            "PATCH",
            &path,
            "alice",
            Some(json!({ "body": "Good evening, city" })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    feed_until(&app, "?actor=alice", |items| {
        texts(items).contains(&"Good evening, city")
    })
    .await;
    let (status, _) = app.send("DELETE", &path, "alice", None).await;
    assert!(status == 200 || status == 204, "{status}");
    let mine = feed_until(&app, "?actor=alice", |items| items.len() == 1).await;
    assert_eq!(texts(&mine), ["<script>alert(1)</script> **bold**"]);

    // Filters and pages.
    let replies = feed_until(&app, "?kind=agent_reply", |items| !items.is_empty()).await;
    assert_eq!(replies.len(), 1);
    let (_, page) = app
        .get_as("/api/city/feed?limit=1&room=general", None)
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, next) = app
        .get_as(
            &format!("/api/city/feed?limit=1&room=general&cursor={cursor}"),
            None,
        )
        .await;
    assert_eq!(next["items"][0]["actor"], "agent:helper", "{next}");
    for (query, expected) in [
        ("?kind=gossip", 400),
        ("?limit=0", 422),
        ("?limit=101", 422),
        ("?cursor=garbage", 400),
        ("?room=Not_A_Slug", 422),
    ] {
        let (status, body) = app.get_as(&format!("/api/city/feed{query}"), None).await;
        assert_eq!(status, expected, "{query}: {body}");
    }
    let long = "a".repeat(201);
    let (status, _) = app
        .get_as(&format!("/api/city/feed?actor={long}"), None)
        .await;
    assert_eq!(status, 422);
    app.stop().await;
}

async fn agents_report_presence_and_go_offline_when_silent(kind: Kind) {
    let Some(mut city) = City::new(kind).await else {
        return;
    };
    city.settings
        .services
        .update(&daarion_city::SPEC, |x: &mut daarion_city::Settings| {
            x.agent_presence_ttl_secs = 3
        })
        .unwrap();
    let app = city.spawn().await;
    let key = app.api_key_for_agent("carol", "helper").await;
    let as_agent = || ("authorization", format!("Bearer {key}"));
    let mut live = app.ws_as("/ws/city/feed", "visitor").await;
    let (status, body) = app
        .send_with(
            "POST",
            "/api/city/agents/presence",
            as_agent(),
            Some(json!({ "status": "online" })),
        )
        .await;
    assert_eq!(
        (status, body["status"].clone()),
        (200, json!("online")),
        "{body}"
    );
    let frame = next_of(&mut live, "agent").await;
    assert_eq!(
        (frame["agent"].clone(), frame["status"].clone()),
        (json!("helper"), json!("online"))
    );

    let (status, body) = app
        .send(
            "POST",
            "/api/city/agents/presence",
            "carol",
            Some(json!({ "status": "online" })),
        )
        .await;
    assert_eq!(status, 403, "a person is not an agent: {body}");
    let (status, _) = app
        .send_with(
            "POST",
            "/api/city/agents/presence",
            as_agent(),
            Some(json!({ "status": "asleep" })),
        )
        .await;
    assert_eq!(status, 422);
    let (status, _) = app.get_as("/api/city/agents/nobody", None).await;
    assert_eq!(status, 404);

    let (status, body) = app
        .send_with(
            "POST",
            "/api/city/agents/presence",
            as_agent(),
            Some(json!({ "status": "busy" })),
        )
        .await;
    assert_eq!((status, body["status"].clone()), (200, json!("busy")));
    assert_eq!(next_of(&mut live, "agent").await["status"], "busy");
    let (_, listed) = app.get_as("/api/city/agents", None).await;
    assert_eq!(listed["items"][0]["status"], "busy", "{listed}");

    // Silent past the ttl: offline, announced by the sweeper.
    let frame = tokio::time::timeout(Duration::from_secs(10), next_of(&mut live, "agent"))
        .await
        .expect("the lapse is announced");
    assert_eq!(frame["status"], "offline");
    let (_, one) = app.get_as("/api/city/agents/helper", None).await;
    assert_eq!(one["status"], "offline", "{one}");

    app.send_with(
        "POST",
        "/api/city/agents/presence",
        as_agent(),
        Some(json!({ "status": "online" })),
    )
    .await;
    assert_eq!(next_of(&mut live, "agent").await["status"], "online");
    let (_, body) = app
        .send_with(
            "POST",
            "/api/city/agents/presence",
            as_agent(),
            Some(json!({ "status": "offline" })),
        )
        .await;
    assert_eq!(
        body["status"], "offline",
        "signing off takes effect at once"
    );
    assert_eq!(next_of(&mut live, "agent").await["status"], "offline");
    app.stop().await;
}
