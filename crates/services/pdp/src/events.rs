//! What the PDP publishes (`pdp.policy.changed`, live) and consumes (the
//! `AUDIT` stream, into the audit log), and how every process follows
//! policy changes.

use std::{sync::Arc, time::Duration};

use daarion_access::{Compiled, Engine, events::POLICY_CHANGED};
use daarion_bus::{Bus, Envelope};
use daarion_kernel::shutdown::CancellationToken;
use daarion_service::Context;
use daarion_store::Db;
use futures::StreamExt as _;

use crate::{PdpError, SERVICE, store};

/// Tells every process that policy `version` is stored. Best effort: every
/// process also polls the store.
pub(crate) async fn announce_change(bus: &dyn Bus, version: u64, author: &str) {
    let event = Envelope::new(
        SERVICE,
        POLICY_CHANGED,
        serde_json::json!({ "version": version }),
    )
    .with_actor(author);
    if let Err(error) = bus.publish(&event).await {
        tracing::warn!(%error, "policy change not announced; replicas pick it up within 30 s");
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

/// Runs the `audit-logger` and `ops-logger` consumers, which store every
/// `AUDIT` event once (deduped by event id): decisions (`audit.*`) and
/// operational alerts (`ops.*`, e.g. budgets) share the stream and the log.
pub(crate) fn record_audit(ctx: &Context) {
    for (name, pattern) in [("audit-logger", "audit.>"), ("ops-logger", "ops.>")] {
        let db = ctx.db.clone();
        ctx.consume_batches(name, pattern, move |events: Vec<Envelope>| {
            let db = db.clone();
            async move {
                store::record_audit(&db, &events)
                    .await
                    .map_err(daarion_bus::runner::HandlerError::new)
            }
        });
    }
}
