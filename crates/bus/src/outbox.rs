//! The transactional outbox. An event that durable consumers need (a
//! message an agent must answer, a usage record to bill) is written by
//! [`Outbox::stage`] in the same transaction as the data it describes, so
//! it exists exactly when the data does: the embedded bus stores it there
//! itself (its events live in that database); otherwise it is a row of
//! `bus_outbox`. After commit, [`Outbox::relay`] delivers it (the embedded
//! bus: live; otherwise published, the row removed soon after); if the
//! bus is unreachable or the process stops first, the row stays and
//! [`Outbox::run`] (every process runs one) publishes it later. Delivery is
//! at least once: consumers deduplicate by event id.
//!
//! A relay whose publish fails holds the others off the bus for a while
//! (a circuit breaker): while the bus is down, only the requests that meet
//! it first wait for it to time out; the next ones leave their events to
//! [`Outbox::run`] at once, which publishes them when the bus is back.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use daarion_kernel::{breaker::Breaker, shutdown::CancellationToken};
use daarion_store::{
    Db,
    sql::{Any, Row, Transaction},
};
use tokio::sync::Notify;

use crate::{Bus, BusError, Envelope};

/// A row not relayed by its writer within this long is relayed by whoever
/// claims it first.
const GRACE: Duration = Duration::from_secs(2);
/// How long a claim lasts: a relay that dies mid-batch is retried after it.
const CLAIM_FOR: Duration = Duration::from_secs(30);
/// Rows one pass relays at most.
const BATCH: i64 = 256;
/// How often each process looks for rows left behind.
const POLL: Duration = Duration::from_secs(1);
/// How long after a failed publish relays after commit skip the bus; the
/// first after it tries the bus again, as does each poll meanwhile.
const HOLD_OFF: Duration = Duration::from_secs(10);

/// Events staged with their data, to relay once its transaction committed.
#[must_use = "staged events are relayed after commit"]
#[derive(Debug, Default)]
pub struct Staged {
    events: Vec<Envelope>,
    /// The bus stored them itself, in the transaction (the embedded bus).
    in_bus: bool,
}

impl Staged {
    /// Nothing staged (a create replayed by its idempotency key).
    pub fn none() -> Self {
        Self::default()
    }

    pub fn events(&self) -> &[Envelope] {
        &self.events
    }
}

/// Relays staged events to the bus; one per process, cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    db: Db,
    bus: Arc<dyn Bus>,
    wake: Arc<Notify>,
    /// Ids published after commit, removed by [`Outbox::run`] in batches:
    /// one write for many events instead of one each.
    published: Arc<Mutex<Vec<String>>>,
    removals: Arc<Notify>,
    /// Open while relays after commit skip the bus (it just failed).
    breaker: Breaker,
}

impl Outbox {
    pub fn new(db: Db, bus: Arc<dyn Bus>) -> Self {
        Self {
            db,
            bus,
            wake: Arc::new(Notify::new()),
            published: Arc::default(),
            removals: Arc::new(Notify::new()),
            breaker: Breaker::new(HOLD_OFF),
        }
    }

    /// The bus it relays to.
    pub fn bus(&self) -> Arc<dyn Bus> {
        self.bus.clone()
    }

    /// Writes `events` in the caller's transaction; relay what it returns
    /// once the transaction committed.
    pub async fn stage(
        &self,
        tx: &mut Transaction<'_, Any>,
        events: Vec<Envelope>,
    ) -> Result<Staged, BusError> {
        if self.bus.stage_in(tx, &events).await? {
            return Ok(Staged {
                events,
                in_bus: true,
            });
        }
        let now = daarion_store::now();
        for event in &events {
            crate::subject::validate(&event.subject)?;
            daarion_store::sql::query(
                "INSERT INTO bus_outbox (id, event, created_at, claimed_until) VALUES ($1, $2, $3, '')",
            )
            .bind(event.id.as_str())
            .bind(serde_json::to_string(event)?)
            .bind(now.as_str())
            .execute(&mut **tx)
            .await?;
        }
        Ok(Staged {
            events,
            in_bus: false,
        })
    }

    /// Keeps events that could not be published — ones that describe no
    /// data (audit, usage records) — in a transaction of their own, for
    /// [`Outbox::run`] to publish once the bus is back.
    pub async fn keep(&self, events: Vec<Envelope>) -> Result<(), BusError> {
        let mut tx = self.db.begin().await?;
        let staged = self.stage(&mut tx, events).await?;
        tx.commit().await?;
        if staged.in_bus {
            self.relay(staged).await;
        }
        Ok(())
    }

    /// Delivers events staged by a transaction that has committed. A
    /// failed publish leaves them for [`Outbox::run`], as does any relay
    /// soon after one failed.
    pub async fn relay(&self, staged: Staged) {
        let events = staged.events.as_slice();
        if events.is_empty() {
            return;
        }
        if staged.in_bus {
            if let Err(error) = self.bus.announce(events).await {
                tracing::warn!(%error, "stored events not announced live");
            }
            return;
        }
        if self.breaker.is_open() {
            self.defer(events.len());
            return;
        }
        let published = self.bus.publish_batch(events).await;
        self.breaker.record(published.is_ok());
        if let Err(error) = published {
            tracing::warn!(%error, "staged events not published yet; the outbox relay retries");
            self.defer(events.len());
            return;
        }
        if let Ok(mut published) = self.published.lock() {
            published.extend(events.iter().map(|e| e.id.clone()));
        }
        self.removals.notify_one();
    }

    /// Until `shutdown`: removes what was published after commit (in
    /// batches), and relays rows left behind, by polling and whenever a
    /// relay after commit failed. Removes what is pending before returning.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    self.remove_published().await;
                    return;
                }
                () = self.removals.notified() => {
                    // Gather what the next few posts publish too.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                    self.remove_published().await;
                    continue;
                }
                _ = poll.tick() => {}
                () = self.wake.notified() => tokio::time::sleep(Duration::from_millis(200)).await,
            }
            self.remove_published().await;
            match self.relay_pending(GRACE).await {
                Ok(n) if n > 0 => tracing::info!(events = n, "outbox relayed events left behind"),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "outbox relay failed; retrying"),
            }
        }
    }

    /// Leaves `count` staged events to [`Outbox::run`].
    fn defer(&self, count: usize) {
        metrics::counter!("bus_outbox_deferred_total").increment(count as u64);
        self.wake.notify_one();
    }

    async fn remove_published(&self) {
        let ids = match self.published.lock() {
            Ok(mut published) => std::mem::take(&mut *published),
            Err(_) => return,
        };
        if ids.is_empty() {
            return;
        }
        let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
        if let Err(error) = self.remove(&ids).await {
            // Published but still staged: relayed again after the grace
            // period, and consumers drop the repeat by its id.
            tracing::warn!(%error, "published events not removed from the outbox");
        }
    }

    /// Claims staged rows older than `grace` (oldest first, at most a
    /// batch), publishes them and removes them. Returns how many.
    pub async fn relay_pending(&self, grace: Duration) -> Result<usize, BusError> {
        let clock = chrono::Utc::now();
        let at = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::zero());
        let due = daarion_store::format_time(clock - at(grace));
        let now = daarion_store::format_time(clock);
        // A read first: on SQLite even an update that matches nothing takes
        // the write lock, and every process polls this every second (on
        // the embedded bus, whose staged events never land here, always
        // for nothing).
        let pending = daarion_store::sql::query(
            "SELECT id FROM bus_outbox WHERE created_at <= $1 AND claimed_until < $2 LIMIT 1",
        )
        .bind(due.as_str())
        .bind(now.as_str())
        .fetch_optional(self.db.pool())
        .await?;
        if pending.is_none() {
            return Ok(0);
        }
        let claimed_until = daarion_store::format_time(clock + at(CLAIM_FOR));
        let rows = daarion_store::sql::query(
            "UPDATE bus_outbox SET claimed_until = $1
             WHERE claimed_until < $2 AND id IN (
                 SELECT id FROM bus_outbox WHERE created_at <= $3 AND claimed_until < $2
                 ORDER BY created_at LIMIT $4)
             RETURNING event",
        )
        .bind(claimed_until)
        .bind(now.as_str())
        .bind(due.as_str())
        .bind(BATCH)
        .fetch_all(self.db.pool())
        .await?;
        let mut events = Vec::with_capacity(rows.len());
        for row in rows {
            let text: String = row.try_get("event")?;
            events.push(serde_json::from_str::<Envelope>(&text)?);
        }
        if events.is_empty() {
            return Ok(0);
        }
        events.sort_by(|a, b| a.time.cmp(&b.time));
        let published = self.bus.publish_batch(&events).await;
        self.breaker.record(published.is_ok());
        published?;
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        self.remove(&ids).await?;
        Ok(events.len())
    }

    async fn remove(&self, ids: &[&str]) -> Result<(), BusError> {
        let mut tx = self.db.begin().await?;
        for id in ids {
            daarion_store::sql::query("DELETE FROM bus_outbox WHERE id = $1")
                .bind(*id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}
