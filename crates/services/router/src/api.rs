//! HTTP routes: a dry run of the router's decision.

use std::sync::Arc;

use axum::extract::State;
use daarion_access::Enforcer;
use daarion_agents::runs::RunRequest;
use daarion_kernel::{ApiError, http::Json};
use daarion_store::Db;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::route::{self, Mention, Route, RouteError};

#[derive(Clone)]
pub struct RouterState {
    pub db: Db,
    pub access: Arc<Enforcer>,
}

impl From<RouteError> for ApiError {
    fn from(error: RouteError) -> Self {
        ApiError::unavailable(&error)
    }
}

pub fn router() -> OpenApiRouter<RouterState> {
    OpenApiRouter::new().routes(routes!(route_mention))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteMention {
    /// The agent mentioned (its slug).
    #[schema(max_length = 64)]
    pub agent: String,
    /// Who would write: `user:<id>` or `agent:<id>`.
    #[schema(max_length = 128)]
    pub author: String,
    /// The room's id.
    #[schema(max_length = 128)]
    pub room: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RouteDecision {
    /// Whether the agent would be asked to answer.
    pub run: bool,
    /// Why not, when it would not.
    pub reason: Option<String>,
    /// The run it would request: agent, room, and who asks.
    #[schema(value_type = Option<Object>)]
    pub request: Option<RunRequest>,
}

/// What the router would do with a mention, without doing it (city admins:
/// why does this agent not answer there?).
#[utoipa::path(post, path = "/route", tag = "router", request_body = RouteMention,
    responses((status = 200, body = RouteDecision), (status = 401), (status = 403),
        (status = 422)))]
async fn route_mention(
    State(state): State<RouterState>,
    Json(input): Json<RouteMention>,
) -> Result<Json<RouteDecision>, ApiError> {
    for (name, value, max) in [
        ("agent", &input.agent, 64),
        ("author", &input.author, 128),
        ("room", &input.room, 128),
    ] {
        if value.is_empty() || value.len() > max {
            return Err(ApiError::validation(format!(
                "{name} must be 1-{max} characters"
            )));
        }
    }
    let mention = Mention {
        event: "evt_dryrun",
        agent: &input.agent,
        author: &input.author,
        room: &input.room,
        topic: "",
        message_id: None,
    };
    Ok(Json(
        match route::decide(&state.db, &state.access, &mention).await? {
            Route::Run(request) => RouteDecision {
                run: true,
                reason: None,
                request: Some(request),
            },
            Route::Skip(reason) => RouteDecision {
                run: false,
                reason: Some(reason),
                request: None,
            },
        },
    ))
}
