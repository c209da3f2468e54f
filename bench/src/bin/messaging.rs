//! Messaging on one node (`daarion up`, embedded or on PostgreSQL), with
//! authentication, authorization, audit and metering on:
//!
//! 1. posts/s: concurrent posters over HTTP into one room, nobody
//!    following it, and the node's CPU per post;
//! 2. delivery: clients on `/ws/messaging/live` subscribed to another
//!    room while posts arrive at `--rate` per second: frames/s and p50/p99
//!    from post sent to frame received;
//! 3. reading at scale: a room seeded with `--seed` messages (written
//!    straight into the store, as history would have piled up), then
//!    history pages at random depths and full-text searches, p50/p99.

#![allow(clippy::print_stdout)]

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use clap::Parser;
use daarion_bench::{follow_latencies, ms, percentile, rss_kib, start, start_as, tree_cpu_seconds};
use futures::StreamExt;
use tokio_tungstenite::tungstenite::Message;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    binary: PathBuf,
    /// Messages to post for the posting and delivery figures.
    #[arg(long, default_value_t = 2000)]
    posts: usize,
    /// Concurrent HTTP posters (each a person of their own).
    #[arg(long, default_value_t = 16)]
    posters: usize,
    /// WebSocket clients following the room.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Posts per second while the clients follow (all posters together).
    #[arg(long, default_value_t = 200.0)]
    rate: f64,
    /// Messages seeded into a second room for history and search.
    #[arg(long, default_value_t = 100_000)]
    seed: usize,
    /// History pages and searches asked.
    #[arg(long, default_value_t = 500)]
    reads: usize,
    /// PostgreSQL admin URL: run on a fresh database there instead of SQLite.
    #[arg(long)]
    postgres: Option<String>,
    /// NATS URL: run distributed instead (`daarion serve` per service, two
    /// messaging replicas, on `--postgres`): posters and followers split
    /// between the replicas, so deliveries cross the bus.
    #[arg(long, requires = "postgres")]
    nats: Option<String>,
    /// Send traces (a span per request and per event handled) to a fake
    /// OTLP collector in this process: what tracing costs.
    #[arg(long)]
    otlp: bool,
}

/// The processes under test: `daarion up`, or one `daarion serve` per
/// service with two messaging replicas.
struct Node {
    processes: Vec<daarion_bench::Daarion>,
    /// Where people register.
    auth: String,
    /// Where messaging answers (one, or each replica).
    messaging: Vec<String>,
}

impl Node {
    async fn start(
        binary: &std::path::Path,
        dir: &std::path::Path,
        env: &[(&str, String)],
        nats: Option<&str>,
    ) -> anyhow::Result<Self> {
        let url = |d: &daarion_bench::Daarion| format!("http://127.0.0.1:{}", d.port);
        let Some(nats) = nats else {
            let (up, _) = start(binary, dir, env).await?;
            let base = url(&up);
            return Ok(Self {
                processes: vec![up],
                auth: base.clone(),
                messaging: vec![base],
            });
        };
        let mut env = env.to_vec();
        env.push(("NATS_URL", nats.to_owned()));
        env.push((
            "DAARION__NATS_NAMESPACE",
            format!("bench{}", std::process::id()),
        ));
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        env.push(("DAARION__SERVICE_TOKEN_SECRET", secret));
        // Every service whose consumers `up` runs too, then the replicas.
        let mut processes = Vec::new();
        for service in [
            "auth",
            "pdp",
            "usage",
            "microdao",
            "city",
            "space",
            "messaging",
            "messaging",
        ] {
            let data = dir.join(format!("{service}{}", processes.len()));
            std::fs::create_dir_all(&data)?;
            let (process, _) = start_as(binary, &["serve", service], &data, &env).await?;
            processes.push(process);
        }
        Ok(Self {
            auth: url(&processes[0]),
            messaging: processes[6..].iter().map(url).collect(),
            processes,
        })
    }

    fn cpu_seconds(&self) -> f64 {
        self.processes
            .iter()
            .map(|p| tree_cpu_seconds(p.child.id()))
            .sum()
    }

    fn rss_kib(&self) -> anyhow::Result<u64> {
        self.processes.iter().map(|p| rss_kib(p.child.id())).sum()
    }
}

/// Words of the seeded messages; searches ask for one of the rarer ones.
const WORDS: [&str; 16] = [
    "river", "bridge", "garden", "market", "council", "harbour", "lantern", "meadow", "orchard",
    "quarry", "saddle", "tunnel", "valley", "willow", "zephyr", "beacon",
];

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("daarion-messaging-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let database = match &args.postgres {
        Some(admin) => daarion_testkit::fresh_postgres_database(admin).await,
        None => format!("sqlite://{}/daarion.db?mode=rwc", dir.display()),
    };
    let shape = match (&args.postgres, &args.nats) {
        (_, Some(_)) => "2 replicas, NATS",
        (Some(_), None) => "postgres",
        (None, None) => "embedded",
    };
    let collector = if args.otlp {
        Some(daarion_testkit::otlp::FakeCollector::start().await)
    } else {
        None
    };
    let label = match collector {
        Some(_) => format!("{shape}, traced"),
        None => shape.to_owned(),
    };
    let mut env = vec![
        ("DATABASE_URL", database.clone()),
        // Every poster registers from this one address.
        (
            "DAARION__AUTH__LOGIN_ATTEMPTS_PER_MINUTE",
            "100000".to_owned(),
        ),
        ("DAARION__MESSAGING__POSTS_PER_SECOND", "1000000".to_owned()),
        ("DAARION__MESSAGING__POSTS_BURST", "1000000".to_owned()),
        (
            "DAARION__MESSAGING__WS_CONNECTIONS_PER_PERSON",
            "1000000".to_owned(),
        ),
        // Every follower is the same person: their `subscribe` frames share
        // one budget.
        (
            "DAARION__MESSAGING__WS_MESSAGES_PER_SECOND",
            "1000000".to_owned(),
        ),
        ("DAARION__MESSAGING__WS_BURST", "1000000".to_owned()),
    ];
    if let Some(collector) = &collector {
        env.push(("DAARION__OTLP_ENDPOINT", collector.endpoint()));
    }
    let mut node = Node::start(&args.binary, &dir, &env, args.nats.as_deref()).await?;
    let base = node.messaging[0].clone();
    daarion_kernel::server::install_crypto_provider();
    let client = reqwest::Client::new();
    let mut cookies = Vec::new();
    for n in 0..args.posters.max(1) {
        let person =
            daarion_testkit::passkey::Person::register(&client, &node.auth, &format!("poster{n}"))
                .await?;
        cookies.push(person.cookie());
    }
    let epoch = Instant::now();

    // 1. Posting, nobody following.
    let hall = create_room(&client, &base, &cookies[0], "hall").await?;
    let urls = |room: &str| {
        let of = |base: &String| format!("{base}/api/messaging/rooms/{room}/messages");
        Arc::new(node.messaging.iter().map(of).collect::<Vec<_>>())
    };
    let url = urls(&hall);
    let cpu_before = node.cpu_seconds();
    let started = Instant::now();
    let refused = post_all(&client, &url, &cookies, args.posts, None, epoch).await?;
    let post_time = started.elapsed();
    let cpu_per_post = (node.cpu_seconds() - cpu_before) * 1e6 / args.posts as f64;
    println!(
        "messaging [{label}]: {} posts by {} posters: {:.0} posts/s ({} refused), {:.0} µs CPU per post",
        args.posts,
        cookies.len(),
        args.posts as f64 / post_time.as_secs_f64(),
        refused,
        cpu_per_post,
    );

    // 2. Delivery: followers first, so they see every post.
    let room = create_room(&client, &base, &cookies[0], "bench").await?;
    let mut followers = Vec::new();
    for n in 0..args.clients {
        use futures::SinkExt;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        // Followers on every replica: what is posted on one reaches the
        // others through the bus.
        let base = &node.messaging[n % node.messaging.len()];
        let url = format!("{}/ws/messaging/live", base.replace("http", "ws"));
        let mut request = url.into_client_request()?;
        request.headers_mut().insert("cookie", cookies[0].parse()?);
        let (mut socket, _) = tokio_tungstenite::connect_async(request).await?;
        let subscribe = serde_json::json!({ "type": "subscribe", "room": room });
        socket
            .send(Message::Text(subscribe.to_string().into()))
            .await?;
        // A follower counts once the server says it follows the room.
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(10), socket.next())
                .await
                .map_err(|_| anyhow::anyhow!("no answer to subscribe"))?
                .ok_or_else(|| anyhow::anyhow!("socket closed before subscribing"))??;
            if let Message::Text(text) = frame {
                let value: serde_json::Value = serde_json::from_str(text.as_str())?;
                anyhow::ensure!(value["type"] == "subscribed", "subscribe refused: {value}");
                break;
            }
        }
        followers.push(socket);
    }
    let expected = args.posts;
    let listeners: Vec<_> = followers
        .into_iter()
        .map(|socket| tokio::spawn(follow_latencies(socket, expected, epoch)))
        .collect();
    // Let every subscription land before the first post.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_followed = node.rss_kib()?;

    let url = urls(&room);
    let started = Instant::now();
    let refused = post_all(&client, &url, &cookies, args.posts, Some(args.rate), epoch).await?;
    let post_time = started.elapsed();
    let mut delivered = Vec::new();
    for listener in listeners {
        delivered.extend(listener.await?);
    }
    let delivered_time = started.elapsed();
    delivered.sort();
    println!(
        "messaging [{label}]: {} clients on /ws/messaging/live, {} posts at {:.0}/s ({} refused): delivered {} of {} frames, {:.0} frames/s; latency p50 {}  p99 {}  max {}; RSS with clients {:.1} MiB",
        args.clients,
        args.posts,
        args.posts as f64 / post_time.as_secs_f64(),
        refused,
        delivered.len(),
        args.clients * args.posts,
        delivered.len() as f64 / delivered_time.as_secs_f64(),
        ms(percentile(&delivered, 50.0)),
        ms(percentile(&delivered, 99.0)),
        ms(percentile(&delivered, 100.0)),
        rss_followed as f64 / 1024.0,
    );

    // 3. Reading at scale.
    let archive = create_room(&client, &base, &cookies[0], "archive").await?;
    let seeding = Instant::now();
    seed(&database, &archive, args.seed).await?;
    let seeded_in = seeding.elapsed();
    let mut pages = Vec::with_capacity(args.reads);
    let mut searches = Vec::with_capacity(args.reads);
    let mut found = 0usize;
    for n in 0..args.reads {
        let depth = (n * 7919) % args.seed.max(1) + 1;
        let cursor = daarion_kernel::http::encode_cursor(&format!("b{depth}"));
        let page =
            format!("{base}/api/messaging/rooms/{archive}/messages?limit=50&cursor={cursor}");
        let asked = Instant::now();
        let answer = client
            .get(&page)
            .header("cookie", &cookies[0])
            .send()
            .await?;
        anyhow::ensure!(answer.status().is_success(), "history: {}", answer.status());
        answer.bytes().await?;
        pages.push(asked.elapsed());
        let word = WORDS[n % WORDS.len()];
        let query = format!("{base}/api/messaging/search?q={word}%20{n}&limit=20");
        let asked = Instant::now();
        let answer = client
            .get(&query)
            .header("cookie", &cookies[0])
            .send()
            .await?;
        anyhow::ensure!(answer.status().is_success(), "search: {}", answer.status());
        let body: serde_json::Value = answer.json().await?;
        found += body["items"].as_array().map_or(0, Vec::len);
        searches.push(asked.elapsed());
    }
    pages.sort();
    searches.sort();
    println!(
        "messaging [{label}]: {} messages seeded in {:.1} s; history page of 50: p50 {}  p99 {}; search (two words): p50 {}  p99 {} ({} hits over {} searches)",
        args.seed,
        seeded_in.as_secs_f64(),
        ms(percentile(&pages, 50.0)),
        ms(percentile(&pages, 99.0)),
        ms(percentile(&searches, 50.0)),
        ms(percentile(&searches, 99.0)),
        found,
        args.reads,
    );
    if collector.is_some() {
        // Stopped gracefully, the processes send the spans they hold.
        for process in &mut node.processes {
            process.child.terminate();
        }
    }
    drop(node);
    if let Some(collector) = collector {
        let spans = collector.spans().len();
        println!("messaging [{label}]: {spans} spans received by the collector");
        anyhow::ensure!(spans > 0, "the traced node sent no span");
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Posts `count` messages over the posters' sessions, as fast as they are
/// answered or, with `rate`, at that many per second in all; each body is
/// its send time since `epoch` (the followers' latency clock). Returns
/// how many were refused.
/// Posts `count` messages, each poster through one of `urls` in turn.
async fn post_all(
    client: &reqwest::Client,
    urls: &Arc<Vec<String>>,
    cookies: &[String],
    count: usize,
    rate: Option<f64>,
    epoch: Instant,
) -> anyhow::Result<usize> {
    let per_poster = count.div_ceil(cookies.len());
    let posters: Vec<_> = cookies
        .iter()
        .enumerate()
        .map(|(p, cookie)| {
            let url = urls[p % urls.len()].clone();
            let (client, cookie) = (client.clone(), cookie.clone());
            let mine = per_poster.min(count.saturating_sub(p * per_poster));
            let gap = rate.map(|r| Duration::from_secs_f64(cookies.len() as f64 / r.max(0.001)));
            tokio::spawn(async move {
                let mut refused = 0usize;
                let mut pace = gap.map(|g| {
                    let mut i = tokio::time::interval(g);
                    i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    i
                });
                for _ in 0..mine {
                    if let Some(pace) = pace.as_mut() {
                        pace.tick().await;
                    }
                    let body =
                        serde_json::json!({ "body": epoch.elapsed().as_micros().to_string() });
                    let ok = client
                        .post(url.as_str())
                        .header("cookie", cookie.as_str())
                        .json(&body)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    refused += usize::from(!ok);
                }
                refused
            })
        })
        .collect();
    let mut refused = 0;
    for poster in posters {
        refused += poster.await?;
    }
    Ok(refused)
}

async fn create_room(
    client: &reqwest::Client,
    base: &str,
    cookie: &str,
    slug: &str,
) -> anyhow::Result<String> {
    let room: serde_json::Value = client
        .post(format!("{base}/api/messaging/rooms"))
        .header("cookie", cookie)
        .json(&serde_json::json!({ "slug": slug, "title": slug }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    room["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no room id in {room}"))
}

/// Writes `count` messages into `room` straight into the store, a few
/// hundred per statement, numbered as the service would number them.
async fn seed(database: &str, room: &str, count: usize) -> anyhow::Result<()> {
    use daarion_store::sql;
    let db = daarion_store::Db::connect(database).await?;
    const PER_STATEMENT: usize = 10;
    let mut seq = 0usize;
    while seq < count {
        let mut tx = db.begin().await?;
        for _ in 0..100 {
            if seq >= count {
                break;
            }
            let rows = PER_STATEMENT.min(count - seq);
            let marks: Vec<String> = (0..rows)
                .map(|r| {
                    let b = r * 5;
                    format!(
                        "(${}, ${}, ${}, '', NULL, 'user:seed', 'seed', ${}, ${}, '[]', '[]', ${})",
                        b + 1,
                        b + 2,
                        b + 3,
                        b + 4,
                        b + 4,
                        b + 5
                    )
                })
                .collect();
            let text = format!(
                "INSERT INTO messaging_messages (id, room_id, seq, topic, reply_to, author,
                     author_handle, body, html, mentions, attachments, created_at) VALUES {}",
                marks.join(", ")
            );
            let mut query = sql::query(sql::AssertSqlSafe(text));
            for _ in 0..rows {
                seq += 1;
                let body = format!(
                    "{} {} {} message {seq}",
                    WORDS[seq % 16],
                    WORDS[(seq / 16) % 16],
                    WORDS[(seq / 256) % 16]
                );
                query = query
                    .bind(format!("msg_seed{seq:09}"))
                    .bind(room.to_owned())
                    .bind(seq as i64)
                    .bind(body)
                    .bind(daarion_store::now());
            }
            query.execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }
    sql::query("UPDATE messaging_rooms SET last_seq = $2 WHERE id = $1")
        .bind(room)
        .bind(count as i64)
        .execute(db.pool())
        .await?;
    Ok(())
}
