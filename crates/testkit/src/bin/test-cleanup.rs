//! Removes what earlier test and benchmark runs left on the shared servers:
//! PostgreSQL databases `t_<uuid>` (on `DATABASE_URL`'s server and the
//! pgvector one), JetStream streams of test namespaces
//! (`t<uuid>_*`, `bench<pid>_*`) and Redis keys under test prefixes
//! (`t<uuid>:*`). Run by `scripts/test.sh` before the tests; servers whose
//! variable is unset are left alone.

#![allow(clippy::print_stdout)]

use futures::TryStreamExt;

fn is_test_namespace(name: &str) -> bool {
    let hex = |s: &str| s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit());
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    name.strip_prefix('t').is_some_and(hex) || name.strip_prefix("bench").is_some_and(digits)
}

async fn postgres(url: &str) -> anyhow::Result<usize> {
    let db = daarion_store::Db::connect(url).await?;
    let names: Vec<String> = daarion_store::sql::query_scalar(
        "SELECT datname::text FROM pg_database WHERE datname LIKE 't\\_%'",
    )
    .fetch_all(db.pool())
    .await?;
    let mut dropped = 0;
    for name in names.iter().filter(|n| {
        n.strip_prefix("t_")
            .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    }) {
        let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        if daarion_store::sql::query(daarion_store::sql::AssertSqlSafe(sql))
            .execute(db.pool())
            .await
            .is_ok()
        {
            dropped += 1;
        }
    }
    Ok(dropped)
}

async fn nats(url: &str) -> anyhow::Result<usize> {
    let client = async_nats::connect(url).await?;
    let js = async_nats::jetstream::new(client);
    let names: Vec<String> = js.stream_names().try_collect().await?;
    let mut deleted = 0;
    for name in names {
        let namespace = name.split_once('_').map_or("", |(ns, _)| ns);
        if is_test_namespace(namespace) && js.delete_stream(&name).await.is_ok() {
            deleted += 1;
        }
    }
    Ok(deleted)
}

async fn redis(url: &str) -> anyhow::Result<usize> {
    let client = redis::Client::open(url)?;
    let mut conn = client.get_multiplexed_async_connection().await?;
    let pattern = format!("t{}:*", "?".repeat(32));
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(&pattern)
        .query_async(&mut conn)
        .await?;
    for chunk in keys.chunks(500) {
        redis::cmd("DEL")
            .arg(chunk)
            .query_async::<()>(&mut conn)
            .await?;
    }
    Ok(keys.len())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    for var in ["DATABASE_URL", "DAARION_PGVECTOR_URL"] {
        if let Ok(url) = std::env::var(var) {
            println!(
                "test-cleanup: dropped {} test databases on {var}'s server",
                postgres(&url).await?
            );
        }
    }
    if let Ok(url) = std::env::var("NATS_URL") {
        println!("test-cleanup: deleted {} test streams", nats(&url).await?);
    }
    if let Ok(url) = std::env::var("REDIS_URL") {
        println!("test-cleanup: deleted {} test keys", redis(&url).await?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_test_namespaces_are_matched() {
        assert!(is_test_namespace(&format!("t{}", "a1".repeat(16))));
        assert!(is_test_namespace("bench4242"));
        assert!(!is_test_namespace("MESSAGES"));
        assert!(!is_test_namespace("tenant"));
        assert!(!is_test_namespace("bench"));
    }
}
