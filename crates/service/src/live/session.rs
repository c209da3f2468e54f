//! One socket's session loop: relay the feed, admit and parse the client's
//! frames, keep the heartbeat, end with the right close code.

use std::time::Duration;

use async_trait::async_trait;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, close_code};
use daarion_access::{
    Credential,
    events::{POLICY_CHANGED, REVOKED, Revoked},
};
use daarion_bus::Envelope;
use daarion_cache::RateLimit;
use daarion_kernel::{ApiError, metrics::ConnectionGuard};
use futures::{
    SinkExt, StreamExt,
    stream::{SplitSink, SplitStream},
};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::{sync::broadcast, time::Instant};
use tokio_stream::{
    StreamMap,
    wrappers::{BroadcastStream, errors::BroadcastStreamRecvError},
};

use super::{Feed, Limits, Live};

/// A client that does not read its frames for this long is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// The caller's session or key was revoked or expired (like HTTP 401).
const REVOKED_CLOSE: u16 = 4401;
/// The policies no longer grant the caller this socket (like HTTP 403).
const FORBIDDEN_CLOSE: u16 = 4403;
/// The socket reached its maximum lifetime: reconnect.
const LIFETIME_CLOSE: u16 = 4408;

/// What the session does after a client frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// End the session with this close code and reason.
    Close(u16, &'static str),
}

/// How the session ends.
enum End {
    /// We close, with this code.
    Close(u16, &'static str),
    /// The client closed (the protocol layer answered) or vanished.
    Peer,
}

/// A socket's service-specific part: what its client may send.
#[async_trait]
pub trait Handler: Send + 'static {
    /// The client's frames, parsed from JSON text (an unparsable frame gets
    /// an error frame and never reaches the handler).
    type Frame: DeserializeOwned + Send;

    /// Runs once the socket is open, before any frame is relayed (a
    /// snapshot, a presence join). An error ends the session.
    async fn opened(&mut self, _out: &mut Outbound) -> Result<(), Gone> {
        Ok(())
    }

    /// One client frame.
    async fn received(&mut self, out: &mut Outbound, frame: Self::Frame) -> Flow;

    /// One frame of a feed: the session's own (`key` `None`) or one the
    /// handler follows ([`Outbound::follow`]). By default it goes to the
    /// client as it is; a handler may look at it first (a membership
    /// change that ends a subscription) or leave it out.
    async fn feed(&mut self, out: &mut Outbound, key: Option<&str>, frame: Utf8Bytes) -> Flow {
        let _ = key;
        match out.send_text(frame).await {
            Ok(()) => Flow::Continue,
            Err(Gone) => Flow::Close(close_code::AWAY, "client gone"),
        }
    }

    /// Whether the policies still grant the caller this socket; asked on
    /// every policy change and every `recheck` interval (a refusal closes
    /// with 4403).
    /// A handler that multiplexes may answer by dropping only what is no
    /// longer allowed (through `out`) and keeping the socket.
    async fn still_allowed(&mut self, out: &mut Outbound) -> bool {
        let _ = out;
        true
    }

    /// Runs once when a session that opened ends, however it ended (a
    /// presence leave).
    async fn closed(&mut self) {}
}

/// The client stopped reading (a send timed out or the socket is gone).
#[derive(Debug, Clone, Copy)]
pub struct Gone;

/// Sends frames to the client, and holds the extra feeds the handler
/// follows (one socket, many rooms).
pub struct Outbound {
    sink: SplitSink<WebSocket, Message>,
    followed: StreamMap<String, BroadcastStream<Utf8Bytes>>,
}

impl Outbound {
    pub async fn send(&mut self, frame: &Value) -> Result<(), Gone> {
        self.send_text(frame.to_string().into()).await
    }

    /// Relays `feed` too, under `key` (replacing a feed of that key).
    pub fn follow(&mut self, key: &str, feed: Feed) {
        self.followed
            .insert(key.to_owned(), BroadcastStream::new(feed));
    }

    /// Stops relaying the feed of `key`; whether there was one.
    pub fn unfollow(&mut self, key: &str) -> bool {
        self.followed.remove(key).is_some()
    }

    /// The keys of the feeds followed.
    pub fn following(&self) -> impl Iterator<Item = &str> {
        self.followed.keys().map(String::as_str)
    }

    /// The next frame of any followed feed; never, while there is none.
    async fn next_followed(&mut self) -> (String, Result<Utf8Bytes, u64>) {
        use futures::StreamExt as _;
        match self.followed.next().await {
            Some((key, Ok(frame))) => (key, Ok(frame)),
            Some((key, Err(BroadcastStreamRecvError::Lagged(skipped)))) => (key, Err(skipped)),
            None => std::future::pending().await,
        }
    }

    /// An error frame: the HTTP error body with `"type":"error"`.
    pub async fn send_error(&mut self, error: ApiError) -> Result<(), Gone> {
        let mut frame = error.body();
        frame["type"] = "error".into();
        self.send(&frame).await
    }

    /// A frame already rendered (a feed's).
    pub async fn send_text(&mut self, frame: Utf8Bytes) -> Result<(), Gone> {
        self.send_message(Message::Text(frame)).await
    }

    async fn send_message(&mut self, message: Message) -> Result<(), Gone> {
        match tokio::time::timeout(SEND_TIMEOUT, self.sink.send(message)).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Gone),
        }
    }
}

pub(super) struct Session {
    live: Live,
    out: Outbound,
    incoming: SplitStream<WebSocket>,
    rate_key: String,
    credential: Credential,
    limits: Limits,
    /// Rate-limited frames in a row.
    strikes: u32,
    heard: Instant,
    _guard: ConnectionGuard,
}

impl Session {
    pub(super) fn new(
        live: Live,
        socket: WebSocket,
        rate_key: String,
        credential: Credential,
        limits: Limits,
    ) -> Self {
        let (sink, incoming) = socket.split();
        metrics::counter!("ws_sessions_total", "service" => live.service).increment(1);
        let guard = ConnectionGuard::new(live.service);
        Self {
            live,
            out: Outbound {
                sink,
                followed: StreamMap::new(),
            },
            incoming,
            rate_key,
            credential,
            limits,
            strikes: 0,
            heard: Instant::now(),
            _guard: guard,
        }
    }

    pub(super) async fn run<H: Handler>(mut self, mut feed: Feed, mut handler: H) {
        if handler.opened(&mut self.out).await.is_err() {
            return;
        }
        let mut ping = tokio::time::interval_at(
            Instant::now() + self.limits.ping_interval,
            self.limits.ping_interval,
        );
        let mut recheck =
            tokio::time::interval_at(Instant::now() + self.limits.recheck, self.limits.recheck);
        let lifetime = tokio::time::sleep(self.limits.max_lifetime);
        tokio::pin!(lifetime);
        // Missing either feed (bus trouble) leaves the periodic re-check.
        let mut revocations = self.control(REVOKED).await;
        let mut policies = self.control(POLICY_CHANGED).await;
        let shutdown = self.live.shutdown.clone();
        let end = loop {
            let flow = tokio::select! {
                biased;
                () = shutdown.cancelled() => Err(End::Close(close_code::AWAY, "server shutting down")),
                frame = next(&mut revocations) => self.on_revocation(frame, &mut handler).await,
                _ = next(&mut policies) => still_allowed(&mut handler, &mut self.out).await,
                _ = recheck.tick() => self.recheck(&mut handler).await,
                () = &mut lifetime => Err(End::Close(LIFETIME_CLOSE, "connection lifetime reached; reconnect")),
                frame = feed.recv() => self.relay(None, frame.map_err(Lag::from), &mut handler).await,
                (key, frame) = self.out.next_followed() => self.relay(Some(&key), frame.map_err(Lag::Skipped), &mut handler).await,
                _ = ping.tick() => self.ping().await,
                incoming = self.incoming.next() => match self.read::<H::Frame>(incoming).await {
                    Ok(Some(frame)) => match handler.received(&mut self.out, frame).await {
                        Flow::Continue => Ok(()),
                        Flow::Close(code, reason) => Err(End::Close(code, reason)),
                    },
                    Ok(None) => Ok(()),
                    Err(end) => Err(end),
                },
            };
            if let Err(end) = flow {
                break end;
            }
        };
        handler.closed().await;
        self.end(end).await;
    }

    /// A feed of the process's identity and policy events, if the bus has it.
    async fn control(&self, subject: &str) -> Option<Feed> {
        fn payload(event: Envelope) -> Value {
            event.payload
        }
        match self.live.watch(subject, payload).await {
            Ok(feed) => Some(feed),
            Err(error) => {
                tracing::warn!(%error, subject, "socket cannot follow; re-checking on an interval only");
                None
            }
        }
    }

    /// Closes at once when this socket's credential is among the revoked; a
    /// lagging feed may have dropped it, so then the store is asked.
    async fn on_revocation<H: Handler>(
        &mut self,
        frame: Result<Utf8Bytes, broadcast::error::RecvError>,
        handler: &mut H,
    ) -> Result<(), End> {
        let Ok(frame) = frame else {
            return self.recheck(handler).await;
        };
        let revoked: Revoked = serde_json::from_str(frame.as_str()).unwrap_or_default();
        match self.credential.id() {
            Some(id) if revoked.credentials.iter().any(|c| c == id) => {
                Err(End::Close(REVOKED_CLOSE, "signed out: credential revoked"))
            }
            _ => Ok(()),
        }
    }

    /// Asks the store whether the credential still stands and the handler
    /// whether the policies still grant the socket.
    async fn recheck<H: Handler>(&mut self, handler: &mut H) -> Result<(), End> {
        match self.live.authn.is_current(&self.credential).await {
            Ok(false) => {
                return Err(End::Close(
                    REVOKED_CLOSE,
                    "signed out: credential revoked or expired",
                ));
            }
            Ok(true) => {}
            Err(error) => tracing::warn!(%error, "credential re-check failed; socket kept"),
        }
        still_allowed(handler, &mut self.out).await
    }

    /// Hands one frame of a feed to the handler (which relays it by
    /// default).
    async fn relay<H: Handler>(
        &mut self,
        key: Option<&str>,
        frame: Result<Utf8Bytes, Lag>,
        handler: &mut H,
    ) -> Result<(), End> {
        match frame {
            Ok(frame) => match handler.feed(&mut self.out, key, frame).await {
                Flow::Continue => Ok(()),
                Flow::Close(code, reason) => Err(End::Close(code, reason)),
            },
            // Too slow to keep up: say how much was skipped (and of which
            // feed), so the client can refetch, and go on.
            Err(Lag::Skipped(skipped)) => {
                metrics::counter!("ws_frames_skipped_total", "service" => self.live.service)
                    .increment(skipped);
                let mut frame = json!({ "type": "lagged", "skipped": skipped });
                if let Some(key) = key {
                    frame["feed"] = key.into();
                }
                self.out.send(&frame).await.map_err(|Gone| End::Peer)
            }
            Err(Lag::Ended) => Err(End::Close(close_code::ERROR, "live feed ended")),
        }
    }

    /// Pings the client, or ends a session whose client went quiet.
    async fn ping(&mut self) -> Result<(), End> {
        if self.heard.elapsed() >= self.limits.ping_interval * 2 {
            metrics::counter!("ws_heartbeat_timeouts_total", "service" => self.live.service)
                .increment(1);
            return Err(End::Close(close_code::AWAY, "no heartbeat"));
        }
        self.out
            .send_message(Message::Ping(Default::default()))
            .await
            .map_err(|Gone| End::Peer)
    }

    /// Reads one client message: a parsed frame, nothing to handle, or the end.
    async fn read<F: DeserializeOwned>(
        &mut self,
        message: Option<Result<Message, axum::Error>>,
    ) -> Result<Option<F>, End> {
        self.heard = Instant::now();
        match message {
            None | Some(Err(_) | Ok(Message::Close(_))) => Err(End::Peer),
            Some(Ok(Message::Text(text))) => self.admit(text.as_str()).await,
            Some(Ok(Message::Binary(_))) => {
                Err(End::Close(close_code::UNSUPPORTED, "send JSON text frames"))
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(None),
        }
    }

    /// Checks a client frame's size and rate, and parses it.
    async fn admit<F: DeserializeOwned>(&mut self, text: &str) -> Result<Option<F>, End> {
        if text.len() > self.limits.max_message_bytes {
            return Err(End::Close(close_code::SIZE, "message too big"));
        }
        let limit = RateLimit {
            per_second: self.limits.messages_per_second,
            burst: self.limits.burst,
        };
        match self.live.cache.rate_limit(&self.rate_key, limit).await {
            Ok(decision) if !decision.allowed => {
                self.strikes += 1;
                if self.strikes > self.limits.burst {
                    return Err(End::Close(close_code::POLICY, "rate limit exceeded"));
                }
                let _ = self
                    .out
                    .send_error(ApiError::rate_limited(decision.retry_after))
                    .await;
                return Ok(None);
            }
            Ok(_) => self.strikes = 0,
            Err(error) => tracing::warn!(%error, "rate limit check failed; frame admitted"),
        }
        match serde_json::from_str::<F>(text) {
            Ok(frame) => Ok(Some(frame)),
            Err(error) => {
                let _ = self
                    .out
                    .send_error(ApiError::bad_request(format!("invalid frame: {error}")))
                    .await;
                Ok(None)
            }
        }
    }

    /// Ends the session: with our close frame, or (when the client closed or
    /// vanished) by flushing the protocol layer's answer to its close.
    async fn end(mut self, end: End) {
        let finish = async {
            match end {
                End::Close(code, reason) => {
                    let frame = CloseFrame {
                        code,
                        reason: reason.into(),
                    };
                    self.out.sink.send(Message::Close(Some(frame))).await
                }
                End::Peer => self.out.sink.close().await,
            }
        };
        let _ = tokio::time::timeout(SEND_TIMEOUT, finish).await;
    }
}

/// Why a feed gave no frame.
enum Lag {
    Skipped(u64),
    Ended,
}

impl From<broadcast::error::RecvError> for Lag {
    fn from(error: broadcast::error::RecvError) -> Self {
        match error {
            broadcast::error::RecvError::Lagged(skipped) => Lag::Skipped(skipped),
            broadcast::error::RecvError::Closed => Lag::Ended,
        }
    }
}

/// The next frame (or lag) of a feed the session may not have; a feed
/// that ended is dropped, and a missing one never yields.
async fn next(feed: &mut Option<Feed>) -> Result<Utf8Bytes, broadcast::error::RecvError> {
    if let Some(open) = feed {
        match open.recv().await {
            Err(broadcast::error::RecvError::Closed) => *feed = None,
            frame => return frame,
        }
    }
    std::future::pending().await
}

async fn still_allowed<H: Handler>(handler: &mut H, out: &mut Outbound) -> Result<(), End> {
    if handler.still_allowed(out).await {
        Ok(())
    } else {
        Err(End::Close(FORBIDDEN_CLOSE, "no longer allowed"))
    }
}
