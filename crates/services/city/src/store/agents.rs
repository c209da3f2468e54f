//! Agents' presence: one row per agent that ever reported, with its status
//! and when that status lapses unless the agent reports again. Text times
//! compare in time order (`daarion_store::now`).

use daarion_store::{
    Db,
    sql::{self, AnyRow, Row},
};

use crate::{
    agents::{AgentPresence, AgentStatus},
    domain::CityError,
};

const COLUMNS: &str = "SELECT agent, status, since, last_seen, expires_at FROM city_agents";

fn presence_from(row: &AnyRow, now: &str) -> Result<AgentPresence, CityError> {
    let status: String = row.try_get("status")?;
    let expires_at: String = row.try_get("expires_at")?;
    let stored = AgentStatus::parse(&status)
        .ok_or_else(|| CityError::Invalid(format!("stored agent status {status:?}")))?;
    // Until the sweeper gets to it, a lapsed status reads as offline.
    let status = if expires_at.as_str() <= now {
        AgentStatus::Offline
    } else {
        stored
    };
    Ok(AgentPresence {
        agent: row.try_get("agent")?,
        status,
        since: if status == stored {
            row.try_get("since")?
        } else {
            expires_at
        },
        last_seen: row.try_get("last_seen")?,
    })
}

/// Records a report of `agent` (now, lasting until `expires_at`): the
/// agent's presence after it, and whether its status changed.
pub async fn report(
    db: &Db,
    agent: &str,
    status: AgentStatus,
    now: &str,
    expires_at: &str,
) -> Result<(AgentPresence, bool), CityError> {
    // `since` moves only when the status does; an offline row whose
    // lapse the sweeper has not seen yet counts as a change as well.
    let row = sql::query(
        "INSERT INTO city_agents (agent, status, since, last_seen, expires_at)
         VALUES ($1, $2, $3, $3, $4)
         ON CONFLICT (agent) DO UPDATE SET
             since = CASE WHEN city_agents.status = excluded.status AND city_agents.expires_at > $3
                 THEN city_agents.since ELSE excluded.since END,
             status = excluded.status, last_seen = excluded.last_seen,
             expires_at = excluded.expires_at
         RETURNING agent, status, since, last_seen, expires_at",
    )
    .bind(agent)
    .bind(status.as_str())
    .bind(now)
    .bind(expires_at)
    .fetch_one(db.pool())
    .await?;
    let presence = presence_from(&row, now)?;
    let changed = presence.since == now;
    Ok((presence, changed))
}

/// Agents that ever reported, by id, `limit + 1` at most, after `after`.
pub async fn page(
    db: &Db,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<AgentPresence>, CityError> {
    let now = daarion_store::now();
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "{COLUMNS} WHERE agent > $1 ORDER BY agent LIMIT $2"
    )))
    .bind(after.unwrap_or(""))
    .bind(i64::from(limit) + 1)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(|row| presence_from(row, &now)).collect()
}

pub async fn one(db: &Db, agent: &str) -> Result<Option<AgentPresence>, CityError> {
    let now = daarion_store::now();
    let row = sql::query(sql::AssertSqlSafe(format!("{COLUMNS} WHERE agent = $1")))
        .bind(agent)
        .fetch_optional(db.pool())
        .await?;
    row.map(|row| presence_from(&row, &now)).transpose()
}

/// Marks offline the agents whose status lapsed before `now`; returns
/// them. One statement, so each lapse is returned to one sweeper.
pub async fn expire(db: &Db, now: &str) -> Result<Vec<String>, CityError> {
    let rows = sql::query(
        "UPDATE city_agents SET status = 'offline', since = expires_at
         WHERE status <> 'offline' AND expires_at <= $1 RETURNING agent",
    )
    .bind(now)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(|row| Ok(row.try_get("agent")?)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "2026-12-01T00:00:00.000000Z";
    const T1: &str = "2026-12-01T00:00:30.000000Z";
    const T2: &str = "2026-12-01T00:01:00.000000Z";
    const T3: &str = "2026-12-01T00:01:30.000000Z";

    #[tokio::test]
    async fn a_status_lasts_until_it_lapses_and_lapses_once() {
        for test in daarion_testkit::migrated_dbs(&[crate::SPEC.migration_set()]).await {
            let db = &test.db;
            assert!(
                report(db, "helper", AgentStatus::Online, T0, T2)
                    .await
                    .unwrap()
                    .1
            );
            assert!(
                !report(db, "helper", AgentStatus::Online, T1, T3)
                    .await
                    .unwrap()
                    .1,
                "the same status again is no change"
            );
            assert!(
                report(db, "helper", AgentStatus::Busy, T1, T3)
                    .await
                    .unwrap()
                    .1
            );
            assert!(
                expire(db, T2).await.unwrap().is_empty(),
                "{:?}",
                test.db.backend()
            );
            assert_eq!(expire(db, T3).await.unwrap(), vec!["helper".to_owned()]);
            assert!(expire(db, T3).await.unwrap().is_empty(), "announced once");
            assert!(
                report(db, "helper", AgentStatus::Online, T3, T3)
                    .await
                    .unwrap()
                    .1
            );
            let listed = page(db, None, 10).await.unwrap();
            assert_eq!(listed.len(), 1);
            assert_eq!(
                listed[0].status,
                AgentStatus::Offline,
                "a lapsed status reads as offline before any sweep"
            );
        }
    }
}
