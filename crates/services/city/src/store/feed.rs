//! The feed's entries: one row per event (its id unique), numbered in the
//! order they were stored.

use daarion_store::{
    Backend, Db,
    sql::{self, AnyRow, Row},
};

type Tx = sql::Transaction<'static, sql::Any>;

use crate::{
    domain::CityError,
    feed::{Change, Entry, FeedKind},
};

const COLUMNS: &str = "seq, event_id, kind, what, subject, actor, room, dao, text, created_at";

fn entry_from(row: &AnyRow) -> Result<Entry, CityError> {
    let kind: String = row.try_get("kind")?;
    Ok(Entry {
        seq: row.try_get("seq")?,
        event_id: row.try_get("event_id")?,
        kind: FeedKind::parse(&kind)
            .ok_or_else(|| CityError::Invalid(format!("stored feed kind {kind:?}")))?,
        what: row.try_get("what")?,
        subject: row.try_get("subject")?,
        actor: row.try_get("actor")?,
        room: row.try_get("room")?,
        dao: row.try_get("dao")?,
        text: row.try_get("text")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Adds entries in one statement (the rows bound as one JSON array);
/// returns those added, with their `seq` (an event id already in the feed
/// adds nothing).
async fn insert(tx: &mut Tx, entries: Vec<Entry>) -> Result<Vec<Entry>, CityError> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| {
            serde_json::json!([
                e.event_id,
                e.kind.as_str(),
                e.what,
                e.subject,
                e.actor,
                e.room,
                e.dao,
                e.text,
                e.created_at,
            ])
        })
        .collect();
    let text = format!(
        "INSERT INTO city_feed (event_id, kind, what, subject, actor, room, dao, text, created_at)
         SELECT c0, c1, c2, c3, c4, c5, c6, c7, c8 FROM ({}) AS j WHERE true
         ON CONFLICT (event_id) DO NOTHING RETURNING seq, event_id",
        sql::json_rows(Backend::of(tx), 1, 9)
    );
    let mut seqs = std::collections::HashMap::with_capacity(entries.len());
    for row in sql::query(sql::AssertSqlSafe(text))
        .bind(serde_json::Value::from(rows).to_string())
        .fetch_all(&mut **tx)
        .await?
    {
        seqs.insert(
            row.try_get::<String, _>("event_id")?,
            row.try_get::<i64, _>("seq")?,
        );
    }
    // A repeat within the batch is added once.
    let mut added: Vec<Entry> = entries
        .into_iter()
        .filter_map(|entry| {
            seqs.remove(&entry.event_id)
                .map(|seq| Entry { seq, ..entry })
        })
        .collect();
    added.sort_by_key(|entry| entry.seq);
    Ok(added)
}

/// Applies a batch of changes in one transaction; returns the entries it
/// added (an event seen before adds nothing). New entries go in together,
/// each run of them before the edits and deletions that follow it.
pub async fn apply(db: &Db, changes: Vec<Change>) -> Result<Vec<Entry>, CityError> {
    let mut added = Vec::new();
    if changes.iter().all(|c| *c == Change::Nothing) {
        return Ok(added);
    }
    let mut tx = db.begin().await?;
    let mut run = Vec::new();
    for change in changes {
        match change {
            Change::Add(entry) => run.push(entry),
            Change::Rewrite { message, text } => {
                added.extend(insert(&mut tx, std::mem::take(&mut run)).await?);
                sql::query(
                    "UPDATE city_feed SET text = $1 WHERE subject = $2 AND what = 'message'",
                )
                .bind(text)
                .bind(message)
                .execute(&mut *tx)
                .await?;
            }
            Change::Remove { message } => {
                added.extend(insert(&mut tx, std::mem::take(&mut run)).await?);
                sql::query("DELETE FROM city_feed WHERE subject = $1 AND what = 'message'")
                    .bind(message)
                    .execute(&mut *tx)
                    .await?;
            }
            Change::Nothing => {}
        }
    }
    added.extend(insert(&mut tx, run).await?);
    tx.commit().await?;
    Ok(added)
}

/// Adds one entry; `None` if its event id is already in the feed.
pub async fn add(db: &Db, entry: Entry) -> Result<Option<Entry>, CityError> {
    let mut tx = db.begin().await?;
    let added = insert(&mut tx, vec![entry]).await?;
    tx.commit().await?;
    Ok(added.into_iter().next())
}

/// Which entries a page holds.
#[derive(Debug, Default)]
pub struct Filter<'a> {
    pub kind: Option<FeedKind>,
    pub actor: Option<&'a str>,
    pub room: Option<&'a str>,
}

/// Entries newest first, `limit + 1` at most, older than `before`.
pub async fn page(
    db: &Db,
    filter: &Filter<'_>,
    before: Option<i64>,
    limit: u32,
) -> Result<Vec<Entry>, CityError> {
    let mut conditions = vec!["seq < $1".to_owned()];
    let mut binds: Vec<&str> = Vec::new();
    for (column, value) in [
        ("kind", filter.kind.map(FeedKind::as_str)),
        ("actor", filter.actor),
        ("room", filter.room),
    ] {
        if let Some(value) = value {
            binds.push(value);
            conditions.push(format!("{column} = ${}", binds.len() + 2));
        }
    }
    let text = format!(
        "SELECT {COLUMNS} FROM city_feed WHERE {} ORDER BY seq DESC LIMIT $2",
        conditions.join(" AND ")
    );
    let mut query = sql::query(sql::AssertSqlSafe(text))
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit) + 1);
    for value in binds {
        query = query.bind(value);
    }
    let rows = query.fetch_all(db.pool()).await?;
    rows.iter().map(entry_from).collect()
}

/// Removes entries stored before `cutoff` (RFC 3339); how many.
pub async fn prune(db: &Db, cutoff: &str) -> Result<u64, CityError> {
    let done = sql::query("DELETE FROM city_feed WHERE created_at < $1")
        .bind(cutoff)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::system;

    fn message(event_id: &str, message: &str, actor: &str) -> Entry {
        Entry {
            event_id: event_id.into(),
            kind: FeedKind::RoomMessage,
            what: "message".into(),
            room: Some("general".into()),
            ..system("message", message, actor, "hello")
        }
    }

    #[tokio::test]
    async fn a_redelivered_event_adds_nothing_and_edits_and_deletions_follow() {
        for test in daarion_testkit::migrated_dbs(&[crate::SPEC.migration_set()]).await {
            let db = &test.db;
            let first = vec![
                Change::Add(message("evt_1", "msg_1", "alice")),
                Change::Add(message("evt_2", "msg_2", "bob")),
            ];
            assert_eq!(apply(db, first).await.unwrap().len(), 2);
            let again = vec![
                Change::Add(message("evt_1", "msg_1", "alice")),
                Change::Rewrite {
                    message: "msg_1".into(),
                    text: "hello, edited".into(),
                },
                Change::Remove {
                    message: "msg_2".into(),
                },
            ];
            assert!(
                apply(db, again).await.unwrap().is_empty(),
                "{:?}",
                test.db.backend()
            );
            let all = page(db, &Filter::default(), None, 10).await.unwrap();
            assert_eq!(all.len(), 1, "{:?}", test.db.backend());
            assert_eq!(
                (all[0].subject.as_str(), all[0].text.as_str()),
                ("msg_1", "hello, edited")
            );
            add(db, message("evt_3", "msg_3", "bob")).await.unwrap();
            let bobs = Filter {
                actor: Some("bob"),
                ..Filter::default()
            };
            let only = page(db, &bobs, None, 10).await.unwrap();
            assert_eq!(only.len(), 1);
            assert_eq!(only[0].subject, "msg_3");
            let older = page(db, &Filter::default(), Some(only[0].seq), 10)
                .await
                .unwrap();
            assert_eq!(older.len(), 1);
            assert_eq!(older[0].subject, "msg_1");
            let mut old = message("evt_4", "msg_4", "carol");
            old.created_at = "2026-01-01T00:00:00.000000Z".into();
            add(db, old).await.unwrap();
            assert_eq!(prune(db, "2026-06-01T00:00:00.000000Z").await.unwrap(), 1);
        }
    }
}
