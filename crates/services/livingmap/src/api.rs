//! HTTP routes and wire types. [`MapError`] maps to [`ApiError`] here, once.

use axum::extract::State;
use daarion_access::Principal;
use daarion_kernel::{
    ApiError,
    http::{Json, Query},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    MapState,
    domain::{Delta, MapEdge, MapError, MapNode, Viewer},
    store::{self, Counters},
};

impl From<MapError> for ApiError {
    fn from(error: MapError) -> Self {
        match error {
            MapError::Invalid(message) => ApiError::validation(message),
            MapError::TooFarBehind(message) => ApiError::conflict(message),
            e @ MapError::Corrupt(_) => ApiError::internal(&e),
            MapError::Store(e) if e.is_retryable() => ApiError::unavailable(&e),
            MapError::Store(e) => ApiError::internal(&e),
        }
    }
}

pub fn router() -> OpenApiRouter<MapState> {
    OpenApiRouter::new()
        .routes(routes!(living_map_snapshot))
        .routes(routes!(living_map_deltas))
        .routes(routes!(living_map_counters))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MapDistrict {
    pub slug: String,
    /// Its rectangle on the map: x, y, width, height in cells.
    pub area: [f64; 4],
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Snapshot {
    /// The number of the last change it holds: ask for the deltas after it.
    pub seq: i64,
    /// The map's extent in cells (the outskirts lie below it, city nodes
    /// above).
    pub width: f64,
    pub height: f64,
    pub districts: Vec<MapDistrict>,
    pub nodes: Vec<MapNode>,
    pub edges: Vec<MapEdge>,
    pub counters: Counters,
}

/// The living map as you may see it: communities, their rooms and agents,
/// people present, city nodes; memberships, agents answering in rooms,
/// activity; the city's pulse; where each stands, grouped by district.
#[utoipa::path(get, path = "/snapshot", tag = "living-map",
    responses((status = 200, body = Snapshot), (status = 401, description = "Not signed in"),
        (status = 503, description = "The store is unavailable")))]
async fn living_map_snapshot(
    State(state): State<MapState>,
    principal: Principal,
) -> Result<Json<Snapshot>, ApiError> {
    Ok(Json(snapshot_of(&state, &Viewer::of(&principal)).await?))
}

/// The map as `viewer` may see it now (the socket's first frame too).
pub async fn snapshot_of(state: &MapState, viewer: &Viewer) -> Result<Snapshot, ApiError> {
    let (seq, nodes, edges) = state.mirror.snapshot(&state.db, viewer).await?;
    let counters = store::counters(&state.db, viewer).await?;
    let geometry = state.projector.geometry().await?;
    let mut districts: Vec<MapDistrict> = geometry
        .districts
        .iter()
        .map(|(slug, &(x, y, w, h))| MapDistrict {
            slug: slug.clone(),
            area: [x, y, w, h],
        })
        .collect();
    districts.sort_by(|a, b| a.slug.cmp(&b.slug));
    Ok(Snapshot {
        seq,
        width: geometry.width,
        height: geometry.height,
        districts,
        nodes,
        edges,
        counters,
    })
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Since {
    /// The last change you hold (a snapshot's `seq`, or a delta's).
    #[param(minimum = 0)]
    pub since: i64,
    /// Deltas per page, 1 to 1000 (default 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Deltas {
    /// The changes after `since` you may see, in order.
    pub deltas: Vec<Delta>,
    /// The number of the last change so far: when it is past the last
    /// delta here, ask again from it.
    pub seq: i64,
}

/// What changed after `since`. When those changes are no longer kept the
/// answer is 409: take a new snapshot.
#[utoipa::path(get, path = "/deltas", tag = "living-map", params(Since),
    responses((status = 200, body = Deltas), (status = 400, description = "since is missing or not a number"),
        (status = 401, description = "Not signed in"),
        (status = 409, description = "Too far behind: take a new snapshot"),
        (status = 422, description = "since past the last change, or limit out of bounds")))]
async fn living_map_deltas(
    State(state): State<MapState>,
    principal: Principal,
    Query(params): Query<Since>,
) -> Result<Json<Deltas>, ApiError> {
    let limit = params.limit.unwrap_or(1000);
    if params.since < 0 || !(1..=1000).contains(&limit) {
        return Err(ApiError::validation(
            "since must be 0 or more, limit 1 to 1000",
        ));
    }
    let (deltas, seq) =
        store::deltas(&state.db, &Viewer::of(&principal), params.since, limit).await?;
    Ok(Json(Deltas { deltas, seq }))
}

/// The city's pulse as you may see it: messages and agent runs a minute,
/// open proposals (cheap to ask often; the snapshot holds it too).
#[utoipa::path(get, path = "/counters", tag = "living-map",
    responses((status = 200, body = Counters), (status = 401, description = "Not signed in"),
        (status = 503, description = "The store is unavailable")))]
async fn living_map_counters(
    State(state): State<MapState>,
    principal: Principal,
) -> Result<Json<Counters>, ApiError> {
    Ok(Json(
        store::counters(&state.db, &Viewer::of(&principal)).await?,
    ))
}
