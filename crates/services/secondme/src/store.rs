//! Conversations and their turns. A turn takes the conversation's next
//! number by updating its row first (which also serialises turns of one
//! conversation on PostgreSQL, as SQLite does every write); a person's
//! turn and its answer are each stored once per run.

use daarion_store::{
    Db, StoreError,
    sql::{self, AnyRow, Row},
};

use crate::domain::{Conversation, SecondMeError, Speaker, Turn};

type Tx = sql::Transaction<'static, sql::Any>;

const CONVERSATION: &str =
    "SELECT id, title, turns, created_at, updated_at FROM secondme_conversations";
const TURN: &str = "SELECT seq, role, content, run_id, recalled, created_at FROM secondme_turns";

fn conversation_from(row: &AnyRow) -> Result<Conversation, SecondMeError> {
    Ok(Conversation {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        turns: row.try_get("turns")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn turn_from(row: &AnyRow) -> Result<Turn, SecondMeError> {
    let role: String = row.try_get("role")?;
    Ok(Turn {
        seq: row.try_get("seq")?,
        role: Speaker::parse(&role)
            .ok_or_else(|| SecondMeError::Invalid(format!("stored role {role:?}")))?,
        content: row.try_get("content")?,
        run_id: row.try_get("run_id")?,
        recalled: row.try_get::<i64, _>("recalled")? != 0,
        created_at: row.try_get("created_at")?,
    })
}

/// `person`'s conversation `id`, if it is theirs.
pub async fn conversation(
    db: &Db,
    person: &str,
    id: &str,
) -> Result<Option<Conversation>, SecondMeError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "{CONVERSATION} WHERE id = $1 AND person = $2"
    )))
    .bind(id)
    .bind(person)
    .fetch_optional(db.reader())
    .await?;
    row.as_ref().map(conversation_from).transpose()
}

/// `person`'s conversations, the latest spoken in first, after the
/// position `(updated_at, id)` of a previous page's last one.
pub async fn conversations(
    db: &Db,
    person: &str,
    after: Option<(&str, &str)>,
    limit: u32,
) -> Result<Vec<Conversation>, SecondMeError> {
    let (at, id) = after.unwrap_or(("~", "~"));
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "{CONVERSATION} WHERE person = $1 AND (updated_at < $2 OR (updated_at = $2 AND id < $3))
         ORDER BY updated_at DESC, id DESC LIMIT $4"
    )))
    .bind(person)
    .bind(at)
    .bind(id)
    .bind(i64::from(limit) + 1)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(conversation_from).collect()
}

/// A conversation's turns after number `after`, in order.
pub async fn turns(
    db: &Db,
    conversation: &str,
    after: i64,
    limit: u32,
) -> Result<Vec<Turn>, SecondMeError> {
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "{TURN} WHERE conversation = $1 AND seq > $2 ORDER BY seq LIMIT $3"
    )))
    .bind(conversation)
    .bind(after)
    .bind(i64::from(limit) + 1)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(turn_from).collect()
}

/// The last `n` turns before number `before`, in order: what a run reads
/// of the conversation so far.
pub async fn window(
    db: &Db,
    conversation: &str,
    before: i64,
    n: usize,
) -> Result<Vec<Turn>, SecondMeError> {
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "{TURN} WHERE conversation = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
    )))
    .bind(conversation)
    .bind(before)
    .bind(i64::try_from(n).unwrap_or(i64::MAX))
    .fetch_all(db.reader())
    .await?;
    let mut turns = rows.iter().map(turn_from).collect::<Result<Vec<_>, _>>()?;
    turns.reverse();
    Ok(turns)
}

/// The conversation and turn `role` said in run `run_id`.
async fn of_run(
    tx: &mut Tx,
    run_id: &str,
    role: Speaker,
) -> Result<Option<(Conversation, Turn)>, SecondMeError> {
    let row = sql::query(
        "SELECT c.id, c.title, c.turns, c.created_at, c.updated_at,
                t.seq, t.role, t.content, t.run_id, t.recalled, t.created_at AS said_at
         FROM secondme_turns t JOIN secondme_conversations c ON c.id = t.conversation
         WHERE t.run_id = $1 AND t.role = $2",
    )
    .bind(run_id)
    .bind(role.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let mut turn = turn_from(&row)?;
    turn.created_at = row.try_get("said_at")?;
    Ok(Some((conversation_from(&row)?, turn)))
}

/// Appends a turn to `conversation`, taking its next number.
async fn append(
    tx: &mut Tx,
    conversation: &str,
    (role, content, run_id, recalled): (Speaker, &str, &str, bool),
) -> Result<Option<(Conversation, Turn)>, SecondMeError> {
    let now = daarion_store::now();
    let row = sql::query(
        "UPDATE secondme_conversations SET turns = turns + 1, updated_at = $2 WHERE id = $1
         RETURNING id, title, turns, created_at, updated_at",
    )
    .bind(conversation)
    .bind(now.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let conversation = conversation_from(&row)?;
    let turn = Turn {
        seq: conversation.turns,
        role,
        content: content.to_owned(),
        run_id: run_id.to_owned(),
        recalled,
        created_at: now,
    };
    sql::query(
        "INSERT INTO secondme_turns (conversation, seq, role, content, run_id, recalled, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(conversation.id.as_str())
    .bind(turn.seq)
    .bind(role.as_str())
    .bind(content)
    .bind(run_id)
    .bind(i64::from(recalled))
    .bind(turn.created_at.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(Some((conversation, turn)))
}

/// `person` says `text` in run `run_id`: in their `conversation`, or in a
/// new one titled `title`. The conversation and the turn, and whether they
/// are new — a run already said (a retry with the same key) answers the
/// turn it stored.
pub async fn say(
    db: &Db,
    person: &str,
    conversation: Option<&str>,
    said: (&str, &str, &str),
) -> Result<(Conversation, Turn, bool), SecondMeError> {
    match say_once(db, person, conversation, said).await {
        // The same run said at the same moment by a concurrent retry.
        Err(SecondMeError::Store(StoreError::Conflict(_))) => {
            let mut tx = db.begin().await?;
            let turn = of_run(&mut tx, said.2, Speaker::User).await?;
            turn.map(|(c, t)| (c, t, false))
                .ok_or_else(|| SecondMeError::Conflict("the turn was said twice at once".into()))
        }
        said => said,
    }
}

async fn say_once(
    db: &Db,
    person: &str,
    conversation: Option<&str>,
    (text, title, run_id): (&str, &str, &str),
) -> Result<(Conversation, Turn, bool), SecondMeError> {
    let mut tx = db.begin().await?;
    if let Some((conversation, turn)) = of_run(&mut tx, run_id, Speaker::User).await? {
        return Ok((conversation, turn, false));
    }
    let id = match conversation {
        Some(id) => {
            let mine = sql::query(
                "SELECT 1 AS one FROM secondme_conversations WHERE id = $1 AND person = $2",
            )
            .bind(id)
            .bind(person)
            .fetch_optional(&mut *tx)
            .await?;
            if mine.is_none() {
                return Err(SecondMeError::NotFound(format!("no conversation {id:?}")));
            }
            id.to_owned()
        }
        None => {
            let id = format!("smc_{}", uuid::Uuid::now_v7().simple());
            let now = daarion_store::now();
            sql::query(
                "INSERT INTO secondme_conversations (id, person, title, turns, created_at, updated_at)
                 VALUES ($1, $2, $3, 0, $4, $4)",
            )
            .bind(id.as_str())
            .bind(person)
            .bind(title)
            .bind(now.as_str())
            .execute(&mut *tx)
            .await?;
            id
        }
    };
    let (conversation, turn) = append(&mut tx, &id, (Speaker::User, text, run_id, false))
        .await?
        .ok_or_else(|| SecondMeError::NotFound(format!("no conversation {id:?}")))?;
    tx.commit().await?;
    Ok((conversation, turn, true))
}

/// Stores the answer of run `run_id` in `conversation` (`recalled`: the run
/// was given what the person told before), once: `None` if the
/// conversation was deleted meanwhile.
pub async fn answered(
    db: &Db,
    conversation: &str,
    (run_id, answer, recalled): (&str, &str, bool),
) -> Result<Option<Turn>, SecondMeError> {
    let mut tx = db.begin().await?;
    if let Some((_, turn)) = of_run(&mut tx, run_id, Speaker::Assistant).await? {
        return Ok(Some(turn));
    }
    let appended = append(
        &mut tx,
        conversation,
        (Speaker::Assistant, answer, run_id, recalled),
    )
    .await?;
    tx.commit().await?;
    Ok(appended.map(|(_, turn)| turn))
}

/// Deletes `person`'s conversation `id` with its turns; `false` if they
/// have no such conversation.
pub async fn delete(db: &Db, person: &str, id: &str) -> Result<bool, SecondMeError> {
    let mut tx = db.begin().await?;
    let gone = sql::query("DELETE FROM secondme_conversations WHERE id = $1 AND person = $2")
        .bind(id)
        .bind(person)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if gone == 0 {
        return Ok(false);
    }
    sql::query("DELETE FROM secondme_turns WHERE conversation = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// Deletes all of `person`'s conversations; the ids of those that went.
pub async fn erase(db: &Db, person: &str) -> Result<Vec<String>, SecondMeError> {
    let mut tx = db.begin().await?;
    let ids = sql::query("SELECT id FROM secondme_conversations WHERE person = $1")
        .bind(person)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| row.try_get::<String, _>("id"))
        .collect::<Result<Vec<_>, _>>()?;
    sql::query(
        "DELETE FROM secondme_turns WHERE conversation IN
             (SELECT id FROM secondme_conversations WHERE person = $1)",
    )
    .bind(person)
    .execute(&mut *tx)
    .await?;
    sql::query("DELETE FROM secondme_conversations WHERE person = $1")
        .bind(person)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(ids)
}
