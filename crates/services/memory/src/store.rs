//! The memory service's tables (migration 001): documents, their chunks
//! with vectors, and the full-text index over the chunks (FTS5 embedded,
//! a GIN index on PostgreSQL).

use daarion_bus::{Outbox, Staged};
use daarion_store::{
    Db,
    idempotency::{self, Claim},
    sql::{self, Row},
};

use crate::{
    chunk::{Chunk, DocumentFormat},
    domain::{KnowledgeDocument, MemoryError, NewDocument, Within},
    embedder, events,
};

const DOCUMENT_FIELDS: &str = "id, dao, title, format, author, author_name, room, created_at, indexed_at, model, chunk_count, index_error";

fn document_from(row: &sql::AnyRow) -> Result<KnowledgeDocument, MemoryError> {
    let format: String = row.try_get("format")?;
    Ok(KnowledgeDocument {
        id: row.try_get("id")?,
        dao: row.try_get("dao")?,
        title: row.try_get("title")?,
        format: DocumentFormat::parse(&format).unwrap_or(DocumentFormat::Text),
        author: row.try_get("author")?,
        author_name: row.try_get("author_name")?,
        room: row.try_get("room")?,
        created_at: row.try_get("created_at")?,
        indexed_at: row.try_get("indexed_at")?,
        model: row.try_get("model")?,
        chunk_count: row.try_get("chunk_count")?,
        index_error: row.try_get("index_error")?,
    })
}

/// Adds a document to `dao`'s knowledge and stages `memory.store` for the
/// indexer, in one transaction. With an `Idempotency-Key`, a retry gets
/// the first document back (`false`: not new).
pub async fn create(
    db: &Db,
    outbox: &Outbox,
    dao: &str,
    new: &NewDocument,
    (author, author_name): (&str, &str),
    idempotency_key: Option<&str>,
) -> Result<(KnowledgeDocument, bool, Staged), MemoryError> {
    let mut tx = db.begin().await?;
    let scope = format!("memory.documents:{author}");
    if let Some(key) = idempotency_key {
        let hash = idempotency::fingerprint(&[
            dao,
            &new.title,
            new.format.as_str(),
            &new.body,
            new.room.as_deref().unwrap_or(""),
        ]);
        if let Claim::Replay(id) = idempotency::claim(&mut tx, &scope, key, &hash).await? {
            tx.commit().await.map_err(daarion_store::StoreError::from)?;
            let document = document(db, &id).await?;
            return Ok((
                document.ok_or(MemoryError::NotFound(id))?,
                false,
                Staged::none(),
            ));
        }
    }
    let id = format!("doc_{}", uuid::Uuid::now_v7().simple());
    let now = daarion_store::now();
    let row = sql::query(sql::AssertSqlSafe(format!(
        "INSERT INTO memory_documents (id, dao, title, format, body, author, author_name, created_at, room)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING {DOCUMENT_FIELDS}"
    )))
    .bind(id.as_str())
    .bind(dao)
    .bind(new.title.as_str())
    .bind(new.format.as_str())
    .bind(new.body.as_str())
    .bind(author)
    .bind(author_name)
    .bind(now.as_str())
    .bind(new.room.as_deref())
    .fetch_one(&mut *tx)
    .await?;
    let document = document_from(&row)?;
    if let Some(key) = idempotency_key {
        idempotency::complete(&mut tx, &scope, key, &id).await?;
    }
    let staged = outbox
        .stage(&mut tx, vec![events::store(&document)])
        .await?;
    tx.commit().await.map_err(daarion_store::StoreError::from)?;
    Ok((document, true, staged))
}

pub async fn document(db: &Db, id: &str) -> Result<Option<KnowledgeDocument>, MemoryError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "SELECT {DOCUMENT_FIELDS} FROM memory_documents WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.as_ref().map(document_from).transpose()
}

/// A document's microDAO and author, for the policies.
pub async fn owner(db: &Db, id: &str) -> Result<Option<(String, String)>, MemoryError> {
    let row = sql::query("SELECT dao, author FROM memory_documents WHERE id = $1")
        .bind(id)
        .fetch_optional(db.reader())
        .await?;
    row.map(|r| Ok((r.try_get("dao")?, r.try_get("author")?)))
        .transpose()
}

/// A document with its body as written, in one read.
pub async fn with_body(
    db: &Db,
    id: &str,
) -> Result<Option<(KnowledgeDocument, String)>, MemoryError> {
    let row = sql::query(sql::AssertSqlSafe(format!(
        "SELECT {DOCUMENT_FIELDS}, body FROM memory_documents WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(db.pool())
    .await?;
    row.map(|r| Ok((document_from(&r)?, r.try_get("body")?)))
        .transpose()
}

/// `dao`'s documents, newest first, `limit + 1` at most, older than the
/// document `before`.
pub async fn documents(
    db: &Db,
    dao: &str,
    before: Option<&str>,
    limit: u32,
) -> Result<Vec<KnowledgeDocument>, MemoryError> {
    let rows = sql::query(sql::AssertSqlSafe(format!(
        "SELECT {DOCUMENT_FIELDS} FROM memory_documents WHERE dao = $1 AND id < $2
         ORDER BY id DESC LIMIT $3"
    )))
    .bind(dao)
    .bind(before.unwrap_or("~"))
    .bind(i64::from(limit) + 1)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(document_from).collect()
}

/// Stores a document's chunks and marks it indexed, staging
/// `memory.indexed`, if it still waits for that: `None` when it was
/// indexed already (a redelivered `memory.store`) or deleted meanwhile.
/// With `pgvector`, each vector is also written to the `vec` column.
pub async fn index(
    db: &Db,
    outbox: &Outbox,
    id: &str,
    (model, pgvector): (&str, bool),
    chunks: &[(Chunk, Option<Vec<f32>>)],
) -> Result<Option<Staged>, MemoryError> {
    let mut tx = db.begin().await?;
    let now = daarion_store::now();
    let row = sql::query(sql::AssertSqlSafe(format!(
        "UPDATE memory_documents SET indexed_at = $2, model = $3, chunk_count = $4, index_error = NULL
         WHERE id = $1 AND indexed_at IS NULL RETURNING {DOCUMENT_FIELDS}"
    )))
    .bind(id)
    .bind(now.as_str())
    .bind(model)
    .bind(chunks.len() as i64)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let document = document_from(&row)?;
    // Taken under the microDAO's row lock until commit: see migration 001.
    let generation: i64 = sql::query(
        "INSERT INTO memory_generations (dao, generation) VALUES ($1, 1)
         ON CONFLICT (dao) DO UPDATE SET generation = memory_generations.generation + 1
         RETURNING generation",
    )
    .bind(document.dao.as_str())
    .fetch_one(&mut *tx)
    .await?
    .try_get("generation")?;
    let insert = if pgvector {
        "INSERT INTO memory_chunks (document_id, seq, dao, generation, heading, text, model, embedding, vec)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::vector)"
    } else {
        "INSERT INTO memory_chunks (document_id, seq, dao, generation, heading, text, model, embedding)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    };
    for (seq, (chunk, vector)) in chunks.iter().enumerate() {
        let mut query = sql::query(insert)
            .bind(id)
            .bind(seq as i64)
            .bind(document.dao.as_str())
            .bind(generation)
            .bind(chunk.heading.as_str())
            .bind(chunk.text.as_str())
            .bind(model)
            .bind(vector.as_deref().map(embedder::to_bytes));
        if pgvector {
            query = query.bind(vector.as_deref().map(crate::pgvector::literal_vector));
        }
        query.execute(&mut *tx).await?;
    }
    let staged = outbox
        .stage(&mut tx, vec![events::indexed(&document)])
        .await?;
    tx.commit().await.map_err(daarion_store::StoreError::from)?;
    Ok(Some(staged))
}

/// Why the last attempt to index a document failed.
pub async fn index_failed(db: &Db, id: &str, error: &str) -> Result<(), MemoryError> {
    sql::query("UPDATE memory_documents SET index_error = $2 WHERE id = $1 AND indexed_at IS NULL")
        .bind(id)
        .bind(error)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Documents written before `before` and not indexed yet, oldest first.
pub async fn waiting(db: &Db, before: &str, limit: i64) -> Result<Vec<String>, MemoryError> {
    let rows = sql::query(
        "SELECT id FROM memory_documents WHERE indexed_at IS NULL AND created_at < $1
         ORDER BY created_at LIMIT $2",
    )
    .bind(before)
    .bind(limit)
    .fetch_all(db.reader())
    .await?;
    rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
}

/// The ids of the documents `author` wrote, oldest first.
pub async fn written_by(db: &Db, author: &str) -> Result<Vec<String>, MemoryError> {
    let rows = sql::query("SELECT id FROM memory_documents WHERE author = $1 ORDER BY id")
        .bind(author)
        .fetch_all(db.pool())
        .await?;
    rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
}

/// A document's chunks as stored: place, heading, text.
pub async fn chunks_of(db: &Db, id: &str) -> Result<Vec<(i64, String, String)>, MemoryError> {
    let rows = sql::query(
        "SELECT seq, heading, text FROM memory_chunks WHERE document_id = $1 ORDER BY seq",
    )
    .bind(id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("seq")?, r.try_get("heading")?, r.try_get("text")?)))
        .collect()
}

/// Removes a document and its chunks (and so its entries in both
/// indexes), staging `memory.deleted`. `None`: there was no such document.
pub async fn delete(
    db: &Db,
    outbox: &Outbox,
    id: &str,
    actor: &str,
) -> Result<Option<Staged>, MemoryError> {
    let mut tx = db.begin().await?;
    sql::query("DELETE FROM memory_chunks WHERE document_id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let row = sql::query(sql::AssertSqlSafe(format!(
        "DELETE FROM memory_documents WHERE id = $1 RETURNING {DOCUMENT_FIELDS}"
    )))
    .bind(id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let document = document_from(&row)?;
    let staged = outbox
        .stage(&mut tx, vec![events::deleted(&document, actor)])
        .await?;
    tx.commit().await.map_err(daarion_store::StoreError::from)?;
    Ok(Some(staged))
}

/// A chunk, by its row id.
pub type ChunkId = i64;

/// `dao`'s newest generation (0 before anything was indexed).
pub async fn generation(db: &Db, dao: &str) -> Result<i64, MemoryError> {
    let row = sql::query("SELECT generation FROM memory_generations WHERE dao = $1")
        .bind(dao)
        .fetch_optional(db.reader())
        .await?;
    Ok(row
        .map(|r| r.try_get::<i64, _>("generation"))
        .transpose()?
        .unwrap_or(0))
}

#[cfg(test)]
pub(crate) async fn set_generation(db: &Db, dao: &str, generation: i64) -> Result<(), MemoryError> {
    sql::query("UPDATE memory_generations SET generation = $2 WHERE dao = $1")
        .bind(dao)
        .bind(generation)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// A chunk's vector, with its id and generation.
pub struct Stored {
    pub id: ChunkId,
    pub generation: i64,
    pub vector: Vec<f32>,
}

/// Rows of `id, generation, embedding` as vectors of `dim` (bytes of
/// other dimensions are no vector of this model's: skipped).
fn stored(rows: &[sql::AnyRow], dim: usize) -> Result<Vec<Stored>, MemoryError> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let bytes: Vec<u8> = row.try_get("embedding")?;
        if let Some(vector) = embedder::from_bytes(&bytes, dim) {
            out.push(Stored {
                id: row.try_get("id")?,
                generation: row.try_get("generation")?,
                vector,
            });
        }
    }
    Ok(out)
}

/// The vectors of `dao`'s chunks embedded by `model` in generations after
/// `after`, oldest first.
pub async fn vectors_after(
    db: &Db,
    (dao, model, dim): (&str, &str, usize),
    after: i64,
) -> Result<Vec<Stored>, MemoryError> {
    let rows = sql::query(
        "SELECT id, generation, embedding FROM memory_chunks
         WHERE dao = $1 AND model = $2 AND generation > $3 AND embedding IS NOT NULL
         ORDER BY generation, id",
    )
    .bind(dao)
    .bind(model)
    .bind(after)
    .fetch_all(db.reader())
    .await?;
    stored(&rows, dim)
}

/// The vectors of `dao`'s chunks embedded by `model` in documents
/// `within` keeps to: a filtered search compares them all.
pub async fn vectors_within(
    db: &Db,
    (dao, model, dim): (&str, &str, usize),
    within: Within<'_>,
) -> Result<Vec<Stored>, MemoryError> {
    let rows = sql::query(
        "SELECT c.id, c.generation, c.embedding FROM memory_chunks c
         JOIN memory_documents d ON d.id = c.document_id
         WHERE c.dao = $1 AND c.model = $2 AND c.embedding IS NOT NULL
           AND ($3 = '' OR d.author = $3) AND ($4 = '' OR d.room = $4)",
    )
    .bind(dao)
    .bind(model)
    .bind(within.author.unwrap_or(""))
    .bind(within.room.unwrap_or(""))
    .fetch_all(db.reader())
    .await?;
    stored(&rows, dim)
}

/// A chunk as a search shows it.
pub struct Found {
    pub document: String,
    pub seq: i64,
    pub title: String,
    pub heading: String,
    pub text: String,
}

/// The chunk `id` (and its document's title), if it still is.
pub async fn chunk(db: &Db, id: ChunkId) -> Result<Option<Found>, MemoryError> {
    let row = sql::query(
        "SELECT c.document_id, c.seq, d.title, c.heading, c.text FROM memory_chunks c
         JOIN memory_documents d ON d.id = c.document_id WHERE c.id = $1",
    )
    .bind(id)
    .fetch_optional(db.reader())
    .await?;
    row.map(|r| {
        Ok(Found {
            document: r.try_get("document_id")?,
            seq: r.try_get("seq")?,
            title: r.try_get("title")?,
            heading: r.try_get("heading")?,
            text: r.try_get("text")?,
        })
    })
    .transpose()
}
