//! The cache contract, run against the in-process cache and Redis.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{sync::Arc, time::Duration};

use daarion_cache::{Cache, RateLimit};
use daarion_testkit::CacheKind;

macro_rules! contract {
    ($($kind:ident => $module:ident),*) => {$(
        mod $module {
            use super::*;

            async fn cache() -> Option<Arc<dyn Cache>> {
                daarion_testkit::fresh_cache(CacheKind::$kind).await
            }

            #[tokio::test]
            async fn values_expire_and_delete() {
                let Some(c) = cache().await else { return };
                assert_eq!(c.get("k").await.unwrap(), None);
                c.set("k", b"v", None).await.unwrap();
                c.set("short", b"s", Some(Duration::from_millis(150))).await.unwrap();
                assert_eq!(c.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
                assert_eq!(c.get("short").await.unwrap().as_deref(), Some(&b"s"[..]));
                tokio::time::sleep(Duration::from_millis(300)).await;
                assert_eq!(c.get("short").await.unwrap(), None);
                assert!(c.delete("k").await.unwrap());
                assert!(!c.delete("k").await.unwrap());
                assert_eq!(c.get("k").await.unwrap(), None);
            }

            #[tokio::test]
            async fn concurrent_counters_are_exact() {
                let Some(c) = cache().await else { return };
                let tasks: Vec<_> = (0..50).map(|_| {
                    let c = c.clone();
                    tokio::spawn(async move {
                        for _ in 0..20 { c.incr("hits", 1, None).await.unwrap(); }
                    })
                }).collect();
                for t in tasks { t.await.unwrap(); }
                assert_eq!(c.incr("hits", 0, None).await.unwrap(), 1000);
                assert_eq!(c.incr("hits", -1000, None).await.unwrap(), 0);
            }

            #[tokio::test]
            async fn counters_take_their_ttl_when_created() {
                let Some(c) = cache().await else { return };
                assert_eq!(c.incr("window", 1, Some(Duration::from_millis(200))).await.unwrap(), 1);
                assert_eq!(c.incr("window", 1, Some(Duration::from_millis(200))).await.unwrap(), 2);
                tokio::time::sleep(Duration::from_millis(350)).await;
                assert_eq!(c.incr("window", 1, Some(Duration::from_millis(200))).await.unwrap(), 1);
            }

            #[tokio::test]
            async fn wrong_types_are_errors_not_garbage() {
                let Some(c) = cache().await else { return };
                c.set("text", b"abc", None).await.unwrap();
                assert!(c.incr("text", 1, None).await.is_err());
            }

            #[tokio::test]
            async fn rate_limits_allow_the_burst_then_refill() {
                let Some(c) = cache().await else { return };
                let limit = RateLimit { per_second: 5.0, burst: 3 };
                for _ in 0..3 {
                    assert!(c.rate_limit("client", limit).await.unwrap().allowed);
                }
                let denied = c.rate_limit("client", limit).await.unwrap();
                assert!(!denied.allowed);
                assert!(denied.retry_after > Duration::from_millis(100) && denied.retry_after <= Duration::from_millis(200), "{:?}", denied.retry_after);
                // Another key has its own bucket.
                assert!(c.rate_limit("other", limit).await.unwrap().allowed);
                tokio::time::sleep(denied.retry_after + Duration::from_millis(20)).await;
                assert!(c.rate_limit("client", limit).await.unwrap().allowed);
                assert!(c.rate_limit("client", RateLimit { per_second: 0.0, burst: 1 }).await.is_err());
            }

            #[tokio::test]
            async fn concurrent_rate_limited_requests_get_exactly_the_burst() {
                let Some(c) = cache().await else { return };
                let limit = RateLimit { per_second: 0.1, burst: 10 };
                let tasks: Vec<_> = (0..40).map(|_| {
                    let c = c.clone();
                    tokio::spawn(async move { c.rate_limit("shared", limit).await.unwrap().allowed })
                }).collect();
                let mut allowed = 0;
                for t in tasks { allowed += usize::from(t.await.unwrap()); }
                assert_eq!(allowed, 10);
            }

            #[tokio::test]
            async fn expiring_sets_track_live_members() {
                let Some(c) = cache().await else { return };
                assert!(c.set_add("present", "bob", Duration::from_secs(30)).await.unwrap());
                assert!(c.set_add("present", "alice", Duration::from_millis(150)).await.unwrap());
                assert!(!c.set_add("present", "bob", Duration::from_secs(30)).await.unwrap(), "refresh is not new");
                assert_eq!(c.set_members("present").await.unwrap(), vec!["alice", "bob"]);
                tokio::time::sleep(Duration::from_millis(300)).await;
                assert_eq!(c.set_members("present").await.unwrap(), vec!["bob"]);
                assert!(c.set_remove("present", "bob").await.unwrap());
                assert!(!c.set_remove("present", "bob").await.unwrap());
                assert!(c.set_members("present").await.unwrap().is_empty());
            }

            #[tokio::test]
            async fn each_expired_member_is_taken_once() {
                let Some(c) = cache().await else { return };
                for m in ["a", "b", "c"] {
                    c.set_add("room", m, Duration::from_millis(100)).await.unwrap();
                }
                c.set_add("room", "stays", Duration::from_secs(30)).await.unwrap();
                tokio::time::sleep(Duration::from_millis(250)).await;
                let racers: Vec<_> = (0..8).map(|_| {
                    let c = c.clone();
                    tokio::spawn(async move { c.set_take_expired("room").await.unwrap() })
                }).collect();
                let mut taken = Vec::new();
                for r in racers { taken.extend(r.await.unwrap()); }
                taken.sort();
                assert_eq!(taken, vec!["a", "b", "c"]);
                assert_eq!(c.set_members("room").await.unwrap(), vec!["stays"]);
            }
        }
    )*};
}

contract!(Memory => memory, Redis => redis);

/// Redis that stops answering: the command that meets it first waits for
/// its timeout, the next ones fail at once, and the commands work again
/// once it answers (#19).
#[tokio::test]
async fn after_redis_fails_to_answer_commands_fail_at_once_until_it_is_back() {
    use daarion_cache::{CacheError, RedisCache};
    use std::time::Instant;
    let Some(url) = daarion_testkit::require_env("REDIS_URL") else {
        return;
    };
    let server = url.trim_start_matches("redis://");
    let server = server.split('/').next().unwrap().to_owned();
    let stall = daarion_testkit::stall::Stall::to(server).await;
    let prefix = format!("{}:", daarion_testkit::unique("t"));
    let cache = RedisCache::connect(&format!("redis://{}", stall.addr), &prefix)
        .await
        .unwrap();
    cache.set("k", b"v", None).await.unwrap();

    stall.pause();
    let started = Instant::now();
    assert!(cache.get("k").await.is_err());
    let first = started.elapsed();
    assert!(
        first >= Duration::from_secs(1),
        "waited for Redis: {first:?}"
    );
    let started = Instant::now();
    for _ in 0..10 {
        let refused = cache.get("k").await;
        assert!(
            matches!(refused, Err(CacheError::Unavailable(_))),
            "{refused:?}"
        );
    }
    let next = started.elapsed();
    assert!(
        next < Duration::from_millis(200),
        "the next did not wait: {next:?}"
    );

    stall.resume();
    let value =
        daarion_testkit::eventually("Redis answers again", Duration::from_secs(10), || async {
            cache.get("k").await.ok().flatten()
        })
        .await;
    assert_eq!(value, b"v");
}
