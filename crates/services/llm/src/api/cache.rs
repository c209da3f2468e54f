//! The optional exact-match response cache.

use super::*;

/// A cached reply; a cache that fails is a miss (logged), not an error.
pub(super) async fn cached_reply(cache: &dyn daarion_cache::Cache, key: &str) -> Option<Vec<u8>> {
    cache.get(key).await.unwrap_or_else(|error| {
        tracing::warn!(%error, "response cache unavailable");
        None
    })
}

/// A digest of the whole request and, unless the alias shares its cache,
/// of who asks: equal keys mean equal requests by the same caller, so a
/// reply never reaches someone else's identical request.
pub(super) fn cache_key(op: Op, body: &Bytes, caller: Option<&str>) -> String {
    let mut digest = Sha256::new();
    digest.update([op as u8]);
    if let Some(caller) = caller {
        digest.update(caller.as_bytes());
        digest.update([0]);
    }
    digest.update(body);
    format!("llm:reply:{:x}", digest.finalize())
}
