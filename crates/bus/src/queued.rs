//! Publishing off the request path, in batches. A caller hands its event to
//! a bounded queue in microseconds; one writer task publishes whatever has
//! gathered with [`Bus::publish_batch`] (one transaction on the embedded
//! bus), so a busy process writes many events per round trip to the store.
//! When the queue is full or the writer has stopped, the caller publishes
//! itself, so no event is dropped; on shutdown the writer closes the queue
//! and publishes what is in it before it ends. Events the bus refuses go to
//! the outbox, when the publisher has one, and are published from there
//! once the bus is back (NATS down for a while); lost only when the
//! database refuses them too. A process runs one, shared by
//! everything it publishes this way (audit events, usage records), so their
//! events share batches.

use std::sync::Arc;

use daarion_kernel::shutdown::{CancellationToken, TaskTracker, pause};
use tokio::sync::mpsc;

use crate::{Bus, Envelope, Outbox};

const QUEUE: usize = 4096;
/// Most events one batch carries.
const BATCH: usize = 256;
/// How long the writer waits after a batch that was not full.
const LINGER: std::time::Duration = std::time::Duration::from_millis(10);

#[derive(Clone)]
pub struct QueuedPublisher {
    queue: mpsc::Sender<Envelope>,
    bus: Arc<dyn Bus>,
    /// Where events the bus refused are kept.
    keep: Option<Outbox>,
}

impl QueuedPublisher {
    /// Starts the writer on `tasks`; it drains and ends on `shutdown`.
    pub fn start(bus: Arc<dyn Bus>, tasks: &TaskTracker, shutdown: CancellationToken) -> Self {
        Self::starting(bus, None, tasks, shutdown)
    }

    /// Like [`QueuedPublisher::start`], on the outbox's bus, keeping in
    /// the outbox what the bus refuses.
    pub fn start_keeping(outbox: Outbox, tasks: &TaskTracker, shutdown: CancellationToken) -> Self {
        Self::starting(outbox.bus(), Some(outbox), tasks, shutdown)
    }

    fn starting(
        bus: Arc<dyn Bus>,
        keep: Option<Outbox>,
        tasks: &TaskTracker,
        shutdown: CancellationToken,
    ) -> Self {
        let (queue, events) = mpsc::channel(QUEUE);
        tasks.spawn(write(bus.clone(), keep.clone(), events, shutdown));
        Self { queue, bus, keep }
    }

    /// Publishes `event` soon (or now, when the queue is full). A failure
    /// is logged and counted: the event's work has happened.
    pub async fn publish(&self, event: Envelope) {
        let event = match self.queue.try_send(event) {
            Ok(()) => return,
            Err(
                mpsc::error::TrySendError::Full(event) | mpsc::error::TrySendError::Closed(event),
            ) => event,
        };
        publish(
            self.bus.as_ref(),
            self.keep.as_ref(),
            std::slice::from_ref(&event),
        )
        .await;
    }
}

/// Publishes a batch, or keeps it in `keep`; a loss is counted per event
/// under its subject's domain (`audit`, `usage`…).
async fn publish(bus: &dyn Bus, keep: Option<&Outbox>, events: &[Envelope]) {
    let Err(error) = bus.publish_batch(events).await else {
        return;
    };
    let kept = match keep {
        Some(outbox) => outbox.keep(events.to_vec()).await,
        None => Err(error),
    };
    if let Err(error) = kept {
        for event in events {
            let domain = event.subject.split('.').next().unwrap_or_default();
            metrics::counter!("bus_publish_failures_total", "domain" => domain.to_owned())
                .increment(1);
        }
        tracing::error!(%error, events = events.len(), "events not published");
    }
}

async fn write(
    bus: Arc<dyn Bus>,
    keep: Option<Outbox>,
    mut events: mpsc::Receiver<Envelope>,
    shutdown: CancellationToken,
) {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            biased;
            received = events.recv_many(&mut batch, BATCH) => {
                if received == 0 {
                    return;
                }
                publish(bus.as_ref(), keep.as_ref(), &batch).await;
                let full = batch.len() == BATCH;
                batch.clear();
                if !full {
                    // Let the next batch gather: a busy process then writes
                    // a few batches a second rather than one per event.
                    pause(LINGER, &shutdown).await;
                }
            }
            () = shutdown.cancelled() => {
                // Later events are published by their callers (Closed).
                events.close();
                while events.recv_many(&mut batch, BATCH).await > 0 {
                    publish(bus.as_ref(), keep.as_ref(), &batch).await;
                    batch.clear();
                }
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt as _;

    /// An embedded bus holding `audit.>` in a new SQLite file in `dir`.
    async fn audit_bus() -> (std::path::PathBuf, daarion_store::Db, Arc<dyn Bus>) {
        let dir = std::env::temp_dir().join(format!("audit-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| unreachable!("{e}"));
        let db = daarion_store::Db::connect(&format!("sqlite://{}", dir.join("a.db").display()))
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        daarion_store::migrate::apply(&db, &[crate::MIGRATIONS])
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        let bus: Arc<dyn Bus> = Arc::new(crate::EmbeddedBus::new(
            db.clone(),
            crate::subject::Streams::new([crate::subject::AUDIT])
                .unwrap_or_else(|e| unreachable!("{e}")),
        ));
        (dir, db, bus)
    }

    /// Audit events numbered `numbers` (payload `n`).
    async fn publish_numbered(sink: &QueuedPublisher, numbers: std::ops::Range<u64>) {
        for n in numbers {
            sink.publish(Envelope::new(
                "t",
                "audit.action",
                serde_json::json!({ "n": n }),
            ))
            .await;
        }
    }

    #[tokio::test]
    async fn events_reach_the_bus_in_batches_including_those_queued_at_shutdown() {
        let (dir, _, bus) = audit_bus().await;
        let mut seen = bus
            .subscribe("audit.>")
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let sink = QueuedPublisher::start(bus.clone(), &tasks, shutdown.clone());
        publish_numbered(&sink, 0..50).await;
        shutdown.cancel();
        publish_numbered(&sink, 50..51).await;
        tasks.close();
        tasks.wait().await;
        let mut numbers = Vec::new();
        while numbers.len() < 51 {
            let event = tokio::time::timeout(std::time::Duration::from_secs(5), seen.next())
                .await
                .unwrap_or_else(|_| unreachable!("only {} events arrived", numbers.len()));
            numbers.push(
                event
                    .map(|e| e.payload["n"].as_u64().unwrap_or(0))
                    .unwrap_or(0),
            );
        }
        numbers.sort_unstable();
        assert_eq!(numbers, (0..51).collect::<Vec<_>>());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// A bus that refuses every event (NATS down), and keeps nothing in
    /// the database itself.
    struct Refusing(Arc<dyn Bus>);

    #[async_trait::async_trait]
    impl Bus for Refusing {
        async fn publish(&self, _: &Envelope) -> Result<(), crate::BusError> {
            Err(crate::BusError::Unavailable("down".into()))
        }

        async fn publish_batch(&self, _: &[Envelope]) -> Result<(), crate::BusError> {
            Err(crate::BusError::Unavailable("down".into()))
        }

        async fn subscribe(&self, pattern: &str) -> Result<crate::Subscription, crate::BusError> {
            self.0.subscribe(pattern).await
        }

        async fn consumer(
            &self,
            spec: &crate::ConsumerSpec,
        ) -> Result<Box<dyn crate::Consumer>, crate::BusError> {
            self.0.consumer(spec).await
        }

        async fn backlog(&self) -> Result<Vec<crate::Backlog>, crate::BusError> {
            self.0.backlog().await
        }

        fn kind(&self) -> &'static str {
            "refusing"
        }

        async fn ping(&self) -> Result<(), crate::BusError> {
            Err(crate::BusError::Unavailable("down".into()))
        }
    }

    #[tokio::test]
    async fn events_the_bus_refuses_wait_in_the_outbox_until_it_is_back() {
        let (dir, db, bus) = audit_bus().await;
        let down: Arc<dyn Bus> = Arc::new(Refusing(bus.clone()));
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let sink =
            QueuedPublisher::start_keeping(Outbox::new(db.clone(), down), &tasks, shutdown.clone());
        publish_numbered(&sink, 0..3).await;
        shutdown.cancel();
        tasks.close();
        tasks.wait().await;
        let kept: i64 = daarion_store::sql::query_scalar("SELECT COUNT(*) FROM bus_outbox")
            .fetch_one(db.pool())
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(kept, 3, "kept, not dropped");
        // The bus is back: the relay publishes them.
        let mut seen = bus
            .subscribe("audit.>")
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        let relayed = Outbox::new(db, bus)
            .relay_pending(std::time::Duration::ZERO)
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(relayed, 3);
        for _ in 0..3 {
            let event = tokio::time::timeout(std::time::Duration::from_secs(5), seen.next())
                .await
                .unwrap_or_else(|_| unreachable!("an event did not arrive"));
            assert!(event.is_some());
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
