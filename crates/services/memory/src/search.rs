//! Hybrid retrieval over a microDAO's knowledge: the best full-text
//! matches and the nearest vectors (`vectors`), fused by reciprocal rank.

use daarion_embed::Kind;

use crate::{
    Knowledge,
    domain::{Hit, MemoryError, Within, fuse},
    embedder::embed_checked,
    store,
};

/// How many each list contributes before fusion.
const CANDIDATES: usize = 50;

/// The `limit` best chunks of `dao`'s knowledge for `query` (of what
/// `within` keeps to), the vector list weighted `alpha` against the
/// words' (`domain::fuse`), and whether vectors took part (not when the
/// model is unavailable: the words alone answer then, and the reason is
/// logged).
pub async fn hybrid(
    state: &Knowledge,
    (dao, within): (&str, Within<'_>),
    query: &str,
    (limit, alpha): (usize, f64),
) -> Result<(Vec<Hit>, bool), MemoryError> {
    let by_text = state
        .fulltext
        .search(&state.db, (dao, within), query, CANDIDATES)
        .await?;
    let by_vector = match embed_query(state, query).await {
        Ok(Some(vector)) if within.is_all() => Some(nearest(state, dao, &vector).await?),
        Ok(Some(vector)) => Some(kept_to(state, (dao, within), &vector).await?),
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
    let mut gone = Vec::new();
    for (id, score, text_rank, vector_rank) in fused {
        if hits.len() == limit {
            break;
        }
        // A chunk deleted since it ranked is skipped, and forgotten.
        let Some(found) = store::chunk(&state.db, id).await? else {
            gone.push(id);
            continue;
        };
        hits.push(Hit {
            document: found.document,
            title: found.title,
            seq: found.seq,
            heading: found.heading,
            text: found.text,
            score,
            text_rank,
            vector_rank,
        });
    }
    state
        .vectors
        .forget(dao, state.embedder.name(), &gone)
        .await;
    Ok((hits, semantic))
}

async fn embed_query(state: &Knowledge, query: &str) -> Result<Option<Vec<f32>>, MemoryError> {
    let mut vectors = embed_checked(&state.embedder, &[query], Kind::Query).await?;
    Ok(vectors.pop().flatten())
}

/// The chunks of the documents in `dao` that `within` keeps to nearest
/// `query`, every one compared: an index over the whole microDAO, filtered
/// after, could answer short.
async fn kept_to(
    state: &Knowledge,
    (dao, within): (&str, Within<'_>),
    query: &[f32],
) -> Result<Vec<store::ChunkId>, MemoryError> {
    let model = &state.embedder;
    let stored = store::vectors_within(&state.db, (dao, model.name(), model.dim()), within).await?;
    let mut scored: Vec<(store::ChunkId, f32)> = stored
        .iter()
        .map(|s| (s.id, daarion_embed::dot(&s.vector, query)))
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(scored
        .into_iter()
        .take(CANDIDATES)
        .map(|(id, _)| id)
        .collect())
}

/// `dao`'s chunks nearest `query`, best first, [`CANDIDATES`] at most.
async fn nearest(
    state: &Knowledge,
    dao: &str,
    query: &[f32],
) -> Result<Vec<store::ChunkId>, MemoryError> {
    let model = &state.embedder;
    let nearest = state
        .vectors
        .nearest(
            &state.db,
            (dao, model.name(), model.dim()),
            query,
            CANDIDATES,
        )
        .await?;
    Ok(nearest.into_iter().map(|(id, _)| id).collect())
}
