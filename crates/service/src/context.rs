//! What a service's build receives ([`Context`]) and returns ([`Mount`]).

use std::{future::Future, sync::Arc};

use axum::Router;
use daarion_access::{AccessDeps, Enforcer, Resources};
use daarion_bus::{Bus, ConsumerSpec, Envelope, HandlerError, Outbox, QueuedPublisher};
use daarion_cache::Cache;
use daarion_kernel::shutdown::{CancellationToken, TaskTracker};
use daarion_store::Db;
use utoipa_axum::router::OpenApiRouter;

use crate::{Service, ServiceSettings, live::Live, settings};

/// A service could not be built (bad settings, a missing component, a
/// failed start-up query); the process does not start.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BuildError(String);

impl BuildError {
    pub fn new(cause: impl std::fmt::Display) -> Self {
        Self(cause.to_string())
    }
}

/// What the process gives every service it builds.
#[derive(Clone)]
pub struct Context {
    pub service: &'static Service,
    pub db: Db,
    /// Publishes only the subjects the service declares (`Service::events`).
    pub bus: Arc<dyn Bus>,
    pub cache: Arc<dyn Cache>,
    /// Authentication, the policy engine, service tokens, audit.
    pub access: AccessDeps,
    /// The process's batched publisher (audit events, usage records): for
    /// events that must not hold the request up and describe no data.
    pub events: QueuedPublisher,
    /// For events durable consumers need about data being written: staged
    /// in its transaction ([`Outbox::stage`]), relayed after commit.
    pub outbox: Outbox,
    /// Fires on shutdown: sessions close, background tasks stop.
    pub shutdown: CancellationToken,
    /// Tracks sessions and background tasks, so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Proxies (our gateway) whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Arc<[ipnet::IpNet]>,
    /// This service's settings section, defaults filled in.
    pub settings: serde_json::Value,
    /// Process-wide parts owned by service crates (the authenticator, the
    /// control-plane reader, the meter), by type.
    pub components: Arc<http::Extensions>,
}

impl Context {
    /// The service's settings section, decoded.
    pub fn settings<T: ServiceSettings>(&self) -> Result<T, BuildError> {
        settings::decode(self.service.name, &self.settings).map_err(BuildError)
    }

    /// A process-wide component the binary provides.
    pub fn component<T: Clone + Send + Sync + 'static>(&self) -> Result<T, BuildError> {
        self.components.get::<T>().cloned().ok_or_else(|| {
            BuildError(format!(
                "{} needs a {} and this process has none",
                self.service.name,
                std::any::type_name::<T>()
            ))
        })
    }

    /// The service's enforcement point: its declared rules, its way of
    /// loading the resources its paths name. Keep it in the state when
    /// handlers decide more than the rule does.
    pub fn enforcer(&self, resources: impl Resources) -> Arc<Enforcer> {
        Enforcer::new(
            self.service.name,
            self.service.rules,
            Arc::new(resources),
            self.access.clone(),
        )
    }

    /// The service's live delivery (WebSocket sessions fed by the bus).
    /// Build it once and keep it in the state: its sockets share feeds.
    pub fn live(&self) -> Live {
        Live::new(crate::live::Parts {
            service: self.service.name,
            bus: self.bus.clone(),
            cache: self.cache.clone(),
            authn: self.access.authn.clone(),
            shutdown: self.shutdown.clone(),
            tasks: self.tasks.clone(),
        })
    }

    /// Runs a durable consumer (`name` shared by every replica) for as long
    /// as the process: at least once, deduplicated by event id, retried
    /// with backoff, dead-lettered after too many failures.
    pub fn consume<H, F>(&self, name: &str, filter: &str, handler: H)
    where
        H: Fn(Envelope) -> F + Send + Sync + 'static,
        F: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.consume_with(ConsumerSpec::new(name, filter), handler);
    }

    /// [`consume`](Self::consume) with its own redelivery wait and
    /// delivery limit (work that takes long, like an agent's run). Called
    /// again with the same name, it adds a worker: each takes its own
    /// deliveries.
    pub fn consume_with<H, F>(&self, spec: ConsumerSpec, handler: H)
    where
        H: Fn(Envelope) -> F + Send + Sync + 'static,
        F: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.tasks.spawn(daarion_bus::runner::run_consumer(
            self.bus.clone(),
            self.db.clone(),
            spec,
            self.shutdown.clone(),
            handler,
        ));
    }

    /// Like [`consume`](Self::consume), for a handler that stores the
    /// events it gets in batches and is idempotent by event id
    /// ([`daarion_bus::run_batch_consumer`]).
    pub fn consume_batches<H, F>(&self, name: &str, filter: &str, handler: H)
    where
        H: Fn(Vec<Envelope>) -> F + Send + Sync + 'static,
        F: Future<Output = Result<(), HandlerError>> + Send + 'static,
    {
        self.tasks.spawn(daarion_bus::run_batch_consumer(
            self.bus.clone(),
            self.db.clone(),
            ConsumerSpec::new(name, filter),
            BATCH,
            self.shutdown.clone(),
            handler,
        ));
    }
}

/// Most events a batch consumer's handler gets at once.
const BATCH: usize = 64;

/// A built service: its API (paths relative to `/api/<name>`, documented),
/// its WebSocket routes (relative to `/ws/<name>`) and its enforcement point.
pub struct Mount {
    enforcer: Arc<Enforcer>,
    api: OpenApiRouter,
    ws: Option<Router>,
}

impl Mount {
    pub fn new(enforcer: Arc<Enforcer>, api: OpenApiRouter) -> Self {
        Self {
            enforcer,
            api,
            ws: None,
        }
    }

    pub fn with_ws(mut self, ws: Router) -> Self {
        self.ws = Some(ws);
        self
    }

    /// The API and WebSocket routers with the enforcement layer in front of
    /// every route, and the API's OpenAPI document.
    pub fn into_parts(self) -> (Router, Router, utoipa::openapi::OpenApi) {
        let enforce =
            axum::middleware::from_fn_with_state(self.enforcer, daarion_access::enforce::enforce);
        let (api, openapi) = self.api.split_for_parts();
        let ws = self
            .ws
            .map_or_else(Router::new, |ws| ws.route_layer(enforce.clone()));
        (api.route_layer(enforce), ws, openapi)
    }
}
