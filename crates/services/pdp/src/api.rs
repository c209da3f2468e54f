//! HTTP routes: decisions, the policy set, the audit log.

use std::collections::BTreeMap;

use axum::{extract::State, http::StatusCode};
use daarion_access::{
    Action, Attr, Decision, Facts, Kind, PolicyFile, Principal, PrincipalKind, Resource,
};
use daarion_kernel::{
    ApiError,
    http::{Json, Page, PageParams, Query},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{PdpError, PdpState, store};

impl From<PdpError> for ApiError {
    fn from(error: PdpError) -> Self {
        match &error {
            PdpError::Invalid(m) => ApiError::validation(m.clone()),
            PdpError::Policy(e) => ApiError::validation(e.to_string()),
            PdpError::Conflict => ApiError::conflict(error.to_string()),
            PdpError::Store(e) if e.is_retryable() => ApiError::unavailable(&error),
            _ => ApiError::internal(&error),
        }
    }
}

pub fn router() -> OpenApiRouter<PdpState> {
    OpenApiRouter::new()
        .routes(routes!(decide))
        .routes(routes!(decide_batch))
        .routes(routes!(get_policies, put_policies))
        .routes(routes!(policy_versions))
        .routes(routes!(policy_version))
        .routes(routes!(audit))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrincipalRef {
    pub kind: PrincipalKind,
    pub id: String,
}

/// A resource as the caller describes it. Its attributes only shape the
/// caller's own answer; the principal's roles always come from the store.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResourceSpec {
    #[serde(rename = "type")]
    #[schema(value_type = String, example = "Room")]
    pub kind: String,
    pub id: String,
    /// Attribute values: booleans, strings, `{"type","id"}` entity
    /// references, or arrays of those.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attrs: BTreeMap<String, Value>,
    /// The microDAO the resource belongs to.
    #[serde(default)]
    pub dao: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideRequest {
    /// Whom to decide for; default: the caller. Deciding for someone else
    /// takes `read` on the policy set (city admins, services).
    #[serde(default)]
    pub principal: Option<PrincipalRef>,
    pub action: Action,
    pub resource: ResourceSpec,
    #[serde(default)]
    pub context: Option<Facts>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DecisionView {
    pub allowed: bool,
    pub policies: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
}

impl From<Decision> for DecisionView {
    fn from(d: Decision) -> Self {
        Self {
            allowed: d.allowed,
            policies: d.policies,
            errors: d.errors,
        }
    }
}

fn attr(name: &str, value: &Value) -> Result<Attr, ApiError> {
    let bad = || {
        ApiError::validation(format!(
            "attribute {name:?}: expected a boolean, string, {{\"type\",\"id\"}} or array"
        ))
    };
    match value {
        Value::Bool(b) => Ok(Attr::Bool(*b)),
        Value::String(s) => Ok(Attr::Str(s.clone())),
        Value::Array(items) => items
            .iter()
            .map(|v| attr(name, v))
            .collect::<Result<_, _>>()
            .map(Attr::Set),
        Value::Object(map) => {
            let kind = map.get("type").and_then(Value::as_str).ok_or_else(bad)?;
            let id = map.get("id").and_then(Value::as_str).ok_or_else(bad)?;
            let kind = kind.parse::<Kind>().map_err(ApiError::validation)?;
            Ok(Attr::Entity(kind, id.to_owned()))
        }
        _ => Err(bad()),
    }
}

fn resource(spec: &ResourceSpec) -> Result<Resource, ApiError> {
    let kind = spec.kind.parse::<Kind>().map_err(ApiError::validation)?;
    let mut resource = Resource::new(kind, spec.id.clone());
    for (name, value) in &spec.attrs {
        resource = resource.attr(name, attr(name, value)?);
    }
    if let Some(dao) = &spec.dao {
        resource = resource.in_dao(dao);
    }
    Ok(resource)
}

async fn decide_one(
    state: &PdpState,
    caller: &Principal,
    request: &DecideRequest,
) -> Result<DecisionView, ApiError> {
    let subject = match &request.principal {
        Some(who) if !(who.kind == caller.kind && who.id == caller.id) => {
            state
                .access
                .check(
                    caller,
                    Action::Read,
                    &Resource::new(Kind::Policy, "city"),
                    Facts::default(),
                )
                .await?;
            state
                .access
                .directory()
                .principal(who.kind, &who.id)
                .await
                .map_err(|e| ApiError::unavailable(&e))?
                .ok_or_else(|| ApiError::not_found(format!("no such {:?}: {}", who.kind, who.id)))?
        }
        _ => caller.clone(),
    };
    let resource = resource(&request.resource)?;
    let facts = request.context.unwrap_or_default();
    Ok(state
        .access
        .engine()
        .decide(&subject, request.action, &resource, facts)
        .into())
}

/// Decides one request: the decision and the policies that made it.
#[utoipa::path(post, path = "/decide", tag = "pdp", request_body = DecideRequest,
    responses((status = 200, body = DecisionView), (status = 403, description = "asking about someone else without the right"),
        (status = 404, description = "No such principal")))]
async fn decide(
    State(state): State<PdpState>,
    caller: Principal,
    Json(request): Json<DecideRequest>,
) -> Result<Json<DecisionView>, ApiError> {
    decide_one(&state, &caller, &request).await.map(Json)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// 1 to 100 requests, answered in order.
    pub requests: Vec<DecideRequest>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BatchResponse {
    pub decisions: Vec<DecisionView>,
}

/// Decides up to 100 requests at once.
#[utoipa::path(post, path = "/decide/batch", tag = "pdp", request_body = BatchRequest,
    responses((status = 200, body = BatchResponse),
        (status = 403, description = "A request asks about someone else without the right"),
        (status = 404, description = "No such principal")))]
async fn decide_batch(
    State(state): State<PdpState>,
    caller: Principal,
    Json(batch): Json<BatchRequest>,
) -> Result<Json<BatchResponse>, ApiError> {
    if batch.requests.is_empty() || batch.requests.len() > 100 {
        return Err(ApiError::validation(
            "requests must hold 1 to 100 decisions",
        ));
    }
    let mut decisions = Vec::with_capacity(batch.requests.len());
    for request in &batch.requests {
        decisions.push(decide_one(&state, &caller, request).await?);
    }
    Ok(Json(BatchResponse { decisions }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicySetView {
    /// 0 is the set shipped with DAARION.
    pub version: u64,
    pub files: Vec<PolicyFile>,
}

/// The policy set in force.
#[utoipa::path(get, path = "/policies", tag = "pdp", responses((status = 200, body = PolicySetView)))]
async fn get_policies(State(state): State<PdpState>) -> Json<PolicySetView> {
    let current = state.access.engine().current();
    Json(PolicySetView {
        version: current.version,
        files: current.files().to_vec(),
    })
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPolicies {
    pub files: Vec<PolicyFile>,
}

/// Replaces the policy set. It is validated against the schema first (an
/// invalid set gets `422` with the engine's message and changes nothing);
/// then stored as a new version and loaded by every replica within a second.
#[utoipa::path(put, path = "/policies", tag = "pdp", request_body = PutPolicies,
    responses((status = 200, body = PolicySetView), (status = 422, description = "invalid policies")))]
async fn put_policies(
    State(state): State<PdpState>,
    caller: Principal,
    Json(body): Json<PutPolicies>,
) -> Result<(StatusCode, Json<PolicySetView>), ApiError> {
    let version = crate::change_policies(
        state.access.engine(),
        &state.db,
        state.bus.as_ref(),
        body.files.clone(),
        &caller.name(),
    )
    .await?;
    Ok((
        StatusCode::OK,
        Json(PolicySetView {
            version,
            files: body.files,
        }),
    ))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyVersionView {
    pub version: u64,
    /// Who stored it (`user:<id>`, ...).
    pub author: String,
    pub created_at: String,
}

/// Every stored version of the policy set, newest first (version 0, the
/// set shipped with DAARION, is not stored: read it by number).
#[utoipa::path(get, path = "/policies/versions", tag = "pdp", params(PageParams),
    responses((status = 200, body = Page<PolicyVersionView>)))]
async fn policy_versions(
    State(state): State<PdpState>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<PolicyVersionView>>, ApiError> {
    let limit = page.limit()?;
    let before = page
        .after()?
        .map(|c| c.parse::<u64>())
        .transpose()
        .map_err(|_| ApiError::validation("cursor is not one this endpoint gave"))?;
    let rows = store::versions(&state.db, before, limit).await?;
    let page = Page::from_rows(rows, limit, |r| r.version.to_string());
    Ok(Json(Page {
        items: page
            .items
            .into_iter()
            .map(|r| PolicyVersionView {
                version: r.version,
                author: r.author,
                created_at: r.created_at,
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// One version of the policy set, to read or to restore (by `PUT` of its
/// files, which makes it the newest version).
#[utoipa::path(get, path = "/policies/versions/{version}", tag = "pdp",
    params(("version" = u64, Path, description = "0 is the set shipped with DAARION")),
    responses((status = 200, body = PolicySetView), (status = 400, description = "Not a version number"),
        (status = 404, description = "No such version")))]
async fn policy_version(
    State(state): State<PdpState>,
    axum::extract::Path(version): axum::extract::Path<u64>,
) -> Result<Json<PolicySetView>, ApiError> {
    let files = match version {
        0 => Some(daarion_access::engine::default_policies()),
        n => store::version(&state.db, n).await?,
    };
    let files = files.ok_or_else(|| ApiError::not_found(format!("no policy version {version}")))?;
    Ok(Json(PolicySetView { version, files }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub event_id: String,
    pub time: String,
    /// `audit.action` (a decision that changes state) or `audit.error`.
    pub subject: String,
    pub service: String,
    pub actor: String,
    pub request_id: String,
    #[schema(value_type = Object)]
    pub record: Value,
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/audit", tag = "pdp", params(PageParams), responses((status = 200, body = Page<AuditEntry>)))]
async fn audit(
    State(state): State<PdpState>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<AuditEntry>>, ApiError> {
    let limit = page.limit()?;
    let rows = store::audit(&state.db, page.after()?.as_deref(), limit).await?;
    let page = Page::from_rows(rows, limit, |r| format!("{}|{}", r.time, r.event_id));
    Ok(Json(Page {
        items: page
            .items
            .into_iter()
            .map(|r| AuditEntry {
                record: serde_json::from_str(&r.record).unwrap_or(Value::Null),
                event_id: r.event_id,
                time: r.time,
                subject: r.subject,
                service: r.service,
                actor: r.actor,
                request_id: r.request_id,
            })
            .collect(),
        next_cursor: page.next_cursor,
    }))
}
