//! What the city publishes; it consumes nothing. Room and message events
//! are durable (staged with their data, the outbox relays them): agents
//! answer `city.message.created.<slug>`, and every replica's sockets relay
//! it live. Presence events are live-only. Each new message also carries
//! its usage record (`usage.message`, charged to the author).

use daarion_access::Principal;
use daarion_bus::Envelope;
use daarion_usage::{Outcome, Subjects, UsageKind, UsageRecord};

use crate::{
    SERVICE,
    api::MessageView,
    domain::{Room, Slug},
};

pub const ROOM_CREATED: &str = "city.room.created.*";
pub const MESSAGE_CREATED: &str = "city.message.created.*";
pub const PRESENCE: &str = "presence.city.*";

/// Where a room's new messages are published.
pub fn messages_of(slug: &Slug) -> String {
    format!("city.message.created.{}", slug.as_str())
}

pub fn room_created(room: &Room, actor: &str) -> Envelope {
    Envelope::new(
        SERVICE,
        format!("city.room.created.{}", room.slug),
        serde_json::json!({ "id": room.id, "slug": room.slug, "title": room.title }),
    )
    .with_actor(actor)
}

/// A new message, and its usage record.
pub fn message_created(slug: &Slug, message: &MessageView, author: &Principal) -> [Envelope; 2] {
    let payload = serde_json::to_value(message).unwrap_or_default();
    let record =
        UsageRecord::new(UsageKind::Message, Outcome::Ok).by(author, &Subjects::of(author));
    [
        Envelope::new(SERVICE, messages_of(slug), payload).with_actor(author.handle.clone()),
        daarion_usage::event(SERVICE, &record),
    ]
}

/// `join`, `heartbeat` or `leave` of `user`.
pub fn presence(kind: &str, user: &str, reason: Option<&str>) -> Envelope {
    let mut payload = serde_json::json!({ "user": user });
    if let Some(reason) = reason {
        payload["reason"] = reason.into();
    }
    Envelope::new(SERVICE, format!("presence.city.{kind}"), payload).with_actor(user)
}
