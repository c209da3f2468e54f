//! What the embedding tests share: the installed models and ranking.

#![allow(dead_code)]

use std::path::PathBuf;

use daarion_embed::E5;
pub use daarion_embed::dot;

/// A file `daarion models install` put in the models directory
/// (`DAARION_MODELS_DIR`, or where `scripts/test.sh` puts them). Required
/// under CI; elsewhere its absence skips, loudly.
pub fn installed(file: &str) -> Option<PathBuf> {
    let dir = std::env::var_os("DAARION_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
                .join(".cache/daarion/models")
        });
    let path = dir.join(file);
    if !path.exists() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI needs {} (scripts/test.sh installs it)",
            path.display()
        );
        eprintln!("SKIPPED: no {} (run scripts/test.sh once)", path.display());
        return None;
    }
    Some(path)
}

pub fn model() -> Option<E5> {
    installed(daarion_embed::install::IMAGE).map(|path| E5::open(&path).unwrap())
}

/// Which of `passages` is nearest `query` (all normalised: the largest
/// dot product).
pub fn nearest(passages: &[Vec<f32>], query: &[f32]) -> usize {
    let scores: Vec<f32> = passages.iter().map(|p| dot(p, query)).collect();
    (0..scores.len())
        .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
        .unwrap()
}
