//! The in-process bus. Durable events and their per-consumer deliveries are
//! rows in the SQL store, written in the publisher's transaction, so an event
//! acknowledged by `publish` survives a crash and is redelivered on restart.
//! Live fan-out is a broadcast channel inside the process.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use async_trait::async_trait;
use daarion_store::{
    Db,
    sql::{Any, Row, Transaction},
};
use futures::StreamExt;
use tokio::sync::{Notify, broadcast};

use crate::{
    Acker, Backlog, Bus, BusError, Consumer, ConsumerSpec, Delivery, Envelope, Subscription,
    subject,
};

/// Live subscribers that fall this far behind skip events.
const LIVE_BUFFER: usize = 16_384;
/// Most deliveries a consumer claims at once when asked for one.
const CLAIM_BATCH: i64 = 32;
/// Longest sleep of an idle consumer between checks for due redeliveries.
const MAX_IDLE_WAIT: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct EmbeddedBus {
    db: Db,
    live: broadcast::Sender<Arc<Envelope>>,
    wakes: Wakes,
    streams: subject::Streams,
}

/// The waiting consumers of this process, by name: a stored event wakes
/// one worker of each consumer it is for, and no other (each wake-up costs
/// a waiting worker a claim; the workers of one consumer compete for the
/// same deliveries, so waking them all for one event spends a claim each
/// to find one).
#[derive(Clone, Default)]
struct Wakes(Arc<std::sync::RwLock<Vec<Waker>>>);

/// A consumer's name and filter, and the wake-up its workers share (gone
/// when they all are).
type Waker = (String, String, std::sync::Weak<Notify>);

/// Most workers of one consumer a batch of events wakes; busy ones claim
/// again before they wait.
const MAX_WAKES: usize = 64;

impl Wakes {
    fn register(&self, name: &str, filter: &str) -> Arc<Notify> {
        let Ok(mut wakes) = self.0.write() else {
            return Arc::new(Notify::new());
        };
        wakes.retain(|(_, _, waker)| waker.strong_count() > 0);
        if let Some(shared) = wakes
            .iter()
            .find(|(n, _, _)| n == name)
            .and_then(|(_, _, waker)| waker.upgrade())
        {
            return shared;
        }
        let notify = Arc::new(Notify::new());
        wakes.push((name.to_owned(), filter.to_owned(), Arc::downgrade(&notify)));
        notify
    }

    fn notify<'e>(&self, events: impl Iterator<Item = &'e Envelope> + Clone) {
        let Ok(wakes) = self.0.read() else {
            return;
        };
        for (_, filter, waker) in wakes.iter() {
            let due = events
                .clone()
                .filter(|e| subject::matches(filter, &e.subject))
                .take(MAX_WAKES)
                .count();
            if let (1.., Some(notify)) = (due, waker.upgrade()) {
                for _ in 0..due {
                    notify.notify_one();
                }
            }
        }
    }
}

impl EmbeddedBus {
    /// A bus persisted in `db`, whose bus migrations must have been
    /// applied; events on `streams` are durable.
    pub fn new(db: Db, streams: subject::Streams) -> Self {
        let (live, _) = broadcast::channel(LIVE_BUFFER);
        Self {
            db,
            live,
            wakes: Wakes::default(),
            streams,
        }
    }
}

fn offset(delay: Duration) -> String {
    let delay = chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::zero());
    daarion_store::format_time(chrono::Utc::now() + delay)
}

impl EmbeddedBus {
    /// Stores events and their deliveries to each matching consumer, in one
    /// transaction; returns the ids seen before (not stored again).
    async fn store<'e>(
        &self,
        events: &[(&'e Envelope, &'static str)],
    ) -> Result<Vec<&'e str>, BusError> {
        let mut tx = self.db.begin().await?;
        let repeated = Self::store_in(&mut tx, self.db.backend(), events).await?;
        tx.commit().await?;
        Ok(repeated)
    }

    /// [`EmbeddedBus::store`] within the caller's transaction: three
    /// statements whatever the batch (the events, the consumers, the
    /// deliveries), each batch of rows bound as one JSON array.
    async fn store_in<'e>(
        tx: &mut Transaction<'_, Any>,
        backend: daarion_store::Backend,
        events: &[(&'e Envelope, &'static str)],
    ) -> Result<Vec<&'e str>, BusError> {
        use daarion_store::sql::{self, AssertSqlSafe};
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let now = daarion_store::now();
        let envelopes = events
            .iter()
            .map(|(event, _)| serde_json::to_string(event))
            .collect::<Result<Vec<_>, _>>()?;
        let rows: Vec<[&str; 4]> = events
            .iter()
            .zip(&envelopes)
            .map(|((event, stream), envelope)| [&event.id, *stream, &event.subject, envelope])
            .collect();
        let text = format!(
            "INSERT INTO bus_events (id, stream, subject, envelope, created_at)
             SELECT c0, c1, c2, c3, $2 FROM ({}) AS j WHERE true
             ON CONFLICT (id) DO NOTHING RETURNING id",
            sql::json_rows(backend, 1, 4)
        );
        let mut inserted = std::collections::HashSet::with_capacity(events.len());
        for row in sql::query(AssertSqlSafe(text))
            .bind(serde_json::to_string(&rows)?)
            .bind(now.as_str())
            .fetch_all(&mut **tx)
            .await?
        {
            inserted.insert(row.try_get::<String, _>("id")?);
        }
        let mut consumers: Vec<(String, String, String)> = Vec::new();
        for row in sql::query("SELECT name, stream, filter FROM bus_consumers")
            .fetch_all(&mut **tx)
            .await?
        {
            consumers.push((
                row.try_get("name")?,
                row.try_get("stream")?,
                row.try_get("filter")?,
            ));
        }
        let mut repeated = Vec::new();
        let mut deliveries: Vec<[&str; 2]> = Vec::new();
        for (event, stream) in events {
            if !inserted.remove(event.id.as_str()) {
                // Same id published twice: deliver once, like JetStream's
                // dedupe (a repeat within the batch included).
                repeated.push(event.id.as_str());
                continue;
            }
            for (name, _, filter) in consumers.iter().filter(|(_, s, _)| s == stream) {
                if subject::matches(filter, &event.subject) {
                    deliveries.push([name, &event.id]);
                }
            }
        }
        if !deliveries.is_empty() {
            let text = format!(
                "INSERT INTO bus_deliveries (consumer, event_id, attempts, visible_at)
                 SELECT c0, c1, 0, $2 FROM ({}) AS j",
                sql::json_rows(backend, 1, 2)
            );
            sql::query(AssertSqlSafe(text))
                .bind(serde_json::to_string(&deliveries)?)
                .bind(now.as_str())
                .execute(&mut **tx)
                .await?;
        }
        Ok(repeated)
    }

    /// Deliveries to a new consumer of the events its stream still holds.
    /// Runs after the consumer is stored, so what is published from then
    /// on is delivered by `store_in`; an event both see is delivered once
    /// (the delivery's key).
    async fn deliver_held(&self, spec: &ConsumerSpec, stream: &str) -> Result<(), BusError> {
        use daarion_store::sql::{self, AssertSqlSafe};
        let mut held = Vec::new();
        for row in sql::query("SELECT id, subject FROM bus_events WHERE stream = $1")
            .bind(stream)
            .fetch_all(self.db.pool())
            .await?
        {
            let subject: String = row.try_get("subject")?;
            if subject::matches(&spec.filter, &subject) {
                held.push([spec.name.clone(), row.try_get::<String, _>("id")?]);
            }
        }
        if held.is_empty() {
            return Ok(());
        }
        let text = format!(
            "INSERT INTO bus_deliveries (consumer, event_id, attempts, visible_at)
             SELECT c0, c1, 0, $2 FROM ({}) AS j WHERE true
             ON CONFLICT (consumer, event_id) DO NOTHING",
            sql::json_rows(self.db.backend(), 1, 2)
        );
        sql::query(AssertSqlSafe(text))
            .bind(serde_json::to_string(&held)?)
            .bind(daarion_store::now())
            .execute(self.db.pool())
            .await?;
        Ok(())
    }

    /// The events of `events` a stream holds, with its name.
    fn durable<'e>(
        &self,
        events: &'e [Envelope],
    ) -> Result<Vec<(&'e Envelope, &'static str)>, BusError> {
        for event in events {
            subject::validate(&event.subject)?;
        }
        Ok(events
            .iter()
            .filter_map(|e| self.streams.for_subject(&e.subject).map(|s| (e, s.name)))
            .collect())
    }

    fn send_live<'e>(&self, events: impl Iterator<Item = &'e Envelope>) {
        for event in events {
            // No live subscriber is not an error.
            let _ = self.live.send(Arc::new(event.clone()));
        }
    }
}

#[async_trait]
impl Bus for EmbeddedBus {
    async fn publish(&self, event: &Envelope) -> Result<(), BusError> {
        self.publish_batch(std::slice::from_ref(event)).await
    }

    async fn publish_batch(&self, events: &[Envelope]) -> Result<(), BusError> {
        let durable = self.durable(events)?;
        let repeated = if durable.is_empty() {
            Vec::new()
        } else {
            let repeated = self.store(&durable).await?;
            self.wakes.notify(durable.iter().map(|(event, _)| *event));
            repeated
        };
        self.send_live(events.iter().filter(|e| !repeated.contains(&e.id.as_str())));
        Ok(())
    }

    /// The events live in the same database as the data: stored with it,
    /// in its transaction, no outbox row needed.
    async fn stage_in(
        &self,
        tx: &mut Transaction<'_, Any>,
        events: &[Envelope],
    ) -> Result<bool, BusError> {
        Self::store_in(tx, self.db.backend(), &self.durable(events)?).await?;
        Ok(true)
    }

    async fn announce(&self, events: &[Envelope]) -> Result<(), BusError> {
        self.wakes.notify(events.iter());
        self.send_live(events.iter());
        Ok(())
    }

    async fn subscribe(&self, pattern: &str) -> Result<Subscription, BusError> {
        subject::validate_pattern(pattern)?;
        let pattern = pattern.to_owned();
        let receiver = self.live.subscribe();
        let stream = futures::stream::unfold(receiver, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(event) => return Some((event, rx)),
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        tracing::warn!(skipped, "live subscriber fell behind; events skipped");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .filter_map(move |event| {
            let keep = subject::matches(&pattern, &event.subject);
            async move { keep.then(|| (*event).clone()) }
        });
        Ok(stream.boxed())
    }

    async fn consumer(&self, spec: &ConsumerSpec) -> Result<Box<dyn Consumer>, BusError> {
        let stream = self.streams.for_filter(&spec.filter)?;
        let existed = daarion_store::sql::query("SELECT 1 FROM bus_consumers WHERE name = $1")
            .bind(spec.name.as_str())
            .fetch_optional(self.db.pool())
            .await?
            .is_some();
        daarion_store::sql::query(
            "INSERT INTO bus_consumers (name, stream, filter, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO UPDATE SET stream = excluded.stream, filter = excluded.filter",
        )
        .bind(spec.name.as_str())
        .bind(stream.name)
        .bind(spec.filter.as_str())
        .bind(daarion_store::now())
        .execute(self.db.pool())
        .await?;
        if spec.from_start && !existed {
            self.deliver_held(spec, stream.name).await?;
        }
        Ok(Box::new(EmbeddedConsumer {
            wake: self.wakes.register(&spec.name, &spec.filter),
            bus: self.clone(),
            spec: spec.clone(),
            claimed: VecDeque::new(),
        }))
    }

    /// Every consumer, those with nothing pending included (their gauge
    /// falls back to zero).
    async fn backlog(&self) -> Result<Vec<Backlog>, BusError> {
        let rows = daarion_store::sql::query(
            "SELECT c.name, COUNT(d.event_id) AS pending FROM bus_consumers c
             LEFT JOIN bus_deliveries d ON d.consumer = c.name
             GROUP BY c.name ORDER BY c.name",
        )
        .fetch_all(self.db.reader())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Backlog {
                    consumer: row.try_get("name")?,
                    pending: u64::try_from(row.try_get::<i64, _>("pending")?).unwrap_or(0),
                })
            })
            .collect()
    }

    fn kind(&self) -> &'static str {
        "embedded"
    }

    async fn ping(&self) -> Result<(), BusError> {
        Ok(self.db.ping().await?)
    }
}

struct EmbeddedConsumer {
    bus: EmbeddedBus,
    /// Notified when an event for this consumer is stored or put back.
    wake: Arc<Notify>,
    spec: ConsumerSpec,
    /// Claimed and not yet handed out, oldest first.
    claimed: VecDeque<Delivery>,
}

impl EmbeddedConsumer {
    /// The oldest due delivery, hidden for `ack_wait`. Deliveries are
    /// claimed up to `limit` at a time: two statements for a batch instead
    /// of two per event.
    async fn claim(&mut self, limit: i64) -> Result<Option<Delivery>, BusError> {
        if let Some(delivery) = self.claimed.pop_front() {
            return Ok(Some(delivery));
        }
        let db = &self.bus.db;
        let now = daarion_store::now();
        // One statement, no transaction: the claim stands on its own, and
        // the events it names never change. The outer `visible_at <= now`
        // is re-checked on rows another worker claimed meanwhile
        // (PostgreSQL re-evaluates it after waiting for their lock), so a
        // delivery goes to one worker only.
        let rows = daarion_store::sql::query(
            "UPDATE bus_deliveries SET attempts = attempts + 1, visible_at = $1
             WHERE consumer = $2 AND visible_at <= $3 AND event_id IN (
                 SELECT event_id FROM bus_deliveries
                 WHERE consumer = $2 AND visible_at <= $3
                 ORDER BY event_id LIMIT $4)
             RETURNING event_id, attempts",
        )
        .bind(offset(self.spec.ack_wait))
        .bind(self.spec.name.as_str())
        .bind(now.as_str())
        .bind(limit)
        .fetch_all(db.pool())
        .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut attempts = std::collections::HashMap::with_capacity(rows.len());
        for row in &rows {
            let event_id: String = row.try_get("event_id")?;
            let n: i64 = row.try_get("attempts")?;
            attempts.insert(event_id, n);
        }
        let text = format!(
            "SELECT id, envelope FROM bus_events WHERE id IN ({}) ORDER BY id",
            daarion_store::sql::json_texts(db.backend(), 1)
        );
        let ids: Vec<&String> = attempts.keys().collect();
        let events = daarion_store::sql::query(daarion_store::sql::AssertSqlSafe(text))
            .bind(serde_json::to_string(&ids)?)
            .fetch_all(db.reader())
            .await?;
        for row in events {
            let event_id: String = row.try_get("id")?;
            let envelope: String = row.try_get("envelope")?;
            let envelope: Envelope = serde_json::from_str(&envelope)?;
            let attempt = attempts.get(&event_id).copied().unwrap_or(1);
            self.claimed.push_back(Delivery {
                envelope,
                attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                acker: Box::new(EmbeddedAcker {
                    db: db.clone(),
                    wake: self.wake.clone(),
                    consumer: self.spec.name.clone(),
                    event_id,
                    ack_wait: self.spec.ack_wait,
                }),
            });
        }
        Ok(self.claimed.pop_front())
    }

    async fn next_due(&self) -> Result<Option<String>, BusError> {
        let next: Option<String> = daarion_store::sql::query_scalar(
            "SELECT MIN(visible_at) FROM bus_deliveries WHERE consumer = $1",
        )
        .bind(self.spec.name.as_str())
        .fetch_one(self.bus.db.reader())
        .await?;
        Ok(next)
    }

    /// The oldest due delivery, claiming up to `limit` at once, waited for.
    async fn wait_claim(&mut self, limit: i64) -> Result<Delivery, BusError> {
        loop {
            // Register for wake-ups before looking, so a publish between the
            // look and the wait is not missed.
            let wake = self.wake.clone();
            let woken = wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            if let Some(delivery) = self.claim(limit).await? {
                return Ok(delivery);
            }
            let wait = match self
                .next_due()
                .await?
                .as_deref()
                .and_then(daarion_store::parse_time)
            {
                Some(due) => (due - chrono::Utc::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO)
                    .min(MAX_IDLE_WAIT),
                None => MAX_IDLE_WAIT,
            };
            tokio::select! {
                () = woken => {},
                () = tokio::time::sleep(wait) => {},
            }
        }
    }
}

#[async_trait]
impl Consumer for EmbeddedConsumer {
    /// Claimed together, up to `max` (what an earlier claim brought
    /// first): a batch smaller than `max` means nothing more was due.
    async fn next_batch(&mut self, max: usize) -> Result<Vec<Delivery>, BusError> {
        let mut batch = vec![
            self.wait_claim(i64::try_from(max).unwrap_or(CLAIM_BATCH))
                .await?,
        ];
        while batch.len() < max
            && let Some(delivery) = self.claimed.pop_front()
        {
            batch.push(delivery);
        }
        Ok(batch)
    }

    /// One `DELETE` for many deliveries.
    async fn ack_batch(&mut self, deliveries: Vec<Delivery>) -> Result<(), BusError> {
        let db = &self.bus.db;
        let text = format!(
            "DELETE FROM bus_deliveries WHERE consumer = $1 AND event_id IN ({})",
            daarion_store::sql::json_texts(db.backend(), 2)
        );
        let ids: Vec<&str> = deliveries.iter().map(|d| d.envelope.id.as_str()).collect();
        daarion_store::sql::query(daarion_store::sql::AssertSqlSafe(text))
            .bind(self.spec.name.as_str())
            .bind(serde_json::to_string(&ids)?)
            .execute(db.pool())
            .await?;
        Ok(())
    }

    async fn next(&mut self) -> Result<Delivery, BusError> {
        self.wait_claim(i64::from(self.spec.prefetch.max(1))).await
    }
}

struct EmbeddedAcker {
    db: Db,
    wake: Arc<Notify>,
    consumer: String,
    event_id: String,
    ack_wait: Duration,
}

impl EmbeddedAcker {
    /// Delivers again after `delay`, not before.
    async fn hide_for(&self, delay: Duration) -> Result<(), BusError> {
        daarion_store::sql::query(
            "UPDATE bus_deliveries SET visible_at = $1 WHERE consumer = $2 AND event_id = $3",
        )
        .bind(offset(delay))
        .bind(self.consumer.as_str())
        .bind(self.event_id.as_str())
        .execute(self.db.pool())
        .await?;
        Ok(())
    }

    async fn remove(&self) -> Result<(), BusError> {
        daarion_store::sql::query(
            "DELETE FROM bus_deliveries WHERE consumer = $1 AND event_id = $2",
        )
        .bind(self.consumer.as_str())
        .bind(self.event_id.as_str())
        .execute(self.db.pool())
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Acker for EmbeddedAcker {
    async fn ack(&self) -> Result<(), BusError> {
        self.remove().await
    }

    async fn nack(&self, delay: Duration) -> Result<(), BusError> {
        self.hide_for(delay).await?;
        // One worker looks again and sleeps until it is due.
        self.wake.notify_one();
        Ok(())
    }

    async fn term(&self) -> Result<(), BusError> {
        self.remove().await
    }

    async fn progress(&self) -> Result<(), BusError> {
        self.hide_for(self.ack_wait).await
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    /// A stored event wakes the consumers it is for, and no other: every
    /// consumer woken for nothing would spend a claim on the database.
    #[test]
    fn an_event_wakes_only_the_consumers_it_is_for() {
        let wakes = Wakes::default();
        let feed = wakes.register("feed", "message.*.*");
        let usage = wakes.register("usage", "usage.>");
        let gone = wakes.register("gone", "message.>");
        drop(gone);
        let (on_feed, on_usage) = (feed.notified(), usage.notified());
        futures::pin_mut!(on_feed, on_usage);
        on_feed.as_mut().enable();
        on_usage.as_mut().enable();
        let event = Envelope::new("test", "message.received.rm_1", serde_json::json!({}));
        wakes.notify(std::iter::once(&event));
        assert!(on_feed.now_or_never().is_some(), "the feed is woken");
        assert!(on_usage.now_or_never().is_none(), "usage sleeps on");
        let _more = wakes.register("more", "x.>");
        assert_eq!(
            wakes.0.read().unwrap().len(),
            3,
            "the dropped one is forgotten"
        );
    }

    /// Workers of one consumer share its wake-up: an event wakes one of
    /// them, two events two.
    #[test]
    fn an_event_wakes_one_worker_of_a_consumer() {
        let wakes = Wakes::default();
        let workers: Vec<Arc<Notify>> = (0..3)
            .map(|_| wakes.register("agent-worker", "agent.run.requested.*"))
            .collect();
        let mut waiting: Vec<_> = workers.iter().map(|w| Box::pin(w.notified())).collect();
        for w in &mut waiting {
            w.as_mut().enable();
        }
        let event = |n: i64| {
            Envelope::new(
                "test",
                "agent.run.requested.helper",
                serde_json::json!({ "n": n }),
            )
        };
        let woken = |waiting: &mut Vec<_>| {
            let before = waiting.len();
            waiting.retain_mut(
                |w: &mut std::pin::Pin<Box<tokio::sync::futures::Notified<'_>>>| {
                    w.as_mut().now_or_never().is_none()
                },
            );
            before - waiting.len()
        };
        wakes.notify([event(1)].iter());
        assert_eq!(woken(&mut waiting), 1);
        wakes.notify([event(2), event(3)].iter());
        assert_eq!(woken(&mut waiting), 2);
        assert_eq!(wakes.0.read().unwrap().len(), 1, "one wake-up, shared");
    }
}
