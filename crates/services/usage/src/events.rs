//! What usage consumes: every `usage.<kind>` event, stored once by the
//! `usage-recorder` consumer; and the event the metering services publish
//! ([`event`]). Budget alerts (`ops.alert`) are published by the meter
//! when a reservation crosses 80 or 100 % (`meter.rs`).

use daarion_bus::{Envelope, runner::HandlerError};
use daarion_service::Context;
use daarion_store::Db;

use crate::{UsageRecord, store};

/// The event that carries a usage record (`usage.<kind>`), published by
/// `source` once the metered work is done.
pub fn event(source: &str, record: &UsageRecord) -> Envelope {
    let actor = record
        .agent
        .as_ref()
        .map(|a| format!("agent:{a}"))
        .or_else(|| record.user.as_ref().map(|u| format!("user:{u}")));
    let payload = serde_json::to_value(record).unwrap_or_default();
    let event = Envelope::new(source, record.kind.subject(), payload);
    match actor {
        Some(actor) => event.with_actor(actor),
        None => event,
    }
}

/// Stores one `usage.*` event; a payload that is not a record is refused
/// (dead-lettered after retries) rather than stored half.
async fn record(db: &Db, event: &Envelope) -> Result<(), HandlerError> {
    let record: UsageRecord =
        serde_json::from_value(event.payload.clone()).map_err(HandlerError::new)?;
    store::insert(db, &event.id, &event.time, Some(&event.request_id), &record)
        .await
        .map_err(HandlerError::new)?;
    metrics::counter!("usage_records_total", "kind" => record.kind.as_str()).increment(1);
    Ok(())
}

/// Runs the `usage-recorder` consumer (one per city, shared by replicas).
pub(crate) fn record_usage(ctx: &Context) {
    let db = ctx.db.clone();
    ctx.consume("usage-recorder", "usage.>", move |event: Envelope| {
        let db = db.clone();
        async move { record(&db, &event).await }
    });
}
