//! `daarion doctor`: what an operator checks first, in one report — the
//! settings, the database and its migrations, the database server's
//! clock, the bus and the cache the settings name, the data directory's
//! free space, the age of the newest backup. A problem makes the command
//! fail; a warning does not.

use std::{fmt, path::Path, time::Duration};

use chrono::Utc;
use daarion_bus::Bus;
use daarion_cache::Cache;
use daarion_store::{Backend, Db, sql};

use crate::{SERVICES, Settings, migrations};

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Warning,
    Problem,
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub check: &'static str,
    pub verdict: Verdict,
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verdict = match self.verdict {
            Verdict::Ok => "ok",
            Verdict::Warning => "warning",
            Verdict::Problem => "PROBLEM",
        };
        write!(f, "{verdict:<8} {:<10} {}", self.check, self.detail)
    }
}

fn found(check: &'static str, verdict: Verdict, detail: impl Into<String>) -> Finding {
    Finding {
        check,
        verdict,
        detail: detail.into(),
    }
}

/// Clocks further apart than this make tokens, sessions and deadlines
/// (votes close at theirs) disagree between processes.
const MAX_SKEW: Duration = Duration::from_secs(2);
/// A newest backup older than this is a problem (the schedule is daily).
const BACKUP_TOO_OLD: Duration = Duration::from_secs(26 * 3600);
/// Free space below this share of the data directory's disk is a problem.
const MIN_FREE: f64 = 0.05;

/// Every check, in order; the settings were loaded and validated already.
pub async fn examine(settings: &Settings) -> Vec<Finding> {
    let mut findings = vec![found(
        "settings",
        Verdict::Ok,
        "valid (daarion.toml and the environment)",
    )];
    // One connection for the database's findings and the backups'.
    let db = open(settings).await;
    findings.extend(database(&db).await);
    findings.push(bus(settings).await);
    findings.push(cache(settings).await);
    findings.push(disk(&settings.data_dir));
    findings.push(backups(&db).await);
    if let Ok(db) = db {
        db.close().await;
    }
    findings
}

/// The city's database, or why it cannot be opened.
async fn open(settings: &Settings) -> Result<Db, String> {
    if settings.database_url.is_none() && !settings.data_dir.join("daarion.db").is_file() {
        return Err(format!(
            "no database in {} yet: `daarion migrate` or `daarion up` makes it",
            settings.data_dir.display()
        ));
    }
    match tokio::time::timeout(Duration::from_secs(10), Db::connect(&settings.database())).await {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("no answer in 10 s (DATABASE_URL)".into()),
    }
}

async fn database(db: &Result<Db, String>) -> Vec<Finding> {
    let db = match db {
        Ok(db) => db,
        Err(why) => return vec![found("database", Verdict::Problem, why.clone())],
    };
    let mut findings = Vec::new();
    match daarion_store::migrate::applied(db).await {
        Ok(applied) => {
            let known: usize = migrations().iter().map(|set| set.migrations.len()).sum();
            let pending = migrations()
                .iter()
                .flat_map(|set| set.migrations.iter().map(move |m| (set.service, m.version)))
                .filter(|(service, version)| {
                    !applied
                        .iter()
                        .any(|a| a.service == *service && a.version == *version)
                })
                .count();
            findings.push(if pending == 0 {
                found(
                    "database",
                    Verdict::Ok,
                    format!(
                        "{}, {known} migrations applied",
                        match db.backend() {
                            Backend::Sqlite => "SQLite",
                            Backend::Postgres => "PostgreSQL",
                        }
                    ),
                )
            } else {
                found(
                    "database",
                    Verdict::Problem,
                    format!(
                        "{pending} of {known} migrations pending: `daarion migrate` (or starting a process) applies them"
                    ),
                )
            });
        }
        Err(e) => findings.push(found("database", Verdict::Problem, e.to_string())),
    }
    if db.backend() == Backend::Postgres {
        findings.push(clock(db).await);
    }
    findings
}

/// This machine's clock against the database server's.
async fn clock(db: &Db) -> Finding {
    let before = Utc::now();
    let theirs: Result<String, _> = sql::query_scalar(
        "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
    )
    .fetch_one(db.pool())
    .await;
    let after = Utc::now();
    let Ok(theirs) = theirs else {
        return found(
            "clock",
            Verdict::Warning,
            "the database server did not say its time",
        );
    };
    let Ok(theirs) = chrono::DateTime::parse_from_rfc3339(&theirs) else {
        return found(
            "clock",
            Verdict::Warning,
            format!("unreadable server time {theirs:?}"),
        );
    };
    let ours = before + (after - before) / 2;
    let skew = (theirs.with_timezone(&Utc) - ours).abs();
    let skew = skew.to_std().unwrap_or_default();
    let detail = format!("{} ms from the database server's", skew.as_millis());
    if skew > MAX_SKEW {
        found(
            "clock",
            Verdict::Problem,
            format!("{detail} (keep them within 2 s: NTP)"),
        )
    } else {
        found("clock", Verdict::Ok, detail)
    }
}

async fn bus(settings: &Settings) -> Finding {
    let Some(url) = &settings.nats_url else {
        return found("bus", Verdict::Ok, "in-process (embedded), in the database");
    };
    let streams = match daarion_service::streams(SERVICES) {
        Ok(streams) => streams,
        Err(e) => return found("bus", Verdict::Problem, e.to_string()),
    };
    let connected = tokio::time::timeout(
        Duration::from_secs(15),
        daarion_bus::NatsBus::connect(url, &settings.nats_namespace, streams),
    )
    .await;
    match connected {
        Ok(Ok(bus)) => match bus.ping().await {
            Ok(()) => found(
                "bus",
                Verdict::Ok,
                "NATS JetStream answers; the streams are there",
            ),
            Err(e) => found("bus", Verdict::Problem, e.to_string()),
        },
        Ok(Err(e)) => found("bus", Verdict::Problem, format!("NATS_URL: {e}")),
        Err(_) => found("bus", Verdict::Problem, "NATS_URL: no answer in 15 s"),
    }
}

async fn cache(settings: &Settings) -> Finding {
    let Some(url) = &settings.redis_url else {
        return found("cache", Verdict::Ok, "in-process (embedded)");
    };
    let connected = tokio::time::timeout(
        Duration::from_secs(10),
        daarion_cache::RedisCache::connect(url, &settings.redis_prefix),
    )
    .await;
    match connected {
        Ok(Ok(cache)) => match cache.ping().await {
            Ok(()) => found("cache", Verdict::Ok, "Redis answers"),
            Err(e) => found("cache", Verdict::Problem, e.to_string()),
        },
        Ok(Err(e)) => found("cache", Verdict::Problem, format!("REDIS_URL: {e}")),
        Err(_) => found("cache", Verdict::Problem, "REDIS_URL: no answer in 10 s"),
    }
}

/// Free space where the data directory is (`df`, as an operator would).
fn disk(dir: &Path) -> Finding {
    let at = if dir.exists() { dir } else { Path::new(".") };
    let output = std::process::Command::new("df")
        .args(["-Pk"])
        .arg(at)
        .output()
        .ok()
        .filter(|o| o.status.success());
    let Some(output) = output else {
        return found(
            "disk",
            Verdict::Warning,
            "`df` could not tell the free space",
        );
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let fields: Vec<&str> = text
        .lines()
        .nth(1)
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    let number = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    let (Some(size), Some(free)) = (number(1), number(3)) else {
        return found("disk", Verdict::Warning, format!("unreadable `df`: {text}"));
    };
    let share = if size > 0.0 { free / size } else { 0.0 };
    let detail = format!(
        "{:.1} GiB free of {:.1} GiB ({:.0} %) at {}",
        free / 1_048_576.0,
        size / 1_048_576.0,
        share * 100.0,
        at.display()
    );
    if share < MIN_FREE {
        found("disk", Verdict::Problem, detail)
    } else {
        found("disk", Verdict::Ok, detail)
    }
}

/// The newest backup in the database's history, whoever made it.
async fn backups(db: &Result<Db, String>) -> Finding {
    let Ok(db) = db else {
        return found("backups", Verdict::Warning, "unknown: no database");
    };
    match daarion_backup::newest(db).await {
        Ok(None) => found(
            "backups",
            Verdict::Warning,
            "none recorded yet (`daarion backup`)",
        ),
        Ok(Some(at)) => {
            let age = (Utc::now() - at).to_std().unwrap_or_default();
            let detail = format!(
                "newest {} ({} h old)",
                at.format("%Y-%m-%d %H:%M UTC"),
                age.as_secs() / 3600,
            );
            if age > BACKUP_TOO_OLD {
                found("backups", Verdict::Problem, detail)
            } else {
                found("backups", Verdict::Ok, detail)
            }
        }
        Err(e) => found("backups", Verdict::Problem, e.to_string()),
    }
}
