//! Governance (port 7016, `/api/dao/`): proposals and votes that change a
//! microDAO.
//!
//! - `GET/POST /api/dao/daos/{dao}/proposals`: a microDAO's proposals; a
//!   new one is a draft of its author's — a signal, or an action the
//!   microDAO carries out when it passes.
//! - `GET/PATCH /api/dao/proposals/{proposal}`, `POST …/open`, `POST
//!   …/cancel`: the draft, opening it (the electorate and its power fixed
//!   then: the snapshot), withdrawing it before anyone voted.
//! - `POST …/votes` (a receipt back), `GET …/receipt`, `GET …/tally`
//!   (live, or hidden until the close), `GET …/record` (the hash-chained
//!   votes from the proposal as it opened).
//! - `GET/PUT/DELETE /api/dao/daos/{dao}/delegation`: lending one's voting
//!   power to another member; `GET/PUT …/settings`: whether agents vote.
//!
//! Voting closes by itself at the deadline (`lifecycle`: every replica
//! sweeps, a read closes a due proposal first); the count (`tally`) is a
//! pure function of the rules, the electorate and each voter's last
//! ballot, stored with the record's head (`chain`). Openings and closes
//! are announced in the microDAO's governance room.
//!
//! Layout: `domain` (vocabulary, rules), `tally`, `chain`, `store`,
//! `lifecycle`, `api`, `access`, `events`.

pub mod access;
pub mod api;
pub mod chain;
pub mod domain;
pub mod events;
pub mod lifecycle;
pub mod store;
pub mod tally;

use std::{sync::Arc, time::Duration};

use daarion_access::Kind;
use daarion_bus::{Outbox, subject::StreamDef};
use daarion_service::{BuildError, Context, Event, Mount, Section, Service, ServiceSettings};
use daarion_store::{Db, migration};
use serde::{Deserialize, Serialize};

pub const SERVICE: &str = "dao";

pub static SPEC: Service = Service {
    name: SERVICE,
    port: 7016,
    version: env!("CARGO_PKG_VERSION"),
    migrations: &[migration!(1, "001_create_dao_tables")],
    rules: access::RULES,
    websocket: false,
    streams: &[StreamDef {
        name: "DAO",
        subjects: &["dao.>"],
    }],
    events: &[
        Event::durable(events::PROPOSAL_CHANGED),
        Event::durable(events::VOTE_CAST),
        Event::durable(events::DELEGATION_CHANGED),
        Event::durable(events::SETTINGS_CHANGED),
        // Announcements go through messaging's `Poster`.
        Event::durable(daarion_messaging::events::CHANGED),
        Event::durable("usage.message"),
    ],
    settings: Some(Section::of::<Settings>()),
    example: |kind| {
        (kind == Kind::Proposal)
            .then(|| access::proposal_resource("prp_example", "makers", false, false))
    },
    build: |ctx| Box::pin(async move { build(ctx) }),
};

/// `[dao]` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The shortest voting window a proposal may ask for, in seconds.
    pub min_voting_secs: i64,
    /// The longest, in seconds.
    pub max_voting_secs: i64,
    /// How often each replica looks for proposals past their deadline, in
    /// milliseconds.
    pub sweep_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            min_voting_secs: 60,
            max_voting_secs: 90 * 86_400,
            sweep_ms: 1_000,
        }
    }
}

impl ServiceSettings for Settings {
    fn validate(&self) -> Result<(), String> {
        if !(1..=self.max_voting_secs).contains(&self.min_voting_secs) {
            return Err("dao.min_voting_secs must be 1 to dao.max_voting_secs".into());
        }
        if self.max_voting_secs > 365 * 86_400 {
            return Err("dao.max_voting_secs must be at most a year".into());
        }
        if !(50..=60_000).contains(&self.sweep_ms) {
            return Err("dao.sweep_ms must be 50 to 60000".into());
        }
        Ok(())
    }
}

#[derive(Clone)]
pub struct DaoGovState {
    db: Db,
    outbox: Outbox,
    poster: daarion_messaging::Poster,
    settings: Arc<Settings>,
}

fn build(ctx: Context) -> Result<Mount, BuildError> {
    let access = ctx.enforcer(access::GovernanceResources { db: ctx.db.clone() });
    let settings: Settings = ctx.settings()?;
    let state = DaoGovState {
        poster: daarion_messaging::Poster::start(ctx.db.clone(), ctx.outbox.clone()),
        db: ctx.db.clone(),
        outbox: ctx.outbox.clone(),
        settings: Arc::new(settings),
    };
    let announcer = state.clone();
    ctx.consume(
        "dao-announcements",
        events::PROPOSAL_CHANGED,
        move |event| {
            let state = announcer.clone();
            async move { lifecycle::announce(&state, &event).await }
        },
    );
    ctx.tasks.spawn(lifecycle::sweep(
        state.clone(),
        Duration::from_millis(state.settings.sweep_ms),
        ctx.shutdown.clone(),
    ));
    Ok(Mount::new(access, api::router().with_state(state)))
}
