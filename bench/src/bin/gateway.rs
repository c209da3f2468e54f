//! The gateway against nginx, side by side in one run: the same upstream
//! (an nginx answering from memory in its own processes, faster than either
//! proxy), the same route table (nginx's config is our own export of it), the
//! same `wrk` load, and the CPU each process spends per request. Also
//! `daarion up` on an in-process route, and memory per open proxied
//! WebSocket.

#![allow(clippy::print_stdout)]

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use anyhow::Context;
use axum::{Router, extract::ws::WebSocketUpgrade, response::IntoResponse, routing::get};
use clap::Parser;
use daarion_bench::{
    Figures, Killed, Nginx, free_port, line, median, nginx_origin, rss_kib, tree_rss_kib,
    wait_ready, wrk_script, wrk_watching,
};

/// How long a started proxy may take to answer.
const PATIENCE: Duration = Duration::from_secs(10);

#[derive(Parser)]
struct Args {
    /// The daarion binary (a release build).
    #[arg(long)]
    binary: PathBuf,
    /// Seconds per wrk run.
    #[arg(long, default_value_t = 10)]
    seconds: u32,
    /// Runs per target and load; the median is reported.
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Proxied WebSockets to hold open for the memory figure. A proxied
    /// socket costs the gateway two file descriptors, and this machine's hard
    /// limit is 20 000 per process, so 9 000 is about the most that fits.
    #[arg(long, default_value_t = 9_000)]
    sockets: usize,
    /// Connection counts to load with.
    #[arg(long, value_delimiter = ',', default_value = "64,512")]
    connections: Vec<u32>,
}

/// The WebSocket upstream of the memory figure (nginx cannot be one).
async fn ws_upstream() -> anyhow::Result<u16> {
    let app = Router::new().route(
        "/bench/ws/socket",
        get(|upgrade: WebSocketUpgrade| async move {
            upgrade
                .read_buffer_size(4096)
                .write_buffer_size(4096)
                .on_upgrade(
                    |mut socket| async move { while let Some(Ok(_)) = socket.recv().await {} },
                )
                .into_response()
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(port)
}

async fn open_sockets(port: u16, count: usize) -> anyhow::Result<Vec<impl Send>> {
    let mut sockets = Vec::with_capacity(count);
    let mut pending = futures::stream::FuturesUnordered::new();
    use futures::StreamExt;
    for _ in 0..count {
        pending.push(tokio_tungstenite::connect_async(format!(
            "ws://127.0.0.1:{port}/bench/ws/socket"
        )));
        if pending.len() >= 200 {
            let (socket, _) = pending.next().await.context("connect")??;
            sockets.push(socket);
        }
    }
    while let Some(result) = pending.next().await {
        sockets.push(result?.0);
    }
    Ok(sockets)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("daarion-gw-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let origin = nginx_origin(&dir)?;
    let ws = ws_upstream().await?;
    let routes = format!(
        "[[routes]]\nprefix = \"/bench/\"\nupstream = \"bench\"\nrate_limit = \"off\"\n\
         [[routes]]\nprefix = \"/bench/ws/\"\nupstream = \"ws\"\nwebsocket = true\nrate_limit = \"off\"\n\
         [upstreams.bench]\naddresses = [\"127.0.0.1:{}\"]\ncredentials = true\n\
         [upstreams.ws]\naddresses = [\"127.0.0.1:{ws}\"]\n",
        origin.port
    );
    let routes_file = dir.join("routes.toml");
    std::fs::write(&routes_file, &routes)?;

    let table = daarion_gateway::config::RouteTable::parse(&routes)?;
    // nginx gets the route table through our own export, plus what an
    // operator would add for a load test: no access log, a listen backlog as
    // deep as the kernel allows (its default of 511 drops connections at 512
    // clients) and enough descriptors.
    let nginx_conf = |port: u16, buffering: bool| {
        let options = daarion_gateway::export::ExportOptions {
            listen: format!("127.0.0.1:{port} backlog=4096"),
            ..Default::default()
        };
        let mut conf = daarion_gateway::export::nginx(&table, &options)
            .replace(
                "worker_processes auto;",
                "worker_processes auto;\nworker_rlimit_nofile 20000;",
            )
            .replace("worker_connections 4096;", "worker_connections 16384;")
            .replace(
                "http {",
                &format!(
                    "http {{\n    access_log off;\n    error_log {}/error.log warn;",
                    dir.display()
                ),
            );
        if buffering {
            // nginx's usual proxy setup: responses buffered in memory.
            conf = conf.replace(
                "proxy_buffering off;\n            proxy_request_buffering off;",
                "proxy_buffering on;\n            proxy_buffers 128 16k;\n            proxy_busy_buffers_size 64k;\n            proxy_max_temp_file_size 0;",
            );
        }
        conf
    };
    let start_nginx = |name: &str, port: u16, buffering: bool| -> anyhow::Result<Nginx> {
        let conf_file = dir.join(format!("{name}.conf"));
        std::fs::write(&conf_file, nginx_conf(port, buffering))?;
        Ok(Nginx(
            Command::new("nginx")
                .arg("-c")
                .arg(&conf_file)
                .arg("-g")
                .arg(format!("daemon off; pid {}/{name}.pid;", dir.display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("failed to start nginx (apt-get install nginx)")?,
        ))
    };
    let start_gateway = |port: u16| -> anyhow::Result<Killed> {
        Ok(Killed(
            Command::new(&args.binary)
                .args(["gateway", "--listen", &format!("127.0.0.1:{port}")])
                .env("DAARION__GATEWAY__ROUTES_FILE", &routes_file)
                .env("RUST_LOG", "warn")
                .env("DAARION__SERVER__MAX_CONNECTIONS_PER_CLIENT", "1000000")
                .env_remove("REDIS_URL")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        ))
    };

    // Memory first, on fresh processes, so load runs do not inflate the baseline.
    {
        let (gw_port, nginx_port) = (free_port()?, free_port()?);
        let (gateway, nginx) = (
            start_gateway(gw_port)?,
            start_nginx("nginx-ws", nginx_port, false)?,
        );
        wait_ready(gw_port, "/bench/small", PATIENCE).await?;
        wait_ready(nginx_port, "/bench/small", PATIENCE).await?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        let before_gw = rss_kib(gateway.0.id())?;
        let sockets = open_sockets(gw_port, args.sockets).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after_gw = rss_kib(gateway.0.id())?;
        drop(sockets);
        let before_nginx = tree_rss_kib(nginx.0.id());
        let sockets = open_sockets(nginx_port, args.sockets).await?;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after_nginx = tree_rss_kib(nginx.0.id());
        drop(sockets);
        let per =
            |before: u64, after: u64| after.saturating_sub(before) as f64 / args.sockets as f64;
        println!(
            "idle memory per open proxied WebSocket ({} sockets): daarion gateway {:.1} KiB (RSS {:.1} -> {:.1} MiB), nginx {:.1} KiB (RSS of all processes {:.1} -> {:.1} MiB)",
            args.sockets,
            per(before_gw, after_gw),
            before_gw as f64 / 1024.0,
            after_gw as f64 / 1024.0,
            per(before_nginx, after_nginx),
            before_nginx as f64 / 1024.0,
            after_nginx as f64 / 1024.0,
        );
    }

    let gw_port = free_port()?;
    let gateway = start_gateway(gw_port)?;
    let nginx_port = free_port()?;
    let nginx = start_nginx("nginx", nginx_port, false)?;
    let tuned_port = free_port()?;
    let tuned = start_nginx("nginx-buffered", tuned_port, true)?;
    let (all_in_one, _) = daarion_bench::start(&args.binary, &dir.join("data"), &[]).await?;
    let up_port = all_in_one.port;
    let person = daarion_testkit::passkey::Person::register(
        &reqwest::Client::new(),
        &format!("http://127.0.0.1:{up_port}"),
        "bench",
    )
    .await?;
    let signed_in = dir.join("signed-in.lua");
    wrk_script(&signed_in, &[("Cookie", &person.cookie())], None)?;
    wait_ready(gw_port, "/bench/small", PATIENCE).await?;
    wait_ready(nginx_port, "/bench/small", PATIENCE).await?;
    wait_ready(tuned_port, "/bench/small", PATIENCE).await?;
    wait_ready(origin.port, "/bench/small", PATIENCE).await?;

    println!(
        "gateway benchmark: wrk -t1, {} s per run, one 2-core machine shared by wrk, proxy and upstream (nginx answering from memory, 1 worker); CPU per request from /proc/<pid>/stat",
        args.seconds
    );
    let watched = |target: u32| (target, origin.process.id());
    for (label, path) in [
        ("small response (11 B)", "/bench/small"),
        ("1 MiB response", "/bench/big"),
    ] {
        for &connections in &args.connections {
            println!(
                "{label}, {connections} connections (median of {} interleaved runs):",
                args.repeat
            );
            let mut targets = vec![
                (
                    "upstream direct (no proxy)",
                    format!("http://127.0.0.1:{}{path}", origin.port),
                    watched(origin.process.id()),
                    None,
                    Vec::new(),
                ),
                (
                    "nginx (streaming, as exported)",
                    format!("http://127.0.0.1:{nginx_port}{path}"),
                    watched(nginx.id()),
                    None,
                    Vec::new(),
                ),
                (
                    "nginx (buffering on, tuned)",
                    format!("http://127.0.0.1:{tuned_port}{path}"),
                    watched(tuned.id()),
                    None,
                    Vec::new(),
                ),
                (
                    "daarion gateway",
                    format!("http://127.0.0.1:{gw_port}{path}"),
                    watched(gateway.id()),
                    None,
                    Vec::new(),
                ),
            ];
            if path == "/bench/small" {
                targets.push((
                    "daarion up, in-process city route",
                    format!("http://127.0.0.1:{up_port}/api/city/rooms/general"),
                    watched(all_in_one.child.id()),
                    Some(signed_in.as_path()),
                    Vec::new(),
                ));
            }
            // Interleaved, so a slow spell of the shared machine hits every
            // target alike.
            for _ in 0..args.repeat {
                for (_, url, (target, upstream), script, runs) in &mut targets {
                    runs.push(wrk_watching(
                        url,
                        connections,
                        args.seconds,
                        *script,
                        *target,
                        *upstream,
                    )?);
                }
            }
            let medians: Vec<Figures> = targets.iter().map(|(.., runs)| median(runs)).collect();
            for ((name, ..), figures) in targets.iter().zip(&medians) {
                line(name, *figures);
            }
            let best = if medians[2].rps > medians[1].rps {
                medians[2]
            } else {
                medians[1]
            };
            let cpu = |f: Figures| f.cpu_us.map_or(f64::NAN, |(target, _)| target);
            println!(
                "  ratio daarion/best nginx: throughput {:.2}x, p99 {:.2}x, CPU per request {:.2}x (goal: throughput >= 1, p99 <= 1, CPU <= 1)",
                medians[3].rps / best.rps,
                medians[3].p99_ms / best.p99_ms,
                cpu(medians[3]) / cpu(best)
            );
        }
    }

    drop((gateway, nginx, tuned, all_in_one, origin));
    let _ = std::fs::remove_dir_all(Path::new(&dir));
    Ok(())
}
