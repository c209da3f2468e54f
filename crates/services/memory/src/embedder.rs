//! Turning chunks and questions into vectors: the local models (the
//! static table by default, the e5 encoder when `memory.embedder = "e5"`).
//! What a model returns is checked before anything is stored — the right
//! number of vectors, each of the model's dimensions, finite and of unit
//! length — so a failing or confused model never leaves a zero, random or
//! garbled vector behind: the chunk waits and is tried again.

use std::sync::Arc;

use daarion_embed::{Kind, Models};

use crate::domain::MemoryError;

/// A model that embeds texts. `None` for a text the model has nothing for
/// (the static table knows Latin and Cyrillic pieces only): such a chunk is
/// found by its words alone.
pub trait Embed: Send + Sync {
    /// Stored beside each vector: vectors of different models are never
    /// compared.
    fn name(&self) -> &str;
    fn dim(&self) -> usize;
    fn embed(&self, texts: &[&str], kind: Kind) -> Result<Vec<Option<Vec<f32>>>, MemoryError>;
    /// Whether the model can be had (its file is there), without reading it.
    fn available(&self) -> Result<(), MemoryError> {
        Ok(())
    }
}

pub const STATIC: &str = "e5-static";
pub const ENCODER: &str = "e5-small";

/// The local model named by `memory.embedder`.
pub struct Local {
    models: Models,
    name: &'static str,
}

impl Local {
    pub fn new(models: Models, embedder: &str) -> Option<Self> {
        let name = match embedder {
            "static" => STATIC,
            "e5" => ENCODER,
            _ => return None,
        };
        Some(Self { models, name })
    }
}

impl Embed for Local {
    fn name(&self) -> &str {
        self.name
    }

    fn available(&self) -> Result<(), MemoryError> {
        let file = if self.name == STATIC {
            daarion_embed::install::TABLE
        } else {
            daarion_embed::install::IMAGE
        };
        self.models
            .present(file)
            .map(drop)
            .map_err(|e| MemoryError::Embedding(e.to_string()))
    }

    fn dim(&self) -> usize {
        // Both are multilingual-e5-small's own dimensions.
        384
    }

    fn embed(&self, texts: &[&str], kind: Kind) -> Result<Vec<Option<Vec<f32>>>, MemoryError> {
        let unavailable = |e: daarion_embed::EmbedError| MemoryError::Embedding(e.to_string());
        if self.name == STATIC {
            let table = self.models.table().map_err(unavailable)?;
            Ok(texts.iter().map(|t| table.embed(t)).collect())
        } else {
            let encoder = self.models.encoder().map_err(unavailable)?;
            Ok(encoder.embed(texts, kind).into_iter().map(Some).collect())
        }
    }
}

/// `model`'s vectors for `texts`, checked (see the module's comment).
/// Blocks: call it off the async runtime.
pub fn embed_checked(
    model: &Arc<dyn Embed>,
    texts: &[&str],
    kind: Kind,
) -> Result<Vec<Option<Vec<f32>>>, MemoryError> {
    let vectors = model.embed(texts, kind)?;
    if vectors.len() != texts.len() {
        return Err(MemoryError::Embedding(format!(
            "{} returned {} vectors for {} texts",
            model.name(),
            vectors.len(),
            texts.len()
        )));
    }
    for vector in vectors.iter().flatten() {
        let norm = daarion_embed::dot(vector, vector).sqrt();
        if vector.len() != model.dim() || !norm.is_finite() || (norm - 1.0).abs() > 1e-3 {
            return Err(MemoryError::Embedding(format!(
                "{} returned a vector of {} dimensions and length {norm} ({} and 1 expected)",
                model.name(),
                vector.len(),
                model.dim()
            )));
        }
    }
    Ok(vectors)
}

/// A vector as stored: little-endian `f32`s.
pub fn to_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// A stored vector read back; `None` for bytes that are not one of `dim`
/// dimensions.
pub fn from_bytes(bytes: &[u8], dim: usize) -> Option<Vec<f32>> {
    (bytes.len() == dim * 4).then(|| {
        bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// What a fake model makes of one text.
    pub(crate) type Answer = dyn Fn(&str) -> Result<Option<Vec<f32>>, MemoryError> + Send + Sync;

    /// A model for tests: answers with what `answer` makes of each text.
    pub(crate) struct Fake {
        pub answer: Box<Answer>,
    }

    impl Embed for Fake {
        fn name(&self) -> &str {
            "fake"
        }
        fn dim(&self) -> usize {
            2
        }
        fn embed(&self, texts: &[&str], _kind: Kind) -> Result<Vec<Option<Vec<f32>>>, MemoryError> {
            texts.iter().map(|t| (self.answer)(t)).collect()
        }
    }

    fn fake(
        answer: impl Fn(&str) -> Result<Option<Vec<f32>>, MemoryError> + Send + Sync + 'static,
    ) -> Arc<dyn Embed> {
        Arc::new(Fake {
            answer: Box::new(answer),
        })
    }

    #[test]
    fn garbage_from_a_model_is_an_error_not_a_vector() {
        let zero = fake(|_| Ok(Some(vec![0.0, 0.0])));
        let short = fake(|_| Ok(Some(vec![1.0])));
        let nan = fake(|_| Ok(Some(vec![f32::NAN, 0.0])));
        let failing = fake(|_| Err(MemoryError::Embedding("down".into())));
        for model in [zero, short, nan, failing] {
            assert!(matches!(
                embed_checked(&model, &["a"], Kind::Passage),
                Err(MemoryError::Embedding(_))
            ));
        }
        let good = fake(|t| Ok((t != "?").then(|| vec![0.6, 0.8])));
        let vectors = embed_checked(&good, &["a", "?"], Kind::Passage).unwrap_or_default();
        assert_eq!(vectors, [Some(vec![0.6, 0.8]), None]);
    }

    #[test]
    fn vectors_round_trip_as_bytes() {
        let v = vec![0.25f32, -1.5, 3.0];
        assert_eq!(from_bytes(&to_bytes(&v), 3), Some(v));
        assert_eq!(from_bytes(&[0; 8], 3), None);
    }
}
