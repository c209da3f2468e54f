//! The distributed shape for the fault suite: a PostgreSQL, a NATS with
//! JetStream and a Redis of this run's own (so they can be stopped and
//! started without touching the machine's), a `daarion serve` process per
//! service and `daarion gateway` in front, each on a port of its own.

use std::{
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::Context;
use daarion_bench::{Killed, free_port};

use crate::process::Process;

/// A server this run starts, stops and starts again with the same data.
pub struct Server {
    pub name: &'static str,
    port: u16,
    command: Box<dyn Fn() -> Command + Send>,
    running: Option<Killed>,
}

impl Server {
    fn new(name: &'static str, port: u16, command: impl Fn() -> Command + Send + 'static) -> Self {
        Self {
            name,
            port,
            command: Box::new(command),
            running: None,
        }
    }

    /// Starts it and waits until its port accepts connections.
    pub async fn start(&mut self) -> anyhow::Result<()> {
        let child = (self.command)()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("{} did not start", self.name))?;
        self.running = Some(Killed(child));
        let since = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            anyhow::ensure!(
                since.elapsed() < Duration::from_secs(30),
                "{} does not listen on {}",
                self.name,
                self.port
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// Stops it as an operator would (SIGINT: PostgreSQL's fast shutdown,
    /// NATS's and Redis's clean one) and waits for it to exit.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut server) = self.running.take() {
            Command::new("kill")
                .args(["-INT", &server.id().to_string()])
                .status()?;
            server.0.wait()?;
        }
        Ok(())
    }
}

/// The uid and gid of `postgres`, who must own PostgreSQL's data.
fn postgres_user() -> anyhow::Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    let fields: Vec<&str> = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .context("no postgres user")?
        .split(':')
        .collect();
    Ok((fields[2].parse()?, fields[3].parse()?))
}

/// Debian's newest PostgreSQL server binaries.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|bin| bin.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop()
}

/// A new PostgreSQL cluster in `dir`, not started.
fn postgres(dir: &Path) -> anyhow::Result<Server> {
    let bin = postgres_bin().context("no PostgreSQL server under /usr/lib/postgresql")?;
    let (uid, gid) = postgres_user()?;
    let data = dir.join("pg");
    std::fs::create_dir_all(&data)?;
    std::os::unix::fs::chown(&data, Some(uid), Some(gid))?;
    let status = Command::new(bin.join("initdb"))
        .args([
            "-A",
            "trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
            "-D",
        ])
        .arg(&data)
        .uid(uid)
        .gid(gid)
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(status.success(), "initdb failed");
    let port = free_port()?;
    Ok(Server::new("PostgreSQL", port, move || {
        let mut command = Command::new(bin.join("postgres"));
        command
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&data)
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "max_connections=500",
            ])
            .uid(uid)
            .gid(gid);
        command
    }))
}

/// The whole distributed city.
pub struct Cluster {
    pub backends: Vec<Server>,
    pub services: Vec<Process>,
    pub gateway: Process,
}

impl Cluster {
    /// Starts the backends, every service and the gateway; `config` is the
    /// settings file (the fake model) every process reads.
    pub async fn start(binary: &Path, dir: &Path, config: &Path) -> anyhow::Result<Self> {
        let mut pg = postgres(dir)?;
        let nats_port = free_port()?;
        let nats_store = dir.join("nats");
        let mut nats = Server::new("NATS", nats_port, move || {
            let mut command = Command::new("nats-server");
            command
                .args([
                    "-a",
                    "127.0.0.1",
                    "-p",
                    &nats_port.to_string(),
                    "-js",
                    "-sd",
                ])
                .arg(&nats_store);
            command
        });
        let redis_port = free_port()?;
        let mut redis = Server::new("Redis", redis_port, move || {
            let mut command = Command::new("redis-server");
            command.args([
                "--port",
                &redis_port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ]);
            command
        });
        for server in [&mut pg, &mut nats, &mut redis] {
            server.start().await?;
        }
        let gateway_port = free_port()?;
        let gateway_url = format!("http://127.0.0.1:{gateway_port}");
        let secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let mut env = vec![
            (
                "DATABASE_URL",
                format!("postgres://postgres@127.0.0.1:{}/postgres", pg.port),
            ),
            ("NATS_URL", format!("nats://127.0.0.1:{nats_port}")),
            ("REDIS_URL", format!("redis://127.0.0.1:{redis_port}")),
            ("DAARION__SERVICE_TOKEN_SECRET", secret),
            ("DAARION_CONFIG", config.display().to_string()),
            ("DAARION__MESSAGING__POSTS_PER_SECOND", "1000000".to_owned()),
            ("DAARION__MESSAGING__POSTS_BURST", "1000000".to_owned()),
            // The services know the gateway's address for what it is.
            (
                "DAARION__GATEWAY__TRUSTED_PROXIES",
                "[\"127.0.0.1/32\"]".to_owned(),
            ),
            // Services call the city through its one entry point.
            ("DAARION__RUNTIME__CITY_URL", gateway_url.clone()),
            ("DAARION__DAO__CITY_URL", gateway_url.clone()),
            ("DAARION__MEMORY__CITY_URL", gateway_url),
        ];
        let log = dir.join("daarion.log");
        let mut table = daarion::default_routes();
        let mut services = Vec::new();
        for service in daarion::SERVICES {
            let port = free_port()?;
            if let Some(group) = table.upstreams.get_mut(service.name) {
                group.addresses = vec![format!("127.0.0.1:{port}")];
            }
            let process = Process::start(
                binary,
                &["serve", service.name],
                dir.join(service.name),
                env.clone(),
                port,
                log.clone(),
            )
            .await?;
            services.push(process);
        }
        let routes = dir.join("routes.toml");
        std::fs::write(&routes, toml::to_string(&table)?)?;
        env.push((
            "DAARION__GATEWAY__ROUTES_FILE",
            routes.display().to_string(),
        ));
        let gateway = Process::start(
            binary,
            &["gateway"],
            dir.join("gateway"),
            env,
            gateway_port,
            log,
        )
        .await?;
        Ok(Self {
            backends: vec![pg, nats, redis],
            services,
            gateway,
        })
    }

    pub fn base(&self) -> String {
        self.gateway.base()
    }

    /// SIGKILL, then the same process again on the same port.
    pub async fn kill_and_restart(&mut self, which: Which) -> anyhow::Result<Duration> {
        match which {
            Which::Service(i) => self.services[i].kill_and_restart().await,
            Which::Gateway => self.gateway.kill_and_restart().await,
        }
    }

    /// Processes that exited by themselves (none should).
    pub fn exited(&mut self) -> Vec<String> {
        self.services
            .iter_mut()
            .chain(std::iter::once(&mut self.gateway))
            .filter_map(|p| p.exited().then(|| p.name.clone()))
            .collect()
    }
}

#[derive(Clone, Copy)]
pub enum Which {
    Service(usize),
    Gateway,
}
