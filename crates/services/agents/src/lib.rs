//! Agent hub (port 7014, `/api/agents/`): agent definitions.
//!
//! - `GET/POST /api/agents/agents`, `GET/PATCH …/agents/{agent}`, `POST
//!   …/{agent}/archive`, `GET …/{agent}/versions`, `GET
//!   /api/agents/blueprints`: people create agents (from a blueprint or
//!   from scratch), owned by them and optionally serving a microDAO
//!   (whose admins manage them too); every change is the next version of
//!   the definition.
//! - `POST /api/agents/v1/chat/completions` (`chat`): any OpenAI client
//!   runs an agent (`model` = its slug) on its conversation.
//! - `/ws/agents/events/{agent}` (`ws`): the agent's runs as they happen,
//!   for those who manage it.
//!
//! An agent's identity is an `auth` agent (`agent:<slug>`, so it can hold
//! API keys and be a microDAO member); its profile lives here; its system
//! prompt and tools are the control plane's versioned documents (`prompt`,
//! `agent_policy`), written in the same transaction as the definition and
//! rolled back there.
//!
//! Layout: `domain` (rules, blueprints), `store` (queries, one transaction
//! per change, events staged with it), `api` (routes), `access` (rules,
//! agents as the policies see them), `events`, `runs` (the contract of
//! agent runs with the runtime: requests and live events), `chat`, `ws`.

pub mod access;
pub mod api;
pub mod chat;
pub mod domain;
pub mod events;
pub mod public;
pub mod runs;
pub mod store;
pub mod ws;

use std::sync::Arc;

use daarion_access::Enforcer;
use daarion_bus::{Bus, Outbox, subject::StreamDef};
use daarion_control::ControlClient;
use daarion_service::{BuildError, Context, Event, Mount, Section, Service, ServiceSettings};
use daarion_store::{Db, migration};
use serde::{Deserialize, Serialize};

pub const SERVICE: &str = "agents";

pub static SPEC: Service = Service {
    name: SERVICE,
    port: 7014,
    version: env!("CARGO_PKG_VERSION"),
    migrations: &[
        migration!(1, "001_create_agents_tables"),
        migration!(2, "002_add_crews"),
        migration!(3, "003_add_personal_agents"),
    ],
    rules: access::RULES,
    websocket: true,
    streams: &[StreamDef {
        name: "AGENTS",
        subjects: &["agents.>"],
    }],
    events: &[
        Event::durable(events::AGENT_CHANGED),
        Event::durable(runs::REQUESTED),
        // A definition's prompt and tools are control-plane documents:
        // every replica's cache hears of a change.
        Event::live(daarion_control::client::CHANGED),
    ],
    settings: Some(Section::of::<Settings>()),
    // The control plane's example agent stands for agents in the matrix.
    example: |_| None,
    build: |ctx| Box::pin(build(ctx)),
};

/// `[agents]` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Questions one client address may ask one public agent per minute
    /// without signing in...
    pub public_asks_per_minute: u32,
    /// ...and in a burst.
    pub public_ask_burst: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            public_asks_per_minute: 5,
            public_ask_burst: 3,
        }
    }
}

impl ServiceSettings for Settings {
    fn validate(&self) -> Result<(), String> {
        if !(1..=600).contains(&self.public_asks_per_minute) {
            return Err("agents.public_asks_per_minute must be between 1 and 600".into());
        }
        if !(1..=100).contains(&self.public_ask_burst) {
            return Err("agents.public_ask_burst must be between 1 and 100".into());
        }
        Ok(())
    }
}

#[derive(Clone)]
pub struct AgentState {
    db: Db,
    outbox: Outbox,
    bus: Arc<dyn Bus>,
    access: Arc<Enforcer>,
    /// The process's cached control-plane reader.
    control: ControlClient,
    /// Runs' live events on `/ws/agents/events/{agent}`.
    live: daarion_service::live::Live,
    /// Public questions: per-client limits, the owner's budget.
    cache: Arc<dyn daarion_cache::Cache>,
    meter: daarion_usage::Meter,
    trusted_proxies: Arc<[ipnet::IpNet]>,
    settings: Arc<Settings>,
}

async fn build(ctx: Context) -> Result<Mount, BuildError> {
    let access = ctx.enforcer(access::AgentResources { db: ctx.db.clone() });
    let state = AgentState {
        control: ctx.component::<ControlClient>()?,
        live: ctx.live(),
        meter: ctx.component()?,
        settings: Arc::new(ctx.settings()?),
        cache: ctx.cache.clone(),
        trusted_proxies: ctx.trusted_proxies.clone(),
        db: ctx.db,
        outbox: ctx.outbox,
        bus: ctx.bus,
        access: access.clone(),
    };
    Ok(Mount::new(access, api::router().with_state(state.clone()))
        .with_ws(ws::router().with_state(state)))
}
