//! Where a search's nearest vectors come from, per `memory.vectors`: the
//! embedded index (`vectors`, over any store) or PostgreSQL itself with
//! pgvector (`pgvector`). `auto` takes pgvector when the city's PostgreSQL
//! can load it and the embedded index otherwise; the choice is made at
//! first use and said in the log.

use std::{path::PathBuf, sync::Arc};

use daarion_store::{Backend, Db};
use tokio::sync::OnceCell;

use crate::{
    domain::MemoryError,
    pgvector::{self, Pgvector},
    store::ChunkId,
    vectors::{Tuning, VectorIndex},
};

#[derive(Clone)]
pub struct Nearest {
    setting: String,
    /// Whether pgvector answers, once decided.
    pgvector_on: Arc<OnceCell<bool>>,
    embedded: VectorIndex,
    pgvector: Pgvector,
}

impl Nearest {
    /// `setting`: `auto`, `embedded` or `pgvector`; `index_dir`: where the
    /// embedded index saves its graphs.
    pub fn new(setting: &str, index_dir: Option<PathBuf>, tuning: Tuning) -> Self {
        Self {
            setting: setting.to_owned(),
            pgvector_on: Arc::default(),
            embedded: VectorIndex::new(index_dir, tuning),
            pgvector: Pgvector::default(),
        }
    }

    /// Whether vectors are written to and searched in pgvector.
    pub async fn pgvector(&self, db: &Db) -> Result<bool, MemoryError> {
        self.pgvector_on
            .get_or_try_init(|| choose(&self.setting, db))
            .await
            .copied()
    }

    /// Decides, and with pgvector makes its column and `model`'s index:
    /// at a service's start, so a city that cannot have what it asked for
    /// says so then.
    pub async fn ready(&self, db: &Db, model: &str, dim: usize) -> Result<(), MemoryError> {
        if self.pgvector(db).await? {
            self.pgvector.ready(db, model, dim).await?;
        }
        Ok(())
    }

    /// The ids of `dao`'s chunks (of `model`, vectors of `dim`) nearest
    /// `query`, best first, `k` at most, with their similarity.
    pub async fn nearest(
        &self,
        db: &Db,
        key: (&str, &str, usize),
        query: &[f32],
        k: usize,
    ) -> Result<Vec<(ChunkId, f32)>, MemoryError> {
        if self.pgvector(db).await? {
            self.pgvector.nearest(db, key, query, k).await
        } else {
            self.embedded.nearest(db, key, query, k).await
        }
    }

    /// Chunks a search found deleted (pgvector never returns them).
    pub async fn forget(&self, dao: &str, model: &str, ids: &[ChunkId]) {
        self.embedded.forget(dao, model, ids).await;
    }

    /// The embedded index, for benchmarks.
    pub fn embedded(&self) -> &VectorIndex {
        &self.embedded
    }
}

async fn choose(setting: &str, db: &Db) -> Result<bool, MemoryError> {
    if setting == "embedded" {
        return Ok(false);
    }
    let postgres = db.backend() == Backend::Postgres;
    let available = postgres && pgvector::available(db).await?;
    match setting {
        "pgvector" if !postgres => Err(MemoryError::Invalid(
            "memory.vectors = \"pgvector\" needs PostgreSQL (database_url)".into(),
        )),
        "pgvector" if !available => Err(MemoryError::Invalid(
            "memory.vectors = \"pgvector\": the PostgreSQL server has no pgvector extension installed"
                .into(),
        )),
        "pgvector" => Ok(true),
        _ => {
            if postgres && !available {
                tracing::warn!("PostgreSQL has no pgvector: memory searches vectors with the embedded index");
            }
            Ok(available)
        }
    }
}
