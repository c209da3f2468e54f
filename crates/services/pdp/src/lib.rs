//! PDP service (port 7012, `/api/pdp/`): decisions over HTTP (single and
//! batch) for callers outside the process, the versioned policy store, and
//! the audit log. Decisions inside DAARION are made in-process by each
//! service's enforcement layer (`daarion-access`); this service keeps every
//! process's engine on the newest policy set and records the `AUDIT` stream.
//!
//! Layout: `store` (policy versions, audit rows), `api` (routes), `access`
//! (rules), and here: policy following and the audit consumer.

pub mod access;
pub mod api;
pub mod store;

use std::{sync::Arc, time::Duration};

use daarion_access::{Compiled, Engine};
use daarion_bus::{Bus, Envelope};
use daarion_kernel::shutdown::CancellationToken;
use daarion_service::{Context, Event, Mount, Service};
use daarion_store::{Db, migration};
use futures::StreamExt as _;

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
    events: &[Event::live(POLICY_CHANGED)],
    settings: None,
    example: daarion_service::no_example,
    build: |ctx| Box::pin(async move { Ok(build(ctx)) }),
};

/// Live-only: a new policy version was stored; every process reloads.
pub const POLICY_CHANGED: &str = "pdp.policy.changed";

#[derive(Debug, thiserror::Error)]
pub enum PdpError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Policy(#[from] daarion_access::PolicyError),
    #[error("another policy change landed first; retry")]
    Conflict,
    #[error(transparent)]
    Store(#[from] daarion_store::StoreError),
    #[error("stored policy set is unreadable: {0}")]
    Corrupt(String),
}

impl From<daarion_store::sql::Error> for PdpError {
    fn from(error: daarion_store::sql::Error) -> Self {
        Self::Store(error.into())
    }
}

/// Installs the newest stored policy set, if any is newer than the engine's.
pub async fn refresh(engine: &Engine, db: &Db) -> Result<bool, PdpError> {
    match store::current(db).await? {
        Some((version, files)) if version > engine.current().version => {
            Ok(engine.install(Compiled::new(files, version)?))
        }
        _ => Ok(false),
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
    keeps_admins_in(engine, &compiled)?;
    let version = store::save(db, after, &files, author).await?;
    engine.install(compiled);
    let event = Envelope::new(
        SERVICE,
        POLICY_CHANGED,
        serde_json::json!({ "version": version }),
    )
    .with_actor(author);
    if let Err(error) = bus.publish(&event).await {
        tracing::warn!(%error, "policy change not announced; replicas pick it up within 30 s");
    }
    Ok(version)
}

/// Refuses a policy set under which a city admin could no longer change
/// the policies: nobody could undo it without the database.
fn keeps_admins_in(engine: &Engine, candidate: &Compiled) -> Result<(), PdpError> {
    let admin = daarion_access::Principal {
        kind: daarion_access::PrincipalKind::User,
        id: "policy-check".into(),
        handle: "policy-check".into(),
        roles: daarion_access::vocab::roles::CityRole::Admin.groups(),
        owner: None,
        scopes: None,
        credential: daarion_access::Credential::Session { id: String::new() },
    };
    let policies = daarion_access::Resource::new(daarion_access::Kind::Policy, "city");
    let decision = engine.decide_under(
        candidate,
        &admin,
        daarion_access::Action::Admin,
        &policies,
        daarion_access::Facts::default(),
    );
    if decision.allowed {
        Ok(())
    } else {
        Err(PdpError::Invalid(
            "this policy set would lock city admins out of changing policies; keep a policy that permits them `admin` on the policy set".into(),
        ))
    }
}

/// Keeps `engine` on the newest policy set: at once when a change is
/// announced on the bus, and every 30 s in case an announcement was lost.
pub async fn follow_policies(
    engine: Arc<Engine>,
    db: Db,
    bus: Arc<dyn Bus>,
    shutdown: CancellationToken,
) {
    let mut changes = match bus.subscribe(POLICY_CHANGED).await {
        Ok(s) => Some(s),
        Err(error) => {
            tracing::error!(%error, "cannot follow policy changes; polling every 30 s");
            None
        }
    };
    // The first tick is immediate: a change announced before the
    // subscription above existed is picked up at once.
    let mut poll = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = poll.tick() => {}
            Some(_) = async {
                match changes.as_mut() {
                    Some(s) => s.next().await,
                    None => std::future::pending().await,
                }
            } => {}
        }
        match refresh(&engine, &db).await {
            Ok(true) => tracing::info!(version = engine.current().version, "policy set reloaded"),
            Ok(false) => {}
            Err(error) => tracing::error!(%error, "policy reload failed; keeping the current set"),
        }
    }
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
    // Decisions (`audit.*`) and operational alerts (`ops.*`, e.g. budgets)
    // share the AUDIT stream and the audit log.
    for (name, pattern) in [("audit-logger", "audit.>"), ("ops-logger", "ops.>")] {
        let db = ctx.db.clone();
        ctx.consume(name, pattern, move |event: Envelope| {
            let db = db.clone();
            async move {
                store::record_audit(&db, &event)
                    .await
                    .map_err(daarion_bus::runner::HandlerError::new)
            }
        });
    }
    let state = PdpState {
        db: ctx.db,
        bus: ctx.bus,
        access: access.clone(),
    };
    Mount::new(access, api::router().with_state(state))
}
