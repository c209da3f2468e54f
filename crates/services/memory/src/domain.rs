//! What the memory service holds and the rules for it, apart from HTTP.

use serde::Serialize;
use utoipa::ToSchema;

use crate::chunk::DocumentFormat;

#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error("{0}")]
    Invalid(String),
    #[error("no document {0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// The model is not there or returned something unusable: nothing is
    /// stored, and the work is tried again later.
    #[error("embedding failed: {0}")]
    Embedding(String),
    #[error(transparent)]
    Store(#[from] daarion_store::StoreError),
    #[error(transparent)]
    Bus(#[from] daarion_bus::BusError),
}

impl From<daarion_store::sql::Error> for MemoryError {
    fn from(error: daarion_store::sql::Error) -> Self {
        Self::Store(error.into())
    }
}

pub const MAX_TITLE_CHARS: usize = 200;

/// A document to add to a microDAO's knowledge, checked.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub title: String,
    pub format: DocumentFormat,
    pub body: String,
    /// The room of the microDAO it is for, if one.
    pub room: Option<String>,
}

impl NewDocument {
    pub fn parse(
        title: &str,
        format: Option<DocumentFormat>,
        body: &str,
        max_bytes: usize,
    ) -> Result<Self, MemoryError> {
        let title = title.trim();
        if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
            return Err(MemoryError::Invalid(format!(
                "title must be 1 to {MAX_TITLE_CHARS} characters"
            )));
        }
        if body.trim().is_empty() {
            return Err(MemoryError::Invalid("body is empty".into()));
        }
        if body.len() > max_bytes {
            return Err(MemoryError::Invalid(format!(
                "body is {} bytes; memory.max_document_bytes is {max_bytes}",
                body.len()
            )));
        }
        if body.contains('\0') {
            return Err(MemoryError::Invalid("body holds a NUL character".into()));
        }
        Ok(Self {
            title: title.to_owned(),
            format: format.unwrap_or(DocumentFormat::Text),
            body: body.to_owned(),
            room: None,
        })
    }
}

/// A document as read back.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct KnowledgeDocument {
    pub id: String,
    pub dao: String,
    pub title: String,
    pub format: DocumentFormat,
    /// `user:<id>` or `agent:<id>`.
    pub author: String,
    /// The author's username (or `agent:<id>`) when they wrote it.
    pub author_name: String,
    /// The room of the microDAO it was added for, if one.
    pub room: Option<String>,
    pub created_at: String,
    /// When its chunks became searchable; absent while it waits for the
    /// indexer.
    pub indexed_at: Option<String>,
    /// The model its chunks were embedded with.
    pub model: Option<String>,
    pub chunk_count: i64,
    /// Why the last attempt to index it failed (it is tried again).
    pub index_error: Option<String>,
}

/// What a search keeps to within its microDAO: the documents one person
/// or agent wrote (`user:<id>`, `agent:<id>`), those of one room, or both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Within<'a> {
    pub author: Option<&'a str>,
    pub room: Option<&'a str>,
}

impl Within<'_> {
    /// The whole microDAO.
    pub fn is_all(&self) -> bool {
        self.author.is_none() && self.room.is_none()
    }
}

/// A document in a person's export: as read back, its body, its chunks.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Exported {
    #[serde(flatten)]
    pub document: KnowledgeDocument,
    pub body: String,
    pub chunks: Vec<ExportedChunk>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ExportedChunk {
    pub seq: i64,
    pub heading: String,
    pub text: String,
}

/// One search result: a chunk of a document, with where it ranked in each
/// list the fusion took.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Hit {
    pub document: String,
    pub title: String,
    pub seq: i64,
    pub heading: String,
    pub text: String,
    /// The fused score: Σ weight / (60 + rank) over the lists it is in.
    pub score: f64,
    /// Its rank among full-text matches (1 is best), if it matched words.
    pub text_rank: Option<usize>,
    /// Its rank by vector similarity, if it was among the nearest.
    pub vector_rank: Option<usize>,
}

/// Reciprocal rank fusion (Cormack, Clarke and Büttcher, 2009) with their
/// k = 60, weighted: each list, best first, adds weight / (k + rank) to an
/// item's score — `alpha` for the vector list, `1 - alpha` for the
/// full-text one (Weaviate's `alpha`: 0 is words alone, 1 meaning alone).
/// Items in both lists rise; items only in a list of weight 0 are left
/// out. Returns item keys with their score and ranks, best first (ties by
/// key, so the order is stable).
pub fn fuse<K: Clone + Ord>(
    by_text: &[K],
    by_vector: &[K],
    alpha: f64,
) -> Vec<(K, f64, Option<usize>, Option<usize>)> {
    const K: f64 = 60.0;
    let mut fused: std::collections::BTreeMap<K, (f64, Option<usize>, Option<usize>)> =
        std::collections::BTreeMap::new();
    for (i, key) in by_text.iter().enumerate() {
        let entry = fused.entry(key.clone()).or_default();
        entry.0 += (1.0 - alpha) / (K + i as f64 + 1.0);
        entry.1 = Some(i + 1);
    }
    for (i, key) in by_vector.iter().enumerate() {
        let entry = fused.entry(key.clone()).or_default();
        entry.0 += alpha / (K + i as f64 + 1.0);
        entry.2 = Some(i + 1);
    }
    let mut out: Vec<_> = fused
        .into_iter()
        .filter(|(_, (score, _, _))| *score > 0.0)
        .map(|(key, (score, text, vector))| (key, score, text, vector))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fusion_lifts_what_both_lists_found() {
        let fused = fuse(&["a", "b", "c"], &["c", "d"], 0.5);
        let keys: Vec<&str> = fused.iter().map(|f| f.0).collect();
        // b and d tie (second in one list each): by key.
        assert_eq!(keys, ["c", "a", "b", "d"]);
        assert_eq!((fused[0].2, fused[0].3), (Some(3), Some(1)));
        assert!((fused[0].1 - 0.5 * (1.0 / 63.0 + 1.0 / 61.0)).abs() < 1e-12);
        assert!(fuse::<&str>(&[], &[], 0.5).is_empty());
    }

    #[test]
    fn alpha_weighs_meaning_against_words() {
        let keys = |alpha| -> Vec<&str> {
            fuse(&["a", "b"], &["b", "c"], alpha)
                .into_iter()
                .map(|f| f.0)
                .collect()
        };
        assert_eq!(keys(0.0), ["a", "b"], "words alone");
        assert_eq!(keys(1.0), ["b", "c"], "meaning alone");
        assert_eq!(keys(0.9), ["b", "c", "a"]);
        assert_eq!(keys(0.1), ["b", "a", "c"]);
    }

    #[test]
    fn a_document_needs_a_title_and_a_body_within_bounds() {
        let ok = NewDocument::parse(" Budget ", Some(DocumentFormat::Markdown), "# a\n\nb", 100);
        assert_eq!(ok.map(|d| d.title).ok().as_deref(), Some("Budget"));
        for (title, body) in [
            ("", "x"),
            ("t", " \n"),
            ("t", "nul\0"),
            ("t", &"x".repeat(101)),
        ] {
            assert!(matches!(
                NewDocument::parse(title, None, body, 100),
                Err(MemoryError::Invalid(_))
            ));
        }
    }
}
