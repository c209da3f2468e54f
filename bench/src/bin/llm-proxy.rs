//! The LLM proxy against LiteLLM's, side by side in one run: the same
//! upstreams, in processes of their own, called directly, through `daarion
//! up` and through `litellm --config` (when given its path) — whole replies
//! from an nginx answering from memory (faster than any proxy), streams from
//! the fake OpenAI server of the test kit. Prints the latency each proxy adds
//! (whole replies, and time to the first streamed byte), the most requests
//! per second each passes (wrk) with the CPU each process spends per request,
//! and a soak: minutes of steady streaming through both proxies at once, with
//! their memory sampled throughout.

#![allow(clippy::print_stdout)]

use std::{
    net::SocketAddr,
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::{Parser, Subcommand};
use daarion_bench::{
    Figures, Killed, free_port, line, median, ms, nginx_origin, percentile, rss_kib, tree_rss_kib,
    wait_ready, wrk_watching,
};
use daarion_testkit::llm::{FakeLlm, Flavor};
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    command: Option<Sub>,
    /// The daarion binary (a release build).
    #[arg(long)]
    binary: Option<PathBuf>,
    /// LiteLLM's `litellm` executable; without it LiteLLM is left out.
    #[arg(long)]
    litellm: Option<PathBuf>,
    /// LiteLLM worker processes (one per core is its advice).
    #[arg(long, default_value_t = 2)]
    litellm_workers: u32,
    /// Sequential requests per target for the latency figures.
    #[arg(long, default_value_t = 2_000)]
    requests: usize,
    /// Seconds per wrk run.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// wrk connections.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// wrk runs per target; the median is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Soak length in seconds (0 = no soak).
    #[arg(long, default_value_t = 600)]
    soak_seconds: u64,
    /// Streams started per second, per proxy, during the soak (LiteLLM
    /// with two workers streams about 20 per second at most here).
    #[arg(long, default_value_t = 10)]
    soak_rate: u64,
}

#[derive(Subcommand)]
enum Sub {
    /// Serve the fake OpenAI-compatible provider (run by the benchmark itself).
    Fake {
        #[arg(long)]
        listen: SocketAddr,
        /// Pause between streamed chunks, like a model generating.
        #[arg(long, default_value_t = 0)]
        chunk_delay_ms: u64,
    },
}

/// One way to reach the upstreams: OpenAI-compatible base URLs, a key and
/// the model names it knows.
#[derive(Clone)]
struct Target {
    name: &'static str,
    /// Whole replies (the nginx origin, through this target)...
    base: String,
    /// ...and streams (the fast fake).
    stream_base: String,
    key: String,
    model: &'static str,
    stream_model: &'static str,
    /// The pacing upstream's model (soak).
    soak_model: &'static str,
    /// The proxy process (the upstreams' own are measured apart).
    pid: u32,
}

impl Target {
    fn url(&self, stream: bool) -> String {
        let base = if stream {
            &self.stream_base
        } else {
            &self.base
        };
        format!("{base}/chat/completions")
    }

    fn model(&self, stream: bool) -> &'static str {
        if stream {
            self.stream_model
        } else {
            self.model
        }
    }
}

fn chat(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "user", "content": "Say hello to the benchmark in a few words"}],
        "max_tokens": 64,
        "stream": stream,
    })
}

fn start_fake(chunk_delay_ms: u64) -> anyhow::Result<(Killed, u16)> {
    let port = free_port()?;
    let child = Command::new(std::env::current_exe()?)
        .args([
            "fake",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--chunk-delay-ms",
            &chunk_delay_ms.to_string(),
        ])
        .stdout(Stdio::null())
        .spawn()?;
    Ok((Killed(child), port))
}

/// `daarion up` with the origin and the two fakes as providers of the
/// aliases `bench`, `bench-stream` and `soak`, and an API key allowed to
/// call them. The bench person is on the default `free` plan, whose limits
/// are raised out of the way: every check still runs.
async fn start_daarion(
    binary: &Path,
    dir: &Path,
    [origin, fast, paced]: [u16; 3],
) -> anyhow::Result<(daarion_bench::Daarion, String)> {
    let config = dir.join("daarion.toml");
    std::fs::write(
        &config,
        format!(
            "[llm.providers.origin]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{origin}/v1\"\napi_key = \"fake\"\n\
             [llm.providers.fast]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{fast}/v1\"\napi_key = \"fake\"\n\
             [llm.providers.paced]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{paced}/v1\"\napi_key = \"fake\"\n\
             [llm.models.bench]\ndeployments = [{{ provider = \"origin\", model = \"fake-model\" }}]\n\
             price = {{ input_per_million = 0.15, output_per_million = 0.60 }}\n\
             [llm.models.bench-stream]\ndeployments = [{{ provider = \"fast\", model = \"fake-model\" }}]\n\
             price = {{ input_per_million = 0.15, output_per_million = 0.60 }}\n\
             [llm.models.soak]\ndeployments = [{{ provider = \"paced\", model = \"fake-model\" }}]\n\
             price = {{ input_per_million = 0.15, output_per_million = 0.60 }}\n\
             [usage.free]\ntokens_per_minute = 1000000000000\nrequests_per_minute = 1000000000\n\
             budget_cents_per_month = 1000000000000\n"
        ),
    )?;
    let (daarion, _) = daarion_bench::start(
        binary,
        &dir.join("data"),
        &[("DAARION_CONFIG", config.display().to_string())],
    )
    .await?;
    let base = format!("http://127.0.0.1:{}", daarion.port);
    let client = reqwest::Client::new();
    let person = daarion_testkit::passkey::Person::register(&client, &base, "bench").await?;
    let key = daarion_bench::api_key(&client, &base, &person.cookie(), &["llm:*"]).await?;
    Ok((daarion, key))
}

/// A process group (LiteLLM's master and its workers), killed on drop.
struct Group(std::process::Child);

impl Drop for Group {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .status();
        let _ = self.0.wait();
    }
}

/// LiteLLM's proxy with the same two upstreams, a master key and no
/// database (its lightest set-up: no spend tracking).
async fn start_litellm(
    litellm: &Path,
    workers: u32,
    dir: &Path,
    [origin, fast, paced]: [u16; 3],
) -> anyhow::Result<(Group, u16)> {
    let config = dir.join("litellm.yaml");
    std::fs::write(
        &config,
        format!(
            "model_list:\n\
             \x20 - model_name: bench\n    litellm_params: {{model: openai/fake-model, api_base: \"http://127.0.0.1:{origin}/v1\", api_key: fake}}\n\
             \x20 - model_name: bench-stream\n    litellm_params: {{model: openai/fake-model, api_base: \"http://127.0.0.1:{fast}/v1\", api_key: fake}}\n\
             \x20 - model_name: soak\n    litellm_params: {{model: openai/fake-model, api_base: \"http://127.0.0.1:{paced}/v1\", api_key: fake}}\n\
             general_settings:\n  master_key: sk-bench\n"
        ),
    )?;
    let port = free_port()?;
    let child = Command::new(litellm)
        .process_group(0)
        .arg("--config")
        .arg(&config)
        .args([
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
            "--num_workers",
            &workers.to_string(),
        ])
        .env("LITELLM_LOG", "ERROR")
        // Its price list ships with it; do not fetch it from the network.
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env_remove("DATABASE_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("failed to start litellm")?;
    let litellm = Group(child);
    wait_ready(port, "/health/liveliness", Duration::from_secs(120)).await?;
    Ok((litellm, port))
}

/// Time of one whole call, or to the first streamed byte (then read to
/// the end).
async fn timed(
    client: &reqwest::Client,
    target: &Target,
    stream: bool,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut response = client
        .post(target.url(stream))
        .bearer_auth(&target.key)
        .json(&chat(target.model(stream), stream))
        .send()
        .await?
        .error_for_status()?;
    if stream {
        response.chunk().await?.context("empty stream")?;
        let first = started.elapsed();
        while response.chunk().await?.is_some() {}
        Ok(first)
    } else {
        response.bytes().await?;
        Ok(started.elapsed())
    }
}

/// Sequential calls, interleaved across targets so a slow spell of the
/// shared machine hits each alike; sorted durations per target.
async fn latencies(
    targets: &[Target],
    requests: usize,
    stream: bool,
) -> anyhow::Result<Vec<Vec<Duration>>> {
    let clients: Vec<reqwest::Client> = targets.iter().map(|_| reqwest::Client::new()).collect();
    let mut samples = vec![Vec::with_capacity(requests); targets.len()];
    for round in 0..requests + requests / 10 {
        for (i, target) in targets.iter().enumerate() {
            let took = timed(&clients[i], target, stream).await?;
            // The first tenth warms connections and caches.
            if round >= requests / 10 {
                samples[i].push(took);
            }
        }
    }
    for s in &mut samples {
        s.sort();
    }
    Ok(samples)
}

fn print_latencies(title: &str, targets: &[Target], samples: &[Vec<Duration>]) {
    println!("{title}");
    let (direct50, direct99) = (percentile(&samples[0], 50.0), percentile(&samples[0], 99.0));
    for (target, s) in targets.iter().zip(samples) {
        let (p50, p99) = (percentile(s, 50.0), percentile(s, 99.0));
        print!(
            "  {:<28} p50 {:>9}  p99 {:>9}",
            target.name,
            ms(p50),
            ms(p99)
        );
        if target.name != targets[0].name {
            print!(
                "   added p50 {:>9}  p99 {:>9}",
                ms(p50.saturating_sub(direct50)),
                ms(p99.saturating_sub(direct99))
            );
        }
        println!();
    }
}

fn wrk_script(dir: &Path, target: &Target, stream: bool) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("{}-{stream}.lua", target.name.replace(' ', "-")));
    std::fs::write(
        &path,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\nwrk.headers[\"Authorization\"] = \"Bearer {}\"\n",
            chat(target.model(stream), stream),
            target.key
        ),
    )?;
    Ok(path)
}

/// What a soak saw: memory samples (second, KiB), streams, failures, times
/// to first byte.
struct Soak {
    samples: Vec<(u64, u64)>,
    started: u64,
    failed: u64,
    ttft: Vec<Duration>,
}

/// Steady streaming at `rate` per second through `target`'s soak model for
/// `seconds`, sampling the memory of `pid` (and its children) every ten
/// seconds.
async fn soak(target: Target, pid: u32, rate: u64, seconds: u64) -> Soak {
    let target = Arc::new(Target {
        stream_model: target.soak_model,
        ..target
    });
    let client = reqwest::Client::new();
    let failed = Arc::new(AtomicU64::new(0));
    let ttft = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut samples = vec![(0, tree_rss_kib(pid))];
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let begun = Instant::now();
    let mut next_sample = 10;
    let mut started = 0;
    // Open loop, but bounded: a proxy that falls behind gets failures, not an
    // ever-growing queue in this process.
    let in_flight = Arc::new(tokio::sync::Semaphore::new(1_000));
    while begun.elapsed().as_secs() < seconds {
        tick.tick().await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            failed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        started += 1;
        let (client, target, failed, ttft) =
            (client.clone(), target.clone(), failed.clone(), ttft.clone());
        tokio::spawn(async move {
            match timed(&client, &target, true).await {
                Ok(took) => ttft.lock().unwrap_or_else(|p| p.into_inner()).push(took),
                Err(_) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
            drop(permit);
        });
        if begun.elapsed().as_secs() >= next_sample {
            samples.push((next_sample, tree_rss_kib(pid)));
            next_sample += 10;
        }
    }
    let _ = in_flight.acquire_many(1_000).await;
    samples.push((seconds, tree_rss_kib(pid)));
    let mut ttft = std::mem::take(&mut *ttft.lock().unwrap_or_else(|p| p.into_inner()));
    ttft.sort();
    Soak {
        samples,
        started,
        failed: failed.load(Ordering::Relaxed),
        ttft,
    }
}

fn print_soak(name: &str, soak: &Soak) {
    let mib = |kib: u64| kib as f64 / 1024.0;
    // Growth is counted from the first minute on: start-up and the first
    // connections fill pools and caches once.
    let baseline = soak
        .samples
        .iter()
        .find(|(t, _)| *t >= 60)
        .or(soak.samples.first())
        .map_or(0, |s| s.1);
    let last = soak.samples.last().map_or(0, |s| s.1);
    let peak = soak.samples.iter().map(|s| s.1).max().unwrap_or(0);
    println!(
        "  {name:<28} streams {} failed {}  TTFT p50 {} p99 {}  RSS start {:.1} MiB, at 1 min {:.1}, end {:.1}, peak {:.1}: growth after 1 min {:+.1} MiB",
        soak.started,
        soak.failed,
        ms(percentile(&soak.ttft, 50.0)),
        ms(percentile(&soak.ttft, 99.0)),
        mib(soak.samples.first().map_or(0, |s| s.1)),
        mib(baseline),
        mib(last),
        mib(peak),
        mib(last) - mib(baseline),
    );
    let trace: Vec<String> = soak
        .samples
        .iter()
        .filter(|(t, _)| t % 60 == 0)
        .map(|(t, kib)| format!("{}m {:.1}", t / 60, mib(*kib)))
        .collect();
    println!("    RSS by minute (MiB): {}", trace.join(", "));
}

async fn serve_fake(listen: SocketAddr, chunk_delay_ms: u64) -> anyhow::Result<()> {
    let fake = FakeLlm::start_on(Flavor::OpenAi, listen).await;
    fake.forget_bodies();
    fake.set_chunk_delay(Duration::from_millis(chunk_delay_ms));
    std::future::pending::<()>().await;
    Ok(())
}

/// Latency and throughput of `proxy` next to the upstream called directly,
/// interleaved so a slow spell of the shared machine hits both alike; the
/// median-throughput wrk runs of each, whole then streamed.
async fn measure(
    args: &Args,
    dir: &Path,
    pair: &[Target; 2],
    upstreams: [u32; 2],
) -> anyhow::Result<[Figures; 2]> {
    let whole = latencies(pair, args.requests, false).await?;
    print_latencies("  whole replies (one client, sequential):", pair, &whole);
    let streamed = latencies(pair, args.requests, true).await?;
    print_latencies(
        "  streamed replies, time to first byte (one client, sequential):",
        pair,
        &streamed,
    );
    let mut result = [None, None];
    for stream in [false, true] {
        println!(
            "  most requests per second, wrk -t1 -c{} {} s, {} (median of {} interleaved runs):",
            args.connections,
            args.seconds,
            if stream { "streamed" } else { "whole" },
            args.repeat
        );
        let scripts = pair
            .iter()
            .map(|t| wrk_script(dir, t, stream))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut runs: Vec<Vec<Figures>> = vec![Vec::new(); pair.len()];
        let upstream = upstreams[usize::from(stream)];
        for _ in 0..args.repeat {
            for (i, ((target, script), runs)) in
                pair.iter().zip(&scripts).zip(&mut runs).enumerate()
            {
                // The first of the pair is the upstream called directly.
                let pid = if i == 0 { upstream } else { target.pid };
                runs.push(wrk_watching(
                    &target.url(stream),
                    args.connections,
                    args.seconds,
                    Some(script),
                    pid,
                    upstream,
                )?);
            }
        }
        for (target, runs) in pair.iter().zip(&runs) {
            line(&format!("  {}", target.name), median(runs));
        }
        result[usize::from(stream)] = Some(median(&runs[1]));
    }
    let [Some(whole), Some(streamed)] = result else {
        anyhow::bail!("no wrk figures")
    };
    Ok([whole, streamed])
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(Sub::Fake {
        listen,
        chunk_delay_ms,
    }) = args.command
    {
        return serve_fake(listen, chunk_delay_ms).await;
    }
    daarion_kernel::server::install_crypto_provider();
    let binary = args.binary.clone().context("--binary is required")?;
    let dir = std::env::temp_dir().join(format!("daarion-llm-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;

    let origin = nginx_origin(&dir)?;
    let (fast_fake, fast) = start_fake(0)?;
    // A streamed reply of about ten chunks 20 ms apart: ~0.2 s per stream.
    let (paced_fake, paced) = start_fake(20)?;
    wait_ready(origin.port, "/v1/models", Duration::from_secs(10)).await?;
    wait_ready(fast, "/v1/models", Duration::from_secs(10)).await?;
    wait_ready(paced, "/v1/models", Duration::from_secs(10)).await?;
    let ports = [origin.port, fast, paced];
    let upstreams = [origin.process.id(), fast_fake.id()];
    let direct = Target {
        name: "direct (no proxy)",
        base: format!("http://127.0.0.1:{}/v1", origin.port),
        stream_base: format!("http://127.0.0.1:{fast}/v1"),
        key: "fake".into(),
        model: "fake-model",
        stream_model: "fake-model",
        soak_model: "fake-model",
        pid: origin.process.id(),
    };
    println!(
        "LLM proxy benchmark: one 2-core machine shares the load client, the fake upstream and the proxy; each proxy is measured while the other is not running; {} sequential calls per target",
        args.requests
    );

    let (daarion, key) = start_daarion(&binary, &dir, ports).await?;
    let base = format!("http://127.0.0.1:{}/api/llm/v1", daarion.port);
    let ours = Target {
        name: "daarion up",
        stream_base: base.clone(),
        base,
        key,
        model: "bench",
        stream_model: "bench-stream",
        soak_model: "soak",
        pid: daarion.child.id(),
    };
    println!("daarion up (release):");
    let daarion_figures = measure(&args, &dir, &[direct.clone(), ours.clone()], upstreams).await?;
    println!(
        "  RSS after the load: {:.1} MiB",
        rss_kib(daarion.child.id())? as f64 / 1024.0
    );

    let Some(path) = &args.litellm else {
        println!("LiteLLM left out: no --litellm given (bench/run.sh installs it)");
        return Ok(());
    };
    // LiteLLM starts only now, so neither proxy's idle work weighs on the
    // other's figures; DAARION stays up (idle) for the soak.
    let (litellm, port) = start_litellm(path, args.litellm_workers, &dir, ports).await?;
    let base = format!("http://127.0.0.1:{port}/v1");
    let theirs = Target {
        name: "litellm",
        stream_base: base.clone(),
        base,
        key: "sk-bench".into(),
        model: "bench",
        stream_model: "bench-stream",
        soak_model: "soak",
        pid: litellm.0.id(),
    };
    println!(
        "LiteLLM proxy ({} workers, no database):",
        args.litellm_workers
    );
    let litellm_figures = measure(&args, &dir, &[direct, theirs.clone()], upstreams).await?;
    println!(
        "  RSS after the load (all processes): {:.1} MiB",
        tree_rss_kib(litellm.0.id()) as f64 / 1024.0
    );
    for (i, kind) in ["whole", "streamed"].iter().enumerate() {
        println!(
            "ratio daarion/litellm, {kind}: throughput {:.1}x, p99 {:.2}x (goal: throughput >= 10x)",
            daarion_figures[i].rps / litellm_figures[i].rps,
            daarion_figures[i].p99_ms / litellm_figures[i].p99_ms
        );
    }

    if args.soak_seconds > 0 {
        println!(
            "soak: {} s of streaming at {} streams/s through each proxy at once (replies paced at 20 ms per chunk):",
            args.soak_seconds, args.soak_rate
        );
        let ours_run = tokio::spawn(soak(
            ours,
            daarion.child.id(),
            args.soak_rate,
            args.soak_seconds,
        ));
        let theirs_run = tokio::spawn(soak(
            theirs,
            litellm.0.id(),
            args.soak_rate,
            args.soak_seconds,
        ));
        print_soak("daarion up", &ours_run.await?);
        print_soak("litellm", &theirs_run.await?);
    }
    drop((litellm, daarion, fast_fake, paced_fake, origin));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
