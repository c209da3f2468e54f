//! MicroDAOs end to end: create, see, join, invite, roles (custom ones
//! too) and removal, the treasury, on both backends; who may and who may not; bad input;
//! concurrent use of one invitation and of one balance; a removed member
//! refused at once on another replica.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{City, Kind, TestApp, error_code};
use serde_json::{Value, json};

on_every_backend!(
    a_community_is_created_seen_joined_and_left,
    invitations_let_people_into_a_private_community_within_their_limits,
    roles_are_changed_by_those_above_and_never_leave_it_ownerless,
    bad_input_is_refused_and_nothing_is_half_written,
    the_treasury_is_a_ledger_that_never_overdraws_and_remembers,
    agents_are_brought_in_by_their_owners_and_act_as_members,
    custom_roles_grant_what_they_name_and_no_more,
);

async fn create(app: &TestApp, user: &str, body: Value) -> (u16, Value) {
    app.send("POST", "/api/microdao/daos", user, Some(body))
        .await
}

fn member(app_user_id: &str) -> String {
    format!("user:{app_user_id}")
}

async fn a_community_is_created_seen_joined_and_left(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let (status, dao) = create(
        &app,
        "alice",
        json!({"slug": "makers", "name": "Kyiv Makers", "description": "We build things", "district": "podil"}),
    )
    .await;
    assert_eq!(status, 201, "{dao}");
    assert_eq!(dao["my_role"], "owner");
    assert_eq!(dao["visibility"], "public");
    assert_eq!(dao["members"], 1);
    let (status, secret) = create(
        &app,
        "alice",
        json!({"slug": "inner-circle", "name": "Inner circle", "visibility": "private"}),
    )
    .await;
    assert_eq!(status, 201, "{secret}");

    // Bob sees the public one only, and may join it but not the private one.
    let (_, list) = app.get_as("/api/microdao/daos", Some("bob")).await;
    let slugs: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["makers"]);
    let (status, _) = app
        .get_as("/api/microdao/daos/inner-circle", Some("bob"))
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .send("POST", "/api/microdao/daos/inner-circle/join", "bob", None)
        .await;
    assert_eq!(status, 403);
    let (status, joined) = app
        .send("POST", "/api/microdao/daos/makers/join", "bob", None)
        .await;
    assert_eq!(
        (status, joined["role"].clone()),
        (200, json!("member")),
        "{joined}"
    );
    let (status, again) = app
        .send("POST", "/api/microdao/daos/makers/join", "bob", None)
        .await;
    assert_eq!((status, error_code(&again)), (409, "conflict"));
    let (_, dao) = app.get_as("/api/microdao/daos/makers", Some("bob")).await;
    assert_eq!(
        (dao["my_role"].clone(), dao["members"].clone()),
        (json!("member"), json!(2))
    );
    let (_, members) = app
        .get_as("/api/microdao/daos/makers/members", Some("bob"))
        .await;
    assert_eq!(members["items"].as_array().unwrap().len(), 2);

    // A member may not change the community; its owner may; a stranger
    // does not see the private one in any list.
    let (status, _) = app
        .send(
            "PATCH",
            "/api/microdao/daos/makers",
            "bob",
            Some(json!({"name": "Mine"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, renamed) = app
        .send(
            "PATCH",
            "/api/microdao/daos/makers",
            "alice",
            Some(json!({"name": "Kyiv Makers Guild", "district": ""})),
        )
        .await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(renamed["name"], "Kyiv Makers Guild");
    assert_eq!(renamed["district"], Value::Null);

    let (status, left) = app
        .send("POST", "/api/microdao/daos/makers/leave", "bob", None)
        .await;
    assert_eq!(
        (status, left["change"].clone()),
        (200, json!("left")),
        "{left}"
    );
    let (_, dao) = app.get_as("/api/microdao/daos/makers", Some("bob")).await;
    assert_eq!(dao["my_role"], Value::Null);

    // Archived: read-only, and only its owner may archive it.
    let (status, _) = app
        .send("POST", "/api/microdao/daos/makers/archive", "bob", None)
        .await;
    assert_eq!(status, 403);
    let (status, archived) = app
        .send("POST", "/api/microdao/daos/makers/archive", "alice", None)
        .await;
    assert_eq!(status, 200);
    assert!(archived["archived_at"].is_string());
    let (status, body) = app
        .send("POST", "/api/microdao/daos/makers/join", "bob", None)
        .await;
    assert_eq!((status, error_code(&body)), (409, "conflict"), "{body}");
    let (_, list) = app.get_as("/api/microdao/daos", Some("bob")).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
    app.stop().await;
}

async fn invitations_let_people_into_a_private_community_within_their_limits(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    let (status, _) = create(
        &app,
        "alice",
        json!({"slug": "council", "name": "Council", "visibility": "private"}),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = app
        .send(
            "POST",
            "/api/microdao/daos/council/invites",
            "bob",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, 403, "a stranger cannot invite");
    let (status, invite) = app
        .send(
            "POST",
            "/api/microdao/daos/council/invites",
            "alice",
            Some(json!({"max_uses": 3, "expires_in_days": 1})),
        )
        .await;
    assert_eq!(status, 201, "{invite}");
    let code = invite["code"].as_str().unwrap().to_owned();
    assert!(code.starts_with("mdi_"));

    // Six people race for three places: exactly three get in.
    let people: Vec<String> = (0..6).map(|n| format!("guest{n}")).collect();
    for name in &people {
        app.session(name).await;
    }
    let results = futures::future::join_all(people.iter().map(|name| {
        app.send(
            "POST",
            "/api/microdao/invites/accept",
            name,
            Some(json!({"code": code})),
        )
    }))
    .await;
    let joined = results.iter().filter(|(s, _)| *s == 200).count();
    let refused = results.iter().filter(|(s, _)| *s == 404).count();
    assert_eq!((joined, refused), (3, 3), "{results:?}");
    let (_, listed) = app
        .get_as("/api/microdao/daos/council/invites", Some("alice"))
        .await;
    assert_eq!(listed["items"][0]["uses"], 3);
    assert!(
        listed["items"][0].get("code").is_none(),
        "codes are shown once"
    );
    let (_, dao) = app
        .get_as("/api/microdao/daos/council", Some("alice"))
        .await;
    assert_eq!(dao["members"], 4);

    // A member reads the private community; a revoked code lets nobody in.
    let winner = &people[results.iter().position(|(s, _)| *s == 200).unwrap()];
    let (status, dao) = app.get_as("/api/microdao/daos/council", Some(winner)).await;
    assert_eq!((status, dao["my_role"].clone()), (200, json!("member")));
    let (_, second) = app
        .send(
            "POST",
            "/api/microdao/daos/council/invites",
            "alice",
            Some(json!({})),
        )
        .await;
    let id = second["id"].as_str().unwrap();
    let (status, _) = app
        .send(
            "DELETE",
            &format!("/api/microdao/daos/council/invites/{id}"),
            "alice",
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = app
        .send(
            "POST",
            "/api/microdao/invites/accept",
            "carol",
            Some(json!({"code": second["code"]})),
        )
        .await;
    assert_eq!(status, 404);
    for bad in ["", "mdi_not-a-code", "inv_something"] {
        let (status, _) = app
            .send(
                "POST",
                "/api/microdao/invites/accept",
                "carol",
                Some(json!({"code": bad})),
            )
            .await;
        assert_eq!(status, 404, "{bad:?}");
    }
    app.stop().await;
}

async fn roles_are_changed_by_those_above_and_never_leave_it_ownerless(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    create(
        &app,
        "alice",
        json!({"slug": "guild", "name": "Guild", "visibility": "private"}),
    )
    .await;
    let (_, invite) = app
        .send(
            "POST",
            "/api/microdao/daos/guild/invites",
            "alice",
            Some(json!({"max_uses": 10})),
        )
        .await;
    let code = invite["code"].clone();
    for name in ["bob", "carol", "dave"] {
        let (status, body) = app
            .send(
                "POST",
                "/api/microdao/invites/accept",
                name,
                Some(json!({"code": code})),
            )
            .await;
        assert_eq!(status, 200, "{name}: {body}");
    }
    let (bob, carol, alice) = (
        member(&app.user_id("bob").await),
        member(&app.user_id("carol").await),
        member(&app.user_id("alice").await),
    );
    let path = |who: &str| format!("/api/microdao/daos/guild/members/{who}");

    // A member cannot promote anyone; the owner makes Bob an admin.
    let (status, _) = app
        .send(
            "PUT",
            &path(&carol),
            "carol",
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = app
        .send("PUT", &path(&bob), "alice", Some(json!({"role": "admin"})))
        .await;
    assert_eq!(status, 200, "{body}");
    // The admin may demote and remove members, not touch the owner, and
    // not make admins.
    let (status, body) = app
        .send("PUT", &path(&carol), "bob", Some(json!({"role": "guest"})))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app
        .send("PUT", &path(&carol), "bob", Some(json!({"role": "admin"})))
        .await;
    assert_eq!(status, 403);
    let (status, _) = app.send("DELETE", &path(&alice), "bob", None).await;
    assert_eq!(status, 403);
    let (status, body) = app
        .send(
            "PUT",
            &path(&carol),
            "alice",
            Some(json!({"role": "agent"})),
        )
        .await;
    assert_eq!((status, error_code(&body)), (422, "validation_failed"));

    // Removed with a ban: refused at once, and cannot come back.
    let (status, _) = app.get_as("/api/microdao/daos/guild", Some("carol")).await;
    assert_eq!(status, 200);
    let (status, body) = app
        .send("DELETE", &format!("{}?ban=true", path(&carol)), "bob", None)
        .await;
    assert_eq!(
        (status, body["change"].clone()),
        (200, json!("banned")),
        "{body}"
    );
    let (status, _) = app.get_as("/api/microdao/daos/guild", Some("carol")).await;
    assert_eq!(status, 403, "a removed member loses access at once");
    let (status, body) = app
        .send(
            "POST",
            "/api/microdao/invites/accept",
            "carol",
            Some(json!({"code": code})),
        )
        .await;
    assert_eq!((status, error_code(&body)), (403, "forbidden"), "{body}");

    // The last owner can neither leave nor step down; a second owner can.
    let (status, body) = app
        .send("POST", "/api/microdao/daos/guild/leave", "alice", None)
        .await;
    assert_eq!((status, error_code(&body)), (409, "conflict"), "{body}");
    let (status, _) = app
        .send(
            "PUT",
            &path(&alice),
            "alice",
            Some(json!({"role": "member"})),
        )
        .await;
    assert_eq!(status, 409);
    let (status, _) = app
        .send("PUT", &path(&bob), "alice", Some(json!({"role": "owner"})))
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .send("POST", "/api/microdao/daos/guild/leave", "alice", None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = app.get_as("/api/microdao/daos/guild", Some("alice")).await;
    assert_eq!(status, 403);

    // Nesting: only those who may write the parent.
    let child = json!({"slug": "guild-lab", "name": "Lab", "parent": "guild"});
    let (status, _) = create(&app, "dave", child.clone()).await;
    assert_eq!(status, 403);
    let (status, body) = create(&app, "bob", child).await;
    assert_eq!(
        (status, body["parent"].clone()),
        (201, json!("guild")),
        "{body}"
    );
    app.stop().await;
}

async fn bad_input_is_refused_and_nothing_is_half_written(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    for bad in [
        json!({"slug": "X", "name": "x"}),
        json!({"slug": "ok-slug", "name": ""}),
        json!({"slug": "ok-slug", "name": "n".repeat(81)}),
        json!({"slug": "ok-slug", "name": "n", "avatar_url": "javascript:alert(1)"}),
        json!({"slug": "ok-slug", "name": "n", "district": "Not A Slug"}),
        json!({"slug": "ok-slug", "name": "n", "description": "d".repeat(2001)}),
    ] {
        let (status, body) = create(&app, "alice", bad.clone()).await;
        assert_eq!(
            (status, error_code(&body)),
            (422, "validation_failed"),
            "{bad}"
        );
    }
    let (status, body) = create(
        &app,
        "alice",
        json!({"slug": "ok-slug", "name": "n", "visibility": "secret"}),
    )
    .await;
    assert!(matches!(status, 400 | 422), "{status} {body}");
    let (status, body) = create(
        &app,
        "alice",
        json!({"slug": "ok-slug", "name": "n", "parent": "nowhere"}),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    let (_, list) = app.get_as("/api/microdao/daos", Some("alice")).await;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "nothing half-written"
    );

    // One create, retried with its key: one microDAO; the slug is then taken.
    let cookie = app.cookie("alice").await;
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let response = app
            .client
            .post(app.url("/api/microdao/daos"))
            .header("cookie", &cookie)
            .header("idempotency-key", "create-once")
            .json(&json!({"slug": "once", "name": "Once"}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [201, 200]);
    let (status, body) = create(&app, "bob", json!({"slug": "once", "name": "Twice"})).await;
    assert_eq!((status, error_code(&body)), (409, "conflict"));
    let (_, members) = app
        .get_as("/api/microdao/daos/once/members", Some("alice"))
        .await;
    assert_eq!(members["items"].as_array().unwrap().len(), 1);
    let (status, _) = app.get_as("/api/microdao/daos", None).await;
    assert_eq!(status, 401);
    app.stop().await;
}

/// Two replicas of the microDAO service: a member removed through one is
/// refused by the other as soon as the membership event arrives.
#[tokio::test]
async fn a_removed_member_is_refused_by_every_replica_at_once() {
    let Some(city) = City::new(Kind::Distributed).await else {
        return;
    };
    let (mut auth, a, b) = city.auth_and_two_replicas("microdao").await;
    auth.people = a.people.clone();
    let (status, _) = create(
        &a,
        "alice",
        json!({"slug": "ring", "name": "Ring", "visibility": "private"}),
    )
    .await;
    assert_eq!(status, 201);
    let (_, invite) = a
        .send(
            "POST",
            "/api/microdao/daos/ring/invites",
            "alice",
            Some(json!({})),
        )
        .await;
    let (status, _) = a
        .send(
            "POST",
            "/api/microdao/invites/accept",
            "bob",
            Some(json!({"code": invite["code"]})),
        )
        .await;
    assert_eq!(status, 200);
    // Replica b resolves (and caches) Bob's roles.
    let (status, _) = b.get_as("/api/microdao/daos/ring", Some("bob")).await;
    assert_eq!(status, 200);
    let (_, me) = auth.get_as("/api/auth/me", Some("bob")).await;
    let bob = member(me["user"]["id"].as_str().unwrap());
    let (status, _) = a
        .send(
            "DELETE",
            &format!("/api/microdao/daos/ring/members/{bob}"),
            "alice",
            None,
        )
        .await;
    assert_eq!(status, 200);
    refused_within_a_second(&b, "/api/microdao/daos/ring", "bob").await;
    for app in [a, b, auth] {
        app.stop().await;
    }
}

/// Waits until `app` refuses `user` a read of `path`: well before cached
/// roles expire (5 s), so only an event can have told it.
async fn refused_within_a_second(app: &TestApp, path: &str, user: &str) {
    let since = Instant::now();
    loop {
        let (status, _) = app.get_as(path, Some(user)).await;
        if status == 403 {
            return;
        }
        assert!(
            since.elapsed() < Duration::from_millis(1000),
            "{user} is still let in to {path}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn the_treasury_is_a_ledger_that_never_overdraws_and_remembers(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    create(&app, "alice", json!({"slug": "bank", "name": "Bank"})).await;
    for name in ["bob", "carol"] {
        let (status, _) = app
            .send("POST", "/api/microdao/daos/bank/join", name, None)
            .await;
        assert_eq!(status, 200);
    }
    let bob = member(&app.user_id("bob").await);
    let alice = member(&app.user_id("alice").await);
    let base = "/api/microdao/daos/bank/treasury";
    let mint = format!("{base}/mint");
    let transfer = format!("{base}/transfers");

    let (status, body) = app
        .send(
            "POST",
            &mint,
            "alice",
            Some(json!({"to": "dao:bank", "amount": 100, "memo": "genesis"})),
        )
        .await;
    assert_eq!(
        (status, body["from"].clone()),
        (201, json!("issued:bank")),
        "{body}"
    );
    let (status, _) = app
        .send(
            "POST",
            &mint,
            "alice",
            Some(json!({"to": bob, "amount": 30})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = app
        .send(
            "POST",
            &mint,
            "bob",
            Some(json!({"to": bob, "amount": 1000})),
        )
        .await;
    assert_eq!(status, 403, "a member does not mint");
    let (status, _) = app
        .send(
            "POST",
            &mint,
            "alice",
            Some(json!({"to": "user:nobody", "amount": 5})),
        )
        .await;
    assert_eq!(status, 422, "points go to members only");
    let before_spending = daarion_store::now();

    // Bob's 30 points, ten transfers of 5 at once: six pass, none overdraws.
    let results = futures::future::join_all((0..10).map(|_| {
        app.send(
            "POST",
            &transfer,
            "bob",
            Some(json!({"to": alice, "amount": 5, "memo": "thanks"})),
        )
    }))
    .await;
    let passed = results.iter().filter(|(s, _)| *s == 201).count();
    let refused = results.iter().filter(|(s, _)| *s == 409).count();
    assert_eq!((passed, refused), (6, 4), "{results:?}");

    // Whose points may move: not the microDAO's by a member; yes by its owner.
    let (status, _) = app
        .send(
            "POST",
            &transfer,
            "bob",
            Some(json!({"from": "dao:bank", "to": bob, "amount": 1})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .send(
            "POST",
            &transfer,
            "carol",
            Some(json!({"from": bob, "to": "dao:bank", "amount": 1})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .send(
            "POST",
            &transfer,
            "alice",
            Some(json!({"from": "dao:bank", "to": bob, "amount": 40})),
        )
        .await;
    assert_eq!(status, 201);
    for bad in [
        json!({"to": alice, "amount": 0}),
        json!({"to": alice, "amount": -3}),
        json!({"to": bob, "amount": 1}),
    ] {
        let (status, body) = app.send("POST", &transfer, "bob", Some(bad.clone())).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }

    // Balances now sum to the supply; at a past time they are as they were.
    let (_, now) = app.get_as(base, Some("carol")).await;
    let balance = |view: &Value, account: &str| -> i64 {
        view["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["account"] == account)
            .map_or(0, |a| a["balance"].as_i64().unwrap())
    };
    assert_eq!(now["supply"], 130, "{now}");
    assert_eq!(
        (
            balance(&now, "dao:bank"),
            balance(&now, &bob),
            balance(&now, &alice)
        ),
        (60, 40, 30)
    );
    let total: i64 = now["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["balance"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 130);
    let (status, then) = app
        .get_as(
            &format!("{base}?at={}", before_spending.replace('+', "%2B")),
            Some("carol"),
        )
        .await;
    assert_eq!(status, 200, "{then}");
    assert_eq!(
        (balance(&then, &bob), balance(&then, &alice)),
        (30, 0),
        "{then}"
    );
    let (status, _) = app
        .get_as(&format!("{base}?at=yesterday"), Some("carol"))
        .await;
    assert_eq!(status, 422);

    // The history: every movement, newest first, a page at a time; by account.
    let (_, page) = app
        .get_as(&format!("{base}/movements?limit=5"), Some("carol"))
        .await;
    assert_eq!(page["items"].as_array().unwrap().len(), 5);
    assert_eq!(page["items"][0]["amount"], 40);
    let mut seen = page["items"].as_array().unwrap().len();
    let mut cursor = page["next_cursor"].as_str().map(str::to_owned);
    while let Some(next) = cursor {
        let (_, page) = app
            .get_as(
                &format!("{base}/movements?limit=5&cursor={next}"),
                Some("carol"),
            )
            .await;
        seen += page["items"].as_array().unwrap().len();
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    assert_eq!(seen, 9, "2 mints, 6 transfers, 1 from the treasury");
    let (_, mine) = app
        .get_as(&format!("{base}/movements?account={alice}"), Some("carol"))
        .await;
    assert_eq!(mine["items"].as_array().unwrap().len(), 6);

    // A retried transfer with its key moves the points once.
    let cookie = app.cookie("alice").await;
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let response = app
            .client
            .post(app.url(&transfer))
            .header("cookie", &cookie)
            .header("idempotency-key", "pay-once")
            .json(&json!({"to": bob, "amount": 10}))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    assert_eq!(statuses, [201, 200]);
    let (_, after) = app.get_as(base, Some("carol")).await;
    assert_eq!(balance(&after, &bob), 50);
    let (status, _) = app.get_as(base, Some("stranger")).await;
    assert_eq!(status, 200, "a public microDAO's treasury is public");
    app.stop().await;
}

async fn agents_are_brought_in_by_their_owners_and_act_as_members(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    create(
        &app,
        "alice",
        json!({"slug": "lab", "name": "Lab", "visibility": "private"}),
    )
    .await;
    let (_, invite) = app
        .send(
            "POST",
            "/api/microdao/daos/lab/invites",
            "alice",
            Some(json!({})),
        )
        .await;
    let (status, body) = app
        .send(
            "POST",
            "/api/microdao/invites/accept",
            "bob",
            Some(json!({"code": invite["code"]})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let helper_key = app.api_key_for_agent("alice", "helper").await;
    app.api_key_for_agent("bob", "bobbot").await;
    let agents = "/api/microdao/daos/lab/agents";

    let as_helper = ("authorization", format!("Bearer {helper_key}"));
    let (status, _) = app
        .send_with("GET", "/api/microdao/daos/lab", as_helper.clone(), None)
        .await;
    assert_eq!(status, 403, "not a member yet");
    let (status, body) = app
        .send("POST", agents, "bob", Some(json!({"agent": "bobbot"})))
        .await;
    assert_eq!(status, 403, "a member is not an admin: {body}");
    let (status, body) = app
        .send("POST", agents, "alice", Some(json!({"agent": "bobbot"})))
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (403, "forbidden"),
        "not her agent: {body}"
    );
    let (status, body) = app
        .send("POST", agents, "alice", Some(json!({"agent": "ghost"})))
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = app
        .send("POST", agents, "alice", Some(json!({"agent": "helper"})))
        .await;
    assert_eq!(
        (status, body["role"].clone()),
        (200, json!("agent")),
        "{body}"
    );
    let (status, body) = app
        .send("POST", agents, "alice", Some(json!({"agent": "helper"})))
        .await;
    assert_eq!(status, 409, "{body}");

    // The agent now reads the private microDAO as a member does.
    let (status, dao) = app
        .send_with("GET", "/api/microdao/daos/lab", as_helper.clone(), None)
        .await;
    assert_eq!(
        (status, dao["my_role"].clone()),
        (200, json!("agent")),
        "{dao}"
    );
    let (status, _) = app
        .send(
            "DELETE",
            "/api/microdao/daos/lab/members/agent:helper",
            "alice",
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .send_with("GET", "/api/microdao/daos/lab", as_helper, None)
        .await;
    assert_eq!(status, 403);
    app.stop().await;
}

async fn custom_roles_grant_what_they_name_and_no_more(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = city.spawn().await;
    create(&app, "alice", json!({"slug": "guild", "name": "Guild"})).await;
    for name in ["bob", "carol", "dave"] {
        let (status, _) = app
            .send("POST", "/api/microdao/daos/guild/join", name, None)
            .await;
        assert_eq!(status, 200);
    }
    let (bob, carol, dave) = (
        member(&app.user_id("bob").await),
        member(&app.user_id("carol").await),
        member(&app.user_id("dave").await),
    );
    let role = |name: &str| format!("/api/microdao/daos/guild/roles/{name}");
    let holder =
        |name: &str, who: &str| format!("/api/microdao/daos/guild/roles/{name}/holders/{who}");
    let invites = "/api/microdao/daos/guild/invites";
    let mint = "/api/microdao/daos/guild/treasury/mint";
    let invite_as = |role: &str| Some(json!({"role": role}));

    // Before any custom role, members neither invite nor mint.
    let (status, _) = app.send("POST", invites, "bob", invite_as("member")).await;
    assert_eq!(status, 403);
    let (status, _) = app
        .send(
            "POST",
            mint,
            "carol",
            Some(json!({"to": "dao:guild", "amount": 5})),
        )
        .await;
    assert_eq!(status, 403);

    // Only owners define roles, from the permissions the policies know.
    let recruiter = Some(json!({"description": "Brings people in", "permissions": ["invite"]}));
    let (status, _) = app
        .send("PUT", &role("recruiter"), "bob", recruiter.clone())
        .await;
    assert_eq!(status, 403, "a member cannot define roles");
    let (status, body) = app
        .send("PUT", &role("recruiter"), "alice", recruiter.clone())
        .await;
    assert_eq!(
        (status, body["permissions"].clone()),
        (201, json!(["invite"])),
        "{body}"
    );
    let (status, _) = app
        .send("PUT", &role("recruiter"), "alice", recruiter)
        .await;
    assert_eq!(status, 200, "redefining answers 200");
    for (name, body) in [
        ("admin", json!({"permissions": []})),
        ("Bad Name", json!({"permissions": []})),
        ("mayor", json!({"permissions": ["archive"]})),
        ("mayor", json!({"permissions": "invite"})),
    ] {
        let (status, answer) = app.send("PUT", &role(name), "alice", Some(body)).await;
        assert_eq!(status, 422, "{name}: {answer}");
        assert_eq!(error_code(&answer), "validation_failed");
    }

    // Bob, a recruiter, invites members (not admins) and nothing more.
    let (status, _) = app
        .send("PUT", &holder("recruiter", &bob), "carol", None)
        .await;
    assert_eq!(status, 403, "only owners give custom roles");
    let (status, body) = app
        .send("PUT", &holder("recruiter", &bob), "alice", None)
        .await;
    assert_eq!(
        (status, body["change"].clone(), body["custom_role"].clone()),
        (200, json!("granted"), json!("recruiter")),
        "{body}"
    );
    let (_, view) = app.get_as("/api/microdao/daos/guild", Some("bob")).await;
    assert_eq!(view["my_permissions"], json!(["invite"]), "{view}");
    let (status, body) = app.send("POST", invites, "bob", invite_as("member")).await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = app.send("POST", invites, "bob", invite_as("admin")).await;
    assert_eq!(status, 403, "a recruiter cannot invite admins");
    let (status, _) = app
        .send(
            "PUT",
            &format!("/api/microdao/daos/guild/members/{carol}"),
            "bob",
            Some(json!({"role": "guest"})),
        )
        .await;
    assert_eq!(status, 403, "inviting is not changing members");
    let (status, _) = app
        .send("POST", "/api/microdao/daos/guild/archive", "bob", None)
        .await;
    assert_eq!(status, 403);

    // Carol, a treasurer, mints and spends the microDAO's points.
    app.send(
        "PUT",
        &role("treasurer"),
        "alice",
        Some(json!({"permissions": ["treasury"]})),
    )
    .await;
    let (status, _) = app
        .send("PUT", &holder("treasurer", &carol), "alice", None)
        .await;
    assert_eq!(status, 200);
    let (status, body) = app
        .send(
            "POST",
            mint,
            "carol",
            Some(json!({"to": "dao:guild", "amount": 50})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app
        .send(
            "POST",
            "/api/microdao/daos/guild/treasury/transfers",
            "carol",
            Some(json!({"from": "dao:guild", "to": bob, "amount": 20})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = app
        .send("POST", mint, "bob", Some(json!({"to": bob, "amount": 1})))
        .await;
    assert_eq!(status, 403, "a recruiter does not mint");

    // Dave, a keeper, changes the microDAO's rooms (in the messaging service).
    app.send(
        "PUT",
        &role("keeper"),
        "alice",
        Some(json!({"permissions": ["rooms"]})),
    )
    .await;
    let (_, rooms) = app
        .get_as("/api/messaging/daos/guild/rooms", Some("dave"))
        .await;
    let general = format!(
        "/api/messaging/rooms/{}",
        rooms["items"][0]["id"].as_str().unwrap()
    );
    let slow = Some(json!({"slow_mode_secs": 10}));
    let (status, _) = app.send("PATCH", &general, "dave", slow.clone()).await;
    assert_eq!(status, 403);
    app.send("PUT", &holder("keeper", &dave), "alice", None)
        .await;
    let (status, body) = app.send("PATCH", &general, "dave", slow).await;
    assert_eq!(status, 200, "{body}");

    // A role redefined or deleted takes effect at once for its holders.
    let (_, listed) = app
        .get_as("/api/microdao/daos/guild/roles", Some("dave"))
        .await;
    let holders: Vec<(Value, Value)> = listed["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].clone(), r["holders"].clone()))
        .collect();
    assert_eq!(
        holders,
        [
            (json!("keeper"), json!(1)),
            (json!("recruiter"), json!(1)),
            (json!("treasurer"), json!(1))
        ]
    );
    app.send(
        "PUT",
        &role("recruiter"),
        "alice",
        Some(json!({"permissions": []})),
    )
    .await;
    let (status, _) = app.send("POST", invites, "bob", invite_as("member")).await;
    assert_eq!(status, 403, "the redefined role grants nothing now");
    let (status, _) = app.send("DELETE", &role("treasurer"), "alice", None).await;
    assert_eq!(status, 204);
    let (status, _) = app
        .send(
            "POST",
            mint,
            "carol",
            Some(json!({"to": "dao:guild", "amount": 1})),
        )
        .await;
    assert_eq!(status, 403, "the deleted role grants nothing");
    let (_, members) = app
        .get_as("/api/microdao/daos/guild/members", Some("carol"))
        .await;
    let carols = members["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["principal"] == json!(carol))
        .unwrap();
    assert_eq!(carols["custom_role"], Value::Null);

    // Taking back, or giving, what does not exist.
    let (status, _) = app
        .send("DELETE", &holder("keeper", &bob), "alice", None)
        .await;
    assert_eq!(status, 404, "Bob does not hold it");
    let (status, body) = app
        .send("DELETE", &holder("keeper", &dave), "alice", None)
        .await;
    assert_eq!((status, body["change"].clone()), (200, json!("revoked")));
    let (status, _) = app
        .send(
            "PATCH",
            &general,
            "dave",
            Some(json!({"slow_mode_secs": 0})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, _) = app
        .send("PUT", &holder("treasurer", &dave), "alice", None)
        .await;
    assert_eq!(status, 404, "no such role any more");
    let (status, _) = app
        .send("PUT", &holder("keeper", "user:nobody"), "alice", None)
        .await;
    assert_eq!(status, 404, "not a member");
    app.stop().await;
}

/// Two replicas: a custom role redefined through one grants nothing on
/// the other as soon as the event arrives (well before cached roles expire).
#[tokio::test]
async fn a_redefined_custom_role_reaches_every_replica_at_once() {
    let Some(city) = City::new(Kind::Distributed).await else {
        return;
    };
    let (mut auth, a, b) = city.auth_and_two_replicas("microdao").await;
    auth.people = a.people.clone();
    create(&a, "alice", json!({"slug": "hall", "name": "Hall"})).await;
    let (status, _) = a
        .send("POST", "/api/microdao/daos/hall/join", "bob", None)
        .await;
    assert_eq!(status, 200);
    let (_, me) = auth.get_as("/api/auth/me", Some("bob")).await;
    let bob = member(me["user"]["id"].as_str().unwrap());
    let role = "/api/microdao/daos/hall/roles/recruiter";
    a.send(
        "PUT",
        role,
        "alice",
        Some(json!({"permissions": ["invite"]})),
    )
    .await;
    let (status, _) = a
        .send("PUT", &format!("{role}/holders/{bob}"), "alice", None)
        .await;
    assert_eq!(status, 200);
    let invites = "/api/microdao/daos/hall/invites";
    let (status, _) = b.get_as(invites, Some("bob")).await;
    assert_eq!(
        status, 200,
        "replica b resolves (and caches) Bob's permissions"
    );
    a.send("PUT", role, "alice", Some(json!({"permissions": []})))
        .await;
    refused_within_a_second(&b, invites, "bob").await;
    for app in [a, b, auth] {
        app.stop().await;
    }
}
