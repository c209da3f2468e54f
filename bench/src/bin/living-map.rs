//! The living map on `daarion up`: how long a snapshot of a city with
//! `--entities` things on it takes and how big it is, and how fast its
//! changes reach `--clients` sockets (deliveries/s, lag from the message
//! that caused a change to its delta at each client).
//!
//! The projection is seeded straight into its tables (what years of
//! events would have left there); the changes measured come from real
//! messages posted over HTTP in a public room, each moving its author's
//! activity edge, whose weight says which message it was.

#![allow(clippy::print_stdout)]

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::Parser;
use daarion_bench::{ms, percentile, rss_kib, start};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::{Message, client::IntoClientRequest};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    binary: PathBuf,
    /// Things on the map (nodes; as many edges again).
    #[arg(long, default_value_t = 10_000)]
    entities: usize,
    /// Snapshots asked for, one after another.
    #[arg(long, default_value_t = 20)]
    snapshots: usize,
    /// Sockets following the map.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// Messages posted (each a change every socket gets).
    #[arg(long, default_value_t = 200)]
    messages: usize,
    /// Messages a second.
    #[arg(long, default_value_t = 50)]
    rate: u64,
}

/// Nodes of every kind and edges between them, public, as the projection
/// keeps them.
async fn seed(db: &daarion_store::Db, entities: usize) -> anyhow::Result<()> {
    use daarion_store::sql;
    let kinds = ["dao", "room", "agent", "person", "node"];
    let mut tx = db.begin().await?;
    for chunk in (0..entities).collect::<Vec<_>>().chunks(500) {
        let rows: Vec<Value> = chunk
            .iter()
            .map(|i| {
                let kind = kinds[i % kinds.len()];
                json!([
                    format!("{kind}:seed{i}"),
                    kind,
                    format!("seed {i}"),
                    ((i * 7919) % 64000).to_string(),
                    ((i * 104_729) % 48000).to_string()
                ])
            })
            .collect();
        sql::query(sql::AssertSqlSafe(format!(
            "INSERT INTO livingmap_nodes (id, kind, label, dao, public, district, status, x, y, seq)
             SELECT c0, c1, c2, NULL, 1, NULL, NULL, CAST(c3 AS BIGINT), CAST(c4 AS BIGINT), 0
             FROM ({}) AS j",
            sql::json_rows(db.backend(), 1, 5)
        )))
        .bind(Value::from(rows).to_string())
        .execute(&mut *tx)
        .await?;
        let edges: Vec<Value> = chunk
            .iter()
            .map(|i| {
                let (a, b) = (kinds[i % kinds.len()], kinds[(i + 1) % kinds.len()]);
                json!([
                    format!("{a}:seed{i}"),
                    format!("{b}:seed{}", (i + 1) % entities)
                ])
            })
            .collect();
        sql::query(sql::AssertSqlSafe(format!(
            "INSERT INTO livingmap_edges (src, dst, kind, dao, public, weight, seq)
             SELECT c0, c1, 'activity', NULL, 1, 1, 0 FROM ({}) AS j",
            sql::json_rows(db.backend(), 1, 2)
        )))
        .bind(Value::from(edges).to_string())
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("daarion-livingmap-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let env = [(
        "DAARION__AUTH__LOGIN_ATTEMPTS_PER_MINUTE",
        "1000000".to_owned(),
    )];
    let (daarion, _) = start(&args.binary, &dir, &env).await?;
    let base = format!("127.0.0.1:{}", daarion.port);
    let db = daarion_store::Db::connect(&format!("sqlite://{}", dir.join("daarion.db").display()))
        .await?;
    seed(&db, args.entities).await?;
    db.close().await;

    let client = reqwest::Client::new();
    let person =
        daarion_testkit::passkey::Person::register(&client, &format!("http://{base}"), "mapper")
            .await?;
    let cookie = person.cookie();
    let mut times = Vec::new();
    let mut size = 0;
    let mut seq = 0;
    for _ in 0..args.snapshots {
        let (took, body) = snapshot(&client, &base, &cookie).await?;
        times.push(took);
        size = body.len();
        let snapshot: Value = serde_json::from_slice(&body)?;
        seq = snapshot["seq"].as_i64().context("no seq")?;
        anyhow::ensure!(
            snapshot["nodes"].as_array().map_or(0, Vec::len) >= args.entities,
            "the snapshot misses seeded nodes"
        );
    }
    // The first loads the replica's mirror of the map from the store.
    let first = times.remove(0);
    times.sort();

    // Sockets resume from the snapshot's number (no snapshot each).
    let epoch = Instant::now();
    let mut followers = Vec::new();
    for _ in 0..args.clients {
        let mut request =
            format!("ws://{base}/ws/living-map/stream?since={seq}").into_client_request()?;
        request.headers_mut().insert("cookie", cookie.parse()?);
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        followers.push(socket);
    }
    let rss = rss_kib(daarion.child.id())?;
    let sent = Arc::new(std::sync::Mutex::new(vec![
        Duration::ZERO;
        args.messages + 1
    ]));
    let expected = args.messages;
    let tasks: Vec<_> = followers
        .into_iter()
        .map(|mut socket| {
            let sent = sent.clone();
            tokio::spawn(async move {
                let mut lags = Vec::with_capacity(expected);
                let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
                let mut deliveries = 0usize;
                while lags.len() < expected {
                    let Ok(Some(Ok(Message::Text(text)))) =
                        tokio::time::timeout_at(deadline, socket.next()).await
                    else {
                        break;
                    };
                    let now = epoch.elapsed();
                    let frame: Value = serde_json::from_str(text.as_str()).unwrap_or_default();
                    for delta in frame["deltas"].as_array().into_iter().flatten() {
                        deliveries += 1;
                        let edge = &delta["edge"];
                        if edge["kind"] == "activity" && edge["from"] == "person:mapper" {
                            let k = edge["weight"].as_u64().unwrap_or(0) as usize;
                            let at = sent.lock().map(|s| s.get(k).copied()).ok().flatten();
                            if let Some(at) = at.filter(|a| !a.is_zero()) {
                                lags.push(now.saturating_sub(at));
                            }
                        }
                    }
                }
                (lags, deliveries)
            })
        })
        .collect();

    // Snapshots while the map changes, one every 250 ms.
    let busy = {
        let (client, base, cookie) = (client.clone(), base.clone(), cookie.clone());
        let until = Instant::now()
            + Duration::from_secs_f64(args.messages as f64 / args.rate.max(1) as f64);
        tokio::spawn(async move {
            let mut times = Vec::new();
            while Instant::now() < until {
                if let Ok((took, _)) = snapshot(&client, &base, &cookie).await {
                    times.push(took);
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            times.sort();
            times
        })
    };
    let started = Instant::now();
    let every = Duration::from_micros(1_000_000 / args.rate.max(1));
    for k in 1..=args.messages {
        let due = started + every * u32::try_from(k - 1)?;
        tokio::time::sleep_until(due.into()).await;
        if let Ok(mut s) = sent.lock() {
            s[k] = epoch.elapsed();
        }
        client
            // The city's square: every message moves the author's edge.
            .post(format!("http://{base}/api/city/rooms/general/messages"))
            .header("cookie", &cookie)
            .json(&json!({ "body": format!("tick {k}") }))
            .send()
            .await?
            .error_for_status()?;
    }
    let mut lags = Vec::new();
    let mut deliveries = 0;
    for task in tasks {
        let (l, d) = task.await?;
        lags.extend(l);
        deliveries += d;
    }
    let elapsed = started.elapsed();
    lags.sort();
    let busy = busy.await?;
    println!(
        "living map: snapshot of {} nodes + {} edges: first (loading the mirror) {}, then p50 {} p99 {}, {:.1} MiB; while changing: p50 {} p99 {} ({} snapshots); {} sockets (RSS {:.0} MiB), {} messages at {}/s: {} of {} changes delivered, {:.0} deliveries/s; lag p50 {} p99 {} max {}",
        args.entities,
        args.entities,
        ms(first),
        ms(percentile(&times, 50.0)),
        ms(percentile(&times, 99.0)),
        size as f64 / 1_048_576.0,
        ms(percentile(&busy, 50.0)),
        ms(percentile(&busy, 99.0)),
        busy.len(),
        args.clients,
        rss as f64 / 1024.0,
        args.messages,
        args.rate,
        lags.len(),
        args.clients * args.messages,
        deliveries as f64 / elapsed.as_secs_f64(),
        ms(percentile(&lags, 50.0)),
        ms(percentile(&lags, 99.0)),
        ms(percentile(&lags, 100.0)),
    );
    drop(daarion);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// One snapshot over HTTP: how long it took and its body.
async fn snapshot(
    client: &reqwest::Client,
    base: &str,
    cookie: &str,
) -> anyhow::Result<(Duration, bytes::Bytes)> {
    let at = Instant::now();
    let body = client
        .get(format!("http://{base}/api/living-map/snapshot"))
        .header("cookie", cookie)
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    Ok((at.elapsed(), body))
}
