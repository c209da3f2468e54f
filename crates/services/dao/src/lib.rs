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
pub mod execute;
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
    migrations: &[
        migration!(1, "001_create_dao_tables"),
        migration!(2, "002_make_votes_append_only"),
        migration!(3, "003_keep_current_ballots"),
    ],
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
    /// How often each replica looks for proposals past their deadline
    /// (and passed actions to carry out), in milliseconds.
    pub sweep_ms: u64,
    /// Where passed actions call the owning services' APIs: the gateway
    /// (empty: this process's own listener in `up`, else the gateway's
    /// standard address on this host).
    pub city_url: String,
    /// How long one executor holds a passed action before another may try
    /// it (an executor that crashed mid-way is waited for this long).
    pub execution_lease_secs: i64,
    /// Tries of an execution the owning service did not answer (5xx,
    /// unreachable) before it is recorded as failed.
    pub max_execution_attempts: i64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            min_voting_secs: 60,
            max_voting_secs: 90 * 86_400,
            sweep_ms: 1_000,
            city_url: String::new(),
            execution_lease_secs: 60,
            max_execution_attempts: 5,
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
        let url = &self.city_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err("dao.city_url must be an http:// or https:// address".into());
        }
        if !(1..=3600).contains(&self.execution_lease_secs) {
            return Err("dao.execution_lease_secs must be 1 to 3600".into());
        }
        if !(1..=100).contains(&self.max_execution_attempts) {
            return Err("dao.max_execution_attempts must be 1 to 100".into());
        }
        Ok(())
    }
}

impl Settings {
    /// Fills an empty `city_url` as the runtime does (see
    /// `daarion_service::city_url`).
    pub fn resolve_for_listener(&mut self, own: Option<(u16, bool)>) {
        if self.city_url.is_empty() {
            self.city_url = daarion_service::city_url(own);
        }
    }
}

#[derive(Clone)]
pub struct DaoGovState {
    db: Db,
    outbox: Outbox,
    poster: daarion_messaging::Poster,
    executor: execute::Executor,
    /// Who owns an agent a proposal would bring in.
    directory: Arc<dyn daarion_access::Authenticate>,
    /// What the policies know of each microDAO (dropped on a settings
    /// change).
    standing: access::Standing,
    /// Open proposals, as votes check their ballots.
    open: moka::sync::Cache<String, Arc<domain::Proposal>>,
    settings: Arc<Settings>,
}

fn build(ctx: Context) -> Result<Mount, BuildError> {
    let standing = access::standing();
    let access = ctx.enforcer(access::GovernanceResources::new(
        ctx.db.clone(),
        standing.clone(),
    ));
    let mut settings: Settings = ctx.settings()?;
    settings.resolve_for_listener(None);
    let tokens = ctx.access.tokens.clone().ok_or_else(|| {
        BuildError::new(
            "governance carries out passed proposals through the city's APIs: set service_token_secret (the same on every process)",
        )
    })?;
    let http = daarion_kernel::outbound::client_builder()
        .map_err(BuildError::new)?
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| BuildError::new(format!("governance's HTTP client: {e}")))?;
    let state = DaoGovState {
        executor: execute::Executor::new(http, &settings.city_url, tokens),
        directory: access.directory().clone(),
        standing,
        open: moka::sync::Cache::builder()
            .max_capacity(10_000)
            .time_to_idle(Duration::from_secs(600))
            .build(),
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
