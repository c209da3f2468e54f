//! Invitations to a microDAO: create, list, revoke, accept.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use daarion_access::{Principal, vocab::roles::DaoRole};
use daarion_kernel::{
    ApiError,
    http::{Json, Page, PageParams, Query},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Actor, DaoMembershipView, parse_role, slug_of};
use crate::{
    DaoState,
    domain::{self, DaoError},
    store::{self, Invite},
};

#[derive(Debug, Serialize, ToSchema)]
pub struct DaoInviteView {
    pub id: String,
    pub dao: String,
    #[schema(value_type = String)]
    pub role: DaoRole,
    pub max_uses: i64,
    pub uses: i64,
    pub expires_at: String,
    pub created_by: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

impl From<Invite> for DaoInviteView {
    fn from(i: Invite) -> Self {
        Self {
            id: i.id,
            dao: i.dao,
            role: i.role,
            max_uses: i.max_uses,
            uses: i.uses,
            expires_at: i.expires_at,
            created_by: i.created_by,
            created_at: i.created_at,
            revoked_at: i.revoked_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NewDaoInviteView {
    #[serde(flatten)]
    pub invite: DaoInviteView,
    /// The code to give (`mdi_…`): shown this once, stored only as a hash.
    pub code: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDaoInvite {
    /// The role it grants (default `member`; admins may invite below admin).
    #[serde(default)]
    pub role: Option<String>,
    /// 1-10 000 (default 1).
    #[serde(default)]
    pub max_uses: Option<u32>,
    /// 1-90 (default 7).
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AcceptDaoInvite {
    pub code: String,
}

/// Invitations, newest first (their codes are never shown again).
#[utoipa::path(get, path = "/daos/{dao}/invites", tag = "microdao",
    params(("dao" = String, Path, description = "The microDAO's slug"), PageParams),
    responses((status = 200, body = Page<DaoInviteView>), (status = 400), (status = 403), (status = 404), (status = 422)))]
pub(super) async fn list_dao_invites(
    State(state): State<DaoState>,
    Path(slug): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<DaoInviteView>>, ApiError> {
    let limit = page.limit()?;
    let rows = store::invites(&state.db, &slug_of(&slug)?, page.after()?.as_deref(), limit).await?;
    let page = Page::from_rows(rows, limit, |i| i.id.clone());
    Ok(Json(page.map(DaoInviteView::from)))
}

/// A new invitation: a code for up to `max_uses` people within
/// `expires_in_days`, joining with `role`.
#[utoipa::path(post, path = "/daos/{dao}/invites", tag = "microdao", request_body = CreateDaoInvite,
    params(("dao" = String, Path, description = "The microDAO's slug")),
    responses((status = 201, body = NewDaoInviteView), (status = 403), (status = 404),
        (status = 409, description = "Archived"), (status = 422)))]
pub(super) async fn create_dao_invite(
    State(state): State<DaoState>,
    principal: Principal,
    Path(slug): Path<String>,
    Json(input): Json<CreateDaoInvite>,
) -> Result<Response, ApiError> {
    let role = parse_role(input.role.as_deref().unwrap_or("member"))?;
    let (uses, days) = domain::invite_limits(input.max_uses, input.expires_in_days)?;
    let (invite, code) = store::create_invite(
        &state.db,
        &slug_of(&slug)?,
        role,
        uses,
        days,
        &Actor::of(&principal),
    )
    .await?;
    let body = NewDaoInviteView {
        invite: invite.into(),
        code,
    };
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// Revokes an invitation: its code stops working.
#[utoipa::path(delete, path = "/daos/{dao}/invites/{id}", tag = "microdao",
    params(("dao" = String, Path, description = "The microDAO's slug"), ("id" = String, Path)),
    responses((status = 204), (status = 403), (status = 404)))]
pub(super) async fn revoke_dao_invite(
    State(state): State<DaoState>,
    Path((slug, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    store::revoke_invite(&state.db, &slug_of(&slug)?, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Joins the microDAO an invitation code is for.
#[utoipa::path(post, path = "/invites/accept", tag = "microdao", request_body = AcceptDaoInvite,
    responses((status = 200, body = DaoMembershipView), (status = 401),
        (status = 403, description = "Banned"),
        (status = 404, description = "Unknown, used up, revoked or expired"),
        (status = 409, description = "Already a member, or archived")))]
pub(super) async fn accept_dao_invite(
    State(state): State<DaoState>,
    principal: Principal,
    Json(input): Json<AcceptDaoInvite>,
) -> Result<Json<DaoMembershipView>, ApiError> {
    let code = input.code.trim();
    if !code.starts_with(domain::INVITE_PREFIX) || code.len() > 128 {
        return Err(DaoError::InviteGone.into());
    }
    let change = store::accept(&state.db, &state.outbox, code, &Actor::of(&principal)).await?;
    Ok(state.changed(change).await)
}
