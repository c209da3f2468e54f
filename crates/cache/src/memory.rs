//! The in-process cache: a bounded moka cache whose entries carry their own
//! expiry. Every read-modify-write goes through moka's per-key compute, so
//! counters, buckets and sets are atomic under concurrency.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use moka::{Expiry, future::Cache as Moka, ops::compute::Op};

use crate::{Cache, CacheError, RateDecision, RateLimit, gcra};

#[derive(Clone, Debug)]
enum Value {
    Bytes(Arc<[u8]>),
    Int(i64),
    /// GCRA theoretical arrival time, microseconds since the cache started.
    Tat(f64),
    /// Member -> expiry.
    Set(Arc<BTreeMap<String, Instant>>),
}

#[derive(Clone, Debug)]
struct Entry {
    value: Value,
    expires_at: Option<Instant>,
}

struct EntryExpiry;

impl Expiry<String, Entry> for EntryExpiry {
    fn expire_after_create(&self, _: &String, entry: &Entry, now: Instant) -> Option<Duration> {
        entry.expires_at.map(|at| at.saturating_duration_since(now))
    }

    fn expire_after_update(
        &self,
        _: &String,
        entry: &Entry,
        now: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        entry.expires_at.map(|at| at.saturating_duration_since(now))
    }
}

#[derive(Clone)]
pub struct MemoryCache {
    inner: Moka<String, Entry>,
    epoch: Instant,
}

impl Default for MemoryCache {
    fn default() -> Self {
        Self::new(1_000_000)
    }
}

impl MemoryCache {
    /// A cache holding at most `max_entries` keys (least recently used go first).
    pub fn new(max_entries: u64) -> Self {
        Self {
            inner: Moka::builder()
                .max_capacity(max_entries)
                .expire_after(EntryExpiry)
                .build(),
            epoch: Instant::now(),
        }
    }

    /// Runs `f` atomically on the live entry at `key`.
    async fn compute<T>(
        &self,
        key: &str,
        f: impl FnOnce(Option<Entry>) -> (Op<Entry>, Result<T, CacheError>),
    ) -> Result<T, CacheError> {
        let mut out = None;
        self.inner
            .entry_by_ref(key)
            .and_compute_with(|current| {
                let now = Instant::now();
                let live = current
                    .map(|e| e.into_value())
                    .filter(|e| e.expires_at.is_none_or(|at| at > now));
                let (op, result) = f(live);
                out = Some(result);
                std::future::ready(op)
            })
            .await;
        out.unwrap_or(Err(CacheError::InvalidLimit))
    }
}

fn live_members(set: &BTreeMap<String, Instant>, now: Instant) -> Vec<String> {
    set.iter()
        .filter(|(_, at)| **at > now)
        .map(|(m, _)| m.clone())
        .collect()
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let now = Instant::now();
        match self.inner.get(key).await {
            Some(Entry {
                value: Value::Bytes(b),
                expires_at,
            }) if expires_at.is_none_or(|at| at > now) => Ok(Some(b.to_vec())),
            Some(Entry {
                value: Value::Int(n),
                expires_at,
            }) if expires_at.is_none_or(|at| at > now) => Ok(Some(n.to_string().into_bytes())),
            Some(Entry { expires_at, .. }) if expires_at.is_none_or(|at| at > now) => {
                Err(CacheError::WrongType(key.to_owned()))
            }
            _ => Ok(None),
        }
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Option<Duration>) -> Result<(), CacheError> {
        let entry = Entry {
            value: Value::Bytes(value.into()),
            expires_at: ttl.map(|t| Instant::now() + t),
        };
        self.inner.insert(key.to_owned(), entry).await;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<bool, CacheError> {
        self.compute(key, |current| (Op::Remove, Ok(current.is_some())))
            .await
    }

    async fn incr(&self, key: &str, by: i64, ttl: Option<Duration>) -> Result<i64, CacheError> {
        self.compute(key, |current| match current {
            None => {
                let entry = Entry {
                    value: Value::Int(by),
                    expires_at: ttl.map(|t| Instant::now() + t),
                };
                (Op::Put(entry), Ok(by))
            }
            Some(Entry {
                value: Value::Int(n),
                expires_at,
            }) => {
                let next = n.saturating_add(by);
                (
                    Op::Put(Entry {
                        value: Value::Int(next),
                        expires_at,
                    }),
                    Ok(next),
                )
            }
            Some(_) => (Op::Nop, Err(CacheError::WrongType(key.to_owned()))),
        })
        .await
    }

    async fn rate_limit(&self, key: &str, limit: RateLimit) -> Result<RateDecision, CacheError> {
        let now = self.epoch.elapsed().as_secs_f64() * 1_000_000.0;
        self.compute(key, |current| {
            let tat = match current {
                None => None,
                Some(Entry {
                    value: Value::Tat(t),
                    ..
                }) => Some(t),
                Some(_) => return (Op::Nop, Err(CacheError::WrongType(key.to_owned()))),
            };
            match gcra::decide(tat, now, limit) {
                Ok((Some(new_tat), decision)) => {
                    // The entry is useless once the bucket is full again.
                    let expires_at =
                        Instant::now() + Duration::from_micros((new_tat - now).max(0.0) as u64);
                    (
                        Op::Put(Entry {
                            value: Value::Tat(new_tat),
                            expires_at: Some(expires_at),
                        }),
                        Ok(decision),
                    )
                }
                Ok((None, decision)) => (Op::Nop, Ok(decision)),
                Err(e) => (Op::Nop, Err(e)),
            }
        })
        .await
    }

    async fn set_add(&self, key: &str, member: &str, ttl: Duration) -> Result<bool, CacheError> {
        self.compute(key, |current| {
            let now = Instant::now();
            let mut set = match current {
                None => BTreeMap::new(),
                Some(Entry {
                    value: Value::Set(s),
                    ..
                }) => (*s).clone(),
                Some(_) => return (Op::Nop, Err(CacheError::WrongType(key.to_owned()))),
            };
            let was_live = set.get(member).is_some_and(|at| *at > now);
            set.insert(member.to_owned(), now + ttl);
            (
                Op::Put(Entry {
                    value: Value::Set(Arc::new(set)),
                    expires_at: None,
                }),
                Ok(!was_live),
            )
        })
        .await
    }

    async fn set_remove(&self, key: &str, member: &str) -> Result<bool, CacheError> {
        self.compute(key, |current| match current {
            None => (Op::Nop, Ok(false)),
            Some(Entry {
                value: Value::Set(s),
                ..
            }) => {
                let now = Instant::now();
                let mut set = (*s).clone();
                let was_live = set.remove(member).is_some_and(|at| at > now);
                let op = if set.is_empty() {
                    Op::Remove
                } else {
                    Op::Put(Entry {
                        value: Value::Set(Arc::new(set)),
                        expires_at: None,
                    })
                };
                (op, Ok(was_live))
            }
            Some(_) => (Op::Nop, Err(CacheError::WrongType(key.to_owned()))),
        })
        .await
    }

    async fn set_members(&self, key: &str) -> Result<Vec<String>, CacheError> {
        match self.inner.get(key).await {
            None => Ok(Vec::new()),
            Some(Entry {
                value: Value::Set(s),
                ..
            }) => Ok(live_members(&s, Instant::now())),
            Some(_) => Err(CacheError::WrongType(key.to_owned())),
        }
    }

    async fn set_take_expired(&self, key: &str) -> Result<Vec<String>, CacheError> {
        self.compute(key, |current| match current {
            None => (Op::Nop, Ok(Vec::new())),
            Some(Entry {
                value: Value::Set(s),
                ..
            }) => {
                let now = Instant::now();
                let (live, expired): (BTreeMap<_, _>, BTreeMap<_, _>) = s
                    .iter()
                    .map(|(m, at)| (m.clone(), *at))
                    .partition(|(_, at)| *at > now);
                if expired.is_empty() {
                    return (Op::Nop, Ok(Vec::new()));
                }
                let op = if live.is_empty() {
                    Op::Remove
                } else {
                    Op::Put(Entry {
                        value: Value::Set(Arc::new(live)),
                        expires_at: None,
                    })
                };
                (op, Ok(expired.into_keys().collect()))
            }
            Some(_) => (Op::Nop, Err(CacheError::WrongType(key.to_owned()))),
        })
        .await
    }

    fn kind(&self) -> &'static str {
        "embedded"
    }

    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }
}
