//! Operator endpoints under `/api/ops/`: dead letters of the bus, listed and
//! replayed. Closed unless `admin_token` is configured; callers send it as
//! `Authorization: Bearer <token>`.

use axum::{
    Router,
    extract::{FromRequestParts, Path, State},
    http::request::Parts,
};
use daarion_bus::{DeadLetter, DeadLetters};
use daarion_kernel::{
    ApiError,
    http::{Json, Page, PageParams, Query},
};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::Backends;

#[derive(Clone)]
struct OpsState {
    backends: Backends,
    admin_token: Option<String>,
}

/// Proof that the caller holds the admin token.
struct Admin;

impl FromRequestParts<OpsState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &OpsState) -> Result<Self, ApiError> {
        let Some(expected) = &state.admin_token else {
            return Err(ApiError::forbidden(
                "operator endpoints are disabled: set admin_token",
            ));
        };
        let given = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| ApiError::unauthorized("send Authorization: Bearer <admin token>"))?;
        if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
            Ok(Admin)
        } else {
            Err(ApiError::forbidden("wrong admin token"))
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn api() -> OpenApiRouter<OpsState> {
    OpenApiRouter::new()
        .routes(routes!(list_dead_letters))
        .routes(routes!(replay_dead_letter))
}

pub fn router(backends: Backends, admin_token: Option<String>) -> Router {
    api().split_for_parts().0.with_state(OpsState {
        backends,
        admin_token,
    })
}

pub fn openapi() -> utoipa::openapi::OpenApi {
    api().split_for_parts().1
}

fn unavailable(error: daarion_bus::BusError) -> ApiError {
    ApiError::unavailable(&error)
}

/// Events that failed every delivery, oldest first.
#[utoipa::path(get, path = "/dead-letters", tag = "ops", params(PageParams),
    responses((status = 200, body = Page<DeadLetter>), (status = 401), (status = 403)))]
async fn list_dead_letters(
    _: Admin,
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
    _: Admin,
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
