//! The optional exact-match response cache.

use super::*;

/// A cached reply; a cache that fails is a miss (logged), not an error.
pub(super) async fn cached_reply(cache: &dyn daarion_cache::Cache, key: &str) -> Option<Vec<u8>> {
    cache.get(key).await.unwrap_or_else(|error| {
        tracing::warn!(%error, "response cache unavailable");
        None
    })
}

/// A digest of the whole request: equal keys mean equal requests.
pub(super) fn cache_key(op: Op, body: &Bytes) -> String {
    let mut digest = Sha256::new();
    digest.update([op as u8]);
    digest.update(body);
    format!("llm:reply:{:x}", digest.finalize())
}
