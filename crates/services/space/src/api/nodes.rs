//! The node registry: city admins register nodes (each gets a token,
//! shown once), list and look at them, rotate their tokens and remove
//! them; a node sends heartbeats with its token.

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use daarion_access::Principal;
use daarion_kernel::{
    ApiError,
    http::{Json, Page, PageParams, Query},
    secret::{hash_secret, new_secret},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    SpaceState,
    domain::{self, Metrics, NodeKind, NodeRole, NodeStatus, SpaceError},
    events,
    store::nodes::{self as store, Beat, Filter, Heartbeat, NewNode, Node},
};

/// The header a node's heartbeat carries its token in.
pub const TOKEN_HEADER: &str = "x-node-token";
/// Tokens start so, to be told from other secrets in logs and scanners.
const TOKEN_PREFIX: &str = "dn_";

pub fn router() -> OpenApiRouter<SpaceState> {
    OpenApiRouter::new()
        .routes(routes!(list_nodes, register_node))
        .routes(routes!(get_node, remove_node))
        .routes(routes!(rotate_token))
        .routes(routes!(heartbeat))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeView {
    pub id: String,
    pub name: String,
    pub role: NodeRole,
    pub kind: NodeKind,
    /// The microDAO it serves (its planet's satellite).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dao: Option<String>,
    pub status: NodeStatus,
    pub version: String,
    pub hostname: String,
    pub metrics: Metrics,
    /// RFC 3339 UTC; absent until its first heartbeat.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<String>,
    pub created_by: String,
    pub created_at: String,
}

impl From<Node> for NodeView {
    fn from(n: Node) -> Self {
        Self {
            id: n.id,
            name: n.name,
            role: n.role,
            kind: n.kind,
            dao: n.dao,
            status: n.status,
            version: n.version,
            hostname: n.hostname,
            metrics: n.metrics,
            last_heartbeat: n.last_heartbeat,
            created_by: n.created_by,
            created_at: n.created_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BeatView {
    pub at: String,
    pub status: NodeStatus,
    pub metrics: Metrics,
}

impl From<Beat> for BeatView {
    fn from(b: Beat) -> Self {
        Self {
            at: b.at,
            status: b.status,
            metrics: b.metrics,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeProfile {
    pub node: NodeView,
    /// Its latest heartbeats, newest first (at most 60).
    pub heartbeats: Vec<BeatView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeCredential {
    pub node: NodeView,
    /// Send it as `X-Node-Token` with each heartbeat. Shown once: it is
    /// stored as a hash.
    pub token: String,
    /// Send a heartbeat this often.
    pub heartbeat_secs: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterNode {
    /// Its id for good: a slug, chosen by the admin (a retry of the same
    /// registration is refused, never doubled).
    pub id: String,
    #[schema(min_length = 1, max_length = 120)]
    pub name: String,
    pub role: NodeRole,
    pub kind: NodeKind,
    /// The microDAO it serves, if any.
    #[serde(default)]
    pub dao: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatBody {
    /// `online` unless it says `degraded` or `maintenance`.
    #[serde(default)]
    pub status: Option<NodeStatus>,
    #[serde(default)]
    #[schema(max_length = 120)]
    pub version: Option<String>,
    #[serde(default)]
    #[schema(max_length = 120)]
    pub hostname: Option<String>,
    #[serde(default)]
    pub metrics: Metrics,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HeartbeatAck {
    pub node: String,
    pub status: NodeStatus,
    /// Send the next heartbeat within this many seconds.
    pub heartbeat_secs: u64,
}

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct NodeFilter {
    pub role: Option<NodeRole>,
    pub status: Option<NodeStatus>,
    /// Only nodes serving this microDAO.
    #[param(max_length = 63)]
    pub dao: Option<String>,
}

fn not_found(id: &str) -> SpaceError {
    SpaceError::NotFound(format!("node {id:?} is not registered"))
}

/// Registered nodes by id, with their status now.
#[utoipa::path(get, path = "/nodes", tag = "space", params(PageParams, NodeFilter),
    responses((status = 200, body = Page<NodeView>),
        (status = 400, description = "A cursor or filter this endpoint does not know"),
        (status = 422, description = "A limit out of bounds")))]
async fn list_nodes(
    State(state): State<SpaceState>,
    Query(page): Query<PageParams>,
    Query(filter): Query<NodeFilter>,
) -> Result<Json<Page<NodeView>>, ApiError> {
    let limit = page.limit()?;
    let filter = Filter {
        role: filter.role,
        status: filter.status,
        dao: filter.dao,
    };
    let rows = store::list(
        &state.db,
        &filter,
        &state.offline_cutoff(),
        page.after()?.as_deref(),
        limit,
    )
    .await?;
    let page = Page::from_rows(rows, limit, |n| n.id.clone());
    Ok(Json(page.map(NodeView::from)))
}

/// Register a node; its token is in the answer, once.
#[utoipa::path(post, path = "/nodes", tag = "space", request_body = RegisterNode,
    responses((status = 201, body = NodeCredential),
        (status = 409, description = "A node of this id is registered already"),
        (status = 422, description = "Invalid fields")))]
async fn register_node(
    State(state): State<SpaceState>,
    actor: Principal,
    Json(input): Json<RegisterNode>,
) -> Result<Response, ApiError> {
    let node = NewNode {
        id: domain::slug(&input.id, "id")?,
        name: domain::text(&input.name, "name", true)?,
        role: input.role,
        kind: input.kind,
        dao: input
            .dao
            .as_deref()
            .map(|d| domain::slug(d, "dao"))
            .transpose()?,
    };
    let token = format!("{TOKEN_PREFIX}{}", new_secret());
    let (created, staged) = store::create(
        &state.db,
        &state.outbox,
        &node,
        &hash_secret(&token),
        &actor.handle,
        |n| events::node_changed("registered", &n.id, &actor.handle),
    )
    .await?;
    state.outbox.relay(staged).await;
    let body = NodeCredential {
        node: created.into(),
        token,
        heartbeat_secs: state.settings.heartbeat_secs,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// A node and its latest heartbeats.
#[utoipa::path(get, path = "/nodes/{node}", tag = "space",
    params(("node" = String, Path, description = "The node's id")),
    responses((status = 200, body = NodeProfile), (status = 404, description = "No such node")))]
async fn get_node(
    State(state): State<SpaceState>,
    Path(id): Path<String>,
) -> Result<Json<NodeProfile>, ApiError> {
    let node = store::get(&state.db, &id, &state.offline_cutoff())
        .await?
        .ok_or_else(|| not_found(&id))?;
    let beats = store::beats(&state.db, &id, 60).await?;
    Ok(Json(NodeProfile {
        node: node.into(),
        heartbeats: beats.into_iter().map(BeatView::from).collect(),
    }))
}

/// Remove a node: its token stops working, its heartbeats go.
#[utoipa::path(delete, path = "/nodes/{node}", tag = "space",
    params(("node" = String, Path, description = "The node's id")),
    responses((status = 204, description = "Removed"), (status = 404, description = "No such node")))]
async fn remove_node(
    State(state): State<SpaceState>,
    Path(id): Path<String>,
    actor: Principal,
) -> Result<StatusCode, ApiError> {
    let event = events::node_changed("removed", &id, &actor.handle);
    let staged = store::delete(&state.db, &state.outbox, &id, event)
        .await?
        .ok_or_else(|| not_found(&id))?;
    state.outbox.relay(staged).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Give a node a new token; the old one stops working at once.
#[utoipa::path(post, path = "/nodes/{node}/token", tag = "space",
    params(("node" = String, Path, description = "The node's id")),
    responses((status = 200, body = NodeCredential), (status = 404, description = "No such node")))]
async fn rotate_token(
    State(state): State<SpaceState>,
    Path(id): Path<String>,
) -> Result<Json<NodeCredential>, ApiError> {
    let token = format!("{TOKEN_PREFIX}{}", new_secret());
    if !store::rotate(&state.db, &id, &hash_secret(&token)).await? {
        return Err(not_found(&id).into());
    }
    let node = store::get(&state.db, &id, &state.offline_cutoff())
        .await?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(NodeCredential {
        node: node.into(),
        token,
        heartbeat_secs: state.settings.heartbeat_secs,
    }))
}

/// A node's heartbeat, with its token in `X-Node-Token`.
#[utoipa::path(post, path = "/nodes/{node}/heartbeat", tag = "space", request_body = HeartbeatBody,
    params(("node" = String, Path, description = "The node's id"),
        ("X-Node-Token" = String, Header, description = "The node's token")),
    responses((status = 200, body = HeartbeatAck),
        (status = 401, description = "The token is missing, unknown, replaced, or another node's"),
        (status = 422, description = "Metrics out of bounds")))]
async fn heartbeat(
    State(state): State<SpaceState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(input): Json<HeartbeatBody>,
) -> Result<Json<HeartbeatAck>, ApiError> {
    let token = headers
        .get(TOKEN_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|t| t.starts_with(TOKEN_PREFIX))
        .ok_or(SpaceError::BadNodeToken)?;
    input.metrics.check()?;
    let status = match input.status.unwrap_or(NodeStatus::Online) {
        s @ (NodeStatus::Online | NodeStatus::Degraded | NodeStatus::Maintenance) => s,
        other => {
            return Err(SpaceError::Invalid(format!(
                "a heartbeat says online, degraded or maintenance, not {}",
                other.as_str()
            ))
            .into());
        }
    };
    let beat = Heartbeat {
        status,
        version: domain::text(input.version.as_deref().unwrap_or(""), "version", false)?,
        hostname: domain::text(input.hostname.as_deref().unwrap_or(""), "hostname", false)?,
        metrics: input.metrics,
    };
    let (node, before) = store::heartbeat(
        &state.db,
        &hash_secret(token),
        &beat,
        &daarion_store::now(),
        &state.offline_cutoff(),
        &id,
    )
    .await?
    .ok_or(SpaceError::BadNodeToken)?;
    if matches!(before, NodeStatus::Registered | NodeStatus::Offline) {
        state
            .publish(&events::node_changed(
                "online",
                &node,
                &format!("node:{node}"),
            ))
            .await;
    }
    metrics::counter!("space_heartbeats_total").increment(1);
    Ok(Json(HeartbeatAck {
        node,
        status,
        heartbeat_secs: state.settings.heartbeat_secs,
    }))
}
