//! What the embedding tests share: the installed models and ranking.

#![allow(dead_code)]

use daarion_embed::E5;
pub use daarion_embed::dot;

pub fn model() -> Option<E5> {
    daarion_testkit::require_model(daarion_embed::install::IMAGE)
        .map(|path| E5::open(&path).unwrap())
}

/// Which of `passages` is nearest `query` (all normalised: the largest
/// dot product).
pub fn nearest(passages: &[Vec<f32>], query: &[f32]) -> usize {
    let scores: Vec<f32> = passages.iter().map(|p| dot(p, query)).collect();
    (0..scores.len())
        .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
        .unwrap()
}
