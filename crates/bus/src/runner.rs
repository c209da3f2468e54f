//! The consumer loop every durable consumer runs, on any bus: skip events
//! already processed (dedupe by event id), run the handler in the event's
//! request context (a consumer span of the event's trace), acknowledge
//! after the handler returns, retry failures with backoff, and after
//! `max_deliver` failures move the event to the dead-letter store, from
//! which an admin can list and replay it.

use std::{future::Future, sync::Arc, time::Duration};

use daarion_kernel::{
    RequestContext,
    context::TraceParent,
    shutdown::{CancellationToken, pause},
    traces,
};
use daarion_store::{Db, sql::Row};
use serde::Serialize;
use tracing::Instrument as _;

use crate::{Bus, BusError, ConsumerSpec, Envelope};

/// A handler's failure: retried until `max_deliver`, then dead-lettered.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct HandlerError(pub String);

impl HandlerError {
    pub fn new(error: impl std::fmt::Display) -> Self {
        Self(error.to_string())
    }
}

/// How long a batch consumer waits after a batch that was not full.
const LINGER: Duration = Duration::from_millis(20);

/// Backoff before redelivering a failed event: 0.5 s doubling, at most 30 s.
pub fn backoff(attempt: u32) -> Duration {
    let factor = 2u64.saturating_pow(attempt.saturating_sub(1).min(10));
    Duration::from_millis(500u64.saturating_mul(factor)).min(Duration::from_secs(30))
}

/// Runs `handle` on every live event matching `pattern` until `shutdown`
/// fires or the subscription ends: for caches that other replicas'
/// announcements invalidate. Live delivery is best effort, so callers keep
/// an expiry of their own. Fails only when the subscription cannot be made.
pub async fn follow<H, F>(
    bus: &dyn Bus,
    pattern: &str,
    shutdown: CancellationToken,
    mut handle: H,
) -> Result<(), BusError>
where
    H: FnMut(Envelope) -> F,
    F: Future<Output = ()>,
{
    use futures::StreamExt as _;
    let mut events = bus.subscribe(pattern).await?;
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            event = events.next() => event,
        };
        match event {
            Some(event) => handle(event).await,
            None => return Ok(()),
        }
    }
}

/// Sets `bus_consumer_pending_events{consumer}` to each durable
/// consumer's backlog every `period` until `shutdown` fires: the queue lag
/// an alert watches. The first reading is taken at once.
pub async fn report_backlog(bus: Arc<dyn Bus>, period: Duration, shutdown: CancellationToken) {
    daarion_kernel::shutdown::every(period, shutdown, || async {
        match bus.backlog().await {
            Ok(backlog) => {
                for consumer in backlog {
                    metrics::gauge!("bus_consumer_pending_events", "consumer" => consumer.consumer)
                        .set(consumer.pending as f64);
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read the consumers' backlog"),
        }
    })
    .await;
}

/// Runs `handler` for every delivery of `spec` until `shutdown` fires. A
/// delivery in progress is finished and settled before it returns.
pub async fn run_consumer<H, F>(
    bus: Arc<dyn Bus>,
    db: Db,
    spec: ConsumerSpec,
    shutdown: CancellationToken,
    handler: H,
) where
    H: Fn(Envelope) -> F + Send + Sync,
    F: Future<Output = Result<(), HandlerError>> + Send,
{
    let dead_letters = DeadLetters::new(db.clone());
    'connect: while let Some(mut consumer) = open(bus.as_ref(), &spec, &shutdown).await {
        loop {
            let delivery = tokio::select! {
                () = shutdown.cancelled() => break 'connect,
                next = consumer.next() => next,
            };
            let delivery = match delivery {
                Ok(delivery) => delivery,
                Err(error) => {
                    reconnect_after(&spec, error).await;
                    continue 'connect;
                }
            };
            let envelope = delivery.envelope.clone();
            let outcome = settle(&db, &dead_letters, &spec, delivery, &handler).await;
            metrics::counter!("bus_deliveries_total", "consumer" => spec.name.clone(), "outcome" => outcome)
                .increment(1);
            tracing::debug!(consumer = %spec.name, event_id = %envelope.id, outcome, "delivery settled");
        }
    }
}

/// Like [`run_consumer`], for handlers that store events and can take
/// many at once: up to `max` deliveries at hand go to `handler` together
/// and are acknowledged together, so a busy stream costs a few statements
/// per batch rather than a few per event. The handler must be idempotent
/// by event id (an insert that ignores a known id): a batch is not
/// recorded in the dedupe table, and one that fails is handled again event
/// by event, as [`run_consumer`] would, so a bad event is retried and
/// dead-lettered alone. It runs in a context of its own, whose span links
/// the spans that published its events.
pub async fn run_batch_consumer<H, F>(
    bus: Arc<dyn Bus>,
    db: Db,
    spec: ConsumerSpec,
    max: usize,
    shutdown: CancellationToken,
    handler: H,
) where
    H: Fn(Vec<Envelope>) -> F + Send + Sync,
    F: Future<Output = Result<(), HandlerError>> + Send,
{
    let dead_letters = DeadLetters::new(db.clone());
    let max = max.max(1);
    let one = |event: Envelope| handler(vec![event]);
    'connect: while let Some(mut consumer) = open(bus.as_ref(), &spec, &shutdown).await {
        loop {
            let batch = tokio::select! {
                () = shutdown.cancelled() => break 'connect,
                next = consumer.next_batch(max) => next,
            };
            let batch = match batch {
                Ok(batch) => batch,
                Err(error) => {
                    reconnect_after(&spec, error).await;
                    continue 'connect;
                }
            };
            let events: Vec<Envelope> = batch
                .iter()
                .filter(|d| is_for(&d.envelope, &spec))
                .map(|d| d.envelope.clone())
                .collect();
            let full = batch.len() >= max;
            if events.is_empty() || handle_batch(&spec, events, &handler).await.is_ok() {
                let count = batch.len() as u64;
                let outcome = settled(consumer.ack_batch(batch).await, "acked");
                metrics::counter!("bus_deliveries_total", "consumer" => spec.name.clone(), "outcome" => outcome)
                    .increment(count);
            } else {
                for delivery in batch {
                    let outcome = settle(&db, &dead_letters, &spec, delivery, &one).await;
                    metrics::counter!("bus_deliveries_total", "consumer" => spec.name.clone(), "outcome" => outcome)
                        .increment(1);
                }
            }
            if !full {
                // Nothing more was at hand: let the next batch gather (the
                // handler writes storage, which can wait a moment), so a
                // busy stream costs a few batches a second, not one per event.
                pause(LINGER, &shutdown).await;
            }
        }
    }
}

async fn handle_batch<H, F>(
    spec: &ConsumerSpec,
    events: Vec<Envelope>,
    handler: &H,
) -> Result<(), HandlerError>
where
    H: Fn(Vec<Envelope>) -> F,
    F: Future<Output = Result<(), HandlerError>>,
{
    let mut ctx = RequestContext::generate();
    let parents: Vec<TraceParent> = events.iter().filter_map(Envelope::parent).collect();
    let mut trace = consumer_span(spec, &mut ctx, &parents);
    if trace.is_recording() {
        trace.set("messaging.batch.message_count", events.len() as i64);
    }
    let log = tracing::info_span!("events", request_id = %ctx.request_id, trace_id = %ctx.trace_id);
    let result = ctx.scope(handler(events)).instrument(log).await;
    if let Err(error) = &result {
        trace.fail(error.0.clone());
    }
    result
}

/// The span of `spec`'s handling of an event, or of a batch linked to
/// its events' publishers.
fn consumer_span(
    spec: &ConsumerSpec,
    ctx: &mut RequestContext,
    links: &[TraceParent],
) -> traces::Span {
    let mut trace = traces::Span::linked(traces::Kind::Consumer, ctx, links, || {
        format!("process {}", spec.filter)
    });
    if trace.is_recording() {
        trace.set("messaging.operation.type", "process");
        trace.set("messaging.consumer.group.name", spec.name.clone());
    }
    trace
}

/// Opens the consumer of `spec`, trying again each second, until it opens
/// or `shutdown` fires (`None`).
async fn open(
    bus: &dyn Bus,
    spec: &ConsumerSpec,
    shutdown: &CancellationToken,
) -> Option<Box<dyn crate::Consumer>> {
    while !shutdown.is_cancelled() {
        match bus.consumer(spec).await {
            Ok(consumer) => return Some(consumer),
            Err(error) => {
                tracing::error!(%error, consumer = %spec.name, "cannot open consumer; retrying");
                pause(Duration::from_secs(1), shutdown).await;
            }
        }
    }
    None
}

/// Logs a consumer's failure and pauses before it is opened again.
async fn reconnect_after(spec: &ConsumerSpec, error: BusError) {
    tracing::error!(%error, consumer = %spec.name, "consumer failed; reconnecting");
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Whether `event` is for the consumer of `spec`: not a replay meant for
/// another consumer of the same events.
fn is_for(event: &Envelope, spec: &ConsumerSpec) -> bool {
    event
        .replay_for
        .as_deref()
        .is_none_or(|target| target == spec.name)
}

async fn settle<H, F>(
    db: &Db,
    dead_letters: &DeadLetters,
    spec: &ConsumerSpec,
    delivery: crate::Delivery,
    handler: &H,
) -> &'static str
where
    H: Fn(Envelope) -> F,
    F: Future<Output = Result<(), HandlerError>>,
{
    let retry_delay = backoff(delivery.attempt);
    let envelope = delivery.envelope.clone();
    if !is_for(&envelope, spec) {
        return settled(delivery.ack().await, "skipped");
    }
    match already_processed(db, &spec.name, &envelope.id).await {
        Ok(true) => return settled(delivery.ack().await, "duplicate"),
        Ok(false) => {}
        Err(error) => {
            tracing::error!(%error, "dedupe lookup failed; retrying later");
            return settled(delivery.nack(retry_delay).await, "retry");
        }
    }
    let mut ctx = envelope.context();
    let mut trace = consumer_span(spec, &mut ctx, &[]);
    if trace.is_recording() {
        trace.set("messaging.destination.name", envelope.subject.clone());
        trace.set("messaging.message.id", envelope.id.clone());
        trace.set("daarion.delivery_attempt", i64::from(delivery.attempt));
        trace.set("daarion.request_id", envelope.request_id.clone());
    }
    let log = tracing::info_span!("event", request_id = %ctx.request_id, trace_id = %ctx.trace_id, event_id = %envelope.id);
    let work = ctx.scope(handler(envelope.clone())).instrument(log);
    let result = keeping(&delivery, spec.ack_wait, work).await;
    if let Err(error) = &result {
        trace.fail(error.0.clone());
    }
    drop(trace);
    match result {
        Ok(()) => {
            if let Err(error) = mark_processed(db, &spec.name, &envelope.id).await {
                tracing::warn!(%error, event_id = %envelope.id, "could not record processed event");
            }
            settled(delivery.ack().await, "acked")
        }
        Err(error) if delivery.attempt >= spec.max_deliver => {
            tracing::error!(consumer = %spec.name, event_id = %envelope.id, attempts = delivery.attempt,
                error = %error, "event dead-lettered");
            match dead_letters
                .put(&spec.name, &envelope, &error.0, delivery.attempt)
                .await
            {
                Ok(()) => settled(delivery.term().await, "dead_lettered"),
                Err(store_error) => {
                    tracing::error!(%store_error, "cannot write dead letter; will redeliver");
                    settled(delivery.nack(retry_delay).await, "retry")
                }
            }
        }
        Err(error) => {
            tracing::warn!(consumer = %spec.name, event_id = %envelope.id, attempt = delivery.attempt,
                error = %error, "handler failed; will redeliver");
            settled(delivery.nack(retry_delay).await, "retry")
        }
    }
}

/// Runs `work`, telling the bus every third of `ack_wait` that the
/// delivery is still being worked on: only a worker that died loses it.
async fn keeping<F: Future>(delivery: &crate::Delivery, ack_wait: Duration, work: F) -> F::Output {
    let mut work = std::pin::pin!(work);
    let period = (ack_wait / 3).max(Duration::from_millis(100));
    loop {
        tokio::select! {
            out = &mut work => return out,
            () = tokio::time::sleep(period) => {
                if let Err(error) = delivery.progress().await {
                    tracing::warn!(%error, event_id = %delivery.envelope.id, "could not extend a delivery");
                }
            }
        }
    }
}

fn settled(result: Result<(), BusError>, outcome: &'static str) -> &'static str {
    if let Err(error) = result {
        // The bus will redeliver; dedupe makes that harmless.
        tracing::warn!(%error, outcome, "could not settle delivery");
    }
    outcome
}

async fn already_processed(db: &Db, consumer: &str, event_id: &str) -> Result<bool, BusError> {
    let found: Option<String> = daarion_store::sql::query_scalar(
        "SELECT event_id FROM bus_processed WHERE consumer = $1 AND event_id = $2",
    )
    .bind(consumer)
    .bind(event_id)
    .fetch_optional(db.reader())
    .await?;
    Ok(found.is_some())
}

async fn mark_processed(db: &Db, consumer: &str, event_id: &str) -> Result<(), BusError> {
    daarion_store::sql::query(
        "INSERT INTO bus_processed (consumer, event_id, processed_at) VALUES ($1, $2, $3)
         ON CONFLICT (consumer, event_id) DO NOTHING",
    )
    .bind(consumer)
    .bind(event_id)
    .bind(daarion_store::now())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// An event that failed every delivery.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeadLetter {
    pub id: String,
    pub consumer: String,
    pub event_id: String,
    pub subject: String,
    pub error: String,
    pub attempts: u32,
    pub failed_at: String,
    #[schema(value_type = Object)]
    pub envelope: serde_json::Value,
}

/// The dead-letter store, in the SQL store whatever the bus.
#[derive(Clone)]
pub struct DeadLetters {
    db: Db,
}

impl DeadLetters {
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    async fn put(
        &self,
        consumer: &str,
        envelope: &Envelope,
        error: &str,
        attempts: u32,
    ) -> Result<(), BusError> {
        daarion_store::sql::query(
            "INSERT INTO bus_dead_letters (id, consumer, event_id, subject, envelope, error, attempts, failed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(format!("dlq_{}", uuid::Uuid::now_v7().simple()))
        .bind(consumer)
        .bind(envelope.id.as_str())
        .bind(envelope.subject.as_str())
        .bind(serde_json::to_string(envelope)?)
        .bind(error)
        .bind(i64::from(attempts))
        .bind(daarion_store::now())
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    /// Dead letters oldest first, `limit + 1` at most, after `after` (an id).
    pub async fn list(&self, limit: u32, after: Option<&str>) -> Result<Vec<DeadLetter>, BusError> {
        let rows = daarion_store::sql::query(
            "SELECT id, consumer, event_id, subject, envelope, error, attempts, failed_at
             FROM bus_dead_letters WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit) + 1)
        .fetch_all(self.db.pool())
        .await?;
        rows.iter().map(row_to_dead_letter).collect()
    }

    /// Publishes the event again, for its consumer only, with a fresh id,
    /// and removes it from the store.
    pub async fn replay(&self, bus: &dyn Bus, id: &str) -> Result<Option<Envelope>, BusError> {
        let row = daarion_store::sql::query(
            "SELECT id, consumer, event_id, subject, envelope, error, attempts, failed_at
             FROM bus_dead_letters WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(self.db.pool())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let letter = row_to_dead_letter(&row)?;
        let mut envelope: Envelope = serde_json::from_value(letter.envelope)?;
        envelope.id = format!("evt_{}", uuid::Uuid::now_v7().simple());
        envelope.replay_for = Some(letter.consumer);
        bus.publish(&envelope).await?;
        daarion_store::sql::query("DELETE FROM bus_dead_letters WHERE id = $1")
            .bind(id)
            .execute(self.db.pool())
            .await?;
        Ok(Some(envelope))
    }
}

fn row_to_dead_letter(row: &daarion_store::sql::AnyRow) -> Result<DeadLetter, BusError> {
    let envelope: String = row.try_get("envelope")?;
    Ok(DeadLetter {
        id: row.try_get("id")?,
        consumer: row.try_get("consumer")?,
        event_id: row.try_get("event_id")?,
        subject: row.try_get("subject")?,
        error: row.try_get("error")?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(0),
        failed_at: row.try_get("failed_at")?,
        envelope: serde_json::from_str(&envelope)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(500));
        assert_eq!(backoff(2), Duration::from_secs(1));
        assert_eq!(backoff(4), Duration::from_secs(4));
        assert_eq!(backoff(30), Duration::from_secs(30));
    }
}
