//! Local fan-out. Each process holds one bus subscription per subject that
//! its sockets watch (a room, presence, an agent's run), renders each event
//! to a frame once, and hands the same bytes to every local socket. Without
//! it, N sockets on a subject meant N bus subscriptions (N copies from NATS)
//! and N serializations of every event.

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

/// The frames of one watched subject, as one socket receives them.
pub type Feed = broadcast::Receiver<Utf8Bytes>;

#[derive(Clone, Default)]
pub(super) struct Hub {
    feeds: Arc<Mutex<HashMap<String, broadcast::Sender<Utf8Bytes>>>>,
}

impl Hub {
    /// Frames for `subject`, from now on. The bus subscription exists before
    /// this returns, so nothing published afterwards is missed.
    pub(super) async fn watch(
        &self,
        bus: &Arc<dyn Bus>,
        subject: &str,
        render: Render,
        shutdown: &CancellationToken,
    ) -> Result<Feed, BusError> {
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

    fn join(&self, subject: &str) -> Option<Feed> {
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
    pub(super) fn feeds(&self) -> usize {
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
