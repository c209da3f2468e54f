//! City message fan-out: N WebSocket clients in one room, M messages posted
//! over HTTP by a few concurrent posters. Prints messages/s delivered (to all
//! clients) and p50/p99 delivery latency (post sent → frame received).

#![allow(clippy::print_stdout)]

use std::{path::PathBuf, sync::Arc, time::Instant};

use clap::Parser;
use daarion_bench::{follow_latencies, ms, percentile, rss_kib, start};

#[derive(Parser)]
struct Args {
    #[arg(long)]
    binary: PathBuf,
    /// WebSocket clients in the room.
    #[arg(long, default_value_t = 100)]
    clients: usize,
    /// Messages to post.
    #[arg(long, default_value_t = 500)]
    messages: usize,
    /// Concurrent HTTP posters.
    #[arg(long, default_value_t = 4)]
    posters: usize,
    /// Label printed with the figures.
    #[arg(long, default_value = "embedded")]
    label: String,
    /// NATS URL: run on JetStream instead of the in-process bus.
    #[arg(long)]
    nats: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("daarion-fanout-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut env = Vec::new();
    if let Some(nats) = &args.nats {
        env.push(("NATS_URL", nats.clone()));
        env.push((
            "DAARION__NATS_NAMESPACE",
            format!("bench{}", std::process::id()),
        ));
    }
    let (daarion, _) = start(&args.binary, &dir, &env).await?;
    let base = format!("127.0.0.1:{}", daarion.port);
    daarion_kernel::server::install_crypto_provider();
    let client = reqwest::Client::new();
    // One person, signed in with a real (software) passkey ceremony.
    let person =
        daarion_testkit::passkey::Person::register(&client, &format!("http://{base}"), "bench")
            .await?;
    let cookie = person.cookie();
    let epoch = Instant::now();

    let mut receivers = Vec::new();
    for _ in 0..args.clients {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = format!("ws://{base}/ws/city/rooms/general").into_client_request()?;
        request.headers_mut().insert("cookie", cookie.parse()?);
        let (socket, _) = tokio_tungstenite::connect_async(request).await?;
        receivers.push(socket);
    }
    let rss_connected = rss_kib(daarion.child.id())?;
    let expected = args.messages;
    let tasks: Vec<_> = receivers
        .into_iter()
        .map(|socket| tokio::spawn(follow_latencies(socket, expected, epoch)))
        .collect();

    let url = Arc::new(format!("http://{base}/api/city/rooms/general/messages"));
    let started = Instant::now();
    let per_poster = args.messages.div_ceil(args.posters);
    let posters: Vec<_> = (0..args.posters)
        .map(|p| {
            let (client, url, cookie) = (client.clone(), url.clone(), cookie.clone());
            let count = per_poster.min(args.messages.saturating_sub(p * per_poster));
            tokio::spawn(async move {
                for _ in 0..count {
                    let body =
                        serde_json::json!({ "body": epoch.elapsed().as_micros().to_string() });
                    let _ = client
                        .post(url.as_str())
                        .header("cookie", cookie.as_str())
                        .json(&body)
                        .send()
                        .await;
                }
            })
        })
        .collect();
    for poster in posters {
        poster.await?;
    }
    let post_time = started.elapsed();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await?);
    }
    let delivered_time = started.elapsed();
    all.sort();
    let delivered = all.len();
    println!(
        "fan-out [{}]: {} clients x {} messages: posted {:.0} msg/s; delivered {} of {} frames, {:.0} frames/s; latency p50 {}  p99 {}  max {}; RSS with clients connected {:.1} MiB",
        args.label,
        args.clients,
        args.messages,
        args.messages as f64 / post_time.as_secs_f64(),
        delivered,
        args.clients * args.messages,
        delivered as f64 / delivered_time.as_secs_f64(),
        ms(percentile(&all, 50.0)),
        ms(percentile(&all, 99.0)),
        ms(percentile(&all, 100.0)),
        rss_connected as f64 / 1024.0,
    );
    drop(daarion);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
