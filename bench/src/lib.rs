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
    start_as(binary, &["up"], data_dir, env).await
}

/// Starts `daarion <shape…>` (`up`, or `serve <service>`) likewise.
pub async fn start_as(
    binary: &Path,
    shape: &[&str],
    data_dir: &Path,
    env: &[(&str, String)],
) -> anyhow::Result<(Daarion, Duration)> {
    start_on(binary, shape, data_dir, env, free_port()?, None).await
}

/// Starts `daarion <shape…>` on `port`: a process restarted where its
/// clients expect it; its log (warnings and errors, and what it prints
/// when it cannot start) appended to `log`.
pub async fn start_on(
    binary: &Path,
    shape: &[&str],
    data_dir: &Path,
    env: &[(&str, String)],
    port: u16,
    log: Option<&Path>,
) -> anyhow::Result<(Daarion, Duration)> {
    let (output, errors) = match log {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            (Stdio::from(file.try_clone()?), Stdio::from(file))
        }
        None => (Stdio::null(), Stdio::null()),
    };
    let started = Instant::now();
    let mut command = Command::new(binary);
    command
        .args(shape)
        .args(["--listen", &format!("127.0.0.1:{port}")]);
    // The gateway keeps no data.
    if shape.first() != Some(&"gateway") {
        command.arg("--data-dir").arg(data_dir);
    }
    command
        .env_remove("DATABASE_URL")
        .env_remove("NATS_URL")
        .env_remove("REDIS_URL")
        .env("RUST_LOG", if log.is_some() { "warn" } else { "error" })
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
        .stdout(output)
        .stderr(errors);
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

/// A new API key of the signed-in person with `cookie`, with `scopes`.
pub async fn api_key(
    client: &reqwest::Client,
    base: &str,
    cookie: &str,
    scopes: &[&str],
) -> anyhow::Result<String> {
    let reply: serde_json::Value = client
        .post(format!("{base}/api/auth/api-keys"))
        .header("cookie", cookie)
        .json(&serde_json::json!({"name": "bench", "scopes": scopes}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(reply["key"].as_str().context("no key")?.to_owned())
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

    /// Stops it as an operator would (SIGTERM), so it finishes what it
    /// holds (its last spans, say), and waits for it; what is still
    /// running after 10 s is killed on drop.
    pub fn terminate(&mut self) {
        terminate(&self.0);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && matches!(self.0.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn terminate(child: &Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
}

/// An nginx master, stopped with SIGTERM on drop: SIGKILL would leave its
/// workers running.
pub struct Nginx(pub Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        terminate(&self.0);
        let _ = self.0.wait();
    }
}

impl Nginx {
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
    /// Requests completed in the run.
    pub requests: u64,
    /// CPU time per request of the process measured and of its upstream,
    /// in microseconds (when watched: [`wrk_watching`]).
    pub cpu_us: Option<(f64, f64)>,
}

/// CPU time (user + system, every thread) that a process and its live
/// children have spent, in seconds: nginx's workers are its children.
pub fn tree_cpu_seconds(master: u32) -> f64 {
    // `/proc/<pid>/stat` counts in USER_HZ, which Linux fixes at 100.
    const TICKS_PER_SECOND: f64 = 100.0;
    let ticks = |pid: u32| -> u64 {
        // After the command: utime and stime are the 12th and 13th fields.
        let fields = stat_fields(pid);
        let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
        field(11).unwrap_or(0) + field(12).unwrap_or(0)
    };
    let total: u64 = tree(master).into_iter().map(ticks).sum();
    total as f64 / TICKS_PER_SECOND
}

/// The fields of `/proc/<pid>/stat` after the command (state, ppid, ...);
/// empty when the process is gone.
fn stat_fields(pid: u32) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let rest = stat.rsplit(')').next()?;
            Some(rest.split_whitespace().map(str::to_owned).collect())
        })
        .unwrap_or_default()
}

/// `master` and its live children (nginx's workers).
fn tree(master: u32) -> Vec<u32> {
    let mut pids = vec![master];
    if let Ok(entries) = std::fs::read_dir("/proc") {
        pids.extend(
            entries
                .flatten()
                .filter_map(|entry| entry.file_name().to_string_lossy().parse::<u32>().ok())
                .filter(|pid| {
                    stat_fields(*pid).get(1).and_then(|p| p.parse::<u32>().ok()) == Some(master)
                }),
        );
    }
    pids
}

/// [`wrk`], and the CPU time per request that `target` and `upstream`
/// (process trees) spent during the run.
pub fn wrk_watching(
    url: &str,
    connections: u32,
    seconds: u32,
    script: Option<&Path>,
    target: u32,
    upstream: u32,
) -> anyhow::Result<Figures> {
    let before = (tree_cpu_seconds(target), tree_cpu_seconds(upstream));
    let mut figures = wrk(url, connections, seconds, script)?;
    let after = (tree_cpu_seconds(target), tree_cpu_seconds(upstream));
    let per_request = |spent: f64| spent * 1e6 / figures.requests.max(1) as f64;
    figures.cpu_us = Some((
        per_request(after.0 - before.0),
        per_request(after.1 - before.1),
    ));
    Ok(figures)
}

/// An nginx that answers from memory, in processes of its own: the
/// upstream of the proxy benchmarks, far faster than the proxies measured,
/// so their figures are theirs. `/bench/small` (11 bytes), `/bench/big`
/// (1 MiB), and an OpenAI-compatible `/v1/models` and
/// `/v1/chat/completions` (whole replies only: nginx cannot read `stream`
/// in a body).
pub struct Origin {
    pub process: Nginx,
    pub port: u16,
}

/// The origin's chat completion, with its usage.
pub const CHAT_REPLY: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1,"model":"fake-model","choices":[{"index":0,"message":{"role":"assistant","content":"Hello, benchmark!"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":4,"total_tokens":16}}"#;

pub fn nginx_origin(dir: &Path) -> anyhow::Result<Origin> {
    let port = free_port()?;
    let root = dir.join("origin");
    std::fs::create_dir_all(root.join("bench"))?;
    std::fs::write(root.join("bench/big"), vec![b'x'; 1024 * 1024])?;
    let conf = format!(
        "worker_processes 1;\nworker_rlimit_nofile 20000;\nerror_log {dir}/origin-error.log warn;\npid {dir}/origin.pid;\n\
         events {{ worker_connections 16384; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 10000000;\n\
         server {{\n    listen 127.0.0.1:{port} backlog=4096;\n    root {root};\n\
         location = /bench/small {{ default_type text/plain; return 200 'hello world'; }}\n\
         location = /bench/big {{ default_type application/octet-stream; }}\n\
         location = /v1/models {{ default_type application/json; return 200 '{{\"object\":\"list\",\"data\":[]}}'; }}\n\
         location = /v1/chat/completions {{ default_type application/json; return 200 '{CHAT_REPLY}'; }}\n\
         }}\n}}\n",
        dir = dir.display(),
        root = root.display(),
    );
    let conf_file = dir.join("origin.conf");
    std::fs::write(&conf_file, conf)?;
    let process = Nginx(
        Command::new("nginx")
            .arg("-e")
            .arg(dir.join("origin-error.log"))
            .arg("-c")
            .arg(&conf_file)
            .arg("-g")
            .arg("daemon off;")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("failed to start nginx (apt-get install nginx)")?,
    );
    Ok(Origin { process, port })
}

/// A wrk Lua script that adds `headers` (and a `body` to POST).
pub fn wrk_script(path: &Path, headers: &[(&str, &str)], body: Option<&str>) -> anyhow::Result<()> {
    let mut script = String::new();
    if let Some(body) = body {
        script.push_str(&format!("wrk.method = \"POST\"\nwrk.body = '{body}'\n"));
    }
    for (name, value) in headers {
        script.push_str(&format!("wrk.headers[\"{name}\"] = \"{value}\"\n"));
    }
    std::fs::write(path, script)?;
    Ok(())
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

/// Runs `wrk -t1` against `url`, with a Lua `script` (a POST body, headers)
/// when given. One load thread leaves the targets as much of this 2-core
/// machine as it can.
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
            "-t1",
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
    let requests = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .context("no request count")?;
    Ok(Figures {
        requests,
        cpu_us: None,
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
    tree(master)
        .into_iter()
        .map(|pid| rss_kib(pid).unwrap_or(0))
        .sum()
}

/// The run with the median throughput (its latencies belong to the same run).
pub fn median(runs: &[Figures]) -> Figures {
    let mut sorted = runs.to_vec();
    sorted.sort_by(|a, b| a.rps.total_cmp(&b.rps));
    sorted[sorted.len() / 2]
}

/// Prints one target's figures.
pub fn line(label: &str, f: Figures) {
    let cpu = f.cpu_us.map_or(String::new(), |(target, upstream)| {
        format!("   CPU/req {target:>6.1} µs (upstream {upstream:>5.1} µs)")
    });
    println!(
        "  {label:<34} {:>8.0} req/s   p50 {:>7.2} ms   p99 {:>7.2} ms   errors {}{cpu}",
        f.rps, f.p50_ms, f.p99_ms, f.errors
    );
}

/// A follower's latencies: for each of the next `expected` frames whose
/// message body is a send time (microseconds since `epoch`), how long it
/// took to arrive. One deadline for the whole run, so the server's pings
/// cannot keep a follower that stopped receiving waiting.
pub async fn follow_latencies(
    mut socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    expected: usize,
    epoch: Instant,
) -> Vec<Duration> {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::Message;
    let mut latencies = Vec::with_capacity(expected);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while latencies.len() < expected {
        let frame = match tokio::time::timeout_at(deadline, socket.next()).await {
            Ok(Some(Ok(Message::Text(text)))) => text,
            Ok(Some(Ok(_))) => continue,
            _ => break,
        };
        let now = epoch.elapsed();
        let value: serde_json::Value = serde_json::from_str(frame.as_str()).unwrap_or_default();
        if let Some(sent) = value["message"]["body"]
            .as_str()
            .and_then(|b| b.parse::<u64>().ok())
        {
            latencies.push(now.saturating_sub(Duration::from_micros(sent)));
        }
    }
    latencies
}

/// The test kit's fake OpenAI provider in a process of its own (the LLM
/// proxy benchmark's `llm-proxy fake`), once it answers: it and its port.
pub async fn start_fake_llm() -> anyhow::Result<(Killed, u16)> {
    let port = free_port()?;
    let child = Command::new(std::env::current_exe()?.with_file_name("llm-proxy"))
        .args(["fake", "--listen", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .spawn()
        .context("the fake provider (bench's llm-proxy binary) did not start")?;
    let fake = Killed(child);
    wait_ready(port, "/v1/models", Duration::from_secs(10)).await?;
    Ok((fake, port))
}

/// Writes a `daarion.toml` at `path` whose model alias `bench` is the fake
/// provider on `fake`, with the free plan's limits raised out of the way
/// (every check still runs), and `extra` settings after.
pub fn fake_llm_config(path: &Path, fake: u16, extra: &str) -> anyhow::Result<()> {
    std::fs::write(
        path,
        format!(
            "[llm.providers.fake]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{fake}/v1\"\napi_key = \"fake\"\n\
             [llm.models.bench]\ndeployments = [{{ provider = \"fake\", model = \"fake-model\" }}]\n\
             [usage.free]\ntokens_per_minute = 1000000000000\nrequests_per_minute = 1000000000\n\
             runs_per_day = 1000000000\ndistinct_users_per_day = 1000000\nconcurrent_runs = 1000\n{extra}"
        ),
    )?;
    Ok(())
}

/// Sends `body` (if any) to `url` as the person with `cookie`: the JSON
/// answer, or an error naming the status.
pub async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    cookie: &str,
    body: Option<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let mut request = client.request(method, url).header("cookie", cookie);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status();
    let value: serde_json::Value = response.json().await.unwrap_or(serde_json::Value::Null);
    anyhow::ensure!(status.is_success(), "{url}: {status} {value}");
    Ok(value)
}
