//! WebSocket sessions: a room's live messages (and posting), presence,
//! and the feed (new entries, and agents' presence changing).
//! The session loop, limits, heartbeats and close codes are the kit's
//! (`daarion_service::live`); here is what a client may send on each.

use std::time::Duration;

use async_trait::async_trait;
use axum::{
    Router,
    extract::{Path, State, ws::WebSocketUpgrade},
    response::Response,
    routing::get,
};
use daarion_access::{Action, Facts, Principal, Resource};
use daarion_bus::Envelope;
use daarion_kernel::ApiError;
use daarion_service::live::{Flow, Gone, Handler, Limits, Outbound};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{
    CityState, Settings,
    domain::{CityError, Slug},
    events, presence,
};

pub fn router() -> Router<CityState> {
    Router::new()
        .route("/rooms/{slug}", get(room_socket))
        .route("/presence", get(presence_socket))
        .route("/feed", get(feed_socket))
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

fn limits(settings: &Settings) -> Limits {
    Limits {
        max_message_bytes: settings.ws_max_message_bytes,
        messages_per_second: settings.ws_messages_per_second,
        burst: settings.ws_burst,
        ping_interval: Duration::from_secs(settings.ws_ping_secs),
        recheck: Duration::from_secs(settings.ws_recheck_secs),
        max_lifetime: Duration::from_secs(settings.ws_max_lifetime_secs),
    }
}

async fn room_socket(
    State(state): State<CityState>,
    Path(slug): Path<String>,
    actor: Principal,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    // The enforcement layer has found the room (or answered 404).
    let slug = Slug::parse(&slug).map_err(|_| CityError::RoomNotFound(slug))?;
    let room = crate::store::chat_room(&state.db, &slug).await?;
    let feed = state
        .live
        .watch(
            &daarion_messaging::events::subject("received", &room.id),
            render_message,
        )
        .await
        .map_err(CityError::from)?;
    let limits = limits(&state.settings);
    let live = state.live.clone();
    let room = Room {
        state,
        actor: actor.clone(),
        slug,
    };
    Ok(live.serve(upgrade, &actor, limits, feed, room))
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
    let feed = state
        .live
        .watch(events::PRESENCE, render_presence)
        .await
        .map_err(CityError::from)?;
    let limits = limits(&state.settings);
    let live = state.live.clone();
    let presence = Presence {
        state,
        who: actor.handle.clone(),
        // Identifies this connection among the user's others.
        connection: uuid::Uuid::new_v4().simple().to_string(),
        present: !params.observe,
        actor: actor.clone(),
    };
    Ok(live.serve(upgrade, &actor, limits, feed, presence))
}

async fn feed_socket(
    State(state): State<CityState>,
    actor: Principal,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let feed = state
        .live
        .watch(crate::feed::LIVE, render_entry)
        .await
        .map_err(CityError::from)?;
    let agents = state
        .live
        .watch(crate::agents::LIVE, render_agent)
        .await
        .map_err(CityError::from)?;
    let limits = limits(&state.settings);
    let live = state.live.clone();
    let reader = FeedReader {
        state,
        actor: actor.clone(),
        agents: Some(agents),
    };
    Ok(live.serve(upgrade, &actor, limits, feed, reader))
}

fn render_entry(event: Envelope) -> Value {
    json!({ "type": "entry", "entry": event.payload })
}

fn render_agent(event: Envelope) -> Value {
    let mut frame = event.payload;
    frame["type"] = "agent".into();
    frame["time"] = event.time.into();
    frame
}

/// A message of messaging's `message.received` event, in the city's shape.
fn render_message(event: Envelope) -> Value {
    let (room, message) = (&event.payload["room"], &event.payload["message"]);
    json!({ "type": "message", "message": {
        "id": message["id"],
        "room": room["slug"],
        "author": message["author_handle"],
        "body": message["body"],
        "created_at": message["created_at"],
    }})
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

/// Whether the policies, as they are now, still let `actor` read what a
/// socket streams.
async fn may_read(state: &CityState, actor: &Principal, resource: &Resource) -> bool {
    state
        .access
        .check(actor, Action::Read, resource, Facts::default())
        .await
        .is_ok()
}

/// A room socket: its client posts messages.
struct Room {
    state: CityState,
    actor: Principal,
    slug: Slug,
}

#[async_trait]
impl Handler for Room {
    type Frame = ClientFrame;

    async fn received(&mut self, out: &mut Outbound, frame: ClientFrame) -> Flow {
        let ClientFrame::Message { body, reference } = frame else {
            return Flow::Continue;
        };
        // Reading the room was decided at connect; sending is decided per message.
        let room = crate::access::room_resource(&self.slug);
        let decision = self
            .state
            .access
            .check(&self.actor, Action::SendMessage, &room, Facts::default())
            .await;
        if let Err(error) = decision {
            let _ = out.send_error(error).await;
            return Flow::Continue;
        }
        match crate::post_message(&self.state, &self.slug, &self.actor, &body, None).await {
            Ok((message, _)) => {
                let _ = out
                    .send(&json!({ "type": "ack", "ref": reference, "message": message }))
                    .await;
            }
            Err(error) => {
                let _ = out.send_error(ApiError::from(error)).await;
            }
        }
        Flow::Continue
    }

    async fn still_allowed(&mut self, _out: &mut Outbound) -> bool {
        let room = crate::access::room_resource(&self.slug);
        may_read(&self.state, &self.actor, &room).await
    }
}

/// A presence socket: present (joins, heartbeats, leaves) or observing.
struct Presence {
    state: CityState,
    actor: Principal,
    who: String,
    connection: String,
    present: bool,
}

#[async_trait]
impl Handler for Presence {
    type Frame = ClientFrame;

    async fn opened(&mut self, out: &mut Outbound) -> Result<(), Gone> {
        let users = presence::present(&self.state).await.unwrap_or_default();
        out.send(&json!({ "type": "snapshot", "users": users }))
            .await?;
        if self.present
            && let Err(error) = presence::heartbeat(&self.state, &self.who, &self.connection).await
        {
            tracing::warn!(%error, "presence join failed");
        }
        Ok(())
    }

    async fn received(&mut self, out: &mut Outbound, frame: ClientFrame) -> Flow {
        let refused = match frame {
            ClientFrame::Heartbeat if !self.present => Some(ApiError::bad_request(
                "observers do not heartbeat; connect without ?observe to be present",
            )),
            ClientFrame::Heartbeat => presence::heartbeat(&self.state, &self.who, &self.connection)
                .await
                .err()
                .map(ApiError::from),
            ClientFrame::Message { .. } => {
                Some(ApiError::bad_request("post messages to a room socket"))
            }
        };
        if let Some(error) = refused {
            let _ = out.send_error(error).await;
        }
        Flow::Continue
    }

    async fn still_allowed(&mut self, _out: &mut Outbound) -> bool {
        may_read(&self.state, &self.actor, &Resource::city()).await
    }

    async fn closed(&mut self) {
        if self.present
            && let Err(error) = presence::leave(&self.state, &self.who, &self.connection).await
        {
            tracing::warn!(%error, "presence leave failed");
        }
    }
}

/// A feed socket: it only listens.
struct FeedReader {
    state: CityState,
    actor: Principal,
    /// Agents' presence, followed beside the feed once the socket opens.
    agents: Option<daarion_service::live::Feed>,
}

#[async_trait]
impl Handler for FeedReader {
    type Frame = ClientFrame;

    async fn opened(&mut self, out: &mut Outbound) -> Result<(), Gone> {
        if let Some(agents) = self.agents.take() {
            out.follow("agents", agents);
        }
        Ok(())
    }

    async fn received(&mut self, out: &mut Outbound, _frame: ClientFrame) -> Flow {
        let _ = out
            .send_error(ApiError::bad_request("the feed socket only sends"))
            .await;
        Flow::Continue
    }

    async fn still_allowed(&mut self, _out: &mut Outbound) -> bool {
        may_read(&self.state, &self.actor, &Resource::city()).await
    }
}
