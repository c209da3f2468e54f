//! Space rules, independent of HTTP and SQL: what a node and its
//! heartbeat are, when a node counts as offline, and how a planet's
//! activity is judged against its own past (the anomaly score).

use daarion_bus::BusError;
use daarion_store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
pub enum SpaceError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    /// A heartbeat without a node's current credential.
    #[error("the node token is missing, unknown or replaced")]
    BadNodeToken,
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
    /// Reading a room from messaging's store.
    #[error(transparent)]
    Messaging(#[from] daarion_messaging::domain::MessagingError),
}

impl From<StoreError> for SpaceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(message) => Self::Conflict(message),
            other => Self::Store(other),
        }
    }
}

impl From<daarion_store::sql::Error> for SpaceError {
    fn from(error: daarion_store::sql::Error) -> Self {
        StoreError::from(error).into()
    }
}

daarion_kernel::named_enum!(
    /// What a node is for, as the original registry had it.
    NodeRole { Production => "production", Development => "development", Backup => "backup", Worker => "worker" }
);
daarion_kernel::named_enum!(
    /// What a node runs.
    NodeKind { Router => "router", Gateway => "gateway", Worker => "worker" }
);
daarion_kernel::named_enum!(
    /// `registered`: never heard from; `offline`: silent past the limit.
    NodeStatus { Registered => "registered", Online => "online", Degraded => "degraded", Maintenance => "maintenance", Offline => "offline" }
);

/// Longest node name and free-text fields (version, hostname).
pub const MAX_TEXT_CHARS: usize = 120;

pub fn text(raw: &str, what: &str, required: bool) -> Result<String, SpaceError> {
    let value = raw.trim();
    if (required && value.is_empty())
        || value.chars().count() > MAX_TEXT_CHARS
        || value.chars().any(char::is_control)
    {
        return Err(SpaceError::Invalid(format!(
            "{what} must be {} to {MAX_TEXT_CHARS} printable characters",
            usize::from(required)
        )));
    }
    Ok(value.to_owned())
}

pub fn slug(raw: &str, what: &str) -> Result<String, SpaceError> {
    if daarion_kernel::names::is_slug(raw) {
        Ok(raw.to_owned())
    } else {
        Err(SpaceError::Invalid(format!(
            "{what}: {}",
            daarion_kernel::names::SLUG_RULE
        )))
    }
}

/// What a node says of itself in a heartbeat.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Metrics {
    /// CPU in use, 0 to 100.
    #[schema(minimum = 0, maximum = 100)]
    pub cpu_percent: Option<f64>,
    /// Memory in use, 0 to 100.
    #[schema(minimum = 0, maximum = 100)]
    pub memory_percent: Option<f64>,
    /// Round trip to its upstream (the city), in milliseconds.
    #[schema(minimum = 0, maximum = 600000)]
    pub latency_ms: Option<f64>,
    /// Agents it runs now.
    #[schema(minimum = 0, maximum = 1000000)]
    pub agents: Option<i64>,
}

impl Metrics {
    pub fn check(&self) -> Result<(), SpaceError> {
        let within = |value: Option<f64>, max: f64| {
            value.is_none_or(|v| v.is_finite() && (0.0..=max).contains(&v))
        };
        if !within(self.cpu_percent, 100.0) || !within(self.memory_percent, 100.0) {
            return Err(SpaceError::Invalid(
                "cpu_percent and memory_percent must be between 0 and 100".into(),
            ));
        }
        if !within(self.latency_ms, 600_000.0) {
            return Err(SpaceError::Invalid(
                "latency_ms must be between 0 and 600000".into(),
            ));
        }
        if self.agents.is_some_and(|a| !(0..=1_000_000).contains(&a)) {
            return Err(SpaceError::Invalid(
                "agents must be between 0 and 1000000".into(),
            ));
        }
        Ok(())
    }
}

/// How unusual a planet's last complete day of messages is, against the
/// days before it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Anomaly {
    /// `|z|`: how many standard deviations the day is from the usual;
    /// `None` until there is enough history.
    pub score: Option<f64>,
    /// The same in words, with the numbers it stands on.
    pub explanation: String,
    /// The numbers: yesterday's messages, the days of baseline, and the
    /// baseline's mean and spread (absent without enough history).
    pub yesterday: i64,
    pub baseline_days: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spread: Option<f64>,
}

/// Days of history the baseline needs before a score is given.
pub const MIN_BASELINE_DAYS: usize = 3;
/// Days the baseline looks back.
pub const BASELINE_DAYS: usize = 14;

/// Judges `day` (messages on the last complete day) against `baseline`
/// (the days before it, oldest first; days without messages count as 0).
/// The spread is at least 1, so a quiet planet's single message is not a
/// storm.
pub fn anomaly(day: i64, baseline: &[i64]) -> Anomaly {
    if baseline.len() < MIN_BASELINE_DAYS {
        return Anomaly {
            score: None,
            explanation: format!(
                "not enough history: {} of the {MIN_BASELINE_DAYS} days needed",
                baseline.len()
            ),
            yesterday: day,
            baseline_days: baseline.len(),
            mean: None,
            spread: None,
        };
    }
    #[allow(clippy::cast_precision_loss)]
    let (values, n) = (
        baseline.iter().map(|&v| v as f64).collect::<Vec<f64>>(),
        baseline.len() as f64,
    );
    let mean = values.iter().sum::<f64>() / n;
    let spread = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n)
        .sqrt()
        .max(1.0);
    #[allow(clippy::cast_precision_loss)]
    let z = (day as f64 - mean) / spread;
    let score = (z.abs() * 100.0).round() / 100.0;
    let direction = if z > 0.0 { "above" } else { "below" };
    Anomaly {
        score: Some(score),
        explanation: format!(
            "{day} messages yesterday against {mean:.1} ± {spread:.1} a day over the {} days before: {score:.2} standard deviations {direction} the usual",
            baseline.len()
        ),
        yesterday: day,
        baseline_days: baseline.len(),
        mean: Some((mean * 10.0).round() / 10.0),
        spread: Some((spread * 10.0).round() / 10.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_score_measures_a_day_against_its_own_past() {
        assert_eq!(anomaly(5, &[1, 2]).score, None);
        let usual = anomaly(10, &[9, 10, 11, 10]);
        assert!(usual.score.unwrap() < 1.0, "{usual:?}");
        let storm = anomaly(100, &[9, 10, 11, 10]);
        assert!(storm.score.unwrap() > 50.0, "{storm:?}");
        assert!(storm.explanation.contains("above"), "{}", storm.explanation);
        let silence = anomaly(0, &[40, 50, 45, 55]);
        assert!(silence.explanation.contains("below"));
        assert!(silence.score.unwrap() > 5.0);
        // A quiet planet: one message is not a storm.
        assert!(anomaly(1, &[0, 0, 0]).score.unwrap() <= 1.0);
    }

    #[test]
    fn heartbeats_are_bounded() {
        assert!(Metrics::default().check().is_ok());
        let bad = [
            Metrics {
                cpu_percent: Some(101.0),
                ..Metrics::default()
            },
            Metrics {
                memory_percent: Some(-1.0),
                ..Metrics::default()
            },
            Metrics {
                latency_ms: Some(f64::NAN),
                ..Metrics::default()
            },
            Metrics {
                agents: Some(-3),
                ..Metrics::default()
            },
        ];
        for metrics in bad {
            assert!(metrics.check().is_err(), "{metrics:?}");
        }
        assert_eq!(NodeStatus::parse("offline"), Some(NodeStatus::Offline));
        assert_eq!(NodeRole::parse("mainframe"), None);
        assert!(text("  ", "name", true).is_err());
        assert!(text("ok\u{7}", "name", true).is_err());
        assert_eq!(text(" node-1 ", "name", true).unwrap(), "node-1");
    }
}
