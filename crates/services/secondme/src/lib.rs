//! Second Me (port 7003, `/api/secondme/`): every person's own agent.
//!
//! - `POST /api/secondme/invoke`: the person says something; their agent
//!   answers, recalling what they told it before.
//! - `GET /api/secondme/me`: their agent, if made yet.
//! - `GET /api/secondme/conversations`, `GET/DELETE
//!   …/conversations/{conversation}`, `GET …/{conversation}/turns`: the
//!   conversations, which only the person reads.
//!
//! The agent is an agent hub definition (`me-<their id>`, owned by them,
//! `personal`: the policies keep everyone else out, city admins too), made
//! at the first invoke; it runs on the runtime like any agent (a
//! conversation's run, awaited), so its model calls are metered to it and
//! to the person. What the person says is kept in their own memory (a note
//! in `user:<id>`, indexed as any document), and each invoke recalls from
//! that memory (nearest passages and the facts that hold about what the
//! message names) into the run, as a system turn before the message.
//! A long conversation's earlier turns reach it as its rolling summary
//! (`fold`), which the agent itself writes in a run of its own.
//!
//! Layout: `domain` (rules, the agent's prompt, errors), `store`
//! (conversations and turns), `converse` (an invoke from end to end),
//! `api`, `access`.

pub mod access;
pub mod api;
pub mod converse;
pub mod domain;
pub mod fold;
pub mod store;

use std::sync::Arc;

use daarion_bus::{Bus, Outbox};
use daarion_control::ControlClient;
use daarion_memory::Knowledge;
use daarion_service::{BuildError, Context, Event, Mount, Section, Service, ServiceSettings};
use daarion_store::{Db, migration};
use serde::{Deserialize, Serialize};

pub const SERVICE: &str = "secondme";

pub static SPEC: Service = Service {
    name: SERVICE,
    port: 7003,
    version: env!("CARGO_PKG_VERSION"),
    migrations: &[migration!(1, "001_create_secondme_tables")],
    rules: access::RULES,
    websocket: false,
    streams: &[],
    // It makes the person's agent in the hub's store (the hub's event, the
    // control plane's documents) and asks the runtime for runs.
    events: &[
        Event::durable(daarion_agents::events::AGENT_CHANGED),
        Event::live(daarion_control::client::CHANGED),
        Event::durable(daarion_agents::runs::REQUESTED),
    ],
    settings: Some(Section::of::<Settings>()),
    example: daarion_service::no_example,
    build: |ctx| Box::pin(async move { build(ctx) }),
};

/// `[secondme]` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The LLM proxy alias a new Second Me thinks with (the person can
    /// change it on its page in the hub).
    pub model: String,
    /// Earlier turns of the conversation a run reads.
    pub window_turns: usize,
    /// Passages of the person's memory recalled into each run.
    pub recalled_passages: usize,
    /// Turns that must have left a conversation's window before its agent
    /// folds them into its rolling summary of the conversation (a run of
    /// its own, metered like the others).
    pub summary_every: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            model: "default".into(),
            window_turns: 20,
            recalled_passages: 5,
            summary_every: 10,
        }
    }
}

impl ServiceSettings for Settings {
    fn validate(&self) -> Result<(), String> {
        daarion_agents::domain::model(&self.model).map_err(|e| format!("secondme.model: {e}"))?;
        if !(1..=98).contains(&self.window_turns) {
            return Err("secondme.window_turns must be between 1 and 98".into());
        }
        if !(1..=20).contains(&self.recalled_passages) {
            return Err("secondme.recalled_passages must be between 1 and 20".into());
        }
        if !(1..=200).contains(&self.summary_every) {
            return Err("secondme.summary_every must be between 1 and 200".into());
        }
        Ok(())
    }
}

#[derive(Clone)]
pub struct SecondMeState {
    db: Db,
    outbox: Outbox,
    bus: Arc<dyn Bus>,
    control: ControlClient,
    knowledge: Knowledge,
    settings: Arc<Settings>,
    /// Folds of conversations' summaries, after the answers.
    tasks: daarion_kernel::shutdown::TaskTracker,
}

fn build(ctx: Context) -> Result<Mount, BuildError> {
    let access = ctx.enforcer(daarion_access::enforce::NoResources);
    let state = SecondMeState {
        control: ctx.component()?,
        knowledge: ctx.component()?,
        settings: Arc::new(ctx.settings()?),
        tasks: ctx.tasks,
        db: ctx.db,
        outbox: ctx.outbox,
        bus: ctx.bus,
    };
    Ok(Mount::new(access, api::router().with_state(state)))
}
