//! Audit events leave the request path through a bounded queue: a request
//! hands its event over in microseconds and one writer task publishes to the
//! `AUDIT` stream. When the queue is full or the writer has stopped, the
//! request publishes itself, so no event is dropped; on shutdown the writer
//! closes the queue and publishes what is in it before it ends.

use std::sync::Arc;

use daarion_bus::{Bus, Envelope};
use daarion_kernel::shutdown::{CancellationToken, TaskTracker};
use tokio::sync::mpsc;

const QUEUE: usize = 4096;

#[derive(Clone)]
pub struct AuditSink {
    queue: mpsc::Sender<Envelope>,
    bus: Arc<dyn Bus>,
}

impl AuditSink {
    /// Starts the writer on `tasks`; it drains and ends on `shutdown`.
    pub fn start(bus: Arc<dyn Bus>, tasks: &TaskTracker, shutdown: CancellationToken) -> Self {
        let (queue, events) = mpsc::channel(QUEUE);
        tasks.spawn(write(bus.clone(), events, shutdown));
        Self { queue, bus }
    }

    pub async fn record(&self, event: Envelope) {
        let event = match self.queue.try_send(event) {
            Ok(()) => return,
            Err(
                mpsc::error::TrySendError::Full(event) | mpsc::error::TrySendError::Closed(event),
            ) => event,
        };
        publish(self.bus.as_ref(), &event).await;
    }
}

async fn publish(bus: &dyn Bus, event: &Envelope) {
    if let Err(error) = bus.publish(event).await {
        metrics::counter!("audit_publish_failures_total").increment(1);
        tracing::error!(%error, subject = %event.subject, "audit event not published");
    }
}

async fn write(
    bus: Arc<dyn Bus>,
    mut events: mpsc::Receiver<Envelope>,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            biased;
            event = events.recv() => match event {
                Some(event) => publish(bus.as_ref(), &event).await,
                None => return,
            },
            () = shutdown.cancelled() => {
                // Later events are published by their requests (Closed).
                events.close();
                while let Some(event) = events.recv().await {
                    publish(bus.as_ref(), &event).await;
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

    #[tokio::test]
    async fn events_reach_the_bus_including_those_queued_at_shutdown() {
        let dir = std::env::temp_dir().join(format!("audit-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| unreachable!("{e}"));
        let db = daarion_store::Db::connect(&format!("sqlite://{}", dir.join("a.db").display()))
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        daarion_store::migrate::apply(&db, &[daarion_bus::MIGRATIONS])
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        let bus: Arc<dyn Bus> = Arc::new(daarion_bus::EmbeddedBus::new(db));
        let mut seen = bus
            .subscribe("audit.>")
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        let tasks = TaskTracker::new();
        let shutdown = CancellationToken::new();
        let sink = AuditSink::start(bus.clone(), &tasks, shutdown.clone());
        for n in 0..50 {
            sink.record(Envelope::new(
                "t",
                "audit.action",
                serde_json::json!({ "n": n }),
            ))
            .await;
        }
        shutdown.cancel();
        sink.record(Envelope::new(
            "t",
            "audit.action",
            serde_json::json!({ "n": 50 }),
        ))
        .await;
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
}
