//! Agent filter (port 7005, `/api/filter/`): rule sets per microDAO and per
//! agent that every run answers to.
//!
//! - `GET/PUT/DELETE /api/filter/agents/{agent}/rules` (those who manage
//!   the agent), `…/daos/{dao}/rules` (the microDAO's admins): the rule
//!   sets, data (`domain::Rules`); `GET …/events`: what they blocked and
//!   redacted.
//! - [`Screening`]: what the runtime asks — quiet hours, answers per minute,
//!   and each question, tool result and answer screened by every rule set
//!   that applies (the agent's, then its microDAO's and the room's), each
//!   block or redaction logged and counted (`filter_actions_total`).
//!
//! Layout: `domain` (rules, redaction, heuristics), `store`, `api`,
//! `access`.

pub mod access;
pub mod api;
pub mod domain;
pub mod store;

use daarion_service::{BuildError, Context, Mount, Service};
use daarion_store::{Db, migration};

pub use domain::{Direction, FilterError, Rules, Verdict};

pub const SERVICE: &str = "filter";

pub static SPEC: Service = Service {
    name: SERVICE,
    port: 7005,
    version: env!("CARGO_PKG_VERSION"),
    migrations: &[migration!(1, "001_create_filter_tables")],
    rules: access::RULES,
    websocket: false,
    streams: &[],
    events: &[],
    settings: None,
    example: daarion_service::no_example,
    build: |ctx| Box::pin(async move { build(ctx) }),
};

fn build(ctx: Context) -> Result<Mount, BuildError> {
    let access = ctx.enforcer(access::FilterResources { db: ctx.db.clone() });
    Ok(Mount::new(access, api::router().with_state(ctx.db)))
}

/// The rule sets one run answers to, and what they make of its texts.
pub struct Screening {
    db: Db,
    sets: Vec<(String, domain::Compiled)>,
    agent: String,
    run_id: String,
}

impl Screening {
    /// The rule sets of `agent` and of `daos` (its own microDAO, the
    /// room's), in that order.
    pub async fn for_run(
        db: &Db,
        agent: &str,
        daos: &[&str],
        run_id: &str,
    ) -> Result<Self, FilterError> {
        let mut scopes = vec![format!("agent:{agent}")];
        for dao in daos {
            let scope = format!("dao:{dao}");
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
        Ok(Self {
            db: db.clone(),
            sets: store::rule_sets(db, &scopes).await?,
            agent: agent.to_owned(),
            run_id: run_id.to_owned(),
        })
    }

    /// The rule set whose quiet hours hold now, if any.
    pub fn quiet_now(&self) -> Option<&str> {
        let now = chrono::Utc::now();
        self.sets
            .iter()
            .find(|(_, set)| set.quiet_at(now))
            .map(|(scope, _)| scope.as_str())
    }

    /// The fewest answers per minute in one room any rule set allows.
    pub fn max_answers_per_minute(&self) -> Option<u32> {
        self.sets
            .iter()
            .filter_map(|(_, set)| set.rules.max_answers_per_minute)
            .min()
    }

    /// `text` through every rule set: blocked by the first that blocks,
    /// else redacted by each that redacts. Every block and redaction is
    /// logged.
    pub async fn screen(&self, direction: Direction, text: &str) -> Result<Verdict, FilterError> {
        let mut text = text.to_owned();
        let mut redacted = Vec::new();
        for (scope, set) in &self.sets {
            match set.screen(direction, &text) {
                Verdict::Block(why) => {
                    self.log(scope, direction, "blocked", &why).await?;
                    return Ok(Verdict::Block(why));
                }
                Verdict::Pass {
                    text: passed,
                    redacted: kinds,
                } => {
                    if !kinds.is_empty() {
                        self.log(scope, direction, "redacted", &kinds.join(", "))
                            .await?;
                    }
                    redacted.extend(kinds);
                    text = passed;
                }
            }
        }
        redacted.sort_unstable();
        redacted.dedup();
        Ok(Verdict::Pass { text, redacted })
    }

    /// Logs that a rule set refused the run outright (quiet hours, answers
    /// per minute).
    pub async fn refused(&self, scope: &str, why: &str) -> Result<(), FilterError> {
        self.log(scope, Direction::Input, "blocked", why).await
    }

    async fn log(
        &self,
        scope: &str,
        direction: Direction,
        action: &str,
        rule: &str,
    ) -> Result<(), FilterError> {
        store::record(
            &self.db,
            &store::Acted {
                id: format!("flt_{}", uuid::Uuid::now_v7().simple()),
                scope: scope.to_owned(),
                direction: direction.as_str().to_owned(),
                action: action.to_owned(),
                rule: rule.to_owned(),
                agent: self.agent.clone(),
                run_id: Some(self.run_id.clone()),
                created_at: daarion_store::now(),
            },
        )
        .await
    }
}

/// The metrics this crate records, with their `# HELP` text.
pub const METRICS: &[daarion_kernel::metrics::Help] = &[(
    "filter_actions_total",
    "Message filter decisions, by direction and action.",
)];
