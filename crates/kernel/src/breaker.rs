//! A circuit breaker for a dependency that stopped answering: after a
//! failure, callers skip it for a while and fail (or defer their work) at
//! once, instead of each waiting for its timeout; the first call after
//! that tries it again, and one that gets through closes it.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

/// Cheap to clone: clones share their state.
#[derive(Debug, Clone)]
pub struct Breaker {
    hold: Duration,
    open_until: Arc<Mutex<Option<Instant>>>,
}

impl Breaker {
    /// A breaker that stays open `hold` after each failure.
    pub fn new(hold: Duration) -> Self {
        Self {
            hold,
            open_until: Arc::default(),
        }
    }

    /// Whether calls should skip the dependency now.
    pub fn is_open(&self) -> bool {
        self.open_until
            .lock()
            .is_ok_and(|until| until.is_some_and(|until| Instant::now() < until))
    }

    /// Records whether a call got through: a failure opens the breaker for
    /// `hold`, a success closes it.
    pub fn record(&self, answered: bool) {
        if let Ok(mut until) = self.open_until.lock() {
            *until = (!answered).then(|| Instant::now() + self.hold);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_opens_it_for_a_while_and_a_success_closes_it() {
        let breaker = Breaker::new(Duration::from_millis(50));
        assert!(!breaker.is_open());
        breaker.record(false);
        assert!(breaker.is_open());
        assert!(breaker.clone().is_open(), "clones share their state");
        std::thread::sleep(Duration::from_millis(60));
        assert!(!breaker.is_open(), "the next call tries again");
        breaker.record(false);
        assert!(breaker.is_open());
        breaker.record(true);
        assert!(!breaker.is_open());
    }
}
