//! The node registry. A node's token is stored as its hash (the node is
//! found by it); its status as last reported, read as `offline` once its
//! last heartbeat is older than the limit, until the sweeper writes so.

use daarion_bus::{Envelope, Outbox, Staged};
use daarion_store::{
    Db,
    sql::{self, AnyRow, Row},
};

use crate::domain::{Metrics, NodeKind, NodeRole, NodeStatus, SpaceError};

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub id: String,
    pub name: String,
    pub role: NodeRole,
    pub kind: NodeKind,
    pub dao: Option<String>,
    pub status: NodeStatus,
    pub version: String,
    pub hostname: String,
    pub metrics: Metrics,
    pub last_heartbeat: Option<String>,
    pub created_by: String,
    pub created_at: String,
}

/// A node to register.
#[derive(Debug, Clone)]
pub struct NewNode {
    pub id: String,
    pub name: String,
    pub role: NodeRole,
    pub kind: NodeKind,
    pub dao: Option<String>,
}

/// One heartbeat as kept.
#[derive(Debug, Clone, PartialEq)]
pub struct Beat {
    pub at: String,
    pub status: NodeStatus,
    pub metrics: Metrics,
}

/// The status as readers see it: a live status whose last heartbeat is
/// older than `cutoff` is `offline`.
const EFFECTIVE_STATUS: &str = "CASE WHEN status IN ('online', 'degraded', 'maintenance') \
     AND last_heartbeat < $1 THEN 'offline' ELSE status END";

fn columns() -> String {
    format!(
        "SELECT id, name, role, kind, dao, {EFFECTIVE_STATUS} AS status, version, hostname, \
         cpu_percent, memory_percent, latency_ms, agents, last_heartbeat, created_by, created_at \
         FROM space_nodes"
    )
}

fn parsed<T>(raw: &str, parse: fn(&str) -> Option<T>, what: &str) -> Result<T, SpaceError> {
    parse(raw).ok_or_else(|| SpaceError::Invalid(format!("stored {what} {raw:?}")))
}

fn metrics_from(row: &AnyRow) -> Result<Metrics, SpaceError> {
    Ok(Metrics {
        cpu_percent: row.try_get("cpu_percent")?,
        memory_percent: row.try_get("memory_percent")?,
        latency_ms: row.try_get("latency_ms")?,
        agents: row.try_get("agents")?,
    })
}

fn node_from(row: &AnyRow) -> Result<Node, SpaceError> {
    let (role, kind, status): (String, String, String) = (
        row.try_get("role")?,
        row.try_get("kind")?,
        row.try_get("status")?,
    );
    Ok(Node {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        role: parsed(&role, NodeRole::parse, "role")?,
        kind: parsed(&kind, NodeKind::parse, "kind")?,
        dao: row.try_get("dao")?,
        status: parsed(&status, NodeStatus::parse, "status")?,
        version: row.try_get("version")?,
        hostname: row.try_get("hostname")?,
        metrics: metrics_from(row)?,
        last_heartbeat: row.try_get("last_heartbeat")?,
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

/// Registers a node with the hash of its first token; its event staged.
pub async fn create(
    db: &Db,
    outbox: &Outbox,
    node: &NewNode,
    token_hash: &str,
    by: &str,
    event: impl FnOnce(&Node) -> Envelope,
) -> Result<(Node, Staged), SpaceError> {
    let mut tx = db.begin().await?;
    let now = daarion_store::now();
    let inserted = sql::query(
        "INSERT INTO space_nodes (id, name, role, kind, dao, token_hash, status, version, hostname,
             created_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'registered', '', '', $7, $8)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&node.id)
    .bind(&node.name)
    .bind(node.role.as_str())
    .bind(node.kind.as_str())
    .bind(&node.dao)
    .bind(token_hash)
    .bind(by)
    .bind(&now)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Err(SpaceError::Conflict(format!(
            "node {:?} is registered already: rotate its token or remove it",
            node.id
        )));
    }
    let created = Node {
        id: node.id.clone(),
        name: node.name.clone(),
        role: node.role,
        kind: node.kind,
        dao: node.dao.clone(),
        status: NodeStatus::Registered,
        version: String::new(),
        hostname: String::new(),
        metrics: Metrics::default(),
        last_heartbeat: None,
        created_by: by.to_owned(),
        created_at: now,
    };
    let staged = outbox.stage(&mut tx, vec![event(&created)]).await?;
    tx.commit().await?;
    Ok((created, staged))
}

/// Which nodes a page holds.
#[derive(Debug, Default)]
pub struct Filter {
    pub role: Option<NodeRole>,
    pub status: Option<NodeStatus>,
    pub dao: Option<String>,
}

/// Nodes by id, `limit + 1` at most, after `after`; `cutoff`: heartbeats
/// older than this mean offline.
pub async fn list(
    db: &Db,
    filter: &Filter,
    cutoff: &str,
    after: Option<&str>,
    limit: u32,
) -> Result<Vec<Node>, SpaceError> {
    let mut conditions = vec!["id > $2".to_owned()];
    let mut binds: Vec<&str> = Vec::new();
    for (column, value) in [
        ("role", filter.role.map(NodeRole::as_str)),
        ("status", filter.status.map(NodeStatus::as_str)),
        ("dao", filter.dao.as_deref()),
    ] {
        if let Some(value) = value {
            binds.push(value);
            conditions.push(format!("{column} = ${}", binds.len() + 3));
        }
    }
    let text = format!(
        "SELECT * FROM ({}) AS n WHERE {} ORDER BY id LIMIT $3",
        columns(),
        conditions.join(" AND ")
    );
    let mut query = sql::query(sql::AssertSqlSafe(text))
        .bind(cutoff)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit) + 1);
    for value in binds {
        query = query.bind(value);
    }
    let rows = query.fetch_all(db.pool()).await?;
    rows.iter().map(node_from).collect()
}

pub async fn get(db: &Db, id: &str, cutoff: &str) -> Result<Option<Node>, SpaceError> {
    let row = sql::query(sql::AssertSqlSafe(format!("{} WHERE id = $2", columns())))
        .bind(cutoff)
        .bind(id)
        .fetch_optional(db.pool())
        .await?;
    row.as_ref().map(node_from).transpose()
}

/// A node's latest heartbeats, newest first.
pub async fn beats(db: &Db, id: &str, limit: u32) -> Result<Vec<Beat>, SpaceError> {
    let rows = sql::query(
        "SELECT at, status, cpu_percent, memory_percent, latency_ms, agents FROM space_heartbeats
         WHERE node = $1 ORDER BY at DESC LIMIT $2",
    )
    .bind(id)
    .bind(i64::from(limit))
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            let status: String = row.try_get("status")?;
            Ok(Beat {
                at: row.try_get("at")?,
                status: parsed(&status, NodeStatus::parse, "status")?,
                metrics: metrics_from(row)?,
            })
        })
        .collect()
}

/// Gives a node a new token (the old one stops working); whether it exists.
pub async fn rotate(db: &Db, id: &str, token_hash: &str) -> Result<bool, SpaceError> {
    let done = sql::query("UPDATE space_nodes SET token_hash = $1 WHERE id = $2")
        .bind(token_hash)
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Removes a node and its heartbeats; its event staged. `None`: no such node.
pub async fn delete(
    db: &Db,
    outbox: &Outbox,
    id: &str,
    event: Envelope,
) -> Result<Option<Staged>, SpaceError> {
    let mut tx = db.begin().await?;
    let done = sql::query("DELETE FROM space_nodes WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Ok(None);
    }
    sql::query("DELETE FROM space_heartbeats WHERE node = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let staged = outbox.stage(&mut tx, vec![event]).await?;
    tx.commit().await?;
    Ok(Some(staged))
}

/// A heartbeat.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    pub status: NodeStatus,
    pub version: String,
    pub hostname: String,
    pub metrics: Metrics,
}

/// Records the heartbeat of node `node` if it holds `token_hash`: its id
/// and the status it had before (as readers saw it), or `None` when the
/// token is not that node's.
pub async fn heartbeat(
    db: &Db,
    token_hash: &str,
    beat: &Heartbeat,
    now: &str,
    cutoff: &str,
    node: &str,
) -> Result<Option<(String, NodeStatus)>, SpaceError> {
    let mut tx = db.begin().await?;
    let row = sql::query(sql::AssertSqlSafe(format!(
        "SELECT id, {EFFECTIVE_STATUS} AS status FROM space_nodes WHERE token_hash = $2 AND id = $3"
    )))
    .bind(cutoff)
    .bind(token_hash)
    .bind(node)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let (id, before): (String, String) = (row.try_get("id")?, row.try_get("status")?);
    let m = &beat.metrics;
    sql::query(
        "UPDATE space_nodes SET status = $1, version = $2, hostname = $3, cpu_percent = $4,
             memory_percent = $5, latency_ms = $6, agents = $7, last_heartbeat = $8
         WHERE id = $9",
    )
    .bind(beat.status.as_str())
    .bind(&beat.version)
    .bind(&beat.hostname)
    .bind(m.cpu_percent)
    .bind(m.memory_percent)
    .bind(m.latency_ms)
    .bind(m.agents)
    .bind(now)
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    sql::query(
        "INSERT INTO space_heartbeats (node, at, status, cpu_percent, memory_percent, latency_ms, agents)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (node, at) DO NOTHING",
    )
    .bind(&id)
    .bind(now)
    .bind(beat.status.as_str())
    .bind(m.cpu_percent)
    .bind(m.memory_percent)
    .bind(m.latency_ms)
    .bind(m.agents)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some((id, parsed(&before, NodeStatus::parse, "status")?)))
}

/// Marks offline the nodes silent since before `cutoff`; returns them. One
/// statement, so each lapse is returned to one sweeper.
pub async fn expire(db: &Db, cutoff: &str) -> Result<Vec<String>, SpaceError> {
    let rows = sql::query(
        "UPDATE space_nodes SET status = 'offline'
         WHERE status IN ('online', 'degraded', 'maintenance') AND last_heartbeat < $1
         RETURNING id",
    )
    .bind(cutoff)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(|row| Ok(row.try_get("id")?)).collect()
}

/// Drops heartbeats older than `cutoff`; how many.
pub async fn prune(db: &Db, cutoff: &str) -> Result<u64, SpaceError> {
    let done = sql::query("DELETE FROM space_heartbeats WHERE at < $1")
        .bind(cutoff)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected())
}

/// The nodes serving a microDAO (its planet's satellites), by id.
pub async fn of_dao(db: &Db, dao: &str, cutoff: &str) -> Result<Vec<Node>, SpaceError> {
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "{} WHERE dao = $2 ORDER BY id",
        columns()
    )))
    .bind(cutoff)
    .bind(dao)
    .fetch_all(db.pool())
    .await?;
    rows.iter().map(node_from).collect()
}
