//! Turning chunks and questions into vectors: the local models (the
//! static table by default, the e5 encoder when `memory.embedder = "e5"`)
//! or any embeddings model the LLM proxy serves (`"llm:<alias>"`).
//! What a model returns is checked before anything is stored — the right
//! number of vectors, each of the model's dimensions, finite and of unit
//! length — so a failing or confused model never leaves a zero, random or
//! garbled vector behind: the chunk waits and is tried again.

use std::{sync::Arc, time::Duration};

use daarion_access::token::ServiceTokens;
use daarion_embed::{Kind, Models};
use serde_json::{Value, json};

use crate::domain::MemoryError;

/// A model that embeds texts. `None` for a text the model has nothing for
/// (the static table knows Latin and Cyrillic pieces only): such a chunk is
/// found by its words alone.
#[async_trait::async_trait]
pub trait Embed: Send + Sync {
    /// Stored beside each vector: vectors of different models are never
    /// compared.
    fn name(&self) -> &str;
    fn dim(&self) -> usize;
    async fn embed(&self, texts: &[&str], kind: Kind)
    -> Result<Vec<Option<Vec<f32>>>, MemoryError>;
    /// Whether the model can be had (its file is there), without reading it.
    fn available(&self) -> Result<(), MemoryError> {
        Ok(())
    }
}

pub const STATIC: &str = "e5-static";
pub const ENCODER: &str = "e5-small";

/// The local model named by `memory.embedder`.
#[derive(Clone)]
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

#[async_trait::async_trait]
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

    async fn embed(
        &self,
        texts: &[&str],
        kind: Kind,
    ) -> Result<Vec<Option<Vec<f32>>>, MemoryError> {
        // Reading the model and computing take CPU for a while: off the
        // async runtime.
        let this = self.clone();
        let texts: Vec<String> = texts.iter().map(|t| (*t).to_owned()).collect();
        tokio::task::spawn_blocking(move || {
            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
            let unavailable = |e: daarion_embed::EmbedError| MemoryError::Embedding(e.to_string());
            if this.name == STATIC {
                let table = this.models.table().map_err(unavailable)?;
                Ok(texts.iter().map(|t| table.embed(t)).collect())
            } else {
                let encoder = this.models.encoder().map_err(unavailable)?;
                Ok(encoder.embed(&texts, kind).into_iter().map(Some).collect())
            }
        })
        .await
        .map_err(|e| MemoryError::Embedding(e.to_string()))?
    }
}

/// An embeddings model of the LLM proxy (`llm:<alias>`), called as the
/// memory service with a service token: the proxy routes, limits and
/// meters it like any caller's. Its vectors are scaled to unit length
/// (some providers' are not; cosine does not mind) and then checked.
pub struct Proxy {
    http: reqwest::Client,
    /// `http(s)://host:port/api/llm/v1/embeddings`.
    url: String,
    tokens: ServiceTokens,
    /// `llm:<alias>`.
    name: String,
    dim: usize,
}

/// Texts sent in one request.
const BATCH: usize = 64;

impl Proxy {
    pub fn new(
        city_url: &str,
        tokens: ServiceTokens,
        alias: &str,
        dim: usize,
    ) -> Result<Self, String> {
        let http = daarion_kernel::outbound::client_builder()
            .map_err(|e| e.to_string())?
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| format!("memory's HTTP client: {e}"))?;
        Ok(Self {
            http,
            url: format!("{}/api/llm/v1/embeddings", city_url.trim_end_matches('/')),
            tokens,
            name: format!("llm:{alias}"),
            dim,
        })
    }

    fn alias(&self) -> &str {
        self.name.trim_start_matches("llm:")
    }

    async fn batch(&self, texts: &[&str]) -> Result<Vec<Option<Vec<f32>>>, MemoryError> {
        let failed = |why: String| MemoryError::Embedding(format!("{}: {why}", self.name));
        let token = self
            .tokens
            .issue(crate::SERVICE, "llm", Duration::from_secs(120))
            .map_err(|e| failed(e.to_string()))?;
        let request = self.http.post(&self.url).bearer_auth(token);
        let response = daarion_kernel::context::propagate(request)
            .json(&json!({ "model": self.alias(), "input": texts }))
            .send()
            .await
            .map_err(|e| {
                failed(format!(
                    "the LLM proxy is unreachable ({})",
                    e.without_url()
                ))
            })?;
        let status = response.status();
        let body: Value = response
            .json()
            .await
            .map_err(|_| failed(format!("{status} with a body that is not JSON")))?;
        if !status.is_success() {
            let message = body["error"]["message"].as_str().unwrap_or("no message");
            return Err(failed(format!("{status}: {message}")));
        }
        let mut out = vec![None; texts.len()];
        for item in body["data"].as_array().into_iter().flatten() {
            let index = item["index"].as_u64().and_then(|i| usize::try_from(i).ok());
            let vector: Option<Vec<f32>> = item["embedding"]
                .as_array()
                .and_then(|v| v.iter().map(|x| x.as_f64().map(|x| x as f32)).collect());
            match (index, vector) {
                (Some(i), Some(vector)) if i < out.len() && out[i].is_none() => {
                    out[i] = Some(unit(vector))
                }
                _ => return Err(failed("an embedding without its place or numbers".into())),
            }
        }
        if out.iter().any(Option::is_none) {
            return Err(failed(format!(
                "{} embeddings for {} texts",
                out.iter().flatten().count(),
                texts.len()
            )));
        }
        Ok(out)
    }
}

/// `vector` scaled to length one; a zero or non-finite one is left as it
/// is, for the check to refuse.
fn unit(mut vector: Vec<f32>) -> Vec<f32> {
    let norm = daarion_embed::dot(&vector, &vector).sqrt();
    if norm.is_finite() && norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector
}

#[async_trait::async_trait]
impl Embed for Proxy {
    fn name(&self) -> &str {
        &self.name
    }

    fn dim(&self) -> usize {
        self.dim
    }

    async fn embed(
        &self,
        texts: &[&str],
        _kind: Kind,
    ) -> Result<Vec<Option<Vec<f32>>>, MemoryError> {
        let mut out = Vec::with_capacity(texts.len());
        for part in texts.chunks(BATCH) {
            out.extend(self.batch(part).await?);
        }
        Ok(out)
    }
}

/// `model`'s vectors for `texts`, checked (see the module's comment).
pub async fn embed_checked(
    model: &Arc<dyn Embed>,
    texts: &[&str],
    kind: Kind,
) -> Result<Vec<Option<Vec<f32>>>, MemoryError> {
    let vectors = model.embed(texts, kind).await?;
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

    #[async_trait::async_trait]
    impl Embed for Fake {
        fn name(&self) -> &str {
            "fake"
        }
        fn dim(&self) -> usize {
            2
        }
        async fn embed(
            &self,
            texts: &[&str],
            _kind: Kind,
        ) -> Result<Vec<Option<Vec<f32>>>, MemoryError> {
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

    #[tokio::test]
    async fn garbage_from_a_model_is_an_error_not_a_vector() {
        let zero = fake(|_| Ok(Some(vec![0.0, 0.0])));
        let short = fake(|_| Ok(Some(vec![1.0])));
        let nan = fake(|_| Ok(Some(vec![f32::NAN, 0.0])));
        let failing = fake(|_| Err(MemoryError::Embedding("down".into())));
        for model in [zero, short, nan, failing] {
            assert!(matches!(
                embed_checked(&model, &["a"], Kind::Passage).await,
                Err(MemoryError::Embedding(_))
            ));
        }
        let good = fake(|t| Ok((t != "?").then(|| vec![0.6, 0.8])));
        let vectors = embed_checked(&good, &["a", "?"], Kind::Passage)
            .await
            .unwrap_or_default();
        assert_eq!(vectors, [Some(vec![0.6, 0.8]), None]);
    }

    #[test]
    fn vectors_round_trip_as_bytes() {
        let v = vec![0.25f32, -1.5, 3.0];
        assert_eq!(from_bytes(&to_bytes(&v), 3), Some(v));
        assert_eq!(from_bytes(&[0; 8], 3), None);
    }
}
