//! The bus contract, run against the embedded bus (on SQLite and PostgreSQL)
//! and NATS JetStream.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{
    sync::{
        Arc,
        atomic::{AtomicU32, Ordering},
    },
    time::Duration,
};

use daarion_bus::{
    Bus, ConsumerSpec, DeadLetters, Envelope, HandlerError, Outbox, run_batch_consumer,
    run_consumer,
};
use daarion_kernel::{RequestContext, shutdown::CancellationToken};
use daarion_testkit::{BusKind, SqlKind, TestDb};
use futures::StreamExt;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(10);

/// `city.*` is durable here; `presence.*` is live-only.
fn streams() -> daarion_bus::subject::Streams {
    daarion_bus::subject::Streams::new([daarion_bus::subject::StreamDef {
        name: "CITY",
        subjects: &["city.>"],
    }])
    .unwrap()
}

struct Fixture {
    db: TestDb,
    bus: Arc<dyn Bus>,
    kind: BusKind,
    namespace: String,
}

impl Fixture {
    async fn new(kind: BusKind, sql: SqlKind) -> Option<Self> {
        let db = daarion_testkit::migrated_db(sql, &[daarion_bus::MIGRATIONS]).await?;
        let namespace = daarion_testkit::unique("t");
        let bus: Arc<dyn Bus> = match kind {
            BusKind::Embedded => Arc::new(daarion_bus::EmbeddedBus::new(db.db.clone(), streams())),
            BusKind::Nats => {
                let url = daarion_testkit::require_env("NATS_URL")?;
                Arc::new(daarion_testkit::nats_bus(&url, &namespace, streams()).await)
            }
        };
        Some(Self {
            db,
            bus,
            kind,
            namespace,
        })
    }

    /// The same bus after a restart of the process: new connections, same data.
    async fn restarted(&self) -> Arc<dyn Bus> {
        match self.kind {
            BusKind::Embedded => Arc::new(daarion_bus::EmbeddedBus::new(
                self.db.reopen().await,
                streams(),
            )),
            BusKind::Nats => {
                let url = std::env::var("NATS_URL").unwrap();
                Arc::new(daarion_testkit::nats_bus(&url, &self.namespace, streams()).await)
            }
        }
    }
}

fn event(subject: &str, n: i64) -> Envelope {
    Envelope::new("test", subject, json!({ "n": n }))
}

fn spec(name: &str, filter: &str) -> ConsumerSpec {
    ConsumerSpec {
        ack_wait: Duration::from_millis(700),
        max_deliver: 3,
        ..ConsumerSpec::new(name, filter)
    }
}

async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut).await.expect("timed out")
}

/// The first dead letter to appear, waited for.
async fn first_dead_letter(letters: &DeadLetters) -> daarion_bus::DeadLetter {
    within(async {
        loop {
            if let Some(l) = letters.list(10, None).await.unwrap().into_iter().next() {
                return l;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

macro_rules! contract {
    ($($module:ident => ($bus:ident, $sql:ident)),*) => {$(
        mod $module {
            use super::*;

            async fn fixture() -> Option<Fixture> {
                Fixture::new(BusKind::$bus, SqlKind::$sql).await
            }

            #[tokio::test]
            async fn every_subscriber_sees_matching_events_live() {
                let Some(f) = fixture().await else { return };
                let mut a = f.bus.subscribe("city.message.created.*").await.unwrap();
                let mut b = f.bus.subscribe("city.message.>").await.unwrap();
                let mut other = f.bus.subscribe("city.message.created.other").await.unwrap();
                let sent = event("city.message.created.general", 1);
                f.bus.publish(&sent).await.unwrap();
                // Not stored in any stream: live delivery only.
                f.bus.publish(&event("presence.city.alice", 2)).await.unwrap();
                assert_eq!(within(a.next()).await.unwrap(), sent);
                assert_eq!(within(b.next()).await.unwrap(), sent);
                assert!(tokio::time::timeout(Duration::from_millis(300), other.next()).await.is_err());
            }

            #[tokio::test]
            async fn staged_events_exist_with_their_data_and_outlive_a_crash_before_publishing() {
                let Some(f) = fixture().await else { return };
                let mut consumer = f.bus.consumer(&spec("outbox", "city.>")).await.unwrap();
                let outbox = Outbox::new(f.db.db.clone(), f.bus.clone());
                let lost = event("city.message.created.general", 1);
                let mut tx = f.db.db.begin().await.unwrap();
                let _rolled_back = outbox.stage(&mut tx, vec![lost]).await.unwrap();
                tx.rollback().await.unwrap();
                // Committed by a process that stops before relaying it.
                let kept = event("city.message.created.general", 2);
                let mut tx = f.db.db.begin().await.unwrap();
                let _never_relayed = outbox.stage(&mut tx, vec![kept.clone()]).await.unwrap();
                tx.commit().await.unwrap();
                drop(outbox);
                // The next process's relay publishes what was left (the
                // embedded bus stored it with the data: nothing is left).
                let relay = Outbox::new(f.db.reopen().await, f.restarted().await);
                relay.relay_pending(Duration::ZERO).await.unwrap();
                assert_eq!(relay.relay_pending(Duration::ZERO).await.unwrap(), 0);
                let delivered = within(consumer.next()).await.unwrap();
                assert_eq!(delivered.envelope.id, kept.id);
                delivered.ack().await.unwrap();
                assert!(tokio::time::timeout(Duration::from_millis(1500), consumer.next()).await.is_err());
            }

            #[tokio::test]
            async fn relaying_after_commit_delivers_live_and_durably_once() {
                let Some(f) = fixture().await else { return };
                let mut consumer = f.bus.consumer(&spec("relay", "city.>")).await.unwrap();
                let mut live = f.bus.subscribe("presence.>").await.unwrap();
                let relay = Outbox::new(f.db.db.clone(), f.bus.clone());
                let sent = vec![event("city.room.created.a", 1), event("presence.city.bob", 2)];
                let mut tx = f.db.db.begin().await.unwrap();
                let staged = relay.stage(&mut tx, sent.clone()).await.unwrap();
                tx.commit().await.unwrap();
                let stop = CancellationToken::new();
                let running = tokio::spawn(relay.clone().run(stop.clone()));
                relay.relay(staged).await;
                assert_eq!(within(live.next()).await.unwrap().id, sent[1].id);
                let delivered = within(consumer.next()).await.unwrap();
                assert_eq!(delivered.envelope.id, sent[0].id);
                delivered.ack().await.unwrap();
                // Removed soon after, in a batch: nothing is relayed twice.
                daarion_testkit::eventually("the outbox emptied", WAIT, || async {
                    let left: i64 = daarion_store::sql::query_scalar("SELECT COUNT(*) FROM bus_outbox")
                        .fetch_one(f.db.db.pool())
                        .await
                        .unwrap();
                    (left == 0).then_some(())
                })
                .await;
                stop.cancel();
                running.await.unwrap();
                assert!(tokio::time::timeout(Duration::from_millis(1500), consumer.next()).await.is_err());
            }

            #[tokio::test]
            async fn workers_taking_one_at_a_time_share_the_deliveries() {
                let Some(f) = fixture().await else { return };
                let one = ConsumerSpec { prefetch: 1, ..spec("sharing", "city.message.>") };
                let mut a = f.bus.consumer(&one).await.unwrap();
                let mut b = f.bus.consumer(&one).await.unwrap();
                for n in 0..2 {
                    f.bus.publish(&event("city.message.created.general", n)).await.unwrap();
                }
                // A holds the first, unacknowledged; B gets the second at
                // once instead of waiting for A's claim to lapse.
                let first = within(a.next()).await.unwrap();
                let second = tokio::time::timeout(Duration::from_millis(500), b.next())
                    .await
                    .expect("the second delivery went to the other worker")
                    .unwrap();
                assert_ne!(first.envelope.id, second.envelope.id);
                first.ack().await.unwrap();
                second.ack().await.unwrap();
            }

            #[tokio::test]
            async fn the_backlog_counts_what_a_consumer_has_yet_to_settle() {
                let Some(f) = fixture().await else { return };
                let mut consumer = f.bus.consumer(&spec("lagging", "city.message.>")).await.unwrap();
                for n in 0..3 {
                    f.bus.publish(&event("city.message.created.general", n)).await.unwrap();
                }
                f.bus.publish(&event("city.room.created.general", 9)).await.unwrap();
                let pending = || async {
                    f.bus.backlog().await.unwrap().into_iter()
                        .find(|b| b.consumer == "lagging")
                        .map(|b| b.pending)
                };
                daarion_testkit::eventually("three pending", WAIT, || async {
                    (pending().await == Some(3)).then_some(())
                }).await;
                within(consumer.next()).await.unwrap().ack().await.unwrap();
                // Delivered and not yet acknowledged still counts.
                let held = within(consumer.next()).await.unwrap();
                daarion_testkit::eventually("two pending", WAIT, || async {
                    (pending().await == Some(2)).then_some(())
                }).await;
                held.ack().await.unwrap();
                within(consumer.next()).await.unwrap().ack().await.unwrap();
                daarion_testkit::eventually("none pending", WAIT, || async {
                    (pending().await == Some(0)).then_some(())
                }).await;
            }

            #[tokio::test]
            async fn invalid_subjects_are_refused() {
                let Some(f) = fixture().await else { return };
                assert!(f.bus.publish(&event("city..x", 1)).await.is_err());
                assert!(f.bus.publish(&event("city.*", 1)).await.is_err());
                assert!(f.bus.subscribe("city.>.x").await.is_err());
                assert!(f.bus.consumer(&spec("c", "presence.>")).await.is_err());
            }

            #[tokio::test]
            async fn a_durable_consumer_gets_every_event_in_order() {
                let Some(f) = fixture().await else { return };
                let mut consumer = f.bus.consumer(&spec("worker", "city.message.>")).await.unwrap();
                for n in 0..5 {
                    f.bus.publish(&event("city.message.created.general", n)).await.unwrap();
                }
                f.bus.publish(&event("city.room.created.x", 99)).await.unwrap();
                for n in 0..5 {
                    let d = within(consumer.next()).await.unwrap();
                    assert_eq!(d.envelope.payload["n"], n);
                    assert_eq!(d.attempt, 1);
                    d.ack().await.unwrap();
                }
                assert!(tokio::time::timeout(Duration::from_millis(1500), consumer.next()).await.is_err());
            }

            #[tokio::test]
            async fn a_new_consumer_from_the_start_takes_what_the_stream_holds() {
                let Some(f) = fixture().await else { return };
                for n in 0..3 {
                    f.bus.publish(&event("city.message.created.general", n)).await.unwrap();
                }
                f.bus.publish(&event("city.room.created.x", 99)).await.unwrap();
                let mut late = f.bus.consumer(&spec("late", "city.message.>")).await.unwrap();
                let early = ConsumerSpec { from_start: true, ..spec("early", "city.message.>") };
                let mut consumer = f.bus.consumer(&early).await.unwrap();
                f.bus.publish(&event("city.message.created.general", 3)).await.unwrap();
                for n in 0..4 {
                    let d = within(consumer.next()).await.unwrap();
                    assert_eq!(d.envelope.payload["n"], n);
                    d.ack().await.unwrap();
                }
                let d = within(late.next()).await.unwrap();
                assert_eq!(d.envelope.payload["n"], 3, "without from_start, only what came after");
                d.ack().await.unwrap();
                // Created again (a restart), it goes on where it was.
                drop(consumer);
                let mut again = f.bus.consumer(&early).await.unwrap();
                f.bus.publish(&event("city.message.created.general", 4)).await.unwrap();
                let d = within(again.next()).await.unwrap();
                assert_eq!(d.envelope.payload["n"], 4);
                d.ack().await.unwrap();
            }

            #[tokio::test]
            async fn an_unacked_delivery_is_redelivered_after_the_consumer_dies() {
                let Some(f) = fixture().await else { return };
                let mut consumer = f.bus.consumer(&spec("dies", "city.>")).await.unwrap();
                let sent = event("city.message.created.general", 7);
                f.bus.publish(&sent).await.unwrap();
                let first = within(consumer.next()).await.unwrap();
                assert_eq!(first.envelope.id, sent.id);
                // The worker crashes: no ack, consumer gone.
                drop(first);
                drop(consumer);
                let restarted = f.restarted().await;
                let mut again = restarted.consumer(&spec("dies", "city.>")).await.unwrap();
                let second = within(again.next()).await.unwrap();
                assert_eq!(second.envelope.id, sent.id);
                assert_eq!(second.attempt, 2);
                second.ack().await.unwrap();
            }

            #[tokio::test]
            async fn a_nacked_delivery_comes_back() {
                let Some(f) = fixture().await else { return };
                let mut consumer = f.bus.consumer(&spec("nack", "city.>")).await.unwrap();
                f.bus.publish(&event("city.message.created.general", 1)).await.unwrap();
                let d = within(consumer.next()).await.unwrap();
                d.nack(Duration::from_millis(100)).await.unwrap();
                let d = within(consumer.next()).await.unwrap();
                assert_eq!(d.attempt, 2);
                d.ack().await.unwrap();
            }

            #[tokio::test]
            async fn no_event_is_lost_across_a_restart() {
                let Some(f) = fixture().await else { return };
                drop(f.bus.consumer(&spec("durable", "city.>")).await.unwrap());
                for n in 0..3 {
                    f.bus.publish(&event("city.message.created.general", n)).await.unwrap();
                }
                let restarted = f.restarted().await;
                let mut consumer = restarted.consumer(&spec("durable", "city.>")).await.unwrap();
                for n in 0..3 {
                    let d = within(consumer.next()).await.unwrap();
                    assert_eq!(d.envelope.payload["n"], n);
                    d.ack().await.unwrap();
                }
            }

            #[tokio::test]
            async fn two_workers_of_one_consumer_share_the_events() {
                let Some(f) = fixture().await else { return };
                let w1 = f.bus.consumer(&spec("shared", "city.>")).await.unwrap();
                let w2 = f.bus.consumer(&spec("shared", "city.>")).await.unwrap();
                for n in 0..10 {
                    f.bus.publish(&event("city.message.created.general", n)).await.unwrap();
                }
                let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
                let drain = |mut c: Box<dyn daarion_bus::Consumer>, seen: Arc<std::sync::Mutex<Vec<i64>>>| async move {
                    while let Ok(Ok(d)) = tokio::time::timeout(Duration::from_millis(1500), c.next()).await {
                        seen.lock().unwrap().push(d.envelope.payload["n"].as_i64().unwrap());
                        d.ack().await.unwrap();
                    }
                };
                tokio::join!(drain(w1, seen.clone()), drain(w2, seen.clone()));
                let mut seen = seen.lock().unwrap().clone();
                seen.sort();
                assert_eq!(seen, (0..10).collect::<Vec<_>>());
            }

            #[tokio::test]
            async fn a_handler_working_past_the_ack_wait_keeps_its_delivery() {
                let Some(f) = fixture().await else { return };
                let calls = Arc::new(AtomicU32::new(0));
                let shutdown = CancellationToken::new();
                // Two workers: a delivery that lapsed would go to the other.
                let workers: Vec<_> = (0..2).map(|_| {
                    let calls = calls.clone();
                    tokio::spawn(run_consumer(f.bus.clone(), f.db.db.clone(), spec("slow", "city.>"), shutdown.clone(), move |_| {
                        let calls = calls.clone();
                        async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(2500)).await;
                            Ok(())
                        }
                    }))
                }).collect();
                tokio::time::sleep(Duration::from_millis(300)).await;
                f.bus.publish(&event("city.message.created.general", 1)).await.unwrap();
                // Three and a half ack waits of 700 ms, and one more.
                tokio::time::sleep(Duration::from_millis(3200)).await;
                assert_eq!(calls.load(Ordering::SeqCst), 1, "worked on once");
                shutdown.cancel();
                for worker in workers {
                    worker.await.unwrap();
                }
            }

            #[tokio::test]
            async fn the_runner_dedupes_dead_letters_and_replays() {
                let Some(f) = fixture().await else { return };
                let calls = Arc::new(AtomicU32::new(0));
                let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
                let seen_request = Arc::new(std::sync::Mutex::new(None));
                let shutdown = CancellationToken::new();
                // A bystander consumer of the same subjects must not see the replay.
                let bystander_calls = Arc::new(AtomicU32::new(0));
                let task = {
                    let (calls, failing, seen_request) = (calls.clone(), failing.clone(), seen_request.clone());
                    tokio::spawn(run_consumer(f.bus.clone(), f.db.db.clone(), spec("runner", "city.>"), shutdown.clone(), move |e: Envelope| {
                        let (calls, failing, seen_request) = (calls.clone(), failing.clone(), seen_request.clone());
                        async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            *seen_request.lock().unwrap() = RequestContext::current();
                            if failing.load(Ordering::SeqCst) && e.payload["fail"] == true {
                                return Err(HandlerError::new("boom"));
                            }
                            Ok(())
                        }
                    }))
                };
                let bystander = {
                    let calls = bystander_calls.clone();
                    tokio::spawn(run_consumer(f.bus.clone(), f.db.db.clone(), spec("bystander", "city.>"), shutdown.clone(), move |_| {
                        let calls = calls.clone();
                        async move { calls.fetch_add(1, Ordering::SeqCst); Ok(()) }
                    }))
                };
                tokio::time::sleep(Duration::from_millis(300)).await;

                // The same event published twice is handled once.
                let ctx = RequestContext::continuing("req_contract".into(), None);
                let once = ctx.clone().scope(async { event("city.message.created.general", 1) }).await;
                f.bus.publish(&once).await.unwrap();
                f.bus.publish(&once).await.unwrap();
                within(async { while calls.load(Ordering::SeqCst) < 1 { tokio::time::sleep(Duration::from_millis(20)).await } }).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
                assert_eq!(calls.load(Ordering::SeqCst), 1);
                // In the request's trace, in a span whose parent is the publisher's.
                let seen = seen_request.lock().unwrap().clone().expect("a context");
                assert_eq!(seen.request_id, "req_contract");
                assert_eq!(seen.trace_id, ctx.trace_id);
                assert_eq!(seen.parent_span_id.as_deref(), Some(ctx.span_id.as_str()));
                assert_ne!(seen.span_id, ctx.span_id);

                // An event that always fails is dead-lettered after max_deliver.
                let poison = Envelope::new("test", "city.message.created.general", json!({ "fail": true }));
                f.bus.publish(&poison).await.unwrap();
                let letters = DeadLetters::new(f.db.db.clone());
                let letter = first_dead_letter(&letters).await;
                assert_eq!(letter.event_id, poison.id);
                assert_eq!(letter.consumer, "runner");
                assert_eq!(letter.attempts, 3);
                assert_eq!(letter.error, "boom");
                assert_eq!(calls.load(Ordering::SeqCst), 1 + 3);

                // Replay, once fixed: handled by its consumer only.
                failing.store(false, Ordering::SeqCst);
                let bystander_before = bystander_calls.load(Ordering::SeqCst);
                letters.replay(f.bus.as_ref(), &letter.id).await.unwrap().unwrap();
                within(async { while calls.load(Ordering::SeqCst) < 5 { tokio::time::sleep(Duration::from_millis(20)).await } }).await;
                tokio::time::sleep(Duration::from_millis(500)).await;
                assert_eq!(bystander_calls.load(Ordering::SeqCst), bystander_before);
                assert!(letters.list(10, None).await.unwrap().is_empty());
                assert!(letters.replay(f.bus.as_ref(), &letter.id).await.unwrap().is_none());

                shutdown.cancel();
                within(task).await.unwrap();
                within(bystander).await.unwrap();
            }

            #[tokio::test]
            async fn batch_consumers_take_events_together_and_isolate_a_bad_one() {
                let Some(f) = fixture().await else { return };
                let shutdown = CancellationToken::new();
                // Created before the events, so that it sees them all.
                drop(f.bus.consumer(&spec("batches", "city.>")).await.unwrap());
                let poison = Envelope::new("test", "city.message.created.general", json!({ "fail": true }));
                let mut events: Vec<Envelope> = (0..40).map(|n| event("city.message.created.general", n)).collect();
                events.insert(20, poison.clone());
                f.bus.publish_batch(&events).await.unwrap();

                let stored = Arc::new(std::sync::Mutex::new(Vec::<i64>::new()));
                let sizes = Arc::new(std::sync::Mutex::new(Vec::<usize>::new()));
                let task = {
                    let (stored, sizes) = (stored.clone(), sizes.clone());
                    tokio::spawn(run_batch_consumer(f.bus.clone(), f.db.db.clone(), spec("batches", "city.>"), 40, shutdown.clone(), move |batch: Vec<Envelope>| {
                        let (stored, sizes) = (stored.clone(), sizes.clone());
                        async move {
                            sizes.lock().unwrap().push(batch.len());
                            // All or nothing, like one transaction.
                            if batch.iter().any(|e| e.payload["fail"] == true) {
                                return Err(HandlerError::new("boom"));
                            }
                            stored.lock().unwrap().extend(batch.iter().map(|e| e.payload["n"].as_i64().unwrap()));
                            Ok(())
                        }
                    }))
                };
                let letters = DeadLetters::new(f.db.db.clone());
                let letter = first_dead_letter(&letters).await;
                assert_eq!(letter.event_id, poison.id);
                assert_eq!(letter.attempts, 3);
                within(async { while stored.lock().unwrap().len() < 40 { tokio::time::sleep(Duration::from_millis(20)).await } }).await;
                // Acknowledged, not handed out again.
                tokio::time::sleep(Duration::from_millis(1000)).await;
                let mut seen = stored.lock().unwrap().clone();
                seen.sort_unstable();
                assert_eq!(seen, (0..40).collect::<Vec<_>>());
                let sizes = sizes.lock().unwrap().clone();
                assert!(sizes.iter().all(|n| *n <= 40), "{sizes:?}");
                assert!(sizes.iter().any(|n| *n > 1), "never more than one at once: {sizes:?}");
                if f.kind == BusKind::Embedded {
                    // All 41 were waiting: the first batch is as large as
                    // allowed, not one claim of the single-delivery size.
                    assert_eq!(sizes[0], 40, "{sizes:?}");
                }

                shutdown.cancel();
                within(task).await.unwrap();
            }
        }
    )*};
}

contract!(
    embedded_sqlite => (Embedded, Sqlite),
    embedded_postgres => (Embedded, Postgres),
    jetstream => (Nats, Sqlite)
);

/// Retention of the bus tables in the SQL store (both databases).
mod retention {
    use super::*;

    async fn count(db: &daarion_store::Db, table: &str) -> i64 {
        daarion_store::sql::query_scalar(daarion_store::sql::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM {table}"
        )))
        .fetch_one(db.pool())
        .await
        .unwrap()
    }

    async fn check(sql: SqlKind) {
        let Some(f) = Fixture::new(BusKind::Embedded, sql).await else {
            return;
        };
        let mut consumer = f.bus.consumer(&spec("keeper", "city.>")).await.unwrap();
        f.bus
            .publish(&event("city.message.created.general", 1))
            .await
            .unwrap();
        f.bus
            .publish(&event("city.message.created.general", 2))
            .await
            .unwrap();
        within(consumer.next()).await.unwrap().ack().await.unwrap();
        daarion_store::sql::query("INSERT INTO bus_processed (consumer, event_id, processed_at) VALUES ('keeper', 'evt_old', '2000-01-01T00:00:00.000000Z')")
            .execute(f.db.db.pool())
            .await
            .unwrap();

        // Nothing is old enough under a long retention.
        let kept = daarion_bus::retention::prune(&f.db.db, Duration::from_secs(3600))
            .await
            .unwrap();
        assert_eq!(kept.events, 0);
        assert_eq!(kept.processed, 1, "only the record from 2000");

        // With no retention, the delivered event goes; the pending one stays.
        let pruned = daarion_bus::retention::prune(&f.db.db, Duration::ZERO)
            .await
            .unwrap();
        assert_eq!(pruned.events, 1);
        assert_eq!(count(&f.db.db, "bus_events").await, 1);
        let pending = within(consumer.next()).await.unwrap();
        assert_eq!(pending.envelope.payload["n"], 2);
    }

    #[tokio::test]
    async fn delivered_events_are_pruned_and_pending_ones_kept_sqlite() {
        check(SqlKind::Sqlite).await;
    }

    #[tokio::test]
    async fn delivered_events_are_pruned_and_pending_ones_kept_postgres() {
        check(SqlKind::Postgres).await;
    }
}
