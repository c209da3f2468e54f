//! Generic cell rate algorithm: a token bucket kept as one number, the
//! theoretical arrival time (TAT) of the next request. Times are
//! microseconds. The Redis script implements the same arithmetic in Lua.

use std::time::Duration;

use crate::{CacheError, RateDecision, RateLimit};

pub(crate) fn validate(limit: RateLimit) -> Result<(f64, f64), CacheError> {
    if !(limit.per_second > 0.0 && limit.per_second.is_finite()) || limit.burst == 0 {
        return Err(CacheError::InvalidLimit);
    }
    let interval = 1_000_000.0 / limit.per_second;
    Ok((interval, interval * f64::from(limit.burst)))
}

/// Given the stored TAT (if any) and now, returns the new TAT to store (if
/// the request is allowed) and the decision.
pub(crate) fn decide(
    tat: Option<f64>,
    now: f64,
    limit: RateLimit,
) -> Result<(Option<f64>, RateDecision), CacheError> {
    let (interval, tolerance) = validate(limit)?;
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat + interval;
    let allowed = new_tat - now <= tolerance;
    let decision = if allowed {
        RateDecision {
            allowed,
            retry_after: Duration::ZERO,
            remaining: ((tolerance - (new_tat - now)) / interval).floor().max(0.0) as u32,
        }
    } else {
        RateDecision {
            allowed,
            retry_after: Duration::from_micros((new_tat - now - tolerance).ceil() as u64),
            remaining: 0,
        }
    };
    Ok((allowed.then_some(new_tat), decision))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_bucket_allows_burst_then_refills_at_rate() {
        let limit = RateLimit {
            per_second: 10.0,
            burst: 3,
        };
        let mut tat = None;
        let mut allowed = 0;
        for _ in 0..5 {
            let (next, d) = decide(tat, 0.0, limit).unwrap();
            if d.allowed {
                allowed += 1;
                tat = next;
            } else {
                assert_eq!(d.retry_after, Duration::from_millis(100));
            }
        }
        assert_eq!(allowed, 3);
        // 100 ms later exactly one token has come back.
        let (_, d) = decide(tat, 100_000.0, limit).unwrap();
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
    }

    #[test]
    fn nonsense_limits_are_rejected() {
        assert!(
            decide(
                None,
                0.0,
                RateLimit {
                    per_second: 0.0,
                    burst: 1
                }
            )
            .is_err()
        );
        assert!(
            decide(
                None,
                0.0,
                RateLimit {
                    per_second: 1.0,
                    burst: 0
                }
            )
            .is_err()
        );
    }
}
