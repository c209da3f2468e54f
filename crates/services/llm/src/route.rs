//! Which deployment serves a call: aliases resolved from the settings,
//! deployments ordered by priority then weighted shuffle, each behind a
//! circuit breaker.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rand::Rng;

use crate::config::{ProviderKind, Settings};

/// A deployment as the proxy calls it.
#[derive(Debug)]
pub struct Target {
    /// `provider/model`, as usage records name it.
    pub name: String,
    pub kind: ProviderKind,
    pub base_url: String,
    pub model: String,
    pub api_key: Option<daarion_kernel::Secret>,
    pub stream_usage: bool,
    weight: u32,
    priority: u32,
    pub breaker: Breaker,
}

/// A model alias and where it is served.
#[derive(Debug)]
pub struct Alias {
    pub name: String,
    pub model: crate::config::Model,
    pub targets: Vec<Arc<Target>>,
}

/// Every enabled alias.
#[derive(Debug, Default)]
pub struct Catalog {
    pub aliases: BTreeMap<String, Arc<Alias>>,
}

impl Catalog {
    /// Resolves the settings (keys read from the environment now).
    pub fn new(settings: &Settings) -> Result<Self, String> {
        daarion_service::ServiceSettings::validate(settings)?;
        let mut aliases = BTreeMap::new();
        for (name, model) in settings.models.iter().filter(|(_, m)| m.enabled) {
            let mut targets = Vec::new();
            for d in &model.deployments {
                let provider = &settings.providers[&d.provider];
                let env = d.api_key_env.as_ref().or(provider.api_key_env.as_ref());
                let api_key = match env {
                    Some(var) => Some(daarion_kernel::Secret::new(std::env::var(var).map_err(
                        |_| format!("llm.models.{name}: environment variable {var} is not set"),
                    )?)),
                    None => provider.api_key.clone(),
                };
                targets.push(Arc::new(Target {
                    name: format!("{}/{}", d.provider, d.model),
                    kind: provider.kind,
                    base_url: provider.base_url.trim_end_matches('/').to_owned(),
                    model: d.model.clone(),
                    api_key,
                    stream_usage: provider.stream_usage,
                    weight: d.weight,
                    priority: d.priority,
                    breaker: Breaker::new(
                        settings.breaker_failures,
                        Duration::from_millis(settings.breaker_cooldown_ms),
                    ),
                }));
            }
            aliases.insert(
                name.clone(),
                Arc::new(Alias {
                    name: name.clone(),
                    model: model.clone(),
                    targets,
                }),
            );
        }
        Ok(Self { aliases })
    }
}

impl Alias {
    /// The order to try deployments in: by priority; within a priority a
    /// weighted random order (Efraimidis–Spirakis); deployments whose
    /// circuit is open go last, so they are tried only when all else failed.
    pub fn plan(&self) -> Vec<Arc<Target>> {
        let mut rng = rand::rng();
        let mut keyed: Vec<(bool, u32, f64, Arc<Target>)> = self
            .targets
            .iter()
            .map(|t| {
                let u: f64 = rng.random_range(f64::EPSILON..1.0);
                let key = u.powf(1.0 / f64::from(t.weight));
                (!t.breaker.available(), t.priority, -key, t.clone())
            })
            .collect();
        keyed.sort_by(|a, b| {
            (a.0, a.1)
                .cmp(&(b.0, b.1))
                .then(a.2.partial_cmp(&b.2).unwrap_or(std::cmp::Ordering::Equal))
        });
        keyed.into_iter().map(|(_, _, _, t)| t).collect()
    }
}

/// Closed → (failures in a row) → open → (cooldown) → half-open: one trial
/// request; its success closes the circuit, its failure opens it again.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<BreakerState>,
}

#[derive(Debug, Clone, Copy)]
struct BreakerState {
    failures: u32,
    open_until: Option<Instant>,
    trial_in_flight: bool,
}

impl Breaker {
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(BreakerState {
                failures: 0,
                open_until: None,
                trial_in_flight: false,
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BreakerState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a request may go now (not counting it).
    pub fn available(&self) -> bool {
        let s = self.lock();
        match s.open_until {
            None => true,
            Some(until) => Instant::now() >= until && !s.trial_in_flight,
        }
    }

    /// Takes the right to send one request: always when closed; once per
    /// cooldown (the trial) when open.
    pub fn acquire(&self) -> bool {
        let mut s = self.lock();
        match s.open_until {
            None => true,
            Some(until) if Instant::now() >= until && !s.trial_in_flight => {
                s.trial_in_flight = true;
                true
            }
            Some(_) => false,
        }
    }

    pub fn success(&self) {
        let mut s = self.lock();
        s.failures = 0;
        s.open_until = None;
        s.trial_in_flight = false;
    }

    pub fn failure(&self) {
        let mut s = self.lock();
        s.failures = s.failures.saturating_add(1);
        if s.trial_in_flight || s.failures >= self.threshold {
            if s.open_until.is_none() || s.trial_in_flight {
                tracing::warn!(failures = s.failures, "circuit opened");
            }
            s.open_until = Some(Instant::now() + self.cooldown);
            s.trial_in_flight = false;
        }
    }

    /// A trial that ended without a verdict (the client left) gives its
    /// turn back.
    pub fn abandon(&self) {
        self.lock().trial_in_flight = false;
    }

    pub fn is_open(&self) -> bool {
        self.lock().open_until.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breaker_opens_after_failures_and_lets_one_trial_through() {
        let b = Breaker::new(2, Duration::from_millis(30));
        assert!(b.acquire());
        b.failure();
        assert!(b.acquire(), "one failure does not open");
        b.failure();
        assert!(!b.acquire(), "open");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.acquire(), "the trial");
        assert!(!b.acquire(), "only one trial at a time");
        b.failure();
        assert!(!b.acquire(), "a failed trial reopens");
        std::thread::sleep(Duration::from_millis(40));
        assert!(b.acquire());
        b.success();
        assert!(b.acquire() && b.acquire(), "closed again");
        assert!(!b.is_open());
    }

    #[test]
    fn plans_follow_priority_and_weight() {
        let settings: Settings = serde_json::from_value(serde_json::json!({
            "providers": {"a": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1"}},
            "models": {"m": {"deployments": [
                {"provider": "a", "model": "fallback", "priority": 1},
                {"provider": "a", "model": "heavy", "weight": 9},
                {"provider": "a", "model": "light", "weight": 1},
            ]}}
        }))
        .unwrap_or_else(|e| unreachable!("{e}"));
        let catalog = Catalog::new(&settings).unwrap_or_else(|e| unreachable!("{e}"));
        let alias = &catalog.aliases["m"];
        let mut heavy_first = 0;
        for _ in 0..1000 {
            let plan = alias.plan();
            assert_eq!(plan[2].model, "fallback");
            heavy_first += usize::from(plan[0].model == "heavy");
        }
        assert!((850..=950).contains(&heavy_first), "{heavy_first}");
        // An open circuit goes last.
        for _ in 0..5 {
            alias.targets[1].breaker.failure();
        }
        assert_eq!(alias.plan()[2].model, "heavy");
    }
}
