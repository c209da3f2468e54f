//! The fault suite, on `daarion up`: a city under a steady load of posts
//! (one in ten mentions an agent, who answers it), votes and treasury
//! mints meets one fault at a time — the process killed with SIGKILL and
//! restarted on the same data, the disk of its data directory filled and
//! freed — and after the run the invariant is checked against what the
//! city holds: every acknowledged message, vote and ledger entry is there,
//! a create retried with its `Idempotency-Key` was applied once, and every
//! mention got one answer, never two. Per fault it prints the requests that
//! failed and the time until every kind of request succeeded again.
//!
//! `--distributed` runs the same load through the gateway of a process per
//! service, and kills each process in turn (the gateway's too), then stops
//! PostgreSQL, NATS and Redis one at a time (`cluster`).
//!
//! Clients behave as real ones would: a post or a mint whose answer did
//! not arrive is sent again with the same key until it is acknowledged; a
//! vote is not (it counts only once acknowledged).

#![allow(clippy::print_stdout)]

mod cluster;
mod process;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::Parser;
use daarion_bench::{call, free_port, ms};
use process::Process;
use serde_json::{Value, json};

#[derive(Parser)]
struct Args {
    /// The daarion binary.
    #[arg(long)]
    binary: PathBuf,
    /// Seconds of steady load before the first fault and after each.
    #[arg(long, default_value_t = 10)]
    settle: u64,
    /// Times the process is killed and restarted.
    #[arg(long, default_value_t = 3)]
    kills: usize,
    /// Seconds the disk stays full (0: no disk fault).
    #[arg(long, default_value_t = 5)]
    full: u64,
    /// People posting at once.
    #[arg(long, default_value_t = 4)]
    posters: usize,
    /// The distributed shape instead: a process per service behind the
    /// gateway, on a PostgreSQL, NATS and Redis of the run's own.
    #[arg(long)]
    distributed: bool,
    /// Seconds PostgreSQL, NATS and Redis each stay stopped (distributed).
    #[arg(long, default_value_t = 5)]
    down: u64,
}

/// How long a client keeps retrying one create before the run is failed.
const PATIENCE: Duration = Duration::from_secs(90);

#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
enum Kind {
    Post,
    Vote,
    Mint,
}

const KINDS: [Kind; 3] = [Kind::Post, Kind::Vote, Kind::Mint];

struct Outcome {
    at: Instant,
    /// How long the request took.
    took: Duration,
    kind: Kind,
    /// Why it failed: the status, or `no answer`.
    failure: Option<String>,
}

/// What the city acknowledged.
#[derive(Default)]
struct Acked {
    /// Message id and body.
    messages: Vec<(String, String)>,
    /// Ids of the messages that mention the agent.
    mentions: Vec<String>,
    /// Receipts' hashes.
    votes: Vec<String>,
    mints: i64,
}

struct Load {
    client: reqwest::Client,
    base: String,
    room: String,
    proposal: String,
    cookies: Vec<String>,
    stop: AtomicBool,
    outcomes: Mutex<Vec<Outcome>>,
    acked: Mutex<Acked>,
}

impl Load {
    fn record(&self, kind: Kind, sent: Instant, failure: Option<String>) {
        if let Ok(mut outcomes) = self.outcomes.lock() {
            outcomes.push(Outcome {
                at: Instant::now(),
                took: sent.elapsed(),
                kind,
                failure,
            });
        }
    }

    fn acked(&self, change: impl FnOnce(&mut Acked)) {
        if let Ok(mut acked) = self.acked.lock() {
            change(&mut acked);
        }
    }

    /// Sends a request; its JSON when it succeeded.
    async fn send(&self, kind: Kind, request: reqwest::RequestBuilder) -> Option<Value> {
        let sent = Instant::now();
        let (answer, failure) = match request.timeout(Duration::from_secs(5)).send().await {
            Ok(response) if response.status().is_success() => match response.json().await {
                Ok(answer) => (Some(answer), None),
                Err(_) => (None, Some("no answer".to_owned())),
            },
            Ok(response) => (None, Some(response.status().as_u16().to_string())),
            Err(_) => (None, Some("no answer".to_owned())),
        };
        self.record(kind, sent, failure);
        answer
    }

    /// POSTs `body` with `key` until it is acknowledged.
    async fn create(&self, kind: Kind, path: &str, cookie: &str, body: &Value) -> Option<Value> {
        let key = uuid::Uuid::new_v4().to_string();
        let since = Instant::now();
        while since.elapsed() < PATIENCE {
            let request = self
                .client
                .post(format!("{}{path}", self.base))
                .header("cookie", cookie)
                .header("idempotency-key", &key)
                .json(body);
            if let Some(answer) = self.send(kind, request).await {
                return Some(answer);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    async fn post(self: Arc<Self>, poster: usize) -> anyhow::Result<()> {
        let path = format!("/api/messaging/rooms/{}/messages", self.room);
        let mut n = 0;
        while !self.stop.load(Ordering::Relaxed) {
            n += 1;
            let mention = n % 10 == 0;
            let body = if mention {
                format!("@agent:helper p{poster}-{n}")
            } else {
                format!("p{poster}-{n}")
            };
            let cookie = &self.cookies[poster % self.cookies.len()];
            let message = self
                .create(Kind::Post, &path, cookie, &json!({ "body": body }))
                .await
                .with_context(|| format!("post {body} never acknowledged"))?;
            let id = message["id"].as_str().context("a message without id")?;
            self.acked(|a| {
                a.messages.push((id.to_owned(), body));
                if mention {
                    a.mentions.push(id.to_owned());
                }
            });
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    async fn vote(self: Arc<Self>) -> anyhow::Result<()> {
        let url = format!("{}/api/dao/proposals/{}/votes", self.base, self.proposal);
        let mut n = 0;
        while !self.stop.load(Ordering::Relaxed) {
            n += 1;
            let request = self
                .client
                .post(&url)
                .header("cookie", &self.cookies[n % self.cookies.len()])
                .json(&json!({"ballot": {"choice": n % 3}}));
            if let Some(receipt) = self.send(Kind::Vote, request).await {
                let hash = receipt["hash"].as_str().context("a receipt without hash")?;
                self.acked(|a| a.votes.push(hash.to_owned()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    async fn mint(self: Arc<Self>) -> anyhow::Result<()> {
        let body = json!({"to": "dao:faults", "amount": 1});
        while !self.stop.load(Ordering::Relaxed) {
            self.create(
                Kind::Mint,
                "/api/microdao/daos/faults/treasury/mint",
                &self.cookies[0],
                &body,
            )
            .await
            .context("a mint never acknowledged")?;
            self.acked(|a| a.mints += 1);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(())
    }
}

/// One fault, and when the city was whole again.
struct Fault {
    name: String,
    at: Instant,
    /// When the fault was lifted (the process restarted, the disk freed).
    lifted: Instant,
    /// Until the next fault (or the end of the load).
    until: Instant,
    /// How long a restarted process took to be healthy.
    restart: Option<Duration>,
}

impl Fault {
    fn new(name: String, at: Instant, lifted: Instant, restart: Option<Duration>) -> Self {
        Self {
            name,
            at,
            lifted,
            until: at,
            restart,
        }
    }

    /// Requests that failed from the fault until the next, by kind and
    /// by why.
    fn failed(&self, outcomes: &[Outcome]) -> (HashMap<Kind, usize>, BTreeMap<String, usize>) {
        let mut by_kind = HashMap::new();
        let mut by_cause = BTreeMap::new();
        for o in outcomes
            .iter()
            .filter(|o| o.at >= self.at && o.at < self.until)
        {
            if let Some(failure) = &o.failure {
                *by_kind.entry(o.kind).or_default() += 1;
                *by_cause.entry(failure.clone()).or_default() += 1;
            }
        }
        (by_kind, by_cause)
    }

    /// The slowest request answered from the fault until the next.
    fn slowest(&self, outcomes: &[Outcome]) -> Duration {
        outcomes
            .iter()
            .filter(|o| o.at >= self.at && o.at < self.until)
            .map(|o| o.took)
            .max()
            .unwrap_or_default()
    }

    /// From the fault until every kind of request had succeeded again
    /// (`None`: one kind never did before the next fault).
    fn recovered(&self, outcomes: &[Outcome]) -> Option<Duration> {
        KINDS
            .iter()
            .map(|kind| {
                outcomes
                    .iter()
                    .find(|o| {
                        o.failure.is_none()
                            && o.kind == *kind
                            && o.at >= self.lifted
                            && o.at < self.until
                    })
                    .map(|o| o.at - self.at)
            })
            .try_fold(Duration::ZERO, |most, took| Some(most.max(took?)))
    }
}

/// The city under test.
enum Node {
    /// `daarion up` on a data directory of its own.
    Embedded(Process),
    Distributed(Box<cluster::Cluster>),
}

impl Node {
    fn base(&self) -> String {
        match self {
            Self::Embedded(city) => city.base(),
            Self::Distributed(cluster) => cluster.base(),
        }
    }

    fn label(&self) -> &'static str {
        match self {
            Self::Embedded(_) => "embedded",
            Self::Distributed(_) => "distributed",
        }
    }
}

/// The people, the community, its room, agent and proposal; returns the
/// load's parts and the treasury's balance before it.
async fn populate(client: &reqwest::Client, base: &str) -> anyhow::Result<(Load, i64)> {
    use reqwest::Method;
    let mut cookies = Vec::new();
    for name in ["founder", "bob", "carol", "dave"] {
        let person = daarion_testkit::passkey::Person::register(client, base, name).await?;
        cookies.push(person.cookie());
    }
    let founder = cookies[0].clone();
    call(
        client,
        Method::POST,
        &format!("{base}/api/microdao/daos"),
        &founder,
        Some(json!({"slug": "faults", "name": "Faults", "visibility": "public"})),
    )
    .await?;
    for cookie in &cookies[1..] {
        call(
            client,
            Method::POST,
            &format!("{base}/api/microdao/daos/faults/join"),
            cookie,
            None,
        )
        .await?;
    }
    let since = Instant::now();
    let room = loop {
        let rooms = call(
            client,
            Method::GET,
            &format!("{base}/api/messaging/daos/faults/rooms"),
            &founder,
            None,
        )
        .await?;
        if let Some(id) = rooms["items"]
            .as_array()
            .and_then(|rooms| rooms.iter().find(|r| r["slug"] == "general"))
            .and_then(|r| r["id"].as_str())
        {
            break id.to_owned();
        }
        anyhow::ensure!(since.elapsed() < Duration::from_secs(10), "no general room");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    call(
        client,
        Method::POST,
        &format!("{base}/api/agents/agents"),
        &founder,
        Some(json!({"slug": "helper", "blueprint": "helper", "model": "bench", "dao": "faults"})),
    )
    .await?;
    call(
        client,
        Method::POST,
        &format!("{base}/api/microdao/daos/faults/agents"),
        &founder,
        Some(json!({"agent": "helper"})),
    )
    .await?;
    let proposal = call(
        client,
        Method::POST,
        &format!("{base}/api/dao/daos/faults/proposals"),
        &founder,
        Some(
            json!({"title": "Faults", "method": "single", "options": ["one", "two", "three"],
            "vote_change": true, "threshold": {"kind": "plurality"}, "voting_secs": 86400}),
        ),
    )
    .await?;
    let proposal = proposal["id"]
        .as_str()
        .context("no proposal id")?
        .to_owned();
    call(
        client,
        Method::POST,
        &format!("{base}/api/dao/proposals/{proposal}/open"),
        &founder,
        None,
    )
    .await?;
    let balance = balance(client, base, &founder).await?;
    let load = Load {
        client: client.clone(),
        base: base.to_owned(),
        room,
        proposal,
        cookies,
        stop: AtomicBool::new(false),
        outcomes: Mutex::default(),
        acked: Mutex::default(),
    };
    Ok((load, balance))
}

async fn balance(client: &reqwest::Client, base: &str, cookie: &str) -> anyhow::Result<i64> {
    let treasury = call(
        client,
        reqwest::Method::GET,
        &format!("{base}/api/microdao/daos/faults/treasury"),
        cookie,
        None,
    )
    .await?;
    Ok(treasury["accounts"]
        .as_array()
        .and_then(|accounts| accounts.iter().find(|a| a["account"] == "dao:faults"))
        .and_then(|a| a["balance"].as_i64())
        .unwrap_or(0))
}

/// Every message of the room: id → (author, body, reply_to).
async fn messages(load: &Load) -> anyhow::Result<HashMap<String, (String, String, String)>> {
    let mut found = HashMap::new();
    let mut cursor: Option<String> = None;
    loop {
        let query = cursor
            .as_ref()
            .map_or(String::new(), |c| format!("&cursor={c}"));
        let page = call(
            &load.client,
            reqwest::Method::GET,
            &format!(
                "{}/api/messaging/rooms/{}/messages?limit=100{query}",
                load.base, load.room
            ),
            &load.cookies[0],
            None,
        )
        .await?;
        for m in page["items"].as_array().context("no items")? {
            let text = |field: &str| m[field].as_str().unwrap_or_default().to_owned();
            found.insert(text("id"), (text("author"), text("body"), text("reply_to")));
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return Ok(found),
        }
    }
}

/// Every hash of the proposal's record, and whether the server found the
/// chain intact.
async fn record(load: &Load) -> anyhow::Result<(HashSet<String>, bool)> {
    let mut hashes = HashSet::new();
    let mut after = 0;
    loop {
        let page = call(
            &load.client,
            reqwest::Method::GET,
            &format!(
                "{}/api/dao/proposals/{}/record?after={after}&limit=1000",
                load.base, load.proposal
            ),
            &load.cookies[0],
            None,
        )
        .await?;
        for link in page["votes"].as_array().context("no votes")? {
            hashes.insert(link["hash"].as_str().unwrap_or_default().to_owned());
        }
        match page["next_after"].as_i64() {
            Some(next) => after = next,
            None => return Ok((hashes, page["intact"] == true)),
        }
    }
}

/// A tmpfs of `size` MiB mounted on `dir`, unmounted on drop: a disk that
/// can be filled without touching the machine's.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: u32) -> Option<Self> {
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}m"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        mounted.then(|| Self(dir.to_owned()))
    }

    /// Writes a file until the disk is full.
    fn fill(&self) -> anyhow::Result<PathBuf> {
        use std::io::Write as _;
        let path = self.0.join("filler");
        let mut file = std::fs::File::create(&path)?;
        let chunk = vec![0u8; 1 << 20];
        while file.write_all(&chunk).and_then(|()| file.flush()).is_ok() {}
        // Whatever still fits, byte by byte in small pieces.
        while file.write_all(&chunk[..4096]).is_ok() {}
        Ok(path)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// The embedded shape's faults: `daarion up` killed and restarted
/// `--kills` times, then its disk full for `--full` s; `--settle` s of
/// load after each.
async fn embedded_faults(
    city: &mut Process,
    disk: Option<&SmallDisk>,
    args: &Args,
) -> anyhow::Result<Vec<Fault>> {
    let settle = Duration::from_secs(args.settle);
    let mut faults = Vec::new();
    for k in 1..=args.kills {
        let at = Instant::now();
        let took = city.kill_and_restart().await?;
        faults.push(Fault::new(format!("kill -9 up #{k}"), at, at, Some(took)));
        tokio::time::sleep(settle).await;
    }
    if let Some(disk) = disk {
        let at = Instant::now();
        let filler = disk.fill()?;
        tokio::time::sleep(Duration::from_secs(args.full)).await;
        std::fs::remove_file(&filler)?;
        let lifted = Instant::now();
        anyhow::ensure!(!city.exited(), "daarion up exited while its disk was full");
        faults.push(Fault::new(
            format!("disk full for {} s", args.full),
            at,
            lifted,
            None,
        ));
        tokio::time::sleep(settle).await;
    }
    Ok(faults)
}

/// The distributed shape's faults: each service's process killed and
/// restarted in turn, then the gateway's; then PostgreSQL, NATS and Redis
/// each stopped for `--down` s and started again; `--settle` s of load
/// after each.
async fn distributed_faults(
    cluster: &mut cluster::Cluster,
    args: &Args,
) -> anyhow::Result<Vec<Fault>> {
    let settle = Duration::from_secs(args.settle);
    let mut faults = Vec::new();
    let targets = (0..cluster.services.len())
        .map(cluster::Which::Service)
        .chain([cluster::Which::Gateway]);
    for which in targets {
        let name = match which {
            cluster::Which::Service(i) => format!("kill -9 serve {}", cluster.services[i].name),
            cluster::Which::Gateway => "kill -9 gateway".to_owned(),
        };
        let at = Instant::now();
        let took = cluster.kill_and_restart(which).await?;
        faults.push(Fault::new(name, at, at, Some(took)));
        tokio::time::sleep(settle).await;
    }
    for backend in &mut cluster.backends {
        let at = Instant::now();
        backend.stop()?;
        tokio::time::sleep(Duration::from_secs(args.down)).await;
        backend.start().await?;
        faults.push(Fault::new(
            format!("{} stopped for {} s", backend.name, args.down),
            at,
            Instant::now(),
            None,
        ));
        tokio::time::sleep(settle).await;
    }
    let exited = cluster.exited();
    anyhow::ensure!(
        exited.is_empty(),
        "processes exited by themselves: {exited:?}"
    );
    Ok(faults)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("daarion-faults-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data"))?;
    let disk = if args.full > 0 && !args.distributed {
        let disk = SmallDisk::mount(&dir.join("data"), 256);
        if disk.is_none() {
            println!(
                "faults: cannot mount a small disk here (not root?): the disk fault is left out"
            );
        }
        disk
    } else {
        None
    };
    let (_fake, fake_port) = daarion_bench::start_fake_llm().await?;
    let config = dir.join("daarion.toml");
    daarion_bench::fake_llm_config(&config, fake_port, "")?;
    let mut node = if args.distributed {
        Node::Distributed(Box::new(
            cluster::Cluster::start(&args.binary, &dir, &config).await?,
        ))
    } else {
        let env = vec![
            ("DAARION_CONFIG", config.display().to_string()),
            ("DAARION__MESSAGING__POSTS_PER_SECOND", "1000000".to_owned()),
            ("DAARION__MESSAGING__POSTS_BURST", "1000000".to_owned()),
        ];
        Node::Embedded(
            Process::start(
                &args.binary,
                &["up"],
                dir.join("data"),
                env,
                free_port()?,
                dir.join("daarion.log"),
            )
            .await?,
        )
    };
    let client = reqwest::Client::new();
    let (load, balance_before) = populate(&client, &node.base()).await?;
    let load = Arc::new(load);
    let mut workers = Vec::new();
    for poster in 0..args.posters.max(1) {
        workers.push(tokio::spawn(load.clone().post(poster)));
    }
    workers.push(tokio::spawn(load.clone().vote()));
    workers.push(tokio::spawn(load.clone().mint()));
    let began = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.settle)).await;
    let mut faults = match &mut node {
        Node::Embedded(city) => embedded_faults(city, disk.as_ref(), &args).await?,
        Node::Distributed(cluster) => distributed_faults(cluster, &args).await?,
    };
    load.stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await??;
    }
    let ended = Instant::now();
    for i in 0..faults.len() {
        faults[i].until = faults.get(i + 1).map_or(ended, |next| next.at);
    }

    let outcomes = std::mem::take(
        &mut *load
            .outcomes
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?,
    );
    let acked = std::mem::take(&mut *load.acked.lock().map_err(|_| anyhow::anyhow!("poisoned"))?);
    let count = |kind: Kind| {
        outcomes
            .iter()
            .filter(|o| o.kind == kind && o.failure.is_none())
            .count()
    };
    println!(
        "faults [{}]: {:.0} s of load, {} posts ({} mentions), {} votes, {} mints acknowledged",
        node.label(),
        (ended - began).as_secs_f64(),
        count(Kind::Post),
        acked.mentions.len(),
        count(Kind::Vote),
        count(Kind::Mint),
    );
    for fault in &faults {
        let (failed, causes) = fault.failed(&outcomes);
        let get = |kind| failed.get(&kind).copied().unwrap_or(0);
        println!(
            "  {}{}: failed {} requests (posts {}, votes {}, mints {}{}); slowest {}; every kind succeeded again after {}",
            fault.name,
            fault.restart.map_or(String::new(), |took| format!(
                " (healthy again in {})",
                ms(took)
            )),
            get(Kind::Post) + get(Kind::Vote) + get(Kind::Mint),
            get(Kind::Post),
            get(Kind::Vote),
            get(Kind::Mint),
            causes
                .iter()
                .map(|(cause, n)| format!("; {cause} ×{n}"))
                .collect::<String>(),
            ms(fault.slowest(&outcomes)),
            fault.recovered(&outcomes).map_or("never".to_owned(), ms),
        );
    }

    // The invariant, against what the city holds.
    let found = messages(&load).await?;
    let lost: Vec<&String> = acked
        .messages
        .iter()
        .map(|(id, _)| id)
        .filter(|id| !found.contains_key(*id))
        .collect();
    let mut bodies: HashMap<&str, usize> = HashMap::new();
    for (author, body, _) in found.values() {
        if !author.starts_with("agent:") {
            *bodies.entry(body.as_str()).or_default() += 1;
        }
    }
    let twice = bodies.values().filter(|n| **n > 1).count();
    // Every mention answered once: wait for the runs still going.
    let since = Instant::now();
    let (unanswered, doubled, waited) = loop {
        let found = messages(&load).await?;
        let mut answers: HashMap<&str, usize> = HashMap::new();
        for (author, _, reply_to) in found.values() {
            if author == "agent:helper" {
                *answers.entry(reply_to.as_str()).or_default() += 1;
            }
        }
        let unanswered: Vec<&String> = acked
            .mentions
            .iter()
            .filter(|id| !answers.contains_key(id.as_str()))
            .collect();
        let doubled = answers.values().filter(|n| **n > 1).count();
        if unanswered.is_empty() || since.elapsed() > Duration::from_secs(120) {
            break (unanswered, doubled, since.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let (chain, intact) = record(&load).await?;
    let votes_lost = acked.votes.iter().filter(|h| !chain.contains(*h)).count();
    let minted = balance(&load.client, &load.base, &load.cookies[0]).await? - balance_before;
    println!(
        "  invariant: messages lost {} of {}, applied twice {}; mentions unanswered {} of {} (waited {} after the load for the last), answered twice {}; votes lost {} of {} (record intact: {intact}); treasury +{minted} for {} mints acknowledged",
        lost.len(),
        acked.messages.len(),
        twice,
        unanswered.len(),
        acked.mentions.len(),
        ms(waited),
        doubled,
        votes_lost,
        acked.votes.len(),
        acked.mints,
    );
    if !unanswered.is_empty() {
        println!("  unanswered: {unanswered:?}");
    }
    drop(node);
    drop(disk);
    let whole = lost.is_empty()
        && twice == 0
        && unanswered.is_empty()
        && doubled == 0
        && votes_lost == 0
        && intact
        && minted == acked.mints;
    if !whole {
        anyhow::bail!(
            "the invariant does not hold (the city's log: {})",
            dir.join("daarion.log").display()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
