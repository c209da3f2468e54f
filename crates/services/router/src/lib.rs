//! Router (port 7006, `/api/router/`): who answers a message.
//!
//! The `router-mentions` consumer reads `message.mention.<agent>` (raised by
//! messaging for every agent a message names), decides (`route`) and
//! publishes `agent.run.requested.<agent>` on `AGENT_RUNS` for the runtime;
//! the run's id comes from the mention's event id, so a redelivered
//! mention asks for the same run. `POST /api/router/route` shows city
//! admins what it would decide.
//!
//! Layout: `route` (the decision), `api`, `access`.

pub mod access;
pub mod api;
pub mod route;

use daarion_bus::{Bus, Envelope, HandlerError};
use daarion_service::{BuildError, Context, Event, Mount, Service};
use serde_json::Value;

pub const SERVICE: &str = "router";

/// Every agent mention.
pub const MENTIONS: &str = "message.mention.*";

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

fn build(ctx: Context) -> Result<Mount, BuildError> {
    let access = ctx.enforcer(daarion_access::enforce::NoResources);
    let state = api::RouterState {
        db: ctx.db.clone(),
        access: access.clone(),
    };
    let consumer = state.clone();
    let bus = ctx.bus.clone();
    ctx.consume("router-mentions", MENTIONS, move |event| {
        let state = consumer.clone();
        let bus = bus.clone();
        async move { mentioned(&state, bus.as_ref(), event).await }
    });
    Ok(Mount::new(access, api::router().with_state(state)))
}

async fn mentioned(
    state: &api::RouterState,
    bus: &dyn Bus,
    event: Envelope,
) -> Result<(), HandlerError> {
    let Some(agent) = event.subject.strip_prefix("message.mention.") else {
        return Ok(());
    };
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
    match route::decide(&state.db, &state.access, &mention)
        .await
        .map_err(HandlerError::new)?
    {
        route::Route::Run(request) => {
            let payload = serde_json::to_value(&request).map_err(HandlerError::new)?;
            let requested = Envelope::new(
                SERVICE,
                daarion_agents::runs::requested_subject(&request.agent),
                payload,
            )
            .with_actor(request.asker.clone());
            bus.publish(&requested).await.map_err(HandlerError::new)?;
            metrics::counter!("router_decisions_total", "decision" => "run").increment(1);
        }
        route::Route::Skip(reason) => {
            tracing::info!(agent, %room, %author, %reason, "mention not routed");
            metrics::counter!("router_decisions_total", "decision" => "skip").increment(1);
        }
    }
    Ok(())
}
