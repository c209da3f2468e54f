//! Operator endpoints under `/api/ops/`: dead letters of the bus, listed and
//! replayed. City admins only (`admin` on the city), decided by the PDP like
//! every other endpoint; scripts use an admin's API key (scope `ops:*`).

use std::sync::Arc;

use axum::{
    Router,
    extract::{Path, State},
    http::Method,
};
use daarion_access::{Access::Check, Action, Rule, Target};
use daarion_bus::{DeadLetter, DeadLetters};
use daarion_kernel::{
    ApiError,
    http::{Json, Page, PageParams, Query},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::Backends;

pub static RULES: &[Rule] = &[
    Rule::new(
        Method::GET,
        "/api/ops/dead-letters",
        Check(Action::Admin, Target::City),
    ),
    Rule::new(
        Method::POST,
        "/api/ops/dead-letters/{id}/replay",
        Check(Action::Admin, Target::City),
    ),
];

#[derive(Clone)]
struct OpsState {
    backends: Backends,
}

fn api() -> OpenApiRouter<OpsState> {
    OpenApiRouter::new()
        .routes(routes!(list_dead_letters))
        .routes(routes!(replay_dead_letter))
}

/// The routes behind their enforcement layer, and their OpenAPI document
/// (paths relative to `/api/ops`).
pub fn router(
    backends: Backends,
    access: daarion_access::AccessDeps,
) -> (Router, utoipa::openapi::OpenApi) {
    let enforcer = daarion_access::Enforcer::new(
        "ops",
        RULES,
        Arc::new(daarion_access::enforce::NoResources),
        access,
    );
    let (api, _, openapi) =
        daarion_service::Mount::new(enforcer, api().with_state(OpsState { backends })).into_parts();
    (api, openapi)
}

fn unavailable(error: daarion_bus::BusError) -> ApiError {
    ApiError::unavailable(&error)
}

/// Events that failed every delivery, oldest first.
#[utoipa::path(get, path = "/dead-letters", tag = "ops", params(PageParams),
    responses((status = 200, body = Page<DeadLetter>), (status = 401), (status = 403)))]
async fn list_dead_letters(
    State(state): State<OpsState>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<DeadLetter>>, ApiError> {
    let limit = page.limit()?;
    let rows = DeadLetters::new(state.backends.db.clone())
        .list(limit, page.after()?.as_deref())
        .await
        .map_err(unavailable)?;
    Ok(Json(Page::from_rows(rows, limit, |l| l.id.clone())))
}

/// Publishes a dead letter again, to its consumer only, and removes it.
#[utoipa::path(post, path = "/dead-letters/{id}/replay", tag = "ops",
    params(("id" = String, Path, description = "Dead letter id")),
    responses((status = 200, description = "Replayed; the new event id"), (status = 404)))]
async fn replay_dead_letter(
    State(state): State<OpsState>,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let replayed = DeadLetters::new(state.backends.db.clone())
        .replay(state.backends.bus.as_ref(), &id)
        .await
        .map_err(unavailable)?
        .ok_or_else(|| ApiError::not_found(format!("no dead letter {id:?}")))?;
    Ok(Json(
        serde_json::json!({ "event_id": replayed.id, "subject": replayed.subject }),
    ))
}
