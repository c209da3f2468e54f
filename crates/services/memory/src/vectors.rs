//! The nearest chunks to a question, from memory: per microDAO and model,
//! a sealed HNSW graph (`instant-distance`) over most vectors and an
//! exactly scanned tail of those written since it was built — the shape of
//! Lucene's segments, since the graph cannot take insertions.
//!
//! The store stays the truth. Before each search the shard reads the
//! chunks of generations it has not seen (migration 001: generations
//! commit in order, so nothing is missed, whichever replica wrote them).
//! Deleted chunks are dropped when the search's results are read from the
//! store (`forget`) and left out of the next graph. A tail past
//! [`Tuning::seal_at`] is folded into a new graph in the background while
//! searches go on; the graph is saved beside the data (when a directory is
//! given) and read back at the first search after a restart — lost or
//! unreadable, it is rebuilt from the store.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::{Arc, Mutex, PoisonError},
};

use daarion_embed::dot;
use instant_distance::{Builder, HnswMap, Search};
use serde::{Deserialize, Serialize};

use crate::{
    domain::MemoryError,
    store::{self, ChunkId},
};

/// A unit vector; the distance is one minus the cosine.
#[derive(Clone, Serialize, Deserialize)]
struct Unit(Vec<f32>);

impl instant_distance::Point for Unit {
    fn distance(&self, other: &Self) -> f32 {
        1.0 - dot(&self.0, &other.0)
    }
}

/// A graph over the vectors of generations up to `generation`.
#[derive(Serialize, Deserialize)]
struct Sealed {
    /// Stands for the file's format: a file of another version is rebuilt.
    format: u32,
    dim: usize,
    generation: i64,
    map: HnswMap<Unit, ChunkId>,
}

const FORMAT: u32 = 1;

#[derive(Default)]
struct Shard {
    sealed: Option<Arc<Sealed>>,
    /// Vectors of generations after the graph's, searched exactly: id,
    /// generation, vector.
    tail: Vec<(ChunkId, i64, Unit)>,
    /// The highest generation read from the store.
    generation: i64,
    /// Chunks found deleted, skipped until the next graph leaves them out.
    gone: HashSet<ChunkId>,
    /// Whether the saved graph was looked for.
    loaded: bool,
    sealing: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct Tuning {
    /// Below this many vectors a shard is only scanned (as fast, exact).
    pub graph_from: usize,
    /// A tail this long (or a tenth of the graph, if more) is sealed.
    pub seal_at: usize,
    /// Candidates the graph search keeps (HNSW's `ef`).
    pub ef_search: usize,
    pub ef_construction: usize,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            graph_from: 4096,
            seal_at: 1024,
            ef_search: 128,
            ef_construction: 128,
        }
    }
}

/// A shard, locked while a search reads it up to date.
type SharedShard = Arc<tokio::sync::Mutex<Shard>>;

/// Every shard of one process.
#[derive(Clone)]
pub struct VectorIndex {
    shards: Arc<Mutex<HashMap<(String, String), SharedShard>>>,
    /// Where graphs are saved; `None`: in memory only.
    dir: Option<PathBuf>,
    tuning: Tuning,
}

impl VectorIndex {
    pub fn new(dir: Option<PathBuf>, tuning: Tuning) -> Self {
        Self {
            shards: Arc::default(),
            dir,
            tuning,
        }
    }

    fn shard(&self, dao: &str, model: &str) -> SharedShard {
        self.shards
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((dao.to_owned(), model.to_owned()))
            .or_default()
            .clone()
    }

    fn file(&self, dao: &str, model: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|dir| dir.join(format!("{dao}.{model}.hnsw")))
    }

    /// The ids of `dao`'s chunks (of `model`, vectors of `dim`) nearest
    /// `query`, best first, `k` at most, with their similarity.
    pub async fn nearest(
        &self,
        db: &daarion_store::Db,
        (dao, model, dim): (&str, &str, usize),
        query: &[f32],
        k: usize,
    ) -> Result<Vec<(ChunkId, f32)>, MemoryError> {
        let shard = self.shard(dao, model);
        let mut shard = shard.lock().await;
        if !shard.loaded {
            shard.loaded = true;
            // A graph ahead of the store is from another timeline (a
            // restored backup, another database): catching up after it
            // would miss the chunks written since under the same numbers.
            let current = store::generation(db, dao).await?;
            match self.load(dao, model, dim).await {
                Some(sealed) if sealed.generation <= current => {
                    shard.generation = sealed.generation;
                    shard.sealed = Some(Arc::new(sealed));
                }
                Some(_) => {
                    tracing::warn!(%dao, %model, "saved vector graph is ahead of the store: rebuilt");
                }
                None => {}
            }
        }
        for stored in store::vectors_after(db, (dao, model, dim), shard.generation).await? {
            shard.generation = shard.generation.max(stored.generation);
            shard
                .tail
                .push((stored.id, stored.generation, Unit(stored.vector)));
        }
        let sealed_len = shard.sealed.as_ref().map_or(0, |s| s.map.values.len());
        let total = sealed_len + shard.tail.len();
        if !shard.sealing
            && total >= self.tuning.graph_from
            && shard.tail.len() >= self.tuning.seal_at.max(sealed_len / 10)
        {
            shard.sealing = true;
            self.seal(dao, model, dim, &shard);
        }
        let mut found: Vec<(ChunkId, f32)> = shard
            .tail
            .iter()
            .filter(|(id, _, _)| !shard.gone.contains(id))
            .map(|(id, _, v)| (*id, dot(&v.0, query)))
            .collect();
        if let Some(sealed) = &shard.sealed {
            let mut search = Search::default();
            let point = Unit(query.to_vec());
            found.extend(
                sealed
                    .map
                    .search(&point, &mut search)
                    .filter(|item| !shard.gone.contains(item.value))
                    .map(|item| (*item.value, 1.0 - item.distance)),
            );
        }
        found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        found.dedup_by_key(|(id, _)| *id);
        found.truncate(k);
        Ok(found)
    }

    /// How a shard stands: vectors in its graph, in its tail, and whether
    /// a graph is being built (for benchmarks and metrics).
    pub async fn status(&self, dao: &str, model: &str) -> (usize, usize, bool) {
        let shard = self.shard(dao, model);
        let shard = shard.lock().await;
        let graph = shard.sealed.as_ref().map_or(0, |s| s.map.values.len());
        (graph, shard.tail.len(), shard.sealing)
    }

    /// Chunks a search found deleted: skipped from now on.
    pub async fn forget(&self, dao: &str, model: &str, ids: &[ChunkId]) {
        if ids.is_empty() {
            return;
        }
        let shard = self.shard(dao, model);
        let mut shard = shard.lock().await;
        shard.tail.retain(|(id, _, _)| !ids.contains(id));
        shard.gone.extend(ids);
    }

    /// Builds a graph over the shard's live vectors off the async runtime,
    /// then swaps it in and saves it.
    fn seal(&self, dao: &str, model: &str, dim: usize, shard: &Shard) {
        let mut points: Vec<Unit> = Vec::new();
        let mut ids: Vec<ChunkId> = Vec::new();
        if let Some(sealed) = &shard.sealed {
            for (pid, point) in sealed.map.iter() {
                let id = sealed.map.values[pid.into_inner() as usize];
                if !shard.gone.contains(&id) {
                    points.push(point.clone());
                    ids.push(id);
                }
            }
        }
        for (id, _, point) in &shard.tail {
            if !shard.gone.contains(id) {
                points.push(point.clone());
                ids.push(*id);
            }
        }
        let generation = shard.generation;
        let index = self.clone();
        let (dao, model) = (dao.to_owned(), model.to_owned());
        let tuning = self.tuning;
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let built = tokio::task::spawn_blocking(move || {
                let map = Builder::default()
                    .ef_construction(tuning.ef_construction)
                    .ef_search(tuning.ef_search)
                    .build(points, ids);
                Sealed {
                    format: FORMAT,
                    dim,
                    generation,
                    map,
                }
            })
            .await;
            let shard = index.shard(&dao, &model);
            let mut shard = shard.lock().await;
            shard.sealing = false;
            let Ok(sealed) = built else {
                tracing::error!(%dao, %model, "building a vector graph failed");
                return;
            };
            metrics::histogram!("memory_index_build_seconds")
                .record(started.elapsed().as_secs_f64());
            let sealed = Arc::new(sealed);
            // Vectors read while it was built stay in the tail.
            shard.tail.retain(|(_, g, _)| *g > generation);
            let held: HashSet<ChunkId> = sealed.map.values.iter().copied().collect();
            shard.gone.retain(|id| held.contains(id));
            shard.sealed = Some(sealed.clone());
            drop(shard);
            index.save(&dao, &model, sealed).await;
        });
    }

    async fn save(&self, dao: &str, model: &str, sealed: Arc<Sealed>) {
        let Some(file) = self.file(dao, model) else {
            return;
        };
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let bytes = postcard::to_stdvec(&*sealed).map_err(std::io::Error::other)?;
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            // Written whole or not at all: a crash mid-write leaves the old
            // graph (or none), never a torn one.
            // Its own partial file: replicas sharing a directory never
            // write into each other's.
            let partial =
                file.with_extension(format!("hnsw.{}.partial", uuid::Uuid::now_v7().simple()));
            std::fs::write(&partial, bytes)?;
            std::fs::rename(&partial, &file)
        })
        .await;
        match written {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, %dao, "vector graph not saved"),
            Err(error) => tracing::warn!(%error, %dao, "vector graph not saved"),
        }
    }

    /// The saved graph of a shard, if there is a readable one of `dim`.
    async fn load(&self, dao: &str, model: &str, dim: usize) -> Option<Sealed> {
        let file = self.file(dao, model)?;
        let read = tokio::task::spawn_blocking(move || {
            let bytes = std::fs::read(&file).ok()?;
            match postcard::from_bytes::<Sealed>(&bytes) {
                Ok(sealed) if sealed.format == FORMAT && sealed.dim == dim => Some(sealed),
                _ => {
                    tracing::warn!(file = %file.display(), "unreadable vector graph: rebuilt from the store");
                    None
                }
            }
        })
        .await;
        read.ok().flatten()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use daarion_store::Db;

    use super::*;
    use crate::testing::{DIM, recall, sets, vectors, write};

    fn small() -> Tuning {
        Tuning {
            graph_from: 64,
            seal_at: 32,
            ef_search: 64,
            ef_construction: 64,
        }
    }

    async fn nearest(index: &VectorIndex, db: &Db, query: &[f32]) -> Vec<ChunkId> {
        let found = index
            .nearest(db, ("d", "m", DIM), query, 10)
            .await
            .unwrap_or_else(|e| unreachable!("{e}"));
        found.into_iter().map(|(id, _)| id).collect()
    }

    async fn sealed(index: &VectorIndex) -> Option<i64> {
        let shard = index.shard("d", "m");
        let shard = shard.lock().await;
        shard.sealed.as_ref().map(|s| s.generation)
    }

    async fn wait_sealed(index: &VectorIndex) {
        daarion_testkit::eventually("a graph", Duration::from_secs(20), || async {
            sealed(index).await
        })
        .await;
    }

    #[tokio::test]
    async fn the_graph_finds_what_a_scan_finds_and_survives_a_restart() {
        for test in daarion_testkit::migrated_dbs(&sets()).await {
            let db = &test.db;
            let dir = tempfile_dir();
            let first = vectors(400, 7);
            let ids = write(db, "d", &first, false).await;
            let mut all: Vec<(ChunkId, Vec<f32>)> = ids.iter().copied().zip(first).collect();
            let queries = vectors(20, 99);

            let index = VectorIndex::new(Some(dir.clone()), small());
            // The first search scans (the graph is built meanwhile).
            let scanned = nearest(&index, db, &queries[0]).await;
            assert_eq!(recall(&all, &queries[0], &scanned), 1.0);
            wait_sealed(&index).await;
            let mut total = 0.0;
            for q in &queries {
                total += recall(&all, q, &nearest(&index, db, q).await);
            }
            assert!(total / 20.0 >= 0.9, "recall@10 {}", total / 20.0);

            // Written since (by another replica): found from the tail.
            let later = vectors(5, 3);
            let later_ids = write(db, "d", &later, false).await;
            let new_ids: Vec<ChunkId> = later_ids
                .into_iter()
                .filter(|id| !ids.contains(id))
                .collect();
            let got = nearest(&index, db, &later[0]).await;
            assert_eq!(got.first(), new_ids.first());
            all.extend(new_ids.into_iter().zip(later.clone()));

            // A restart reads the saved graph and catches up on the rest.
            daarion_testkit::eventually("saved", Duration::from_secs(20), || async {
                dir.join("d.m.hnsw").exists().then_some(())
            })
            .await;
            let restarted = VectorIndex::new(Some(dir.clone()), small());
            assert_eq!(
                nearest(&restarted, db, &later[0]).await,
                nearest(&index, db, &later[0]).await
            );
            assert!(sealed(&restarted).await.is_some(), "read, not rebuilt");

            // A graph ahead of the store (a restored backup) is not trusted.
            let ahead = index.shard("d", "m");
            let generation = ahead.lock().await.generation;
            let newest = store::generation(db, "d").await.unwrap_or_default();
            assert_eq!(generation, newest);
            store::set_generation(db, "d", 0)
                .await
                .unwrap_or_else(|e| unreachable!("{e}"));
            let never_seals = Tuning {
                seal_at: usize::MAX,
                ..small()
            };
            let behind = VectorIndex::new(Some(dir.clone()), never_seals);
            nearest(&behind, db, &queries[2]).await;
            assert_eq!(
                behind.status("d", "m").await,
                (0, all.len(), false),
                "not read: every vector from the store"
            );
            store::set_generation(db, "d", newest)
                .await
                .unwrap_or_else(|e| unreachable!("{e}"));

            // A torn file is rebuilt from the store, with the same answers.
            std::fs::write(dir.join("d.m.hnsw"), b"torn").unwrap_or_else(|e| unreachable!("{e}"));
            let rebuilt = VectorIndex::new(Some(dir.clone()), small());
            assert_eq!(
                recall(&all, &queries[1], &nearest(&rebuilt, db, &queries[1]).await),
                1.0,
                "scanned while the graph is rebuilt"
            );
            std::fs::remove_dir_all(&dir).unwrap_or_else(|e| unreachable!("{e}"));
        }
    }

    #[tokio::test]
    async fn forgotten_chunks_are_never_found_again() {
        for test in daarion_testkit::migrated_dbs(&sets()).await {
            let db = &test.db;
            let points = vectors(200, 11);
            let ids = write(db, "d", &points, false).await;
            let index = VectorIndex::new(None, small());
            let top = nearest(&index, db, &points[0]).await;
            assert_eq!(top.first(), Some(&ids[0]));
            wait_sealed(&index).await;
            index.forget("d", "m", &ids[..1]).await;
            let again = nearest(&index, db, &points[0]).await;
            assert!(!again.contains(&ids[0]), "{again:?}");
            assert_eq!(again.len(), 10);
        }
    }

    fn tempfile_dir() -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("daarion-vectors-{}", uuid::Uuid::now_v7().simple()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| unreachable!("{e}"));
        dir
    }
}
