//! Redis. Keys are prefixed (one prefix per city, or per test). Counters use
//! INCRBY; rate limits and expiring sets are Lua scripts, so each is one
//! atomic step on the server whatever the number of replicas. Expiring sets
//! are sorted sets scored by expiry time (milliseconds, server clock).
//!
//! When Redis stops answering, the commands that meet it first wait for
//! their timeout; for a moment after, commands fail at once (a circuit
//! breaker) rather than each waiting too, and the first after that, or a
//! health check's ping, tries Redis again.

use std::{future::Future, time::Duration};

use async_trait::async_trait;
use daarion_kernel::breaker::Breaker;
use redis::{AsyncCommands, Script, aio::ConnectionManager};

use crate::{Cache, CacheError, RateDecision, RateLimit, gcra};

/// How long commands fail at once after Redis did not answer one.
const HOLD_OFF: Duration = Duration::from_secs(2);

#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
    prefix: String,
    breaker: Breaker,
}

fn unavailable(error: redis::RedisError) -> CacheError {
    if error.code() == Some("WRONGTYPE") {
        return CacheError::WrongType(error.to_string());
    }
    CacheError::Unavailable(Box::new(error))
}

// KEYS[1] bucket; ARGV interval_us, tolerance_us. Returns {allowed, retry_after_us, remaining}.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now <= tolerance then
  redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
  return {1, 0, math.floor((tolerance - (new_tat - now)) / interval)}
end
return {0, math.ceil(new_tat - now - tolerance), 0}
";

// KEYS[1] set; ARGV member, ttl_ms. Returns 1 when the member was absent or expired.
const SET_ADD: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if old and tonumber(old) > now then return 0 end
return 1
";

// KEYS[1] set; ARGV member. Returns 1 when a live member was removed.
const SET_REMOVE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[1])
if old and tonumber(old) > now then return 1 end
return 0
";

const SET_MEMBERS: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
";

const SET_TAKE_EXPIRED: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #gone > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) end
return gone
";

// KEYS[1] counter; ARGV by, ttl_ms (0 = none).
const INCR: &str = r"
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if tonumber(ARGV[2]) > 0 and n == tonumber(ARGV[1]) then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return n
";

impl RedisCache {
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, CacheError> {
        let client = redis::Client::open(url).map_err(|e| CacheError::Unavailable(Box::new(e)))?;
        // Reconnects quickly after Redis comes back (the default backoff
        // grows to 3.2 s between attempts), and a command never waits on
        // a Redis that does not answer for longer than a request would.
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_max_delay(Duration::from_millis(500))
            .set_connection_timeout(Some(Duration::from_secs(1)))
            .set_response_timeout(Some(Duration::from_secs(2)));
        let manager = ConnectionManager::new_with_config(client, config);
        let conn = tokio::time::timeout(Duration::from_secs(10), manager)
            .await
            .map_err(|e| CacheError::Unavailable(Box::new(e)))?
            .map_err(unavailable)?;
        Ok(Self {
            conn,
            prefix: prefix.to_owned(),
            breaker: Breaker::new(HOLD_OFF),
        })
    }

    /// Runs `command` unless Redis just failed to answer one, and notes
    /// whether it answered this one.
    async fn call<T>(
        &self,
        command: impl Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, CacheError> {
        if self.breaker.is_open() {
            return Err(CacheError::Unavailable(
                "Redis did not answer a moment ago; trying again shortly".into(),
            ));
        }
        self.answered(command.await)
    }

    fn answered<T>(&self, result: redis::RedisResult<T>) -> Result<T, CacheError> {
        let silent = result.as_ref().is_err_and(|e| {
            e.is_io_error()
                || e.is_timeout()
                || e.is_connection_dropped()
                || e.is_connection_refusal()
        });
        self.breaker.record(!silent);
        result.map_err(unavailable)
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        script: &str,
        key: &str,
        args: &[String],
    ) -> Result<T, CacheError> {
        let script = Script::new(script);
        let mut invocation = script.key(self.key(key));
        for arg in args {
            invocation.arg(arg);
        }
        self.call(invocation.invoke_async(&mut self.conn.clone()))
            .await
    }
}

fn millis(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

#[async_trait]
impl Cache for RedisCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        self.call(self.conn.clone().get(self.key(key))).await
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), CacheError> {
        let mut conn = self.conn.clone();
        self.call(async {
            match ttl {
                Some(ttl) => {
                    conn.pset_ex::<_, _, ()>(
                        self.key(key),
                        value,
                        u64::try_from(ttl.as_millis().max(1)).unwrap_or(u64::MAX),
                    )
                    .await
                }
                None => conn.set::<_, _, ()>(self.key(key), value).await,
            }
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        let removed: i64 = self.call(self.conn.clone().del(self.key(key))).await?;
        Ok(removed > 0)
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, CacheError> {
        let ttl = ttl.map(millis).unwrap_or_else(|| "0".into());
        self.run(INCR, key, &[by.to_string(), ttl]).await
    }

    async fn rate_limit(&self, key: &str, limit: RateLimit) -> Result<RateDecision, CacheError> {
        let (interval, tolerance) = gcra::validate(limit)?;
        let (allowed, retry_us, remaining): (i64, i64, i64) = self
            .run(
                GCRA,
                key,
                &[format!("{interval:.0}"), format!("{tolerance:.0}")],
            )
            .await?;
        Ok(RateDecision {
            allowed: allowed == 1,
            retry_after: Duration::from_micros(u64::try_from(retry_us).unwrap_or(0)),
            remaining: u32::try_from(remaining).unwrap_or(0),
        })
    }

    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<bool, CacheError> {
        let added: i64 = self
            .run(SET_ADD, key, &[member.to_owned(), millis(ttl)])
            .await?;
        Ok(added == 1)
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<bool, CacheError> {
        let removed: i64 = self.run(SET_REMOVE, key, &[member.to_owned()]).await?;
        Ok(removed == 1)
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, CacheError> {
        let mut members: Vec<String> = self.run(SET_MEMBERS, key, &[]).await?;
        members.sort();
        Ok(members)
    }

    async fn set_take_expired(&self, key: &str) -> Result<Vec<String>, CacheError> {
        self.run(SET_TAKE_EXPIRED, key, &[]).await
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    /// Always asks Redis, whatever the breaker says: the health checks
    /// find out when it is back.
    async fn ping(&self) -> Result<(), CacheError> {
        let answer = redis::cmd("PING")
            .query_async::<String>(&mut self.conn.clone())
            .await;
        self.answered(answer).map(|_| ())
    }
}
