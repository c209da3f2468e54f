//! The model image (`E5S1`, little-endian): a header of sizes, the
//! tokenizer's pieces, scores and normalisation map, then a directory of
//! tensors — `f32` arrays, or 4-bit `Q4_0` blocks (an `f16` scale and 32
//! nibbles; byte `j` holds weight `j` low and weight `j + 16` high, each
//! stored plus 8). Every read is checked: a truncated or foreign file is a
//! [`EmbedError::Format`], never a panic.

use std::collections::HashMap;

use crate::EmbedError;

/// Weights per `Q4_0` block, and the block's size in bytes.
const BLOCK: usize = 32;
const BLOCK_BYTES: usize = 2 + BLOCK / 2;

/// The encoder's shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub ff: usize,
    pub vocab: usize,
    pub positions: usize,
    pub eps: f32,
}

/// The tokenizer as stored.
pub(crate) struct Vocabulary {
    pub pieces: Vec<Vec<u8>>,
    pub scores: Vec<f32>,
    pub bos: u32,
    pub eos: u32,
    pub unk: u32,
    /// Code point → its replacement (the normaliser, precompiled).
    pub normal: HashMap<u32, Vec<u32>>,
}

pub(crate) struct Image<'a> {
    pub shape: Shape,
    pub vocabulary: Vocabulary,
    /// The vocabulary as stored (a distilled table keeps a copy).
    pub vocabulary_bytes: &'a [u8],
    tensors: HashMap<String, Tensor<'a>>,
}

struct Tensor<'a> {
    quantized: bool,
    len: usize,
    bytes: &'a [u8],
}

pub(crate) fn bad(what: impl Into<String>) -> EmbedError {
    EmbedError::Format(what.into())
}

pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.at
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], EmbedError> {
        let end = self
            .at
            .checked_add(n)
            .ok_or_else(|| bad("a size overflows"))?;
        let taken = self
            .bytes
            .get(self.at..end)
            .ok_or_else(|| bad("the file ends early"))?;
        self.at = end;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], EmbedError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, EmbedError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, EmbedError> {
        Ok(u16::from_le_bytes(self.array()?))
    }

    pub fn u32(&mut self) -> Result<u32, EmbedError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, EmbedError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    pub fn f32(&mut self) -> Result<f32, EmbedError> {
        Ok(f32::from_le_bytes(self.array()?))
    }

    /// A size stored as a signed 32-bit count, which must be positive.
    fn count(&mut self) -> Result<usize, EmbedError> {
        let n = i32::from_le_bytes(self.array()?);
        usize::try_from(n).map_err(|_| bad(format!("a negative count ({n})")))
    }

    fn usize64(&mut self) -> Result<usize, EmbedError> {
        usize::try_from(self.u64()?).map_err(|_| bad("a size beyond memory"))
    }
}

impl<'a> Image<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, EmbedError> {
        let mut at = Cursor::new(bytes);
        if at.take(4)? != b"E5S1" {
            return Err(bad("no E5S1 magic"));
        }
        let _version = at.u32()?;
        let [hidden, layers, heads, ff, vocab, positions, _type_vocab] =
            [(); 7].map(|()| at.count());
        let shape = Shape {
            hidden: hidden?,
            layers: layers?,
            heads: heads?,
            ff: ff?,
            vocab: vocab?,
            positions: positions?,
            eps: at.f32()?,
        };
        if at.count()? != BLOCK {
            return Err(bad("a block size other than 32"));
        }
        let fits = shape.heads > 0
            && shape.hidden.is_multiple_of(shape.heads)
            && shape.hidden.is_multiple_of(BLOCK)
            && shape.ff.is_multiple_of(BLOCK)
            && shape.positions > 2;
        if !fits {
            return Err(bad(format!(
                "an encoder shape this code cannot run: {shape:?}"
            )));
        }
        let start = at.at;
        let vocabulary = vocabulary(&mut at)?;
        let vocabulary_bytes = &bytes[start..at.at];
        let mut tensors = HashMap::new();
        for _ in 0..at.count()? {
            let name_len = usize::from(at.u16()?);
            let name = String::from_utf8_lossy(at.take(name_len)?).into_owned();
            let quantized = match at.u8()? {
                0 => false,
                1 => true,
                other => return Err(bad(format!("tensor {name}: type {other}"))),
            };
            let len = usize::try_from(at.u32()?).map_err(|_| bad("a size beyond memory"))?;
            let (offset, size) = (at.usize64()?, at.usize64()?);
            let bytes = offset
                .checked_add(size)
                .and_then(|end| bytes.get(offset..end))
                .ok_or_else(|| bad(format!("tensor {name} lies outside the file")))?;
            let expected = if quantized {
                len / BLOCK * BLOCK_BYTES
            } else {
                len * 4
            };
            if bytes.len() != expected || (quantized && !len.is_multiple_of(BLOCK)) {
                return Err(bad(format!("tensor {name}: {len} values in {size} bytes")));
            }
            tensors.insert(
                name,
                Tensor {
                    quantized,
                    len,
                    bytes,
                },
            );
        }
        Ok(Self {
            shape,
            vocabulary,
            vocabulary_bytes,
            tensors,
        })
    }

    fn tensor(&self, name: &str, quantized: bool, len: usize) -> Result<&Tensor<'a>, EmbedError> {
        let tensor = self
            .tensors
            .get(name)
            .ok_or_else(|| bad(format!("no tensor {name}")))?;
        if tensor.quantized != quantized || tensor.len != len {
            return Err(bad(format!(
                "tensor {name}: {} values{}, {len} expected",
                tensor.len,
                if tensor.quantized { " (4-bit)" } else { "" }
            )));
        }
        Ok(tensor)
    }

    /// An `f32` tensor of `len` values.
    pub fn floats(&self, name: &str, len: usize) -> Result<Vec<f32>, EmbedError> {
        let tensor = self.tensor(name, false, len)?;
        Ok(tensor
            .bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// A 4-bit tensor of `len` values, as stored (see [`dequantize`]).
    pub fn quantized(&self, name: &str, len: usize) -> Result<&'a [u8], EmbedError> {
        Ok(self.tensor(name, true, len)?.bytes)
    }
}

/// The tokenizer's section: pieces, scores, specials, normaliser.
pub(crate) fn vocabulary(at: &mut Cursor<'_>) -> Result<Vocabulary, EmbedError> {
    let n = at.count()?;
    let [bos, eos, _pad, unk] = [(); 4].map(|()| at.count());
    let (bos, eos, unk) = (bos?, eos?, unk?);
    if [bos, eos, unk].iter().any(|&id| id >= n) {
        return Err(bad("a special token outside the vocabulary"));
    }
    let blob_len = at.usize64()?;
    let offsets = (0..=n).map(|_| at.u32()).collect::<Result<Vec<_>, _>>()?;
    let scores = (0..n).map(|_| at.f32()).collect::<Result<Vec<_>, _>>()?;
    let blob = at.take(blob_len)?;
    let pieces = offsets
        .windows(2)
        .map(|w| {
            let (a, b) = (w[0] as usize, w[1] as usize);
            blob.get(a..b)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| bad("a piece outside the vocabulary's bytes"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let entries = at.count()?;
    let map_len = usize::try_from(at.u32()?).map_err(|_| bad("a size beyond memory"))?;
    let mut map = Cursor::new(at.take(map_len)?);
    // An entry takes 5 bytes at least.
    let mut normal = HashMap::with_capacity(entries.min(map_len / 5));
    for _ in 0..entries {
        let from = map.u32()?;
        let to = (0..map.u8()?)
            .map(|_| map.u32())
            .collect::<Result<_, _>>()?;
        normal.insert(from, to);
    }
    let id = |i: usize| u32::try_from(i).map_err(|_| bad("a vocabulary beyond 2^32"));
    Ok(Vocabulary {
        pieces,
        scores,
        bos: id(bos)?,
        eos: id(eos)?,
        unk: id(unk)?,
        normal,
    })
}

/// The weights of `blocks` (whole `Q4_0` blocks) into `out`, which holds
/// 32 values per block.
pub(crate) fn dequantize(blocks: &[u8], out: &mut [f32]) {
    for (block, out) in blocks
        .chunks_exact(BLOCK_BYTES)
        .zip(out.chunks_exact_mut(BLOCK))
    {
        let scale = half::f16::from_le_bytes([block[0], block[1]]).to_f32();
        let (low, high) = out.split_at_mut(BLOCK / 2);
        for ((&byte, low), high) in block[2..].iter().zip(low).zip(high) {
            *low = f32::from(i16::from(byte & 0x0F) - 8) * scale;
            *high = f32::from(i16::from(byte >> 4) - 8) * scale;
        }
    }
}

/// Bytes a row of `n` 4-bit weights takes.
pub(crate) fn row_bytes(n: usize) -> usize {
    n / BLOCK * BLOCK_BYTES
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_block_dequantizes_low_nibbles_first() {
        let mut block = vec![0u8; BLOCK_BYTES];
        block[..2].copy_from_slice(&half::f16::from_f32(0.5).to_le_bytes());
        // Weight 0 stored as 9 (+1), weight 16 as 6 (-2).
        block[2] = 0x69;
        let mut out = [0f32; BLOCK];
        dequantize(&block, &mut out);
        assert_eq!(out[0], 0.5);
        assert_eq!(out[16], -1.0);
        assert_eq!(out[1], -4.0, "a zero byte is -8 times the scale");
    }

    #[test]
    fn a_foreign_or_truncated_file_is_refused() {
        assert!(matches!(
            Image::parse(b"GGUF...."),
            Err(EmbedError::Format(_))
        ));
        assert!(matches!(
            Image::parse(b"E5S1\x01\x00"),
            Err(EmbedError::Format(_))
        ));
    }
}
