//! Backups and restore, on both backends: a city backed up while people
//! keep posting and its treasury keeps minting is restored into a fresh
//! data directory (or an empty PostgreSQL database), and the restored
//! city holds every message, vote and ledger entry acknowledged before the
//! backup began; a damaged backup is refused, by the library and by
//! `daarion restore`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    collections::HashSet,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::{City, Kind};
use serde_json::json;

on_every_backend!(a_city_backed_up_under_load_restores_with_everything_acknowledged_before,);

/// What the writers had acknowledged, each with when.
#[derive(Default)]
struct Acked {
    messages: Vec<(Instant, String)>,
    mints: Vec<Instant>,
    /// Receipts' hashes.
    votes: Vec<(Instant, String)>,
}

async fn a_city_backed_up_under_load_restores_with_everything_acknowledged_before(kind: Kind) {
    let Some(city) = City::new(kind).await else {
        return;
    };
    let app = Arc::new(city.spawn().await);
    let general = common::community(&app, "alice", "makers", "public").await;
    // Several people post: each is paced by messaging on their own.
    let people = ["alice", "bob", "carol", "dave"];
    for who in &people[1..] {
        let (status, body) = app
            .send("POST", "/api/microdao/daos/makers/join", who, None)
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, proposal) = app
        .send(
            "POST",
            "/api/dao/daos/makers/proposals",
            "alice",
            Some(
                json!({"title": "Kettle", "method": "single", "options": ["yes", "no"],
                "vote_change": true, "threshold": {"kind": "plurality"}, "voting_secs": 3600}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{proposal}");
    let proposal = proposal["id"].as_str().unwrap().to_owned();
    let (status, body) = app
        .send(
            "POST",
            &format!("/api/dao/proposals/{proposal}/open"),
            "alice",
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let acked = Arc::new(Mutex::new(Acked::default()));
    let writing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let (app, acked, writing, general, proposal) = (
            app.clone(),
            acked.clone(),
            writing.clone(),
            general.clone(),
            proposal.clone(),
        );
        tokio::spawn(async move {
            let mut n = 0;
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let (status, m) = app
                    .send(
                        "POST",
                        &format!("/api/messaging/rooms/{general}/messages"),
                        people[n % people.len()],
                        Some(json!({"body": format!("note {n}")})),
                    )
                    .await;
                if status == 429 {
                    // Not acknowledged: nothing to find after the restore.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                assert_eq!(status, 201, "{m}");
                let id = m["id"].as_str().unwrap().to_owned();
                acked.lock().unwrap().messages.push((Instant::now(), id));
                let (status, receipt) = app
                    .send(
                        "POST",
                        &format!("/api/dao/proposals/{proposal}/votes"),
                        people[n % people.len()],
                        Some(json!({"ballot": {"choice": n % 2}})),
                    )
                    .await;
                if status == 201 {
                    let hash = receipt["hash"].as_str().unwrap().to_owned();
                    acked.lock().unwrap().votes.push((Instant::now(), hash));
                } else {
                    assert_eq!(status, 429, "{receipt}");
                }
                if n % 3 == 0 {
                    let (status, body) = app
                        .send(
                            "POST",
                            "/api/microdao/daos/makers/treasury/mint",
                            "alice",
                            Some(json!({"to": "dao:makers", "amount": 1})),
                        )
                        .await;
                    assert_eq!(status, 201, "{body}");
                    acked.lock().unwrap().mints.push(Instant::now());
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let dir = tempfile::tempdir().unwrap();
    let began = Instant::now();
    let backup = daarion_backup::create(&city.settings.database(), dir.path())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    let (before, mints_before, votes_before) = {
        let acked = acked.lock().unwrap();
        let before: HashSet<String> = acked
            .messages
            .iter()
            .filter(|(at, _)| *at < began)
            .map(|(_, id)| id.clone())
            .collect();
        let mints = acked.mints.iter().filter(|at| **at < began).count();
        let votes: HashSet<String> = acked
            .votes
            .iter()
            .filter(|(at, _)| *at < began)
            .map(|(_, hash)| hash.clone())
            .collect();
        assert!(
            acked.messages.len() > before.len(),
            "writes went on during the backup"
        );
        (before, mints, votes)
    };
    assert!(before.len() >= 5, "{} messages before", before.len());
    assert!(!votes_before.is_empty(), "votes before");
    assert_eq!(
        daarion_backup::list(dir.path()).unwrap(),
        vec![backup.clone()]
    );
    // Recorded in the city's history: its processes report the backup's age.
    let made = backup.manifest.created_at.timestamp();
    daarion_testkit::eventually("the backup's age", Duration::from_secs(20), || async {
        let metrics = app
            .client
            .get(app.url("/metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        metrics
            .lines()
            .any(|l| {
                l.starts_with("backup_last_success_timestamp_seconds")
                    && l.ends_with(&format!(" {made}"))
            })
            .then_some(())
    })
    .await;

    // Into a fresh place (a new data directory, an empty database), and a
    // city started on it.
    let mut restored = City::new(kind).await.unwrap();
    restored.people = city.people.clone();
    daarion_backup::restore(&backup, &restored.settings.database())
        .await
        .unwrap();
    let again = daarion_backup::restore(&backup, &restored.settings.database()).await;
    assert!(again.is_err(), "never over a city");
    let app = restored.spawn().await;
    let mut found = HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = cursor
            .as_ref()
            .map_or(String::new(), |c| format!("&cursor={c}"));
        let (status, page) = app
            .get_as(
                &format!("/api/messaging/rooms/{general}/messages?limit=100{query}"),
                Some("alice"),
            )
            .await;
        assert_eq!(status, 200, "{page}");
        for m in page["items"].as_array().unwrap() {
            found.insert(m["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let missing: Vec<&String> = before.difference(&found).collect();
    assert!(missing.is_empty(), "lost in the restore: {missing:?}");
    let (status, record) = app
        .get_as(
            &format!("/api/dao/proposals/{proposal}/record?limit=1000"),
            Some("alice"),
        )
        .await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["intact"], true, "the restored record holds");
    let chain: HashSet<String> = record["votes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|link| link["hash"].as_str().unwrap().to_owned())
        .collect();
    let votes_missing: Vec<&String> = votes_before.difference(&chain).collect();
    assert!(
        votes_missing.is_empty(),
        "votes lost in the restore: {votes_missing:?}"
    );
    let (_, treasury) = app
        .get_as("/api/microdao/daos/makers/treasury", Some("alice"))
        .await;
    let balance = treasury["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == "dao:makers")
        .map_or(0, |a| a["balance"].as_i64().unwrap());
    assert!(
        balance >= i64::try_from(mints_before).unwrap(),
        "{balance} points, {mints_before} mints acknowledged before"
    );

    // A damaged backup is refused, and nothing is written.
    let bytes = std::fs::read(&backup.path).unwrap();
    let mut damaged = bytes.clone();
    let middle = damaged.len() / 2;
    damaged[middle] ^= 0xff;
    std::fs::write(&backup.path, &damaged).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = match kind {
        Kind::Embedded => format!("sqlite://{}/daarion.db", elsewhere.path().display()),
        Kind::Distributed => {
            let pg = daarion_testkit::require_env("DATABASE_URL").unwrap();
            daarion_testkit::fresh_postgres_database(&pg).await
        }
    };
    let refused = daarion_backup::restore(&backup, &target)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("is damaged"), "{refused}");
    assert!(!elsewhere.path().join("daarion.db").exists());
    if kind == Kind::Embedded {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_daarion"))
            .args(["restore", backup.path.to_str().unwrap(), "--data-dir"])
            .arg(elsewhere.path())
            .env_remove("DATABASE_URL")
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert!(said.contains("is damaged"), "{said}");
    }
}
