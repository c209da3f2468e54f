//! XLM-RoBERTa's SentencePiece unigram tokenizer: the stored normaliser
//! (a code point map), runs of spaces collapsed, `▁` for each space and
//! one in front, then the most probable split into pieces (Viterbi over
//! the pieces' log-probabilities); a character no piece covers is
//! `<unk>`, scored below every piece.

use std::collections::HashMap;

use crate::file::Vocabulary;

/// SentencePiece's word marker, U+2581.
const META: char = '\u{2581}';

#[derive(Clone)]
pub(crate) struct Tokenizer {
    ids: HashMap<Box<[u8]>, u32>,
    scores: Vec<f32>,
    normal: HashMap<u32, Vec<u32>>,
    unk: u32,
    unk_score: f32,
    longest: usize,
    pub bos: u32,
    pub eos: u32,
}

impl Tokenizer {
    pub fn new(vocabulary: Vocabulary) -> Self {
        let Vocabulary {
            pieces,
            scores,
            bos,
            eos,
            unk,
            normal,
        } = vocabulary;
        let lowest = scores.iter().copied().fold(f32::INFINITY, f32::min);
        let longest = pieces.iter().map(Vec::len).max().unwrap_or(1);
        let ids = pieces
            .into_iter()
            .zip(0u32..)
            .filter(|(piece, id)| !piece.is_empty() && *id != unk)
            .map(|(piece, id)| (piece.into_boxed_slice(), id))
            .collect();
        Self {
            ids,
            scores,
            normal,
            unk,
            unk_score: lowest - 10.0,
            longest,
            bos,
            eos,
        }
    }

    /// Every piece (but `<unk>`) and its id.
    pub fn pieces(&self) -> impl Iterator<Item = (&[u8], u32)> {
        self.ids.iter().map(|(piece, &id)| (&**piece, id))
    }

    /// How likely the piece is in text (the unigram model's probability).
    pub fn probability(&self, id: u32) -> f32 {
        self.scores.get(id as usize).map_or(0.0, |s| s.exp())
    }

    /// The pieces of `text`, without `<s>` and `</s>`.
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut chars: Vec<char> = Vec::with_capacity(text.len() + 1);
        for c in text.chars() {
            match self.normal.get(&u32::from(c)) {
                Some(to) => chars.extend(to.iter().filter_map(|&cp| char::from_u32(cp))),
                None => chars.push(c),
            }
        }
        chars.dedup_by(|next, kept| *next == ' ' && *kept == ' ');
        if chars.first() != Some(&' ') {
            chars.insert(0, ' ');
        }
        // The text in bytes, and where each character starts in them.
        let mut bytes = Vec::with_capacity(chars.len() * 3);
        let mut starts = Vec::with_capacity(chars.len() + 1);
        let mut utf8 = [0; 4];
        for c in chars {
            starts.push(bytes.len());
            let c = if c == ' ' { META } else { c };
            bytes.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
        }
        starts.push(bytes.len());
        let n = starts.len() - 1;

        // best[e]: the best score of a split of the first e characters,
        // whose last piece (`None`: an unknown character) began at from[e].
        let mut best = vec![f32::NEG_INFINITY; n + 1];
        let mut last: Vec<(Option<u32>, usize)> = vec![(None, 0); n + 1];
        best[0] = 0.0;
        for i in 0..n {
            if best[i] == f32::NEG_INFINITY {
                continue;
            }
            for e in i + 1..=n {
                let piece = &bytes[starts[i]..starts[e]];
                if piece.len() > self.longest {
                    break;
                }
                if let Some(&id) = self.ids.get(piece) {
                    let score = best[i] + self.scores[id as usize];
                    if score > best[e] {
                        best[e] = score;
                        last[e] = (Some(id), i);
                    }
                }
            }
            let unknown = best[i] + self.unk_score;
            if unknown > best[i + 1] {
                best[i + 1] = unknown;
                last[i + 1] = (None, i);
            }
        }
        let mut ids = Vec::new();
        let mut e = n;
        while e > 0 {
            let (id, from) = last[e];
            ids.push(id.unwrap_or(self.unk));
            e = from;
        }
        ids.reverse();
        ids
    }
}
