//! Backups on a schedule inside `daarion up`: daily at a time of day in
//! UTC (03:00 by default), then the old ones pruned (`retention`). The
//! distributed shape schedules `daarion backup` outside the processes (a
//! systemd timer, a Kubernetes CronJob).

use std::{path::PathBuf, time::Duration};

use chrono::{DateTime, NaiveTime, Utc};
use daarion_kernel::shutdown::CancellationToken;
use serde::{Deserialize, Serialize};

/// `[backup]` settings.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Whether `daarion up` backs up on its own (never `serve`).
    pub enabled: bool,
    /// The time of day, UTC, `HH:MM`.
    pub at: String,
    /// Days of which the newest backup is kept.
    pub keep_daily: usize,
    /// ISO weeks of which the newest backup is kept.
    pub keep_weekly: usize,
    /// Where backups go (default: `<data dir>/backups`).
    pub dir: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            enabled: true,
            at: "03:00".into(),
            keep_daily: 7,
            keep_weekly: 4,
            dir: None,
        }
    }
}

impl Settings {
    pub fn validate(&self) -> Result<(), String> {
        self.time()?;
        if self.keep_daily == 0 && self.keep_weekly == 0 {
            return Err("backup.keep_daily and backup.keep_weekly cannot both be 0".into());
        }
        Ok(())
    }

    fn time(&self) -> Result<NaiveTime, String> {
        NaiveTime::parse_from_str(&self.at, "%H:%M").map_err(|_| {
            format!(
                "backup.at must be a time of day, HH:MM (UTC), not {:?}",
                self.at
            )
        })
    }
}

/// The first time after `now` at `at` (UTC).
pub fn next_after(now: DateTime<Utc>, at: NaiveTime) -> DateTime<Utc> {
    let today = now.date_naive().and_time(at).and_utc();
    if today > now {
        today
    } else {
        today + chrono::Duration::days(1)
    }
}

/// Backs `database` up into `dir` at each scheduled time until `shutdown`.
pub async fn run(database: String, dir: PathBuf, settings: Settings, shutdown: CancellationToken) {
    let Ok(at) = settings.time() else {
        return;
    };
    loop {
        let now = Utc::now();
        let wait = (next_after(now, at) - now)
            .to_std()
            .unwrap_or(Duration::from_secs(1));
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        match crate::create(&database, &dir).await {
            Ok(backup) => {
                tracing::info!(
                    file = %backup.path.display(),
                    bytes = backup.manifest.size,
                    "backed up"
                );
                match crate::prune(&dir, settings.keep_daily, settings.keep_weekly) {
                    Ok(removed) => {
                        for old in removed {
                            tracing::info!(file = %old.path.display(), "old backup removed");
                        }
                    }
                    Err(error) => tracing::warn!(%error, "old backups were not pruned"),
                }
            }
            Err(error) => tracing::error!(%error, "the scheduled backup failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_next_backup_is_today_before_its_time_and_tomorrow_after() {
        let at = NaiveTime::from_hms_opt(3, 0, 0).unwrap();
        let before = Utc.with_ymd_and_hms(2026, 12, 6, 2, 59, 0).unwrap();
        assert_eq!(
            next_after(before, at),
            Utc.with_ymd_and_hms(2026, 12, 6, 3, 0, 0).unwrap()
        );
        let on = Utc.with_ymd_and_hms(2026, 12, 6, 3, 0, 0).unwrap();
        assert_eq!(
            next_after(on, at),
            Utc.with_ymd_and_hms(2026, 12, 7, 3, 0, 0).unwrap()
        );
    }

    #[test]
    fn settings_are_checked() {
        assert!(Settings::default().validate().is_ok());
        let bad = Settings {
            at: "3am".into(),
            ..Settings::default()
        };
        assert!(bad.validate().unwrap_err().contains("HH:MM"));
    }
}
