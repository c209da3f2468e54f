//! The indexer: takes `memory.store` events (and, as a safety net, any
//! document still waiting a while after it was written — its event may
//! have gone to the dead letters while the model was missing), splits the
//! document into chunks, embeds them and stores them with
//! `memory.indexed`, once per document however often it is asked.

use std::time::Duration;

use daarion_bus::{Envelope, HandlerError};
use daarion_embed::Kind;
use daarion_kernel::shutdown::CancellationToken;

use crate::{
    Knowledge,
    chunk::{self, Chunk},
    domain::MemoryError,
    embedder::embed_checked,
    store,
};

/// The indexer's consumer: one `memory.store` event.
pub async fn handle(state: Knowledge, event: Envelope) -> Result<(), HandlerError> {
    let Some(id) = event.payload["document"].as_str() else {
        tracing::warn!(event = %event.id, "memory.store without a document id; dropped");
        return Ok(());
    };
    index(&state, id).await.map(drop).map_err(HandlerError::new)
}

/// Indexes document `id` if it still waits: `false` when there was nothing
/// to do (indexed already, or deleted).
pub async fn index(state: &Knowledge, id: &str) -> Result<bool, MemoryError> {
    let Some((document, body)) = store::with_body(&state.db, id).await? else {
        return Ok(false);
    };
    if document.indexed_at.is_some() {
        return Ok(false);
    }
    let started = std::time::Instant::now();
    let chunks = chunk::split(&body, document.format, state.settings.limits());
    let texts: Vec<String> = chunks.iter().map(Chunk::for_embedding).collect();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let embedded = embed_checked(&state.embedder, &texts, Kind::Passage).await;
    let vectors = match embedded {
        Ok(vectors) => vectors,
        Err(error) => {
            metrics::counter!("memory_index_failures_total").increment(1);
            store::index_failed(&state.db, id, &error.to_string()).await?;
            return Err(error);
        }
    };
    let chunks: Vec<_> = chunks.into_iter().zip(vectors).collect();
    let pgvector = state.vectors.pgvector(&state.db).await?;
    let model = (state.embedder.name(), pgvector);
    let Some(staged) = store::index(&state.db, &state.outbox, id, model, &chunks).await? else {
        return Ok(false);
    };
    state.outbox.relay(staged).await;
    metrics::counter!("memory_chunks_indexed_total").increment(chunks.len() as u64);
    metrics::histogram!("memory_index_seconds").record(started.elapsed().as_secs_f64());
    Ok(true)
}

/// Documents still unindexed this long after they were written are taken
/// by [`sweep`].
const STALE: Duration = Duration::from_secs(120);

/// Every `period`, indexes documents that waited longer than [`STALE`]
/// (a few at a time), until shutdown.
pub async fn sweep(state: Knowledge, period: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(period) => {}
        }
        let waiting = match store::waiting(&state.db, &daarion_store::ago(STALE), 16).await {
            Ok(waiting) => waiting,
            Err(error) => {
                tracing::warn!(%error, "memory sweep failed");
                continue;
            }
        };
        for id in waiting {
            if let Err(error) = index(&state, &id).await {
                tracing::warn!(%error, document = %id, "document still not indexed");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    };

    use daarion_bus::{EmbeddedBus, Outbox, subject::Streams};
    use daarion_store::Db;

    use super::*;
    use crate::{
        Settings,
        chunk::DocumentFormat,
        domain::{NewDocument, Within},
        embedder::tests::Fake,
        testing::sets,
    };

    /// Memory on `db`, embedding with a fake model that fails while
    /// `broken` holds.
    fn state(db: &Db, broken: Arc<AtomicBool>) -> Knowledge {
        let streams = Streams::new(crate::SPEC.streams.iter().copied()).unwrap_or_else(|e| {
            unreachable!("{e}");
        });
        let bus = Arc::new(EmbeddedBus::new(db.clone(), streams));
        Knowledge {
            db: db.clone(),
            outbox: Outbox::new(db.clone(), bus),
            vectors: crate::nearest::Nearest::new("embedded", None, Default::default()),
            fulltext: crate::fulltext::FullText::default(),
            embedder: Arc::new(Fake {
                answer: Box::new(move |text| {
                    if broken.load(Ordering::SeqCst) {
                        return Err(MemoryError::Embedding("the model is down".into()));
                    }
                    let x = (text.len() % 7) as f32 + 1.0;
                    let norm = (x * x + 1.0).sqrt();
                    Ok(Some(vec![x / norm, 1.0 / norm]))
                }),
            }),
            settings: Arc::new(Settings::default()),
        }
    }

    async fn add(state: &Knowledge, body: &str) -> String {
        let new = NewDocument::parse("Notes", Some(DocumentFormat::Markdown), body, 1 << 20)
            .unwrap_or_else(|e| unreachable!("{e}"));
        let (document, fresh, _) = store::create(
            &state.db,
            &state.outbox,
            "garden",
            &new,
            ("user:a", "a"),
            None,
        )
        .await
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(fresh);
        document.id
    }

    #[tokio::test]
    async fn a_document_is_indexed_once_however_often_it_is_asked() {
        for test in daarion_testkit::migrated_dbs(&sets()).await {
            let state = state(&test.db, Arc::default());
            let id = add(&state, "# Budget\n\nSeeds.\n\n# Garden\n\nWater.").await;
            // A redelivered event racing the first: one of them indexes.
            let (a, b) = tokio::join!(index(&state, &id), index(&state, &id));
            let (a, b) = (a.unwrap_or(false), b.unwrap_or(false));
            assert!(a ^ b, "exactly one indexed: {a} {b}");
            assert!(!index(&state, &id).await.unwrap_or(true), "and never again");
            let document = store::document(&state.db, &id).await.ok().flatten();
            assert_eq!(document.map(|d| d.chunk_count), Some(2));
            let vectors = store::vectors_after(&state.db, ("garden", "fake", 2), 0).await;
            assert_eq!(vectors.map(|v| v.len()).ok(), Some(2));
            assert!(!index(&state, "doc_gone").await.unwrap_or(true));
        }
    }

    #[tokio::test]
    async fn a_failing_model_stores_nothing_and_the_document_waits() {
        for test in daarion_testkit::migrated_dbs(&sets()).await {
            let broken = Arc::new(AtomicBool::new(true));
            let state = state(&test.db, broken.clone());
            let id = add(&state, "Water the beds at dusk.").await;
            assert!(matches!(
                index(&state, &id).await,
                Err(MemoryError::Embedding(_))
            ));
            let waiting = store::document(&state.db, &id).await.ok().flatten();
            let waiting = waiting.unwrap_or_else(|| unreachable!("kept"));
            assert_eq!((waiting.indexed_at, waiting.chunk_count), (None, 0));
            assert!(
                waiting
                    .index_error
                    .is_some_and(|e| e.contains("the model is down"))
            );
            assert_eq!(
                state
                    .fulltext
                    .search(&state.db, ("garden", Within::default()), "water", 10)
                    .await
                    .map(|hits| hits.len())
                    .ok(),
                Some(0),
                "no chunk of it stored"
            );
            // The sweep finds it once it has waited; the model is back.
            let later = daarion_store::format_time(chrono::Utc::now() + chrono::Duration::hours(1));
            let found = store::waiting(&state.db, &later, 16)
                .await
                .unwrap_or_default();
            assert_eq!(found, std::slice::from_ref(&id));
            broken.store(false, Ordering::SeqCst);
            assert!(index(&state, &id).await.unwrap_or(false));
            let indexed = store::document(&state.db, &id).await.ok().flatten();
            assert!(indexed.is_some_and(|d| d.index_error.is_none() && d.indexed_at.is_some()));
        }
    }
}
