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

use std::sync::Arc;

use daarion_access::{Compiled, Engine};
use daarion_bus::Bus;
use daarion_service::{Context, Event, Mount, Service};
use daarion_store::{Db, migration};

pub use domain::PdpError;
pub use events::{POLICY_CHANGED, follow_policies, refresh};

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
    events: &[Event::live(events::POLICY_CHANGED)],
    settings: None,
    example: daarion_service::no_example,
    build: |ctx| Box::pin(async move { Ok(build(ctx)) }),
};

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
fn build(ctx: Context) -> Mount {
    let access = ctx.enforcer(daarion_access::enforce::NoResources);
    events::record_audit(&ctx);
    let state = PdpState {
        db: ctx.db,
        bus: ctx.bus,
        access: access.clone(),
    };
    Mount::new(access, api::router().with_state(state))
}
