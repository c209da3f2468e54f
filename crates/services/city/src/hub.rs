//! Local fan-out. Each process holds one bus subscription per subject that
//! its sockets watch (a room, or presence), renders each event to a frame
//! once, and hands the same bytes to every local socket. Without it, N
//! sockets in a room meant N bus subscriptions (N copies from NATS) and N
//! serializations of every message.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use axum::extract::ws::Utf8Bytes;
use daarion_bus::{Bus, BusError, Envelope};
use daarion_kernel::shutdown::CancellationToken;
use futures::StreamExt;
use tokio::sync::broadcast;

/// Frames a socket may fall behind by before it skips (and is told so).
const BACKLOG: usize = 1024;

/// Renders an event into the frame sockets receive.
pub type Render = fn(Envelope) -> serde_json::Value;

#[derive(Clone, Default)]
pub struct Hub {
    feeds: Arc<Mutex<HashMap<String, broadcast::Sender<Utf8Bytes>>>>,
}

impl Hub {
    /// Frames for `subject`, from now on. The bus subscription exists before
    /// this returns, so nothing published afterwards is missed.
    pub async fn watch(
        &self,
        bus: &Arc<dyn Bus>,
        subject: &str,
        render: Render,
        shutdown: &CancellationToken,
    ) -> Result<broadcast::Receiver<Utf8Bytes>, BusError> {
        if let Some(receiver) = self.join(subject) {
            return Ok(receiver);
        }
        let live = bus.subscribe(subject).await?;
        let mut feeds = self
            .feeds
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Another socket may have opened the feed while we subscribed.
        if let Some(sender) = feeds.get(subject).filter(|s| s.receiver_count() > 0) {
            return Ok(sender.subscribe());
        }
        let (sender, receiver) = broadcast::channel(BACKLOG);
        feeds.insert(subject.to_owned(), sender.clone());
        drop(feeds);
        tokio::spawn(forward(
            self.clone(),
            subject.to_owned(),
            live,
            sender,
            render,
            shutdown.clone(),
        ));
        Ok(receiver)
    }

    fn join(&self, subject: &str) -> Option<broadcast::Receiver<Utf8Bytes>> {
        let feeds = self
            .feeds
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        feeds
            .get(subject)
            .filter(|sender| sender.receiver_count() > 0)
            .map(broadcast::Sender::subscribe)
    }

    /// Forgets `sender`'s feed, unless it was already replaced by a newer one.
    fn close(&self, subject: &str, sender: &broadcast::Sender<Utf8Bytes>) {
        let mut feeds = self
            .feeds
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if feeds.get(subject).is_some_and(|s| s.same_channel(sender)) {
            feeds.remove(subject);
        }
    }

    #[cfg(test)]
    fn feeds(&self) -> usize {
        self.feeds.lock().map(|f| f.len()).unwrap_or(0)
    }
}

/// Renders and relays events until no socket watches, the bus ends, or shutdown.
async fn forward(
    hub: Hub,
    subject: String,
    mut live: daarion_bus::Subscription,
    sender: broadcast::Sender<Utf8Bytes>,
    render: Render,
    shutdown: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => break,
            event = live.next() => event,
        };
        let Some(event) = event else { break };
        let frame = Utf8Bytes::from(render(event).to_string());
        if sender.send(frame).is_err() {
            // The last socket left.
            break;
        }
    }
    hub.close(&subject, &sender);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn render(event: Envelope) -> serde_json::Value {
        event.payload
    }

    #[tokio::test]
    async fn one_subscription_serves_every_socket_and_ends_with_the_last() {
        let dir = tempfile::tempdir().unwrap();
        let db =
            daarion_store::Db::connect(&format!("sqlite://{}", dir.path().join("t.db").display()))
                .await
                .unwrap();
        daarion_store::migrate::apply(&db, &[daarion_bus::MIGRATIONS])
            .await
            .unwrap();
        let bus: Arc<dyn Bus> = Arc::new(daarion_bus::EmbeddedBus::new(
            db,
            daarion_bus::subject::Streams::new([]).unwrap(),
        ));
        let hub = Hub::default();
        let shutdown = CancellationToken::new();
        let mut a = hub
            .watch(&bus, "presence.city.*", render, &shutdown)
            .await
            .unwrap();
        let mut b = hub
            .watch(&bus, "presence.city.*", render, &shutdown)
            .await
            .unwrap();
        assert_eq!(hub.feeds(), 1);
        bus.publish(&Envelope::new(
            "t",
            "presence.city.join",
            serde_json::json!({"n": 1}),
        ))
        .await
        .unwrap();
        let (fa, fb) = (a.recv().await.unwrap(), b.recv().await.unwrap());
        assert_eq!(fa.as_str(), r#"{"n":1}"#);
        assert_eq!(fa, fb);

        drop((a, b));
        // The feed notices on its next event that nobody watches, and closes.
        bus.publish(&Envelope::new(
            "t",
            "presence.city.join",
            serde_json::json!({"n": 2}),
        ))
        .await
        .unwrap();
        tokio::time::timeout(Duration::from_secs(5), async {
            while hub.feeds() > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();
        let mut c = hub
            .watch(&bus, "presence.city.*", render, &shutdown)
            .await
            .unwrap();
        bus.publish(&Envelope::new(
            "t",
            "presence.city.join",
            serde_json::json!({"n": 3}),
        ))
        .await
        .unwrap();
        assert_eq!(c.recv().await.unwrap().as_str(), r#"{"n":3}"#);
    }
}
