//! Access benchmark: PDP decision latency in-process and over HTTP,
//! decisions per second on one core, and what authentication +
//! authorization add to a request (the same router with and without the
//! enforcement layer, interleaved, in one process).

#![allow(clippy::print_stdout)]

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{Router, body::Body, http::Request, routing::get};
use clap::Parser;
use daarion_access::{
    Access, AccessDeps, Action, Credential, Engine, Facts, Kind, Principal, PrincipalKind,
    Resource, Rule, Target,
    vocab::roles::{CITY_CITIZEN, DaoRole},
};
use daarion_bench::{percentile, start};
use tower::ServiceExt;

/// The allocator the `daarion` binary runs with, so in-process figures are
/// the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// The `daarion` binary (release), for the HTTP figures.
    #[arg(long)]
    binary: PathBuf,
    /// In-process decisions to time.
    #[arg(long, default_value_t = 200_000)]
    decisions: usize,
    /// HTTP decisions to time.
    #[arg(long, default_value_t = 5_000)]
    requests: usize,
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

fn citizen(roles: Vec<String>) -> Principal {
    Principal {
        kind: PrincipalKind::User,
        id: "u1".into(),
        handle: "alice".into(),
        roles,
        owner: None,
        scopes: None,
        credential: Credential::Session { id: "s".into() },
    }
}

/// Times `n` decisions; returns sorted latencies and the wall time.
fn time_decisions(
    engine: &Engine,
    who: &Principal,
    action: Action,
    what: &Resource,
    n: usize,
) -> (Vec<Duration>, Duration) {
    let mut latencies = Vec::with_capacity(n);
    let started = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let decision = engine.decide(who, action, what, Facts::default());
        latencies.push(t.elapsed());
        std::hint::black_box(decision);
    }
    let wall = started.elapsed();
    latencies.sort();
    (latencies, wall)
}

fn in_process(n: usize) -> anyhow::Result<()> {
    let engine = Engine::with_defaults()?;
    let room = daarion_city::access::room_resource(
        &daarion_city::domain::Slug::parse("general").map_err(|e| anyhow::anyhow!("{e}"))?,
    );
    let cases = [
        (
            "citizen reads a public room",
            citizen(vec![CITY_CITIZEN.into()]),
            Action::Read,
            room.clone(),
        ),
        (
            "member posts in a microDAO room",
            citizen(vec![CITY_CITIZEN.into(), DaoRole::Member.group("d1")]),
            Action::SendMessage,
            Resource::new(Kind::Room, "r")
                .attr("public", daarion_access::Attr::Bool(false))
                .attr("blocked", daarion_access::Attr::Set(Vec::new()))
                .in_dao("d1"),
        ),
        (
            "citizen denied managing the city",
            citizen(vec![CITY_CITIZEN.into()]),
            Action::Manage,
            Resource::city(),
        ),
    ];
    for (label, who, action, what) in cases {
        time_decisions(&engine, &who, action, &what, n / 10);
        let (latencies, wall) = time_decisions(&engine, &who, action, &what, n);
        println!(
            "pdp in-process [{label}]: p50 {}  p99 {}  {:.0} decisions/s on one core",
            us(percentile(&latencies, 50.0)),
            us(percentile(&latencies, 99.0)),
            n as f64 / wall.as_secs_f64()
        );
    }
    Ok(())
}

async fn over_http(binary: &std::path::Path, n: usize) -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("daarion-access-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (daarion, _) = start(binary, &dir, &[]).await?;
    let base = format!("http://127.0.0.1:{}", daarion.port);
    daarion_kernel::server::install_crypto_provider();
    let client = reqwest::Client::new();
    let person = daarion_testkit::passkey::Person::register(&client, &base, "bench").await?;
    let cookie = person.cookie();
    let body = serde_json::json!({"action": "read", "resource": {"type": "City", "id": "city"}});
    let url = format!("{base}/api/pdp/decide");
    let mut latencies = Vec::with_capacity(n);
    for i in 0..n + n / 10 {
        let t = Instant::now();
        let response = client
            .post(&url)
            .header("cookie", &cookie)
            .json(&body)
            .send()
            .await?;
        let ok = response.status().is_success();
        response.bytes().await?;
        anyhow::ensure!(ok, "decide failed");
        if i >= n / 10 {
            latencies.push(t.elapsed());
        }
    }
    latencies.sort();
    println!(
        "pdp over HTTP (POST /api/pdp/decide, keep-alive, one client): p50 {}  p99 {}",
        us(percentile(&latencies, 50.0)),
        us(percentile(&latencies, 99.0))
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// The same router with and without the enforcement layer, driven
/// in-process (no network), interleaved: the difference is what
/// authentication (session cookie, cached) + authorization cost a request.
async fn overhead(n: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let db = daarion_store::Db::connect(&format!("sqlite://{}", dir.path().join("b.db").display()))
        .await?;
    daarion_store::migrate::apply(
        &db,
        &[daarion_bus::MIGRATIONS, daarion_auth::SPEC.migration_set()],
    )
    .await?;
    let bus: Arc<dyn daarion_bus::Bus> = Arc::new(daarion_bus::EmbeddedBus::new(
        db.clone(),
        daarion_bus::subject::Streams::new([daarion_bus::subject::AUDIT])?,
    ));
    daarion_store::sql::query("INSERT INTO auth_users (id, username, display_name, city_role, created_at) VALUES ('u1', 'alice', 'Alice', 'citizen', 'now')")
        .execute(db.pool())
        .await?;
    let (_, token) =
        daarion_auth::store::create_session(&db, "u1", "bench", Duration::from_secs(3600)).await?;
    let authenticator =
        daarion_auth::Authenticator::new(db.clone(), bus.clone(), Duration::from_secs(3600));
    let deps = AccessDeps {
        engine: Arc::new(Engine::with_defaults()?),
        authn: Arc::new(authenticator),
        tokens: None,
        audit: daarion_bus::QueuedPublisher::start(
            bus,
            &tokio_util::task::TaskTracker::new(),
            tokio_util::sync::CancellationToken::new(),
        ),
        limiter: Some((
            Arc::new(daarion_cache::MemoryCache::default()),
            daarion_cache::RateLimit {
                per_second: 1e9,
                burst: u32::MAX,
            },
        )),
        failures: None,
        trusted_proxies: Arc::from([]),
        session_cookie: daarion_kernel::http::SESSION_COOKIE,
    };
    static RULES: &[Rule] = &[Rule::new(
        axum::http::Method::GET,
        "/api/city/rooms",
        Access::Check(Action::Read, Target::City),
    )];
    let enforcer = daarion_access::Enforcer::new(
        "city",
        RULES,
        Arc::new(daarion_access::enforce::NoResources),
        deps,
    );
    let plain: Router = Router::new().route("/api/city/rooms", get(|| async { "ok" }));
    let guarded: Router = Router::new()
        .route("/api/city/rooms", get(|| async { "ok" }))
        .route_layer(axum::middleware::from_fn_with_state(
            enforcer,
            daarion_access::enforce::enforce,
        ));
    let request = |cookie: bool| {
        let mut builder = Request::get("/api/city/rooms");
        if cookie {
            builder = builder.header("cookie", format!("daarion_session={token}"));
        }
        builder.body(Body::empty())
    };
    let mut plain_times = Vec::with_capacity(n);
    let mut guarded_times = Vec::with_capacity(n);
    for round in 0..3 {
        for _ in 0..n / 3 {
            let t = Instant::now();
            let response = plain.clone().oneshot(request(true)?).await?;
            let elapsed = t.elapsed();
            anyhow::ensure!(response.status() == 200, "plain route failed");
            if round > 0 {
                plain_times.push(elapsed);
            }
            let t = Instant::now();
            let response = guarded.clone().oneshot(request(true)?).await?;
            let elapsed = t.elapsed();
            anyhow::ensure!(
                response.status() == 200,
                "guarded route refused: {}",
                response.status()
            );
            if round > 0 {
                guarded_times.push(elapsed);
            }
        }
    }
    plain_times.sort();
    guarded_times.sort();
    let (p50, g50) = (
        percentile(&plain_times, 50.0),
        percentile(&guarded_times, 50.0),
    );
    let (p99, g99) = (
        percentile(&plain_times, 99.0),
        percentile(&guarded_times, 99.0),
    );
    println!(
        "auth + authz per request (session cookie, cached): without p50 {} p99 {}; with p50 {} p99 {}; added p50 {}  p99 {}",
        us(p50),
        us(p99),
        us(g50),
        us(g99),
        us(g50.saturating_sub(p50)),
        us(g99.saturating_sub(p99))
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    in_process(args.decisions)?;
    overhead(60_000).await?;
    over_http(&args.binary, args.requests).await?;
    Ok(())
}
