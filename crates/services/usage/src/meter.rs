//! Quotas and budgets, checked before a metered call and reconciled after
//! it with what it really consumed.
//!
//! Per-minute limits (requests, tokens) are fixed one-minute windows in the
//! cache (Redis when configured, so every replica counts together); a
//! request counts when admitted, tokens when the call settles. Money is in
//! the SQL ledger (`usage_budget`): while a budget is far from its limit,
//! calls are held against this process's lease on it and settled in
//! memory, written back every second (`lease`); near the limit, a call
//! reserves its estimated cost by one conditional update and settles with
//! the actual cost. Crossing 80 % and 100 % of a budget raises `ops.alert`
//! once per period.

use std::{sync::Arc, time::Duration};

use chrono::{Datelike, TimeZone, Utc};
use daarion_access::{Principal, PrincipalKind, Subject};
use daarion_bus::{Bus, Envelope};
use daarion_cache::Cache;
use daarion_control::{
    ControlClient,
    domain::{DocKind, Plan, Quota},
};
use daarion_store::Db;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    SERVICE,
    lease::{Leases, Spent},
    store,
};

/// Raised once per period when a budget crosses 80 % and 100 %; stored in
/// the audit log (`AUDIT` stream).
pub const ALERT_SUBJECT: &str = "ops.alert";

/// Limits of one plan (the original's agent tiers, `ORIGINAL_SYSTEM.md` §9).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PlanLimits {
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u64>,
    pub runs_per_day: Option<u32>,
    pub distinct_users_per_day: Option<u32>,
    pub concurrent_runs: Option<u32>,
    pub budget_cents_per_month: Option<u64>,
}

/// `[usage]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// ISO 4217 code prices and budgets are in.
    pub currency: String,
    pub free: PlanLimits,
    pub pro: PlanLimits,
    pub enterprise: PlanLimits,
    /// The plan of people without a quota document (default `free`, so a
    /// new account never spends without limit); none = unlimited.
    pub default_user_plan: Option<Plan>,
    /// The plan of agents without a quota document (the original always
    /// applied `free`); none = unlimited.
    pub default_agent_plan: Option<Plan>,
    /// Largest number of buckets one summary returns.
    pub max_summary_buckets: usize,
    /// How long a call's budget reservation lives if the call never
    /// settles (longer than any call: the LLM proxy's total timeout is
    /// 10 minutes by default).
    pub reservation_ttl_secs: u64,
}

impl Default for Settings {
    fn default() -> Self {
        let tier = |tpm, runs, users, concurrent, budget| PlanLimits {
            tokens_per_minute: Some(tpm),
            runs_per_day: Some(runs),
            distinct_users_per_day: Some(users),
            concurrent_runs: Some(concurrent),
            budget_cents_per_month: budget,
            ..PlanLimits::default()
        };
        Self {
            currency: "USD".into(),
            free: tier(500, 50, 20, 2, Some(500)),
            pro: tier(2000, 500, 200, 10, None),
            enterprise: tier(10_000, 5000, 1000, 50, None),
            default_user_plan: Some(Plan::Free),
            default_agent_plan: Some(Plan::Free),
            max_summary_buckets: 10_000,
            reservation_ttl_secs: 900,
        }
    }
}

impl daarion_service::ServiceSettings for Settings {
    fn validate(&self) -> Result<(), String> {
        let code =
            self.currency.len() == 3 && self.currency.bytes().all(|b| b.is_ascii_uppercase());
        if !code {
            return Err(format!(
                "usage.currency must be an ISO 4217 code (USD, EUR, UAH), got {:?}",
                self.currency
            ));
        }
        if self.max_summary_buckets == 0 {
            return Err("usage.max_summary_buckets must be positive".into());
        }
        if self.reservation_ttl_secs < 60 {
            return Err("usage.reservation_ttl_secs must be at least 60".into());
        }
        Ok(())
    }
}

impl Settings {
    pub fn plan(&self, plan: Plan) -> PlanLimits {
        match plan {
            Plan::Free => self.free,
            Plan::Pro => self.pro,
            Plan::Enterprise => self.enterprise,
        }
    }
}

/// Who a call is charged to. Ids are bare (`u1`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subjects {
    pub user: Option<String>,
    pub agent: Option<String>,
    pub dao: Option<String>,
}

impl Subjects {
    /// The person or agent acting (an agent's owner pays with it); a
    /// service acts for no one.
    pub fn of(principal: &Principal) -> Self {
        let mut s = Self::default();
        match principal.kind {
            PrincipalKind::User => s.user = Some(principal.id.clone()),
            PrincipalKind::Agent => {
                s.agent = Some(principal.id.clone());
                s.user = principal.owner.clone();
            }
            PrincipalKind::Service => {}
        }
        s
    }

    /// The quota subjects charged.
    fn quota_keys(&self) -> Vec<Subject> {
        [
            self.user.clone().map(Subject::User),
            self.agent.clone().map(Subject::Agent),
            self.dao.clone().map(Subject::Dao),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// Per-minute limits on something other than a quota subject: an API key,
/// a model alias.
#[derive(Debug, Clone)]
pub struct ExtraLimit {
    /// How the limit is named in a refusal: `API key key_…`, `model gpt-4o`.
    pub name: String,
    /// Cache key of its windows.
    pub key: String,
    pub requests_per_minute: Option<u32>,
    pub tokens_per_minute: Option<u64>,
}

/// Which kind of limit refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitKind {
    RequestsPerMinute,
    TokensPerMinute,
    /// The monthly money budget.
    Budget,
}

/// A limit that refused a call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Exceeded {
    pub limit: LimitKind,
    /// Whose limit: `user:u1`, `API key key_…`, `model gpt-4o`.
    pub subject: String,
    pub retry_after: Duration,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum MeterError {
    #[error(transparent)]
    Exceeded(#[from] Exceeded),
    #[error("usage store: {0}")]
    Store(#[from] daarion_store::StoreError),
    #[error("quota lookup: {0}")]
    Control(#[from] daarion_control::domain::ControlError),
    #[error("the quota of {0} is unreadable: {1}")]
    Unreadable(String, String),
}

/// The limits in force for one subject.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Effective {
    requests_per_minute: Option<u32>,
    tokens_per_minute: Option<u64>,
    budget_cents_per_month: Option<u64>,
    runs: RunLimits,
}

/// What an agent's plan (or its own quota) allows of runs; `None`: no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunLimits {
    pub runs_per_day: Option<u32>,
    pub distinct_users_per_day: Option<u32>,
    pub concurrent_runs: Option<u32>,
}

/// Checks and records consumption against quotas and budgets.
#[derive(Clone)]
pub struct Meter {
    db: Db,
    cache: Arc<dyn Cache>,
    bus: Arc<dyn Bus>,
    control: ControlClient,
    settings: Arc<Settings>,
    leases: Leases,
}

/// How often spending held in memory is written to the ledger.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// What an admitted call holds until it settles.
#[must_use = "an admission must be settled, or its reservation stays taken"]
#[derive(Debug, Default)]
pub struct Admission {
    token_windows: Vec<String>,
    /// Tokens held in each of `token_windows` until the call settles.
    reserved_tokens: i64,
    budgets: Vec<Reservation>,
}

#[derive(Debug)]
struct Reservation {
    hold: store::Hold,
    budget: i64,
    /// Held against this process's lease rather than in the ledger.
    leased: bool,
}

const WINDOW_TTL: Duration = Duration::from_secs(120);

fn minute_window() -> (i64, Duration) {
    let now = Utc::now().timestamp_millis();
    let minute = now.div_euclid(60_000);
    let left = 60_000 - now.rem_euclid(60_000);
    (
        minute,
        Duration::from_millis(u64::try_from(left).unwrap_or(60_000)),
    )
}

/// The budget period (calendar month, UTC) and the time until the next.
fn month() -> (String, Duration) {
    let now = Utc::now();
    let (y, m) = if now.month() == 12 {
        (now.year() + 1, 1)
    } else {
        (now.year(), now.month() + 1)
    };
    let next = Utc
        .with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .unwrap_or(now);
    (
        now.format("%Y-%m").to_string(),
        (next - now).to_std().unwrap_or_default(),
    )
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{} s", s.max(1)),
        120..=7199 => format!("{} min", s / 60),
        _ => format!("{} h", s / 3600),
    }
}

impl Meter {
    pub fn new(
        db: Db,
        cache: Arc<dyn Cache>,
        bus: Arc<dyn Bus>,
        control: ControlClient,
        settings: Settings,
    ) -> Self {
        let leases = Leases::new(
            db.clone(),
            Duration::from_secs(settings.reservation_ttl_secs),
        );
        Self {
            db,
            cache,
            bus,
            control,
            settings: Arc::new(settings),
            leases,
        }
    }

    /// Writes the spending held in memory to the ledger every second, and
    /// everything, leases given back, at shutdown.
    pub async fn write_back(self, shutdown: daarion_kernel::shutdown::CancellationToken) {
        loop {
            let last = !daarion_kernel::shutdown::pause(FLUSH_EVERY, &shutdown).await;
            self.flush(last).await;
            if last {
                return;
            }
        }
    }

    /// Writes what calls spent from leases to the ledger (and gives back
    /// the leases unused for a while, or all of them), raising the alerts
    /// the new totals cross.
    pub async fn flush(&self, all: bool) {
        for spent in self.leases.flush(all).await {
            self.alert_on_crossing(&spent).await;
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    async fn effective(&self, subject: &Subject) -> Result<Effective, MeterError> {
        let document = self
            .control
            .get(DocKind::Quota, &subject.to_string())
            .await?;
        // A document that does not read as a quota refuses the call rather
        // than lifting every limit (the control plane validates what it
        // stores, so this is damage, not a user's mistake).
        let quota: Option<Quota> = document
            .map(|d| serde_json::from_value(d.value.clone()))
            .transpose()
            .map_err(|e| MeterError::Unreadable(subject.to_string(), e.to_string()))?;
        let default_plan = match subject {
            Subject::Agent(_) => self.settings.default_agent_plan,
            Subject::User(_) => self.settings.default_user_plan,
            Subject::Dao(_) => None,
        };
        let plan = quota
            .as_ref()
            .and_then(|q| q.plan)
            .or(if quota.is_none() { default_plan } else { None })
            .map(|p| self.settings.plan(p))
            .unwrap_or_default();
        let q = quota.as_ref();
        Ok(Effective {
            requests_per_minute: q
                .and_then(|q| q.requests_per_minute)
                .or(plan.requests_per_minute),
            tokens_per_minute: q
                .and_then(|q| q.tokens_per_minute)
                .or(plan.tokens_per_minute),
            budget_cents_per_month: q
                .and_then(|q| q.budget_cents_per_month)
                .or(plan.budget_cents_per_month),
            runs: RunLimits {
                runs_per_day: q.and_then(|q| q.runs_per_day).or(plan.runs_per_day),
                distinct_users_per_day: q
                    .and_then(|q| q.distinct_users_per_day)
                    .or(plan.distinct_users_per_day),
                concurrent_runs: q.and_then(|q| q.concurrent_runs).or(plan.concurrent_runs),
            },
        })
    }

    /// The runs `agent` may have: its quota's own limits, else its plan's
    /// (the agent runtime counts them).
    pub async fn run_limits(&self, agent: &str) -> Result<RunLimits, MeterError> {
        Ok(self
            .effective(&Subject::Agent(agent.to_owned()))
            .await?
            .runs)
    }

    /// Admits a call charged to `subjects` (and limited by `extra`) whose
    /// cost is estimated at `estimate_micros` and `estimate_tokens`, or says
    /// which limit refuses it and when it resets. Both estimates are held
    /// at once (money in the ledger, tokens in the minute's windows), so
    /// calls in parallel see each other: a window admits calls while it is
    /// under its limit, i.e. at most the limit plus one call. Checks run in
    /// a fixed order; on a refusal, what earlier checks took is given back.
    pub async fn admit(
        &self,
        subjects: &Subjects,
        extra: &[ExtraLimit],
        estimate_micros: i64,
        estimate_tokens: u64,
    ) -> Result<Admission, MeterError> {
        let mut windows = extra.to_vec();
        let mut budgets = Vec::new();
        for subject in subjects.quota_keys() {
            let limits = self.effective(&subject).await?;
            let subject = subject.to_string();
            windows.push(ExtraLimit {
                name: subject.clone(),
                key: format!("q:{subject}"),
                requests_per_minute: limits.requests_per_minute,
                tokens_per_minute: limits.tokens_per_minute,
            });
            if let Some(cents) = limits.budget_cents_per_month {
                budgets.push((
                    subject,
                    i64::try_from(cents).unwrap_or(i64::MAX / 10_000) * 10_000,
                ));
            }
        }
        let mut admission = Admission {
            reserved_tokens: i64::try_from(estimate_tokens).unwrap_or(i64::MAX),
            ..Admission::default()
        };
        let mut counted = Vec::new();
        let (minute, minute_left) = minute_window();
        for ExtraLimit {
            name,
            key,
            requests_per_minute,
            tokens_per_minute,
        } in windows
        {
            if let Some(limit) = tokens_per_minute {
                let key = format!("usage:tpm:{key}:{minute}");
                let reserve = admission.reserved_tokens;
                let used = self.window_add(&key, reserve).await - reserve;
                if used >= i64::try_from(limit).unwrap_or(i64::MAX) {
                    self.window_add(&key, -reserve).await;
                    let e = Exceeded {
                        limit: LimitKind::TokensPerMinute,
                        message: format!(
                            "{name} used {used} of its {limit} tokens per minute; resets in {}",
                            human(minute_left)
                        ),
                        subject: name,
                        retry_after: minute_left,
                    };
                    return self.refuse(counted, admission, e).await;
                }
                admission.token_windows.push(key);
            }
            if let Some(limit) = requests_per_minute {
                let key = format!("usage:rpm:{key}:{minute}");
                let used = self.window_add(&key, 1).await;
                counted.push(key);
                if used > i64::from(limit) {
                    let e = Exceeded {
                        limit: LimitKind::RequestsPerMinute,
                        message: format!(
                            "{name} made {limit} requests this minute, its limit; resets in {}",
                            human(minute_left)
                        ),
                        subject: name,
                        retry_after: minute_left,
                    };
                    return self.refuse(counted, admission, e).await;
                }
            }
        }
        let (period, month_left) = month();
        for (subject, budget) in budgets {
            let micros = estimate_micros.max(0);
            let leased = match self.leases.hold(&subject, &period, budget, micros).await {
                Ok((spent, leased)) => {
                    if let Some(spent) = spent {
                        self.alert_on_crossing(&spent).await;
                    }
                    leased
                }
                Err(error) => {
                    self.release(admission).await;
                    return Err(error.into());
                }
            };
            let hold = store::Hold {
                id: uuid::Uuid::new_v4().to_string(),
                subject,
                period: period.clone(),
                micros,
            };
            let reserved = leased
                || match store::reserve(&self.db, &hold, budget, self.leases.expires_at()).await {
                    Ok(reserved) => reserved,
                    Err(error) => {
                        self.release(admission).await;
                        return Err(error.into());
                    }
                };
            if !reserved {
                let subject = hold.subject;
                let e = Exceeded {
                    limit: LimitKind::Budget,
                    message: format!(
                        "{subject} has spent its budget of {:.2} {} for {period}; resets in {}",
                        budget as f64 / 1e6,
                        self.settings.currency,
                        human(month_left)
                    ),
                    subject,
                    retry_after: month_left,
                };
                return self.refuse(counted, admission, e).await;
            }
            admission.budgets.push(Reservation {
                hold,
                budget,
                leased,
            });
        }
        Ok(admission)
    }

    /// Gives back what a refused admission took so far.
    async fn refuse(
        &self,
        counted: Vec<String>,
        admission: Admission,
        exceeded: Exceeded,
    ) -> Result<Admission, MeterError> {
        for key in counted {
            self.window_add(&key, -1).await;
        }
        self.release(admission).await;
        Err(MeterError::Exceeded(exceeded))
    }

    /// Records what an admitted call consumed: tokens into the per-minute
    /// windows, money into the ledger (each replacing its reservation).
    pub async fn settle(&self, admission: Admission, tokens: u64, cost_micros: i64) {
        let tokens = i64::try_from(tokens).unwrap_or(i64::MAX);
        let difference = tokens - admission.reserved_tokens;
        if difference != 0 {
            for key in &admission.token_windows {
                self.window_add(key, difference).await;
            }
        }
        for r in admission.budgets {
            self.end(r, cost_micros).await;
        }
    }

    /// Gives back an admission's reservations (the call never ran).
    pub async fn release(&self, admission: Admission) {
        for key in &admission.token_windows {
            self.window_add(key, -admission.reserved_tokens).await;
        }
        for r in admission.budgets {
            self.end(r, 0).await;
        }
    }

    /// Replaces a call's hold on a budget with what it spent.
    async fn end(&self, r: Reservation, cost_micros: i64) {
        let hold = &r.hold;
        if r.leased {
            self.leases
                .settle(&hold.subject, &hold.period, hold.micros, cost_micros)
                .await;
            return;
        }
        match store::settle(&self.db, hold, cost_micros).await {
            Ok(after) => {
                self.alert_on_crossing(&Spent {
                    subject: hold.subject.clone(),
                    period: hold.period.clone(),
                    budget: r.budget,
                    before: after - cost_micros,
                    after,
                })
                .await
            }
            Err(error) => {
                tracing::error!(%error, subject = %hold.subject, "budget not settled; spend under-counted")
            }
        }
    }

    /// Gives back reservations whose calls never settled (their process
    /// stopped mid-call), so they do not hold a budget until the month ends.
    pub async fn expire_reservations(&self) -> Result<usize, MeterError> {
        let expired = store::expire(&self.db, Utc::now().timestamp_millis()).await?;
        if expired > 0 {
            metrics::counter!("usage_reservations_expired_total").increment(expired as u64);
            tracing::warn!(expired, "budget reservations of unfinished calls expired");
        }
        Ok(expired)
    }

    /// Adds to a window counter; a cache failure admits (logged), like the
    /// per-principal request limit: an outage must not stop every call.
    async fn window_add(&self, key: &str, by: i64) -> i64 {
        match self.cache.incr(key, by, Some(WINDOW_TTL)).await {
            Ok(value) => value,
            Err(error) => {
                tracing::warn!(%error, key, "usage window not counted; call admitted");
                0
            }
        }
    }

    async fn alert_on_crossing(&self, spent: &Spent) {
        let Spent {
            subject,
            period,
            budget,
            before,
            after,
        } = spent;
        for percent in [80_i64, 100] {
            let line = budget.saturating_mul(percent) / 100;
            if *before < line && *after >= line {
                metrics::counter!("usage_budget_alerts_total", "threshold" => percent.to_string())
                    .increment(1);
                let event = Envelope::new(
                    SERVICE,
                    ALERT_SUBJECT,
                    serde_json::json!({
                        "alert": "budget",
                        "subject": subject,
                        "period": period,
                        "threshold_percent": percent,
                        "spent_micros": after,
                        "budget_micros": budget,
                        "currency": self.settings.currency,
                    }),
                )
                .with_actor(subject.clone());
                if let Err(error) = self.bus.publish(&event).await {
                    tracing::error!(%error, %subject, "budget alert not published");
                }
            }
        }
    }

    /// Limits, this minute's use and this month's spend of one subject.
    pub async fn status(&self, subject: &Subject) -> Result<QuotaStatus, MeterError> {
        let limits = self.effective(subject).await?;
        let subject = subject.to_string();
        let subject = subject.as_str();
        let (minute, minute_left) = minute_window();
        let (period, month_left) = month();
        let read = |window: &'static str| {
            let key = format!("usage:{window}:q:{subject}:{minute}");
            async move { self.window_add(&key, 0).await }
        };
        let (spent, reserved) = store::budget_state(&self.db, subject, &period).await?;
        // As if this process's lease were written back and given up.
        let (unflushed, held, leased) = self.leases.local(subject, &period).await;
        let (spent, reserved) = (spent + unflushed, reserved - leased + held);
        Ok(QuotaStatus {
            subject: subject.to_owned(),
            requests_per_minute: limits.requests_per_minute,
            requests_this_minute: read("rpm").await,
            tokens_per_minute: limits.tokens_per_minute,
            tokens_this_minute: read("tpm").await,
            minute_resets_in_secs: minute_left.as_secs().max(1),
            budget_micros_per_month: limits
                .budget_cents_per_month
                .map(|c| i64::try_from(c).unwrap_or(i64::MAX / 10_000) * 10_000),
            period,
            spent_micros: spent,
            reserved_micros: reserved,
            currency: self.settings.currency.clone(),
            month_resets_in_secs: month_left.as_secs(),
        })
    }
}

/// Where a subject stands against its limits.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct QuotaStatus {
    pub subject: String,
    pub requests_per_minute: Option<u32>,
    pub requests_this_minute: i64,
    pub tokens_per_minute: Option<u64>,
    pub tokens_this_minute: i64,
    pub minute_resets_in_secs: u64,
    pub budget_micros_per_month: Option<i64>,
    /// `2026-11`.
    pub period: String,
    pub spent_micros: i64,
    /// Held by calls in flight; with several replicas, also what other
    /// replicas have leased and not yet spent (their spending reaches the
    /// ledger within a second).
    pub reserved_micros: i64,
    pub currency: String,
    pub month_resets_in_secs: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_months_reset_in_the_future() {
        let (_, left) = minute_window();
        assert!(left > Duration::ZERO && left <= Duration::from_secs(60));
        let (period, left) = month();
        assert_eq!(period.len(), 7);
        assert!(left > Duration::ZERO && left <= Duration::from_secs(31 * 24 * 3600));
    }

    #[test]
    fn durations_read_like_a_person_would_say_them() {
        assert_eq!(human(Duration::from_millis(300)), "1 s");
        assert_eq!(human(Duration::from_secs(59)), "59 s");
        assert_eq!(human(Duration::from_secs(600)), "10 min");
        assert_eq!(human(Duration::from_secs(3 * 24 * 3600)), "72 h");
    }
}
