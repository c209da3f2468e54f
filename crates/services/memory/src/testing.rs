//! Helpers of the crate's unit tests: vectors from a seed, chunks
//! written as the indexer writes them, recall against an exact ranking.

use std::sync::Arc;

use daarion_bus::{EmbeddedBus, Outbox, subject::Streams};
use daarion_embed::dot;
use daarion_store::Db;

use crate::{
    chunk::{Chunk, DocumentFormat},
    domain::NewDocument,
    store::{self, ChunkId},
};

pub const DIM: usize = 8;

/// Unit vectors from a fixed seed (xorshift), so runs compare.
pub fn vectors(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut state = seed.max(1);
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 2001) as f32 / 1000.0 - 1.0
    };
    (0..n)
        .map(|_| {
            let mut v: Vec<f32> = (0..DIM).map(|_| next()).collect();
            let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
            v.iter_mut().for_each(|x| *x /= norm);
            v
        })
        .collect()
}

/// One document of `vectors.len()` chunks, indexed with those vectors
/// (by model `m`), as another replica would write it; the ids of all
/// `dao`'s chunks of `m`.
pub async fn write(db: &Db, dao: &str, vectors: &[Vec<f32>], pgvector: bool) -> Vec<ChunkId> {
    let streams =
        Streams::new(crate::SPEC.streams.iter().copied()).unwrap_or_else(|e| unreachable!("{e}"));
    let outbox = Outbox::new(db.clone(), Arc::new(EmbeddedBus::new(db.clone(), streams)));
    let new = NewDocument::parse("v", Some(DocumentFormat::Text), "v", 100)
        .unwrap_or_else(|e| unreachable!("{e}"));
    let (document, _, _) = store::create(db, &outbox, dao, &new, ("user:a", "a"), None)
        .await
        .unwrap_or_else(|e| unreachable!("{e}"));
    let chunks: Vec<(Chunk, Option<Vec<f32>>)> = vectors
        .iter()
        .map(|v| {
            let chunk = Chunk {
                heading: String::new(),
                text: "v".into(),
            };
            (chunk, Some(v.clone()))
        })
        .collect();
    store::index(db, &outbox, &document.id, ("m", pgvector), &chunks)
        .await
        .unwrap_or_else(|e| unreachable!("{e}"));
    let stored = store::vectors_after(db, (dao, "m", DIM), 0)
        .await
        .unwrap_or_default();
    stored.into_iter().map(|s| s.id).collect()
}

pub fn sets() -> [daarion_store::MigrationSet; 3] {
    [
        crate::SPEC.migration_set(),
        daarion_bus::MIGRATIONS,
        daarion_store::idempotency::MIGRATIONS,
    ]
}

/// Recall of `got` against the exact top 10 of `query` over `all`.
pub fn recall(all: &[(ChunkId, Vec<f32>)], query: &[f32], got: &[ChunkId]) -> f64 {
    let mut exact: Vec<(ChunkId, f32)> = all.iter().map(|(id, v)| (*id, dot(v, query))).collect();
    exact.sort_by(|a, b| b.1.total_cmp(&a.1));
    let hits = exact[..10]
        .iter()
        .filter(|(id, _)| got.contains(id))
        .count();
    hits as f64 / 10.0
}
