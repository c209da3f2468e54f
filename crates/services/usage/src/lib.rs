//! Usage (port 7013, `/api/usage/`): every metered event (LLM call,
//! embedding, tool call, agent run, message) arrives on the bus as
//! `usage.<kind>` and is stored once per event id by the `usage-recorder`
//! consumer; summaries group and bucket them; [`Meter`] enforces plans,
//! quotas and budgets for the services that spend (the LLM proxy today).
//!
//! Layout: `record` (what a record says, prices), `meter` (limits and the
//! budget ledger), `store` (queries), `api` (routes), `events` (the
//! record event and its consumer), `access` (rules; a subject's usage as
//! the policies see it).

pub mod access;
pub mod api;
pub mod events;
mod lease;
pub mod meter;
pub mod record;
pub mod store;

use daarion_access::{Kind, Resource, Subject};
use daarion_bus::subject::StreamDef;
use daarion_kernel::shutdown::CancellationToken;
use daarion_service::{BuildError, Context, Event, Mount, Section, Service};
use daarion_store::{Db, migration};

pub use events::event;
pub use meter::{
    Admission, Exceeded, ExtraLimit, LimitKind, Meter, MeterError, RunLimits, Settings, Subjects,
};
pub use record::{Outcome, Price, UsageKind, UsageRecord};

pub const SERVICE: &str = "usage";

pub static SPEC: Service = Service {
    name: SERVICE,
    port: 7013,
    version: env!("CARGO_PKG_VERSION"),
    migrations: &[
        migration!(1, "001_create_usage_tables"),
        migration!(2, "002_create_usage_reservations"),
    ],
    rules: access::RULES,
    websocket: false,
    // Records are published by the services that meter (`event`).
    streams: &[StreamDef {
        name: "USAGE",
        subjects: &["usage.>"],
    }],
    events: &[Event::durable(meter::ALERT_SUBJECT)],
    settings: Some(Section::of::<Settings>()),
    example: |kind| {
        (kind == Kind::Usage)
            .then(|| Resource::about(Kind::Usage, &Subject::User("someone-else".into())))
    },
    build: |ctx| Box::pin(async move { build(ctx) }),
};

#[derive(Clone)]
pub struct UsageState {
    db: Db,
    meter: Meter,
}

/// How often each replica gives back expired budget reservations.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

async fn sweep_reservations(meter: Meter, shutdown: CancellationToken) {
    daarion_kernel::shutdown::every(SWEEP_EVERY, shutdown, || async {
        if let Err(error) = meter.expire_reservations().await {
            tracing::warn!(%error, "expired budget reservations not swept");
        }
    })
    .await;
}

/// Builds the routes and starts the `usage-recorder` consumer and the
/// sweeper of expired budget reservations.
fn build(ctx: Context) -> Result<Mount, BuildError> {
    let meter: Meter = ctx.component()?;
    let access = ctx.enforcer(access::UsageResources {
        directory: ctx.access.authn.clone(),
    });
    events::record_usage(&ctx);
    ctx.tasks
        .spawn(sweep_reservations(meter.clone(), ctx.shutdown.clone()));
    let state = UsageState { db: ctx.db, meter };
    Ok(Mount::new(access, api::router().with_state(state)))
}

/// The metrics this crate records, with their `# HELP` text.
pub const METRICS: &[daarion_kernel::metrics::Help] = &[
    (
        "usage_budget_alerts_total",
        "Budgets that passed an alert threshold, by threshold.",
    ),
    ("usage_records_total", "Usage records stored, by kind."),
    (
        "usage_reservations_expired_total",
        "Budget reservations released after their holder vanished.",
    ),
];
