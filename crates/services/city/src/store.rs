//! City queries. Creates run in one transaction with their idempotency key.

use daarion_store::{
    Db,
    idempotency::{self, Claim},
    sql::{self, AnyRow, Row},
};

use daarion_bus::{Envelope, Outbox, Staged};

use crate::domain::{CityError, Message, MessageBody, NewRoom, Room, Slug};

fn room_from(row: &AnyRow) -> Result<Room, CityError> {
    Ok(Room {
        id: row.try_get("id")?,
        slug: row.try_get("slug")?,
        title: row.try_get("title")?,
        description: row.try_get("description")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

fn message_from(row: &AnyRow) -> Result<Message, CityError> {
    Ok(Message {
        id: row.try_get("id")?,
        room: row.try_get("slug")?,
        author: row.try_get("author")?,
        body: row.try_get("body")?,
        created_at: row.try_get("created_at")?,
    })
}

const ROOM_COLUMNS: &str =
    "SELECT id, slug, title, description, created_by, created_at FROM city_rooms";

/// Creates the `general` room if it does not exist yet.
pub async fn ensure_general(db: &Db) -> Result<(), CityError> {
    sql::query(
        "INSERT INTO city_rooms (id, slug, title, description, created_by, created_at)
         VALUES ($1, 'general', 'General', 'The city square: everyone is welcome.', 'system', $2)
         ON CONFLICT (slug) DO NOTHING",
    )
    .bind(format!("room_{}", uuid::Uuid::now_v7().simple()))
    .bind(daarion_store::now())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Creates a room. With an idempotency key, a retry returns the first result.
/// Returns the room and whether it was created by this call.
/// Creates a room; `events` says what to stage in `outbox` with it.
/// Returns the room, whether it is new, and the staged events to relay.
pub async fn create_room(
    db: &Db,
    outbox: &Outbox,
    room: &NewRoom,
    author: &str,
    idempotency_key: Option<&str>,
    events: impl FnOnce(&Room) -> Vec<Envelope>,
) -> Result<(Room, bool, Staged), CityError> {
    let mut tx = db.begin().await?;
    let scope = format!("city.rooms:{author}");
    if let Some(key) = idempotency_key {
        let hash = idempotency::fingerprint(&[room.slug.as_str(), &room.title, &room.description]);
        if let Claim::Replay(id) = idempotency::claim(&mut tx, &scope, key, &hash).await? {
            let row = sql::query(sql::AssertSqlSafe(format!("{ROOM_COLUMNS} WHERE id = $1")))
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
            return Ok((room_from(&row)?, false, Staged::none()));
        }
    }
    let created = Room {
        id: format!("room_{}", uuid::Uuid::now_v7().simple()),
        slug: room.slug.as_str().to_owned(),
        title: room.title.clone(),
        description: room.description.clone(),
        created_by: author.to_owned(),
        created_at: daarion_store::now(),
    };
    let inserted = sql::query(
        "INSERT INTO city_rooms (id, slug, title, description, created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (slug) DO NOTHING",
    )
    .bind(created.id.as_str())
    .bind(created.slug.as_str())
    .bind(created.title.as_str())
    .bind(created.description.as_str())
    .bind(created.created_by.as_str())
    .bind(created.created_at.as_str())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(CityError::Conflict(format!(
            "room {:?} already exists",
            created.slug
        )));
    }
    if let Some(key) = idempotency_key {
        idempotency::complete(&mut tx, &scope, key, &created.id).await?;
    }
    let staged = outbox.stage(&mut tx, events(&created)).await?;
    tx.commit().await?;
    Ok((created, true, staged))
}

pub async fn room(db: &Db, slug: &Slug) -> Result<Room, CityError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "{ROOM_COLUMNS} WHERE slug = $1"
    )))
    .bind(slug.as_str())
    .fetch_optional(db.pool())
    .await?
    .ok_or_else(|| CityError::RoomNotFound(slug.as_str().to_owned()))?;
    room_from(&row)
}

/// Rooms by slug, `limit + 1` at most, after the slug `after`.
pub async fn rooms(db: &Db, after: Option<&str>, limit: u32) -> Result<Vec<Room>, CityError> {
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "{ROOM_COLUMNS} WHERE slug > $1 ORDER BY slug LIMIT $2"
    )))
    .bind(after.unwrap_or(""))
    .bind(i64::from(limit) + 1)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(room_from).collect()
}

/// Posts a message. Returns it and whether it was created by this call.
/// Posts a message; `events` says what to stage in `outbox` with it.
/// Returns the message, whether it is new, and the staged events to relay.
pub async fn create_message(
    db: &Db,
    outbox: &Outbox,
    slug: &Slug,
    author: &str,
    body: &MessageBody,
    idempotency_key: Option<&str>,
    events: impl FnOnce(&Message) -> Vec<Envelope>,
) -> Result<(Message, bool, Staged), CityError> {
    let room = room(db, slug).await?;
    let mut tx = db.begin().await?;
    let scope = format!("city.messages:{author}");
    if let Some(key) = idempotency_key {
        let hash = idempotency::fingerprint(&[slug.as_str(), body.as_str()]);
        if let Claim::Replay(id) = idempotency::claim(&mut tx, &scope, key, &hash).await? {
            let row = sql::query(
                "SELECT m.id, r.slug, m.author, m.body, m.created_at
                 FROM city_messages m JOIN city_rooms r ON r.id = m.room_id WHERE m.id = $1",
            )
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
            return Ok((message_from(&row)?, false, Staged::none()));
        }
    }
    let message = Message {
        id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
        room: room.slug,
        author: author.to_owned(),
        body: body.as_str().to_owned(),
        created_at: daarion_store::now(),
    };
    sql::query(
        "INSERT INTO city_messages (id, room_id, author, body, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(message.id.as_str())
    .bind(room.id.as_str())
    .bind(message.author.as_str())
    .bind(message.body.as_str())
    .bind(message.created_at.as_str())
    .execute(&mut *tx)
    .await?;
    if let Some(key) = idempotency_key {
        idempotency::complete(&mut tx, &scope, key, &message.id).await?;
    }
    let staged = outbox.stage(&mut tx, events(&message)).await?;
    tx.commit().await?;
    Ok((message, true, staged))
}

/// A room's messages newest first, `limit + 1` at most, older than `before`.
pub async fn messages(
    db: &Db,
    slug: &Slug,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<Message>, CityError> {
    let room = room(db, slug).await?;
    // Message ids are time-ordered, so "older than" is "smaller id".
    let rows = sql::query(
        "SELECT m.id, r.slug, m.author, m.body, m.created_at
         FROM city_messages m JOIN city_rooms r ON r.id = m.room_id
         WHERE m.room_id = $1 AND m.id < $2 ORDER BY m.id DESC LIMIT $3",
    )
    .bind(room.id.as_str())
    .bind(before.unwrap_or("~"))
    .bind(i64::from(limit) + 1)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(message_from).collect()
}
