//! The city's rooms are messaging's public rooms, and their messages
//! messaging's: one store and one live path for every kind of room. This
//! is the city's view of them, in the city API's shapes (rooms by slug,
//! authors by handle).
//!
//! The city's own tables: `map` (districts and places), `feed`, `agents`
//! (agents' presence).

pub mod agents;
pub mod feed;
pub mod map;

use daarion_access::Principal;
use daarion_bus::{Outbox, Staged};
use daarion_messaging::{
    Poster, Posting,
    domain::{Room as ChatRoom, RoomKind},
    store::{self as chat, Window},
};
use daarion_store::Db;

use crate::domain::{CityError, Message, NewRoom, Room, Slug};

fn room_from(room: ChatRoom) -> Room {
    Room {
        id: room.id,
        slug: room.slug.unwrap_or_default(),
        title: room.title,
        description: room.description,
        created_by: room.created_by,
        created_at: room.created_at,
    }
}

fn message_from(message: chat::Message, slug: &str) -> Message {
    Message {
        id: message.id,
        seq: message.seq,
        room: slug.to_owned(),
        author: message.author_handle,
        body: message.body,
        created_at: message.created_at,
    }
}

/// Creates the `general` room if it does not exist yet.
pub async fn ensure_general(db: &Db) -> Result<(), CityError> {
    Ok(chat::ensure_city_square(db).await?)
}

/// Creates a room (its creator shown by handle, as the city always did).
/// Returns the room, whether it is new, and the staged events to relay.
pub async fn create_room(
    db: &Db,
    outbox: &Outbox,
    room: &NewRoom,
    author: &str,
    idempotency_key: Option<&str>,
) -> Result<(Room, bool, Staged), CityError> {
    let new = chat::NewRoom {
        kind: RoomKind::Public,
        key: Some(format!("public:{}", room.slug.as_str())),
        dao: None,
        slug: Some(room.slug.as_str().to_owned()),
        title: room.title.clone(),
        description: room.description.clone(),
        audience: None,
        posters: None,
        agents_allowed: true,
        slow_mode_secs: 0,
        participants: Vec::new(),
    };
    let created = chat::create_room(db, outbox, &new, author, idempotency_key, |room| {
        vec![daarion_messaging::events::room_created(room, author)]
    })
    .await?;
    Ok((room_from(created.room), created.fresh, created.staged))
}

/// The messaging room behind a city room.
pub async fn chat_room(db: &Db, slug: &Slug) -> Result<ChatRoom, CityError> {
    chat::public_room(db, slug.as_str())
        .await?
        .ok_or_else(|| CityError::RoomNotFound(slug.as_str().to_owned()))
}

pub async fn room(db: &Db, slug: &Slug) -> Result<Room, CityError> {
    Ok(room_from(chat_room(db, slug).await?))
}

/// Rooms by slug, `limit + 1` at most, after the slug `after`.
pub async fn rooms(db: &Db, after: Option<&str>, limit: u32) -> Result<Vec<Room>, CityError> {
    let rooms = chat::public_rooms(db, after, limit).await?;
    Ok(rooms.into_iter().map(room_from).collect())
}

/// Posts a message through messaging. Returns it and whether it is new.
pub async fn create_message(
    db: &Db,
    poster: &Poster,
    slug: &Slug,
    author: &Principal,
    (body, max_chars): (&str, usize),
    idempotency_key: Option<&str>,
) -> Result<(Message, bool), CityError> {
    let room = chat_room(db, slug).await?;
    let posting = Posting {
        body,
        topic: None,
        reply_to: None,
        attachments: Vec::new(),
        max_chars,
    };
    let (message, fresh) = poster.post(&room, author, posting, idempotency_key).await?;
    Ok((message_from(message, slug.as_str()), fresh))
}

/// A room's messages newest first, `limit + 1` at most, older than the
/// sequence number `before`.
pub async fn messages(
    db: &Db,
    slug: &Slug,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<Message>, CityError> {
    let room = chat_room(db, slug).await?;
    let window = before.map_or(Window::Latest, Window::Before);
    let rows = chat::history(db, &room.id, None, window, limit).await?;
    Ok(rows
        .into_iter()
        .map(|m| message_from(m, slug.as_str()))
        .collect())
}
