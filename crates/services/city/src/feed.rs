//! The city feed: what happens in public, newest first. Two durable
//! consumers read it off the bus — messaging's `message.*.*` (messages of
//! public rooms, agents' replies among them, and rooms opening) and the
//! microDAO service's `microdao.dao.*.*` (public communities) — and store
//! one entry per event, idempotently by event id. An edit rewrites its
//! entry's excerpt and a deletion removes the entry, so the feed never
//! keeps words their author took back. Each new entry also goes out live
//! on `feed.city` to every replica's feed sockets. Entries older than
//! `city.feed_retention_days` are pruned.

use std::time::Duration;

use daarion_bus::{Envelope, HandlerError};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{CityState, SERVICE, domain::CityError, store};

/// Live: each new entry of the feed.
pub const LIVE: &str = "feed.city";
/// What the feed reads.
pub const MESSAGES: &str = "message.*.*";
pub const DAOS: &str = "microdao.dao.*.*";

/// How much of a message the feed shows.
pub const EXCERPT_CHARS: usize = 280;

daarion_kernel::named_enum!(FeedKind {
    /// A person's message in a public room.
    RoomMessage => "room_message",
    /// An agent's message in a public room.
    AgentReply => "agent_reply",
    /// The city itself: a room opened, the map changed.
    System => "system",
    /// A public community was founded, changed or archived.
    DaoEvent => "dao_event",
});

/// One entry of the feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its place in the feed (pages go by it).
    pub seq: i64,
    pub event_id: String,
    pub kind: FeedKind,
    /// What happened, in a word: `message`, `room_opened`, `dao_created`...
    pub what: String,
    /// What it is about: a message id, a room id, a microDAO slug.
    pub subject: String,
    /// Who did it: a username or `agent:<id>`.
    pub actor: String,
    /// The public room's slug, where there is one.
    pub room: Option<String>,
    /// The community's slug, where there is one.
    pub dao: Option<String>,
    /// A message's excerpt, a room's title, a community's name.
    pub text: String,
    pub created_at: String,
}

/// What an event does to the feed.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    Add(Entry),
    Rewrite { message: String, text: String },
    Remove { message: String },
    Nothing,
}

fn excerpt(body: &str) -> String {
    let body = body.trim();
    match body.char_indices().nth(EXCERPT_CHARS) {
        Some((end, _)) => format!("{}…", body[..end].trim_end()),
        None => body.to_owned(),
    }
}

fn text(value: &serde_json::Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

fn entry(event: &Envelope, kind: FeedKind, what: &str, subject: String, text: String) -> Entry {
    Entry {
        seq: 0,
        event_id: event.id.clone(),
        kind,
        what: what.to_owned(),
        subject,
        actor: event.actor.clone().unwrap_or_default(),
        room: None,
        dao: None,
        text,
        created_at: event.time.clone(),
    }
}

/// What `event` (of messaging or the microDAO service) does to the feed.
pub fn change_of(event: &Envelope) -> Change {
    let mut parts = event.subject.split('.');
    let (Some(source), Some(what)) = (parts.next(), parts.next()) else {
        return Change::Nothing;
    };
    let payload = &event.payload;
    match (source, what) {
        ("message", "received") if payload["room"]["kind"] == "public" => {
            let message = &payload["message"];
            let kind = if text(&message["author"]).starts_with("agent:") {
                FeedKind::AgentReply
            } else {
                FeedKind::RoomMessage
            };
            let mut entry = entry(
                event,
                kind,
                "message",
                text(&message["id"]),
                excerpt(message["body"].as_str().unwrap_or_default()),
            );
            entry.actor = text(&message["author_handle"]);
            entry.room = payload["room"]["slug"].as_str().map(str::to_owned);
            Change::Add(entry)
        }
        ("message", "edited") => Change::Rewrite {
            message: text(&payload["message"]["id"]),
            text: excerpt(payload["message"]["body"].as_str().unwrap_or_default()),
        },
        ("message", "deleted") => Change::Remove {
            message: text(&payload["message"]["id"]),
        },
        ("message", "room") if payload["kind"] == "public" => {
            let mut entry = entry(
                event,
                FeedKind::System,
                "room_opened",
                text(&payload["id"]),
                text(&payload["title"]),
            );
            entry.room = payload["slug"].as_str().map(str::to_owned);
            Change::Add(entry)
        }
        ("microdao", "dao") if payload["visibility"] == "public" => {
            let Some(change) = event.subject.split('.').nth(2) else {
                return Change::Nothing;
            };
            let slug = text(&payload["slug"]);
            let mut entry = entry(
                event,
                FeedKind::DaoEvent,
                &format!("dao_{change}"),
                slug.clone(),
                text(&payload["name"]),
            );
            entry.dao = Some(slug);
            Change::Add(entry)
        }
        _ => Change::Nothing,
    }
}

/// An entry as the feed's readers see it (HTTP and the live socket).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FeedEntryView {
    pub seq: i64,
    pub kind: FeedKind,
    /// `message`, `room_opened`, `map_changed`, `dao_created`,
    /// `dao_updated`, `dao_archived`.
    pub what: String,
    /// A message id, a room id or a community's slug.
    pub subject: String,
    /// A username or `agent:<id>`.
    pub actor: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub room: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dao: Option<String>,
    /// Plain text (not markdown rendered): show it escaped.
    pub text: String,
    /// RFC 3339 UTC.
    pub created_at: String,
}

impl From<Entry> for FeedEntryView {
    fn from(e: Entry) -> Self {
        Self {
            seq: e.seq,
            kind: e.kind,
            what: e.what,
            subject: e.subject,
            actor: e.actor,
            room: e.room,
            dao: e.dao,
            text: e.text,
            created_at: e.created_at,
        }
    }
}

/// The consumers' handler: applies a batch of events, then announces the
/// new entries live. Redelivered events add nothing twice.
pub async fn apply(state: CityState, events: Vec<Envelope>) -> Result<(), HandlerError> {
    // Communities stand on the map before their feed entry tells the
    // map's readers to look again.
    let communities: Vec<_> = events
        .iter()
        .filter_map(crate::map::community_change)
        .collect();
    if !communities.is_empty() {
        store::map::record_communities(&state.db, &communities)
            .await
            .map_err(HandlerError::new)?;
    }
    let changes: Vec<Change> = events.iter().map(change_of).collect();
    let added = store::feed::apply(&state.db, changes)
        .await
        .map_err(HandlerError::new)?;
    for entry in added {
        metrics::counter!("city_feed_entries_total", "kind" => entry.kind.as_str()).increment(1);
        announce(&state, entry).await;
    }
    Ok(())
}

async fn announce(state: &CityState, entry: Entry) {
    let view = FeedEntryView::from(entry);
    let payload = serde_json::to_value(&view).unwrap_or_default();
    state
        .publish(&Envelope::new(SERVICE, LIVE, payload).with_actor(view.actor))
        .await;
}

/// Adds an entry of the city's own (the map changed) and announces it.
pub async fn record(state: &CityState, entry: Entry) -> Result<(), CityError> {
    if let Some(entry) = store::feed::add(&state.db, entry).await? {
        announce(state, entry).await;
    }
    Ok(())
}

/// An entry the city makes itself.
pub fn system(what: &str, subject: &str, actor: &str, text: &str) -> Entry {
    Entry {
        seq: 0,
        event_id: format!("city_{}", uuid::Uuid::now_v7().simple()),
        kind: FeedKind::System,
        what: what.to_owned(),
        subject: subject.to_owned(),
        actor: actor.to_owned(),
        room: None,
        dao: None,
        text: text.to_owned(),
        created_at: daarion_store::now(),
    }
}

/// Prunes entries past the retention, hourly, until shutdown.
pub async fn prune(state: CityState) {
    let period = Duration::from_secs(3600);
    loop {
        let retention = u64::from(state.settings.feed_retention_days) * 24 * 3600;
        let cutoff = daarion_store::ago(Duration::from_secs(retention));
        match store::feed::prune(&state.db, &cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(pruned = n, "old feed entries pruned"),
            Err(error) => tracing::warn!(%error, "feed prune failed"),
        }
        tokio::select! {
            () = state.shutdown.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(subject: &str, payload: serde_json::Value) -> Envelope {
        Envelope::new("test", subject, payload).with_actor("alice")
    }

    fn received(kind: &str, author: &str, body: &str) -> Envelope {
        event(
            "message.received.rm_1",
            json!({ "room_seq": 1, "room": { "id": "rm_1", "kind": kind, "slug": "general" },
                "message": { "id": "msg_1", "author": author, "author_handle": "alice", "body": body } }),
        )
    }

    #[test]
    fn public_messages_enter_the_feed_and_private_ones_never() {
        let Change::Add(entry) = change_of(&received("public", "user:u1", " hi ")) else {
            panic!("a public message is news");
        };
        assert_eq!(
            (entry.kind, entry.subject.as_str(), entry.text.as_str()),
            (FeedKind::RoomMessage, "msg_1", "hi")
        );
        assert_eq!(entry.room.as_deref(), Some("general"));
        let Change::Add(reply) = change_of(&received("public", "agent:helper", "done")) else {
            panic!("an agent's public reply is news");
        };
        assert_eq!(reply.kind, FeedKind::AgentReply);
        for kind in ["dao", "direct", "group"] {
            assert_eq!(
                change_of(&received(kind, "user:u1", "secret")),
                Change::Nothing
            );
        }
    }

    #[test]
    fn long_messages_are_cut_on_a_character() {
        let body = "ї".repeat(EXCERPT_CHARS + 10);
        let Change::Add(entry) = change_of(&received("public", "user:u1", &body)) else {
            panic!("news");
        };
        assert_eq!(entry.text.chars().count(), EXCERPT_CHARS + 1);
        assert!(entry.text.ends_with('…'));
    }

    #[test]
    fn edits_rewrite_deletions_remove_reactions_pass() {
        let view = json!({ "room_seq": 1, "room": { "id": "rm_1" }, "message": { "id": "msg_1", "body": "new" } });
        assert_eq!(
            change_of(&event("message.edited.rm_1", view.clone())),
            Change::Rewrite {
                message: "msg_1".into(),
                text: "new".into()
            }
        );
        assert_eq!(
            change_of(&event("message.deleted.rm_1", view.clone())),
            Change::Remove {
                message: "msg_1".into()
            }
        );
        assert_eq!(
            change_of(&event("message.reacted.rm_1", view)),
            Change::Nothing
        );
    }

    #[test]
    fn public_communities_and_rooms_are_news() {
        let dao = |visibility: &str| {
            event(
                "microdao.dao.created.makers",
                json!({ "slug": "makers", "name": "Makers", "visibility": visibility }),
            )
        };
        let Change::Add(entry) = change_of(&dao("public")) else {
            panic!("a public community is news");
        };
        assert_eq!(
            (entry.kind, entry.what.as_str(), entry.dao.as_deref()),
            (FeedKind::DaoEvent, "dao_created", Some("makers"))
        );
        assert_eq!(change_of(&dao("private")), Change::Nothing);
        let room = event(
            "message.room.rm_2",
            json!({ "id": "rm_2", "kind": "public", "slug": "lab", "title": "Lab" }),
        );
        let Change::Add(entry) = change_of(&room) else {
            panic!("a public room opening is news");
        };
        assert_eq!(
            (entry.what.as_str(), entry.text.as_str()),
            ("room_opened", "Lab")
        );
    }
}
