//! The nearest chunks from PostgreSQL itself, with pgvector: a `vec`
//! column beside the stored bytes and an HNSW index per model (a partial
//! index over `vec::vector(<dims>)`, since one column holds every model's
//! vectors). Made by the service at first use, not by a migration: the
//! extension may be installed after the tables were, and the index's
//! dimensions are the model's.
//!
//! pgvector 0.6 filters after the graph scan (iterative scans came with
//! 0.8), so a search in one microDAO of many could come back short from
//! the city-wide graph. A microDAO with few vectors, or a small share of
//! the model's, is scanned exactly over its own rows (the `(dao, model,
//! generation)` index finds them); a bigger one uses the graph with
//! `hnsw.ef_search` widened by how much of the city it is, and is scanned
//! exactly if the graph still answers short. `bench/memory` measures both.

use std::{fmt::Write, sync::Arc, time::Duration};

use daarion_store::{
    Db,
    sql::{self, Row},
};
use tokio::sync::OnceCell;

use crate::{domain::MemoryError, embedder, expiring::Expiring, store::ChunkId};

/// The graph does not serve a microDAO holding under a tenth of the model's
/// vectors: too few of the graph's candidates would be its own.
const SMALLEST_SHARE: i64 = 10;
/// pgvector's bounds of `hnsw.ef_search`.
const EF_SEARCH: (i64, i64) = (40, 1000);
/// How long a microDAO's count of vectors is trusted.
const COUNTS_FOR: Duration = Duration::from_secs(30);

/// Whether PostgreSQL can load pgvector (installed on the server, whether
/// or not this database has created it yet).
pub async fn available(db: &Db) -> Result<bool, MemoryError> {
    let row = sql::query("SELECT count(*) AS n FROM pg_available_extensions WHERE name = 'vector'")
        .fetch_one(db.pool())
        .await?;
    Ok(row.try_get::<i64, _>("n")? > 0)
}

#[derive(Clone)]
pub struct Pgvector {
    /// A microDAO with at most this many vectors is scanned exactly.
    exact_up_to: i64,
    /// The column and the model's index exist (once per process).
    ready: Arc<OnceCell<()>>,
    /// Per microDAO and model: its vectors, the model's in all.
    counts: Expiring<(String, String), (i64, i64)>,
}

impl Default for Pgvector {
    /// Exact up to 2 000 vectors: `bench/memory` scanned 10 000 in 6.8 ms
    /// (p99 11 ms) where the graph took 1.4 ms (3.4 ms).
    fn default() -> Self {
        Self::new(2_000)
    }
}

impl Pgvector {
    pub fn new(exact_up_to: i64) -> Self {
        Self {
            exact_up_to,
            ready: Arc::default(),
            counts: Expiring::new(COUNTS_FOR),
        }
    }

    /// Makes the extension, the column and `model`'s index if they are
    /// missing, and fills the column from the stored bytes where it is
    /// empty (a city that searched with the embedded index before).
    pub async fn ready(&self, db: &Db, model: &str, dim: usize) -> Result<(), MemoryError> {
        self.ready
            .get_or_try_init(|| prepare(db, model, dim))
            .await
            .map(drop)
    }

    /// The ids of `dao`'s chunks (of `model`, vectors of `dim`) nearest
    /// `query`, best first, `k` at most, with their similarity.
    pub async fn nearest(
        &self,
        db: &Db,
        (dao, model, dim): (&str, &str, usize),
        query: &[f32],
        k: usize,
    ) -> Result<Vec<(ChunkId, f32)>, MemoryError> {
        self.ready(db, model, dim).await?;
        let (mine, all) = self.counts(db, dao, model).await?;
        if mine == 0 {
            return Ok(Vec::new());
        }
        let query = literal_vector(query);
        if mine <= self.exact_up_to || mine * SMALLEST_SHARE < all {
            return exact(db, (dao, model, dim), &query, k).await;
        }
        // Enough candidates that `k` of them are likely `dao`'s.
        let ef = (k as i64 * all / mine * 3 / 2).clamp(EF_SEARCH.0, EF_SEARCH.1);
        let found = graph(db, (dao, model, dim), &query, k, ef).await?;
        if found.len() < k {
            return exact(db, (dao, model, dim), &query, k).await;
        }
        Ok(found)
    }

    async fn counts(&self, db: &Db, dao: &str, model: &str) -> Result<(i64, i64), MemoryError> {
        let key = (dao.to_owned(), model.to_owned());
        if let Some(counted) = self.counts.get(&key) {
            return Ok(counted);
        }
        let row = sql::query(
            "SELECT count(*) FILTER (WHERE dao = $1) AS mine, count(*) AS total
             FROM memory_chunks WHERE model = $2 AND vec IS NOT NULL",
        )
        .bind(dao)
        .bind(model)
        .fetch_one(db.reader())
        .await?;
        let (mine, all): (i64, i64) = (row.try_get("mine")?, row.try_get("total")?);
        self.counts.put(key, (mine, all));
        Ok((mine, all))
    }
}

/// `dao`'s vectors, every one compared: the subquery's `OFFSET 0` keeps
/// the planner from ordering by the (city-wide, filtered-after) graph.
async fn exact(
    db: &Db,
    (dao, model, dim): (&str, &str, usize),
    query: &str,
    k: usize,
) -> Result<Vec<(ChunkId, f32)>, MemoryError> {
    let text = format!(
        "SELECT id, distance FROM (
             SELECT id, vec::vector({dim}) <=> $1::vector({dim}) AS distance FROM memory_chunks
             WHERE dao = $2 AND model = {model} AND vec IS NOT NULL OFFSET 0
         ) AS mine ORDER BY distance, id LIMIT $3",
        model = literal(model)
    );
    let rows = sql::query(sql::AssertSqlSafe(text))
        .bind(query)
        .bind(dao)
        .bind(k as i64)
        .fetch_all(db.reader())
        .await?;
    rows.iter().map(similarity).collect()
}

/// The model's HNSW index, `ef` candidates, then `dao`'s among them.
async fn graph(
    db: &Db,
    (dao, model, dim): (&str, &str, usize),
    query: &str,
    k: usize,
    ef: i64,
) -> Result<Vec<(ChunkId, f32)>, MemoryError> {
    let mut tx = db.begin().await?;
    sql::query("SELECT set_config('hnsw.ef_search', $1, true)")
        .bind(ef.to_string())
        .execute(&mut *tx)
        .await?;
    // The model is written out, not bound: the planner matches a partial
    // index's predicate against the query's text. `dao` is applied to the
    // graph's candidates outside, as pgvector would inside; written so, the
    // planner cannot trade the graph for the `dao` index on a guess.
    let text = format!(
        "SELECT id, distance FROM (
             SELECT id, dao, vec::vector({dim}) <=> $1::vector({dim}) AS distance
             FROM memory_chunks WHERE model = {model}
             ORDER BY vec::vector({dim}) <=> $1::vector({dim}) LIMIT $4
         ) AS near WHERE dao = $2 ORDER BY distance, id LIMIT $3",
        model = literal(model)
    );
    let rows = sql::query(sql::AssertSqlSafe(text))
        .bind(query)
        .bind(dao)
        .bind(k as i64)
        .bind(ef)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await.map_err(daarion_store::StoreError::from)?;
    rows.iter().map(similarity).collect()
}

fn similarity(row: &sql::AnyRow) -> Result<(ChunkId, f32), MemoryError> {
    let distance: f64 = row.try_get("distance")?;
    Ok((row.try_get("id")?, (1.0 - distance) as f32))
}

async fn prepare(db: &Db, model: &str, dim: usize) -> Result<(), MemoryError> {
    let mut tx = db.begin().await?;
    // Replicas starting together take turns (`IF NOT EXISTS` alone races).
    sql::query("SELECT pg_advisory_xact_lock(hashtext('daarion.memory.pgvector'))")
        .execute(&mut *tx)
        .await?;
    let index: String = model
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    for statement in [
        "CREATE EXTENSION IF NOT EXISTS vector".to_owned(),
        "ALTER TABLE memory_chunks ADD COLUMN IF NOT EXISTS vec vector".to_owned(),
        // Kept in the row where it fits (vectors do not compress): a scan
        // then reads no TOAST table.
        "ALTER TABLE memory_chunks ALTER COLUMN vec SET STORAGE MAIN".to_owned(),
        format!(
            "CREATE INDEX IF NOT EXISTS memory_chunks_vec_{index}_{dim} ON memory_chunks
             USING hnsw ((vec::vector({dim})) vector_cosine_ops) WHERE model = {model}",
            model = literal(model)
        ),
    ] {
        sql::query(sql::AssertSqlSafe(statement))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await.map_err(daarion_store::StoreError::from)?;
    backfill(db, model, dim).await
}

async fn backfill(db: &Db, model: &str, dim: usize) -> Result<(), MemoryError> {
    let mut after: ChunkId = 0;
    loop {
        let rows = sql::query(
            "SELECT id, embedding FROM memory_chunks
             WHERE model = $1 AND id > $2 AND vec IS NULL AND embedding IS NOT NULL
             ORDER BY id LIMIT 500",
        )
        .bind(model)
        .bind(after)
        .fetch_all(db.pool())
        .await?;
        if rows.is_empty() {
            return Ok(());
        }
        let mut tx = db.begin().await?;
        for row in &rows {
            after = row.try_get("id")?;
            let bytes: Vec<u8> = row.try_get("embedding")?;
            // Bytes of other dimensions were never readable as this model's
            // vectors (the embedded index skips them too).
            let Some(vector) = embedder::from_bytes(&bytes, dim) else {
                continue;
            };
            sql::query("UPDATE memory_chunks SET vec = $2::vector WHERE id = $1")
                .bind(after)
                .bind(literal_vector(&vector))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await.map_err(daarion_store::StoreError::from)?;
        tracing::info!(
            model,
            chunks = rows.len(),
            "memory vectors copied into pgvector"
        );
    }
}

/// pgvector's text form, `[0.1,-0.2,…]` (each float as short as it reads
/// back exactly).
pub fn literal_vector(vector: &[f32]) -> String {
    let mut out = String::with_capacity(vector.len() * 12);
    out.push('[');
    for (i, x) in vector.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{x}");
    }
    out.push(']');
    out
}

/// An SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{DIM, recall, sets, vectors, write};

    async fn nearest(pg: &Pgvector, db: &Db, dao: &str, query: &[f32]) -> Vec<ChunkId> {
        let found = pg
            .nearest(db, (dao, "m", DIM), query, 10)
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        found.into_iter().map(|(id, _)| id).collect()
    }

    #[tokio::test]
    async fn the_graph_and_the_scan_find_only_their_communitys_nearest() {
        let Some(test) = daarion_testkit::migrated_pgvector_db(&sets()).await else {
            return;
        };
        let db = &test.db;
        // Written before pgvector was used (the embedded index's city):
        // copied into the column when it is made.
        let before = vectors(300, 7);
        write(db, "big", &before, false).await;
        let pg = Pgvector::new(100);
        pg.ready(db, "m", DIM)
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        let later = vectors(200, 8);
        let big = write(db, "big", &later, true).await;
        let all_big: Vec<(ChunkId, Vec<f32>)> = big
            .iter()
            .copied()
            .zip(before.into_iter().chain(later))
            .collect();
        let points = vectors(60, 9);
        let small = write(db, "small", &points, true).await;
        let all_small: Vec<(ChunkId, Vec<f32>)> = small.iter().copied().zip(points).collect();

        // 500 of 560: the graph, filtered to `big`'s; 60: scanned.
        let (mut graph, mut scanned) = (0.0, 0.0);
        for q in &vectors(20, 99) {
            let got = nearest(&pg, db, "big", q).await;
            assert_eq!(got.len(), 10);
            assert!(got.iter().all(|id| big.contains(id)), "{got:?}");
            graph += recall(&all_big, q, &got);
            let got = nearest(&pg, db, "small", q).await;
            assert!(got.iter().all(|id| small.contains(id)), "{got:?}");
            scanned += recall(&all_small, q, &got);
        }
        assert!(graph / 20.0 >= 0.9, "graph recall@10 {}", graph / 20.0);
        assert_eq!(scanned / 20.0, 1.0);

        // A deleted chunk is never found again; a community with nothing
        // finds nothing.
        let (first, point) = &all_small[0];
        assert_eq!(nearest(&pg, db, "small", point).await.first(), Some(first));
        sql::query("DELETE FROM memory_chunks WHERE id = $1")
            .bind(first)
            .execute(db.pool())
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(!nearest(&pg, db, "small", point).await.contains(first));
        assert!(nearest(&pg, db, "nobody", point).await.is_empty());
    }
}
