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

/// Stores a batch of `usage.*` events, a few per statement; a payload that is
/// not a record fails the batch, which is then retried event by event, so
/// that one is refused (dead-lettered after retries) rather than stored
/// half, and the others are stored.
async fn record(db: &Db, events: &[Envelope]) -> Result<(), HandlerError> {
    let records = events
        .iter()
        .map(|event| serde_json::from_value::<UsageRecord>(event.payload.clone()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(HandlerError::new)?;
    let stored: Vec<store::Stored> = events
        .iter()
        .zip(&records)
        .map(|(event, record)| store::Stored {
            event_id: &event.id,
            at: &event.time,
            request_id: Some(&event.request_id),
            record,
        })
        .collect();
    store::insert(db, &stored)
        .await
        .map_err(HandlerError::new)?;
    for record in &records {
        metrics::counter!("usage_records_total", "kind" => record.kind.as_str()).increment(1);
    }
    Ok(())
}

/// Runs the `usage-recorder` consumer (one per city, shared by replicas).
pub(crate) fn record_usage(ctx: &Context) {
    let db = ctx.db.clone();
    ctx.consume_batches("usage-recorder", "usage.>", move |events: Vec<Envelope>| {
        let db = db.clone();
        async move { record(&db, &events).await }
    });
}
