//! Retention of the bus's tables in the SQL store. Delivered events of the
//! embedded bus and the processed-id records of every consumer are kept for
//! the retention period (default 7 days, the JetStream streams' max age), so
//! a redelivery within it is still recognised as a duplicate.

use std::time::Duration;

use daarion_kernel::shutdown::CancellationToken;
use daarion_store::Db;

use crate::BusError;

/// What one pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub events: u64,
    pub processed: u64,
}

/// Removes events older than `retention` that no consumer still has to
/// receive, and processed-id records older than `retention`.
pub async fn prune(db: &Db, retention: Duration) -> Result<Pruned, BusError> {
    let cutoff = daarion_store::ago(retention);
    let events = daarion_store::sql::query(
        "DELETE FROM bus_events WHERE created_at < $1
         AND NOT EXISTS (SELECT 1 FROM bus_deliveries d WHERE d.event_id = bus_events.id)",
    )
    .bind(cutoff.as_str())
    .execute(db.pool())
    .await?
    .rows_affected();
    let processed = daarion_store::sql::query("DELETE FROM bus_processed WHERE processed_at < $1")
        .bind(cutoff.as_str())
        .execute(db.pool())
        .await?
        .rows_affected();
    Ok(Pruned { events, processed })
}

/// Prunes every `period` until shutdown.
pub async fn run_janitor(
    db: Db,
    retention: Duration,
    period: Duration,
    shutdown: CancellationToken,
) {
    daarion_kernel::shutdown::every(period, shutdown, || async {
        match prune(&db, retention).await {
            Ok(pruned) if pruned != Pruned::default() => {
                tracing::info!(
                    events = pruned.events,
                    processed = pruned.processed,
                    "bus tables pruned"
                );
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "bus pruning failed"),
        }
    })
    .await;
}
