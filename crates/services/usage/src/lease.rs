//! This process's leases on budgets: a reservation in the SQL ledger taken
//! in chunks (an eighth of what is left) that calls are admitted against
//! and settled into in memory, written back in batches by [`Leases::flush`].
//! A call costs no statement while its budget is far from the limit; near
//! it, leases are given up and each call reserves in the ledger itself, so
//! the overrun stays bounded by one call whatever the number of replicas.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant},
};

use daarion_store::{Db, StoreError};

use crate::store::{self, Hold};

/// A lease nobody used for this long is given back.
const IDLE: Duration = Duration::from_secs(30);

/// One subject's budget for one period, as far as this process holds it.
#[derive(Debug)]
struct Account {
    /// The lease's row in `usage_reservations`; `micros` is its size.
    lease: Hold,
    budget: i64,
    /// Estimates of the admitted calls in flight.
    held: i64,
    /// Spent by settled calls, not yet written to the ledger.
    unflushed: i64,
    used_at: Instant,
    /// Given back and out of the map: a call that found it must look again.
    closed: bool,
}

impl Account {
    fn fits(&self, micros: i64) -> bool {
        self.held + self.unflushed + micros <= self.lease.micros
    }
}

/// A change of the spent total written by a flush, for budget alerts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spent {
    pub subject: String,
    pub period: String,
    pub budget: i64,
    pub before: i64,
    pub after: i64,
}

type Key = (String, String);

#[derive(Clone)]
pub struct Leases {
    db: Db,
    ttl_ms: i64,
    accounts: Arc<Mutex<HashMap<Key, Arc<tokio::sync::Mutex<Account>>>>>,
}

impl Leases {
    pub fn new(db: Db, ttl: Duration) -> Self {
        Self {
            db,
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
            accounts: Arc::default(),
        }
    }

    /// When a reservation taken now lapses if never settled.
    pub fn expires_at(&self) -> i64 {
        chrono::Utc::now()
            .timestamp_millis()
            .saturating_add(self.ttl_ms)
    }

    fn account(
        &self,
        subject: &str,
        period: &str,
        budget: i64,
    ) -> Arc<tokio::sync::Mutex<Account>> {
        let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        accounts
            .entry((subject.to_owned(), period.to_owned()))
            .or_insert_with(|| {
                Arc::new(tokio::sync::Mutex::new(Account {
                    lease: Hold {
                        id: format!("lease-{}", uuid::Uuid::new_v4()),
                        subject: subject.to_owned(),
                        period: period.to_owned(),
                        micros: 0,
                    },
                    budget,
                    held: 0,
                    unflushed: 0,
                    used_at: Instant::now(),
                    closed: false,
                }))
            })
            .clone()
    }

    /// The account of `subject` and `period`, if this process has one.
    fn existing(&self, subject: &str, period: &str) -> Option<Arc<tokio::sync::Mutex<Account>>> {
        let accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
        accounts
            .get(&(subject.to_owned(), period.to_owned()))
            .cloned()
    }

    /// Holds `micros` of `subject`'s budget for one call from this
    /// process's lease, growing the lease when it is short. `Ok(false)`:
    /// the budget is too close to its limit to lease, and the lease has
    /// been cut to what its calls in flight hold, so that a per-call
    /// reservation sees the ledger as it is.
    pub async fn hold(
        &self,
        subject: &str,
        period: &str,
        budget: i64,
        micros: i64,
    ) -> Result<(Option<Spent>, bool), StoreError> {
        let mut a = loop {
            let a = self.account(subject, period, budget).lock_owned().await;
            if !a.closed {
                break a;
            }
        };
        a.used_at = Instant::now();
        if a.budget == budget && a.fits(micros) {
            a.held += micros;
            return Ok((None, true));
        }
        // What was spent goes to the ledger first, so the lease is grown
        // from what is really left. A changed budget starts a new lease.
        let size = if a.budget == budget { a.held } else { 0 };
        let spent = self.resize(&mut a, size).await?;
        a.budget = budget;
        if let Some(size) =
            store::extend_lease(&self.db, &a.lease, micros, budget, self.expires_at()).await?
        {
            a.lease.micros = size;
            if a.fits(micros) {
                a.held += micros;
                return Ok((spent, true));
            }
        }
        let held = a.held;
        let spent = merge(spent, self.resize(&mut a, held).await?);
        Ok((spent, false))
    }

    /// Ends a call held by [`hold`](Self::hold): `micros` is no longer
    /// held, `cost` is spent (0: the call never ran).
    pub async fn settle(&self, subject: &str, period: &str, micros: i64, cost: i64) {
        if let Some(account) = self.existing(subject, period) {
            let mut a = account.lock().await;
            a.held -= micros;
            a.unflushed += cost;
        }
    }

    /// Writes what was spent since the last flush, renews the leases, and
    /// gives back the leases that went unused for a while — or all of them
    /// (`all`, at shutdown). Returns the spent totals that moved.
    pub async fn flush(&self, all: bool) -> Vec<Spent> {
        let accounts: Vec<_> = {
            let accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
            accounts
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        };
        let mut moved = Vec::new();
        for (key, account) in accounts {
            let mut a = account.lock().await;
            let idle = a.held == 0 && (all || a.used_at.elapsed() >= IDLE);
            if !idle && a.unflushed == 0 {
                continue;
            }
            let size = if idle {
                0
            } else {
                (a.lease.micros - a.unflushed).max(a.held)
            };
            match self.resize(&mut a, size).await {
                Ok(spent) => moved.extend(spent),
                Err(error) => {
                    tracing::error!(%error, subject = %a.lease.subject, "budget lease not written; will retry");
                    continue;
                }
            }
            if idle {
                a.closed = true;
                let mut accounts = self.accounts.lock().unwrap_or_else(PoisonError::into_inner);
                if accounts
                    .get(&key)
                    .is_some_and(|current| Arc::ptr_eq(current, &account))
                {
                    accounts.remove(&key);
                }
            }
        }
        moved
    }

    /// This process's unflushed spending, calls in flight and lease size
    /// for a subject, so that its status can be read as if all were written.
    pub async fn local(&self, subject: &str, period: &str) -> (i64, i64, i64) {
        match self.existing(subject, period) {
            Some(account) => {
                let a = account.lock().await;
                (a.unflushed, a.held, a.lease.micros)
            }
            None => (0, 0, 0),
        }
    }

    /// Writes the unflushed spending and cuts the lease to `size` (never
    /// grows it: only [`store::extend_lease`] reserves).
    async fn resize(&self, a: &mut Account, size: i64) -> Result<Option<Spent>, StoreError> {
        let size = size.clamp(0, a.lease.micros);
        if a.lease.micros == size && a.unflushed == 0 {
            return Ok(None);
        }
        let (after, alive) =
            store::move_lease(&self.db, &a.lease, size, a.unflushed, self.expires_at()).await?;
        let spent = (a.unflushed != 0).then(|| Spent {
            subject: a.lease.subject.clone(),
            period: a.lease.period.clone(),
            budget: a.budget,
            before: after - a.unflushed,
            after,
        });
        a.unflushed = 0;
        a.lease.micros = if alive { size } else { 0 };
        Ok(spent)
    }
}

fn merge(a: Option<Spent>, b: Option<Spent>) -> Option<Spent> {
    match (a, b) {
        (Some(a), Some(b)) => Some(Spent {
            before: a.before,
            ..b
        }),
        (a, b) => a.or(b),
    }
}
