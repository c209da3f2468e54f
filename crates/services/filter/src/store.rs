//! Rule sets and the log of what they did.

use daarion_store::{
    Db,
    sql::{self, Row},
};

use crate::domain::{Compiled, FilterError, Rules};

/// One rule set as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub scope: String,
    pub rules: Rules,
    pub updated_by: String,
    pub updated_at: String,
}

pub async fn get(db: &Db, scope: &str) -> Result<Option<Stored>, FilterError> {
    let row = sql::query(
        "SELECT scope, rules, updated_by, updated_at FROM filter_rules WHERE scope = $1",
    )
    .bind(scope)
    .fetch_optional(db.reader())
    .await?;
    row.map(|row| {
        let rules: String = row.try_get("rules")?;
        Ok(Stored {
            scope: row.try_get("scope")?,
            rules: serde_json::from_str(&rules)
                .map_err(|e| FilterError::Invalid(format!("stored rules of {scope}: {e}")))?,
            updated_by: row.try_get("updated_by")?,
            updated_at: row.try_get("updated_at")?,
        })
    })
    .transpose()
}

/// The rule sets of `scopes` that exist, compiled, in the order asked.
pub async fn rule_sets(db: &Db, scopes: &[String]) -> Result<Vec<(String, Compiled)>, FilterError> {
    let mut sets = Vec::new();
    for scope in scopes {
        if let Some(stored) = get(db, scope).await? {
            sets.push((stored.scope, stored.rules.compile()?));
        }
    }
    Ok(sets)
}

pub async fn put(db: &Db, scope: &str, rules: &Rules, by: &str) -> Result<Stored, FilterError> {
    let now = daarion_store::now();
    let text = serde_json::to_string(rules).map_err(|e| FilterError::Invalid(e.to_string()))?;
    sql::query(
        "INSERT INTO filter_rules (scope, rules, updated_by, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (scope) DO UPDATE SET rules = $2, updated_by = $3, updated_at = $4",
    )
    .bind(scope)
    .bind(text.as_str())
    .bind(by)
    .bind(now.as_str())
    .execute(db.pool())
    .await?;
    Ok(Stored {
        scope: scope.to_owned(),
        rules: rules.clone(),
        updated_by: by.to_owned(),
        updated_at: now,
    })
}

/// Removes a rule set; whether there was one.
pub async fn delete(db: &Db, scope: &str) -> Result<bool, FilterError> {
    let done = sql::query("DELETE FROM filter_rules WHERE scope = $1")
        .bind(scope)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// A block or a redaction.
#[derive(Debug, Clone, PartialEq)]
pub struct Acted {
    pub id: String,
    pub scope: String,
    pub direction: String,
    pub action: String,
    pub rule: String,
    pub agent: String,
    pub run_id: Option<String>,
    pub created_at: String,
}

pub async fn record(db: &Db, acted: &Acted) -> Result<(), FilterError> {
    sql::query(
        "INSERT INTO filter_events (id, scope, direction, action, rule, agent, run_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(acted.id.as_str())
    .bind(acted.scope.as_str())
    .bind(acted.direction.as_str())
    .bind(acted.action.as_str())
    .bind(acted.rule.as_str())
    .bind(acted.agent.as_str())
    .bind(acted.run_id.as_deref())
    .bind(acted.created_at.as_str())
    .execute(db.pool())
    .await?;
    metrics::counter!("filter_actions_total", "action" => acted.action.clone(), "direction" => acted.direction.clone())
        .increment(1);
    Ok(())
}

/// What a rule set did, newest first, before `before`.
pub async fn events(
    db: &Db,
    scope: &str,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<Acted>, FilterError> {
    let rows = sql::query(
        "SELECT id, scope, direction, action, rule, agent, run_id, created_at FROM filter_events
         WHERE scope = $1 AND ($2 = '' OR id < $2) ORDER BY id DESC LIMIT $3",
    )
    .bind(scope)
    .bind(before.unwrap_or(""))
    .bind(i64::from(limit) + 1)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Acted {
                id: row.try_get("id")?,
                scope: row.try_get("scope")?,
                direction: row.try_get("direction")?,
                action: row.try_get("action")?,
                rule: row.try_get("rule")?,
                agent: row.try_get("agent")?,
                run_id: row.try_get("run_id")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect()
}
