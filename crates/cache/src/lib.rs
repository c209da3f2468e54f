//! The cache: one interface over an in-process cache (all-in-one mode) and
//! Redis (shared by replicas).
//!
//! Besides get/set with a TTL, it offers the primitives services build on:
//! atomic counters, a token-bucket rate limit (GCRA, exact across replicas on
//! Redis) and expiring sets (members that vanish unless refreshed, used for
//! presence).
//!
//! Layout: `memory` ([`MemoryCache`]), `redis` ([`RedisCache`]), `gcra`
//! (the rate-limit arithmetic both share).

mod gcra;
mod memory;
mod redis_cache;

use std::time::Duration;

use async_trait::async_trait;

pub use memory::MemoryCache;
pub use redis_cache::RedisCache;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("key {0:?} holds a value of another type")]
    WrongType(String),
    #[error("invalid rate limit: rate and burst must be positive")]
    InvalidLimit,
    #[error("cache unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A token bucket: `per_second` tokens refill each second, up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    pub per_second: f64,
    pub burst: u32,
}

/// The outcome of one rate-limited request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateDecision {
    pub allowed: bool,
    /// When denied, how long until one token is available.
    pub retry_after: Duration,
    /// Tokens left after this request.
    pub remaining: u32,
}

#[async_trait]
pub trait Cache: Send + Sync + 'static {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError>;
    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), CacheError>;
    /// Whether a value was there.
    async fn delete(&self, key: &str) -> Result<bool, CacheError>;
    /// Adds `by` and returns the new value; a new counter starts at 0 and
    /// gets `ttl`, which later increments do not extend.
    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, CacheError>;
    /// Takes one token from the bucket at `key`.
    async fn rate_limit(&self, key: &str, limit: RateLimit) -> Result<RateDecision, CacheError>;
    /// Adds or refreshes `member`, which expires after `ttl` unless refreshed.
    /// Returns whether it was absent (or expired) before.
    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<bool, CacheError>;
    /// Whether the member was there.
    async fn set_remove(&self, key: &str, member: &str) -> Result<bool, CacheError>;
    /// Members that have not expired, sorted.
    async fn set_members(&self, key: &str) -> Result<Vec<String>, CacheError>;
    /// Removes expired members and returns them; of several callers racing,
    /// each expired member is returned to exactly one.
    async fn set_take_expired(&self, key: &str) -> Result<Vec<String>, CacheError>;
    /// `embedded` or `redis`.
    fn kind(&self) -> &'static str;
    async fn ping(&self) -> Result<(), CacheError>;
}

/// Health check for whichever cache is in use.
pub struct CacheHealth(pub std::sync::Arc<dyn Cache>);

#[async_trait]
impl daarion_kernel::DependencyCheck for CacheHealth {
    fn name(&self) -> &'static str {
        match self.0.kind() {
            "redis" => "redis",
            _ => "cache",
        }
    }

    async fn check(&self) -> daarion_kernel::DependencyStatus {
        use daarion_kernel::DependencyStatus::*;
        match tokio::time::timeout(Duration::from_secs(2), self.0.ping()).await {
            Ok(Ok(())) if self.0.kind() == "redis" => Connected,
            Ok(Ok(())) => Embedded,
            _ => Disconnected,
        }
    }
}
