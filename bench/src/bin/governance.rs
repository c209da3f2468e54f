//! Governance: votes per second on one open proposal while its live tally
//! is read, on `daarion up`. Members (real passkey sessions) vote and vote
//! again (the proposal allows a change, so every vote is a new link of the
//! record); one reader asks for the tally every 100 ms meanwhile. Prints
//! votes/s, vote latency, tally latency and size at the end, CPU per vote,
//! and the time to check the whole record.

#![allow(clippy::print_stdout)]

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::Parser;
use daarion_bench::{call, ms, percentile, start, tree_cpu_seconds};
use serde_json::json;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    binary: PathBuf,
    /// Members who vote.
    #[arg(long, default_value_t = 200)]
    voters: usize,
    /// Votes in all (voters vote again until this many are cast).
    #[arg(long, default_value_t = 20_000)]
    votes: usize,
    /// Votes in flight at once.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// The voting method (single choice over three options, or basic).
    #[arg(long, default_value = "single")]
    method: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("daarion-governance-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let env = [
        ("DAARION__DAO__MIN_VOTING_SECS", "1".to_owned()),
        // Every voter signs up from this one address.
        (
            "DAARION__AUTH__LOGIN_ATTEMPTS_PER_MINUTE",
            "1000000".to_owned(),
        ),
    ];
    let (daarion, _) = start(&args.binary, &dir, &env).await?;
    let base = format!("http://127.0.0.1:{}", daarion.port);
    let client = reqwest::Client::new();
    let founder = daarion_testkit::passkey::Person::register(&client, &base, "founder").await?;
    let founder = founder.cookie();
    call(
        &client,
        reqwest::Method::POST,
        &format!("{base}/api/microdao/daos"),
        &founder,
        Some(json!({"slug": "bench", "name": "Bench"})),
    )
    .await?;
    let mut cookies = vec![founder.clone()];
    let joined = Instant::now();
    for i in 1..args.voters {
        let person =
            daarion_testkit::passkey::Person::register(&client, &base, &format!("voter{i}"))
                .await?;
        let cookie = person.cookie();
        call(
            &client,
            reqwest::Method::POST,
            &format!("{base}/api/microdao/daos/bench/join"),
            &cookie,
            None,
        )
        .await?;
        cookies.push(cookie);
    }
    let joined = joined.elapsed();
    let options = if args.method == "basic" {
        json!([])
    } else {
        json!(["one", "two", "three"])
    };
    let proposal = call(
        &client,
        reqwest::Method::POST,
        &format!("{base}/api/dao/daos/bench/proposals"),
        &founder,
        Some(
            json!({"title": "Bench", "method": args.method, "options": options,
            "vote_change": true, "threshold": {"kind": "plurality"}, "voting_secs": 3600}),
        ),
    )
    .await?;
    let id = proposal["id"].as_str().context("no id")?.to_owned();
    let opened = Instant::now();
    call(
        &client,
        reqwest::Method::POST,
        &format!("{base}/api/dao/proposals/{id}/open"),
        &founder,
        None,
    )
    .await?;
    let open_time = opened.elapsed();

    // The live tally, read every 100 ms while votes come in.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (client, cookie, stop) = (client.clone(), founder.clone(), stop.clone());
        let url = format!("{base}/api/dao/proposals/{id}/tally");
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let at = Instant::now();
                if call(&client, reqwest::Method::GET, &url, &cookie, None)
                    .await
                    .is_ok()
                {
                    latencies.push(at.elapsed());
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            latencies
        })
    };

    let cpu_before = tree_cpu_seconds(daarion.child.id());
    let started = Instant::now();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let cookies = Arc::new(cookies);
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let (client, cookies, next) = (client.clone(), cookies.clone(), next.clone());
            let url = format!("{base}/api/dao/proposals/{id}/votes");
            let total = args.votes;
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut failed = 0usize;
                loop {
                    let n = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if n >= total {
                        return (latencies, failed);
                    }
                    let cookie = &cookies[n % cookies.len()];
                    let at = Instant::now();
                    let ballot = json!({"ballot": {"choice": n % 3}});
                    match call(&client, reqwest::Method::POST, &url, cookie, Some(ballot)).await {
                        Ok(_) => latencies.push(at.elapsed()),
                        Err(_) => failed += 1,
                    }
                }
            })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut failed = 0;
    for worker in workers {
        let (l, f) = worker.await?;
        latencies.extend(l);
        failed += f;
    }
    let elapsed = started.elapsed();
    let cpu = tree_cpu_seconds(daarion.child.id()) - cpu_before;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut tally_latencies = reader.await?;
    latencies.sort();
    tally_latencies.sort();

    // One more tally and a whole check of the record at the end.
    let at = Instant::now();
    let tally = call(
        &client,
        reqwest::Method::GET,
        &format!("{base}/api/dao/proposals/{id}/tally"),
        &founder,
        None,
    )
    .await?;
    let final_tally = at.elapsed();
    let at = Instant::now();
    let record = call(
        &client,
        reqwest::Method::GET,
        &format!("{base}/api/dao/proposals/{id}/record?limit=1"),
        &founder,
        None,
    )
    .await?;
    let record_time = at.elapsed();
    anyhow::ensure!(record["intact"] == true, "the record does not hold");
    let cast = latencies.len();
    println!(
        "governance [{}]: {} voters (joined in {:.1} s), opened in {} (snapshot of {} members); {} votes ({} failed) by {} at once: {:.0} votes/s, latency p50 {} p99 {}; CPU {:.0} µs/vote; live tally every 100 ms: {} reads, p50 {} p99 {}; at the end: tally of {} ballots in {}, record checked whole ({} links) in {}",
        args.method,
        args.voters,
        joined.as_secs_f64(),
        ms(open_time),
        args.voters,
        cast,
        failed,
        args.concurrency,
        cast as f64 / elapsed.as_secs_f64(),
        ms(percentile(&latencies, 50.0)),
        ms(percentile(&latencies, 99.0)),
        cpu * 1e6 / cast.max(1) as f64,
        tally_latencies.len(),
        ms(percentile(&tally_latencies, 50.0)),
        ms(percentile(&tally_latencies, 99.0)),
        tally["tally"]["ballots"],
        ms(final_tally),
        cast,
        ms(record_time),
    );
    drop(daarion);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
