//! WebSocket sessions: a room's live messages, and presence.
//!
//! Client frames are JSON text. Bad frames get an error frame and the
//! session goes on; an oversized frame closes with 1009, a flood with 1008,
//! a binary frame with 1003, server shutdown with 1001.

use std::{future::Future, time::Duration};

use axum::{
    Router,
    extract::{
        Path, State,
        ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code},
    },
    response::Response,
    routing::get,
};
use daarion_access::{Action, Facts, Principal};
use daarion_bus::Envelope;
use daarion_cache::RateLimit;
use daarion_kernel::{ApiError, RequestContext, metrics::ConnectionGuard};
use futures::{SinkExt, StreamExt, stream::SplitSink};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::{
    CityState, SERVICE,
    domain::{CityError, Slug},
    presence,
};

/// Starting size of a socket's read and write buffers.
const SOCKET_BUFFER: usize = 4 * 1024;

/// A client that does not read its messages for this long is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

pub fn router() -> Router<CityState> {
    Router::new()
        .route("/rooms/{slug}", get(room_socket))
        .route("/presence", get(presence_socket))
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientFrame {
    /// Post a message; `ref` is echoed in the acknowledgement.
    Message {
        body: String,
        #[serde(default, rename = "ref")]
        reference: Option<String>,
    },
    Heartbeat,
}

async fn room_socket(
    State(state): State<CityState>,
    Path(slug): Path<String>,
    actor: Principal,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    // The enforcement layer has found the room (or answered 404).
    let slug = Slug::parse(&slug).map_err(|_| CityError::RoomNotFound(slug))?;
    // Subscribe before upgrading, so nothing posted after the 101 is missed.
    let subject = format!("city.message.created.{}", slug.as_str());
    let live = state
        .hub
        .watch(&state.bus, &subject, render_message, &state.shutdown)
        .await
        .map_err(CityError::from)?;
    Ok(start(state, upgrade, actor, move |session| {
        session.run_room(slug, live)
    }))
}

#[derive(Debug, Default, Deserialize)]
struct PresenceParams {
    /// Watch who comes and goes without being present yourself.
    #[serde(default)]
    observe: bool,
}

async fn presence_socket(
    State(state): State<CityState>,
    actor: Principal,
    daarion_kernel::http::Query(params): daarion_kernel::http::Query<PresenceParams>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let live = state
        .hub
        .watch(
            &state.bus,
            presence::SUBJECTS,
            render_presence,
            &state.shutdown,
        )
        .await
        .map_err(CityError::from)?;
    Ok(start(state, upgrade, actor, move |session| {
        session.run_presence(live, !params.observe)
    }))
}

fn render_message(event: Envelope) -> Value {
    json!({ "type": "message", "message": event.payload })
}

fn render_presence(event: Envelope) -> Value {
    let kind = event
        .subject
        .rsplit('.')
        .next()
        .unwrap_or("event")
        .to_owned();
    let mut frame = event.payload;
    frame["type"] = kind.into();
    frame["time"] = event.time.into();
    frame
}

/// Upgrades to a tracked session that runs `run` in the request's context.
fn start<F, Fut>(state: CityState, upgrade: WebSocketUpgrade, actor: Principal, run: F) -> Response
where
    F: FnOnce(Session) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    // Captured here: the upgrade runs in a new task, outside the request's scope.
    let ctx = RequestContext::current_or_generate();
    // The protocol layer's hard cap sits above the configured limit, so an
    // oversized message reaches us and gets a proper 1009 close.
    let hard_cap = state.settings.ws_max_message_bytes.saturating_mul(4);
    // Small starting buffers: tungstenite's default 128 KiB each would cost
    // that much memory per idle socket; they grow for large frames.
    upgrade
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
        .max_message_size(hard_cap)
        .max_frame_size(hard_cap)
        .on_upgrade(move |socket| {
            let session = Session::new(state.clone(), socket, actor);
            state.tasks.track_future(ctx.scope(run(session)))
        })
}

enum Flow {
    Continue,
    /// We end the session with this close code.
    Close(u16, &'static str),
    /// The client closed (or vanished); its close was answered by the protocol layer.
    PeerClosed,
}

struct Session {
    state: CityState,
    sink: SplitSink<WebSocket, Message>,
    incoming: futures::stream::SplitStream<WebSocket>,
    actor: Principal,
    rate_key: String,
    /// Identifies this connection among the user's others (presence).
    connection: String,
    strikes: u32,
    _guard: ConnectionGuard,
}

impl Session {
    fn new(state: CityState, socket: WebSocket, actor: Principal) -> Self {
        let (sink, incoming) = socket.split();
        let connection = uuid::Uuid::new_v4().simple().to_string();
        let rate_key = format!("city:ws-rate:{}", actor.name());
        metrics::counter!("city_ws_sessions_total").increment(1);
        Self {
            state,
            sink,
            incoming,
            actor,
            rate_key,
            connection,
            strikes: 0,
            _guard: ConnectionGuard::new(SERVICE),
        }
    }

    async fn send(&mut self, value: &Value) -> Result<(), ()> {
        self.send_frame(value.to_string().into()).await
    }

    async fn send_frame(&mut self, frame: Utf8Bytes) -> Result<(), ()> {
        match tokio::time::timeout(SEND_TIMEOUT, self.sink.send(Message::Text(frame))).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(()),
        }
    }

    /// Relays one frame of the live feed.
    async fn relay(
        &mut self,
        frame: Result<Utf8Bytes, broadcast::error::RecvError>,
    ) -> Result<Flow, ()> {
        match frame {
            Ok(frame) => self.send_frame(frame).await.map(|()| Flow::Continue),
            // Too slow to keep up: say how much was skipped, so the client can
            // refetch history, and go on.
            Err(broadcast::error::RecvError::Lagged(skipped)) => {
                metrics::counter!("city_ws_frames_skipped_total").increment(skipped);
                self.send(&json!({ "type": "lagged", "skipped": skipped }))
                    .await
                    .map(|()| Flow::Continue)
            }
            Err(broadcast::error::RecvError::Closed) => {
                Ok(Flow::Close(close_code::ERROR, "live feed ended"))
            }
        }
    }

    async fn send_error(&mut self, error: ApiError) -> Result<(), ()> {
        let mut frame = error.body();
        frame["type"] = "error".into();
        self.send(&frame).await
    }

    /// Ends the session: with our close frame, or (when the client closed or
    /// vanished) by flushing the protocol layer's answer to its close.
    async fn end(mut self, close: Option<(u16, &'static str)>) {
        let finish = async {
            match close {
                Some((code, reason)) => {
                    let frame = CloseFrame {
                        code,
                        reason: reason.into(),
                    };
                    self.sink.send(Message::Close(Some(frame))).await
                }
                None => self.sink.close().await,
            }
        };
        let _ = tokio::time::timeout(SEND_TIMEOUT, finish).await;
    }

    /// Checks size and rate of a client frame and parses it.
    async fn admit(&mut self, text: &str) -> Result<Option<ClientFrame>, Flow> {
        if text.len() > self.state.settings.ws_max_message_bytes {
            return Err(Flow::Close(close_code::SIZE, "message too big"));
        }
        let limit = RateLimit {
            per_second: self.state.settings.ws_messages_per_second,
            burst: self.state.settings.ws_burst,
        };
        match self.state.cache.rate_limit(&self.rate_key, limit).await {
            Ok(decision) if !decision.allowed => {
                self.strikes += 1;
                if self.strikes > self.state.settings.ws_burst {
                    return Err(Flow::Close(close_code::POLICY, "rate limit exceeded"));
                }
                let _ = self
                    .send_error(ApiError::rate_limited(decision.retry_after))
                    .await;
                return Ok(None);
            }
            Ok(_) => self.strikes = 0,
            Err(error) => tracing::warn!(%error, "rate limit check failed; frame admitted"),
        }
        match serde_json::from_str::<ClientFrame>(text) {
            Ok(frame) => Ok(Some(frame)),
            Err(error) => {
                let _ = self
                    .send_error(ApiError::bad_request(format!("invalid frame: {error}")))
                    .await;
                Ok(None)
            }
        }
    }

    /// Reads one client message; `None` ends the session quietly.
    async fn read(
        &mut self,
        message: Option<Result<Message, axum::Error>>,
    ) -> Result<Option<ClientFrame>, Flow> {
        match message {
            None | Some(Err(_)) | Some(Ok(Message::Close(_))) => Err(Flow::PeerClosed),
            Some(Ok(Message::Text(text))) => self.admit(text.as_str()).await,
            Some(Ok(Message::Binary(_))) => Err(Flow::Close(
                close_code::UNSUPPORTED,
                "send JSON text frames",
            )),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(None),
        }
    }

    async fn run_room(mut self, slug: Slug, mut live: broadcast::Receiver<Utf8Bytes>) {
        let end = loop {
            let flow = tokio::select! {
                biased;
                () = self.state.shutdown.cancelled() => Flow::Close(close_code::AWAY, "server shutting down"),
                frame = live.recv() => match self.relay(frame).await {
                    Ok(flow) => flow,
                    Err(()) => break None,
                },
                incoming = self.incoming.next() => match self.read(incoming).await {
                    Ok(Some(frame)) => self.on_room_frame(&slug, frame).await,
                    Ok(None) => Flow::Continue,
                    Err(flow) => flow,
                },
            };
            match flow {
                Flow::Continue => {}
                Flow::Close(code, reason) => break Some((code, reason)),
                Flow::PeerClosed => break None,
            }
        };
        self.end(end).await;
    }

    async fn on_room_frame(&mut self, slug: &Slug, frame: ClientFrame) -> Flow {
        let ClientFrame::Message { body, reference } = frame else {
            return Flow::Continue;
        };
        // Reading the room was decided at connect; sending is decided per message.
        let room = crate::access::room_resource(slug);
        let decision = self
            .state
            .access
            .check(&self.actor, Action::SendMessage, &room, Facts::default())
            .await;
        if let Err(error) = decision {
            let _ = self.send_error(error).await;
            return Flow::Continue;
        }
        match crate::post_message(&self.state, slug, &self.actor, &body, None).await {
            Ok((message, _)) => {
                let _ = self
                    .send(&json!({ "type": "ack", "ref": reference, "message": message }))
                    .await;
            }
            Err(error) => {
                let _ = self.send_error(ApiError::from(error)).await;
            }
        }
        Flow::Continue
    }

    async fn run_presence(mut self, mut live: broadcast::Receiver<Utf8Bytes>, present: bool) {
        let users = presence::present(&self.state).await.unwrap_or_default();
        if self
            .send(&json!({ "type": "snapshot", "users": users }))
            .await
            .is_err()
        {
            return;
        }
        let who = self.actor.handle.clone();
        if present
            && let Err(error) = presence::heartbeat(&self.state, &who, &self.connection).await
        {
            tracing::warn!(%error, "presence join failed");
        }
        let end = loop {
            let flow = tokio::select! {
                biased;
                () = self.state.shutdown.cancelled() => Flow::Close(close_code::AWAY, "server shutting down"),
                frame = live.recv() => match self.relay(frame).await {
                    Ok(flow) => flow,
                    Err(()) => break None,
                },
                incoming = self.incoming.next() => match self.read(incoming).await {
                    Ok(Some(ClientFrame::Heartbeat)) => {
                        if !present {
                            let _ = self.send_error(ApiError::bad_request("observers do not heartbeat; connect without ?observe to be present")).await;
                        } else if let Err(error) = presence::heartbeat(&self.state, &who, &self.connection).await {
                            let _ = self.send_error(ApiError::from(error)).await;
                        }
                        Flow::Continue
                    }
                    Ok(Some(ClientFrame::Message { .. })) => {
                        let _ = self.send_error(ApiError::bad_request("post messages to a room socket")).await;
                        Flow::Continue
                    }
                    Ok(None) => Flow::Continue,
                    Err(flow) => flow,
                },
            };
            match flow {
                Flow::Continue => {}
                Flow::Close(code, reason) => break Some((code, reason)),
                Flow::PeerClosed => break None,
            }
        };
        if present && let Err(error) = presence::leave(&self.state, &who, &self.connection).await {
            tracing::warn!(%error, "presence leave failed");
        }
        self.end(end).await;
    }
}
