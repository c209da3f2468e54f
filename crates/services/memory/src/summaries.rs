//! Rolling summaries of agents' conversation windows. An agent reads the
//! last messages of a conversation; what has left that window is folded,
//! through the agent's own model (the runtime calls it, so it is metered
//! like the agent's other calls), into a summary of everything before it:
//! each fold is the next version, made from the previous one and the
//! messages that left since. The agent reads the latest beside its window.

use daarion_store::{
    Db, StoreError,
    sql::{self, AnyRow, Row},
};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use crate::MemoryError;

/// The longest summary kept: a model that runs on is cut here.
pub const MAX_SUMMARY_CHARS: usize = 4000;

/// One version of an agent's summary of a conversation.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ConversationSummary {
    pub agent: String,
    /// `room:<id>`, or `room:<id>#<topic>`.
    pub conversation: String,
    /// 1 for the first fold, one more for each after it.
    pub version: i64,
    pub summary: String,
    /// The position (the room's message sequence) of the last message
    /// it covers: the agent's window starts after it.
    pub through: i64,
    /// How many messages it covers, earlier versions' included.
    pub messages: i64,
    /// The LLM alias that wrote it.
    pub model: String,
    pub created_at: String,
}

/// The conversation a room's window is of (a topic is its own); other
/// services name theirs (`secondme:<id>`).
pub fn room_conversation(room: &str, topic: Option<&str>) -> String {
    match topic {
        Some(topic) => format!("room:{room}#{topic}"),
        None => format!("room:{room}"),
    }
}

const FIELDS: &str = "agent, conversation, version, summary, through, messages, model, created_at";

fn summary_from(row: &AnyRow) -> Result<ConversationSummary, MemoryError> {
    Ok(ConversationSummary {
        agent: row.try_get("agent")?,
        conversation: row.try_get("conversation")?,
        version: row.try_get("version")?,
        summary: row.try_get("summary")?,
        through: row.try_get("through")?,
        messages: row.try_get("messages")?,
        model: row.try_get("model")?,
        created_at: row.try_get("created_at")?,
    })
}

/// The latest version of `agent`'s summary of `conversation`.
pub async fn latest(
    db: &Db,
    agent: &str,
    conversation: &str,
) -> Result<Option<ConversationSummary>, MemoryError> {
    Ok(versions(db, agent, conversation, i64::MAX, 1)
        .await?
        .into_iter()
        .next())
}

/// Versions of `agent`'s summary of `conversation` below `before`, newest
/// first (up to `limit + 1`, for a page).
pub async fn versions(
    db: &Db,
    agent: &str,
    conversation: &str,
    before: i64,
    limit: u32,
) -> Result<Vec<ConversationSummary>, MemoryError> {
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "SELECT {FIELDS} FROM memory_summaries
         WHERE agent = $1 AND conversation = $2 AND version < $3
         ORDER BY version DESC LIMIT $4"
    )))
    .bind(agent)
    .bind(conversation)
    .bind(before)
    .bind(i64::from(limit) + 1)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(summary_from).collect()
}

/// The latest version of each of `agent`'s summaries, by conversation,
/// after `after` (up to `limit + 1`, for a page).
pub async fn latest_of_each(
    db: &Db,
    agent: &str,
    after: &str,
    limit: u32,
) -> Result<Vec<ConversationSummary>, MemoryError> {
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "SELECT {FIELDS} FROM memory_summaries s
         WHERE agent = $1 AND conversation > $2 AND version =
             (SELECT MAX(version) FROM memory_summaries l
              WHERE l.agent = s.agent AND l.conversation = s.conversation)
         ORDER BY conversation LIMIT $3"
    )))
    .bind(agent)
    .bind(after)
    .bind(i64::from(limit) + 1)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(summary_from).collect()
}

/// Forgets every version of `agent`'s summary of `conversation` (the
/// conversation is gone).
pub async fn forget(db: &Db, agent: &str, conversation: &str) -> Result<(), MemoryError> {
    sql::query("DELETE FROM memory_summaries WHERE agent = $1 AND conversation = $2")
        .bind(agent)
        .bind(conversation)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// A fold: the summary the model wrote of `previous` and the messages that
/// left the window since, the last of them at `through`.
pub struct Fold<'a> {
    pub summary: &'a str,
    pub through: i64,
    /// Messages folded in this time.
    pub folded: i64,
    pub model: &'a str,
}

/// Keeps `fold` as the version after `previous`: `None` when another
/// replica kept that version first (its fold stands).
pub async fn keep(
    db: &Db,
    (agent, conversation): (&str, &str),
    previous: Option<&ConversationSummary>,
    fold: &Fold<'_>,
) -> Result<Option<ConversationSummary>, MemoryError> {
    let text: String = fold
        .summary
        .trim()
        .chars()
        .take(MAX_SUMMARY_CHARS)
        .collect();
    if text.is_empty() {
        return Err(MemoryError::Invalid(
            "the model wrote an empty summary".into(),
        ));
    }
    let summary = ConversationSummary {
        agent: agent.to_owned(),
        conversation: conversation.to_owned(),
        version: previous.map_or(1, |p| p.version + 1),
        summary: text,
        through: fold.through,
        messages: previous.map_or(0, |p| p.messages) + fold.folded,
        model: fold.model.to_owned(),
        created_at: daarion_store::now(),
    };
    let inserted = sql::query(sql::AssertSqlSafe(format!(
        "INSERT INTO memory_summaries ({FIELDS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    )))
    .bind(summary.agent.as_str())
    .bind(summary.conversation.as_str())
    .bind(summary.version)
    .bind(summary.summary.as_str())
    .bind(summary.through)
    .bind(summary.messages)
    .bind(summary.model.as_str())
    .bind(summary.created_at.as_str())
    .execute(db.pool())
    .await;
    match inserted {
        Ok(_) => Ok(Some(summary)),
        Err(error) => match StoreError::from(error) {
            StoreError::Conflict(_) => Ok(None),
            error => Err(error.into()),
        },
    }
}

/// What the model is asked to fold: the previous summary, if any, and the
/// messages that left the window (`(speaker, text)`, oldest first).
pub fn request(previous: Option<&str>, left: &[(String, String)]) -> Vec<Value> {
    let mut said = String::new();
    if let Some(previous) = previous {
        said.push_str("The summary so far:\n");
        said.push_str(previous);
        said.push_str("\n\n");
    }
    said.push_str("Messages to fold in, oldest first:\n");
    for (speaker, text) in left {
        said.push_str(&format!("{speaker}: {text}\n"));
    }
    vec![
        json!({"role": "system", "content":
            "You keep the running summary of a conversation for an agent that takes part in it \
             and reads only its latest messages. Write the new summary: the summary so far, \
             updated with the messages to fold in — what was decided or promised, questions \
             still open, what people said of themselves and each other, who said what when it \
             matters. At most 250 words, in the conversation's language, the summary alone."}),
        json!({"role": "user", "content": said}),
    ]
}

/// Whether a fold may be due: at least `every` positions lie between the
/// last one `previous` covers and the window's first (`window_start`).
/// Positions (a room's message sequence, a conversation's turn numbers)
/// are dense, so this bounds the messages that left from above without
/// reading any: most runs need not look.
pub fn may_be_due(previous: Option<&ConversationSummary>, window_start: i64, every: usize) -> bool {
    let since = previous.map_or(0, |p| p.through);
    usize::try_from(window_start - since - 1).is_ok_and(|between| between >= every)
}

/// How a run is told the summary, just before its window.
pub fn told(summary: &ConversationSummary) -> String {
    format!(
        "Earlier in this conversation, before the messages that follow (a summary of {} messages):\n{}",
        summary.messages, summary.summary
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_is_its_own_conversation() {
        assert_eq!(room_conversation("r1", None), "room:r1");
        assert_eq!(room_conversation("r1", Some("budget")), "room:r1#budget");
    }

    #[test]
    fn a_fold_is_looked_for_only_when_enough_lies_before_the_window() {
        let previous = ConversationSummary {
            agent: "a".into(),
            conversation: "room:r".into(),
            version: 1,
            summary: "s".into(),
            through: 10,
            messages: 10,
            model: "m".into(),
            created_at: String::new(),
        };
        assert!(!may_be_due(None, 3, 3), "positions 1 and 2 only");
        assert!(may_be_due(None, 4, 3));
        assert!(!may_be_due(Some(&previous), 13, 3), "11 and 12 only");
        assert!(may_be_due(Some(&previous), 14, 3));
        assert!(
            !may_be_due(Some(&previous), 5, 1),
            "a window before the summary's end"
        );
    }

    #[test]
    fn the_request_carries_the_summary_so_far_and_what_left() {
        let left = [("@bob".to_owned(), "we meet on Friday".to_owned())];
        let first = request(None, &left);
        let text = first[1]["content"].as_str().unwrap_or_default();
        assert!(!text.contains("summary so far") && text.contains("@bob: we meet on Friday"));
        let next = request(Some("Bob asked about Friday."), &left);
        let text = next[1]["content"].as_str().unwrap_or_default();
        assert!(text.starts_with("The summary so far:\nBob asked about Friday."));
    }
}
