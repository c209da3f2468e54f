//! Registered tools and the call log. A call's log row and its usage
//! record are written together (the record staged in the outbox).

use daarion_bus::{Envelope, Outbox, Staged};
use daarion_store::{
    Db,
    sql::{self, AnyRow, Row},
};
use serde_json::Value;

use crate::domain::{Executor, ToolError};

/// A tool registered with the city (a webhook or an MCP server's tool).
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    pub name: String,
    pub description: String,
    pub parameters: Value,
    pub executor: Executor,
    pub url: String,
    /// A webhook's signing secret; an MCP server's bearer token (or empty).
    pub secret: String,
    pub timeout_ms: u64,
    pub enabled: bool,
    pub allowed_agents: Vec<String>,
    pub allowed_roles: Vec<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

const TOOL_COLUMNS: &str =
    "SELECT name, description, parameters, executor, remote_name, url, secret, timeout_ms,
    enabled, allowed_agents, allowed_roles, created_by, created_at, updated_at FROM toolcore_tools";

fn json_column<T: serde::de::DeserializeOwned>(row: &AnyRow, column: &str) -> Result<T, ToolError> {
    let raw: String = row.try_get(column)?;
    serde_json::from_str(&raw).map_err(|e| ToolError::Invalid(format!("stored {column}: {e}")))
}

fn tool_from(row: &AnyRow) -> Result<Registered, ToolError> {
    let timeout_ms: i64 = row.try_get("timeout_ms")?;
    let enabled: i64 = row.try_get("enabled")?;
    let executor: String = row.try_get("executor")?;
    let remote_name: Option<String> = row.try_get("remote_name")?;
    let executor = match (executor.as_str(), remote_name) {
        ("mcp", Some(remote_name)) => Executor::Mcp { remote_name },
        ("webhook", _) => Executor::Webhook,
        (other, _) => return Err(ToolError::Invalid(format!("stored executor {other:?}"))),
    };
    Ok(Registered {
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        parameters: json_column(row, "parameters")?,
        executor,
        url: row.try_get("url")?,
        secret: row.try_get("secret")?,
        timeout_ms: u64::try_from(timeout_ms).unwrap_or(0),
        enabled: enabled != 0,
        allowed_agents: json_column(row, "allowed_agents")?,
        allowed_roles: json_column(row, "allowed_roles")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, ToolError> {
    serde_json::to_string(value).map_err(|e| ToolError::Invalid(e.to_string()))
}

/// Registered tools by name, after `after`.
pub async fn tools(db: &Db, after: Option<&str>, limit: u32) -> Result<Vec<Registered>, ToolError> {
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "{TOOL_COLUMNS} WHERE name > $1 ORDER BY name LIMIT $2"
    )))
    .bind(after.unwrap_or(""))
    .bind(i64::from(limit) + 1)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(tool_from).collect()
}

pub async fn tool(db: &Db, name: &str) -> Result<Option<Registered>, ToolError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "{TOOL_COLUMNS} WHERE name = $1"
    )))
    .bind(name)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(tool_from).transpose()
}

pub async fn register(db: &Db, tool: &Registered) -> Result<(), ToolError> {
    let inserted = sql::query(
        "INSERT INTO toolcore_tools (name, description, parameters, executor, url, secret,
             timeout_ms, enabled, allowed_agents, allowed_roles, created_by, created_at, updated_at,
             remote_name)
         VALUES ($1, $2, $3, $12, $4, $5, $6, $7, $8, $9, $10, $11, $11, $13)
         ON CONFLICT (name) DO NOTHING",
    )
    .bind(tool.name.as_str())
    .bind(tool.description.as_str())
    .bind(to_json(&tool.parameters)?)
    .bind(tool.url.as_str())
    .bind(tool.secret.as_str())
    .bind(i64::try_from(tool.timeout_ms).unwrap_or(i64::MAX))
    .bind(i64::from(tool.enabled))
    .bind(to_json(&tool.allowed_agents)?)
    .bind(to_json(&tool.allowed_roles)?)
    .bind(tool.created_by.as_str())
    .bind(tool.created_at.as_str())
    .bind(tool.executor.as_str())
    .bind(remote_name(&tool.executor))
    .execute(db.pool())
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(ToolError::Conflict(format!(
            "a tool named {:?} is registered already",
            tool.name
        )));
    }
    Ok(())
}

fn remote_name(executor: &Executor) -> Option<&str> {
    match executor {
        Executor::Mcp { remote_name } => Some(remote_name),
        Executor::Webhook => None,
    }
}

/// Writes every field of `tool` but its name, executor and creation.
pub async fn update(db: &Db, tool: &Registered) -> Result<(), ToolError> {
    let updated = sql::query(
        "UPDATE toolcore_tools SET description = $2, parameters = $3, url = $4, timeout_ms = $5,
             enabled = $6, allowed_agents = $7, allowed_roles = $8, updated_at = $9,
             secret = $10, remote_name = $11
         WHERE name = $1",
    )
    .bind(tool.name.as_str())
    .bind(tool.description.as_str())
    .bind(to_json(&tool.parameters)?)
    .bind(tool.url.as_str())
    .bind(i64::try_from(tool.timeout_ms).unwrap_or(i64::MAX))
    .bind(i64::from(tool.enabled))
    .bind(to_json(&tool.allowed_agents)?)
    .bind(to_json(&tool.allowed_roles)?)
    .bind(daarion_store::now())
    .bind(tool.secret.as_str())
    .bind(remote_name(&tool.executor))
    .execute(db.pool())
    .await?
    .rows_affected();
    if updated == 0 {
        return Err(ToolError::NotFound(format!("no tool {:?}", tool.name)));
    }
    Ok(())
}

pub async fn delete(db: &Db, name: &str) -> Result<(), ToolError> {
    let deleted = sql::query("DELETE FROM toolcore_tools WHERE name = $1")
        .bind(name)
        .execute(db.pool())
        .await?
        .rows_affected();
    if deleted == 0 {
        return Err(ToolError::NotFound(format!("no tool {name:?}")));
    }
    Ok(())
}

/// One call, as logged.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub id: String,
    pub tool: String,
    pub caller: String,
    pub acting_for: Option<String>,
    /// `ok`, or what went wrong (`ToolError::code`).
    pub outcome: String,
    pub error: Option<String>,
    pub latency_ms: u64,
    pub created_at: String,
    /// The caller's key for a call that succeeded, and what it answered.
    pub keyed: Option<(String, Value)>,
}

/// What a call `caller` made under `key` answered, if it succeeded.
pub async fn answered(
    db: &Db,
    caller: &str,
    key: &str,
) -> Result<Option<(String, Value)>, ToolError> {
    let row = sql::query(
        "SELECT id, result FROM toolcore_calls WHERE caller = $1 AND idempotency_key = $2",
    )
    .bind(caller)
    .bind(key)
    .fetch_optional(db.reader())
    .await?;
    row.map(|row| {
        let result: Option<String> = row.try_get("result")?;
        Ok((
            row.try_get("id")?,
            result
                .and_then(|r| serde_json::from_str(&r).ok())
                .unwrap_or(Value::Null),
        ))
    })
    .transpose()
}

/// Logs a call and stages its usage record.
pub async fn log_call(
    db: &Db,
    outbox: &Outbox,
    call: &Call,
    usage: Envelope,
) -> Result<Staged, ToolError> {
    let mut tx = db.begin().await?;
    sql::query(
        "INSERT INTO toolcore_calls (id, tool, caller, acting_for, outcome, error, latency_ms,
             created_at, idempotency_key, result)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (caller, idempotency_key) DO NOTHING",
    )
    .bind(call.id.as_str())
    .bind(call.tool.as_str())
    .bind(call.caller.as_str())
    .bind(call.acting_for.as_deref())
    .bind(call.outcome.as_str())
    .bind(call.error.as_deref())
    .bind(i64::try_from(call.latency_ms).unwrap_or(i64::MAX))
    .bind(call.created_at.as_str())
    .bind(call.keyed.as_ref().map(|(key, _)| key.as_str()))
    .bind(call.keyed.as_ref().map(|(_, result)| result.to_string()))
    .execute(&mut *tx)
    .await?;
    let staged = outbox.stage(&mut tx, vec![usage]).await?;
    tx.commit().await?;
    Ok(staged)
}

/// Logged calls, newest first (ids are time-ordered), before `before`;
/// of one tool with `tool`.
pub async fn calls(
    db: &Db,
    tool: Option<&str>,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<Call>, ToolError> {
    let rows = sql::query(
        "SELECT id, tool, caller, acting_for, outcome, error, latency_ms, created_at
         FROM toolcore_calls WHERE ($1 = '' OR tool = $1) AND ($2 = '' OR id < $2)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(tool.unwrap_or(""))
    .bind(before.unwrap_or(""))
    .bind(i64::from(limit) + 1)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            let latency: i64 = row.try_get("latency_ms")?;
            Ok(Call {
                id: row.try_get("id")?,
                tool: row.try_get("tool")?,
                caller: row.try_get("caller")?,
                acting_for: row.try_get("acting_for")?,
                outcome: row.try_get("outcome")?,
                error: row.try_get("error")?,
                latency_ms: u64::try_from(latency).unwrap_or(0),
                created_at: row.try_get("created_at")?,
                keyed: None,
            })
        })
        .collect()
}
