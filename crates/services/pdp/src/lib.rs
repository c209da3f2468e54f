//! PDP service (port 7012, `/api/pdp/`): decisions over HTTP (single and
//! batch) for callers outside the process, the versioned policy store, and
//! the audit log. Decisions inside DAARION are made in-process by each
//! service's enforcement layer (`daarion-access`); this service keeps every
//! process's engine on the newest policy set and records the `AUDIT` stream.
//!
//! Layout: `domain` (the error type, the rule that keeps admins in),
//! `store` (policy versions, audit rows), `api` (routes), `access` (rules),
//! `events` (change announcements, policy following, the audit consumers),
//! and here: the spec, the build and a policy change.

pub mod access;
pub mod api;
pub mod domain;
pub mod events;
pub mod store;

use std::{sync::Arc, time::Duration};

use daarion_access::{Compiled, Engine};
use daarion_bus::Bus;
use daarion_service::{BuildError, Context, Event, Mount, Section, Service, ServiceSettings};
use daarion_store::{Db, migration};
use serde::{Deserialize, Serialize};

pub use domain::PdpError;
pub use events::{follow_policies, refresh};

pub const SERVICE: &str = "pdp";

pub static SPEC: Service = Service {
    name: SERVICE,
    port: 7012,
    version: env!("CARGO_PKG_VERSION"),
    migrations: &[migration!(1, "001_create_pdp_tables")],
    rules: access::RULES,
    websocket: false,
    streams: &[],
    // Every process also polls the store, so a lost announcement delays a
    // policy change by at most 30 s.
    events: &[Event::live(daarion_access::events::POLICY_CHANGED)],
    settings: Some(Section::of::<Settings>()),
    example: daarion_service::no_example,
    build: |ctx| Box::pin(async move { build(ctx) }),
};

/// `[pdp]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Audit rows (decisions, refused credentials, alerts) older than this
    /// are deleted, hourly.
    pub audit_retention_days: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            audit_retention_days: 90,
        }
    }
}

impl ServiceSettings for Settings {
    fn validate(&self) -> Result<(), String> {
        if !(1..=3650).contains(&self.audit_retention_days) {
            return Err("pdp.audit_retention_days must be between 1 and 3650".into());
        }
        Ok(())
    }
}

/// Replaces the policy set: validated against the schema (an invalid set
/// changes nothing), stored as the next version, installed here and
/// announced to every other process. Returns the new version.
pub async fn change_policies(
    engine: &Engine,
    db: &Db,
    bus: &dyn Bus,
    files: Vec<daarion_access::PolicyFile>,
    author: &str,
) -> Result<u64, PdpError> {
    if files.is_empty() || files.len() > 64 {
        return Err(PdpError::Invalid(
            "files must hold 1 to 64 policy files".into(),
        ));
    }
    let after = engine.current().version;
    let compiled = Compiled::new(files.clone(), after + 1)?;
    domain::keeps_admins_in(engine, &compiled)?;
    let version = store::save(db, after, &files, author).await?;
    engine.install(compiled);
    events::announce_change(bus, version, author).await;
    Ok(version)
}

#[derive(Clone)]
pub struct PdpState {
    db: Db,
    bus: Arc<dyn Bus>,
    access: Arc<daarion_access::Enforcer>,
}

/// Builds the routes and starts the `audit-logger` and `ops-logger`
/// consumers, which store every `AUDIT` event once (deduped by event id).
fn build(ctx: Context) -> Result<Mount, BuildError> {
    let settings: Settings = ctx.settings()?;
    let access = ctx.enforcer(daarion_access::enforce::NoResources);
    events::record_audit(&ctx);
    let retention = Duration::from_secs(u64::from(settings.audit_retention_days) * 24 * 3600);
    ctx.tasks
        .spawn(prune_audit(ctx.db.clone(), retention, ctx.shutdown.clone()));
    let state = PdpState {
        db: ctx.db,
        bus: ctx.bus,
        access: access.clone(),
    };
    Ok(Mount::new(access, api::router().with_state(state)))
}

/// Deletes audit rows past `retention`, hourly, until shutdown. Replicas
/// all run it; a delete of what another already deleted is harmless.
async fn prune_audit(
    db: Db,
    retention: Duration,
    shutdown: daarion_kernel::shutdown::CancellationToken,
) {
    daarion_kernel::shutdown::every(Duration::from_secs(3600), shutdown, || async {
        let before = chrono::Utc::now()
            - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(90));
        match store::prune_audit(&db, &daarion_store::format_time(before)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "audit rows past retention deleted"),
            Err(error) => {
                tracing::warn!(%error, "audit retention not applied; retrying in an hour")
            }
        }
    })
    .await;
}
