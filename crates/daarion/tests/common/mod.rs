//! Spawns a real DAARION app on a random port with backends of its own.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::{collections::HashMap, net::SocketAddr, sync::Arc, time::Duration};

use daarion::{App, Settings, Shape};
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Runs each named `async fn(Kind)` as two tests, `<name>::embedded` and
/// `<name>::distributed` (skipped loudly, or failed under CI, without the
/// backends' URLs): the same assertions on both shapes.
#[macro_export]
macro_rules! on_every_backend {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test]
            async fn embedded() {
                super::$name(super::common::Kind::Embedded).await
            }

            #[tokio::test]
            async fn distributed() {
                super::$name(super::common::Kind::Distributed).await
            }
        }
    )*};
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SQLite file, in-process bus and cache.
    Embedded,
    /// PostgreSQL, NATS JetStream and Redis.
    Distributed,
}

/// Backend settings shared by replicas of one test city, and the people
/// registered in it (name → session token).
pub struct City {
    pub settings: Settings,
    pub people: People,
    _dir: tempfile::TempDir,
}

/// People signed in with real passkey ceremonies, by name. The first one
/// registered in a city is always `root`, its admin, so every other name
/// is a plain citizen.
pub type People = Arc<tokio::sync::Mutex<HashMap<String, String>>>;

/// Test settings: no per-client limits in the way of fast tests (the limits
/// are tested on their own).
pub fn test_settings(dir: &std::path::Path) -> Settings {
    let mut settings = Settings {
        listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        data_dir: dir.to_path_buf(),
        models_dir: Some(daarion_testkit::models_dir()),
        log: "warn".into(),
        ..Settings::default()
    };
    settings.gateway.rate_limit_per_second = 100_000.0;
    settings.gateway.rate_limit_burst = 100_000;
    settings.gateway.principal_rate_limit_per_second = 100_000.0;
    settings.gateway.principal_rate_limit_burst = 100_000;
    settings
        .services
        .update(&daarion_auth::SPEC, |x: &mut daarion_auth::Settings| {
            x.login_attempts_per_minute = 100_000;
            // The software passkey's page (tests listen on random ports).
            x.origins = vec![daarion_testkit::passkey::ORIGIN.into()];
        })
        .unwrap();
    settings
}

/// Whether the local models are there: required under CI (`scripts/test.sh`
/// installs them), a loud skip elsewhere.
/// The model's latest request whose last turn says `said`: its messages.
pub fn asked_with(fake: &daarion_testkit::llm::FakeLlm, said: &str) -> Vec<Value> {
    fake.bodies()
        .into_iter()
        .rev()
        .find(|b| {
            b["messages"].as_array().unwrap().last().unwrap()["content"]
                .as_str()
                .is_some_and(|c| c.contains(said))
        })
        .unwrap_or_else(|| panic!("the model was not asked {said:?}"))["messages"]
        .as_array()
        .unwrap()
        .clone()
}

/// `subject` (`user:<id>`, `agent:<id>`) on the pro plan with room for
/// many model calls a minute.
pub async fn on_a_bigger_plan(app: &TestApp, subject: &str) {
    let (status, body) = app
        .send(
            "PUT",
            &format!("/api/control/quotas/{subject}"),
            "root",
            Some(serde_json::json!({"plan": "pro", "tokens_per_minute": 100000})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

pub fn models_installed() -> bool {
    daarion_testkit::require_model(daarion_embed::install::TABLE).is_some()
}

impl City {
    pub async fn new(kind: Kind) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mut settings = test_settings(dir.path());
        if kind == Kind::Distributed {
            let pg = daarion_testkit::require_env("DATABASE_URL")?;
            settings.database_url = Some(daarion_testkit::fresh_postgres_database(&pg).await);
            settings.nats_url = Some(daarion_testkit::require_env("NATS_URL")?);
            settings.nats_namespace = daarion_testkit::unique("t");
            settings.redis_url = Some(daarion_testkit::require_env("REDIS_URL")?);
            settings.redis_prefix = format!("{}:", daarion_testkit::unique("t"));
        }
        Some(Self {
            settings,
            people: People::default(),
            _dir: dir,
        })
    }

    /// `serve auth` and two `serve <service>` replicas on this city's
    /// backends, which know the auth replica's people through the store.
    pub async fn auth_and_two_replicas(&self, service: &str) -> (TestApp, TestApp, TestApp) {
        let auth = spawn_with(self.settings.clone(), Shape::Service("auth".into())).await;
        let mut replicas = Vec::new();
        for _ in 0..2 {
            let mut replica =
                spawn_with(self.settings.clone(), Shape::Service(service.into())).await;
            replica.auth_base = auth.url("");
            replica.people = self.people.clone();
            replicas.push(replica);
        }
        let b = replicas.pop().expect("two replicas");
        let a = replicas.pop().expect("two replicas");
        (auth, a, b)
    }

    pub async fn spawn(&self) -> TestApp {
        let mut app = spawn_with(self.settings.clone(), Shape::AllInOne).await;
        app.people = self.people.clone();
        app
    }
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub people: People,
    /// Where people register and sign in (this app unless it has no auth service).
    pub auth_base: String,
    stop: Option<oneshot::Sender<()>>,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

pub async fn spawn_with(settings: Settings, shape: Shape) -> TestApp {
    daarion_kernel::server::install_crypto_provider();
    let app = App::build(settings, shape).await.expect("app builds");
    let addr = app.local_addr();
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        client: reqwest::Client::new(),
        people: People::default(),
        auth_base: format!("http://{addr}"),
        stop: Some(stop),
        handle,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// The session token of `name`, registering them with a software
    /// passkey the first time.
    pub async fn session(&self, name: &str) -> String {
        let mut people = self.people.lock().await;
        if people.is_empty() && name != "root" {
            let root =
                daarion_testkit::passkey::Person::register(&self.client, &self.auth_base, "root")
                    .await
                    .expect("root registers");
            people.insert("root".into(), root.session);
        }
        if let Some(token) = people.get(name) {
            return token.clone();
        }
        let person =
            daarion_testkit::passkey::Person::register(&self.client, &self.auth_base, name)
                .await
                .expect("person registers");
        people.insert(name.to_owned(), person.session.clone());
        person.session
    }

    /// `Cookie` header value signing in as `name`.
    pub async fn cookie(&self, name: &str) -> String {
        format!("daarion_session={}", self.session(name).await)
    }

    /// GET as the citizen `visitor`.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.get_as(path, Some("visitor")).await
    }

    pub async fn get_as(&self, path: &str, user: Option<&str>) -> (u16, Value) {
        let mut request = self.client.get(self.url(path));
        if let Some(user) = user {
            request = request.header("cookie", self.cookie(user).await);
        }
        decode(request.send().await.unwrap()).await
    }

    pub async fn post(&self, path: &str, user: Option<&str>, body: Value) -> (u16, Value) {
        let mut request = self.client.post(self.url(path)).json(&body);
        if let Some(user) = user {
            request = request.header("cookie", self.cookie(user).await);
        }
        decode(request.send().await.unwrap()).await
    }

    /// A JSON request with one credential header (a cookie or an
    /// `Authorization`): status and body.
    pub async fn send_with(
        &self,
        method: &str,
        path: &str,
        credential: (&str, String),
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .client
            .request(method.parse().unwrap(), self.url(path))
            .header(credential.0, credential.1);
        if let Some(body) = body {
            request = request.json(&body);
        }
        decode(request.send().await.unwrap()).await
    }

    /// A JSON request as the signed-in person `user`.
    pub async fn send(
        &self,
        method: &str,
        path: &str,
        user: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let cookie = self.cookie(user).await;
        self.send_with(method, path, ("cookie", cookie), body).await
    }

    /// The account id of `name`.
    pub async fn user_id(&self, name: &str) -> String {
        let (_, me) = self.get_as("/api/auth/me", Some(name)).await;
        me["user"]["id"].as_str().unwrap().to_owned()
    }

    /// A WebSocket to `path`, signed in as `user`.
    pub async fn ws_as(&self, path: &str, user: &str) -> Ws {
        self.ws_with(path, "cookie", &self.cookie(user).await).await
    }

    /// A WebSocket to `path` with one extra request header.
    pub async fn ws_with(&self, path: &str, header: &'static str, value: &str) -> Ws {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = self.ws_url(path).into_client_request().unwrap();
        request.headers_mut().insert(header, value.parse().unwrap());
        tokio_tungstenite::connect_async(request)
            .await
            .expect("websocket connects")
            .0
    }

    /// A new API key of `user` for their agent `agent` (claiming it).
    pub async fn api_key_for_agent(&self, user: &str, agent: &str) -> String {
        self.new_api_key(user, serde_json::json!({ "name": "agent", "agent": agent }))
            .await
    }

    /// Sets the tools of `owner`'s agent `agent`.
    pub async fn give_tools(&self, owner: &str, agent: &str, tools: &[&str]) {
        let (status, body) = self
            .send(
                "PATCH",
                &format!("/api/agents/agents/{agent}"),
                owner,
                Some(serde_json::json!({ "tools": tools })),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// A new API key of `user` with `scopes`.
    pub async fn api_key(&self, user: &str, scopes: &[&str]) -> String {
        self.new_api_key(
            user,
            serde_json::json!({ "name": "test", "scopes": scopes }),
        )
        .await
    }

    pub async fn new_api_key(&self, user: &str, request: Value) -> String {
        let response = self
            .client
            .post(format!("{}/api/auth/api-keys", self.auth_base))
            .header("cookie", self.cookie(user).await)
            .json(&request)
            .send()
            .await
            .unwrap();
        let (status, body) = decode(response).await;
        assert_eq!(status, 201, "{body}");
        body["key"].as_str().unwrap().to_owned()
    }

    /// Stops the app and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(15), &mut self.handle)
            .await
            .expect("app stops in time")
            .unwrap()
            .unwrap();
    }
}

pub async fn decode(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// Asserts the standard error shape and returns its code.
#[track_caller]
pub fn error_code(body: &Value) -> &str {
    let error = &body["error"];
    assert!(error["message"].is_string(), "not an error body: {body}");
    assert!(
        error["request_id"].is_string(),
        "error without request id: {body}"
    );
    error["code"].as_str().expect("error code")
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn ws(url: &str) -> Ws {
    tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects")
        .0
}

/// The next JSON text frame, within 10 s.
pub async fn next_json(ws: &mut Ws) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("socket open")
            .expect("frame ok");
        match frame {
            WsMessage::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// Waits for the next frame whose `type` is `kind`.
pub async fn next_of(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let frame = next_json(ws).await;
        if frame["type"] == kind {
            return frame;
        }
    }
}

/// The close code the server sends, within 10 s (text frames are skipped).
pub async fn close_code(ws: &mut Ws) -> u16 {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s");
        match frame {
            Some(Ok(WsMessage::Close(Some(close)))) => return u16::from(close.code),
            Some(Ok(WsMessage::Close(None))) | None => return 1005,
            Some(Ok(_)) => continue,
            Some(Err(error)) => panic!("socket failed before closing: {error}"),
        }
    }
}

pub async fn send_text(ws: &mut Ws, text: String) {
    ws.send(WsMessage::Text(text.into())).await.unwrap();
}

/// A microDAO `slug` owned by `owner` (its name is its slug), and the id
/// of its `general` room (opened by messaging when the microDAO's event
/// arrives).
pub async fn community(app: &TestApp, owner: &str, slug: &str, visibility: &str) -> String {
    let (status, dao) = app
        .send(
            "POST",
            "/api/microdao/daos",
            owner,
            Some(serde_json::json!({"slug": slug, "name": slug, "visibility": visibility})),
        )
        .await;
    assert_eq!(status, 201, "{dao}");
    daarion_testkit::eventually("the general room", Duration::from_secs(10), || async {
        let (status, rooms) = app
            .get_as(&format!("/api/messaging/daos/{slug}/rooms"), Some(owner))
            .await;
        if status != 200 {
            return None;
        }
        rooms["items"]
            .as_array()?
            .iter()
            .find(|r| r["slug"] == "general")
            .and_then(|r| r["id"].as_str())
            .map(str::to_owned)
    })
    .await
}

/// The rooms of an orchestrated microDAO (`general`, `governance`,
/// `crew`) as `who` sees them, once messaging opened all three.
pub async fn orchestrated_rooms(app: &TestApp, dao: &str, who: &str) -> Vec<serde_json::Value> {
    daarion_testkit::eventually("the community's rooms", Duration::from_secs(10), || async {
        let (_, rooms) = app
            .get_as(&format!("/api/messaging/daos/{dao}/rooms"), Some(who))
            .await;
        let rooms = rooms["items"].as_array()?.clone();
        (rooms.len() == 3).then_some(rooms)
    })
    .await
}

/// A gateway route table (`gateway.routes_file`) in `dir`.
pub fn routes_file(dir: &std::path::Path, table: &str) -> std::path::PathBuf {
    let path = dir.join("routes.toml");
    std::fs::write(&path, table).unwrap();
    path
}

/// `daarion serve <service>` as its own process on `settings`' backends
/// (NATS at `nats_url`, which a test may route through a proxy), with
/// `env` on top; returned once healthy.
pub async fn serve_child(
    settings: &Settings,
    service: &str,
    port: u16,
    nats_url: &str,
    env: &[(&str, &str)],
) -> tokio::process::Child {
    let listen = format!("127.0.0.1:{port}");
    daarion_child(
        settings,
        &["serve", service, "--listen", &listen],
        port,
        nats_url,
        env,
    )
    .await
}

/// `daarion <args>` as [`serve_child`] runs it, listening on `port`.
pub async fn daarion_child(
    settings: &Settings,
    args: &[&str],
    port: u16,
    nats_url: &str,
    env: &[(&str, &str)],
) -> tokio::process::Child {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_daarion"))
        .args(args)
        .env("DATABASE_URL", settings.database_url.as_deref().unwrap())
        .env("NATS_URL", nats_url)
        .env("REDIS_URL", settings.redis_url.as_deref().unwrap())
        .env("DAARION__NATS_NAMESPACE", &settings.nats_namespace)
        .env("DAARION__REDIS_PREFIX", &settings.redis_prefix)
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let health = format!("http://127.0.0.1:{port}/health");
    daarion_testkit::eventually(
        &format!("daarion {} is healthy", args.join(" ")),
        Duration::from_secs(30),
        || async {
            let response = reqwest::get(&health).await.ok()?;
            response.status().is_success().then_some(())
        },
    )
    .await;
    child
}
