//! Runs and their steps in the SQL store. A run is held by one worker at a
//! time through a lease (a conditional update: whoever's update matches
//! holds it until `lease_until`, renewed by heartbeats); every finished
//! step is a row, written once, so a run taken up again after a crash
//! resumes after its last finished step.

use daarion_agents::runs::RunRequest;
use daarion_bus::{Envelope, Outbox, Staged};
use daarion_store::{
    Backend, Db,
    sql::{self, AnyRow, Row},
};
use serde_json::Value;

use crate::domain::{RunError, RunStatus};

#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub id: String,
    pub agent: String,
    pub room: String,
    pub topic: String,
    pub message_id: Option<String>,
    pub asker: String,
    /// A caller's conversation (empty for a run answering a room).
    pub messages: Vec<Value>,
    pub status: RunStatus,
    pub attempts: i64,
    pub reply_message_id: Option<String>,
    pub answer: Option<String>,
    pub error: Option<String>,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Until when a worker holds it.
    pub lease_until: Option<String>,
}

/// A run's columns, its tokens summed from its steps (PostgreSQL sums
/// `BIGINT`s into `NUMERIC`: cast back).
const RUN_FIELDS: &str = "id, agent, room, topic, message_id, asker, input, status,
    attempts, reply_message_id, answer, error, created_at, started_at, finished_at, lease_until,
    CAST(COALESCE((SELECT SUM(s.tokens_in) FROM runtime_steps s WHERE s.run_id = runtime_runs.id), 0)
        AS BIGINT) AS tokens_in,
    CAST(COALESCE((SELECT SUM(s.tokens_out) FROM runtime_steps s WHERE s.run_id = runtime_runs.id), 0)
        AS BIGINT) AS tokens_out";

fn run_from(row: &AnyRow) -> Result<Run, RunError> {
    let status: String = row.try_get("status")?;
    let input: String = row.try_get("input")?;
    Ok(Run {
        id: row.try_get("id")?,
        agent: row.try_get("agent")?,
        room: row.try_get("room")?,
        topic: row.try_get("topic")?,
        message_id: row.try_get("message_id")?,
        asker: row.try_get("asker")?,
        messages: serde_json::from_str(&input).unwrap_or_default(),
        status: RunStatus::parse(&status)
            .ok_or_else(|| RunError::Invalid(format!("stored run status {status:?}")))?,
        attempts: row.try_get("attempts")?,
        reply_message_id: row.try_get("reply_message_id")?,
        answer: row.try_get("answer")?,
        error: row.try_get("error")?,
        tokens_in: row.try_get("tokens_in")?,
        tokens_out: row.try_get("tokens_out")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        lease_until: row.try_get("lease_until")?,
    })
}

/// One finished step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub n: i64,
    /// Whose step: the run's agent, or a member of its crew.
    pub agent: String,
    /// `model` or `tool`.
    pub kind: String,
    pub name: String,
    pub input: Value,
    pub output: Value,
    pub ok: bool,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub latency_ms: i64,
    pub created_at: String,
}

/// Records a requested run, once: a repeated request finds the first.
pub async fn open(db: &Db, request: &RunRequest) -> Result<(), RunError> {
    let now = daarion_store::now();
    sql::query(
        "INSERT INTO runtime_runs (id, agent, room, topic, message_id, asker, input, status,
             attempts, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'queued', 0, $8, $8)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(request.run_id.as_str())
    .bind(request.agent.as_str())
    .bind(request.room.as_str())
    .bind(request.topic.as_str())
    .bind(request.message_id.as_deref())
    .bind(request.asker.as_str())
    .bind(Value::from(request.messages.clone()).to_string())
    .bind(now.as_str())
    .execute(db.pool())
    .await?;
    Ok(())
}

pub async fn get(db: &Db, id: &str) -> Result<Option<Run>, RunError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "SELECT {RUN_FIELDS} FROM runtime_runs WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db.reader())
    .await?;
    row.as_ref().map(run_from).transpose()
}

/// An agent's runs, newest first (run ids are time-ordered), before `before`.
pub async fn list(
    db: &Db,
    agent: &str,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<Run>, RunError> {
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "SELECT {RUN_FIELDS} FROM runtime_runs WHERE agent = $1 AND ($2 = '' OR id < $2) ORDER BY id DESC LIMIT $3"
    )))
    .bind(agent)
    .bind(before.unwrap_or(""))
    .bind(i64::from(limit) + 1)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(run_from).collect()
}

/// An agent's day beside one run: how many other runs started since
/// `since`, and how many other people asked since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Day {
    pub started: i64,
    pub other_askers: i64,
}

pub async fn day(db: &Db, run: &Run, since: &str) -> Result<Day, RunError> {
    let row = sql::query(
        "SELECT
             (SELECT COUNT(*) FROM runtime_runs WHERE agent = $1 AND id <> $2
                 AND started_at >= $3) AS started,
             (SELECT COUNT(DISTINCT asker) FROM runtime_runs WHERE agent = $1
                 AND started_at >= $3 AND asker <> $4) AS other_askers",
    )
    .bind(run.agent.as_str())
    .bind(run.id.as_str())
    .bind(since)
    .bind(run.asker.as_str())
    .fetch_one(db.reader())
    .await?;
    Ok(Day {
        started: row.try_get("started")?,
        other_askers: row.try_get("other_askers")?,
    })
}

/// The agent's answers posted in `room` since `since` (its loop guard).
pub async fn answers_since(db: &Db, agent: &str, room: &str, since: &str) -> Result<i64, RunError> {
    let row = sql::query(
        "SELECT COUNT(*) AS n FROM runtime_runs WHERE agent = $1 AND room = $2
             AND status = 'completed' AND finished_at >= $3",
    )
    .bind(agent)
    .bind(room)
    .bind(since)
    .fetch_one(db.pool())
    .await?;
    Ok(row.try_get("n")?)
}

/// What taking a run's lease found.
#[derive(Debug, PartialEq)]
pub enum Lease {
    /// Held now, by this worker; the count of leases taken, this one included.
    Taken(i64),
    /// Finished already: nothing to do (the run as it ended).
    Finished(Box<Run>),
    /// Another worker holds it.
    Held,
    /// The agent has as many runs going as its plan allows.
    Busy,
}

/// Takes the run for `owner` until `until`, if it is not finished, no
/// other worker's lease is still running, and fewer than `at_once` of the
/// agent's other runs are (`None`: no limit). Takers of one agent's runs
/// are serialised (SQLite's one writer, with the take in one statement; an
/// advisory lock per agent on PostgreSQL), so two cannot both see room for
/// one more.
pub async fn lease(
    db: &Db,
    run: &Run,
    owner: &str,
    until: &str,
    at_once: Option<u32>,
) -> Result<Lease, RunError> {
    let taken = if db.backend() == Backend::Postgres {
        let mut tx = db.begin().await?;
        sql::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(format!("runtime:{}", run.agent))
            .execute(&mut *tx)
            .await?;
        let taken = take(&mut *tx, run, owner, until, at_once).await?;
        tx.commit().await?;
        taken
    } else {
        take(db.pool(), run, owner, until, at_once).await?
    };
    if let Some(row) = taken {
        return Ok(Lease::Taken(row.try_get("attempts")?));
    }
    let now = daarion_store::now();
    match get(db, &run.id).await? {
        Some(run) if run.status.is_finished() => Ok(Lease::Finished(Box::new(run))),
        Some(run)
            if run.status == RunStatus::Running
                && run.lease_until.as_deref() > Some(now.as_str()) =>
        {
            Ok(Lease::Held)
        }
        Some(_) => Ok(Lease::Busy),
        None => Err(RunError::NotFound(format!("no run {:?}", run.id))),
    }
}

/// The take itself, once takers are serialised: a run that waited for
/// another to end starts after that end.
async fn take<'c>(
    conn: impl sql::Executor<'c, Database = sql::Any>,
    run: &Run,
    owner: &str,
    until: &str,
    at_once: Option<u32>,
) -> Result<Option<AnyRow>, RunError> {
    let now = daarion_store::now();
    let taken = sql::query(
        "UPDATE runtime_runs SET status = 'running', lease_owner = $2, lease_until = $3,
             attempts = attempts + 1, started_at = COALESCE(started_at, $4), updated_at = $4
         WHERE id = $1 AND status IN ('queued', 'running')
             AND (lease_until IS NULL OR lease_until < $4)
             AND ($5 < 0 OR (SELECT COUNT(*) FROM runtime_runs r WHERE r.agent = $6
                 AND r.id <> $1 AND r.status = 'running' AND r.lease_until > $4) < $5)
         RETURNING attempts",
    )
    .bind(run.id.as_str())
    .bind(owner)
    .bind(until)
    .bind(now.as_str())
    .bind(at_once.map_or(-1, i64::from))
    .bind(run.agent.as_str())
    .fetch_optional(conn)
    .await?;
    Ok(taken)
}

/// Extends `owner`'s lease; `false` when it no longer holds the run (it
/// was cancelled, or its lease lapsed and another worker took it).
pub async fn heartbeat(db: &Db, id: &str, owner: &str, until: &str) -> Result<bool, RunError> {
    let done = sql::query(
        "UPDATE runtime_runs SET lease_until = $3, updated_at = $4
         WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
    )
    .bind(id)
    .bind(owner)
    .bind(until)
    .bind(daarion_store::now())
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives the lease back (a transient failure: the next delivery retries).
pub async fn release(db: &Db, id: &str, owner: &str) -> Result<(), RunError> {
    sql::query(
        "UPDATE runtime_runs SET lease_until = NULL, lease_owner = NULL, updated_at = $3
         WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
    )
    .bind(id)
    .bind(owner)
    .bind(daarion_store::now())
    .execute(db.pool())
    .await?;
    Ok(())
}

/// The steps a run finished, in order.
pub async fn steps(db: &Db, run: &str) -> Result<Vec<Step>, RunError> {
    let rows = sql::query(
        "SELECT s.n, COALESCE(s.agent, r.agent) AS agent, s.kind, s.name, s.input, s.output,
             s.ok, s.tokens_in, s.tokens_out, s.latency_ms, s.created_at
         FROM runtime_steps s JOIN runtime_runs r ON r.id = s.run_id
         WHERE s.run_id = $1 ORDER BY s.n",
    )
    .bind(run)
    .fetch_all(db.reader())
    .await?;
    rows.iter()
        .map(|row| {
            let input: String = row.try_get("input")?;
            let output: String = row.try_get("output")?;
            let ok: i64 = row.try_get("ok")?;
            Ok(Step {
                n: row.try_get("n")?,
                agent: row.try_get("agent")?,
                kind: row.try_get("kind")?,
                name: row.try_get("name")?,
                input: serde_json::from_str(&input).unwrap_or(Value::Null),
                output: serde_json::from_str(&output).unwrap_or(Value::Null),
                ok: ok != 0,
                tokens_in: row.try_get("tokens_in")?,
                tokens_out: row.try_get("tokens_out")?,
                latency_ms: row.try_get("latency_ms")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect()
}

/// Checkpoints a finished step, if `owner` still holds the run (a worker
/// whose lease lapsed must not write over the one that took over).
pub async fn checkpoint(db: &Db, run: &str, owner: &str, step: &Step) -> Result<(), RunError> {
    let started = std::time::Instant::now();
    let written = write_checkpoint(db, run, owner, step).await;
    metrics::histogram!("runtime_checkpoint_seconds").record(started.elapsed().as_secs_f64());
    written
}

/// One statement, so no transaction: the step is written only while
/// `owner` holds the run, and only once.
async fn write_checkpoint(db: &Db, run: &str, owner: &str, step: &Step) -> Result<(), RunError> {
    let written = sql::query(
        "INSERT INTO runtime_steps (run_id, n, kind, name, input, output, ok, tokens_in,
             tokens_out, latency_ms, created_at, agent)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12
         WHERE EXISTS (SELECT 1 FROM runtime_runs
             WHERE id = $1 AND lease_owner = $13 AND status = 'running')
         ON CONFLICT (run_id, n) DO NOTHING",
    )
    .bind(run)
    .bind(step.n)
    .bind(step.kind.as_str())
    .bind(step.name.as_str())
    .bind(step.input.to_string())
    .bind(step.output.to_string())
    .bind(i64::from(step.ok))
    .bind(step.tokens_in)
    .bind(step.tokens_out)
    .bind(step.latency_ms)
    .bind(step.created_at.as_str())
    .bind(step.agent.as_str())
    .bind(owner)
    .execute(db.pool())
    .await?;
    if written.rows_affected() == 1 {
        return Ok(());
    }
    let held = sql::query(
        "SELECT 1 AS held FROM runtime_runs WHERE id = $1 AND lease_owner = $2 AND status = 'running'",
    )
    .bind(run)
    .bind(owner)
    .fetch_optional(db.pool())
    .await?;
    Err(RunError::Conflict(match held {
        None => "the run's lease was lost".into(),
        Some(_) => format!("step {} of {run} was written by another worker", step.n),
    }))
}

/// How a run ended.
pub struct Ending<'a> {
    pub status: RunStatus,
    pub reply_message_id: Option<&'a str>,
    pub answer: Option<&'a str>,
    pub error: Option<&'a str>,
}

/// Finishes a run held by `owner` (or any unfinished one, with `owner`
/// `None`: a cancellation), staging `events` with it; `None` when it was
/// not there to finish.
pub async fn finish(
    db: &Db,
    outbox: &Outbox,
    id: &str,
    owner: Option<&str>,
    ending: Ending<'_>,
    events: impl FnOnce(&Run) -> Vec<Envelope>,
) -> Result<Option<(Run, Staged)>, RunError> {
    let mut tx = db.begin().await?;
    let now = daarion_store::now();
    let done = sql::query(sql::AssertSqlSafe(format!(
        "UPDATE runtime_runs SET status = $2, reply_message_id = $3, error = $4,
             finished_at = $5, updated_at = $5, lease_owner = NULL, lease_until = NULL,
             answer = $7
         WHERE id = $1 AND status IN ('queued', 'running') AND ($6 = '' OR lease_owner = $6)
         RETURNING {RUN_FIELDS}"
    )))
    .bind(id)
    .bind(ending.status.as_str())
    .bind(ending.reply_message_id)
    .bind(ending.error)
    .bind(now.as_str())
    .bind(owner.unwrap_or(""))
    .bind(ending.answer)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = done else {
        return Ok(None);
    };
    let run = run_from(&row)?;
    let staged = outbox.stage(&mut tx, events(&run)).await?;
    tx.commit().await?;
    Ok(Some((run, staged)))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn step(n: i64, tokens_in: i64, tokens_out: i64) -> Step {
        Step {
            n,
            agent: "helper".into(),
            kind: "model".into(),
            name: "default".into(),
            input: json!({}),
            output: json!({ "content": "hi" }),
            ok: true,
            tokens_in,
            tokens_out,
            latency_ms: 1,
            created_at: daarion_store::now(),
        }
    }

    /// A step is written once, by the worker holding the run; the run's
    /// tokens are its steps'.
    #[tokio::test]
    async fn a_checkpoint_needs_the_lease_and_happens_once() {
        for test in daarion_testkit::migrated_dbs(&[crate::SPEC.migration_set()]).await {
            let db = &test.db;
            let request = RunRequest {
                run_id: "run_1".into(),
                agent: "helper".into(),
                room: String::new(),
                topic: String::new(),
                message_id: None,
                messages: Vec::new(),
                asker: "user:alice".into(),
                note: None,
            };
            open(db, &request).await.unwrap();
            let run = get(db, "run_1").await.unwrap().unwrap();
            let until =
                daarion_store::format_time(chrono::Utc::now() + chrono::Duration::minutes(1));
            let lease = lease(db, &run, "worker-a", &until, None).await.unwrap();
            assert!(matches!(lease, Lease::Taken(1)));

            checkpoint(db, "run_1", "worker-a", &step(0, 7, 2))
                .await
                .unwrap();
            checkpoint(db, "run_1", "worker-a", &step(1, 5, 3))
                .await
                .unwrap();
            let again = checkpoint(db, "run_1", "worker-a", &step(1, 5, 3)).await;
            assert!(
                matches!(&again, Err(RunError::Conflict(m)) if m.contains("another worker")),
                "{again:?}"
            );
            let stranger = checkpoint(db, "run_1", "worker-b", &step(2, 1, 1)).await;
            assert!(
                matches!(&stranger, Err(RunError::Conflict(m)) if m.contains("lease was lost")),
                "{stranger:?}"
            );

            let run = get(db, "run_1").await.unwrap().unwrap();
            assert_eq!((run.tokens_in, run.tokens_out), (12, 5));
            assert_eq!(steps(db, "run_1").await.unwrap().len(), 2);
        }
    }
}
