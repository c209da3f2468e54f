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
    pub child: Child,
    pub port: u16,
}

impl Drop for Daarion {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (key, value) in env {
        command.env(key, value);
    }
    let child = command.spawn().context("failed to start daarion")?;
    let daarion = Daarion { child, port };
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
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
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
