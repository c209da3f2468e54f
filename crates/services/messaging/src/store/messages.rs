//! Messages: posting, editing (earlier bodies kept), deleting (a tombstone
//! stays), reactions, history in both directions, a room's changes since a
//! sequence number (search: `search.rs`). Each change takes the room's next
//! sequence number and is written to the room's log.

use daarion_bus::{Envelope, Outbox, Staged};
use daarion_store::{
    Backend, Db,
    idempotency::{self, Claim},
    sql::{self, AnyRow, Row},
};

use super::{ROOM_FIELDS, Tx, room_from};
use crate::domain::{Attachment, MessagingError, Room};

/// A message as stored (reactions are counted separately).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub id: String,
    pub room: String,
    pub seq: i64,
    pub topic: String,
    pub reply_to: Option<String>,
    pub author: String,
    pub author_handle: String,
    pub body: String,
    pub html: String,
    pub mentions: Vec<String>,
    pub attachments: Vec<Attachment>,
    pub created_at: String,
    pub edited_at: Option<String>,
    pub deleted_at: Option<String>,
}

/// A message to post, checked and rendered.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub topic: String,
    pub reply_to: Option<String>,
    pub body: String,
    pub html: String,
    pub mentions: Vec<String>,
    pub attachments: Vec<Attachment>,
}

/// A change to a room, as its log and its events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Posted,
    Edited,
    Deleted,
    Reacted,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Posted => "posted",
            Change::Edited => "edited",
            Change::Deleted => "deleted",
            Change::Reacted => "reacted",
        }
    }
}

/// A message's columns, of `messaging_messages` named `m`.
pub(super) const MESSAGE_FIELDS: &str = "m.id, m.room_id, m.seq, m.topic, m.reply_to, m.author, \
     m.author_handle, m.body, m.html, m.mentions, m.attachments, m.created_at, m.edited_at, m.deleted_at";

pub(super) fn message_from(row: &AnyRow) -> Result<Message, MessagingError> {
    let json = |column: &str| -> Result<String, MessagingError> { Ok(row.try_get(column)?) };
    let decode = |what: &str, text: String| {
        MessagingError::Invalid(format!("stored {what} are not valid JSON: {text:.40}"))
    };
    let mentions = json("mentions")?;
    let attachments = json("attachments")?;
    Ok(Message {
        id: row.try_get("id")?,
        room: row.try_get("room_id")?,
        seq: row.try_get("seq")?,
        topic: row.try_get("topic")?,
        reply_to: row.try_get("reply_to")?,
        author: row.try_get("author")?,
        author_handle: row.try_get("author_handle")?,
        body: row.try_get("body")?,
        html: row.try_get("html")?,
        mentions: serde_json::from_str(&mentions).map_err(|_| decode("mentions", mentions))?,
        attachments: serde_json::from_str(&attachments)
            .map_err(|_| decode("attachments", attachments))?,
        created_at: row.try_get("created_at")?,
        edited_at: row.try_get("edited_at")?,
        deleted_at: row.try_get("deleted_at")?,
    })
}

fn gone() -> MessagingError {
    MessagingError::NotFound("no such message in this room".into())
}

/// Takes the room's next `n` sequence numbers, refused in an archived
/// room; returns the room as it now is (its `last_seq` is the last of
/// them). Taking them locks the room's row until commit.
async fn advance(tx: &mut Tx, room: &str, n: i64) -> Result<Room, MessagingError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "UPDATE messaging_rooms SET last_seq = last_seq + $2
         WHERE id = $1 AND archived_at IS NULL RETURNING {ROOM_FIELDS}"
    )))
    .bind(room)
    .bind(n)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(|| MessagingError::Conflict("the room is archived".into()))?;
    room_from(&row)
}

async fn next_seq(tx: &mut Tx, room: &str) -> Result<i64, MessagingError> {
    Ok(advance(tx, room, 1).await?.last_seq)
}

/// Writes changes to their rooms' logs, in one statement.
async fn log(tx: &mut Tx, entries: &[(&str, i64, Change, &str)]) -> Result<(), MessagingError> {
    let now = daarion_store::now();
    let rows: Vec<_> = entries
        .iter()
        .map(|(room, seq, change, message)| {
            serde_json::json!([room, seq, change.as_str(), message])
        })
        .collect();
    let text = format!(
        "INSERT INTO messaging_log (room_id, seq, kind, message_id, created_at)
         SELECT c0, CAST(c1 AS BIGINT), c2, c3, $2 FROM ({}) AS j",
        sql::json_rows(Backend::of(tx), 1, 4)
    );
    sql::query(sql::AssertSqlSafe(text))
        .bind(serde_json::Value::from(rows).to_string())
        .bind(now)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

async fn message_in(tx: &mut Tx, room: &str, id: &str) -> Result<Message, MessagingError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "SELECT {MESSAGE_FIELDS} FROM messaging_messages m WHERE id = $1 AND room_id = $2"
    )))
    .bind(id)
    .bind(room)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or_else(gone)?;
    message_from(&row)
}

pub async fn message(db: &Db, room: &str, id: &str) -> Result<Message, MessagingError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "SELECT {MESSAGE_FIELDS} FROM messaging_messages m WHERE id = $1 AND room_id = $2"
    )))
    .bind(id)
    .bind(room)
    .fetch_optional(db.pool())
    .await?
    .ok_or_else(gone)?;
    message_from(&row)
}

/// A message to post in a room, by someone (principal name, handle).
#[derive(Debug, Clone, Copy)]
pub struct Post<'a> {
    pub room: &'a str,
    pub author: (&'a str, &'a str),
    pub new: &'a NewMessage,
    pub idempotency_key: Option<&'a str>,
}

impl Post<'_> {
    /// Where its author's idempotency keys live.
    fn key_scope(&self) -> String {
        format!("messaging.messages:{}", self.author.0)
    }

    fn fingerprint(&self) -> String {
        idempotency::fingerprint(&[self.room, &self.new.topic, &self.new.body])
    }

    /// Claims the idempotency key — `Some(id)` when it was used before
    /// for this message (a retry) — then refuses a reply to a message that
    /// is not in the room.
    async fn claim(&self, tx: &mut Tx) -> Result<Option<String>, MessagingError> {
        if let Some(key) = self.idempotency_key {
            let (scope, hash) = (self.key_scope(), self.fingerprint());
            if let Claim::Replay(id) = idempotency::claim(tx, &scope, key, &hash).await? {
                return Ok(Some(id));
            }
        }
        let Some(parent) = &self.new.reply_to else {
            return Ok(None);
        };
        let found =
            sql::query("SELECT 1 AS found FROM messaging_messages WHERE id = $1 AND room_id = $2")
                .bind(parent.as_str())
                .bind(self.room)
                .fetch_optional(&mut **tx)
                .await?;
        match found {
            Some(_) => Ok(None),
            None => Err(MessagingError::Invalid(
                "reply_to names no message of this room".into(),
            )),
        }
    }

    fn message(&self, seq: i64) -> Message {
        let new = self.new;
        Message {
            id: format!("msg_{}", uuid::Uuid::now_v7().simple()),
            room: self.room.to_owned(),
            seq,
            topic: new.topic.clone(),
            reply_to: new.reply_to.clone(),
            author: self.author.0.to_owned(),
            author_handle: self.author.1.to_owned(),
            body: new.body.clone(),
            html: new.html.clone(),
            mentions: new.mentions.clone(),
            attachments: new.attachments.clone(),
            created_at: daarion_store::now(),
            edited_at: None,
            deleted_at: None,
        }
    }
}

/// Writes claimed posts: one sequence update per room (rooms in id order,
/// so two writers never wait for each other's rows; a room's messages take
/// its numbers in the order given), the messages and their log rows one
/// statement each, the keys completed. Returns the messages in the order
/// given and what `events(i, room, message)` says to stage with each.
async fn place(
    tx: &mut Tx,
    posts: &[Post<'_>],
    events: impl Fn(usize, &Room, &Message) -> Vec<Envelope>,
) -> Result<(Vec<Message>, Vec<Envelope>), MessagingError> {
    let mut order: Vec<usize> = (0..posts.len()).collect();
    order.sort_by_key(|&i| posts[i].room);
    let mut placed: Vec<(usize, usize, Message)> = Vec::with_capacity(posts.len());
    let mut rooms = Vec::new();
    for group in order.chunk_by(|&a, &b| posts[a].room == posts[b].room) {
        let room = advance(tx, posts[group[0]].room, group.len() as i64).await?;
        let first = room.last_seq - group.len() as i64;
        for (k, &i) in group.iter().enumerate() {
            placed.push((i, rooms.len(), posts[i].message(first + 1 + k as i64)));
        }
        rooms.push(room);
    }
    placed.sort_by_key(|(i, _, _)| *i);
    let (rooms_of, messages): (Vec<usize>, Vec<Message>) =
        placed.into_iter().map(|(_, room, m)| (room, m)).unzip();
    insert(tx, &messages).await?;
    let mut staged = Vec::with_capacity(posts.len() * 2);
    for (i, (post, message)) in posts.iter().zip(&messages).enumerate() {
        if let Some(key) = post.idempotency_key {
            idempotency::complete(tx, &post.key_scope(), key, &message.id).await?;
        }
        staged.extend(events(i, &rooms[rooms_of[i]], message));
    }
    Ok((messages, staged))
}

/// Writes new messages and their log rows: one statement each.
async fn insert(tx: &mut Tx, messages: &[Message]) -> Result<(), MessagingError> {
    let rows: Vec<_> = messages
        .iter()
        .map(|m| {
            serde_json::json!([
                m.id,
                m.room,
                m.seq,
                m.topic,
                m.reply_to,
                m.author,
                m.author_handle,
                m.body,
                m.html,
                serde_json::to_string(&m.mentions).unwrap_or_else(|_| "[]".into()),
                serde_json::to_string(&m.attachments).unwrap_or_else(|_| "[]".into()),
                m.created_at
            ])
        })
        .collect();
    let text = format!(
        "INSERT INTO messaging_messages (id, room_id, seq, topic, reply_to, author,
             author_handle, body, html, mentions, attachments, created_at)
         SELECT c0, c1, CAST(c2 AS BIGINT), c3, c4, c5, c6, c7, c8, c9, c10, c11 FROM ({}) AS j",
        sql::json_rows(Backend::of(tx), 1, 12)
    );
    sql::query(sql::AssertSqlSafe(text))
        .bind(serde_json::Value::from(rows).to_string())
        .execute(&mut **tx)
        .await?;
    let entries: Vec<_> = messages
        .iter()
        .map(|m| (m.room.as_str(), m.seq, Change::Posted, m.id.as_str()))
        .collect();
    log(tx, &entries).await
}

/// Posts a message; `events` says what to stage with it. With an
/// idempotency key, a retry returns the first message.
pub async fn post(
    db: &Db,
    outbox: &Outbox,
    post: Post<'_>,
    events: impl Fn(&Room, &Message) -> Vec<Envelope>,
) -> Result<(Message, bool, Staged), MessagingError> {
    let mut tx = db.begin().await?;
    if let Some(id) = post.claim(&mut tx).await? {
        let message = message_in(&mut tx, post.room, &id).await?;
        return Ok((message, false, Staged::none()));
    }
    let (mut messages, staged) = place(&mut tx, &[post], |_, room, m| events(room, m)).await?;
    let staged = outbox.stage(&mut tx, staged).await?;
    tx.commit().await?;
    let message = messages.pop().ok_or_else(gone)?;
    Ok((message, true, staged))
}

/// Posts several messages in one transaction (group commit), as [`place`]
/// writes them, every event staged at once. Any refusal (a key used
/// before, a reply to nothing, an archived room) or failure writes
/// nothing: the caller then posts each alone, which gives each its own
/// answer.
pub async fn post_many(
    db: &Db,
    outbox: &Outbox,
    posts: &[Post<'_>],
    events: impl Fn(usize, &Room, &Message) -> Vec<Envelope>,
) -> Result<(Vec<Message>, Staged), MessagingError> {
    let mut tx = db.begin().await?;
    for post in posts {
        if post.claim(&mut tx).await?.is_some() {
            return Err(MessagingError::Conflict("a retry is answered alone".into()));
        }
    }
    let (messages, staged) = place(&mut tx, posts, events).await?;
    let staged = outbox.stage(&mut tx, staged).await?;
    tx.commit().await?;
    Ok((messages, staged))
}

/// What an edit or delete does to a message, decided in the store's
/// transaction against the message as it is.
pub enum Rewrite<'a> {
    /// Only the author edits; the earlier body is kept.
    Edit {
        by: &'a str,
        body: &'a str,
        html: &'a str,
        mentions: &'a [String],
    },
    /// The author, or someone who manages the room, deletes.
    Delete { by: &'a str, moderator: bool },
}

/// Edits or deletes a message; the change takes the room's next sequence
/// number. Returns the message as it now is.
pub async fn rewrite(
    db: &Db,
    outbox: &Outbox,
    room: &str,
    id: &str,
    what: Rewrite<'_>,
    events: impl FnOnce(Change, i64, &Message) -> Vec<Envelope>,
) -> Result<(Message, Staged), MessagingError> {
    let mut tx = db.begin().await?;
    let mut message = message_in(&mut tx, room, id).await?;
    if message.deleted_at.is_some() {
        return Err(MessagingError::Conflict("the message was deleted".into()));
    }
    let now = daarion_store::now();
    let change = match what {
        Rewrite::Edit {
            by,
            body,
            html,
            mentions,
        } => {
            if message.author != by {
                return Err(MessagingError::Forbidden(
                    "only its author edits a message".into(),
                ));
            }
            if message.body == body {
                return Ok((message, Staged::none()));
            }
            sql::query(
                "INSERT INTO messaging_edits (message_id, version, body, edited_by, replaced_at)
                 SELECT $1, COUNT(*) + 1, $2, $3, $4 FROM messaging_edits WHERE message_id = $1",
            )
            .bind(id)
            .bind(message.body.as_str())
            .bind(by)
            .bind(now.as_str())
            .execute(&mut *tx)
            .await?;
            message.body = body.to_owned();
            message.html = html.to_owned();
            message.mentions = mentions.to_vec();
            message.edited_at = Some(now.clone());
            Change::Edited
        }
        Rewrite::Delete { by, moderator } => {
            if message.author != by && !moderator {
                return Err(MessagingError::Forbidden(
                    "only its author or the room's managers delete a message".into(),
                ));
            }
            sql::query("DELETE FROM messaging_reactions WHERE message_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            // The tombstone keeps its place, author and time; the words and
            // their edits go.
            sql::query("DELETE FROM messaging_edits WHERE message_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            message.body = String::new();
            message.html = String::new();
            message.mentions = Vec::new();
            message.attachments = Vec::new();
            message.deleted_at = Some(now.clone());
            Change::Deleted
        }
    };
    let seq = next_seq(&mut tx, room).await?;
    sql::query(
        "UPDATE messaging_messages SET body = $2, html = $3, mentions = $4, attachments = $5,
             edited_at = $6, deleted_at = $7 WHERE id = $1",
    )
    .bind(id)
    .bind(message.body.as_str())
    .bind(message.html.as_str())
    .bind(serde_json::to_string(&message.mentions).unwrap_or_else(|_| "[]".into()))
    .bind(serde_json::to_string(&message.attachments).unwrap_or_else(|_| "[]".into()))
    .bind(message.edited_at.as_deref())
    .bind(message.deleted_at.as_deref())
    .execute(&mut *tx)
    .await?;
    log(&mut tx, &[(room, seq, change, id)]).await?;
    let staged = outbox.stage(&mut tx, events(change, seq, &message)).await?;
    tx.commit().await?;
    Ok((message, staged))
}

/// An earlier body of an edited message.
#[derive(Debug, Clone, PartialEq)]
pub struct Edit {
    pub version: i64,
    pub body: String,
    pub replaced_at: String,
}

/// A message's earlier bodies, oldest first.
pub async fn edits(db: &Db, room: &str, id: &str) -> Result<Vec<Edit>, MessagingError> {
    message(db, room, id).await?;
    let rows = sql::query(
        "SELECT version, body, replaced_at FROM messaging_edits WHERE message_id = $1 ORDER BY version",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Edit {
                version: row.try_get("version")?,
                body: row.try_get("body")?,
                replaced_at: row.try_get("replaced_at")?,
            })
        })
        .collect()
}

/// Adds (or takes back) `who`'s reaction. Reacting twice with the same
/// emoji is a conflict; taking back one never given, not found.
pub async fn react(
    db: &Db,
    outbox: &Outbox,
    room: &str,
    id: &str,
    (who, emoji): (&str, &str),
    add: bool,
    events: impl FnOnce(i64, &Message, &[ReactionCount]) -> Vec<Envelope>,
) -> Result<Staged, MessagingError> {
    let mut tx = db.begin().await?;
    let message = message_in(&mut tx, room, id).await?;
    if message.deleted_at.is_some() {
        return Err(MessagingError::Conflict("the message was deleted".into()));
    }
    let changed = if add {
        sql::query(
            "INSERT INTO messaging_reactions (message_id, principal, emoji, created_at)
             VALUES ($1, $2, $3, $4) ON CONFLICT (message_id, principal, emoji) DO NOTHING",
        )
        .bind(id)
        .bind(who)
        .bind(emoji)
        .bind(daarion_store::now())
        .execute(&mut *tx)
        .await?
        .rows_affected()
    } else {
        sql::query(
            "DELETE FROM messaging_reactions WHERE message_id = $1 AND principal = $2 AND emoji = $3",
        )
        .bind(id)
        .bind(who)
        .bind(emoji)
        .execute(&mut *tx)
        .await?
        .rows_affected()
    };
    if changed == 0 {
        return Err(if add {
            MessagingError::Conflict("you already reacted with this".into())
        } else {
            MessagingError::NotFound("you have not reacted with this".into())
        });
    }
    let seq = next_seq(&mut tx, room).await?;
    log(&mut tx, &[(room, seq, Change::Reacted, id)]).await?;
    // Everyone's counts as they now are ("mine" is each reader's own).
    let rows = sql::query(
        "SELECT emoji, COUNT(*) AS n, MIN(created_at) AS first FROM messaging_reactions
         WHERE message_id = $1 GROUP BY emoji ORDER BY first",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    let counts = rows
        .iter()
        .map(|row| {
            Ok(ReactionCount {
                message: id.to_owned(),
                emoji: row.try_get("emoji")?,
                count: row.try_get("n")?,
                mine: false,
            })
        })
        .collect::<Result<Vec<_>, MessagingError>>()?;
    let staged = outbox
        .stage(&mut tx, events(seq, &message, &counts))
        .await?;
    tx.commit().await?;
    Ok(staged)
}

/// How many gave each reaction to a message, and whether the reader did.
#[derive(Debug, Clone, PartialEq)]
pub struct ReactionCount {
    pub message: String,
    pub emoji: String,
    pub count: i64,
    pub mine: bool,
}

/// Reactions to `messages`, as `reader` sees them, in order of first use.
pub async fn reactions(
    db: &Db,
    messages: &[String],
    reader: &str,
) -> Result<Vec<ReactionCount>, MessagingError> {
    if messages.is_empty() {
        return Ok(Vec::new());
    }
    let marks: Vec<String> = (0..messages.len()).map(|i| format!("${}", i + 2)).collect();
    let text = format!(
        "SELECT message_id, emoji, COUNT(*) AS n,
             SUM(CASE WHEN principal = $1 THEN 1 ELSE 0 END) AS mine, MIN(created_at) AS first
         FROM messaging_reactions WHERE message_id IN ({})
         GROUP BY message_id, emoji ORDER BY message_id, first",
        marks.join(", ")
    );
    let mut query = sql::query(sql::AssertSqlSafe(text)).bind(reader);
    for id in messages {
        query = query.bind(id.as_str());
    }
    let rows = query.fetch_all(db.pool()).await?;
    rows.iter()
        .map(|row| {
            Ok(ReactionCount {
                message: row.try_get("message_id")?,
                emoji: row.try_get("emoji")?,
                count: row.try_get("n")?,
                mine: row.try_get::<i64, _>("mine").unwrap_or(0) > 0,
            })
        })
        .collect()
}

/// Where a history page starts: the newest (`Latest`), before a sequence
/// number (older, newest first) or after one (newer, oldest first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    Latest,
    Before(i64),
    After(i64),
}

/// A page of a room's messages (one topic's when `topic` is given),
/// `limit + 1` at most: newest first, except `After`, oldest first.
pub async fn history(
    db: &Db,
    room: &str,
    topic: Option<&str>,
    window: Window,
    limit: u32,
) -> Result<Vec<Message>, MessagingError> {
    let (condition, order, bound) = match window {
        Window::Latest => ("seq <= $2", "DESC", i64::MAX),
        Window::Before(seq) => ("seq < $2", "DESC", seq),
        Window::After(seq) => ("seq > $2", "ASC", seq),
    };
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "SELECT {MESSAGE_FIELDS} FROM messaging_messages m WHERE room_id = $1 AND {condition} AND ($3 = '\u{1}' OR topic = $3)
         ORDER BY seq {order} LIMIT $4"
    )))
    .bind(room)
    .bind(bound)
    .bind(topic.unwrap_or("\u{1}"))
    .bind(i64::from(limit) + 1)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(message_from).collect()
}

/// A room's changes after `since`, oldest first, each with the message as
/// it now is; `None` when more than `bound` happened (the reader should
/// reload instead of replaying).
pub async fn changes(
    db: &Db,
    room: &str,
    since: i64,
    bound: u32,
) -> Result<Option<Vec<(i64, String, Message)>>, MessagingError> {
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "SELECT l.seq AS change_seq, l.kind AS change_kind, {MESSAGE_FIELDS}
             FROM messaging_log l JOIN messaging_messages m ON m.id = l.message_id
             WHERE l.room_id = $1 AND l.seq > $2 ORDER BY l.seq LIMIT $3"
    )))
    .bind(room)
    .bind(since)
    .bind(i64::from(bound) + 1)
    .fetch_all(db.pool())
    .await?;
    if rows.len() > bound as usize {
        return Ok(None);
    }
    rows.iter()
        .map(|row| {
            let kind: String = row.try_get("change_kind")?;
            Ok((row.try_get("change_seq")?, kind, message_from(row)?))
        })
        .collect::<Result<Vec<_>, MessagingError>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use daarion_bus::{EmbeddedBus, subject::Streams};

    use super::*;
    use crate::events::general_room;

    fn new(body: &str, reply_to: Option<&str>) -> NewMessage {
        NewMessage {
            topic: String::new(),
            reply_to: reply_to.map(str::to_owned),
            body: body.to_owned(),
            html: body.to_owned(),
            mentions: Vec::new(),
            attachments: Vec::new(),
        }
    }

    fn received(room: &Room, message: &Message) -> Vec<Envelope> {
        let payload = serde_json::json!({ "room_seq": message.seq });
        vec![Envelope::new(
            "messaging",
            format!("message.received.{}", room.id),
            payload,
        )]
    }

    /// Group commit: posts of two rooms in one transaction take each
    /// room's next numbers in the order given, with their events; a batch
    /// with anything refused writes nothing at all, so that posting each
    /// alone afterwards gives each its own answer.
    #[tokio::test]
    async fn posts_written_together_take_their_rooms_numbers_in_order() {
        // Migration 2 takes in the city's tables, which this crate lacks.
        let first = daarion_store::MigrationSet {
            service: crate::SERVICE,
            migrations: &crate::SPEC.migrations[..1],
        };
        let sets = [first, daarion_bus::MIGRATIONS, idempotency::MIGRATIONS];
        for test in daarion_testkit::migrated_dbs(&sets).await {
            let db = &test.db;
            let streams = Streams::new([daarion_bus::subject::StreamDef {
                name: "MESSAGES",
                subjects: &["message.>"],
            }])
            .unwrap();
            let outbox = Outbox::new(db.clone(), Arc::new(EmbeddedBus::new(db.clone(), streams)));
            let mut rooms = Vec::new();
            for dao in ["one", "two"] {
                let made =
                    super::super::create_room(db, &outbox, &general_room(dao), "x", None, |_| {
                        Vec::new()
                    })
                    .await
                    .unwrap();
                rooms.push(made.room.id);
            }
            let (a, b) = (rooms[0].as_str(), rooms[1].as_str());
            let bodies = [(b, "b1"), (a, "a1"), (b, "b2"), (a, "a2"), (a, "a3")];
            let news: Vec<NewMessage> = bodies.iter().map(|(_, body)| new(body, None)).collect();
            let posts: Vec<Post<'_>> = bodies
                .iter()
                .zip(&news)
                .map(|((room, _), new)| Post {
                    room,
                    author: ("user:u1", "alice"),
                    new,
                    idempotency_key: Some(new.body.as_str()),
                })
                .collect();
            let (messages, staged) = post_many(db, &outbox, &posts, |_, room, message| {
                received(room, message)
            })
            .await
            .unwrap();
            let placed: Vec<(&str, i64)> =
                messages.iter().map(|m| (m.body.as_str(), m.seq)).collect();
            assert_eq!(
                placed,
                [("b1", 1), ("a1", 1), ("b2", 2), ("a2", 2), ("a3", 3)]
            );
            let seqs: Vec<i64> = staged
                .events()
                .iter()
                .map(|e| e.payload["room_seq"].as_i64().unwrap())
                .collect();
            assert_eq!(seqs, [1, 1, 2, 2, 3], "one event each, in order");
            let newest = history(db, a, None, Window::Latest, 10).await.unwrap();
            let newest: Vec<&str> = newest.iter().map(|m| m.body.as_str()).collect();
            assert_eq!(newest, ["a3", "a2", "a1"]);
            let logged = changes(db, b, 0, 10).await.unwrap().unwrap();
            let logged: Vec<(i64, &str)> = logged
                .iter()
                .map(|(seq, kind, _)| (*seq, kind.as_str()))
                .collect();
            assert_eq!(logged, [(1, "posted"), (2, "posted")]);
            outbox.relay(staged).await;

            // A retried key, a reply to nothing, an archived room: each
            // refuses the whole batch, and nothing of it is written.
            super::super::archive_room(db, b).await.unwrap();
            let fresh = new("a4", None);
            let nowhere = new("a5", Some("msg_none"));
            let later = new("b3", None);
            let retried = new("a1", None);
            let good = Post {
                room: a,
                author: ("user:u1", "alice"),
                new: &fresh,
                idempotency_key: Some("a4"),
            };
            for bad in [
                Post {
                    new: &nowhere,
                    ..good
                },
                Post {
                    room: b,
                    new: &later,
                    ..good
                },
                Post {
                    new: &retried,
                    idempotency_key: Some("a1"),
                    ..good
                },
            ] {
                let refused = post_many(db, &outbox, &[good, bad], |_, room, message| {
                    received(room, message)
                })
                .await;
                assert!(refused.is_err(), "{:?}", bad.new.body);
                let room = super::super::room(db, a).await.unwrap().unwrap();
                assert_eq!(room.last_seq, 3, "nothing taken");
            }
            // Alone, the good post goes in, its key with it.
            let (message, fresh, _) = post(db, &outbox, good, received).await.unwrap();
            assert_eq!((message.seq, fresh), (4, true));
            let (again, fresh, _) = post(db, &outbox, good, received).await.unwrap();
            assert_eq!((again.id, fresh), (message.id, false));
        }
    }
}
