//! A static model distilled from e5, by Model2Vec's recipe: each piece
//! kept goes through the encoder on its own (`<s> piece </s>`, the mean of
//! the outputs), normalised; the pieces' mean is taken away (e5's vectors
//! share a large common direction, which averaging would only grow), and
//! each is weighted by how rare it is (SIF: `a / (a + p)`, `p` the
//! unigram model's probability of the piece), then stored at 8 bits per
//! dimension. A text's embedding is the normalised sum of its pieces' rows:
//! a table lookup, thousands of texts a second where the encoder does
//! tens. Queries and passages share one space (no prefixes).
//!
//! The file (`DST1`, little-endian): dimensions, the tokenizer's section
//! as e5's image has it, then the rows (piece id, scale, values).

use std::{collections::HashMap, path::Path};

use crate::{
    E5, EmbedError,
    file::{self, Cursor, bad},
    normalize,
    tokenizer::Tokenizer,
};

const MAGIC: &[u8; 4] = b"DST1";
/// SIF's smoothing: a piece this likely weighs half as much as a rare one.
const SIF: f32 = 1e-3;
/// Pieces per encoder pass while distilling (three tokens each).
const PIECES_PER_PASS: usize = 512;

pub struct Table {
    tokenizer: Tokenizer,
    vocabulary: Vec<u8>,
    dim: usize,
    /// Piece id → its row.
    rows: HashMap<u32, usize>,
    scales: Vec<f32>,
    values: Vec<i8>,
}

impl E5 {
    /// A [`Table`] of the pieces whose text `keep` accepts, the work split
    /// over this machine's cores (minutes for 100 000 pieces on two).
    /// Pieces without a letter or digit (`▁`, punctuation) get no row: they
    /// say little, and a text of a script the table lacks would otherwise
    /// embed as its spaces.
    pub fn distill(&self, keep: impl Fn(&str) -> bool) -> Table {
        let specials = [self.tokenizer.bos, self.tokenizer.eos];
        let mut ids: Vec<u32> = self
            .tokenizer
            .pieces()
            .filter(|(piece, id)| {
                !specials.contains(id)
                    && std::str::from_utf8(piece)
                        .is_ok_and(|p| p.chars().any(char::is_alphanumeric) && keep(p))
            })
            .map(|(_, id)| id)
            .collect();
        ids.sort_unstable();
        let dim = self.dim();
        let mut vectors: Vec<f32> = crate::on_every_core(&ids, |part| {
            let mut out = Vec::with_capacity(part.len() * dim);
            for batch in part.chunks(PIECES_PER_PASS) {
                let means = self.forward(batch.iter().map(std::slice::from_ref));
                out.extend(means.iter());
            }
            out
        });
        for row in vectors.chunks_exact_mut(dim) {
            normalize(row);
        }
        let mut mean = vec![0.0f32; dim];
        for row in vectors.chunks_exact(dim) {
            mean.iter_mut().zip(row).for_each(|(m, v)| *m += v);
        }
        let count = (vectors.len() / dim).max(1) as f32;
        mean.iter_mut().for_each(|m| *m /= count);
        let mut scales = Vec::with_capacity(ids.len());
        let mut values = Vec::with_capacity(vectors.len());
        for (row, &id) in vectors.chunks_exact_mut(dim).zip(&ids) {
            let p = self.tokenizer.probability(id);
            let weight = SIF / (SIF + p);
            row.iter_mut()
                .zip(&mean)
                .for_each(|(v, m)| *v = (*v - m) * weight);
            let (scale, quantized) = quantize(row);
            scales.push(scale);
            values.extend(quantized);
        }
        let vocabulary = self.vocabulary.clone();
        Table {
            tokenizer: self.tokenizer.clone(),
            vocabulary,
            dim,
            rows: ids.iter().enumerate().map(|(row, &id)| (id, row)).collect(),
            scales,
            values,
        }
    }
}

impl Table {
    pub fn open(path: &Path) -> Result<Self, EmbedError> {
        Self::from_bytes(&crate::read(path)?)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, EmbedError> {
        let mut at = Cursor::new(bytes);
        if at.take(4)? != MAGIC {
            return Err(bad("no DST1 magic"));
        }
        let dim = at.u32()? as usize;
        let start = bytes.len() - at.remaining();
        let vocabulary = file::vocabulary(&mut at)?;
        let vocabulary_bytes = bytes[start..bytes.len() - at.remaining()].to_vec();
        let pieces = vocabulary.pieces.len();
        let n = at.u32()? as usize;
        // Each row is its id, its scale and `dim` bytes: sizes the file
        // cannot hold are refused before anything is allocated for them.
        let fits = dim
            .checked_add(8)
            .and_then(|row| row.checked_mul(n))
            .is_some_and(|size| size == at.remaining());
        if !fits {
            return Err(bad(format!(
                "{n} rows of {dim} values in {} bytes",
                at.remaining()
            )));
        }
        let mut rows = HashMap::with_capacity(n);
        let mut scales = Vec::with_capacity(n);
        let mut values = Vec::with_capacity(n * dim);
        for row in 0..n {
            let id = at.u32()?;
            if id as usize >= pieces {
                return Err(bad(format!("a row for piece {id}, beyond the vocabulary")));
            }
            rows.insert(id, row);
            scales.push(at.f32()?);
            values.extend(at.take(dim)?.iter().map(|&b| b as i8));
        }
        Ok(Self {
            tokenizer: Tokenizer::new(vocabulary),
            vocabulary: vocabulary_bytes,
            dim,
            rows,
            scales,
            values,
        })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.vocabulary.len() + self.values.len() * 2);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(self.dim as u32).to_le_bytes());
        out.extend_from_slice(&self.vocabulary);
        out.extend_from_slice(&(self.scales.len() as u32).to_le_bytes());
        let mut by_row: Vec<(usize, u32)> = self.rows.iter().map(|(&id, &row)| (row, id)).collect();
        by_row.sort_unstable();
        for (row, id) in by_row {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(&self.scales[row].to_le_bytes());
            out.extend(
                self.values[row * self.dim..(row + 1) * self.dim]
                    .iter()
                    .map(|&v| v as u8),
            );
        }
        out
    }

    /// Writes the table to `path` whole or not at all (a temporary file
    /// renamed over it).
    pub fn save(&self, path: &Path) -> Result<(), EmbedError> {
        crate::install::write_whole(path, &self.to_bytes())
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Pieces the table has a row for.
    pub fn len(&self) -> usize {
        self.scales.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scales.is_empty()
    }

    /// The embedding of `text` (normalised), or `None` when the table
    /// knows none of its pieces (a script it was not distilled for).
    pub fn embed(&self, text: &str) -> Option<Vec<f32>> {
        let mut sum = vec![0.0f32; self.dim];
        let mut known = false;
        for id in self.tokenizer.encode(text) {
            let Some(&row) = self.rows.get(&id) else {
                continue;
            };
            known = true;
            let scale = self.scales[row];
            let values = &self.values[row * self.dim..(row + 1) * self.dim];
            sum.iter_mut()
                .zip(values)
                .for_each(|(s, &v)| *s += f32::from(v) * scale);
        }
        known.then(|| {
            normalize(&mut sum);
            sum
        })
    }
}

/// Whether a piece is written in Latin or Cyrillic letters (or digits and
/// punctuation only): the pieces of Ukrainian, English and the other
/// languages of those scripts, about 146 000 of e5's 250 000.
pub fn latin_or_cyrillic(piece: &str) -> bool {
    piece.chars().all(|c| {
        matches!(c,
            '\u{2581}'
            | '\u{0}'..='\u{7F}'
            | '\u{A0}'..='\u{24F}'
            | '\u{1E00}'..='\u{1EFF}'
            | '\u{400}'..='\u{52F}'
            | '\u{2000}'..='\u{206F}')
            || (!c.is_alphabetic() && !c.is_numeric() && c.len_utf8() < 3)
    })
}

/// `row` as 8-bit values and the scale that gives them back.
fn quantize(row: &[f32]) -> (f32, Vec<i8>) {
    let max = row.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
    let values = row
        .iter()
        .map(|v| (v / scale).round().clamp(-127.0, 127.0) as i8)
        .collect();
    (scale, values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_survives_8_bits() {
        let row = [0.5, -0.25, 0.0, 0.125];
        let (scale, values) = quantize(&row);
        for (v, q) in row.iter().zip(values) {
            assert!((v - f32::from(q) * scale).abs() < 0.5 / 127.0);
        }
    }
}
