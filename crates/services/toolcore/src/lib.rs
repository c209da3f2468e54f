//! Toolcore (port 7009, `/api/toolcore/`): the tools agents use.
//!
//! - `GET /api/toolcore/tools` (+ `/{tool}`): the built-in tools (`time.now`,
//!   `math.evaluate`, `city.rooms`, `microdao.members`, `messaging.post`,
//!   `http.fetch` from allow-listed public hosts) and those the city
//!   registered, each with the JSON Schema of its arguments.
//! - `POST /api/toolcore/tools`, `PATCH/DELETE …/{tool}` (city admins):
//!   webhook tools — an address, a timeout, a signing secret shown once,
//!   enabled or not, open or limited to agents and role groups.
//! - `POST …/{tool}/call`: runs a tool for the caller (and the person an
//!   agent acts for): the policies must allow both (`exec_tool`), an agent
//!   only its own tools (the control plane's `agent_policy`), and the
//!   arguments must fit the schema — or nothing runs. Every call is logged
//!   (`GET /api/toolcore/calls`, city admins) and metered (`usage.tool`).
//!
//! Layout: `domain` (names, schemas, errors), `builtins`, `webhook`
//! (signed calls), `store` (tools, call log), `api`, `access`.

pub mod access;
pub mod api;
pub mod builtins;
pub mod domain;
pub mod fetch;
pub mod mcp;
mod memory;
pub mod store;
pub mod webhook;

use std::sync::Arc;

use daarion_access::Enforcer;
use daarion_bus::Outbox;
use daarion_control::ControlClient;
use daarion_service::{BuildError, Context, Event, Mount, Section, Service, ServiceSettings};
use daarion_store::{Db, migration};
use serde::{Deserialize, Serialize};

pub const SERVICE: &str = "toolcore";

pub static SPEC: Service = Service {
    name: SERVICE,
    port: 7009,
    version: env!("CARGO_PKG_VERSION"),
    migrations: &[
        migration!(1, "001_create_toolcore_tables"),
        migration!(2, "002_add_call_idempotency"),
        migration!(3, "003_add_mcp_tools"),
    ],
    rules: access::RULES,
    websocket: false,
    streams: &[],
    events: &[
        Event::durable("usage.tool"),
        // `messaging.post` posts through messaging's `Poster`.
        Event::durable(daarion_messaging::events::CHANGED),
        Event::durable("usage.message"),
    ],
    settings: Some(Section::of::<Settings>()),
    example: |kind| {
        (kind == daarion_access::Kind::Tool)
            .then(|| daarion_access::Resource::tool("weather.lookup", true, &[], &[]))
    },
    build: |ctx| Box::pin(build(ctx)),
};

/// `[toolcore]` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Hosts `http.fetch` may read: names, or `*.example.org` for a domain
    /// and its subdomains. Empty: agents fetch nothing.
    pub fetch_allow_hosts: Vec<String>,
    /// Lets `http.fetch` reach private addresses (a city on a closed
    /// network; tests). Off: a host resolving to one is refused.
    pub fetch_allow_private: bool,
    /// The most of a page `http.fetch` reads.
    pub fetch_max_bytes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            fetch_allow_hosts: Vec::new(),
            fetch_allow_private: false,
            fetch_max_bytes: 256 * 1024,
        }
    }
}

impl ServiceSettings for Settings {
    fn validate(&self) -> Result<(), String> {
        if !(1..=10 * 1024 * 1024).contains(&self.fetch_max_bytes) {
            return Err("toolcore.fetch_max_bytes must be between 1 and 10485760".into());
        }
        if self.fetch_allow_hosts.len() > 1000 {
            return Err("toolcore.fetch_allow_hosts: at most 1000".into());
        }
        Ok(())
    }
}

#[derive(Clone)]
pub struct ToolState {
    db: Db,
    outbox: Outbox,
    access: Arc<Enforcer>,
    control: ControlClient,
    http: reqwest::Client,
    poster: daarion_messaging::Poster,
    knowledge: daarion_memory::Knowledge,
    settings: Arc<Settings>,
}

async fn build(ctx: Context) -> Result<Mount, BuildError> {
    let access = ctx.enforcer(access::ToolResources { db: ctx.db.clone() });
    let state = ToolState {
        control: ctx.component::<ControlClient>()?,
        http: daarion_kernel::outbound::client_builder()
            .map_err(BuildError::new)?
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| BuildError::new(format!("toolcore's HTTP client: {e}")))?,
        poster: daarion_messaging::Poster::start(ctx.db.clone(), ctx.outbox.clone()),
        knowledge: ctx.component()?,
        settings: Arc::new(ctx.settings()?),
        db: ctx.db,
        outbox: ctx.outbox,
        access: access.clone(),
    };
    Ok(Mount::new(access, api::router().with_state(state)))
}
