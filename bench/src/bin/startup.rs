//! Time from `daarion up` to a healthy `/health`, and idle memory (RSS).

#![allow(clippy::print_stdout)]

use std::{path::PathBuf, time::Duration};

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
        rss.push(rss_kib(second.child.id())?);
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
    Ok(())
}
