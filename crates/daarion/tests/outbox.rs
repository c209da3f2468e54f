//! The transactional outbox with NATS out of reach (a relay that stops
//! passing bytes): a `daarion serve city` process killed (SIGKILL) after a
//! message is committed and before its event reaches NATS publishes the
//! event once it is back; a live one makes only its first request wait on
//! the stalled bus. (On the embedded bus there is no gap to test: events
//! are stored in the data's own transaction.)

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use common::{City, Kind, spawn_with};
use daarion::Shape;
use daarion_bus::{Bus, ConsumerSpec, NatsBus};
use daarion_testkit::stall::Stall;
use serde_json::json;
use tokio::process::Child;

/// `daarion serve city` as its own process on these backends.
async fn serve_city(city: &City, nats_url: &str, port: u16) -> Child {
    common::serve_child(&city.settings, "city", port, nats_url, &[]).await
}

/// A distributed city whose `serve city` processes reach NATS through a
/// [`Stall`], and Alice's session.
struct Stalled {
    city: City,
    nats_url: String,
    stall: Stall,
    cookie: String,
    port: u16,
}

impl Stalled {
    async fn new() -> Option<Self> {
        let city = City::new(Kind::Distributed).await?;
        let nats_url = city.settings.nats_url.clone().unwrap();
        let stall = Stall::to(nats_url.trim_start_matches("nats://").to_owned()).await;
        // People sign in through an auth replica; the city process reads
        // their sessions from the shared store. The replica stops once
        // Alice is in: every process relays events left staged past the
        // outbox's grace, and only the city's may here.
        let auth = spawn_with(city.settings.clone(), Shape::Service("auth".into())).await;
        let cookie = format!("daarion_session={}", auth.session("alice").await);
        auth.stop().await;
        Some(Self {
            city,
            nats_url,
            stall,
            cookie,
            port: daarion_testkit::free_port("127.0.0.1"),
        })
    }

    /// `daarion serve city`, reaching NATS through the stall.
    async fn serve_city(&self) -> Child {
        let through = format!("nats://{}", self.stall.addr);
        serve_city(&self.city, &through, self.port).await
    }

    /// A durable consumer of the messages' events that exists before
    /// they are posted, as an agent's would.
    async fn probe(&self, name: &str) -> Box<dyn daarion_bus::Consumer> {
        let streams = daarion_service::streams(daarion::SERVICES).unwrap();
        let bus = NatsBus::connect(&self.nats_url, &self.city.settings.nats_namespace, streams)
            .await
            .unwrap();
        bus.consumer(&ConsumerSpec::new(name, "message.received.>"))
            .await
            .unwrap()
    }

    fn messages(&self) -> String {
        format!(
            "http://127.0.0.1:{}/api/city/rooms/general/messages",
            self.port
        )
    }
}

#[tokio::test]
async fn an_event_committed_before_a_crash_is_published_after_restart() {
    let Some(setup) = Stalled::new().await else {
        return;
    };
    let mut first = setup.serve_city().await;
    let mut consumer = setup.probe("crash-probe").await;

    setup.stall.pause();
    let body = "asked just before the crash";
    let post = tokio::spawn(
        reqwest::Client::new()
            .post(setup.messages())
            .header("cookie", &setup.cookie)
            .json(&json!({ "body": body }))
            .send(),
    );
    // The message is committed (its event staged beside it) while the
    // relay waits on a bus that takes nothing in.
    let history = setup.messages();
    let cookie = &setup.cookie;
    let id = daarion_testkit::eventually(
        "the message is committed",
        Duration::from_secs(10),
        || async {
            let page: serde_json::Value = reqwest::Client::new()
                .get(&history)
                .header("cookie", cookie)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let first = &page["items"][0];
            (first["body"] == body).then(|| first["id"].as_str().unwrap().to_owned())
        },
    )
    .await;
    first.start_kill().unwrap();
    first.wait().await.unwrap();
    assert!(
        post.await.unwrap().is_err(),
        "the request died with its process"
    );
    if let Ok(early) = tokio::time::timeout(Duration::from_secs(2), delivery(&mut consumer)).await {
        panic!(
            "nothing may reach the stream before the restart, yet {} {} did",
            early.envelope.subject, early.envelope.payload
        );
    }

    let _second = serve_city(&setup.city, &setup.nats_url, setup.port).await;
    let delivery = tokio::time::timeout(Duration::from_secs(20), delivery(&mut consumer))
        .await
        .expect("the event is relayed after the restart");
    assert!(
        delivery
            .envelope
            .subject
            .starts_with("message.received.rm_"),
        "{}",
        delivery.envelope.subject
    );
    assert_eq!(delivery.envelope.payload["room"]["slug"], "general");
    assert_eq!(delivery.envelope.payload["message"]["id"], id);
    assert_eq!(delivery.envelope.payload["message"]["body"], body);
    delivery.ack().await.unwrap();
}

/// While NATS takes nothing in, the post that meets it first waits for
/// its publish to time out, and the posts after it do not: their events
/// stay staged, and every one reaches the stream once NATS is back.
#[tokio::test]
async fn while_nats_takes_nothing_in_only_the_first_post_waits_for_it() {
    let Some(setup) = Stalled::new().await else {
        return;
    };
    let _city = setup.serve_city().await;
    let mut consumer = setup.probe("outage-probe").await;
    let client = reqwest::Client::new();
    let post = |body: &'static str| {
        let request = client
            .post(setup.messages())
            .header("cookie", &setup.cookie)
            .json(&json!({ "body": body }));
        async move {
            let started = Instant::now();
            let status = request.send().await.unwrap().status();
            assert_eq!(status, 201, "{body}");
            started.elapsed()
        }
    };

    setup.stall.pause();
    let first = post("met the outage").await;
    assert!(
        first >= Duration::from_secs(2),
        "waited for NATS: {first:?}"
    );
    let mut later = Vec::new();
    for body in ["after it", "and after that"] {
        later.push(post(body).await);
    }
    assert!(
        later.iter().all(|took| *took < Duration::from_secs(1)),
        "the next posts did not wait: {later:?}"
    );
    setup.stall.resume();
    let mut seen = HashSet::new();
    tokio::time::timeout(Duration::from_secs(40), async {
        while seen.len() < 3 {
            let delivery = delivery(&mut consumer).await;
            seen.insert(
                delivery.envelope.payload["message"]["body"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
            delivery.ack().await.unwrap();
        }
    })
    .await
    .unwrap_or_else(|_| panic!("every staged event reaches the stream; seen {seen:?}"));
}

/// The consumer's next delivery; a pull that fails (a busy server's
/// heartbeat, say) is pulled again.
async fn delivery(consumer: &mut Box<dyn daarion_bus::Consumer>) -> daarion_bus::Delivery {
    loop {
        match consumer.next().await {
            Ok(delivery) => return delivery,
            Err(error) => {
                eprintln!("pull failed, pulling again: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
