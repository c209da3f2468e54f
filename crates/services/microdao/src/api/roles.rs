//! Custom roles: a microDAO's owners define what each grants (from the
//! permissions the policies know) and who holds it.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use daarion_access::{Principal, vocab::roles::DaoPermission};
use daarion_kernel::{
    ApiError,
    http::{Json, Page, PageParams, Query, created},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{Actor, DaoMembershipView, slug_of};
use crate::{
    DaoState, domain,
    store::{self, CustomRole, RoleDefinition},
};

#[derive(Debug, Serialize, ToSchema)]
pub struct CustomRoleView {
    pub name: String,
    pub description: String,
    /// What holders may do beyond their base role.
    pub permissions: Vec<DaoPermission>,
    /// How many members hold it.
    pub holders: i64,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
}

impl From<CustomRole> for CustomRoleView {
    fn from(r: CustomRole) -> Self {
        Self {
            name: r.name,
            description: r.description,
            permissions: r.permissions,
            holders: r.holders,
            created_by: r.created_by,
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DefineCustomRole {
    #[serde(default)]
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    /// `write` (settings, members below admin, agents, new rooms),
    /// `invite`, `rooms` (change and archive rooms), `treasury` (mint,
    /// move the microDAO's points).
    #[schema(max_items = 4)]
    pub permissions: Vec<String>,
}

/// The microDAO's custom roles, by name (its members and public readers).
#[utoipa::path(get, path = "/daos/{dao}/roles", tag = "microdao",
    params(("dao" = String, Path, description = "The microDAO's slug"), PageParams),
    responses((status = 200, body = Page<CustomRoleView>), (status = 400), (status = 403),
        (status = 404), (status = 422)))]
pub(super) async fn list_dao_roles(
    State(state): State<DaoState>,
    Path(slug): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<CustomRoleView>>, ApiError> {
    let limit = page.limit()?;
    let rows = store::roles(&state.db, &slug_of(&slug)?, page.after()?.as_deref(), limit).await?;
    let page = Page::from_rows(rows, limit, |r| r.name.clone());
    Ok(Json(page.map(CustomRoleView::from)))
}

/// Defines a custom role, or redefines it: its holders get the new
/// permissions at once (owners).
#[utoipa::path(put, path = "/daos/{dao}/roles/{role}", tag = "microdao", request_body = DefineCustomRole,
    params(("dao" = String, Path, description = "The microDAO's slug"),
        ("role" = String, Path, description = "2-32 of a-z, 0-9 and -; not a base role's name")),
    responses((status = 201, body = CustomRoleView, description = "Defined"),
        (status = 200, body = CustomRoleView, description = "Redefined"),
        (status = 403), (status = 404),
        (status = 409, description = "Archived, or 50 roles already"), (status = 422)))]
pub(super) async fn define_dao_role(
    State(state): State<DaoState>,
    principal: Principal,
    Path((slug, name)): Path<(String, String)>,
    Json(input): Json<DefineCustomRole>,
) -> Result<Response, ApiError> {
    let definition = RoleDefinition {
        name: domain::custom_role_name(&name)?,
        description: domain::description(input.description.as_deref().unwrap_or(""))?,
        permissions: domain::permissions(&input.permissions)?,
    };
    let (role, fresh, staged) = store::define(
        &state.db,
        &state.outbox,
        &slug_of(&slug)?,
        &definition,
        &Actor::of(&principal),
    )
    .await?;
    state.roles.forget_all();
    state.outbox.relay(staged).await;
    Ok(created(fresh, CustomRoleView::from(role)))
}

/// Deletes a custom role; its holders keep their base role (owners).
#[utoipa::path(delete, path = "/daos/{dao}/roles/{role}", tag = "microdao",
    params(("dao" = String, Path, description = "The microDAO's slug"),
        ("role" = String, Path, description = "The custom role's name")),
    responses((status = 204), (status = 403), (status = 404),
        (status = 409, description = "Archived"), (status = 422)))]
pub(super) async fn delete_dao_role(
    State(state): State<DaoState>,
    principal: Principal,
    Path((slug, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let staged = store::delete(
        &state.db,
        &state.outbox,
        &slug_of(&slug)?,
        &domain::custom_role_name(&name)?,
        &Actor::of(&principal),
    )
    .await?;
    state.roles.forget_all();
    state.outbox.relay(staged).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Gives a member the custom role, in place of any other they hold (owners).
#[utoipa::path(put, path = "/daos/{dao}/roles/{role}/holders/{member}", tag = "microdao",
    params(("dao" = String, Path, description = "The microDAO's slug"),
        ("role" = String, Path, description = "The custom role's name"),
        ("member" = String, Path, description = "`user:<id>` or `agent:<id>`")),
    responses((status = 200, body = DaoMembershipView), (status = 403),
        (status = 404, description = "No such role or member"),
        (status = 409, description = "Archived"), (status = 422)))]
pub(super) async fn grant_dao_role(
    State(state): State<DaoState>,
    principal: Principal,
    Path((slug, name, member)): Path<(String, String, String)>,
) -> Result<Json<DaoMembershipView>, ApiError> {
    assign(state, &principal, (slug, name, member), true).await
}

/// Takes a custom role back from a member (owners).
#[utoipa::path(delete, path = "/daos/{dao}/roles/{role}/holders/{member}", tag = "microdao",
    params(("dao" = String, Path, description = "The microDAO's slug"),
        ("role" = String, Path, description = "The custom role's name"),
        ("member" = String, Path, description = "`user:<id>` or `agent:<id>`")),
    responses((status = 200, body = DaoMembershipView), (status = 403),
        (status = 404, description = "No such role, or the member does not hold it"),
        (status = 409, description = "Archived"), (status = 422)))]
pub(super) async fn revoke_dao_role(
    State(state): State<DaoState>,
    principal: Principal,
    Path((slug, name, member)): Path<(String, String, String)>,
) -> Result<Json<DaoMembershipView>, ApiError> {
    assign(state, &principal, (slug, name, member), false).await
}

async fn assign(
    state: DaoState,
    principal: &Principal,
    (slug, name, member): (String, String, String),
    grant: bool,
) -> Result<Json<DaoMembershipView>, ApiError> {
    let change = store::assign(
        &state.db,
        &state.outbox,
        &slug_of(&slug)?,
        &domain::custom_role_name(&name)?,
        &domain::member_name(&member)?,
        grant,
        &Actor::of(principal),
    )
    .await?;
    Ok(state.changed(change).await)
}
