//! Usage records (stored once per event id), their aggregates, and the
//! monthly budget ledger.

use daarion_store::{
    Db, StoreError,
    sql::{self, Row},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::record::UsageRecord;

/// A record with the event that carried it.
pub struct Stored<'a> {
    pub event_id: &'a str,
    pub at: &'a str,
    pub request_id: Option<&'a str>,
    pub record: &'a UsageRecord,
}

/// Stores records in one statement (the rows bound as one JSON array),
/// each unless its event was stored before (redelivery).
pub async fn insert(db: &Db, records: &[Stored<'_>]) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let rows: Vec<serde_json::Value> = records
        .iter()
        .map(|stored| {
            let r = stored.record;
            serde_json::json!([
                stored.event_id,
                stored.at,
                r.kind.as_str(),
                r.user,
                r.agent,
                r.dao,
                r.api_key,
                r.model,
                r.provider,
                as_i64(r.tokens_in),
                as_i64(r.tokens_out),
                as_i64(r.tokens_cached),
                i32::from(r.estimated),
                r.tool,
                r.run_id,
                r.cost_micros,
                r.currency,
                as_i64(r.latency_ms),
                r.outcome.as_str(),
                r.error_code,
                stored.request_id,
            ])
        })
        .collect();
    let text = format!(
        "INSERT INTO usage_records (event_id, at, kind, user_id, agent_id, dao_id, api_key_id,
             model, provider, tokens_in, tokens_out, tokens_cached, estimated, tool, run_id,
             cost_micros, currency, latency_ms, outcome, error_code, request_id)
         SELECT c0, c1, c2, c3, c4, c5, c6, c7, c8, CAST(c9 AS BIGINT), CAST(c10 AS BIGINT),
             CAST(c11 AS BIGINT), CAST(c12 AS INTEGER), c13, c14, CAST(c15 AS BIGINT), c16,
             CAST(c17 AS BIGINT), c18, c19, c20
         FROM ({}) AS j WHERE true ON CONFLICT (event_id) DO NOTHING",
        sql::json_rows(db.backend(), 1, 21)
    );
    sql::query(sql::AssertSqlSafe(text))
        .bind(serde_json::Value::from(rows).to_string())
        .execute(db.pool())
        .await?;
    Ok(())
}

/// What a summary is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    User,
    Agent,
    Microdao,
    Model,
    Provider,
    Kind,
    ApiKey,
}

impl GroupBy {
    fn column(self) -> &'static str {
        match self {
            GroupBy::User => "user_id",
            GroupBy::Agent => "agent_id",
            GroupBy::Microdao => "dao_id",
            GroupBy::Model => "model",
            GroupBy::Provider => "provider",
            GroupBy::Kind => "kind",
            GroupBy::ApiKey => "api_key_id",
        }
    }
}

/// How summaries are cut in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    Hour,
    Day,
    /// One bucket for the whole range.
    Total,
}

impl Granularity {
    /// Timestamps are RFC 3339 text, so a prefix is a time bucket.
    fn prefix_len(self) -> i32 {
        match self {
            Granularity::Hour => 13,
            Granularity::Day => 10,
            Granularity::Total => 0,
        }
    }
}

/// Whose records: one person, agent or microDAO, or everyone's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    City,
    Of(daarion_access::Subject),
}

/// One bucket of a summary.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Bucket {
    /// `2026-11-23T10` (hour), `2026-11-23` (day) or empty (total).
    pub period: String,
    /// The value grouped by, when grouped (absent values are `null`).
    pub key: Option<String>,
    pub events: i64,
    pub errors: i64,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub tokens_cached: i64,
    /// Events whose tokens DAARION counted because the provider did not.
    pub estimated: i64,
    pub cost_micros: i64,
    pub avg_latency_ms: i64,
}

pub struct SummaryQuery<'a> {
    pub scope: &'a Scope,
    pub from: &'a str,
    pub to: &'a str,
    pub group_by: Option<GroupBy>,
    pub granularity: Granularity,
    pub kind: Option<&'a str>,
    /// Largest number of buckets returned; one more means "too many".
    pub max_buckets: usize,
}

/// Aggregates records in `[from, to)`, oldest bucket first.
pub async fn summary(db: &Db, q: &SummaryQuery<'_>) -> Result<Vec<Bucket>, StoreError> {
    let key = q.group_by.map_or("NULL", GroupBy::column);
    let (scope_column, scope_value) = match q.scope {
        Scope::City => (None, None),
        Scope::Of(subject) => {
            let column = match subject {
                daarion_access::Subject::User(_) => "user_id",
                daarion_access::Subject::Agent(_) => "agent_id",
                daarion_access::Subject::Dao(_) => "dao_id",
            };
            (Some(column), Some(subject.id()))
        }
    };
    let mut filters = String::from("at >= $2 AND at < $3");
    let mut next = 4;
    if let Some(column) = scope_column {
        filters.push_str(&format!(" AND {column} = ${next}"));
        next += 1;
    }
    if q.kind.is_some() {
        filters.push_str(&format!(" AND kind = ${next}"));
    }
    // Columns come from the enums above, never from the request.
    let text = format!(
        "SELECT SUBSTR(at, 1, $1) AS period, {key} AS grouped, COUNT(*) AS events,
             CAST(SUM(CASE WHEN outcome = 'ok' THEN 0 ELSE 1 END) AS BIGINT) AS errors,
             CAST(SUM(tokens_in) AS BIGINT) AS tokens_in,
             CAST(SUM(tokens_out) AS BIGINT) AS tokens_out,
             CAST(SUM(tokens_cached) AS BIGINT) AS tokens_cached,
             CAST(SUM(estimated) AS BIGINT) AS estimated,
             CAST(SUM(cost_micros) AS BIGINT) AS cost_micros,
             CAST(SUM(latency_ms) AS BIGINT) AS latency_ms
         FROM usage_records WHERE {filters}
         GROUP BY 1, 2
         ORDER BY 1, 2
         LIMIT {}",
        q.max_buckets + 1
    );
    let mut query = sql::query(sql::AssertSqlSafe(text))
        .bind(q.granularity.prefix_len())
        .bind(q.from)
        .bind(q.to);
    if let Some(value) = scope_value {
        query = query.bind(value);
    }
    if let Some(kind) = q.kind {
        query = query.bind(kind);
    }
    let rows = query.fetch_all(db.pool()).await?;
    rows.iter()
        .map(|row| {
            let events: i64 = row.try_get("events")?;
            let latency: i64 = row.try_get("latency_ms")?;
            Ok(Bucket {
                period: row.try_get("period")?,
                key: row.try_get("grouped")?,
                events,
                errors: row.try_get("errors")?,
                tokens_in: row.try_get("tokens_in")?,
                tokens_out: row.try_get("tokens_out")?,
                tokens_cached: row.try_get("tokens_cached")?,
                estimated: row.try_get("estimated")?,
                cost_micros: row.try_get("cost_micros")?,
                avg_latency_ms: latency.checked_div(events).unwrap_or(0),
            })
        })
        .collect()
}

/// One call's hold on a subject's budget for a period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    pub id: String,
    pub subject: String,
    pub period: String,
    pub micros: i64,
}

/// Creates the ledger row of `hold`'s subject and period, if missing.
async fn open_budget(
    tx: &mut sql::Transaction<'_, sql::Any>,
    hold: &Hold,
) -> Result<(), StoreError> {
    sql::query(
        "INSERT INTO usage_budget (subject, period, spent_micros, reserved_micros)
         VALUES ($1, $2, 0, 0) ON CONFLICT (subject, period) DO NOTHING",
    )
    .bind(&hold.subject)
    .bind(&hold.period)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Reserves `hold.micros` unless what is spent and reserved already
/// reaches `budget`; the reservation lapses at `expires_at_ms` if never
/// settled. Returns whether it was reserved. One conditional update: of
/// concurrent callers, only those that see room get it, so the budget is
/// overrun by at most one call's worth.
pub async fn reserve(
    db: &Db,
    hold: &Hold,
    budget: i64,
    expires_at_ms: i64,
) -> Result<bool, StoreError> {
    let mut tx = db.begin().await?;
    open_budget(&mut tx, hold).await?;
    let reserved = sql::query(
        "UPDATE usage_budget SET reserved_micros = reserved_micros + $3
         WHERE subject = $1 AND period = $2 AND spent_micros + reserved_micros < $4",
    )
    .bind(&hold.subject)
    .bind(&hold.period)
    .bind(hold.micros)
    .bind(budget)
    .execute(&mut *tx)
    .await?
    .rows_affected()
        == 1;
    if reserved {
        sql::query(
            "INSERT INTO usage_reservations (id, subject, period, micros, expires_at)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&hold.id)
        .bind(&hold.subject)
        .bind(&hold.period)
        .bind(hold.micros)
        .bind(expires_at_ms)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(reserved)
}

/// Takes `given_back` off a subject's reserved total and adds `spent` to
/// its spent total in `tx`; returns the spent total after (0 if the
/// subject has no ledger row).
async fn give_back(
    tx: &mut sql::Transaction<'_, sql::Any>,
    hold: &Hold,
    given_back: i64,
    spent: i64,
) -> Result<i64, StoreError> {
    let row = sql::query(
        "UPDATE usage_budget SET reserved_micros = reserved_micros - $3, spent_micros = spent_micros + $4
         WHERE subject = $1 AND period = $2 RETURNING spent_micros",
    )
    .bind(&hold.subject)
    .bind(&hold.period)
    .bind(given_back)
    .bind(spent)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(match row {
        Some(row) => row.try_get("spent_micros")?,
        None => 0,
    })
}

/// Replaces a reservation with what was actually spent (0: released);
/// returns the spent total after. A reservation that already expired was
/// given back by [`expire`], so only the spending is added.
pub async fn settle(db: &Db, hold: &Hold, spent: i64) -> Result<i64, StoreError> {
    let mut tx = db.begin().await?;
    let held: i64 = sql::query("DELETE FROM usage_reservations WHERE id = $1 RETURNING micros")
        .bind(&hold.id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| row.try_get("micros"))
        .transpose()?
        .unwrap_or(0);
    let after = give_back(&mut tx, hold, held, spent).await?;
    tx.commit().await?;
    Ok(after)
}

/// How much of what is left of a budget one lease takes at most: with
/// several replicas leasing, each still finds room.
const LEASE_SHARE: i64 = 8;

/// Grows a process's lease on a budget (a reservation row it spends from
/// without a statement per call, [`crate::meter`]) by an eighth of what is
/// left, at least `min_micros`, and only if that leaves spent + reserved
/// within `budget`: a lease never overruns (only a per-call [`reserve`]
/// may, by one call). Returns the lease's size after, or `None` when the
/// budget is too close to its limit to lease.
pub async fn extend_lease(
    db: &Db,
    lease: &Hold,
    min_micros: i64,
    budget: i64,
    expires_at_ms: i64,
) -> Result<Option<i64>, StoreError> {
    let mut tx = db.begin().await?;
    let row = sql::query(
        "SELECT spent_micros, reserved_micros FROM usage_budget WHERE subject = $1 AND period = $2",
    )
    .bind(&lease.subject)
    .bind(&lease.period)
    .fetch_optional(&mut *tx)
    .await?;
    let (spent, reserved): (i64, i64) = match &row {
        Some(row) => (
            row.try_get("spent_micros")?,
            row.try_get("reserved_micros")?,
        ),
        None => {
            open_budget(&mut tx, lease).await?;
            (0, 0)
        }
    };
    let chunk = ((budget - spent - reserved) / LEASE_SHARE).max(min_micros);
    let granted = spent.saturating_add(reserved).saturating_add(chunk) <= budget
        && sql::query(
            "UPDATE usage_budget SET reserved_micros = reserved_micros + $3
             WHERE subject = $1 AND period = $2 AND spent_micros + reserved_micros + $3 <= $4",
        )
        .bind(&lease.subject)
        .bind(&lease.period)
        .bind(chunk)
        .bind(budget)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
    if !granted {
        tx.commit().await?;
        return Ok(None);
    }
    // The row may have been swept (its process stalled past the expiry):
    // then the lease is this chunk alone, whatever the caller thought.
    let size: i64 = sql::query(
        "INSERT INTO usage_reservations (id, subject, period, micros, expires_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (id) DO UPDATE SET micros = usage_reservations.micros + excluded.micros,
             expires_at = excluded.expires_at
         RETURNING micros",
    )
    .bind(&lease.id)
    .bind(&lease.subject)
    .bind(&lease.period)
    .bind(chunk)
    .bind(expires_at_ms)
    .fetch_one(&mut *tx)
    .await?
    .try_get("micros")?;
    tx.commit().await?;
    Ok(Some(size))
}

/// Moves a lease from `lease.micros` to `size` (0 ends it) and adds
/// `spent` to the spent total, in one transaction: what the lease gives
/// up leaves the reserved total. Returns the spent total after and whether
/// the lease was still there (a swept lease gave everything back already,
/// so only the spending is added).
pub async fn move_lease(
    db: &Db,
    lease: &Hold,
    size: i64,
    spent: i64,
    expires_at_ms: i64,
) -> Result<(i64, bool), StoreError> {
    let mut tx = db.begin().await?;
    let query = if size == 0 {
        sql::query("DELETE FROM usage_reservations WHERE id = $1 AND micros = $2")
            .bind(&lease.id)
            .bind(lease.micros)
    } else {
        sql::query(
            "UPDATE usage_reservations SET micros = $3, expires_at = $4 WHERE id = $1 AND micros = $2",
        )
        .bind(&lease.id)
        .bind(lease.micros)
        .bind(size)
        .bind(expires_at_ms)
    };
    let alive = query.execute(&mut *tx).await?.rows_affected() == 1;
    let given_back = if alive { lease.micros - size } else { 0 };
    let after = give_back(&mut tx, lease, given_back, spent).await?;
    tx.commit().await?;
    Ok((after, alive))
}

/// Gives back the reservations that expired before `now_ms` (their calls
/// never settled: the process that made them stopped). Returns how many.
/// Safe to run on every replica at once: a row is deleted, and its amount
/// given back, by one of them.
pub async fn expire(db: &Db, now_ms: i64) -> Result<usize, StoreError> {
    let mut tx = db.begin().await?;
    let rows = sql::query(
        "DELETE FROM usage_reservations WHERE expires_at < $1 RETURNING subject, period, micros",
    )
    .bind(now_ms)
    .fetch_all(&mut *tx)
    .await?;
    for row in &rows {
        let subject: String = row.try_get("subject")?;
        let period: String = row.try_get("period")?;
        let micros: i64 = row.try_get("micros")?;
        sql::query(
            "UPDATE usage_budget SET reserved_micros = reserved_micros - $3
             WHERE subject = $1 AND period = $2",
        )
        .bind(subject)
        .bind(period)
        .bind(micros)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(rows.len())
}

/// Spent and reserved money of a subject in a period.
pub async fn budget_state(db: &Db, subject: &str, period: &str) -> Result<(i64, i64), StoreError> {
    let row = sql::query(
        "SELECT spent_micros, reserved_micros FROM usage_budget WHERE subject = $1 AND period = $2",
    )
    .bind(subject)
    .bind(period)
    .fetch_optional(db.reader())
    .await?;
    Ok(match row {
        Some(row) => (
            row.try_get("spent_micros")?,
            row.try_get("reserved_micros")?,
        ),
        None => (0, 0),
    })
}
