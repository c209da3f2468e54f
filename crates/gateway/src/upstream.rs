//! Upstream groups at run time: which addresses are usable, and which one a
//! request goes to.
//!
//! An address is usable when its active health check says so (optimistic
//! until the first check) and it is not passively ejected (too many errors in
//! a row). When no address of a group is usable, requests go to any of
//! them (Envoy's "panic" routing): a lone replica that restarted in half a
//! second serves again at once rather than after its 10 s ejection; when a
//! dependency every replica shares is down (NATS, say), each one's health
//! check fails, yet most requests need none of it and are still served; one
//! truly down answers 502 as fast as 503 would have. Balancing: round-robin, least in-flight requests, or rendezvous
//! hashing on a header or cookie, so the same key keeps reaching the same
//! address while it is usable and only its keys move when it is not.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use crate::config::{Balance, UpstreamGroup};

pub struct Endpoint {
    pub address: String,
    /// `gateway_upstream_requests_total` of this address, by outcome
    /// (response, error, timeout): registered once, not per request.
    pub outcomes: [metrics::Counter; 3],
    in_flight: AtomicU64,
    failures: AtomicU32,
    /// Milliseconds since the group's epoch until which the address is ejected.
    ejected_until: AtomicU64,
    healthy: AtomicBool,
    check_streak: AtomicU32,
}

impl Endpoint {
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }
}

pub struct Group {
    pub name: String,
    pub config: UpstreamGroup,
    pub endpoints: Vec<Arc<Endpoint>>,
    next: AtomicUsize,
    epoch: Instant,
    /// Retry budget in thousandths of a retry: each request earns 200 (retries
    /// stay under a fifth of traffic), capped at 10 retries' worth.
    retry_budget: AtomicU64,
}

/// Marks a request in flight to an endpoint until dropped.
pub struct InFlight(Arc<Endpoint>);

impl InFlight {
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// FNV-1a: stable across processes and builds, so gateway replicas agree.
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for byte in *part {
            hash ^= u64::from(*byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

const RETRY_BUDGET_CAP: u64 = 10_000;

impl Group {
    /// Credits the retry budget for one request.
    pub fn earn_retry(&self) {
        let _ = self
            .retry_budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                Some((b + 200).min(RETRY_BUDGET_CAP))
            });
    }

    /// Spends one retry from the budget, if there is one.
    pub fn spend_retry(&self) -> bool {
        self.retry_budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                b.checked_sub(1000)
            })
            .is_ok()
    }

    pub fn new(name: &str, config: UpstreamGroup) -> Self {
        let endpoints = config
            .addresses
            .iter()
            .map(|address| {
                let outcome = |outcome: &'static str| {
                    metrics::counter!("gateway_upstream_requests_total", "upstream" => name.to_owned(),
                        "address" => address.clone(), "outcome" => outcome)
                };
                Arc::new(Endpoint {
                    outcomes: [outcome("response"), outcome("error"), outcome("timeout")],
                    address: address.clone(),
                    in_flight: AtomicU64::new(0),
                    failures: AtomicU32::new(0),
                    ejected_until: AtomicU64::new(0),
                    healthy: AtomicBool::new(true),
                    check_streak: AtomicU32::new(0),
                })
            })
            .collect();
        Self {
            name: name.to_owned(),
            config,
            endpoints,
            next: AtomicUsize::new(0),
            epoch: Instant::now(),
            retry_budget: AtomicU64::new(RETRY_BUDGET_CAP),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn usable(&self, endpoint: &Endpoint) -> bool {
        endpoint.is_healthy() && endpoint.ejected_until.load(Ordering::Relaxed) <= self.now_ms()
    }

    /// Picks an address for a request with sticky `key` (for hash
    /// balancing), skipping addresses already tried: a usable one, or any
    /// when none is. `None`: every one was tried.
    pub fn pick(&self, key: Option<&str>, tried: &[String]) -> Option<InFlight> {
        let untried = |e: &&Arc<Endpoint>| !tried.contains(&e.address);
        let mut candidates: Vec<&Arc<Endpoint>> = self
            .endpoints
            .iter()
            .filter(|e| self.usable(e))
            .filter(untried)
            .collect();
        // Counted only when nothing usable is left untried: the usual
        // request scans the group once.
        if candidates.is_empty() && self.healthy_count() == 0 {
            candidates = self.endpoints.iter().filter(untried).collect();
        }
        if candidates.is_empty() {
            return None;
        }
        let chosen = match (&self.config.balance, key) {
            (Balance::Hash(_), Some(key)) => candidates
                .iter()
                .max_by_key(|e| fnv1a(&[key.as_bytes(), e.address.as_bytes()]))
                .copied(),
            (Balance::LeastRequests, _) => {
                // Start the scan at a rotating offset so ties spread out.
                let offset = self.next.fetch_add(1, Ordering::Relaxed);
                (0..candidates.len())
                    .map(|i| candidates[(offset + i) % candidates.len()])
                    .min_by_key(|e| e.in_flight())
            }
            _ => {
                let n = self.next.fetch_add(1, Ordering::Relaxed);
                Some(candidates[n % candidates.len()])
            }
        }?;
        chosen.in_flight.fetch_add(1, Ordering::Relaxed);
        Some(InFlight(chosen.clone()))
    }

    /// Records the outcome of a request to `endpoint` (passive health).
    pub fn record(&self, endpoint: &Endpoint, ok: bool) {
        if ok {
            endpoint.failures.store(0, Ordering::Relaxed);
            return;
        }
        let failures = endpoint.failures.fetch_add(1, Ordering::Relaxed) + 1;
        let passive = self.config.passive;
        if passive.failures > 0 && failures >= passive.failures {
            endpoint.failures.store(0, Ordering::Relaxed);
            endpoint.ejected_until.store(
                self.now_ms().saturating_add(passive.eject_ms),
                Ordering::Relaxed,
            );
            metrics::counter!("gateway_upstream_ejections_total", "upstream" => self.name.clone())
                .increment(1);
            tracing::warn!(upstream = %self.name, address = %endpoint.address, "address ejected after repeated errors");
        }
    }

    /// Records an active health check result; flips the address's state after
    /// enough results in a row.
    pub fn record_check(&self, endpoint: &Endpoint, ok: bool) {
        let Some(check) = &self.config.health_check else {
            return;
        };
        let healthy = endpoint.is_healthy();
        if ok == healthy {
            endpoint.check_streak.store(0, Ordering::Relaxed);
            return;
        }
        let streak = endpoint.check_streak.fetch_add(1, Ordering::Relaxed) + 1;
        let needed = if ok { check.healthy } else { check.unhealthy };
        if streak >= needed {
            endpoint.check_streak.store(0, Ordering::Relaxed);
            endpoint.healthy.store(ok, Ordering::Relaxed);
            if ok {
                endpoint.ejected_until.store(0, Ordering::Relaxed);
            }
            metrics::gauge!("gateway_upstream_healthy", "upstream" => self.name.clone(), "address" => endpoint.address.clone())
                .set(if ok { 1.0 } else { 0.0 });
            tracing::warn!(upstream = %self.name, address = %endpoint.address, healthy = ok, "upstream health changed");
        }
    }

    pub fn healthy_count(&self) -> usize {
        self.endpoints.iter().filter(|e| self.usable(e)).count()
    }
}

/// Probes every address of `group` until `stop` fires.
pub async fn run_health_checks(
    group: Arc<Group>,
    client: crate::proxy::UpstreamClient,
    stop: tokio_util::sync::CancellationToken,
) {
    let Some(check) = group.config.health_check.clone() else {
        return;
    };
    let interval = Duration::from_millis(check.interval_ms);
    let timeout = Duration::from_millis(check.timeout_ms.max(1));
    loop {
        for endpoint in &group.endpoints {
            let uri = format!("http://{}{}", endpoint.address, check.path);
            let ok = crate::proxy::probe(&client, &uri, timeout).await;
            group.record_check(endpoint, ok);
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HealthCheck, Passive};

    fn group(balance: Balance, n: usize) -> Group {
        Group::new(
            "g",
            UpstreamGroup {
                addresses: (0..n).map(|i| format!("127.0.0.1:{}", 9000 + i)).collect(),
                balance,
                health_check: Some(HealthCheck {
                    healthy: 2,
                    unhealthy: 2,
                    ..HealthCheck::default()
                }),
                passive: Passive {
                    failures: 2,
                    eject_ms: 60_000,
                },
                retries: 1,
                credentials: false,
            },
        )
    }

    #[test]
    fn round_robin_spreads_evenly() {
        let g = group(Balance::RoundRobin, 3);
        let mut counts = std::collections::HashMap::new();
        for _ in 0..300 {
            let pick = g.pick(None, &[]).unwrap();
            *counts.entry(pick.endpoint().address.clone()).or_insert(0) += 1;
        }
        assert_eq!(
            counts.values().copied().collect::<Vec<_>>(),
            vec![100, 100, 100]
        );
    }

    #[test]
    fn least_requests_avoids_busy_addresses() {
        let g = group(Balance::LeastRequests, 2);
        let busy = g.pick(None, &[]).unwrap();
        for _ in 0..10 {
            let pick = g.pick(None, &[]).unwrap();
            assert_ne!(pick.endpoint().address, busy.endpoint().address);
        }
    }

    #[test]
    fn hashing_is_sticky_and_moves_only_the_lost_keys() {
        let g = group(Balance::Hash("header:x-user".into()), 4);
        let before: Vec<String> = (0..200)
            .map(|k| {
                g.pick(Some(&k.to_string()), &[])
                    .unwrap()
                    .endpoint()
                    .address
                    .clone()
            })
            .collect();
        let again: Vec<String> = (0..200)
            .map(|k| {
                g.pick(Some(&k.to_string()), &[])
                    .unwrap()
                    .endpoint()
                    .address
                    .clone()
            })
            .collect();
        assert_eq!(before, again);
        let spread: std::collections::HashSet<_> = before.iter().collect();
        assert_eq!(spread.len(), 4);
        // Take one address out: only its keys move.
        let lost = g.endpoints[0].clone();
        g.record(&lost, false);
        g.record(&lost, false);
        for (k, address) in before.iter().enumerate() {
            let now = g
                .pick(Some(&k.to_string()), &[])
                .unwrap()
                .endpoint()
                .address
                .clone();
            if *address != lost.address {
                assert_eq!(&now, address, "key {k} moved needlessly");
            } else {
                assert_ne!(now, lost.address);
            }
        }
    }

    #[test]
    fn passive_ejection_and_active_checks_take_addresses_out_and_back() {
        let g = group(Balance::RoundRobin, 2);
        let e = g.endpoints[0].clone();
        g.record(&e, false);
        assert_eq!(g.healthy_count(), 2, "one error is not enough");
        g.record(&e, false);
        assert_eq!(g.healthy_count(), 1);
        assert!(
            g.pick(None, &[g.endpoints[1].address.clone()]).is_none(),
            "the ejected one is skipped"
        );

        let f = g.endpoints[1].clone();
        g.record_check(&f, false);
        assert!(f.is_healthy(), "needs two failed checks");
        g.record_check(&f, false);
        assert!(!f.is_healthy());
        // None is usable: any may be tried (it may be back already, or
        // fail only its health check), each once.
        assert_eq!(g.healthy_count(), 0);
        let first = g.pick(None, &[]).unwrap().endpoint().address.clone();
        let second = g.pick(None, std::slice::from_ref(&first)).unwrap();
        assert_ne!(second.endpoint().address, first);
        assert!(
            g.pick(None, &[first, second.endpoint().address.clone()])
                .is_none()
        );
        g.record_check(&f, true);
        g.record_check(&f, true);
        assert!(f.is_healthy());
        assert_eq!(g.pick(None, &[]).unwrap().endpoint().address, f.address);
    }
}
