//! Read markers and what is unread. A reader marks a whole room read up
//! to a sequence number, or one topic; a message is unread when it is
//! newer than both markers, not theirs and not deleted. Markers never
//! move back (a late request from another tab cannot unread a room).

use daarion_store::{
    Db,
    sql::{self, Row},
};

use crate::domain::MessagingError;

/// Marks `room` (or only `topic` in it) read up to `seq`.
pub async fn mark_read(
    db: &Db,
    room: &str,
    reader: &str,
    topic: Option<&str>,
    seq: i64,
) -> Result<(), MessagingError> {
    let query = match topic {
        None => sql::query(
            "INSERT INTO messaging_reads (room_id, principal, seq) VALUES ($1, $2, $3)
             ON CONFLICT (room_id, principal) DO UPDATE SET seq = CASE
                 WHEN excluded.seq > messaging_reads.seq THEN excluded.seq ELSE messaging_reads.seq END",
        )
        .bind(room)
        .bind(reader)
        .bind(seq),
        Some(topic) => sql::query(
            "INSERT INTO messaging_topic_reads (room_id, principal, topic, seq) VALUES ($1, $2, $4, $3)
             ON CONFLICT (room_id, principal, topic) DO UPDATE SET seq = CASE
                 WHEN excluded.seq > messaging_topic_reads.seq THEN excluded.seq
                 ELSE messaging_topic_reads.seq END",
        )
        .bind(room)
        .bind(reader)
        .bind(seq)
        .bind(topic),
    };
    query.execute(db.pool()).await?;
    Ok(())
}

/// One topic of a room: how many messages, the newest, how many unread.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicSummary {
    pub topic: String,
    pub messages: i64,
    pub last_seq: i64,
    pub unread: i64,
    /// Unread messages that mention the reader.
    pub mentions: i64,
}

/// Every topic of `room` for `reader` (`handle` is how mentions name
/// them), the most recently active first.
pub async fn topics(
    db: &Db,
    room: &str,
    reader: &str,
    handle: &str,
) -> Result<Vec<TopicSummary>, MessagingError> {
    let rows = sql::query(
        "SELECT m.topic AS topic, COUNT(*) AS n, MAX(m.seq) AS last_seq,
             CAST(SUM(CASE WHEN m.author <> $2 AND m.seq > COALESCE(rr.seq, 0)
                 AND m.seq > COALESCE(tr.seq, 0) THEN 1 ELSE 0 END) AS BIGINT) AS unread,
             CAST(SUM(CASE WHEN m.author <> $2 AND m.seq > COALESCE(rr.seq, 0)
                 AND m.seq > COALESCE(tr.seq, 0) AND m.mentions LIKE $3 THEN 1 ELSE 0 END)
                 AS BIGINT) AS mentioned
         FROM messaging_messages m
         LEFT JOIN messaging_reads rr ON rr.room_id = m.room_id AND rr.principal = $2
         LEFT JOIN messaging_topic_reads tr
             ON tr.room_id = m.room_id AND tr.principal = $2 AND tr.topic = m.topic
         WHERE m.room_id = $1 AND m.deleted_at IS NULL
         GROUP BY m.topic ORDER BY last_seq DESC",
    )
    .bind(room)
    .bind(reader)
    .bind(mention_pattern(handle))
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(TopicSummary {
                topic: row.try_get("topic")?,
                messages: row.try_get("n")?,
                last_seq: row.try_get("last_seq")?,
                unread: sum(row, "unread")?,
                mentions: sum(row, "mentioned")?,
            })
        })
        .collect()
}

/// A `SUM` is `NUMERIC` on PostgreSQL, so the queries cast it to
/// `BIGINT`; over no rows it is `NULL`.
fn sum(row: &sql::AnyRow, column: &str) -> Result<i64, MessagingError> {
    Ok(row.try_get::<Option<i64>, _>(column)?.unwrap_or(0))
}

/// How a JSON list of handles holding `handle` looks to `LIKE` (handles
/// hold no `%`; a `_` in one may match any one character, which can only
/// count a near-namesake's mention, never hide one).
fn mention_pattern(handle: &str) -> String {
    format!("%{}%", serde_json::to_string(handle).unwrap_or_default())
}

/// Unread messages (and mentions among them) per room, for `rooms`.
pub async fn unread(
    db: &Db,
    rooms: &[String],
    reader: &str,
    handle: &str,
) -> Result<Vec<(String, i64, i64)>, MessagingError> {
    if rooms.is_empty() {
        return Ok(Vec::new());
    }
    let marks: Vec<String> = (0..rooms.len()).map(|i| format!("${}", i + 3)).collect();
    let text = format!(
        "SELECT m.room_id AS room_id, CAST(COUNT(*) AS BIGINT) AS unread,
             CAST(SUM(CASE WHEN m.mentions LIKE $2 THEN 1 ELSE 0 END) AS BIGINT) AS mentioned
         FROM messaging_messages m
         LEFT JOIN messaging_reads rr ON rr.room_id = m.room_id AND rr.principal = $1
         LEFT JOIN messaging_topic_reads tr
             ON tr.room_id = m.room_id AND tr.principal = $1 AND tr.topic = m.topic
         WHERE m.room_id IN ({}) AND m.deleted_at IS NULL AND m.author <> $1
             AND m.seq > COALESCE(rr.seq, 0) AND m.seq > COALESCE(tr.seq, 0)
         GROUP BY m.room_id",
        marks.join(", ")
    );
    let mut query = sql::query(sql::AssertSqlSafe(text))
        .bind(reader)
        .bind(mention_pattern(handle));
    for room in rooms {
        query = query.bind(room.as_str());
    }
    let rows = query.fetch_all(db.pool()).await?;
    rows.iter()
        .map(|row| {
            Ok((
                row.try_get("room_id")?,
                row.try_get("unread")?,
                sum(row, "mentioned")?,
            ))
        })
        .collect()
}
