//! The meter's budgets on SQLite and PostgreSQL, with two meters sharing
//! one ledger as two replicas would: calls held against leases cost no
//! statement until written back, and however the calls are spread, a
//! budget is overrun by at most one call.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use daarion_bus::{Bus, EmbeddedBus, subject::Streams};
use daarion_cache::MemoryCache;
use daarion_control::ControlClient;
use daarion_testkit::{SqlKind, TestDb, migrated_db};
use daarion_usage::{Meter, MeterError, SPEC, Settings, Subjects, meter::PlanLimits, store};
use futures::StreamExt;

/// A call's estimate and cost, and the free plan's budget: 100 calls.
const CALL: i64 = 10_000;
const BUDGET_CENTS: u64 = 100;
const BUDGET: i64 = 1_000_000;

async fn ledger(kind: SqlKind) -> Option<(TestDb, Arc<dyn Bus>)> {
    let t = migrated_db(
        kind,
        &[
            SPEC.migration_set(),
            daarion_control::SPEC.migration_set(),
            daarion_bus::MIGRATIONS,
        ],
    )
    .await?;
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::new(
        t.db.clone(),
        Streams::new([daarion_bus::subject::AUDIT]).unwrap(),
    ));
    Some((t, bus))
}

fn meter(t: &TestDb, bus: &Arc<dyn Bus>) -> Meter {
    meter_with(t, bus, ControlClient::new(t.db.clone()))
}

fn meter_with(t: &TestDb, bus: &Arc<dyn Bus>, control: ControlClient) -> Meter {
    let settings = Settings {
        free: PlanLimits {
            budget_cents_per_month: Some(BUDGET_CENTS),
            ..PlanLimits::default()
        },
        ..Settings::default()
    };
    Meter::new(
        t.db.clone(),
        Arc::new(MemoryCache::default()),
        bus.clone(),
        control,
        settings,
    )
}

fn alice() -> Subjects {
    Subjects {
        user: Some("alice".into()),
        ..Subjects::default()
    }
}

fn period() -> String {
    chrono::Utc::now().format("%Y-%m").to_string()
}

async fn calls_far_from_the_limit_are_written_back_in_batches(kind: SqlKind) {
    let Some((t, bus)) = ledger(kind).await else {
        return;
    };
    let m = meter(&t, &bus);
    for _ in 0..5 {
        let admission = m.admit(&alice(), &[], CALL, 0).await.unwrap();
        m.settle(admission, 0, CALL).await;
    }
    // Five calls, one lease of an eighth of the budget, nothing spent yet
    // as far as the ledger knows...
    let (spent, reserved) = store::budget_state(&t.db, "user:alice", &period())
        .await
        .unwrap();
    assert_eq!((spent, reserved), (0, BUDGET / 8));
    // ...while the status reads as if it were written.
    let status = m
        .status(&daarion_access::Subject::User("alice".into()))
        .await
        .unwrap();
    assert_eq!((status.spent_micros, status.reserved_micros), (5 * CALL, 0));

    m.flush(false).await;
    assert_eq!(
        store::budget_state(&t.db, "user:alice", &period())
            .await
            .unwrap(),
        (5 * CALL, BUDGET / 8 - 5 * CALL)
    );
    m.flush(true).await;
    assert_eq!(
        store::budget_state(&t.db, "user:alice", &period())
            .await
            .unwrap(),
        (5 * CALL, 0),
        "the lease was given back"
    );
}

async fn two_replicas_overrun_a_budget_by_at_most_one_call(kind: SqlKind) {
    let Some((t, bus)) = ledger(kind).await else {
        return;
    };
    let mut alerts = bus.subscribe("ops.alert").await.unwrap();
    let replicas = [meter(&t, &bus), meter(&t, &bus)];
    // Waves of parallel calls on both replicas, written back between
    // waves, until the budget refuses every call of a wave.
    let mut admitted = 0;
    for wave in 0.. {
        assert!(wave < 100, "the budget never ran out");
        let calls = (0..16).map(|i| {
            let m = replicas[i % 2].clone();
            async move {
                match m.admit(&alice(), &[], CALL, 0).await {
                    Ok(admission) => {
                        tokio::task::yield_now().await;
                        m.settle(admission, 0, CALL).await;
                        true
                    }
                    Err(MeterError::Exceeded(_)) => false,
                    Err(other) => unreachable!("{other}"),
                }
            }
        });
        let done = futures::future::join_all(calls).await;
        let ok = done.iter().filter(|ok| **ok).count();
        admitted += ok;
        for m in &replicas {
            m.flush(false).await;
        }
        if ok == 0 {
            break;
        }
    }
    for m in &replicas {
        m.flush(true).await;
    }
    let (spent, reserved) = store::budget_state(&t.db, "user:alice", &period())
        .await
        .unwrap();
    assert_eq!(spent, i64::try_from(admitted).unwrap() * CALL);
    assert!(spent >= BUDGET, "the budget was used up: {spent}");
    assert!(
        spent <= BUDGET + CALL,
        "overspent by more than one call: {spent}"
    );
    assert_eq!(reserved, 0);

    // 80 % and 100 % each raised once, by whichever replica crossed them.
    let mut thresholds = Vec::new();
    while let Ok(Some(alert)) =
        tokio::time::timeout(Duration::from_millis(500), alerts.next()).await
    {
        thresholds.push(alert.payload["threshold_percent"].as_i64().unwrap());
    }
    thresholds.sort_unstable();
    assert_eq!(thresholds, [80, 100]);
}

async fn a_lower_budget_gives_the_lease_back(kind: SqlKind) {
    let Some((t, bus)) = ledger(kind).await else {
        return;
    };
    let control = ControlClient::new(t.db.clone());
    let m = meter_with(&t, &bus, control.clone());
    let admission = m.admit(&alice(), &[], CALL, 0).await.unwrap();
    m.settle(admission, 0, CALL).await;
    // An admin cuts alice's budget to 2 cents (20 000 micros): the lease
    // taken under the old budget must not let her spend past the new one.
    let quota = serde_json::json!({"budget_cents_per_month": 2});
    let kind = daarion_control::domain::DocKind::Quota;
    daarion_control::store::put(&t.db, kind, "user:alice", &quota, "root", true)
        .await
        .unwrap();
    control.forget(kind, "user:alice").await;
    let mut ok = 0;
    for _ in 0..10 {
        match m.admit(&alice(), &[], CALL, 0).await {
            Ok(admission) => {
                ok += 1;
                m.settle(admission, 0, CALL).await;
            }
            Err(MeterError::Exceeded(_)) => break,
            Err(other) => unreachable!("{other}"),
        }
    }
    assert_eq!(ok, 1, "10 000 spent, 10 000 more reaches the 20 000");
}

daarion_testkit::on_both_sql!(
    calls_far_from_the_limit_are_written_back_in_batches,
    two_replicas_overrun_a_budget_by_at_most_one_call,
    a_lower_budget_gives_the_lease_back,
);
