//! Agent runs: what orchestration costs beside the model. `daarion up`
//! (release) runs an agent on a two-step task — the model asks for a tool
//! (`math.evaluate`), the tool answers, the model answers — through the
//! OpenAI-compatible agent endpoint, against the test kit's fake OpenAI
//! server in a process of its own, which answers at once. Prints runs/s at
//! a few concurrencies, client latency per run, the orchestration overhead
//! per step (a run's latency minus its model and tool calls, over its three
//! steps), the mean cost of a checkpoint, and the CPU each process spends
//! per run. With `--crewai <python>`, CrewAI (PyPI) runs the same task
//! against the same fake, side by side.

#![allow(clippy::print_stdout)]

use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::Parser;
use daarion_bench::{ms, percentile, tree_cpu_seconds};
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// The daarion binary (a release build).
    #[arg(long)]
    binary: PathBuf,
    /// Runs per concurrency.
    #[arg(long, default_value_t = 400)]
    runs: usize,
    /// Concurrencies measured (runs in flight at once).
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    concurrency: Vec<usize>,
    /// A Python with `crewai` installed; without it CrewAI is left out.
    #[arg(long)]
    crewai: Option<PathBuf>,
    /// Runs CrewAI does (one at a time: a crew's kickoff blocks).
    #[arg(long, default_value_t = 50)]
    crewai_runs: usize,
}

const TASK: &str = r#"call math__evaluate {"expression": "6*7"}"#;

/// `daarion up` whose alias `bench` is the fake; the free plan's limits are
/// raised out of the way (every check still runs). Returns it with a key
/// that may talk to agents.
async fn start_daarion(
    binary: &Path,
    dir: &Path,
    fake: u16,
) -> anyhow::Result<(daarion_bench::Daarion, String)> {
    let config = dir.join("daarion.toml");
    daarion_bench::fake_llm_config(&config, fake, "[runtime]\nworkers = 32\n")?;
    let (daarion, _) = daarion_bench::start(
        binary,
        &dir.join("data"),
        &[("DAARION_CONFIG", config.display().to_string())],
    )
    .await?;
    let base = format!("http://127.0.0.1:{}", daarion.port);
    let client = reqwest::Client::new();
    let person = daarion_testkit::passkey::Person::register(&client, &base, "bench").await?;
    client
        .post(format!("{base}/api/agents/agents"))
        .header("cookie", person.cookie())
        .json(
            &json!({"slug": "bench", "name": "Bench", "prompt": "Use your calculator.",
            "model": "bench", "tools": ["math.evaluate"]}),
        )
        .send()
        .await?
        .error_for_status()
        .context("the bench agent")?;
    let key = daarion_bench::api_key(&client, &base, &person.cookie(), &["agents:*", "runtime:*"])
        .await?;
    Ok((daarion, key))
}

/// One run: its id and how long the client waited.
async fn run_once(
    client: &reqwest::Client,
    base: &str,
    key: &str,
) -> anyhow::Result<(String, Duration)> {
    let started = Instant::now();
    let reply: Value = client
        .post(format!("{base}/api/agents/v1/chat/completions"))
        .bearer_auth(key)
        .json(&json!({"model": "bench", "messages": [{"role": "user", "content": TASK}]}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let took = started.elapsed();
    let answer = reply["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or("");
    anyhow::ensure!(answer.contains("42"), "unexpected answer {reply}");
    let id = reply["id"]
        .as_str()
        .unwrap_or("")
        .trim_start_matches("chatcmpl-")
        .to_owned();
    Ok((id, took))
}

/// `n` runs, `concurrency` at a time: their ids and latencies, and the
/// wall time.
async fn runs(
    base: &str,
    key: &str,
    n: usize,
    concurrency: usize,
) -> anyhow::Result<(Vec<(String, Duration)>, Duration)> {
    let client = reqwest::Client::new();
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, base, key, next) = (
            client.clone(),
            base.to_owned(),
            key.to_owned(),
            next.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut done = Vec::new();
            while next.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < n {
                done.push(run_once(&client, &base, &key).await?);
            }
            anyhow::Ok(done)
        }));
    }
    let mut all = Vec::with_capacity(n);
    for task in tasks {
        all.extend(task.await??);
    }
    Ok((all, started.elapsed()))
}

/// Per step, what a run spent outside its model and tool calls.
async fn overheads(
    base: &str,
    key: &str,
    ids: &[(String, Duration)],
) -> anyhow::Result<Vec<Duration>> {
    let client = reqwest::Client::new();
    let mut per_step = Vec::new();
    for (id, took) in ids {
        let run: Value = client
            .get(format!("{base}/api/runtime/runs/{id}"))
            .bearer_auth(key)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let steps = run["steps"].as_array().context("no steps")?;
        let inside: i64 = steps.iter().filter_map(|s| s["latency_ms"].as_i64()).sum();
        let outside =
            took.saturating_sub(Duration::from_millis(u64::try_from(inside).unwrap_or(0)));
        per_step.push(outside / u32::try_from(steps.len().max(1)).unwrap_or(1));
    }
    per_step.sort();
    Ok(per_step)
}

/// The mean checkpoint, from the process's own histogram.
async fn checkpoint_mean(port: u16) -> anyhow::Result<Duration> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await?
        .text()
        .await?;
    let read = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let (sum, count) = (
        read("runtime_checkpoint_seconds_sum"),
        read("runtime_checkpoint_seconds_count"),
    );
    Ok(Duration::from_secs_f64(if count > 0.0 {
        sum / count
    } else {
        0.0
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    daarion_kernel::server::install_crypto_provider();
    let dir = std::env::temp_dir().join(format!("daarion-agents-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (fake, fake_port) = daarion_bench::start_fake_llm().await?;
    let (daarion, key) = start_daarion(&args.binary, &dir, fake_port).await?;
    let base = format!("http://127.0.0.1:{}", daarion.port);
    println!(
        "Agent runs: a two-step task (model → tool → model) through /api/agents/v1/chat/completions, \
         daarion up (embedded) and an instant fake model in processes of their own, on one 2-core machine"
    );
    runs(&base, &key, 20, 4).await?;
    for &concurrency in &args.concurrency {
        let (cpu_ours, cpu_fake) = (
            tree_cpu_seconds(daarion.child.id()),
            tree_cpu_seconds(fake.id()),
        );
        let (done, wall) = runs(&base, &key, args.runs, concurrency).await?;
        let (cpu_ours, cpu_fake) = (
            tree_cpu_seconds(daarion.child.id()) - cpu_ours,
            tree_cpu_seconds(fake.id()) - cpu_fake,
        );
        let mut latencies: Vec<Duration> = done.iter().map(|(_, d)| *d).collect();
        latencies.sort();
        let sample: Vec<(String, Duration)> = done.iter().take(200).cloned().collect();
        let per_step = overheads(&base, &key, &sample).await?;
        let n = done.len() as f64;
        println!(
            "  {concurrency:>3} at once: {:.0} runs/s; run p50 {} p99 {}; overhead per step p50 {} p99 {}; \
             CPU per run: daarion {:.2} ms, fake model {:.2} ms",
            n / wall.as_secs_f64(),
            ms(percentile(&latencies, 50.0)),
            ms(percentile(&latencies, 99.0)),
            ms(percentile(&per_step, 50.0)),
            ms(percentile(&per_step, 99.0)),
            cpu_ours * 1000.0 / n,
            cpu_fake * 1000.0 / n,
        );
    }
    println!(
        "  a checkpoint (the step's row under the lease check, one statement): {} on average",
        ms(checkpoint_mean(daarion.port).await?)
    );
    let Some(python) = &args.crewai else {
        println!("CrewAI left out: no --crewai given (a Python with `crewai` installed)");
        return Ok(());
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("agents/crewai_task.py");
    let cpu_fake = tree_cpu_seconds(fake.id());
    let started = Instant::now();
    let output = Command::new(python)
        .arg(&script)
        .env("FAKE_BASE_URL", format!("http://127.0.0.1:{fake_port}/v1"))
        .env("RUNS", args.crewai_runs.to_string())
        .env("CREWAI_DISABLE_TELEMETRY", "true")
        .env("OTEL_SDK_DISABLED", "true")
        .output()
        .context("CrewAI's script")?;
    let wall = started.elapsed();
    anyhow::ensure!(
        output.status.success(),
        "CrewAI failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(
        output
            .stdout
            .split(|b| *b == b'\n')
            .rfind(|l| l.starts_with(b"{"))
            .unwrap_or(b"{}"),
    )?;
    let n = args.crewai_runs as f64;
    println!(
        "CrewAI {} (same task, same fake, one at a time): {:.1} runs/s; run p50 {:.2} ms p99 {:.2} ms; \
         CPU per run: python {:.2} ms, fake model {:.2} ms (wall {:.1} s with start-up)",
        report["version"].as_str().unwrap_or("?"),
        report["runs_per_second"].as_f64().unwrap_or(0.0),
        report["p50_ms"].as_f64().unwrap_or(0.0),
        report["p99_ms"].as_f64().unwrap_or(0.0),
        report["cpu_ms_per_run"].as_f64().unwrap_or(0.0),
        (tree_cpu_seconds(fake.id()) - cpu_fake) * 1000.0 / n,
        wall.as_secs_f64(),
    );
    Ok(())
}
