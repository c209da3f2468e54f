//! Full-text search over the rooms a reader may read: FTS5 on SQLite, a
//! GIN full-text index on PostgreSQL (migration 001's per-backend sections).

use daarion_store::{Backend, Db, sql};

use super::{MESSAGE_FIELDS, Message, Readable, message_from};
use crate::domain::MessagingError;

/// Messages matching every word of `query` in the rooms `readable` lets
/// the reader see (or in one room), newest first, `limit + 1` at most,
/// older than the message `before` (an id). SQLite answers from its FTS5
/// index, PostgreSQL from its full-text GIN index; both match whole
/// words, case and accents aside.
pub async fn search(
    db: &Db,
    readable: &Readable,
    room: Option<&str>,
    query: &str,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<Message>, MessagingError> {
    let words: Vec<&str> = query.split_whitespace().collect();
    if words.is_empty() {
        return Ok(Vec::new());
    }
    let n = readable.binds.len();
    let matches = match db.backend() {
        // Each word quoted, so FTS5 operators in what people type are words.
        Backend::Sqlite => format!(
            "m.rowid IN (SELECT rowid FROM messaging_search WHERE messaging_search MATCH ${})",
            n + 1
        ),
        Backend::Postgres => format!(
            "to_tsvector('simple', m.body) @@ plainto_tsquery('simple', ${})",
            n + 1
        ),
    };
    let pattern = match db.backend() {
        Backend::Sqlite => words
            .iter()
            .map(|w| format!("\"{}\"", w.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(" "),
        Backend::Postgres => words.join(" "),
    };
    let text = format!(
        "SELECT {MESSAGE_FIELDS} FROM messaging_messages m JOIN messaging_rooms r ON r.id = m.room_id
         WHERE {} AND {matches} AND m.deleted_at IS NULL AND (${} = '' OR m.room_id = ${})
             AND m.id < ${} ORDER BY m.id DESC LIMIT ${}",
        readable.condition,
        n + 2,
        n + 2,
        n + 3,
        n + 4,
    );
    let mut q = sql::query(sql::AssertSqlSafe(text));
    for bind in &readable.binds {
        q = q.bind(bind.as_str());
    }
    let rows = q
        .bind(pattern)
        .bind(room.unwrap_or(""))
        .bind(before.unwrap_or("~"))
        .bind(i64::from(limit) + 1)
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(message_from).collect()
}
