//! Agent runtime (port 7010, `/api/runtime/`): durable agent runs.
//!
//! The `agent-worker` consumer takes `agent.run.requested.<agent>` from
//! `AGENT_RUNS` (published by the router when someone mentions an agent)
//! and runs it (`worker`): the agent's prompt and the room's conversation
//! → a model call through the LLM proxy → the tools it asks for through
//! toolcore, in a loop bounded by steps and time → the answer posted in the
//! room → `agent.run.completed` / `agent.run.failed`. Each model and tool
//! call is checkpointed, so a run taken up again after a crash resumes
//! after its last finished step, and the reply is posted once whatever
//! happens.
//!
//! - `GET /api/runtime/agents/{agent}/runs`, `GET …/runs/{run}` (with its
//!   steps; `?wait=` awaits the end), `POST …/runs/{run}/cancel`: for those
//!   who manage the agent.
//!
//! Layout: `domain` (requests, states, transcripts), `store` (runs, leases,
//! steps), `city` (the LLM proxy and toolcore, called as the agent),
//! `worker` (a delivery: lease, heartbeats, the end), `execute` (the run's
//! steps), `api`, `access`, `events`.

pub mod access;
pub mod api;
pub mod city;
pub mod context;
pub mod crew;
pub mod domain;
pub mod events;
pub mod execute;
pub mod store;
pub mod worker;

use std::{sync::Arc, time::Duration};

use daarion_bus::{Bus, ConsumerSpec, Outbox, subject::StreamDef};
use daarion_service::{BuildError, Context, Event, Mount, Section, Service, ServiceSettings};
use daarion_store::{Db, migration};
use serde::{Deserialize, Serialize};

pub const SERVICE: &str = "runtime";

pub static SPEC: Service = Service {
    name: SERVICE,
    port: 7010,
    version: env!("CARGO_PKG_VERSION"),
    migrations: &[
        migration!(1, "001_create_runtime_tables"),
        migration!(2, "002_add_run_conversations"),
        migration!(3, "003_add_step_agents"),
        migration!(4, "004_derive_run_tokens"),
    ],
    rules: access::RULES,
    websocket: false,
    streams: &[StreamDef {
        name: "AGENT_RUNS",
        subjects: &["agent.run.>"],
    }],
    events: &[
        Event::durable(events::COMPLETED),
        Event::durable(events::FAILED),
        Event::durable("usage.agent_run"),
        Event::live(events::LIVE),
        // Replies go through messaging's `Poster`.
        Event::durable(daarion_messaging::events::CHANGED),
        Event::durable("usage.message"),
    ],
    settings: Some(Section::of::<Settings>()),
    example: daarion_service::no_example,
    build: |ctx| Box::pin(build(ctx)),
};

/// `[runtime]` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where runs reach the city's LLM proxy and toolcore (the gateway's
    /// address). Empty: `up` uses its own listener, a `serve runtime`
    /// process the gateway's standard address on this host.
    pub city_url: String,
    /// Runs one process works on at once. 0: this process takes no runs
    /// (it serves the runs API while other replicas run them).
    pub workers: u32,
    /// Most model calls in one run.
    pub max_steps: u32,
    /// A run that takes longer fails.
    pub run_timeout_secs: u64,
    /// How long a worker holds a run without a heartbeat.
    pub lease_secs: u64,
    /// Attempts at a run that keeps failing for passing reasons before
    /// it fails (and its request goes to the dead letters).
    pub max_attempts: u32,
    /// The room's latest messages a run reads.
    pub window_messages: u32,
    /// Messages that must have left a room's window before the agent folds
    /// them into its rolling summary of the room (one model call each time).
    pub summary_every: u32,
    /// The longest answer posted.
    pub max_reply_chars: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            city_url: String::new(),
            workers: 4,
            max_steps: 8,
            run_timeout_secs: 120,
            lease_secs: 30,
            max_attempts: 5,
            window_messages: 20,
            summary_every: 10,
            max_reply_chars: 4000,
        }
    }
}

impl ServiceSettings for Settings {
    fn validate(&self) -> Result<(), String> {
        let url = &self.city_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err("runtime.city_url must be an http:// or https:// address".into());
        }
        if self.workers > 256 {
            return Err("runtime.workers must be between 0 and 256".into());
        }
        if !(1..=64).contains(&self.max_steps) {
            return Err("runtime.max_steps must be between 1 and 64".into());
        }
        if !(1..=3600).contains(&self.run_timeout_secs) {
            return Err("runtime.run_timeout_secs must be between 1 and 3600".into());
        }
        if !(3..=600).contains(&self.lease_secs) {
            return Err("runtime.lease_secs must be between 3 and 600".into());
        }
        if !(1..=50).contains(&self.max_attempts) {
            return Err("runtime.max_attempts must be between 1 and 50".into());
        }
        if !(1..=200).contains(&self.window_messages) {
            return Err("runtime.window_messages must be between 1 and 200".into());
        }
        if !(1..=200).contains(&self.summary_every) {
            return Err("runtime.summary_every must be between 1 and 200".into());
        }
        if !(1..=10_000).contains(&self.max_reply_chars) {
            return Err("runtime.max_reply_chars must be between 1 and 10000".into());
        }
        Ok(())
    }
}

impl Settings {
    /// Fills an empty `city_url` with the listener's loopback address when
    /// this process is the whole city (`own`: its port and whether it
    /// speaks TLS — then the certificate must name 127.0.0.1, or
    /// `city_url` must be set), else with the gateway's standard one.
    pub fn resolve_for_listener(&mut self, own: Option<(u16, bool)>) {
        if self.city_url.is_empty() {
            self.city_url = daarion_service::city_url(own);
        }
    }
}

#[derive(Clone)]
pub struct RuntimeState {
    db: Db,
    outbox: Outbox,
    bus: Arc<dyn Bus>,
}

async fn build(ctx: Context) -> Result<Mount, BuildError> {
    let mut settings: Settings = ctx.settings()?;
    settings.resolve_for_listener(None);
    let tokens = ctx.access.tokens.clone().ok_or_else(|| {
        BuildError::new(
            "the agent runtime calls the city as its agents: set service_token_secret (the same on every process)",
        )
    })?;
    let http = daarion_kernel::outbound::client_builder()
        .map_err(BuildError::new)?
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| BuildError::new(format!("the runtime's HTTP client: {e}")))?;
    let access = ctx.enforcer(access::RunResources { db: ctx.db.clone() });
    let worker = worker::Worker {
        poster: daarion_messaging::Poster::start(ctx.db.clone(), ctx.outbox.clone()),
        city: city::City::new(http, &settings.city_url, tokens),
        control: ctx.component()?,
        meter: ctx.component()?,
        knowledge: ctx.component()?,
        access: access.clone(),
        db: ctx.db.clone(),
        outbox: ctx.outbox.clone(),
        bus: ctx.bus.clone(),
        settings: Arc::new(settings.clone()),
    };
    // A run holds its delivery while it works (the runner extends it);
    // the delivery of a worker that died comes back after a lease's
    // length, when its run's lease has lapsed too, and the run resumes
    // from its checkpoints.
    let spec = ConsumerSpec {
        ack_wait: Duration::from_secs(settings.lease_secs),
        // Deliveries that found the run held by a lapsing lease count too.
        max_deliver: settings.max_attempts * 2,
        // A worker takes one run at a time: the others take the next.
        prefetch: 1,
        // Runs asked for before any runtime existed are still run (a run
        // is idempotent by its id).
        from_start: true,
        ..ConsumerSpec::new("agent-worker", events::REQUESTED)
    };
    for _ in 0..settings.workers {
        let worker = worker.clone();
        ctx.consume_with(spec.clone(), move |event| {
            let worker = worker.clone();
            async move { worker.handle(event).await }
        });
    }
    let state = RuntimeState {
        db: ctx.db,
        outbox: ctx.outbox,
        bus: ctx.bus,
    };
    Ok(Mount::new(access, api::router().with_state(state)))
}

/// The metrics this crate records, with their `# HELP` text.
pub const METRICS: &[daarion_kernel::metrics::Help] = &[
    ("runtime_runs_total", "Agent runs ended, by status."),
    (
        "runtime_checkpoint_seconds",
        "Time to write a run step checkpoint.",
    ),
];
