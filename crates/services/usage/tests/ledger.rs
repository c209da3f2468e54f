//! The budget ledger on SQLite and PostgreSQL: concurrent reservations
//! overrun a budget by at most one call, settling replaces a reservation,
//! and reservations whose calls never settled expire and give their money
//! back — once, even if the call settles late.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use daarion_testkit::{SqlKind, TestDb, migrated_db};
use daarion_usage::{SPEC, store};

fn hold(subject: &str, micros: i64) -> store::Hold {
    store::Hold {
        id: daarion_testkit::unique("r"),
        subject: subject.into(),
        period: "2026-11".into(),
        micros,
    }
}

const FAR: i64 = i64::MAX;

async fn ledger(kind: SqlKind) -> Option<TestDb> {
    migrated_db(kind, &[SPEC.migration_set()]).await
}

async fn concurrent_reservations_overrun_by_at_most_one(kind: SqlKind) {
    let Some(t) = ledger(kind).await else { return };
    let tries = (0..20).map(|_| {
        let db = t.db.clone();
        tokio::spawn(async move { store::reserve(&db, &hold("user:a", 30), 100, FAR).await })
    });
    let mut admitted = 0;
    for done in futures::future::join_all(tries).await {
        if done.unwrap().unwrap() {
            admitted += 1;
        }
    }
    // 0, 30, 60 and 90 are below 100: the fourth call is the one allowed over.
    assert_eq!(admitted, 4);
    assert_eq!(
        store::budget_state(&t.db, "user:a", "2026-11")
            .await
            .unwrap(),
        (0, 120)
    );
}

async fn settling_replaces_the_reservation(kind: SqlKind) {
    let Some(t) = ledger(kind).await else { return };
    let h = hold("dao:d", 50);
    assert!(store::reserve(&t.db, &h, 100, FAR).await.unwrap());
    assert_eq!(store::settle(&t.db, &h, 20).await.unwrap(), 20);
    assert_eq!(
        store::budget_state(&t.db, "dao:d", "2026-11")
            .await
            .unwrap(),
        (20, 0)
    );
    // A second settle of the same hold finds no reservation to give back.
    assert_eq!(store::settle(&t.db, &h, 0).await.unwrap(), 20);
    assert_eq!(
        store::budget_state(&t.db, "dao:d", "2026-11")
            .await
            .unwrap(),
        (20, 0)
    );
}

async fn unsettled_reservations_expire_once(kind: SqlKind) {
    let Some(t) = ledger(kind).await else { return };
    let now = 1_000_000;
    let crashed = hold("user:b", 60);
    let running = hold("user:b", 30);
    assert!(store::reserve(&t.db, &crashed, 100, now - 1).await.unwrap());
    assert!(
        store::reserve(&t.db, &running, 100, now + 60_000)
            .await
            .unwrap()
    );
    // Spent + reserved = 90 < 100: one more call would still be let in, but
    // at 100 the budget is closed until something is given back.
    assert!(
        store::reserve(&t.db, &hold("user:b", 10), 100, FAR)
            .await
            .unwrap()
    );
    assert!(
        !store::reserve(&t.db, &hold("user:b", 10), 100, FAR)
            .await
            .unwrap()
    );

    assert_eq!(store::expire(&t.db, now).await.unwrap(), 1);
    assert_eq!(store::expire(&t.db, now).await.unwrap(), 0, "expired once");
    assert_eq!(
        store::budget_state(&t.db, "user:b", "2026-11")
            .await
            .unwrap(),
        (0, 40)
    );
    assert!(
        store::reserve(&t.db, &hold("user:b", 10), 100, FAR)
            .await
            .unwrap()
    );

    // The call that was thought dead settles after all: its spending
    // counts, its reservation is not given back twice.
    assert_eq!(store::settle(&t.db, &crashed, 55).await.unwrap(), 55);
    assert_eq!(
        store::budget_state(&t.db, "user:b", "2026-11")
            .await
            .unwrap(),
        (55, 50)
    );
}

daarion_testkit::on_both_sql!(
    concurrent_reservations_overrun_by_at_most_one,
    settling_replaces_the_reservation,
    unsettled_reservations_expire_once,
);
