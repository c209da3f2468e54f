//! Router (port 7006, `/api/router/`): who answers a message.
//!
//! The `router-mentions` consumer reads `message.mention.<agent>` (raised by
//! messaging for every agent a message names), `router-messages` reads the
//! other new messages and asks the routing rules (`routing.agents`); both
//! decide (`route`) and publish `agent.run.requested.<agent>` on
//! `AGENT_RUNS` for the runtime; the run's id comes from the event's id,
//! so a redelivered message asks for the same run. `router-greetings`
//! reads `microdao.member.joined.<dao>`: a microDAO's orchestrator greets
//! each person who joins, in its `general` room. `POST /api/router/route`
//! shows city admins what it would decide.
//!
//! Layout: `route` (the decision), `api`, `access`.

pub mod access;
pub mod api;
pub mod route;

use std::sync::Arc;

use daarion_bus::{Bus, Envelope, HandlerError};
use daarion_control::{
    ControlClient,
    domain::{DocKind, Routing},
};
use daarion_service::{BuildError, Context, Event, Mount, Service};
use serde_json::{Value, json};

pub const SERVICE: &str = "router";

/// Every agent mention.
pub const MENTIONS: &str = "message.mention.*";

/// Newcomers to microDAOs (their orchestrators greet them).
pub const JOINED: &str = "microdao.member.joined.*";

pub static SPEC: Service = Service {
    name: SERVICE,
    port: 7006,
    version: env!("CARGO_PKG_VERSION"),
    migrations: &[],
    rules: access::RULES,
    websocket: false,
    streams: &[],
    events: &[Event::durable(daarion_agents::runs::REQUESTED)],
    settings: None,
    example: daarion_service::no_example,
    build: |ctx| Box::pin(async move { build(ctx) }),
};

/// Every new message (for the routing rules).
pub const RECEIVED: &str = "message.received.*";

/// The control plane's document of the router's rules.
pub const RULES_KEY: &str = "routing.agents";

fn build(ctx: Context) -> Result<Mount, BuildError> {
    let access = ctx.enforcer(daarion_access::enforce::NoResources);
    let state = api::RouterState {
        db: ctx.db.clone(),
        access: access.clone(),
    };
    let router = Router {
        state: state.clone(),
        bus: ctx.bus.clone(),
        control: ctx.component()?,
    };
    let mentions = router.clone();
    ctx.consume("router-mentions", MENTIONS, move |event| {
        let router = mentions.clone();
        async move { router.mentioned(event).await }
    });
    // Every message in the city passes here and nearly all are let go:
    // taken in batches, so the bus's bookkeeping is per batch, not per
    // message (a run's id comes from its event's, so a batch handled again
    // asks for the same runs).
    let greeter = router.clone();
    ctx.consume("router-greetings", JOINED, move |event| {
        let router = greeter.clone();
        async move { router.joined(event).await }
    });
    let messages = router;
    ctx.consume_batches("router-messages", RECEIVED, move |events| {
        let router = messages.clone();
        async move {
            for event in events {
                router.received(event).await?;
            }
            Ok(())
        }
    });
    Ok(Mount::new(access, api::router().with_state(state)))
}

#[derive(Clone)]
struct Router {
    state: api::RouterState,
    bus: Arc<dyn Bus>,
    control: ControlClient,
}

impl Router {
    /// A mention of an agent: that agent, if the policies agree.
    async fn mentioned(&self, event: Envelope) -> Result<(), HandlerError> {
        let Some(agent) = event.subject.strip_prefix("message.mention.") else {
            return Ok(());
        };
        self.route(&event, agent).await
    }

    /// A message that mentions no agent: the room's responder (set by
    /// its managers), else the agent the routing rules name, if any (read
    /// through the process's control-plane cache, so a change applies
    /// within seconds, without a restart).
    async fn received(&self, event: Envelope) -> Result<(), HandlerError> {
        let message = &event.payload["message"];
        let author = message["author"].as_str().unwrap_or_default();
        let mentions_agent = message["mentions"].as_array().is_some_and(|m| {
            m.iter()
                .any(|m| m.as_str().is_some_and(|m| m.starts_with("agent:")))
        });
        if !author.starts_with("user:") || mentions_agent {
            return Ok(());
        }
        // The room's own responder first, then the city's rules.
        if let Some(agent) = event.payload["room"]["responder"].as_str() {
            return self.route(&event, agent).await;
        }
        let Some(doc) = self
            .control
            .get(DocKind::Config, RULES_KEY)
            .await
            .map_err(HandlerError::new)?
        else {
            return Ok(());
        };
        let rules: Routing =
            serde_json::from_value(doc.value.clone()).map_err(HandlerError::new)?;
        let room = &event.payload["room"];
        let metadata = json!({
            "room": room["id"], "room_kind": room["kind"], "room_slug": room["slug"],
            "dao": room["dao"], "topic": message["topic"], "author": author,
        });
        let text = message["body"].as_str().unwrap_or_default();
        match route::pick(&rules.rules, &metadata, text) {
            Some(agent) => self.route(&event, &agent).await,
            None => Ok(()),
        }
    }

    /// A person joined a microDAO: its orchestrator, if it has one, greets
    /// them in `general`. The newcomer asked nothing, so only the agent's
    /// right to post there is checked (by the runtime).
    async fn joined(&self, event: Envelope) -> Result<(), HandlerError> {
        let (Some(dao), Some(person)) = (
            event.payload["dao"].as_str(),
            event.payload["principal"].as_str(),
        ) else {
            return Ok(());
        };
        if !person.starts_with("user:") {
            return Ok(());
        }
        let db = &self.state.db;
        let Some(found) = daarion_microdao::store::dao(db, dao)
            .await
            .map_err(HandlerError::new)?
        else {
            return Ok(());
        };
        let (Some(agent), None) = (found.orchestrator, found.archived_at) else {
            return Ok(());
        };
        // Made from the microDAO's event, which came before this one.
        let general = daarion_messaging::store::by_key(db, &format!("dao:{dao}:general"))
            .await
            .map_err(HandlerError::new)?
            .ok_or_else(|| HandlerError::new(format!("{dao} has no general room yet")))?;
        let handle = event.payload["handle"].as_str().unwrap_or(person);
        let request = daarion_agents::runs::RunRequest {
            run_id: route::run_id(&event.id),
            agent,
            room: general.id,
            topic: String::new(),
            message_id: None,
            messages: Vec::new(),
            asker: person.to_owned(),
            note: Some(format!(
                "{handle} just joined {}. Welcome them by name in a sentence or two, \
                 as the community's orchestrator.",
                found.name
            )),
        };
        self.request(&request).await?;
        metrics::counter!("router_decisions_total", "decision" => "greet").increment(1);
        Ok(())
    }

    async fn request(
        &self,
        request: &daarion_agents::runs::RunRequest,
    ) -> Result<(), HandlerError> {
        let payload = serde_json::to_value(request).map_err(HandlerError::new)?;
        let requested = Envelope::new(
            SERVICE,
            daarion_agents::runs::requested_subject(&request.agent),
            payload,
        )
        .with_actor(request.asker.clone());
        self.bus
            .publish(&requested)
            .await
            .map_err(HandlerError::new)
    }

    /// Asks for `agent`'s run on the message of `event`, if the policies
    /// agree; the run's id comes from the event's.
    async fn route(&self, event: &Envelope, agent: &str) -> Result<(), HandlerError> {
        let message = &event.payload["message"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        let (author, room, topic) = (
            text(&message["author"]),
            text(&event.payload["room"]["id"]),
            text(&message["topic"]),
        );
        let mention = route::Mention {
            event: &event.id,
            agent,
            author: &author,
            room: &room,
            topic: &topic,
            message_id: message["id"].as_str(),
        };
        match route::decide(&self.state.db, &self.state.access, &mention)
            .await
            .map_err(HandlerError::new)?
        {
            route::Route::Run(request) => {
                self.request(&request).await?;
                metrics::counter!("router_decisions_total", "decision" => "run").increment(1);
            }
            route::Route::Skip(reason) => {
                tracing::info!(agent, %room, %author, %reason, "message not routed");
                metrics::counter!("router_decisions_total", "decision" => "skip").increment(1);
            }
        }
        Ok(())
    }
}

/// The metrics this crate records, with their `# HELP` text.
pub const METRICS: &[daarion_kernel::metrics::Help] = &[(
    "router_decisions_total",
    "Routing decisions for messages, by decision.",
)];
