//! The BERT encoder: embeddings (word + position + type, normalised), 12
//! layers of self-attention and a GELU feed-forward, each added back and
//! normalised, then the mean over a window's tokens. Weights are
//! dequantized to `f32` once at load; matrix products go through
//! `ndarray` (`matrixmultiply`, which uses AVX2/FMA where the CPU has
//! them). Several windows run in one pass, their tokens stacked into one
//! matrix so each weight is read once per pass; attention stays within a
//! window.

use std::ops::Range;

use ndarray::{Array1, Array2, ArrayView2, Axis, Slice};

use crate::{
    EmbedError, Kind,
    file::{self, Image, Shape},
    tokenizer::Tokenizer,
};

/// Tokens stacked into one pass (bounds a pass's memory: ~20 MB).
const TOKENS_PER_PASS: usize = 2048;

/// multilingual-e5-small, ready to embed (see the crate's documentation).
pub struct E5 {
    shape: Shape,
    pub(crate) tokenizer: Tokenizer,
    /// The tokenizer's section of the image, as stored.
    pub(crate) vocabulary: Vec<u8>,
    /// The word embeddings stay 4-bit (250 037 rows): a row is
    /// dequantized when a token needs it.
    words: Vec<u8>,
    positions: Array2<f32>,
    token_type: Array1<f32>,
    norm: Norm,
    layers: Vec<Layer>,
}

struct Linear {
    /// `[in, out]`, so `x.dot(&w)` maps rows of `x`.
    w: Array2<f32>,
    b: Array1<f32>,
}

struct Norm {
    w: Array1<f32>,
    b: Array1<f32>,
}

struct Layer {
    q: Linear,
    k: Linear,
    v: Linear,
    out: Linear,
    attention_norm: Norm,
    up: Linear,
    down: Linear,
    output_norm: Norm,
}

impl Linear {
    fn load(
        image: &Image<'_>,
        name: &str,
        inputs: usize,
        outputs: usize,
    ) -> Result<Self, EmbedError> {
        let stored = image.quantized(&format!("{name}.w"), inputs * outputs)?;
        let mut w = vec![0.0; inputs * outputs];
        file::dequantize(stored, &mut w);
        let w = Array2::from_shape_vec((outputs, inputs), w)
            .map_err(|e| EmbedError::Format(e.to_string()))?
            .reversed_axes();
        let b = Array1::from(image.floats(&format!("{name}.b"), outputs)?);
        Ok(Self { w, b })
    }

    fn apply(&self, x: &Array2<f32>) -> Array2<f32> {
        x.dot(&self.w) + &self.b
    }
}

impl Norm {
    fn load(image: &Image<'_>, name: &str, width: usize) -> Result<Self, EmbedError> {
        Ok(Self {
            w: Array1::from(image.floats(&format!("{name}.w"), width)?),
            b: Array1::from(image.floats(&format!("{name}.b"), width)?),
        })
    }

    /// Layer normalisation of each row of `x`, in place.
    fn apply(&self, x: &mut Array2<f32>, eps: f32) {
        let width = x.ncols() as f32;
        for mut row in x.axis_iter_mut(Axis(0)) {
            let mean = row.sum() / width;
            let variance = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width;
            let scale = 1.0 / (variance + eps).sqrt();
            for ((v, w), b) in row.iter_mut().zip(&self.w).zip(&self.b) {
                *v = (*v - mean) * scale * w + b;
            }
        }
    }
}

impl E5 {
    /// The model from its image's bytes.
    pub fn from_image(bytes: &[u8]) -> Result<Self, EmbedError> {
        let image = Image::parse(bytes)?;
        let Shape {
            hidden,
            layers,
            ff,
            vocab,
            positions,
            ..
        } = image.shape;
        if image.vocabulary.pieces.len() > vocab {
            return Err(EmbedError::Format(
                "more pieces than word embeddings".into(),
            ));
        }
        let layers = (0..layers)
            .map(|l| {
                let name = |part: &str| format!("l{l}.{part}");
                Ok(Layer {
                    q: Linear::load(&image, &name("q"), hidden, hidden)?,
                    k: Linear::load(&image, &name("k"), hidden, hidden)?,
                    v: Linear::load(&image, &name("v"), hidden, hidden)?,
                    out: Linear::load(&image, &name("ao"), hidden, hidden)?,
                    attention_norm: Norm::load(&image, &name("aln"), hidden)?,
                    up: Linear::load(&image, &name("fi"), hidden, ff)?,
                    down: Linear::load(&image, &name("fo"), ff, hidden)?,
                    output_norm: Norm::load(&image, &name("oln"), hidden)?,
                })
            })
            .collect::<Result<Vec<_>, EmbedError>>()?;
        let positions = Array2::from_shape_vec(
            (positions, hidden),
            image.floats("emb.pos", positions * hidden)?,
        )
        .map_err(|e| EmbedError::Format(e.to_string()))?;
        // The first of the type embeddings: e5 uses type 0 only.
        let token_type = image
            .floats("emb.type", 2 * hidden)?
            .into_iter()
            .take(hidden)
            .collect();
        Ok(Self {
            words: image.quantized("emb.word", vocab * hidden)?.to_vec(),
            positions,
            token_type,
            norm: Norm::load(&image, "emb.ln", hidden)?,
            layers,
            shape: image.shape,
            vocabulary: image.vocabulary_bytes.to_vec(),
            tokenizer: Tokenizer::new(image.vocabulary),
        })
    }

    /// Dimensions of an embedding (384).
    pub fn dim(&self) -> usize {
        self.shape.hidden
    }

    /// Tokens the model reads for `text` (its prefix and `<s>`, `</s>`
    /// included, all windows counted).
    pub fn tokens(&self, text: &str, kind: Kind) -> usize {
        self.tokenizer
            .encode(&format!("{}{text}", kind.prefix()))
            .len()
            + 2
    }

    /// The embeddings of `texts` (L2-normalised, [`Self::dim`] each), the
    /// work split over this machine's cores.
    pub fn embed(&self, texts: &[&str], kind: Kind) -> Vec<Vec<f32>> {
        crate::on_every_core(texts, |part| self.embed_here(part, kind))
    }

    /// [`Self::embed`] on this thread: each window's mean weighted by its
    /// pieces, then normalised (so no division by the total weight).
    fn embed_here(&self, texts: &[&str], kind: Kind) -> Vec<Vec<f32>> {
        let room = self.shape.positions - 2;
        // Every window of every text: (text, its pieces).
        let mut windows: Vec<(usize, Vec<u32>)> = Vec::new();
        for (i, text) in texts.iter().enumerate() {
            let pieces = self.tokenizer.encode(&format!("{}{text}", kind.prefix()));
            windows.extend(pieces.chunks(room).map(|w| (i, w.to_vec())));
        }
        let mut sums = vec![vec![0.0f32; self.dim()]; texts.len()];
        let mut start = 0;
        while start < windows.len() {
            let mut end = start;
            let mut tokens = 0;
            while end < windows.len()
                && (end == start || tokens + windows[end].1.len() + 2 <= TOKENS_PER_PASS)
            {
                tokens += windows[end].1.len() + 2;
                end += 1;
            }
            let batch = &windows[start..end];
            let means = self.forward(batch.iter().map(|(_, w)| w.as_slice()));
            for ((text, pieces), mean) in batch.iter().zip(means.axis_iter(Axis(0))) {
                let weight = pieces.len().max(1) as f32;
                for (sum, v) in sums[*text].iter_mut().zip(mean) {
                    *sum += weight * v;
                }
            }
            start = end;
        }
        for sum in &mut sums {
            crate::normalize(sum);
        }
        sums
    }

    /// The mean of each window's last hidden states (`<s>` and `</s>`
    /// added around its pieces), one row per window.
    pub(crate) fn forward<'w>(&self, windows: impl Iterator<Item = &'w [u32]>) -> Array2<f32> {
        let hidden = self.shape.hidden;
        let mut ids = Vec::new();
        let mut spans = Vec::new();
        for pieces in windows {
            let start = ids.len();
            ids.push(self.tokenizer.bos);
            ids.extend_from_slice(pieces);
            ids.push(self.tokenizer.eos);
            spans.push(start..ids.len());
        }
        let mut x = Array2::<f32>::zeros((ids.len(), hidden));
        let row = file::row_bytes(hidden);
        for span in &spans {
            for (position, t) in span.clone().enumerate() {
                let mut out = x.row_mut(t);
                if let Some(out) = out.as_slice_mut() {
                    let id = ids[t] as usize;
                    file::dequantize(&self.words[id * row..(id + 1) * row], out);
                }
                out += &self.positions.row(position);
                out += &self.token_type;
            }
        }
        self.norm.apply(&mut x, self.shape.eps);

        let heads = self.shape.heads;
        let width = hidden / heads;
        let scale = 1.0 / (width as f32).sqrt();
        for layer in &self.layers {
            let (q, k, v) = (layer.q.apply(&x), layer.k.apply(&x), layer.v.apply(&x));
            let mut context = Array2::<f32>::zeros(x.raw_dim());
            for span in &spans {
                for h in 0..heads {
                    let columns = h * width..(h + 1) * width;
                    let rows = span.clone();
                    let q = block(&q, &rows, &columns);
                    let k = block(&k, &rows, &columns);
                    let v = block(&v, &rows, &columns);
                    let mut weights = q.dot(&k.t()) * scale;
                    for mut row in weights.axis_iter_mut(Axis(0)) {
                        softmax(&mut row);
                    }
                    context
                        .slice_axis_mut(Axis(0), Slice::from(rows))
                        .slice_axis_move(Axis(1), Slice::from(columns))
                        .assign(&weights.dot(&v));
                }
            }
            x += &layer.out.apply(&context);
            layer.attention_norm.apply(&mut x, self.shape.eps);
            let mut up = layer.up.apply(&x);
            up.mapv_inplace(gelu);
            x += &layer.down.apply(&up);
            layer.output_norm.apply(&mut x, self.shape.eps);
        }
        let mut means = Array2::<f32>::zeros((spans.len(), hidden));
        for (mut mean, span) in means.axis_iter_mut(Axis(0)).zip(&spans) {
            if let Some(m) = x
                .slice_axis(Axis(0), Slice::from(span.clone()))
                .mean_axis(Axis(0))
            {
                mean.assign(&m);
            }
        }
        means
    }
}

/// The `rows` × `columns` block of `a`.
fn block<'a>(
    a: &'a Array2<f32>,
    rows: &Range<usize>,
    columns: &Range<usize>,
) -> ArrayView2<'a, f32> {
    a.slice_axis(Axis(0), Slice::from(rows.clone()))
        .slice_axis_move(Axis(1), Slice::from(columns.clone()))
}

fn softmax(row: &mut ndarray::ArrayViewMut1<'_, f32>) {
    let max = row.fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    row.mapv_inplace(|v| (v - max).exp());
    let sum = row.sum();
    row.mapv_inplace(|v| v / sum);
}

/// GELU, the exact (erf) form BERT uses.
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
}
