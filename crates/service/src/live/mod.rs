//! Live delivery over WebSockets: what a room, presence, an agent's run or
//! the living map streams to browsers.
//!
//! A service keeps one [`Live`] (from [`crate::Context::live`]). A socket
//! handler [`Live::watch`]es the subject it streams (one bus subscription
//! per subject per process, each event rendered to a frame once, `hub`),
//! then [`Live::serve`]s the upgrade with a [`Handler`] for the frames the
//! client sends. The session loop (`session`) is the same for every socket:
//!
//! - client frames are JSON text, parsed into the handler's frame type; a
//!   bad frame gets an error frame (the `ApiError` body with
//!   `"type":"error"`) and the session goes on;
//! - per-connection limits: a frame over `max_message_bytes` closes with
//!   1009, a client over its rate gets `rate_limited` errors and, after
//!   `burst` of them in a row, a 1008 close; a binary frame closes with 1003;
//! - heartbeats: the server pings every `ping_interval`; a client silent for
//!   two intervals is gone (closed with 1001 "no heartbeat");
//! - a client too slow for its feed gets `{"type":"lagged","skipped":n}`
//!   (it refetches history) instead of holding the feed up; one that does
//!   not read at all is dropped after a send timeout;
//! - the caller stays who they were: a socket whose session or key is
//!   revoked closes with 4401 at once (the `authn.revoked` event names it),
//!   one whose access the policies no longer grant (re-checked on every
//!   policy change) with 4403, and every `recheck` interval both are asked
//!   again in case an event was missed; after `max_lifetime` a socket
//!   closes with 4408 and the client reconnects (authenticating anew);
//! - server shutdown closes with 1001.

mod hub;
mod session;

use std::{sync::Arc, time::Duration};

use axum::{extract::ws::WebSocketUpgrade, response::Response};
use daarion_access::{Authenticate, Principal};
use daarion_bus::{Bus, BusError};
use daarion_cache::Cache;
use daarion_kernel::{
    RequestContext,
    shutdown::{CancellationToken, TaskTracker},
};

pub use hub::{Feed, Render};
pub use session::{Flow, Gone, Handler, Outbound};

/// Starting size of a socket's read and write buffers.
const SOCKET_BUFFER: usize = 4 * 1024;

/// What one connection may do.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest client frame, in bytes.
    pub max_message_bytes: usize,
    /// Client frames per second, sustained...
    pub messages_per_second: f64,
    /// ...and in a burst.
    pub burst: u32,
    /// The server pings this often; two intervals without a word from the
    /// client end the session.
    pub ping_interval: Duration,
    /// How often the caller's credential and access are asked again (they
    /// are also re-checked on every revocation and policy change).
    pub recheck: Duration,
    /// The longest a socket stays open; the client then reconnects.
    pub max_lifetime: Duration,
}

/// A service's live delivery: its sockets, their feeds and their limits.
#[derive(Clone)]
pub struct Live {
    service: &'static str,
    hub: hub::Hub,
    bus: Arc<dyn Bus>,
    cache: Arc<dyn Cache>,
    authn: Arc<dyn Authenticate>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// What a [`Live`] is built from (the service's context has them all).
pub(crate) struct Parts {
    pub service: &'static str,
    pub bus: Arc<dyn Bus>,
    pub cache: Arc<dyn Cache>,
    pub authn: Arc<dyn Authenticate>,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
}

impl Live {
    pub(crate) fn new(parts: Parts) -> Self {
        Self {
            service: parts.service,
            hub: hub::Hub::default(),
            bus: parts.bus,
            cache: parts.cache,
            authn: parts.authn,
            shutdown: parts.shutdown,
            tasks: parts.tasks,
        }
    }

    /// The frames of `subject` from now on. Call it before upgrading, so
    /// nothing published after the client's 101 is missed.
    pub async fn watch(&self, subject: &str, render: Render) -> Result<Feed, BusError> {
        self.hub
            .watch(&self.bus, subject, render, &self.shutdown)
            .await
    }

    /// Upgrades to a session of `caller` that relays `feed` and hands the
    /// client's frames to `handler`. The caller's frames spend one budget
    /// across their connections (and replicas, with Redis).
    pub fn serve<H: Handler>(
        &self,
        upgrade: WebSocketUpgrade,
        caller: &Principal,
        limits: Limits,
        feed: Feed,
        handler: H,
    ) -> Response {
        // Captured here: the upgrade runs in a new task, outside the request's scope.
        let ctx = RequestContext::current_or_generate();
        // The protocol layer's hard cap sits above the configured limit, so an
        // oversized message reaches the session and gets a proper 1009 close.
        let hard_cap = limits.max_message_bytes.saturating_mul(4);
        let live = self.clone();
        let rate_key = format!("{}:ws-rate:{}", self.service, caller.name());
        let credential = caller.credential.clone();
        // Small starting buffers: tungstenite's default 128 KiB each would
        // cost that much memory per idle socket; they grow for large frames.
        upgrade
            .read_buffer_size(SOCKET_BUFFER)
            .write_buffer_size(SOCKET_BUFFER)
            .max_message_size(hard_cap)
            .max_frame_size(hard_cap)
            .on_upgrade(move |socket| {
                let tasks = live.tasks.clone();
                let session = session::Session::new(live, socket, rate_key, credential, limits);
                tasks.track_future(ctx.scope(session.run(feed, handler)))
            })
    }
}

#[cfg(test)]
mod tests;
