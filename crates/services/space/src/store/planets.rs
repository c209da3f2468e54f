//! Planets: what the microDAO service, messaging and the runtime tell,
//! kept as figures.
//! Each event is applied once (`space_seen` holds the ids applied), in the
//! transaction that applies it, so a redelivered event counts nothing twice.

use std::collections::HashMap;

use daarion_bus::Envelope;
use daarion_store::{
    Db,
    sql::{self, AnyRow, Row},
};

use crate::domain::SpaceError;

type Tx = sql::Transaction<'static, sql::Any>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planet {
    pub slug: String,
    pub name: String,
    pub parent: Option<String>,
    pub members: i64,
    /// Points minted by its treasury.
    pub supply: i64,
}

fn planet_from(row: &AnyRow) -> Result<Planet, SpaceError> {
    Ok(Planet {
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        parent: row.try_get("parent")?,
        members: row.try_get("members")?,
        supply: row.try_get("supply")?,
    })
}

fn text(value: &serde_json::Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// `YYYY-MM-DD` of an RFC 3339 time.
fn day_of(time: &str) -> &str {
    time.get(..10).unwrap_or(time)
}

async fn recount(tx: &mut Tx, dao: &str) -> Result<(), SpaceError> {
    sql::query(
        "UPDATE space_planets SET members = (SELECT COUNT(*) FROM space_members WHERE dao = $1)
         WHERE slug = $1",
    )
    .bind(dao)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn member(tx: &mut Tx, dao: &str, principal: &str, present: bool) -> Result<(), SpaceError> {
    let statement = if present {
        "INSERT INTO space_members (dao, principal) VALUES ($1, $2) ON CONFLICT (dao, principal) DO NOTHING"
    } else {
        "DELETE FROM space_members WHERE dao = $1 AND principal = $2"
    };
    sql::query(statement)
        .bind(dao)
        .bind(principal)
        .execute(&mut **tx)
        .await?;
    recount(tx, dao).await
}

/// Whether `event` changes a planet: most messages (public rooms,
/// conversations) do not, and cost no write.
fn matters(event: &Envelope) -> bool {
    event.subject.starts_with("microdao.")
        || (event.subject.starts_with("message.received.")
            && event.payload["room"]["kind"] == "dao")
        || (event.subject.starts_with("agent.run.completed.")
            && event.payload["room"]
                .as_str()
                .is_some_and(|r| !r.is_empty()))
}

/// The microDAO of each room a run event answered in (runs carry only the
/// room), read before the batch's transaction.
async fn daos_of_runs<'e>(
    db: &Db,
    events: &[&'e Envelope],
) -> Result<HashMap<&'e str, String>, SpaceError> {
    let mut daos = HashMap::new();
    for event in events {
        let Some(room) = event.payload["room"].as_str() else {
            continue;
        };
        if !event.subject.starts_with("agent.run.") || daos.contains_key(room) {
            continue;
        }
        let found = daarion_messaging::store::room(db, room).await?;
        if let Some(dao) = found.and_then(|r| r.dao) {
            daos.insert(room, dao);
        }
    }
    Ok(daos)
}

/// Applies one event, unless it was applied before.
async fn apply_one(
    tx: &mut Tx,
    event: &Envelope,
    run_daos: &HashMap<&str, String>,
) -> Result<(), SpaceError> {
    let fresh = sql::query(
        "INSERT INTO space_seen (event_id, seen_at) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(&event.id)
    .bind(daarion_store::now())
    .execute(&mut **tx)
    .await?
    .rows_affected();
    if fresh == 0 {
        return Ok(());
    }
    let parts: Vec<&str> = event.subject.split('.').collect();
    let payload = &event.payload;
    match parts.as_slice() {
        ["microdao", "dao", what, dao] => {
            sql::query(
                "INSERT INTO space_planets (slug, name, public, archived, parent, members, supply, updated_at)
                 VALUES ($1, $2, $3, $4, $5, 0, 0, $6)
                 ON CONFLICT (slug) DO UPDATE SET name = excluded.name, public = excluded.public,
                     archived = excluded.archived, parent = excluded.parent,
                     updated_at = excluded.updated_at",
            )
            .bind(*dao)
            .bind(text(&payload["name"]))
            .bind(i64::from(payload["visibility"] == "public"))
            .bind(i64::from(payload["archived"] == true))
            .bind(payload["parent"].as_str())
            .bind(&event.time)
            .execute(&mut **tx)
            .await?;
            match (*what, event.actor.as_deref()) {
                // Its founder is its first member (no member event says so).
                ("created", Some(founder)) => member(tx, dao, founder, true).await?,
                _ => recount(tx, dao).await?,
            }
        }
        ["microdao", "member", change, dao] => {
            let principal = text(&payload["principal"]);
            match *change {
                "joined" => member(tx, dao, principal, true).await?,
                "left" | "removed" | "banned" => member(tx, dao, principal, false).await?,
                _ => {}
            }
        }
        ["microdao", "treasury", "mint", dao] => {
            sql::query("UPDATE space_planets SET supply = supply + $1 WHERE slug = $2")
                .bind(payload["amount"].as_i64().unwrap_or(0))
                .bind(*dao)
                .execute(&mut **tx)
                .await?;
        }
        ["message", "received", _] if payload["room"]["kind"] == "dao" => {
            let Some(dao) = payload["room"]["dao"].as_str() else {
                return Ok(());
            };
            sql::query(
                "INSERT INTO space_activity (dao, day, messages) VALUES ($1, $2, 1)
                 ON CONFLICT (dao, day) DO UPDATE SET messages = space_activity.messages + 1",
            )
            .bind(dao)
            .bind(day_of(&event.time))
            .execute(&mut **tx)
            .await?;
        }
        ["agent", "run", "completed", _] => {
            let Some(dao) = payload["room"].as_str().and_then(|r| run_daos.get(r)) else {
                return Ok(());
            };
            sql::query(
                "INSERT INTO space_activity (dao, day, messages, runs) VALUES ($1, $2, 0, 1)
                 ON CONFLICT (dao, day) DO UPDATE SET runs = space_activity.runs + 1",
            )
            .bind(dao.as_str())
            .bind(day_of(&event.time))
            .execute(&mut **tx)
            .await?;
        }
        _ => {}
    }
    Ok(())
}

/// Applies a batch of events in one transaction.
pub async fn apply(db: &Db, events: &[Envelope]) -> Result<(), SpaceError> {
    let relevant: Vec<&Envelope> = events.iter().filter(|e| matters(e)).collect();
    if relevant.is_empty() {
        return Ok(());
    }
    let run_daos = daos_of_runs(db, &relevant).await?;
    let mut tx = db.begin().await?;
    for event in relevant {
        apply_one(&mut tx, event, &run_daos).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Forgets event ids seen before `cutoff` (redeliveries come within
/// minutes, not days); how many.
pub async fn prune_seen(db: &Db, cutoff: &str) -> Result<u64, SpaceError> {
    let done = sql::query("DELETE FROM space_seen WHERE seen_at < $1")
        .bind(cutoff)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected())
}

const PLANET_COLUMNS: &str = "SELECT slug, name, parent, members, supply FROM space_planets \
     WHERE public = 1 AND archived = 0";

/// Public planets by slug, `limit + 1` at most, after `after`, whose name
/// or slug holds `query` (any case).
pub async fn directory(
    db: &Db,
    query: Option<&str>,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Planet>, SpaceError> {
    let pattern = query.map(|q| {
        let escaped = q
            .to_lowercase()
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_");
        format!("%{escaped}%")
    });
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "{PLANET_COLUMNS} AND slug > $1
             AND ($2 = '' OR LOWER(name) LIKE $2 ESCAPE '\\' OR slug LIKE $2 ESCAPE '\\')
         ORDER BY slug LIMIT $3"
    )))
    .bind(after.unwrap_or(""))
    .bind(pattern.as_deref().unwrap_or(""))
    .bind(i64::from(limit) + 1)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(planet_from).collect()
}

/// A public planet.
pub async fn planet(db: &Db, slug: &str) -> Result<Option<Planet>, SpaceError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "{PLANET_COLUMNS} AND slug = $1"
    )))
    .bind(slug)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(planet_from).transpose()
}

/// What happened on a planet one day (UTC).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Day {
    /// `YYYY-MM-DD`.
    pub day: String,
    pub messages: i64,
    /// Agent runs completed in its rooms.
    pub runs: i64,
}

/// Days from `since` (a `YYYY-MM-DD`) on, oldest first; days without
/// messages or runs are absent.
pub async fn activity(db: &Db, dao: &str, since: &str) -> Result<Vec<Day>, SpaceError> {
    let rows = sql::query(
        "SELECT day, messages, runs FROM space_activity WHERE dao = $1 AND day >= $2 ORDER BY day",
    )
    .bind(dao)
    .bind(since)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Day {
                day: row.try_get("day")?,
                messages: row.try_get("messages")?,
                runs: row.try_get("runs")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn event(subject: &str, payload: serde_json::Value) -> Envelope {
        Envelope::new("test", subject, payload).with_actor("user:founder")
    }

    #[tokio::test]
    async fn a_redelivered_event_counts_once() {
        for test in daarion_testkit::migrated_dbs(&[crate::SPEC.migration_set()]).await {
            let db = &test.db;
            let created = event(
                "microdao.dao.created.makers",
                json!({ "slug": "makers", "name": "Makers", "visibility": "public", "archived": false }),
            );
            let joined = event(
                "microdao.member.joined.makers",
                json!({ "dao": "makers", "principal": "user:alice" }),
            );
            let minted = event(
                "microdao.treasury.mint.makers",
                json!({ "dao": "makers", "amount": 40 }),
            );
            let message = event(
                "message.received.rm_1",
                json!({ "room": { "id": "rm_1", "kind": "dao", "dao": "makers" } }),
            );
            let batch = [created, joined, minted, message];
            apply(db, &batch).await.unwrap();
            apply(db, &batch).await.unwrap();
            let planet = planet(db, "makers").await.unwrap().unwrap();
            assert_eq!(
                (planet.members, planet.supply),
                (2, 40),
                "{:?}",
                db.backend()
            );
            let days = activity(db, "makers", "2000-01-01").await.unwrap();
            assert_eq!(days.len(), 1);
            assert_eq!((days[0].messages, days[0].runs), (1, 0));
            let left = event(
                "microdao.member.left.makers",
                json!({ "dao": "makers", "principal": "user:founder" }),
            );
            apply(db, &[left]).await.unwrap();
            assert_eq!(planet_members(db).await, 1);
            let public = event(
                "message.received.rm_2",
                json!({ "room": { "id": "rm_2", "kind": "public", "slug": "general" } }),
            );
            apply(db, &[public]).await.unwrap();
            let seen: i64 = sql::query_scalar("SELECT COUNT(*) FROM space_seen")
                .fetch_one(db.pool())
                .await
                .unwrap();
            assert_eq!(seen, 5, "a public room's message writes nothing here");
        }
    }

    async fn planet_members(db: &Db) -> i64 {
        planet(db, "makers").await.unwrap().unwrap().members
    }
}
