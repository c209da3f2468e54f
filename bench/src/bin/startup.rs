//! Time from `daarion up` to a healthy `/health`, and idle memory (RSS),
//! with where it goes: the growth of each start-up step, as the process
//! reports it (`startup_memory_bytes{component}` on `/metrics`).

#![allow(clippy::print_stdout)]

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use clap::Parser;
use daarion_bench::{ms, percentile, rss_kib, start};

#[derive(Parser)]
struct Args {
    /// The daarion binary (a release build).
    #[arg(long)]
    binary: PathBuf,
    /// Runs, each on a fresh data directory.
    #[arg(long, default_value_t = 10)]
    runs: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut cold = Vec::new();
    let mut warm = Vec::new();
    let mut rss = Vec::new();
    let mut components: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    daarion_kernel::server::install_crypto_provider();
    let client = reqwest::Client::new();
    for _ in 0..args.runs {
        let dir = std::env::temp_dir().join(format!("daarion-bench-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        // Cold: a new data dir, so migrations run. Warm: the same dir again.
        let (first, took) = start(&args.binary, &dir, &[]).await?;
        cold.push(took);
        drop(first);
        let (second, took) = start(&args.binary, &dir, &[]).await?;
        warm.push(took);
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle = rss_kib(second.child.id())?;
        rss.push(idle);
        let metrics = client
            .get(format!("http://127.0.0.1:{}/metrics", second.port))
            .send()
            .await?
            .text()
            .await?;
        let mut built = 0;
        for (component, bytes) in startup_memory(&metrics) {
            built += bytes / 1024;
            components.entry(component).or_default().push(bytes / 1024);
        }
        components
            .entry("(after start: serving, idle)".into())
            .or_default()
            .push(idle.saturating_sub(built));
        drop(second);
        let _ = std::fs::remove_dir_all(&dir);
    }
    cold.sort();
    warm.sort();
    rss.sort();
    println!(
        "startup to healthy, new data dir (migrations) over {} runs: p50 {}  max {}",
        args.runs,
        ms(percentile(&cold, 50.0)),
        ms(percentile(&cold, 100.0))
    );
    println!(
        "startup to healthy, existing data dir over {} runs:        p50 {}  max {}",
        args.runs,
        ms(percentile(&warm, 50.0)),
        ms(percentile(&warm, 100.0))
    );
    println!(
        "idle RSS of daarion up (2 s after healthy): median {:.1} MiB  max {:.1} MiB",
        rss[rss.len() / 2] as f64 / 1024.0,
        rss[rss.len() - 1] as f64 / 1024.0
    );
    println!(
        "idle RSS by component (median KiB over {} runs):",
        args.runs
    );
    for (component, mut kib) in components {
        kib.sort_unstable();
        println!("  {component:<32} {:>8}", kib[kib.len() / 2]);
    }
    Ok(())
}

/// `startup_memory_bytes{component="x"} N` lines of a Prometheus page.
fn startup_memory(page: &str) -> Vec<(String, u64)> {
    page.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("startup_memory_bytes{component=\"")?;
            let (component, value) = rest.split_once("\"} ")?;
            Some((
                component.to_owned(),
                value.trim().parse::<f64>().ok()? as u64,
            ))
        })
        .collect()
}
