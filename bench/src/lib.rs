//! Helpers shared by the benchmark binaries: starting a `daarion` process and
//! waiting for it to be healthy, reading its memory, and percentiles.

#![allow(clippy::print_stdout)]

use std::{
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context;

/// A running `daarion` process, killed on drop.
pub struct Daarion {
    pub child: Killed,
    pub port: u16,
}

pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts `daarion up` in `data_dir` with extra environment, and returns it
/// with the time until `/health` first answered 200.
pub async fn start(
    binary: &Path,
    data_dir: &Path,
    env: &[(&str, String)],
) -> anyhow::Result<(Daarion, Duration)> {
    let port = free_port()?;
    let started = Instant::now();
    let mut command = Command::new(binary);
    command
        .args(["up", "--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(data_dir)
        .env_remove("DATABASE_URL")
        .env_remove("NATS_URL")
        .env_remove("REDIS_URL")
        .env("RUST_LOG", "error")
        // One load client posts far faster than the edge's default 10 r/s per
        // address (and per person); the benchmarks measure the rest.
        .env("DAARION__GATEWAY__RATE_LIMIT_PER_SECOND", "1000000")
        .env("DAARION__GATEWAY__RATE_LIMIT_BURST", "1000000")
        .env(
            "DAARION__GATEWAY__PRINCIPAL_RATE_LIMIT_PER_SECOND",
            "1000000",
        )
        .env("DAARION__GATEWAY__PRINCIPAL_RATE_LIMIT_BURST", "1000000")
        // Likewise the per-client connection cap: every load connection
        // comes from one address here.
        .env("DAARION__SERVER__MAX_CONNECTIONS_PER_CLIENT", "1000000")
        // The software passkey signs for this page, whatever port we use.
        .env(
            "DAARION__AUTH__ORIGINS",
            format!("[\"{}\"]", daarion_testkit::passkey::ORIGIN),
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let child = command.spawn().context("failed to start daarion")?;
    let daarion = Daarion {
        child: Killed(child),
        port,
    };
    daarion_kernel::server::install_crypto_provider();
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/health");
    loop {
        if let Ok(response) = client.get(&url).send().await
            && response.status().is_success()
        {
            return Ok((daarion, started.elapsed()));
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "daarion not healthy in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Resident memory of a process, in KiB.
pub fn rss_kib(pid: u32) -> anyhow::Result<u64> {
    daarion_kernel::metrics::resident_bytes_of(&pid.to_string())
        .map(|bytes| bytes / 1024)
        .context("no VmRSS")
}

/// The `p`-th percentile (0..=100) of sorted values.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// A child process, killed on drop.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Killed {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

/// Waits until `path` on `port` answers 2xx.
pub async fn wait_ready(port: u16, path: &str, patience: Duration) -> anyhow::Result<()> {
    daarion_kernel::server::install_crypto_provider();
    let client = reqwest::Client::new();
    let started = Instant::now();
    while started.elapsed() < patience {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .await
            && r.status().is_success()
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    anyhow::bail!("nothing healthy on port {port}{path}")
}

#[derive(Debug, Clone, Copy)]
/// What one `wrk` run measured.
pub struct Figures {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Non-2xx responses plus socket errors (timeouts included).
    pub errors: u64,
}

fn parse_duration_ms(text: &str) -> Option<f64> {
    let (number, unit) = text.split_at(text.find(|c: char| c.is_ascii_alphabetic())?);
    let value: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        _ => return None,
    })
}

/// Runs `wrk -t2` against `url`, with a Lua `script` (a POST body, headers)
/// when given.
pub fn wrk(
    url: &str,
    connections: u32,
    seconds: u32,
    script: Option<&Path>,
) -> anyhow::Result<Figures> {
    let mut command = Command::new("wrk");
    if let Some(script) = script {
        command.arg("-s").arg(script);
    }
    let output = command
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            url,
        ])
        .output()
        .context("failed to run wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |prefix: &str| {
        text.lines()
            .map(str::trim)
            .find_map(|l| l.strip_prefix(prefix))
            .map(|v| v.trim().to_owned())
    };
    let non_2xx: u64 = field("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let socket_errors: u64 = field("Socket errors:")
        .map(|v| {
            v.split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    Ok(Figures {
        errors: non_2xx + socket_errors,
        rps: field("Requests/sec:")
            .and_then(|v| v.parse().ok())
            .context("no Requests/sec")?,
        p50_ms: field("50%")
            .and_then(|v| parse_duration_ms(&v))
            .context("no p50")?,
        p99_ms: field("99%")
            .and_then(|v| parse_duration_ms(&v))
            .context("no p99")?,
    })
}

/// Resident memory of a process and its children, in KiB.
pub fn tree_rss_kib(master: u32) -> u64 {
    let mut total = rss_kib(master).unwrap_or(0);
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            let ppid = stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if ppid == Some(master) {
                total += rss_kib(pid).unwrap_or(0);
            }
        }
    }
    total
}

/// The run with the median throughput (its latencies belong to the same run).
pub fn median(runs: &[Figures]) -> Figures {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    sorted[sorted.len() / 2]
}

/// Prints one target's figures.
pub fn line(label: &str, f: Figures) {
    println!(
        "  {label:<34} {:>10.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   errors {}",
        f.rps, f.p50_ms, f.p99_ms, f.errors
    );
}
