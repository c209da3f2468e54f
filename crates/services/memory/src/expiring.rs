//! Values kept a while per key: the counts behind search decisions
//! (pgvector's scan-or-graph choice, full text's IDF), which move slowly
//! and are dear to take at every search.

use std::{
    collections::HashMap,
    hash::Hash,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

/// Past this many keys, expired ones are dropped when one is added.
const PRUNE_AT: usize = 100_000;

#[derive(Clone)]
pub struct Expiring<K, V> {
    ttl: Duration,
    values: Arc<Mutex<HashMap<K, (Instant, V)>>>,
}

impl<K: Eq + Hash, V: Copy> Expiring<K, V> {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            values: Arc::default(),
        }
    }

    /// `key`'s value, if it was put less than the time to live ago.
    pub fn get(&self, key: &K) -> Option<V> {
        let values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        values
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, value)| *value)
    }

    pub fn put(&self, key: K, value: V) {
        let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        if values.len() >= PRUNE_AT {
            values.retain(|_, (at, _)| at.elapsed() < self.ttl);
        }
        values.insert(key, (Instant::now(), value));
    }
}
