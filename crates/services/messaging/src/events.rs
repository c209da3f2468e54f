//! What messaging publishes and consumes. Every change to a room's
//! messages is durable on the `MESSAGES` stream, staged with its data:
//! `message.received.<room>` for a new message (the agent platform and the
//! city feed read it), `message.edited|deleted|reacted.<room>` for the
//! rest, each with the room's sequence number, and `message.mention.<agent>`
//! for each agent a message names. A new message carries its usage record.
//! It consumes the microDAO service's `microdao.dao.*` events: every
//! microDAO gets its `general` room (and, with an orchestrator,
//! `governance` and `crew`, the orchestrator answering in `general`), and
//! an archived one's rooms close.

use daarion_access::Principal;
use daarion_bus::{Envelope, HandlerError};
use daarion_usage::{Outcome, Subjects, UsageKind, UsageRecord};
use serde::Deserialize;
use serde_json::json;

use crate::{
    SERVICE,
    domain::{self, Room, RoomKind},
    store::{self, Change, Message, NewRoom},
};

/// Every event messaging publishes on `MESSAGES`.
pub const CHANGED: &str = "message.*.*";
pub const DAO_CHANGED: &str = "microdao.dao.*.*";

/// Who is typing where: live only (outside every stream).
pub const TYPING: &str = "typing.messaging.*";

pub fn typing(room: &str) -> String {
    format!("typing.messaging.{room}")
}

pub fn typing_event(room: &str, who: &Principal) -> Envelope {
    Envelope::new(
        SERVICE,
        typing(room),
        json!({ "room": room, "who": who.name(), "handle": who.handle }),
    )
    .with_actor(who.handle.clone())
}

/// Where a room's changes are published (`received`, `edited`, ...).
pub fn subject(what: &str, room: &str) -> String {
    format!("message.{what}.{room}")
}

fn room_summary(room: &Room) -> serde_json::Value {
    json!({ "id": room.id, "kind": room.kind.as_str(), "dao": room.dao, "slug": room.slug,
        "responder": room.responder })
}

/// A new message: its event, one per mentioned agent, and its usage record.
pub fn received(
    room: &Room,
    message: &Message,
    view: serde_json::Value,
    author: &Principal,
) -> Vec<Envelope> {
    let payload = json!({ "room_seq": message.seq, "room": room_summary(room), "message": view });
    let mut events = vec![
        Envelope::new(SERVICE, subject("received", &room.id), payload.clone())
            .with_actor(author.handle.clone()),
    ];
    for agent in domain::mentioned_agents(&message.mentions) {
        let safe = agent
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if safe {
            events.push(
                Envelope::new(SERVICE, format!("message.mention.{agent}"), payload.clone())
                    .with_actor(author.handle.clone()),
            );
        }
    }
    let mut subjects = Subjects::of(author);
    if let (RoomKind::Dao, Some(dao)) = (room.kind, room.dao.as_deref()) {
        subjects.dao = Some(dao.to_owned());
    }
    let record = UsageRecord::new(UsageKind::Message, Outcome::Ok).by(author, &subjects);
    events.push(daarion_usage::event(SERVICE, &record));
    events
}

/// An edit, a deletion or a reaction.
pub fn changed(
    change: Change,
    seq: i64,
    room: &str,
    view: serde_json::Value,
    actor: &str,
) -> Envelope {
    Envelope::new(
        SERVICE,
        subject(change.as_str(), room),
        json!({ "room_seq": seq, "room": { "id": room }, "message": view }),
    )
    .with_actor(actor)
}

/// A reaction given or taken back: everyone's counts, and who did what
/// (`reaction`), so that the reactor's other screens mark theirs.
pub fn reacted(
    seq: i64,
    room: &str,
    view: serde_json::Value,
    who: &Principal,
    (emoji, added): (&str, bool),
) -> Envelope {
    let mut event = changed(Change::Reacted, seq, room, view, &who.handle);
    event.payload["reaction"] = json!({ "by": who.name(), "emoji": emoji, "added": added });
    event
}

/// A new room (`message.room.<id>`): the city feed and the map follow
/// rooms opening.
pub fn room_created(room: &Room, by: &str) -> Envelope {
    let mut summary = room_summary(room);
    summary["title"] = room.title.clone().into();
    Envelope::new(SERVICE, subject("room", &room.id), summary).with_actor(by)
}

/// What the microDAO service says of a microDAO.
#[derive(Debug, Deserialize)]
struct DaoChanged {
    slug: String,
    visibility: String,
    archived: bool,
    #[serde(default)]
    orchestrator: Option<String>,
}

/// The `general` room every microDAO gets.
pub fn general_room(dao: &str) -> NewRoom {
    dao_room(dao, "general", "General", "Everyone in the community.")
}

fn dao_room(dao: &str, slug: &str, title: &str, description: &str) -> NewRoom {
    NewRoom {
        kind: RoomKind::Dao,
        key: Some(domain::dao_room_key(dao, slug)),
        dao: Some(dao.to_owned()),
        slug: Some(slug.into()),
        title: title.into(),
        description: description.into(),
        audience: None,
        posters: None,
        agents_allowed: true,
        slow_mode_secs: 0,
        participants: Vec::new(),
    }
}

/// The rooms of a microDAO: `general` for every one; with an
/// orchestrator (the original's agent-centric microDAOs), `governance`
/// and `crew` beside it.
pub fn dao_rooms(dao: &str, orchestrated: bool) -> Vec<NewRoom> {
    let mut rooms = vec![general_room(dao)];
    if orchestrated {
        rooms.push(dao_room(
            dao,
            "governance",
            "Governance",
            "Proposals and decisions.",
        ));
        rooms.push(dao_room(
            dao,
            "crew",
            "Crew",
            "Where the community's agents work together.",
        ));
    }
    rooms
}

/// The `messaging-daos` consumer: records the microDAO and opens (or
/// closes) its rooms. Idempotent, so redeliveries are harmless; a payload
/// that is not a microDAO is retried, then dead-lettered.
pub async fn on_dao_changed(db: daarion_store::Db, event: Envelope) -> Result<(), HandlerError> {
    let dao: DaoChanged = serde_json::from_value(event.payload)
        .map_err(|e| HandlerError::new(format!("not a microDAO event: {e}")))?;
    domain::slug(&dao.slug).map_err(HandlerError::new)?;
    store::record_dao(
        &db,
        &dao.slug,
        dao.visibility == "public",
        dao.archived,
        &dao_rooms(&dao.slug, dao.orchestrator.is_some()),
        dao.orchestrator.as_deref(),
    )
    .await
    .map_err(HandlerError::new)
}
