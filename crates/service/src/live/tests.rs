use std::{
    collections::HashSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use axum::{
    Router,
    extract::{Query, State, ws::WebSocketUpgrade},
    response::{IntoResponse, Response},
    routing::get,
};
use daarion_access::{
    Authenticate, Credential, Principal, PrincipalKind,
    enforce::AuthnUnavailable,
    events::{POLICY_CHANGED, REVOKED, Revoked},
};
use daarion_bus::{Bus, Envelope};
use daarion_kernel::shutdown::{CancellationToken, TaskTracker};
use daarion_testkit::{SqlKind, eventually};
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use super::{Flow, Gone, Handler, Limits, Live, Outbound, Parts};

const SUBJECT: &str = "presence.city.join";

struct Fixture {
    live: Live,
    bus: Arc<dyn Bus>,
    url: String,
    /// Sessions whose `closed` ran.
    closed: Arc<AtomicUsize>,
    /// Whether the policies grant the sockets (their `still_allowed`).
    allowed: Arc<AtomicBool>,
    credentials: Arc<Credentials>,
    shutdown: CancellationToken,
    _db: daarion_testkit::TestDb,
}

#[derive(Clone)]
struct Served {
    live: Live,
    limits: Limits,
    closed: Arc<AtomicUsize>,
    allowed: Arc<AtomicBool>,
}

/// Sessions by id; the revoked ones no longer stand.
#[derive(Default)]
struct Credentials {
    revoked: Mutex<HashSet<String>>,
}

#[async_trait]
impl Authenticate for Credentials {
    async fn session(&self, _: &str) -> Result<Option<Principal>, AuthnUnavailable> {
        Ok(None)
    }

    async fn api_key(&self, _: &str) -> Result<Option<Principal>, AuthnUnavailable> {
        Ok(None)
    }

    async fn principal(
        &self,
        _: PrincipalKind,
        _: &str,
    ) -> Result<Option<Principal>, AuthnUnavailable> {
        Ok(None)
    }

    async fn is_current(&self, credential: &Credential) -> Result<bool, AuthnUnavailable> {
        let revoked = self.revoked.lock().unwrap();
        Ok(credential.id().is_none_or(|id| !revoked.contains(id)))
    }
}

/// Echoes `say` frames, closes with 4000 on `bye`; says hello when opened.
struct Echo {
    closed: Arc<AtomicUsize>,
    allowed: Arc<AtomicBool>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum EchoFrame {
    Say { text: String },
    Bye,
}

#[async_trait]
impl Handler for Echo {
    type Frame = EchoFrame;

    async fn opened(&mut self, out: &mut Outbound) -> Result<(), Gone> {
        out.send(&json!({ "type": "hello" })).await
    }

    async fn received(&mut self, out: &mut Outbound, frame: EchoFrame) -> Flow {
        match frame {
            EchoFrame::Say { text } => {
                let _ = out.send(&json!({ "type": "echo", "text": text })).await;
                Flow::Continue
            }
            EchoFrame::Bye => Flow::Close(4000, "bye"),
        }
    }

    async fn still_allowed(&mut self, _out: &mut Outbound) -> bool {
        self.allowed.load(Ordering::SeqCst)
    }

    async fn closed(&mut self) {
        self.closed.fetch_add(1, Ordering::SeqCst);
    }
}

fn render(event: Envelope) -> Value {
    event.payload
}

#[derive(Deserialize)]
struct As {
    session: String,
}

/// A socket of the person whose session `?session=` names.
async fn socket(
    State(served): State<Served>,
    Query(who): Query<As>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let Ok(feed) = served.live.watch(SUBJECT, render).await else {
        return axum::http::StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let handler = Echo {
        closed: served.closed.clone(),
        allowed: served.allowed.clone(),
    };
    let caller = Principal {
        credential: Credential::Session { id: who.session },
        ..Principal::service("tester")
    };
    served
        .live
        .serve(upgrade, &caller, served.limits, feed, handler)
}

/// Ping and re-check intervals of 30 s, a lifetime of an hour.
async fn fixture(ping_interval: Duration) -> Fixture {
    fixture_with(Limits {
        ping_interval,
        ..limits()
    })
    .await
}

fn limits() -> Limits {
    Limits {
        max_message_bytes: 1024,
        messages_per_second: 1000.0,
        burst: 100,
        ping_interval: Duration::from_secs(30),
        recheck: Duration::from_secs(30),
        max_lifetime: Duration::from_secs(3600),
    }
}

async fn fixture_with(limits: Limits) -> Fixture {
    let db = daarion_testkit::migrated_db(SqlKind::Sqlite, &[daarion_bus::MIGRATIONS])
        .await
        .expect("SQLite is always there");
    let bus: Arc<dyn Bus> = Arc::new(daarion_bus::EmbeddedBus::new(
        db.db.clone(),
        daarion_bus::subject::Streams::new([]).unwrap(),
    ));
    let shutdown = CancellationToken::new();
    let credentials = Arc::new(Credentials::default());
    let live = Live::new(Parts {
        service: "test",
        bus: bus.clone(),
        cache: Arc::new(daarion_cache::MemoryCache::new(1000)),
        authn: credentials.clone(),
        shutdown: shutdown.clone(),
        tasks: TaskTracker::new(),
    });
    let closed = Arc::new(AtomicUsize::new(0));
    let allowed = Arc::new(AtomicBool::new(true));
    let served = Served {
        live: live.clone(),
        limits,
        closed: closed.clone(),
        allowed: allowed.clone(),
    };
    let router = Router::new().route("/ws", get(socket)).with_state(served);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/ws?session=", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    Fixture {
        live,
        bus,
        url,
        closed,
        allowed,
        credentials,
        shutdown,
        _db: db,
    }
}

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A socket of session `s1`.
async fn connect(url: &str) -> Client {
    connect_as(url, "s1").await
}

async fn connect_as(url: &str, session: &str) -> Client {
    let (mut client, _) = tokio_tungstenite::connect_async(format!("{url}{session}"))
        .await
        .unwrap();
    assert_eq!(next_json(&mut client).await["type"], "hello");
    client
}

/// The next text frame, as JSON (pings are answered by reading on).
async fn next_json(client: &mut Client) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), client.next())
            .await
            .expect("a frame within 5 s")
            .expect("the socket is open")
            .unwrap();
        match message {
            WsMessage::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            WsMessage::Ping(_) | WsMessage::Pong(_) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Reads until the server's close frame, and returns its code and reason.
async fn close_of(client: &mut Client) -> (u16, String) {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), client.next())
            .await
            .expect("a close within 5 s");
        match message {
            Some(Ok(WsMessage::Close(Some(frame)))) => {
                return (frame.code.into(), frame.reason.to_string());
            }
            Some(Ok(WsMessage::Close(None)) | Err(_)) | None => panic!("closed without a code"),
            Some(Ok(_)) => {}
        }
    }
}

async fn publish(bus: &Arc<dyn Bus>, n: u64) {
    bus.publish(&Envelope::new("t", SUBJECT, json!({ "n": n })))
        .await
        .unwrap();
}

#[tokio::test]
async fn one_subscription_serves_every_socket_and_ends_with_the_last() {
    let f = fixture(Duration::from_secs(30)).await;
    let mut a = f.live.watch(SUBJECT, render).await.unwrap();
    let mut b = f.live.watch(SUBJECT, render).await.unwrap();
    assert_eq!(f.live.hub.feeds(), 1);
    publish(&f.bus, 1).await;
    let (fa, fb) = (a.recv().await.unwrap(), b.recv().await.unwrap());
    assert_eq!(fa.as_str(), r#"{"n":1}"#);
    assert_eq!(fa, fb);

    drop((a, b));
    // The feed notices on its next event that nobody watches, and closes.
    publish(&f.bus, 2).await;
    tokio::time::timeout(Duration::from_secs(5), async {
        while f.live.hub.feeds() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .unwrap();
    let mut c = f.live.watch(SUBJECT, render).await.unwrap();
    publish(&f.bus, 3).await;
    assert_eq!(c.recv().await.unwrap().as_str(), r#"{"n":3}"#);
}

#[tokio::test]
async fn sessions_relay_the_feed_hand_frames_to_the_handler_and_close_as_asked() {
    let f = fixture(Duration::from_secs(30)).await;
    let mut client = connect(&f.url).await;
    publish(&f.bus, 7).await;
    assert_eq!(next_json(&mut client).await, json!({ "n": 7 }));

    client
        .send(WsMessage::Text(
            json!({"type": "say", "text": "hi"}).to_string().into(),
        ))
        .await
        .unwrap();
    assert_eq!(
        next_json(&mut client).await,
        json!({"type": "echo", "text": "hi"})
    );
    // A frame of no known type is an error frame; the session goes on.
    client
        .send(WsMessage::Text(r#"{"type":"shout"}"#.into()))
        .await
        .unwrap();
    let error = next_json(&mut client).await;
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["code"], "bad_request");

    client
        .send(WsMessage::Text(r#"{"type":"bye"}"#.into()))
        .await
        .unwrap();
    assert_eq!(close_of(&mut client).await, (4000, "bye".into()));
    closed_once(&f).await;
}

#[tokio::test]
async fn a_silent_client_is_dropped_and_a_listening_one_is_kept() {
    let f = fixture(Duration::from_millis(100)).await;
    let mut listening = connect(&f.url).await;
    let mut silent = connect(&f.url).await;
    // The silent client reads nothing, so it answers no ping.
    let keep_reading = tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_millis(600);
        while tokio::time::Instant::now() < deadline {
            if let Ok(Some(Ok(WsMessage::Close(_)))) =
                tokio::time::timeout(Duration::from_millis(50), listening.next()).await
            {
                panic!("the listening client was closed");
            }
        }
        listening
    });
    let mut listening = keep_reading.await.unwrap();
    assert_eq!(close_of(&mut silent).await, (1001, "no heartbeat".into()));
    publish(&f.bus, 1).await;
    assert_eq!(next_json(&mut listening).await, json!({ "n": 1 }));
}

#[tokio::test]
async fn shutdown_closes_every_session_with_going_away() {
    let f = fixture(Duration::from_secs(30)).await;
    let mut client = connect(&f.url).await;
    f.shutdown.cancel();
    assert_eq!(
        close_of(&mut client).await,
        (1001, "server shutting down".into())
    );
    closed_once(&f).await;
}

/// The handler's `closed` ran once.
async fn closed_once(f: &Fixture) {
    eventually(
        "the handler's closed hook",
        Duration::from_secs(5),
        || async { (f.closed.load(Ordering::SeqCst) == 1).then_some(()) },
    )
    .await;
}

#[tokio::test]
async fn a_revoked_session_closes_its_sockets_and_no_other() {
    let f = fixture(Duration::from_secs(30)).await;
    let mut revoked = connect_as(&f.url, "s1").await;
    let mut kept = connect_as(&f.url, "s2").await;
    let event = Revoked {
        token_hashes: vec!["h1".into()],
        credentials: vec!["s1".into()],
    };
    f.bus
        .publish(&Envelope::new(
            "auth",
            REVOKED,
            serde_json::to_value(&event).unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(
        close_of(&mut revoked).await,
        (4401, "signed out: credential revoked".into())
    );
    publish(&f.bus, 1).await;
    assert_eq!(next_json(&mut kept).await, json!({ "n": 1 }));
}

#[tokio::test]
async fn a_missed_revocation_is_found_by_the_periodic_recheck() {
    let f = fixture_with(Limits {
        recheck: Duration::from_millis(100),
        ..limits()
    })
    .await;
    let mut client = connect(&f.url).await;
    f.credentials.revoked.lock().unwrap().insert("s1".into());
    assert_eq!(
        close_of(&mut client).await,
        (4401, "signed out: credential revoked or expired".into())
    );
}

#[tokio::test]
async fn a_policy_change_closes_sockets_the_policies_no_longer_grant() {
    let f = fixture(Duration::from_secs(30)).await;
    let mut client = connect(&f.url).await;
    // A change that still grants the socket leaves it open.
    f.bus
        .publish(&Envelope::new(
            "pdp",
            POLICY_CHANGED,
            json!({ "version": 2 }),
        ))
        .await
        .unwrap();
    publish(&f.bus, 1).await;
    assert_eq!(next_json(&mut client).await, json!({ "n": 1 }));
    f.allowed.store(false, Ordering::SeqCst);
    f.bus
        .publish(&Envelope::new(
            "pdp",
            POLICY_CHANGED,
            json!({ "version": 3 }),
        ))
        .await
        .unwrap();
    assert_eq!(
        close_of(&mut client).await,
        (4403, "no longer allowed".into())
    );
}

#[tokio::test]
async fn a_socket_closes_at_its_maximum_lifetime() {
    let f = fixture_with(Limits {
        max_lifetime: Duration::from_millis(200),
        ..limits()
    })
    .await;
    let mut client = connect(&f.url).await;
    assert_eq!(
        close_of(&mut client).await,
        (4408, "connection lifetime reached; reconnect".into())
    );
}
