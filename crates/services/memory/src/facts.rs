//! Facts: subject, predicate, object — with where each came from, how
//! sure it is, and since when it holds. A microDAO's facts are read by its
//! members; a person's own (scope `user:<id>`) by them alone.
//!
//! A predicate holds one object at a time unless written as `many`: a
//! fact whose object differs from the current one's supersedes it if it
//! holds from the same time or later, and the old one stays as history
//! (`superseded_by`); one that holds from earlier goes into history at
//! once — learning of an old address late does not undo the new one. The
//! same object again is the fact already known (its confidence raised to
//! the higher of the two). Facts whose objects are other facts' subjects
//! make the relations graph (`graph`).

use daarion_bus::{Envelope, Outbox, Staged};
use daarion_store::{
    Db,
    idempotency::{self, Claim},
    sql::{self, Row},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use crate::{SERVICE, domain::MemoryError};

pub const EVENTS: &str = "memory.fact.*";

/// Longest subject, predicate or object, in characters.
pub const MAX_TERM_CHARS: usize = 300;
const MAX_SOURCE_CHARS: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Cardinality {
    /// One object at a time: a different one supersedes it.
    One,
    /// Several at once (a person speaks Ukrainian and English).
    Many,
}

impl Cardinality {
    fn as_str(self) -> &'static str {
        match self {
            Self::One => "one",
            Self::Many => "many",
        }
    }
}

/// A fact to remember, checked.
#[derive(Debug, Clone)]
pub struct NewFact {
    pub subject: String,
    pub predicate: String,
    pub object: String,
    pub cardinality: Cardinality,
    pub confidence: f64,
    pub source: String,
    pub about: Option<String>,
    pub valid_from: Option<String>,
}

impl NewFact {
    /// Checks and trims what a caller wrote; `about` must be `user:<id>`
    /// and `valid_from` an RFC 3339 time.
    pub fn checked(mut self) -> Result<Self, MemoryError> {
        for (name, value) in [
            ("subject", &mut self.subject),
            ("predicate", &mut self.predicate),
            ("object", &mut self.object),
        ] {
            *value = value.trim().to_owned();
            if value.is_empty() || value.chars().count() > MAX_TERM_CHARS || value.contains('\0') {
                return Err(MemoryError::Invalid(format!(
                    "{name} must be 1 to {MAX_TERM_CHARS} characters"
                )));
            }
        }
        if !(0.0..=1.0).contains(&self.confidence) {
            return Err(MemoryError::Invalid(
                "confidence must be between 0 and 1".into(),
            ));
        }
        self.source = self.source.trim().to_owned();
        if self.source.chars().count() > MAX_SOURCE_CHARS || self.source.contains('\0') {
            return Err(MemoryError::Invalid(format!(
                "source must be at most {MAX_SOURCE_CHARS} characters"
            )));
        }
        if let Some(about) = &self.about
            && !about
                .strip_prefix("user:")
                .is_some_and(|id| !id.is_empty() && id.len() <= 100)
        {
            return Err(MemoryError::Invalid(
                "about must name a person as user:<id>".into(),
            ));
        }
        if let Some(at) = &self.valid_from {
            let parsed = chrono::DateTime::parse_from_rfc3339(at)
                .map_err(|_| MemoryError::Invalid("valid_from must be an RFC 3339 time".into()))?;
            self.valid_from = Some(daarion_store::format_time(
                parsed.with_timezone(&chrono::Utc),
            ));
        }
        Ok(self)
    }
}

/// How entities and predicates are matched: lower case, single spaces.
pub fn key(term: &str) -> String {
    term.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// A fact as read back.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Fact {
    pub id: String,
    /// `dao:<slug>` or `user:<id>` (a person's own).
    pub scope: String,
    pub subject: String,
    pub predicate: String,
    pub object: String,
    pub cardinality: Cardinality,
    pub confidence: f64,
    /// Where it came from, as its writer said (a conversation, a document…).
    pub source: String,
    /// `user:<id>` when it is about a person.
    pub about: Option<String>,
    /// `user:<id>` or `agent:<id>`.
    pub author: String,
    pub author_name: String,
    /// Since when it holds.
    pub valid_from: String,
    pub created_at: String,
    /// The fact that replaced it, when it is history.
    pub superseded_by: Option<String>,
    pub superseded_at: Option<String>,
}

const FIELDS: &str = "id, scope, subject, predicate, object, cardinality, confidence, source, about, author, author_name, valid_from, created_at, superseded_by, superseded_at";

fn fact_from(row: &sql::AnyRow) -> Result<Fact, MemoryError> {
    let cardinality: String = row.try_get("cardinality")?;
    Ok(Fact {
        id: row.try_get("id")?,
        scope: row.try_get("scope")?,
        subject: row.try_get("subject")?,
        predicate: row.try_get("predicate")?,
        object: row.try_get("object")?,
        cardinality: if cardinality == "many" {
            Cardinality::Many
        } else {
            Cardinality::One
        },
        confidence: row.try_get("confidence")?,
        source: row.try_get("source")?,
        about: row.try_get("about")?,
        author: row.try_get("author")?,
        author_name: row.try_get("author_name")?,
        valid_from: row.try_get("valid_from")?,
        created_at: row.try_get("created_at")?,
        superseded_by: row.try_get("superseded_by")?,
        superseded_at: row.try_get("superseded_at")?,
    })
}

/// What a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A new current fact (superseding one, if `replaced` is set).
    Stored,
    /// The same fact was known: that one is answered.
    Known,
    /// Older than the current fact: kept as history.
    History,
}

/// Remembers `new` in `scope` as `author` (`user:<id>` or `agent:<id>`,
/// and the name shown): the fact as it now stands, what the write did, and
/// the fact it superseded. With an `Idempotency-Key`, a retry answers the
/// first write's fact.
pub async fn record(
    db: &Db,
    outbox: &Outbox,
    scope: &str,
    new: &NewFact,
    (author, author_name): (&str, &str),
    idempotency_key: Option<&str>,
) -> Result<(Fact, Outcome, Option<String>), MemoryError> {
    // A racing writer of the same subject and predicate makes this one's
    // insert conflict with the unique current fact: read again and retry.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_record(
            db,
            outbox,
            scope,
            new,
            (author, author_name),
            idempotency_key,
        )
        .await
        {
            Err(MemoryError::Store(daarion_store::StoreError::Conflict(_))) if attempt < 3 => {}
            other => return other,
        }
    }
}

async fn try_record(
    db: &Db,
    outbox: &Outbox,
    scope: &str,
    new: &NewFact,
    (author, author_name): (&str, &str),
    idempotency_key: Option<&str>,
) -> Result<(Fact, Outcome, Option<String>), MemoryError> {
    let mut tx = db.begin().await?;
    let claim_scope = format!("memory.facts:{author}");
    if let Some(key) = idempotency_key {
        let confidence = new.confidence.to_string();
        let hash = idempotency::fingerprint(&[
            scope,
            &new.subject,
            &new.predicate,
            &new.object,
            new.cardinality.as_str(),
            &confidence,
            &new.source,
            new.about.as_deref().unwrap_or(""),
            new.valid_from.as_deref().unwrap_or(""),
        ]);
        if let Claim::Replay(id) = idempotency::claim(&mut tx, &claim_scope, key, &hash).await? {
            tx.commit().await.map_err(daarion_store::StoreError::from)?;
            let fact = fact(db, &id).await?.ok_or(MemoryError::NotFound(id))?;
            return Ok((fact, Outcome::Known, None));
        }
    }
    let (subject_key, predicate_key, object_key) =
        (key(&new.subject), key(&new.predicate), key(&new.object));
    let now = daarion_store::now();
    let valid_from = new.valid_from.clone().unwrap_or_else(|| now.clone());
    let current = sql::query(sql::AssertSqlSafe(format!(
        "SELECT {FIELDS}, object_key FROM memory_facts
         WHERE scope = $1 AND subject_key = $2 AND predicate_key = $3 AND superseded_by IS NULL
           AND (cardinality = 'one' OR object_key = $4)
         ORDER BY valid_from DESC LIMIT 1"
    )))
    .bind(scope)
    .bind(subject_key.as_str())
    .bind(predicate_key.as_str())
    .bind(object_key.as_str())
    .fetch_optional(&mut *tx)
    .await?;
    let current = current
        .map(|row| {
            Ok::<_, MemoryError>((fact_from(&row)?, row.try_get::<String, _>("object_key")?))
        })
        .transpose()?;
    let id = format!("fact_{}", uuid::Uuid::now_v7().simple());
    let (outcome, superseded_by, replaced) = match &current {
        Some((known, known_object)) if *known_object == object_key => {
            sql::query("UPDATE memory_facts SET confidence = $2 WHERE id = $1 AND confidence < $2")
                .bind(known.id.as_str())
                .bind(new.confidence)
                .execute(&mut *tx)
                .await?;
            if let Some(key) = idempotency_key {
                idempotency::complete(&mut tx, &claim_scope, key, &known.id).await?;
            }
            tx.commit().await.map_err(daarion_store::StoreError::from)?;
            let mut fact = known.clone();
            fact.confidence = fact.confidence.max(new.confidence);
            return Ok((fact, Outcome::Known, None));
        }
        Some((known, _)) if known.valid_from > valid_from => {
            (Outcome::History, Some(known.id.clone()), None)
        }
        Some((known, _)) => {
            sql::query(
                "UPDATE memory_facts SET superseded_by = $2, superseded_at = $3 WHERE id = $1",
            )
            .bind(known.id.as_str())
            .bind(id.as_str())
            .bind(now.as_str())
            .execute(&mut *tx)
            .await?;
            (Outcome::Stored, None, Some(known.id.clone()))
        }
        None => (Outcome::Stored, None, None),
    };
    let row = sql::query(sql::AssertSqlSafe(format!(
        "INSERT INTO memory_facts (id, scope, subject, predicate, object, subject_key, predicate_key,
             object_key, cardinality, confidence, source, about, author, author_name, valid_from,
             created_at, superseded_by, superseded_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
         RETURNING {FIELDS}"
    )))
    .bind(id.as_str())
    .bind(scope)
    .bind(new.subject.as_str())
    .bind(new.predicate.as_str())
    .bind(new.object.as_str())
    .bind(subject_key.as_str())
    .bind(predicate_key.as_str())
    .bind(object_key.as_str())
    .bind(new.cardinality.as_str())
    .bind(new.confidence)
    .bind(new.source.as_str())
    .bind(new.about.as_deref())
    .bind(author)
    .bind(author_name)
    .bind(valid_from.as_str())
    .bind(now.as_str())
    .bind(superseded_by.as_deref())
    .bind(superseded_by.as_ref().map(|_| now.as_str()))
    .fetch_one(&mut *tx)
    .await?;
    let fact = fact_from(&row)?;
    if let Some(key) = idempotency_key {
        idempotency::complete(&mut tx, &claim_scope, key, &id).await?;
    }
    let staged = stage(&mut tx, outbox, &fact, "stored", replaced.as_deref()).await?;
    tx.commit().await.map_err(daarion_store::StoreError::from)?;
    outbox.relay(staged).await;
    Ok((fact, outcome, replaced))
}

/// `memory.fact.<dao>` for a microDAO's facts; a person's own are told to
/// no one.
async fn stage(
    tx: &mut sql::Transaction<'_, sql::Any>,
    outbox: &Outbox,
    fact: &Fact,
    change: &str,
    replaced: Option<&str>,
) -> Result<Staged, MemoryError> {
    let Some(dao) = fact.scope.strip_prefix("dao:") else {
        return Ok(Staged::none());
    };
    let event = Envelope::new(
        SERVICE,
        format!("memory.fact.{dao}"),
        json!({
            "change": change,
            "fact": fact.id,
            "dao": dao,
            "subject": fact.subject,
            "predicate": fact.predicate,
            "object": fact.object,
            "superseded": replaced,
        }),
    )
    .with_actor(fact.author.as_str());
    Ok(outbox.stage(tx, vec![event]).await?)
}

pub async fn fact(db: &Db, id: &str) -> Result<Option<Fact>, MemoryError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "SELECT {FIELDS} FROM memory_facts WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(fact_from).transpose()
}

/// A fact's scope and author, for the policies.
pub async fn owner(db: &Db, id: &str) -> Result<Option<(String, String)>, MemoryError> {
    let row = sql::query("SELECT scope, author FROM memory_facts WHERE id = $1")
        .bind(id)
        .fetch_optional(db.reader())
        .await?;
    row.map(|r| Ok((r.try_get("scope")?, r.try_get("author")?)))
        .transpose()
}

/// Which facts a listing wants.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub subject: Option<String>,
    pub predicate: Option<String>,
    /// `user:<id>`.
    pub about: Option<String>,
    /// Superseded facts too.
    pub history: bool,
}

/// `scope`'s facts matching `filter`, newest first, `limit + 1` at most,
/// older than the fact `before`.
pub async fn list(
    db: &Db,
    scope: &str,
    filter: &Filter,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<Fact>, MemoryError> {
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "SELECT {FIELDS} FROM memory_facts
         WHERE scope = $1 AND id < $2
           AND ($3 = '' OR subject_key = $3) AND ($4 = '' OR predicate_key = $4)
           AND ($5 = '' OR about = $5) AND ($6 = 1 OR superseded_by IS NULL)
         ORDER BY id DESC LIMIT $7"
    )))
    .bind(scope)
    .bind(before.unwrap_or("~"))
    .bind(filter.subject.as_deref().map(key).unwrap_or_default())
    .bind(filter.predicate.as_deref().map(key).unwrap_or_default())
    .bind(filter.about.as_deref().unwrap_or(""))
    .bind(i64::from(filter.history))
    .bind(i64::from(limit) + 1)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(fact_from).collect()
}

/// Every version of `fact`'s subject and predicate (of its object too,
/// for a `many` predicate), the one holding latest first.
pub async fn history(db: &Db, fact: &Fact) -> Result<Vec<Fact>, MemoryError> {
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "SELECT {FIELDS} FROM memory_facts
         WHERE scope = $1 AND subject_key = $2 AND predicate_key = $3
           AND (cardinality = 'one' OR object_key = $4)
         ORDER BY valid_from DESC, id DESC LIMIT 200"
    )))
    .bind(fact.scope.as_str())
    .bind(key(&fact.subject))
    .bind(key(&fact.predicate))
    .bind(key(&fact.object))
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(fact_from).collect()
}

/// Forgets a fact. The one it had superseded (if any) holds again, unless
/// another fact holds already; `false`: there was no such fact.
pub async fn delete(db: &Db, outbox: &Outbox, id: &str) -> Result<bool, MemoryError> {
    let mut tx = db.begin().await?;
    let row = sql::query(sql::AssertSqlSafe(format!(
        "DELETE FROM memory_facts WHERE id = $1 RETURNING {FIELDS}"
    )))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    let fact = fact_from(&row)?;
    // What it had replaced now answers to what replaces it: the newest of
    // those holds again when it was current, else its own successor.
    let successor = match &fact.superseded_by {
        Some(next) => Some(next.clone()),
        None => {
            let restored = sql::query(
                "UPDATE memory_facts SET superseded_by = NULL, superseded_at = NULL
                 WHERE id = (SELECT id FROM memory_facts WHERE superseded_by = $1
                             ORDER BY valid_from DESC, id DESC LIMIT 1)
                 RETURNING id",
            )
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
            restored.map(|r| r.try_get::<String, _>("id")).transpose()?
        }
    };
    if let Some(successor) = successor {
        sql::query("UPDATE memory_facts SET superseded_by = $2 WHERE superseded_by = $1")
            .bind(id)
            .bind(successor)
            .execute(&mut *tx)
            .await?;
    }
    let staged = stage(&mut tx, outbox, &fact, "deleted", None).await?;
    tx.commit().await.map_err(daarion_store::StoreError::from)?;
    outbox.relay(staged).await;
    Ok(true)
}

/// The facts `subject` (`user:<id>`) wrote, that are about them, or that
/// are their own, oldest first.
pub async fn of_person(db: &Db, subject: &str) -> Result<Vec<Fact>, MemoryError> {
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "SELECT {FIELDS} FROM memory_facts WHERE author = $1 OR about = $1 OR scope = $1 ORDER BY id"
    )))
    .bind(subject)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(fact_from).collect()
}

/// Erases every fact [`of_person`] finds, history included; how many.
pub async fn erase_person(db: &Db, subject: &str) -> Result<u64, MemoryError> {
    let done = sql::query("DELETE FROM memory_facts WHERE author = $1 OR about = $1 OR scope = $1")
        .bind(subject)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected())
}

/// Current facts of `scope` whose subject `text` names (as whole words),
/// `limit` at most, the latest first: what an agent is told beside a
/// question.
pub async fn named_in(
    db: &Db,
    scope: &str,
    text: &str,
    limit: usize,
) -> Result<Vec<Fact>, MemoryError> {
    let words: String = text
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    let padded = format!(" {} ", key(&words));
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "SELECT {FIELDS} FROM memory_facts
         WHERE scope = $1 AND superseded_by IS NULL AND length(subject_key) >= 2
           AND $2 LIKE '% ' || subject_key || ' %'
         ORDER BY valid_from DESC, id DESC LIMIT $3"
    )))
    .bind(scope)
    .bind(padded)
    .bind(limit as i64)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(fact_from).collect()
}

/// Current facts of `scope` that touch any entity of `keys` (as subject or
/// object), `limit` at most: one step of the graph.
pub async fn touching(
    db: &Db,
    scope: &str,
    keys: &[String],
    limit: usize,
) -> Result<Vec<(Fact, String, String)>, MemoryError> {
    let list = serde_json::Value::from(keys.to_vec()).to_string();
    let set = sql::json_texts(db.backend(), 2);
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "SELECT {FIELDS}, subject_key, object_key FROM memory_facts
         WHERE scope = $1 AND superseded_by IS NULL
           AND (subject_key IN ({set}) OR object_key IN ({set}))
         ORDER BY id LIMIT $3"
    )))
    .bind(scope)
    .bind(list)
    .bind(limit as i64)
    .fetch_all(db.reader())
    .await?;
    rows.iter()
        .map(|r| {
            Ok((
                fact_from(r)?,
                r.try_get("subject_key")?,
                r.try_get("object_key")?,
            ))
        })
        .collect()
}
