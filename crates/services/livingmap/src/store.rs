//! The projection: applying an event's changes (once per event id, in one
//! transaction, each change that alters the map numbered and kept as a
//! delta), the snapshot a viewer may see, and the deltas after a number.
//!
//! Every change takes the next number from the one `livingmap_seq` row, so
//! numbers have no gaps and writers queue there; a snapshot is read in one
//! read transaction, so its number says exactly which deltas it holds.

use daarion_store::{
    Backend, Db,
    sql::{self, AnyRow, Row},
};
use serde::Serialize;
use utoipa::ToSchema;

use crate::domain::{
    Anchor, Change, Delta, Geometry, MapEdge, MapEdgeKind, MapError, MapNode, MapNodeKind, Seen,
    Viewer,
};

type Tx = sql::Transaction<'static, sql::Any>;

/// Coordinates are stored in thousandths of a cell.
const MILLI: f64 = 1000.0;

const NODE: &str =
    "SELECT id, kind, label, dao, public, district, status, x, y FROM livingmap_nodes";
const EDGE: &str = "SELECT src, dst, kind, dao, public, weight FROM livingmap_edges";

fn corrupt(what: &str, raw: &str) -> MapError {
    MapError::Corrupt(format!("{what} {raw:?}"))
}

fn node_from(row: &AnyRow) -> Result<MapNode, MapError> {
    let kind: String = row.try_get("kind")?;
    Ok(MapNode {
        id: row.try_get("id")?,
        kind: MapNodeKind::parse(&kind).ok_or_else(|| corrupt("node kind", &kind))?,
        label: row.try_get("label")?,
        dao: row.try_get("dao")?,
        public: row.try_get::<i64, _>("public")? != 0,
        district: row.try_get("district")?,
        status: row.try_get("status")?,
        x: row.try_get::<i64, _>("x")? as f64 / MILLI,
        y: row.try_get::<i64, _>("y")? as f64 / MILLI,
    })
}

fn edge_from(row: &AnyRow) -> Result<MapEdge, MapError> {
    let kind: String = row.try_get("kind")?;
    Ok(MapEdge {
        from: row.try_get("src")?,
        to: row.try_get("dst")?,
        kind: MapEdgeKind::parse(&kind).ok_or_else(|| corrupt("edge kind", &kind))?,
        dao: row.try_get("dao")?,
        public: row.try_get::<i64, _>("public")? != 0,
        weight: row.try_get("weight")?,
    })
}

async fn node_in(tx: &mut Tx, id: &str) -> Result<Option<MapNode>, MapError> {
    let row = sql::query(sql::AssertSqlSafe(format!("{NODE} WHERE id = $1")))
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?;
    row.as_ref().map(node_from).transpose()
}

async fn edge_in(
    tx: &mut Tx,
    from: &str,
    to: &str,
    kind: MapEdgeKind,
) -> Result<Option<MapEdge>, MapError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "{EDGE} WHERE src = $1 AND dst = $2 AND kind = $3"
    )))
    .bind(from)
    .bind(to)
    .bind(kind.as_str())
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(edge_from).transpose()
}

/// Numbers a delta and keeps it.
async fn record(
    tx: &mut Tx,
    make: impl FnOnce(i64) -> Delta,
    dao: Option<&str>,
    public: bool,
) -> Result<Seen, MapError> {
    let seq: i64 = sql::query("UPDATE livingmap_seq SET seq = seq + 1 WHERE id = 1 RETURNING seq")
        .fetch_one(&mut **tx)
        .await?
        .try_get("seq")?;
    let delta = make(seq);
    let body = serde_json::to_string(&delta).map_err(|e| MapError::Corrupt(e.to_string()))?;
    sql::query(
        "INSERT INTO livingmap_deltas (seq, dao, public, body, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(seq)
    .bind(dao)
    .bind(i64::from(public))
    .bind(body)
    .bind(daarion_store::now())
    .execute(&mut **tx)
    .await?;
    Ok(Seen {
        delta,
        dao: dao.map(str::to_owned),
        public,
    })
}

async fn write_node(tx: &mut Tx, node: &MapNode, seq: i64) -> Result<(), MapError> {
    sql::query(
        "INSERT INTO livingmap_nodes (id, kind, label, dao, public, district, status, x, y, seq)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (id) DO UPDATE SET kind = $2, label = $3, dao = $4, public = $5,
            district = $6, status = $7, x = $8, y = $9, seq = $10",
    )
    .bind(&node.id)
    .bind(node.kind.as_str())
    .bind(&node.label)
    .bind(node.dao.as_deref())
    .bind(i64::from(node.public))
    .bind(node.district.as_deref())
    .bind(node.status.as_deref())
    .bind((node.x * MILLI).round() as i64)
    .bind((node.y * MILLI).round() as i64)
    .bind(seq)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

async fn write_edge(tx: &mut Tx, edge: &MapEdge, seq: i64) -> Result<(), MapError> {
    sql::query(
        "INSERT INTO livingmap_edges (src, dst, kind, dao, public, weight, seq)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (src, dst, kind) DO UPDATE SET dao = $4, public = $5, weight = $6, seq = $7",
    )
    .bind(&edge.from)
    .bind(&edge.to)
    .bind(edge.kind.as_str())
    .bind(edge.dao.as_deref())
    .bind(i64::from(edge.public))
    .bind(edge.weight)
    .bind(seq)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Applies one event's changes, unless an event of that id was applied
/// before; the deltas it made (none when nothing on the map changed).
pub async fn apply(
    db: &Db,
    event_id: &str,
    changes: &[Change],
    geometry: &Geometry,
    retained: i64,
) -> Result<Vec<Seen>, MapError> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = db.begin().await?;
    let fresh = sql::query(
        "INSERT INTO livingmap_seen (event_id, seen_at) VALUES ($1, $2) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(daarion_store::now())
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if fresh == 0 {
        return Ok(Vec::new());
    }
    let mut deltas = Vec::new();
    for change in changes {
        if let Some(delta) = apply_one(&mut tx, change, geometry).await? {
            deltas.push(delta);
        }
    }
    if let Some(last) = deltas.last() {
        sql::query("DELETE FROM livingmap_deltas WHERE seq <= $1")
            .bind(last.delta.seq() - retained)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(deltas)
}

async fn apply_one(
    tx: &mut Tx,
    change: &Change,
    geometry: &Geometry,
) -> Result<Option<Seen>, MapError> {
    match change {
        Change::Node {
            id,
            kind,
            label,
            dao,
            public,
            district,
            anchor,
        } => {
            let before = node_in(tx, id).await?;
            let unchanged = before.as_ref().is_some_and(|n| {
                n.kind == *kind
                    && n.label == *label
                    && n.dao == *dao
                    && n.public == *public
                    && n.district == *district
            });
            if unchanged {
                return Ok(None);
            }
            let keeps_place = before.as_ref().filter(|n| n.district == *district);
            let (x, y) = match keeps_place {
                Some(n) => (n.x, n.y),
                None => {
                    let dao_at = match anchor {
                        Anchor::Around(dao) => node_in(tx, &format!("dao:{dao}"))
                            .await?
                            .map(|n| (n.x, n.y)),
                        _ => None,
                    };
                    geometry.place(id, anchor, dao_at)
                }
            };
            let node = MapNode {
                id: id.clone(),
                kind: *kind,
                label: label.clone(),
                dao: dao.clone(),
                public: *public,
                district: district.clone(),
                status: before.and_then(|n| n.status),
                x,
                y,
            };
            let delta = record(
                tx,
                |seq| Delta::Node {
                    seq,
                    node: node.clone(),
                },
                dao.as_deref(),
                *public,
            )
            .await?;
            write_node(tx, &node, delta.delta.seq()).await?;
            Ok(Some(delta))
        }
        Change::Status { id, status } => {
            let Some(mut node) = node_in(tx, id).await? else {
                return Ok(None);
            };
            if node.status.as_deref() == Some(status.as_str()) {
                return Ok(None);
            }
            node.status = Some(status.clone());
            let (dao, public) = (node.dao.clone(), node.public);
            let delta = record(
                tx,
                |seq| Delta::Node {
                    seq,
                    node: node.clone(),
                },
                dao.as_deref(),
                public,
            )
            .await?;
            write_node(tx, &node, delta.delta.seq()).await?;
            Ok(Some(delta))
        }
        Change::RemoveNode(id) => {
            let Some(node) = node_in(tx, id).await? else {
                return Ok(None);
            };
            let delta = record(
                tx,
                |seq| Delta::RemoveNode {
                    seq,
                    id: id.clone(),
                },
                node.dao.as_deref(),
                node.public,
            )
            .await?;
            sql::query("DELETE FROM livingmap_nodes WHERE id = $1")
                .bind(id)
                .execute(&mut **tx)
                .await?;
            // Its edges go with it (a client applying the delta drops them too).
            sql::query("DELETE FROM livingmap_edges WHERE src = $1 OR dst = $1")
                .bind(id)
                .execute(&mut **tx)
                .await?;
            Ok(Some(delta))
        }
        Change::Edge {
            from,
            to,
            kind,
            dao,
            public,
            weight,
        } => {
            let before = edge_in(tx, from, to, *kind).await?;
            // A membership is seen by whoever sees its microDAO.
            let public = *public
                || (*kind == MapEdgeKind::Member
                    && match dao {
                        Some(dao) => node_in(tx, &format!("dao:{dao}"))
                            .await?
                            .is_some_and(|n| n.public),
                        None => false,
                    });
            let edge = MapEdge {
                from: from.clone(),
                to: to.clone(),
                kind: *kind,
                dao: dao.clone(),
                public,
                weight: before.as_ref().map_or(0, |e| e.weight) + weight,
            };
            if before.as_ref() == Some(&edge) {
                return Ok(None);
            }
            let delta = record(
                tx,
                |seq| Delta::Edge {
                    seq,
                    edge: edge.clone(),
                },
                dao.as_deref(),
                public,
            )
            .await?;
            write_edge(tx, &edge, delta.delta.seq()).await?;
            Ok(Some(delta))
        }
        Change::RemoveEdge { from, to, kind } => {
            let Some(edge) = edge_in(tx, from, to, *kind).await? else {
                return Ok(None);
            };
            let delta = record(
                tx,
                |seq| Delta::RemoveEdge {
                    seq,
                    from: from.clone(),
                    to: to.clone(),
                    kind: *kind,
                },
                edge.dao.as_deref(),
                edge.public,
            )
            .await?;
            sql::query("DELETE FROM livingmap_edges WHERE src = $1 AND dst = $2 AND kind = $3")
                .bind(from)
                .bind(to)
                .bind(kind.as_str())
                .execute(&mut **tx)
                .await?;
            Ok(Some(delta))
        }
        Change::Activity {
            room,
            dao,
            public,
            kind,
        } => {
            let seen_in = match room {
                Some(room) => node_in(tx, room).await?,
                None => None,
            };
            let (dao, public) = match seen_in {
                Some(n) => (n.dao, n.public),
                None => (dao.clone(), *public),
            };
            let now = daarion_store::now();
            sql::query(
                "INSERT INTO livingmap_activity (minute, dao, public, kind, count) VALUES ($1, $2, $3, $4, 1)
                 ON CONFLICT (minute, dao, kind) DO UPDATE SET count = livingmap_activity.count + 1",
            )
            .bind(&now[..16])
            .bind(dao.as_deref().unwrap_or(""))
            .bind(i64::from(public))
            .bind(*kind)
            .execute(&mut **tx)
            .await?;
            Ok(None)
        }
        Change::ProposalOpened { id, dao } => {
            sql::query(
                "INSERT INTO livingmap_proposals (id, dao) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
            )
            .bind(id)
            .bind(dao)
            .execute(&mut **tx)
            .await?;
            Ok(None)
        }
        Change::ProposalClosed { id } => {
            sql::query("DELETE FROM livingmap_proposals WHERE id = $1")
                .bind(id)
                .execute(&mut **tx)
                .await?;
            Ok(None)
        }
    }
}

/// The city's pulse as the viewer may see it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Counters {
    /// Messages a minute, over the last two minutes.
    pub messages_per_min: f64,
    /// Agent runs a minute, over the last two minutes.
    pub runs_per_min: f64,
    pub open_proposals: i64,
}

/// The viewer's filter as SQL over a table with `public` and `dao`
/// columns, the microDAOs bound as a JSON array at `$param`.
fn visible(backend: Backend, viewer: &Viewer, param: usize) -> String {
    if viewer.admin {
        // Everything; the bound microDAOs are still named, as every
        // statement binds them.
        return format!("CAST(${param} AS TEXT) = CAST(${param} AS TEXT)");
    }
    format!(
        "(public = 1 OR dao IN ({}))",
        sql::json_texts(backend, param)
    )
}

fn daos_of(viewer: &Viewer) -> String {
    serde_json::to_string(&viewer.daos.iter().collect::<Vec<_>>()).unwrap_or_else(|_| "[]".into())
}

/// Everything on the viewer's map now, and the number of the last change
/// it holds.
pub async fn snapshot(
    db: &Db,
    viewer: &Viewer,
) -> Result<(i64, Vec<MapNode>, Vec<MapEdge>), MapError> {
    let backend = db.backend();
    let mut tx = db.reader().begin().await?;
    if backend == Backend::Postgres {
        sql::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            .execute(&mut *tx)
            .await?;
    }
    let seq: i64 = sql::query("SELECT seq FROM livingmap_seq WHERE id = 1")
        .fetch_one(&mut *tx)
        .await?
        .try_get("seq")?;
    let daos = daos_of(viewer);
    let filter = visible(backend, viewer, 1);
    let nodes = sql::query(sql::AssertSqlSafe(format!(
        "{NODE} WHERE {filter} ORDER BY id"
    )))
    .bind(&daos)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(node_from)
    .collect::<Result<Vec<_>, _>>()?;
    let edges = sql::query(sql::AssertSqlSafe(format!(
        "{EDGE} WHERE {filter} ORDER BY src, dst, kind"
    )))
    .bind(&daos)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(edge_from)
    .collect::<Result<Vec<_>, _>>()?;
    tx.commit().await?;
    Ok((seq, nodes, edges))
}

/// The city's pulse as the viewer may see it.
pub async fn counters(db: &Db, viewer: &Viewer) -> Result<Counters, MapError> {
    let mut tx = db.reader().begin().await?;
    let counters = counters_in(&mut tx, db.backend(), viewer).await?;
    tx.commit().await?;
    Ok(counters)
}

async fn counters_in(
    tx: &mut sql::Transaction<'static, sql::Any>,
    backend: Backend,
    viewer: &Viewer,
) -> Result<Counters, MapError> {
    let daos = daos_of(viewer);
    let filter = visible(backend, viewer, 1);
    let since = &daarion_store::ago(std::time::Duration::from_secs(60))[..16];
    let mut counts = Vec::new();
    for kind in ["messages", "runs"] {
        let n: i64 = sql::query(sql::AssertSqlSafe(format!(
            "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) AS n FROM livingmap_activity
             WHERE kind = $3 AND minute >= $2 AND {filter}"
        )))
        .bind(&daos)
        .bind(since)
        .bind(kind)
        .fetch_one(&mut **tx)
        .await?
        .try_get("n")?;
        counts.push(n as f64 / 2.0);
    }
    // A proposal is seen by whoever sees its microDAO.
    let open: i64 = sql::query(sql::AssertSqlSafe(format!(
        "SELECT COUNT(*) AS n FROM livingmap_proposals WHERE dao IN
            (SELECT dao FROM livingmap_nodes WHERE kind = 'dao' AND {filter})"
    )))
    .bind(&daos)
    .fetch_one(&mut **tx)
    .await?
    .try_get("n")?;
    Ok(Counters {
        messages_per_min: counts[0],
        runs_per_min: counts[1],
        open_proposals: open,
    })
}

/// The viewer's deltas after `since`, at most `limit`, and the last number
/// given so far; too far behind when some after `since` are gone.
pub async fn deltas(
    db: &Db,
    viewer: &Viewer,
    since: i64,
    limit: u32,
) -> Result<(Vec<Delta>, i64), MapError> {
    let backend = db.backend();
    let row = sql::query(
        "SELECT s.seq AS last, (SELECT MIN(seq) FROM livingmap_deltas) AS oldest
         FROM livingmap_seq s WHERE s.id = 1",
    )
    .fetch_one(db.reader())
    .await?;
    let last: i64 = row.try_get("last")?;
    let oldest: Option<i64> = row.try_get("oldest")?;
    if since > last {
        return Err(MapError::Invalid(format!(
            "since is past the last change ({last})"
        )));
    }
    if since < last && oldest.is_none_or(|o| o > since + 1) {
        return Err(MapError::TooFarBehind(
            "the changes since then are no longer kept: take a new snapshot".into(),
        ));
    }
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "SELECT body FROM livingmap_deltas WHERE seq > $2 AND seq <= $4 AND {}
         ORDER BY seq LIMIT $3",
        visible(backend, viewer, 1)
    )))
    .bind(daos_of(viewer))
    .bind(since)
    .bind(i64::from(limit))
    .bind(last)
    .fetch_all(db.reader())
    .await?;
    let deltas = rows
        .iter()
        .map(|r| {
            let body: String = r.try_get("body")?;
            serde_json::from_str(&body).map_err(|_| corrupt("delta", &body))
        })
        .collect::<Result<Vec<Delta>, MapError>>()?;
    Ok((deltas, last))
}

/// Applies `deltas` to a snapshot's nodes and edges, as a client does.
pub fn replay(nodes: &mut Vec<MapNode>, edges: &mut Vec<MapEdge>, deltas: &[Delta]) {
    for delta in deltas {
        match delta {
            Delta::Node { node, .. } => match nodes.iter_mut().find(|n| n.id == node.id) {
                Some(n) => *n = node.clone(),
                None => nodes.push(node.clone()),
            },
            Delta::RemoveNode { id, .. } => {
                nodes.retain(|n| n.id != *id);
                edges.retain(|e| e.from != *id && e.to != *id);
            }
            Delta::Edge { edge, .. } => match edges
                .iter_mut()
                .find(|e| e.from == edge.from && e.to == edge.to && e.kind == edge.kind)
            {
                Some(e) => *e = edge.clone(),
                None => edges.push(edge.clone()),
            },
            Delta::RemoveEdge { from, to, kind, .. } => {
                edges.retain(|e| !(e.from == *from && e.to == *to && e.kind == *kind));
            }
        }
    }
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    edges.sort_by(|a, b| (&a.from, &a.to, a.kind.as_str()).cmp(&(&b.from, &b.to, b.kind.as_str())));
}

/// The city map's districts and public rooms' places.
pub async fn geometry(db: &Db) -> Result<Geometry, MapError> {
    let (districts, places) = daarion_city::store::map::map(db)
        .await
        .map_err(|e| MapError::Corrupt(e.to_string()))?;
    let rect = |r: &daarion_city::map::Rect| {
        (
            f64::from(r.x),
            f64::from(r.y),
            f64::from(r.w),
            f64::from(r.h),
        )
    };
    let mut geometry = Geometry {
        width: 32.0,
        height: 24.0,
        ..Geometry::default()
    };
    let mut extend = |(x, y, w, h): (f64, f64, f64, f64)| {
        geometry.width = geometry.width.max(x + w);
        geometry.height = geometry.height.max(y + h);
    };
    for d in &districts {
        extend(rect(&d.area));
    }
    for p in &places {
        extend(rect(&p.area));
    }
    geometry.districts = districts
        .iter()
        .map(|d| (d.slug.clone(), rect(&d.area)))
        .collect();
    geometry.places = places
        .iter()
        .map(|p| (p.room.clone(), rect(&p.area)))
        .collect();
    Ok(geometry)
}
