//! `/ws/messaging/live`: one socket, many rooms. The client subscribes to
//! rooms (optionally `since` the last sequence number it saw: what it
//! missed is replayed from the room's log first, or, past a bound, it is
//! told to reload), unsubscribes, and says it is typing. Every room frame
//! carries `room_seq`; a room's frames reach the client in that order,
//! each once: replayed and live frames that overlap are dropped, and a gap
//! (another replica's change arriving late) is filled from the log.
//!
//! The caller's access is asked per room: at subscribe, on every policy
//! change, on the periodic re-check, and when the caller's microDAO
//! membership changes (the socket's own feed is `microdao.member.*`), so
//! a removed member's rooms stop at once (`unsubscribed`, reason
//! `forbidden`); the socket stays for the rest.

use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;
use axum::{
    Router,
    extract::{
        State,
        ws::{Utf8Bytes, WebSocketUpgrade},
    },
    response::Response,
    routing::get,
};
use daarion_access::{Action, Facts, Principal};
use daarion_bus::Envelope;
use daarion_kernel::ApiError;
use daarion_service::live::{Flow, Handler, Limits, Outbound};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{MessagingState, api::ChatMessageView, domain::MessagingError, events, store};

/// The microDAO service's membership changes (a live subscription to its
/// durable subjects).
const MEMBERSHIPS: &str = "microdao.member.*.*";

pub fn router() -> Router<MessagingState> {
    Router::new().route("/live", get(socket))
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum ClientFrame {
    /// Follow a room; with `since`, first replay what changed after it.
    Subscribe {
        room: String,
        #[serde(default)]
        since: Option<i64>,
    },
    Unsubscribe {
        room: String,
    },
    /// The caller is typing in a room they follow.
    Typing {
        room: String,
    },
    Heartbeat,
}

fn render_membership(event: Envelope) -> Value {
    event.payload
}

/// A room change as clients receive it, live or replayed.
fn room_frame(kind: &str, room: &str, seq: i64, message: &Value) -> Value {
    json!({ "type": "event", "kind": kind, "room": room, "room_seq": seq, "message": message })
}

fn render_change(event: Envelope) -> Value {
    let kind = event
        .subject
        .split('.')
        .nth(1)
        .unwrap_or("event")
        .to_owned();
    let room = event.payload["room"]["id"].clone();
    let mut frame = json!({
        "type": "event",
        "kind": kind,
        "room": room,
        "room_seq": event.payload["room_seq"],
        "message": event.payload["message"],
    });
    // Counts are everyone's; `mine` is each reader's: who reacted lets the
    // reactor's other screens mark it.
    if let Some(reaction) = event.payload.get("reaction") {
        frame["reaction"] = reaction.clone();
    }
    frame
}

fn render_typing(event: Envelope) -> Value {
    let mut frame = event.payload;
    frame["type"] = "typing".into();
    frame
}

/// A frame's `room_seq`, read without parsing the whole frame: the key
/// occurs once at the top level (inside strings it would be escaped).
fn seq_of(frame: &str) -> Option<i64> {
    let at = frame.find("\"room_seq\":")? + "\"room_seq\":".len();
    let digits: String = frame[at..]
        .chars()
        .skip_while(|c| *c == ' ')
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

fn limits(settings: &crate::Settings) -> Limits {
    Limits {
        max_message_bytes: settings.ws_max_message_bytes,
        messages_per_second: settings.ws_messages_per_second,
        burst: settings.ws_burst,
        ping_interval: Duration::from_secs(settings.ws_ping_secs),
        recheck: Duration::from_secs(settings.ws_recheck_secs),
        max_lifetime: Duration::from_secs(settings.ws_max_lifetime_secs),
    }
}

async fn socket(
    State(state): State<MessagingState>,
    actor: Principal,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let slot = format!("messaging:ws:{}", actor.name());
    let lifetime = Duration::from_secs(state.settings.ws_max_lifetime_secs + 60);
    let open = state
        .cache
        .incr(&slot, 1, Some(lifetime))
        .await
        .map_err(MessagingError::from)?;
    if open > i64::from(state.settings.ws_connections_per_person) {
        let _ = state.cache.incr(&slot, -1, None).await;
        return Err(ApiError::new(
            daarion_kernel::ErrorCode::RateLimited,
            format!(
                "at most {} open connections per person",
                state.settings.ws_connections_per_person
            ),
        )
        .with_retry_after(Duration::from_secs(5)));
    }
    let feed = match state.live.watch(MEMBERSHIPS, render_membership).await {
        Ok(feed) => feed,
        Err(error) => {
            let _ = state.cache.incr(&slot, -1, None).await;
            return Err(MessagingError::from(error).into());
        }
    };
    let live = state.live.clone();
    let limits = limits(&state.settings);
    let session = Rooms {
        state,
        actor: actor.clone(),
        slot,
        seen: HashMap::new(),
    };
    Ok(live.serve(upgrade, &actor, limits, feed, session))
}

/// One socket's rooms: for each, the last sequence number sent.
struct Rooms {
    state: MessagingState,
    actor: Principal,
    /// The caller's count of open sockets, in the cache.
    slot: String,
    seen: HashMap<String, i64>,
}

impl Rooms {
    async fn may_read(&self, room: &str) -> Result<bool, ApiError> {
        let Some(found) = store::room(&self.state.db, room).await? else {
            return Ok(false);
        };
        let resource = crate::access::room_of(&self.state.db, &found).await?;
        Ok(self
            .state
            .access
            .check(&self.actor, Action::Read, &resource, Facts::default())
            .await
            .is_ok())
    }

    /// Sends what changed in `room` after `since` (and records it seen);
    /// `false` when there was too much (the client is told to reload).
    async fn replay(
        &mut self,
        out: &mut Outbound,
        room: &str,
        since: i64,
    ) -> Result<bool, ApiError> {
        let bound = self.state.settings.ws_replay_max;
        let Some(changes) = store::changes(&self.state.db, room, since, bound).await? else {
            return Ok(false);
        };
        let ids: Vec<String> = changes.iter().map(|(_, _, m)| m.id.clone()).collect();
        let reactions = store::reactions(&self.state.db, &ids, &self.actor.name()).await?;
        for (seq, kind, message) in changes {
            let kind = match kind.as_str() {
                "posted" => "received",
                other => other,
            }
            .to_owned();
            let view =
                serde_json::to_value(ChatMessageView::of(message, &reactions)).unwrap_or_default();
            if out
                .send(&room_frame(&kind, room, seq, &view))
                .await
                .is_err()
            {
                return Ok(true);
            }
            self.seen.insert(room.to_owned(), seq);
        }
        Ok(true)
    }

    async fn subscribe(
        &mut self,
        out: &mut Outbound,
        room: String,
        since: Option<i64>,
    ) -> Result<(), ApiError> {
        if !room.starts_with("rm_") || room.len() > 64 || !self.may_read(&room).await? {
            return Err(ApiError::forbidden(format!("you may not read {room}")));
        }
        if !self.seen.contains_key(&room)
            && self.seen.len() >= self.state.settings.ws_rooms_per_connection
        {
            return Err(ApiError::validation(format!(
                "at most {} rooms per connection",
                self.state.settings.ws_rooms_per_connection
            )));
        }
        // Live first, so nothing published from here on is missed; what
        // overlaps the replay is dropped by its sequence number.
        let changes = self
            .state
            .live
            .watch(&events::subject("*", &room), render_change)
            .await
            .map_err(MessagingError::from)?;
        let typing = self
            .state
            .live
            .watch(&events::typing(&room), render_typing)
            .await
            .map_err(MessagingError::from)?;
        out.follow(&room, changes);
        out.follow(&format!("typing:{room}"), typing);
        let current = store::room(&self.state.db, &room)
            .await?
            .map_or(0, |r| r.last_seq);
        let seen = match since {
            Some(since) if since < current => {
                if self.replay(out, &room, since).await? {
                    // The replay went at least as far as `current`.
                    self.seen.get(&room).copied().unwrap_or(current)
                } else {
                    let _ = out
                        .send(&json!({ "type": "reset", "room": room, "last_seq": current,
                            "reason": "too far behind: reload the room's history" }))
                        .await;
                    current
                }
            }
            _ => current,
        };
        self.seen.insert(room.clone(), seen);
        let _ = out
            .send(&json!({ "type": "subscribed", "room": room, "last_seq": current }))
            .await;
        Ok(())
    }

    fn unsubscribe(&mut self, out: &mut Outbound, room: &str) -> bool {
        out.unfollow(&format!("typing:{room}"));
        out.unfollow(room);
        self.seen.remove(room).is_some()
    }

    /// Drops the rooms the caller may no longer read.
    async fn drop_forbidden(&mut self, out: &mut Outbound) {
        let rooms: Vec<String> = self.seen.keys().cloned().collect();
        for room in rooms {
            // A store failure keeps the room; the next re-check asks again.
            if let Ok(false) = self.may_read(&room).await {
                self.unsubscribe(out, &room);
                let _ = out
                    .send(&json!({ "type": "unsubscribed", "room": room, "reason": "forbidden" }))
                    .await;
            }
        }
    }

    /// A room frame, in order: a repeat is dropped, a gap filled first.
    async fn room_frame(&mut self, out: &mut Outbound, room: &str, frame: Utf8Bytes) -> Flow {
        let Some(seq) = seq_of(frame.as_str()) else {
            return Flow::Continue;
        };
        let last = self.seen.get(room).copied().unwrap_or(0);
        if seq <= last {
            return Flow::Continue;
        }
        if seq > last + 1 {
            match self.replay(out, room, last).await {
                Ok(true) => return Flow::Continue,
                Ok(false) => {
                    let _ = out
                        .send(&json!({ "type": "reset", "room": room, "last_seq": seq,
                            "reason": "too far behind: reload the room's history" }))
                        .await;
                    self.seen.insert(room.to_owned(), seq);
                    return Flow::Continue;
                }
                Err(error) => tracing::warn!(%error, room, "gap not filled; relaying as it comes"),
            }
        }
        self.seen.insert(room.to_owned(), seq);
        match out.send_text(frame).await {
            Ok(()) => Flow::Continue,
            Err(_) => Flow::Close(axum::extract::ws::close_code::AWAY, "client gone"),
        }
    }

    /// The caller's microDAO roles as a membership event says they now are.
    fn apply_membership(&mut self, change: &Value) -> bool {
        let (Some(principal), Some(dao)) = (change["principal"].as_str(), change["dao"].as_str())
        else {
            return false;
        };
        if principal != self.actor.name() {
            return false;
        }
        let prefix = format!("dao:{dao}:");
        self.actor.roles.retain(|r| !r.starts_with(&prefix));
        if let Some(role) = change["role"].as_str() {
            self.actor.roles.push(format!("{prefix}{role}"));
        }
        true
    }
}

#[async_trait]
impl Handler for Rooms {
    type Frame = ClientFrame;

    async fn received(&mut self, out: &mut Outbound, frame: ClientFrame) -> Flow {
        let result = match frame {
            ClientFrame::Subscribe { room, since } => self.subscribe(out, room, since).await,
            ClientFrame::Unsubscribe { room } => {
                if self.unsubscribe(out, &room) {
                    let _ = out
                        .send(&json!({ "type": "unsubscribed", "room": room }))
                        .await;
                }
                Ok(())
            }
            ClientFrame::Typing { room } if self.seen.contains_key(&room) => {
                let event = events::typing_event(&room, &self.actor);
                if let Err(error) = self.state.bus.publish(&event).await {
                    tracing::warn!(%error, "typing not published");
                }
                Ok(())
            }
            ClientFrame::Typing { room } => Err(ApiError::bad_request(format!(
                "subscribe to {room} before typing in it"
            ))),
            ClientFrame::Heartbeat => Ok(()),
        };
        if let Err(error) = result {
            let _ = out.send_error(error).await;
        }
        Flow::Continue
    }

    async fn feed(&mut self, out: &mut Outbound, key: Option<&str>, frame: Utf8Bytes) -> Flow {
        match key {
            None => {
                let change: Value = serde_json::from_str(frame.as_str()).unwrap_or_default();
                if self.apply_membership(&change) {
                    self.drop_forbidden(out).await;
                }
                Flow::Continue
            }
            Some(key) if key.starts_with("typing:") => match out.send_text(frame).await {
                Ok(()) => Flow::Continue,
                Err(_) => Flow::Close(axum::extract::ws::close_code::AWAY, "client gone"),
            },
            Some(room) => {
                let room = room.to_owned();
                self.room_frame(out, &room, frame).await
            }
        }
    }

    async fn still_allowed(&mut self, out: &mut Outbound) -> bool {
        self.drop_forbidden(out).await;
        true
    }

    async fn closed(&mut self) {
        let _ = self.state.cache.incr(&self.slot, -1, None).await;
    }
}

#[cfg(test)]
mod tests {
    use super::seq_of;

    #[test]
    fn the_sequence_number_is_read_from_the_top_level() {
        let frame = r#"{"kind":"edited","message":{"body":"\"room_seq\":1","seq":3},"room":"rm_1","room_seq":42,"type":"event"}"#;
        assert_eq!(seq_of(frame), Some(42));
        assert_eq!(seq_of(r#"{"type":"typing"}"#), None);
    }
}
