//! Composition of DAARION: picks backends from settings, builds services,
//! mounts them behind one listener (all-in-one) or serves one service alone,
//! and runs until a shutdown signal.
//!
//! Layout: `config` (settings), `ops` (operator endpoints), and here:
//! [`SERVICES`] (the one list of services), [`Backends`], [`Shape`], [`App`].

pub mod config;
pub mod doctor;
pub mod kubernetes;
pub mod ops;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{Router, response::IntoResponse, routing::get};
use daarion_bus::{Bus, BusHealth, EmbeddedBus, NatsBus};
use daarion_cache::{Cache, CacheHealth, MemoryCache, RedisCache};
use daarion_kernel::{
    ApiError, DependencyCheck, ServiceDescriptor,
    health::Health,
    shutdown::{CancellationToken, TaskTracker},
};
use daarion_service::Service;
use daarion_store::{Db, MigrationSet};
use utoipa::openapi::OpenApi;

pub use config::Settings;

/// Every service this build can run. Adding a service is its crate and a
/// line here (and its dependency in this crate's `Cargo.toml`); the order
/// is the order their migrations apply.
pub static SERVICES: &[&Service] = &[
    &daarion_auth::SPEC,
    &daarion_pdp::SPEC,
    &daarion_control::SPEC,
    &daarion_city::SPEC,
    &daarion_microdao::SPEC,
    &daarion_messaging::SPEC,
    &daarion_space::SPEC,
    &daarion_agents::SPEC,
    &daarion_toolcore::SPEC,
    &daarion_llm::SPEC,
    &daarion_usage::SPEC,
    &daarion_filter::SPEC,
    &daarion_memory::SPEC,
    &daarion_secondme::SPEC,
    &daarion_dao::SPEC,
    &daarion_livingmap::SPEC,
    &daarion_router::SPEC,
    &daarion_runtime::SPEC,
];

/// Every migration set, in the order they apply: the platform's own
/// (idempotency keys, the embedded bus), then each service's.
pub fn migrations() -> Vec<MigrationSet> {
    [
        daarion_store::idempotency::MIGRATIONS,
        daarion_bus::MIGRATIONS,
        daarion_backup::MIGRATIONS,
    ]
    .into_iter()
    .chain(SERVICES.iter().map(|s| s.migration_set()))
    .collect()
}

/// The service named `name`, or an error listing those this build has.
pub fn service(name: &str) -> anyhow::Result<&'static Service> {
    SERVICES
        .iter()
        .copied()
        .find(|s| s.name == name)
        .with_context(|| {
            let known: Vec<_> = SERVICES.iter().map(|s| s.name).collect();
            format!("unknown service {name:?}; this build has {known:?}")
        })
}

/// The gateway's built-in route table: every service of this build on its
/// standard port.
pub fn default_routes() -> daarion_gateway::config::RouteTable {
    let services: Vec<daarion_gateway::config::ServiceRoute> = SERVICES
        .iter()
        .map(|s| daarion_gateway::config::ServiceRoute {
            name: s.name,
            port: s.port,
            websocket: s.websocket,
        })
        .collect();
    daarion_gateway::config::RouteTable::default_table(&services)
}

/// Every metric a process of this build may record, with its `# HELP`.
pub fn metric_help() -> Vec<daarion_kernel::metrics::Help> {
    [
        daarion_kernel::metrics::METRICS,
        daarion_service::METRICS,
        daarion_access::METRICS,
        daarion_bus::METRICS,
        daarion_gateway::METRICS,
        daarion_backup::METRICS,
        daarion_auth::METRICS,
        daarion_city::METRICS,
        daarion_filter::METRICS,
        daarion_llm::METRICS,
        daarion_memory::METRICS,
        daarion_messaging::METRICS,
        daarion_router::METRICS,
        daarion_runtime::METRICS,
        daarion_space::METRICS,
        daarion_usage::METRICS,
    ]
    .concat()
}

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The storage, bus and cache the settings ask for.
#[derive(Clone)]
pub struct Backends {
    pub db: Db,
    pub bus: Arc<dyn Bus>,
    pub cache: Arc<dyn Cache>,
}

impl Backends {
    /// Connects to every backend and applies pending migrations.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        if settings.database_url.is_none() {
            std::fs::create_dir_all(&settings.data_dir).with_context(|| {
                format!("failed to create data dir {}", settings.data_dir.display())
            })?;
        }
        let db = Db::connect(&settings.database())
            .await
            .context("failed to open the database (DATABASE_URL)")?;
        daarion_store::migrate::apply(&db, &migrations())
            .await
            .context("failed to apply migrations")?;
        // Every stream of the build, whatever this process serves: a city
        // replica's usage records must be durable too.
        let streams = daarion_service::streams(SERVICES).context("the services' streams")?;
        let bus: Arc<dyn Bus> = match &settings.nats_url {
            Some(url) => Arc::new(
                NatsBus::connect(url, &settings.nats_namespace, streams)
                    .await
                    .context("failed to connect to NATS (NATS_URL)")?,
            ),
            None => Arc::new(EmbeddedBus::new(db.clone(), streams)),
        };
        let cache = connect_cache(settings).await?;
        Ok(Self { db, bus, cache })
    }

    fn checks(&self) -> Vec<Arc<dyn DependencyCheck>> {
        dependency_checks(&self.db, &self.bus, &self.cache)
    }
}

fn dependency_checks(
    db: &Db,
    bus: &Arc<dyn Bus>,
    cache: &Arc<dyn Cache>,
) -> Vec<Arc<dyn DependencyCheck>> {
    vec![
        Arc::new(db.clone()),
        Arc::new(BusHealth(bus.clone())),
        Arc::new(CacheHealth(cache.clone())),
    ]
}

/// How the process runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Shape {
    /// Every service in this process, behind one listener.
    AllInOne,
    /// One service on its own port.
    Service(String),
    /// The gateway alone, proxying to services elsewhere.
    Gateway,
}

struct Mounted {
    service: &'static Service,
    api: Router,
    ws: Router,
    openapi: OpenApi,
    health: Health,
}

/// A built application, bound to its port, not yet serving.
pub struct App {
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// `None` for the gateway alone, which keeps no data.
    backends: Option<Backends>,
    server: daarion_kernel::server::ServerOptions,
    /// With TLS: a plain-HTTP listener and its router, which redirects to HTTPS.
    redirect: Option<(tokio::net::TcpListener, Router)>,
    /// The one-time invitation for the first admin, when the city has none
    /// and is not registering its first visitor as admin (a non-loopback
    /// listener): the operator is shown it at start.
    first_admin_invite: Option<String>,
}

impl App {
    /// Connects backends, migrates, builds the services of `shape` and binds.
    pub async fn build(settings: Settings, shape: Shape) -> anyhow::Result<Self> {
        daarion_kernel::server::install_crypto_provider();
        if shape == Shape::Gateway {
            return Self::build_gateway(settings).await;
        }
        let mut memory = daarion_kernel::metrics::StartupMemory::begin();
        let backends = Backends::connect(&settings).await?;
        memory.step("backends");
        Self::build_measured(settings, shape, backends, memory).await
    }

    /// `daarion gateway`: the edge alone; its only backend is the cache
    /// (Redis when configured, so rate limits hold across gateway replicas).
    async fn build_gateway(settings: Settings) -> anyhow::Result<Self> {
        daarion_kernel::metrics::describe(&metric_help());
        let cache = connect_cache(&settings).await?;
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let gateway = daarion_gateway::Gateway::new(
            settings.gateway.table(default_routes())?,
            settings.gateway.edge(&settings.server),
            cache,
            shutdown.clone(),
            tasks.clone(),
        );
        tasks.spawn(gateway.clone().watch_reloads());
        let router = daarion_kernel::http::standard_layers(
            gateway.router(),
            "gateway",
            settings.max_body_bytes,
            settings.server.body_read_timeout(),
        );
        let listener = bind(&settings, 8080).await?;
        let port = listener.local_addr()?.port();
        let (server, redirect) = server_parts(&settings, &Shape::Gateway, port).await?;
        Ok(Self {
            listener,
            router,
            shutdown,
            tasks,
            backends: None,
            server,
            redirect,
            first_admin_invite: None,
        })
    }

    /// Like [`App::build`] on backends the caller already has.
    pub async fn build_with(
        settings: Settings,
        shape: Shape,
        backends: Backends,
    ) -> anyhow::Result<Self> {
        let memory = daarion_kernel::metrics::StartupMemory::begin();
        Self::build_measured(settings, shape, backends, memory).await
    }

    async fn build_measured(
        mut settings: Settings,
        shape: Shape,
        backends: Backends,
        mut memory: daarion_kernel::metrics::StartupMemory,
    ) -> anyhow::Result<Self> {
        daarion_kernel::metrics::describe(&metric_help());
        let problems = daarion_service::check(SERVICES);
        anyhow::ensure!(
            problems.is_empty(),
            "the services' declarations disagree: {problems:?}"
        );
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let (wanted, label, default_port): (Vec<&'static Service>, _, _) = match &shape {
            Shape::AllInOne | Shape::Gateway => (SERVICES.to_vec(), "gateway", 8080),
            Shape::Service(name) => {
                let served = service(name)?;
                (vec![served], served.name, served.port)
            }
        };
        // Bound first: what auth leaves to the listener follows its address.
        let listener = bind(&settings, default_port).await?;
        let address = listener.local_addr()?;
        let https = settings.server.tls_enabled();
        settings
            .services
            .update(&daarion_auth::SPEC, |auth: &mut daarion_auth::Settings| {
                // Behind the gateway people open the gateway's address, not
                // a service's: only `up` is the address itself.
                let own = (shape == Shape::AllInOne).then_some((address.port(), https));
                auth.resolve_for_listener(address.ip().is_loopback(), own)
            })?;
        if shape == Shape::AllInOne {
            // The runtime (and memory's `llm:` embedder, and governance
            // carrying out what passed) calls the LLM proxy and toolcore
            // (the microDAO service) through this very listener...
            settings.services.update(
                &daarion_runtime::SPEC,
                |runtime: &mut daarion_runtime::Settings| {
                    runtime.resolve_for_listener(Some((address.port(), https)));
                },
            )?;
            settings.services.update(
                &daarion_memory::SPEC,
                |memory: &mut daarion_memory::Settings| {
                    memory.resolve_for_listener(Some((address.port(), https)));
                },
            )?;
            settings
                .services
                .update(&daarion_dao::SPEC, |dao: &mut daarion_dao::Settings| {
                    dao.resolve_for_listener(Some((address.port(), https)));
                })?;
            // ...with service tokens this process alone signs and checks,
            // when no secret is shared with other processes.
            if settings.service_token_secret.is_none() {
                settings.service_token_secret = Some(daarion_kernel::Secret::new(format!(
                    "{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                )));
            }
        }
        if shape == Shape::AllInOne && settings.backup.enabled {
            tasks.spawn(daarion_backup::schedule::run(
                settings.database(),
                settings.backup_dir(),
                settings.backup.clone(),
                shutdown.clone(),
            ));
        }
        tasks.spawn(daarion_bus::retention::run_janitor(
            backends.db.clone(),
            Duration::from_secs(u64::from(settings.bus_retention_days) * 24 * 3600),
            Duration::from_secs(3600),
            shutdown.clone(),
        ));
        tasks.spawn(daarion_bus::report_backlog(
            backends.bus.clone(),
            Duration::from_secs(15),
            shutdown.clone(),
        ));
        tasks.spawn(daarion_backup::report_newest(
            backends.db.clone(),
            Duration::from_secs(15),
            shutdown.clone(),
        ));
        let process = Process::build(&settings, &backends, &tasks, &shutdown, &mut memory)?;
        tasks.spawn(
            process
                .authenticator
                .clone()
                .follow_revocations(shutdown.clone()),
        );
        daarion_pdp::refresh(&process.access.engine, &backends.db)
            .await
            .context("stored policy set is invalid")?;
        tasks.spawn(
            process
                .control
                .clone()
                .follow(backends.bus.clone(), shutdown.clone()),
        );
        tasks.spawn(daarion_pdp::follow_policies(
            process.access.engine.clone(),
            backends.db.clone(),
            backends.bus.clone(),
            shutdown.clone(),
        ));
        memory.step("authentication, meter, relays");
        let mut mounted = Vec::new();
        for &service in &wanted {
            let ctx = process.context(service, &settings, &backends, &shutdown, &tasks);
            mounted.push(mount(ctx).await?);
            memory.step(service.name);
        }
        let local: std::collections::BTreeSet<String> =
            mounted.iter().map(|m| m.service.name.to_owned()).collect();
        let metrics = settings
            .server
            .metrics()
            .route(settings.gateway.trusted_proxies.clone());
        let mut router = compose(&shape, mounted, &backends, &process.access, metrics)?;
        if shape == Shape::AllInOne {
            // The in-process gateway: the same edge as `daarion gateway`, and
            // routes to upstreams not served here (Grafana, Matrix...) proxied.
            let gateway = daarion_gateway::Gateway::with_local(
                settings.gateway.table(default_routes())?,
                settings.gateway.edge(&settings.server),
                backends.cache.clone(),
                shutdown.clone(),
                tasks.clone(),
                local,
            );
            tasks.spawn(gateway.clone().watch_reloads());
            let proxy = gateway.clone();
            router = gateway.edge(router.fallback(
                move |axum::extract::ConnectInfo(socket): axum::extract::ConnectInfo<
                    SocketAddr,
                >,
                      request: axum::extract::Request| {
                    let proxy = proxy.clone();
                    async move { proxy.proxy(socket, request).await }
                },
            ));
        }
        if matches!(shape, Shape::Service(_)) {
            if settings.gateway.trusted_proxies.is_empty() {
                tracing::warn!(
                    "gateway.trusted_proxies is empty: this service takes the gateway for one client and limits it like any other; set it to the gateway's addresses"
                );
            }
            router = router.layer(axum::middleware::from_fn_with_state(
                daarion_gateway::edge::DirectClients {
                    cache: backends.cache.clone(),
                    trusted_proxies: settings.gateway.trusted_proxies.clone().into(),
                    limit: settings.gateway.edge(&settings.server).default_rate_limit,
                    service: label,
                },
                daarion_gateway::edge::direct_client_limit,
            ));
        }
        let router = daarion_kernel::http::standard_layers(
            router,
            label,
            settings.max_body_bytes,
            settings.server.body_read_timeout(),
        );
        memory.step("composition");
        let (server, redirect) = server_parts(&settings, &shape, address.port()).await?;
        let first_admin_invite = if wanted.iter().any(|s| s.name == daarion_auth::SERVICE) {
            let auth: daarion_auth::Settings = settings.services.decode(&daarion_auth::SPEC)?;
            daarion_auth::first_admin_invitation(&backends.db, &auth).await?
        } else {
            None
        };
        Ok(Self {
            listener,
            router,
            shutdown,
            tasks,
            backends: Some(backends),
            server,
            redirect,
            first_admin_invite,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)))
    }

    /// The first admin's invitation, when one was minted at start.
    pub fn first_admin_invite(&self) -> Option<&str> {
        self.first_admin_invite.as_deref()
    }

    pub fn backends(&self) -> Option<&Backends> {
        self.backends.as_ref()
    }

    /// Serves until `stop` resolves, then stops accepting, drains in-flight
    /// requests, closes WebSocket sessions (1001) and waits for background
    /// tasks to settle (at most 10 s).
    pub async fn run_until_stopped(
        self,
        stop: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let shutdown = self.shutdown.clone();
        let stop = async move {
            stop.await;
            tracing::info!("shutting down");
            shutdown.cancel();
        };
        if let Some(tls) = &self.server.tls {
            self.tasks.spawn(tls.clone().watch(self.shutdown.clone()));
        }
        if let Some((redirect, to_https)) = self.redirect {
            let done = self.shutdown.clone();
            self.tasks.spawn(daarion_kernel::server::serve(
                redirect,
                to_https,
                daarion_kernel::server::ServerOptions::default(),
                async move { done.cancelled().await },
            ));
        }
        daarion_kernel::server::serve(self.listener, self.router, self.server, stop).await;
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(Duration::from_secs(10), self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("background tasks did not finish within 10 s");
        }
        if let Some(backends) = &self.backends {
            backends.db.close().await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Redis when `REDIS_URL` is set, the in-process cache otherwise.
async fn connect_cache(settings: &Settings) -> anyhow::Result<Arc<dyn Cache>> {
    Ok(match &settings.redis_url {
        Some(url) => Arc::new(
            RedisCache::connect(url, &settings.redis_prefix)
                .await
                .context("failed to connect to Redis (REDIS_URL)")?,
        ),
        None => Arc::new(MemoryCache::default()),
    })
}

/// The listener's options and, with `server.http_redirect_listen`, the
/// plain-HTTP listener that sends people to the city's HTTPS origins
/// (`auth.origins`; unset: `https://localhost:<port>`).
async fn server_parts(
    settings: &Settings,
    shape: &Shape,
    port: u16,
) -> anyhow::Result<(
    daarion_kernel::server::ServerOptions,
    Option<(tokio::net::TcpListener, Router)>,
)> {
    let mut options = settings.server.options(&settings.gateway.trusted_proxies)?;
    if *shape == Shape::Gateway {
        // The gateway alone holds no database or bus: its connections can
        // each stay on one core's runtime, as nginx's stay in one worker.
        options.connection_threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    }
    if matches!(shape, Shape::Service(_)) {
        // A service process sits behind the gateway: every connection comes
        // from the gateway's address, and the edge already caps clients.
        options.max_connections_per_client = usize::MAX;
    }
    let redirect = match settings.server.http_redirect_listen {
        Some(address) => {
            let listener = tokio::net::TcpListener::bind(address)
                .await
                .with_context(|| format!("failed to listen on {address}"))?;
            let auth: daarion_auth::Settings = settings.services.decode(&daarion_auth::SPEC)?;
            let mut origins: Vec<String> = auth
                .origins
                .into_iter()
                .filter(|o| o.starts_with("https://"))
                .collect();
            if origins.is_empty() {
                origins.push(format!("https://localhost:{port}"));
            }
            Some((
                listener,
                daarion_kernel::server::redirect_to_https(&origins),
            ))
        }
        None => None,
    };
    Ok((options, redirect))
}

async fn bind(settings: &Settings, default_port: u16) -> anyhow::Result<tokio::net::TcpListener> {
    let address = settings
        .listen
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], default_port)));
    tokio::net::TcpListener::bind(address)
        .await
        .with_context(|| format!("failed to listen on {address}"))
}

/// What every service of the process shares.
struct Process {
    authenticator: daarion_auth::Authenticator,
    /// The process's batched publisher: audit events, usage records.
    events: daarion_bus::QueuedPublisher,
    /// Relays events staged with their data (and those a stopped process
    /// left behind).
    outbox: daarion_bus::Outbox,
    access: daarion_access::AccessDeps,
    /// The cached control-plane reader every service of the process shares.
    control: daarion_control::ControlClient,
    /// Parts owned by service crates, handed to services by type.
    components: Arc<http::Extensions>,
}

impl Process {
    fn build(
        settings: &Settings,
        backends: &Backends,
        tasks: &TaskTracker,
        shutdown: &CancellationToken,
        memory: &mut daarion_kernel::metrics::StartupMemory,
    ) -> anyhow::Result<Self> {
        let engine =
            daarion_access::Engine::with_defaults().context("shipped policies are invalid")?;
        memory.step("policy engine");
        let auth: daarion_auth::Settings = settings.services.decode(&daarion_auth::SPEC)?;
        let authenticator = daarion_auth::Authenticator::new(
            backends.db.clone(),
            backends.bus.clone(),
            Duration::from_secs(auth.session_idle_secs),
        );
        // Every process's principals carry their microDAO roles.
        let memberships = daarion_microdao::MembershipRoles::new(backends.db.clone());
        tasks.spawn(
            memberships
                .clone()
                .follow(backends.bus.clone(), shutdown.clone()),
        );
        let outbox = daarion_bus::Outbox::new(backends.db.clone(), backends.bus.clone());
        tasks.spawn(outbox.clone().run(shutdown.clone()));
        let events =
            daarion_bus::QueuedPublisher::start_keeping(outbox.clone(), tasks, shutdown.clone());
        let access = daarion_access::AccessDeps {
            failures: Some(backends.cache.clone()),
            trusted_proxies: settings.gateway.trusted_proxies.clone().into(),
            session_cookie: auth.session_cookie(),
            engine: Arc::new(engine),
            authn: Arc::new(daarion_access::WithRoles::new(
                Arc::new(authenticator.clone()),
                Arc::new(memberships.clone()),
            )),
            tokens: settings.service_tokens()?,
            audit: events.clone(),
            limiter: Some((
                backends.cache.clone(),
                daarion_cache::RateLimit {
                    per_second: settings.gateway.principal_rate_limit_per_second,
                    burst: settings.gateway.principal_rate_limit_burst,
                },
            )),
        };
        let control = daarion_control::ControlClient::new(backends.db.clone());
        let meter = daarion_usage::Meter::new(
            backends.db.clone(),
            backends.cache.clone(),
            backends.bus.clone(),
            control.clone(),
            settings.services.decode(&daarion_usage::SPEC)?,
        );
        tasks.spawn(meter.clone().write_back(shutdown.clone()));
        let mut components = http::Extensions::new();
        components.insert(authenticator.clone());
        components.insert(control.clone());
        components.insert(meter);
        components.insert(memberships);
        // The memory service, toolcore's `memory.*` tools and the runtime's
        // retrieval share one knowledge (and one vector index) per process.
        components.insert(
            daarion_memory::Knowledge::new(
                (backends.db.clone(), outbox.clone()),
                daarion_embed::Models::shared(settings.models_dir()),
                Some(settings.data_dir.join("memory-index")),
                settings.service_tokens()?,
                settings.services.decode(&daarion_memory::SPEC)?,
            )
            .map_err(anyhow::Error::msg)?,
        );
        Ok(Self {
            authenticator,
            events,
            outbox,
            access,
            control,
            components: Arc::new(components),
        })
    }

    fn context(
        &self,
        service: &'static Service,
        settings: &Settings,
        backends: &Backends,
        shutdown: &CancellationToken,
        tasks: &TaskTracker,
    ) -> daarion_service::Context {
        daarion_service::Context {
            service,
            db: backends.db.clone(),
            bus: daarion_service::declared(service, backends.bus.clone()),
            cache: backends.cache.clone(),
            access: self.access.clone(),
            events: self.events.clone(),
            outbox: self.outbox.clone(),
            shutdown: shutdown.clone(),
            tasks: tasks.clone(),
            trusted_proxies: settings.gateway.trusted_proxies.clone().into(),
            settings: settings.services.get(service),
            components: self.components.clone(),
        }
    }
}

/// Builds one service and checks that what it serves is what it declares.
async fn mount(ctx: daarion_service::Context) -> anyhow::Result<Mounted> {
    let service = ctx.service;
    let health = Health::new(
        service.descriptor(),
        dependency_checks(&ctx.db, &ctx.bus, &ctx.cache),
    );
    let built = (service.build)(ctx)
        .await
        .with_context(|| format!("failed to start the {} service", service.name))?;
    let (api, ws, openapi) = built.into_parts();
    let openapi = documented(openapi, &format!("/api/{}", service.name), service.rules);
    let problems = daarion_service::check_served(service, &openapi);
    anyhow::ensure!(problems.is_empty(), "{problems:?}");
    Ok(Mounted {
        service,
        api,
        ws,
        openapi,
        health,
    })
}

/// Schema names `next` defines differently from `doc` (the merged document
/// keeps one per name), and operation ids both use (clients generated from
/// the document name their calls by them).
fn clashing_names(doc: &OpenApi, next: &OpenApi) -> Vec<String> {
    let mut clashes = Vec::new();
    if let (Some(have), Some(new)) = (&doc.components, &next.components) {
        clashes.extend(
            new.schemas
                .iter()
                .filter(|(name, schema)| {
                    have.schemas.get(*name).is_some_and(|known| {
                        serde_json::to_value(known).ok() != serde_json::to_value(schema).ok()
                    })
                })
                .map(|(name, _)| format!("schema {name}")),
        );
    }
    let ids = |doc: &OpenApi| -> Vec<String> {
        doc.paths
            .paths
            .values()
            .flat_map(|item| {
                [
                    &item.get,
                    &item.put,
                    &item.post,
                    &item.delete,
                    &item.patch,
                    &item.head,
                    &item.options,
                    &item.trace,
                ]
                .into_iter()
                .flatten()
                .filter_map(|op| op.operation_id.clone())
                .collect::<Vec<_>>()
            })
            .collect()
    };
    let known = ids(doc);
    clashes.extend(
        ids(next)
            .into_iter()
            .filter(|id| known.contains(id))
            .map(|id| format!("operation {id}")),
    );
    clashes
}

fn compose(
    shape: &Shape,
    mounted: Vec<Mounted>,
    backends: &Backends,
    access: &daarion_access::AccessDeps,
    metrics: axum::routing::MethodRouter,
) -> anyhow::Result<Router> {
    let mut router = Router::new();
    let mut openapi = base_openapi();
    let mut healths = Vec::new();
    for m in mounted {
        let name = m.service.name;
        let api_prefix = format!("/api/{name}");
        let health = m.health.clone();
        let per_service = |r: Router| match shape {
            // Behind the in-process gateway each service also gets its own metrics label.
            Shape::AllInOne | Shape::Gateway => r.layer(axum::middleware::from_fn_with_state(
                daarion_kernel::metrics::ServiceLabel(name),
                daarion_kernel::metrics::track_http,
            )),
            Shape::Service(_) => r,
        };
        let api = m.api.route(
            "/health",
            get(move || {
                let health = health.clone();
                async move { health.respond().await }
            }),
        );
        router = router
            .nest(&api_prefix, per_service(api))
            .nest(&format!("/ws/{name}"), per_service(m.ws));
        let clashes = clashing_names(&openapi, &m.openapi);
        anyhow::ensure!(
            clashes.is_empty(),
            "{name} uses schema names or operation ids another service already does: {clashes:?} (merged, one would describe the other's operations)"
        );
        openapi.merge(m.openapi);
        healths.push(m.health);
    }
    let (ops, ops_openapi) = ops::router(backends.clone(), access.clone());
    router = router.nest("/api/ops", ops);
    openapi.merge(documented(ops_openapi, "/api/ops", ops::RULES));

    let top_health = match shape {
        Shape::AllInOne | Shape::Gateway => Health::new(
            ServiceDescriptor {
                name: "daarion",
                port: 8080,
                version: VERSION,
            },
            backends.checks(),
        ),
        Shape::Service(_) => healths.first().cloned().unwrap_or_else(|| {
            Health::new(
                ServiceDescriptor {
                    name: "daarion",
                    port: 8080,
                    version: VERSION,
                },
                backends.checks(),
            )
        }),
    };
    // Served as the bytes it serialises to: the document as utoipa's types
    // is several times larger, and it never changes while the process runs.
    let openapi = axum::body::Bytes::from(serde_json::to_vec(&openapi)?);
    Ok(router
        .route("/healthz", get(|| async { "OK" }))
        .route(
            "/health",
            get(move || {
                let (top, services) = (top_health.clone(), healths.clone());
                async move { aggregate_health(top, services).await }
            }),
        )
        .route("/metrics", metrics)
        .route(
            "/openapi.json",
            get(move || {
                let body = openapi.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        body,
                    )
                }
            }),
        )
        .merge(
            utoipa_swagger_ui::SwaggerUi::new("/docs")
                .config(utoipa_swagger_ui::Config::new(["/openapi.json"])),
        )
        .fallback(|| async { ApiError::not_found("no such route") }))
}

/// `/health`: the process's dependencies plus each mounted service's status.
async fn aggregate_health(top: Health, services: Vec<Health>) -> axum::response::Response {
    let mut report = serde_json::to_value(top.report().await).unwrap_or_default();
    let mut healthy = report["status"] == "healthy";
    let mut statuses = serde_json::Map::new();
    for service in services {
        let r = service.report().await;
        healthy &= r.is_healthy();
        statuses.insert(r.service.into(), r.status.into());
    }
    report["services"] = statuses.into();
    report["status"] = if healthy { "healthy" } else { "unhealthy" }.into();
    let status = if healthy {
        axum::http::StatusCode::OK
    } else {
        axum::http::StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report)).into_response()
}

fn base_openapi() -> OpenApi {
    let mut doc = OpenApi::new(
        utoipa::openapi::Info::new("DAARION", VERSION),
        utoipa::openapi::Paths::new(),
    );
    doc.info.description = Some(
        "Every error is `{\"error\":{\"code\",\"message\",\"request_id\"}}`; lists return \
         `{\"items\",\"next_cursor\"}`. Callers authenticate with the session cookie \
         (`daarion_session`, from a passkey sign-in) or `Authorization: Bearer` with an API \
         key (`dk_...`) or an internal service token."
            .into(),
    );
    doc
}

/// A router's document as served: paths prefixed with where it is mounted,
/// and every answer its access rules and the platform imply declared.
fn documented(mut doc: OpenApi, prefix: &str, rules: &[daarion_access::Rule]) -> OpenApi {
    let paths = std::mem::take(&mut doc.paths.paths);
    doc.paths.paths = paths
        .into_iter()
        .map(|(path, item)| (format!("{prefix}{path}"), item))
        .collect();
    daarion_service::openapi::declare_errors(&mut doc, rules);
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_services_declarations_agree() {
        assert_eq!(daarion_service::check(SERVICES), Vec::<String>::new());
    }

    #[test]
    fn two_services_cannot_share_a_schema_name_or_an_operation_id() {
        use utoipa::openapi::{ComponentsBuilder, ObjectBuilder, OpenApiBuilder, Type};
        let doc = |field: &str| {
            OpenApiBuilder::new()
                .components(Some(
                    ComponentsBuilder::new()
                        .schema(
                            "CreateInvite",
                            ObjectBuilder::new()
                                .property(field, ObjectBuilder::new().schema_type(Type::String)),
                        )
                        .build(),
                ))
                .build()
        };
        assert_eq!(
            clashing_names(&doc("role"), &doc("role")),
            Vec::<String>::new()
        );
        assert_eq!(
            clashing_names(&doc("role"), &doc("code")),
            ["schema CreateInvite"]
        );
        let with_op = |id: &str| {
            let op = utoipa::openapi::path::OperationBuilder::new().operation_id(Some(id));
            OpenApiBuilder::new()
                .paths(utoipa::openapi::PathsBuilder::new().path(
                    format!("/{id}"),
                    utoipa::openapi::PathItem::new(utoipa::openapi::HttpMethod::Post, op),
                ))
                .build()
        };
        assert_eq!(
            clashing_names(&with_op("create_invite"), &with_op("create_invite")),
            ["operation create_invite"]
        );
        assert_eq!(
            clashing_names(&with_op("a"), &with_op("b")),
            Vec::<String>::new()
        );
    }

    /// What `daarion gateway` routes by default is what each service serves.
    #[test]
    fn the_built_in_route_table_routes_every_service_prefix_to_it() {
        let table = default_routes();
        table.validate().unwrap();
        for service in SERVICES {
            for (prefix, websocket) in service.prefixes() {
                let route = table.route_for(&format!("{prefix}x")).unwrap();
                assert_eq!(route.upstream, service.name, "{prefix}");
                assert_eq!(route.websocket, websocket, "{prefix}");
                let address = &table.upstreams[service.name].addresses;
                assert_eq!(address, &[format!("127.0.0.1:{}", service.port)]);
            }
        }
    }

    #[test]
    fn every_service_with_migrations_applies_them_after_the_platform() {
        let order: Vec<&str> = migrations().iter().map(|m| m.service).collect();
        assert_eq!(&order[..2], ["idempotency", "bus"]);
        for service in SERVICES {
            assert!(order.contains(&service.name), "{}", service.name);
        }
    }
}
