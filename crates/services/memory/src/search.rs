//! Hybrid retrieval over a microDAO's knowledge: the best full-text
//! matches and the nearest vectors, fused by reciprocal rank. Vectors are
//! compared exactly, every chunk of the microDAO against the question.

use daarion_embed::Kind;

use crate::{
    MemoryState,
    domain::{Hit, MemoryError, fuse},
    embedder::embed_checked,
    store::{self, ChunkKey},
};

/// How many each list contributes before fusion.
const CANDIDATES: usize = 50;

/// The `limit` best chunks of `dao`'s knowledge for `query`, the vector
/// list weighted `alpha` against the words' (`domain::fuse`), and whether
/// vectors took part (not when the model is unavailable: the words alone
/// answer then, and the reason is logged).
pub async fn hybrid(
    state: &MemoryState,
    dao: &str,
    query: &str,
    (limit, alpha): (usize, f64),
) -> Result<(Vec<Hit>, bool), MemoryError> {
    let by_text = store::by_text(&state.db, dao, query, CANDIDATES).await?;
    let by_vector = match embed_query(state, query).await {
        Ok(Some(vector)) => Some(nearest(state, dao, &vector).await?),
        Ok(None) => Some(Vec::new()),
        Err(error) => {
            tracing::warn!(%error, "memory search without vectors");
            None
        }
    };
    let semantic = by_vector.is_some();
    let alpha = if semantic { alpha } else { 0.0 };
    let fused = fuse(&by_text, &by_vector.unwrap_or_default(), alpha);
    let mut hits = Vec::with_capacity(limit);
    for (key, score, text_rank, vector_rank) in fused {
        if hits.len() == limit {
            break;
        }
        // A chunk deleted since it ranked is skipped.
        if let Some((title, heading, text)) = store::chunk(&state.db, &key).await? {
            hits.push(Hit {
                document: key.0,
                title,
                seq: key.1,
                heading,
                text,
                score,
                text_rank,
                vector_rank,
            });
        }
    }
    Ok((hits, semantic))
}

async fn embed_query(state: &MemoryState, query: &str) -> Result<Option<Vec<f32>>, MemoryError> {
    let model = state.embedder.clone();
    let query = query.to_owned();
    let mut vectors =
        tokio::task::spawn_blocking(move || embed_checked(&model, &[query.as_str()], Kind::Query))
            .await
            .map_err(|e| MemoryError::Embedding(e.to_string()))??;
    Ok(vectors.pop().flatten())
}

/// `dao`'s chunks nearest `query`, best first, [`CANDIDATES`] at most.
async fn nearest(
    state: &MemoryState,
    dao: &str,
    query: &[f32],
) -> Result<Vec<ChunkKey>, MemoryError> {
    let model = &state.embedder;
    let vectors = store::vectors(&state.db, dao, model.name(), model.dim()).await?;
    let mut scored: Vec<(f32, ChunkKey)> = vectors
        .into_iter()
        .map(|(key, v)| (v.iter().zip(query).map(|(a, b)| a * b).sum(), key))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    scored.truncate(CANDIDATES);
    Ok(scored.into_iter().map(|(_, key)| key).collect())
}
