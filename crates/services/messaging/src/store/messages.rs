//! Messages: editing (earlier bodies kept), deleting (a tombstone stays),
//! reactions, history in both directions, a room's changes since a
//! sequence number (posting: `posts.rs`; search: `search.rs`). Each change
//! takes the room's next sequence number and is written to the room's log.

use daarion_bus::{Envelope, Outbox, Staged};
use daarion_store::{
    Backend, Db,
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

pub(super) fn gone() -> MessagingError {
    MessagingError::NotFound("no such message in this room".into())
}

/// Takes the room's next `n` sequence numbers, refused in an archived
/// room; returns the room as it now is (its `last_seq` is the last of
/// them). Taking them locks the room's row until commit.
pub(super) async fn advance(tx: &mut Tx, room: &str, n: i64) -> Result<Room, MessagingError> {
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
pub(super) async fn log(
    tx: &mut Tx,
    entries: &[(&str, i64, Change, &str)],
) -> Result<(), MessagingError> {
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

pub(super) async fn message_in(
    tx: &mut Tx,
    room: &str,
    id: &str,
) -> Result<Message, MessagingError> {
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
