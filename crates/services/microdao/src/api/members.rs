//! Members: list, join, leave, role changes, removal, agents brought in.

use axum::extract::{Path, State};
use daarion_access::{Principal, vocab::roles::DaoRole};
use daarion_kernel::{
    ApiError,
    http::{Json, Page, PageParams, Query},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Actor, parse_role, slug_of};
use crate::{
    DaoState,
    domain::{self, DaoError},
    store::{self, Member, MemberChange},
};

#[derive(Debug, Serialize, ToSchema)]
pub struct DaoMemberView {
    /// `user:<id>` or `agent:<id>`.
    pub principal: String,
    pub handle: String,
    /// `owner`, `admin`, `member`, `guest` or `agent`.
    #[schema(value_type = String)]
    pub role: DaoRole,
    /// The microDAO's own role they hold, if any (`…/roles`).
    pub custom_role: Option<String>,
    pub joined_at: String,
}

impl From<Member> for DaoMemberView {
    fn from(m: Member) -> Self {
        Self {
            principal: m.principal,
            handle: m.handle,
            role: m.role,
            custom_role: m.custom_role,
            joined_at: m.joined_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DaoMembershipView {
    pub dao: String,
    pub principal: String,
    /// The new role; absent when the member is out.
    #[schema(value_type = Option<String>)]
    pub role: Option<DaoRole>,
    /// The custom role they hold after the change, if any.
    pub custom_role: Option<String>,
    /// `joined`, `role_changed`, `left`, `removed`, `banned`, `granted`
    /// (a custom role) or `revoked`.
    pub change: String,
}

impl From<MemberChange> for DaoMembershipView {
    fn from(c: MemberChange) -> Self {
        Self {
            dao: c.dao,
            principal: c.principal,
            role: c.role,
            custom_role: c.custom_role,
            change: c.change.as_str().to_owned(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetDaoRole {
    /// `owner`, `admin`, `member`, `guest` (people) or `agent` (agents).
    pub role: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct RemoveParams {
    /// Also keep them from joining again.
    #[serde(default)]
    pub ban: bool,
}

/// Members, by principal name.
#[utoipa::path(get, path = "/daos/{dao}/members", tag = "microdao",
    params(("dao" = String, Path, description = "The microDAO's slug"), PageParams),
    responses((status = 200, body = Page<DaoMemberView>), (status = 400), (status = 403), (status = 404), (status = 422)))]
pub(super) async fn list_dao_members(
    State(state): State<DaoState>,
    Path(slug): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<DaoMemberView>>, ApiError> {
    let limit = page.limit()?;
    let rows = store::members(&state.db, &slug_of(&slug)?, page.after()?.as_deref(), limit).await?;
    let page = Page::from_rows(rows, limit, |m| m.principal.clone());
    Ok(Json(page.map(DaoMemberView::from)))
}

impl DaoState {
    /// After a membership change: this process forgets the member's roles
    /// now (others when the event arrives), then the event goes out.
    pub(super) async fn changed(
        &self,
        (change, staged): (MemberChange, daarion_bus::Staged),
    ) -> Json<DaoMembershipView> {
        self.roles.forget(&change.principal).await;
        self.outbox.relay(staged).await;
        Json(change.into())
    }
}

/// Joins a public microDAO.
#[utoipa::path(post, path = "/daos/{dao}/join", tag = "microdao",
    params(("dao" = String, Path, description = "The microDAO's slug")),
    responses((status = 200, body = DaoMembershipView),
        (status = 403, description = "Private, or banned"), (status = 404),
        (status = 409, description = "Already a member, or archived")))]
pub(super) async fn join_dao(
    State(state): State<DaoState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<Json<DaoMembershipView>, ApiError> {
    let change = store::join(
        &state.db,
        &state.outbox,
        &slug_of(&slug)?,
        &Actor::of(&principal),
    )
    .await?;
    Ok(state.changed(change).await)
}

/// Leaves a microDAO (not its last owner).
#[utoipa::path(post, path = "/daos/{dao}/leave", tag = "microdao",
    params(("dao" = String, Path, description = "The microDAO's slug")),
    responses((status = 200, body = DaoMembershipView), (status = 403), (status = 404),
        (status = 409, description = "The last owner, or archived")))]
pub(super) async fn leave_dao(
    State(state): State<DaoState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<Json<DaoMembershipView>, ApiError> {
    let who = Actor::of(&principal);
    let change = store::change_member(
        &state.db,
        &state.outbox,
        &slug_of(&slug)?,
        &who,
        &who.name,
        None,
        false,
    )
    .await?;
    Ok(state.changed(change).await)
}

/// Changes a member's role: owners any, admins below admin; never the last
/// owner. The microDAO's governance (a passed proposal) may also admit a
/// person or an agent who is not a member yet, with that role (the DAO
/// service lets only an agent's owner propose bringing it in).
#[utoipa::path(put, path = "/daos/{dao}/members/{member}", tag = "microdao", request_body = SetDaoRole,
    params(("dao" = String, Path, description = "The microDAO's slug"),
        ("member" = String, Path, description = "`user:<id>` or `agent:<id>`")),
    responses((status = 200, body = DaoMembershipView), (status = 403), (status = 404),
        (status = 409, description = "The last owner, or archived"), (status = 422)))]
pub(super) async fn set_member_role(
    State(state): State<DaoState>,
    principal: Principal,
    Path((slug, member)): Path<(String, String)>,
    Json(input): Json<SetDaoRole>,
) -> Result<Json<DaoMembershipView>, ApiError> {
    let role = parse_role(&input.role)?;
    let slug = slug_of(&slug)?;
    let member = domain::member_name(&member)?;
    let actor = Actor::of(&principal);
    let admits = principal.governs() == Some(slug.as_str());
    let newcomer = match member.split_once(':') {
        Some((kind, id)) if admits => {
            let kind = if kind == "agent" {
                daarion_access::PrincipalKind::Agent
            } else {
                daarion_access::PrincipalKind::User
            };
            Some(
                state
                    .access
                    .directory()
                    .principal(kind, id)
                    .await
                    .map_err(|e| ApiError::unavailable(&e))?
                    .ok_or_else(|| DaoError::NotFound(format!("no one is {member}")))?,
            )
        }
        _ => None,
    };
    let change = match newcomer {
        Some(found) => {
            // An agent is shown by its name (`agent:<id>`), as when its
            // owner brings it in.
            let handle = match found.kind {
                daarion_access::PrincipalKind::Agent => member.as_str(),
                _ => found.handle.as_str(),
            };
            store::set_or_admit(
                &state.db,
                &state.outbox,
                &slug,
                &actor,
                (&member, handle),
                role,
            )
            .await?
        }
        None => {
            store::change_member(
                &state.db,
                &state.outbox,
                &slug,
                &actor,
                &member,
                Some(role),
                false,
            )
            .await?
        }
    };
    Ok(state.changed(change).await)
}

/// Removes a member (with `ban`, for good): owners any, admins below admin.
#[utoipa::path(delete, path = "/daos/{dao}/members/{member}", tag = "microdao",
    params(("dao" = String, Path, description = "The microDAO's slug"),
        ("member" = String, Path, description = "`user:<id>` or `agent:<id>`"), RemoveParams),
    responses((status = 200, body = DaoMembershipView), (status = 403), (status = 404),
        (status = 409, description = "The last owner, or archived"), (status = 422)))]
pub(super) async fn remove_dao_member(
    State(state): State<DaoState>,
    principal: Principal,
    Path((slug, member)): Path<(String, String)>,
    Query(params): Query<RemoveParams>,
) -> Result<Json<DaoMembershipView>, ApiError> {
    let change = store::change_member(
        &state.db,
        &state.outbox,
        &slug_of(&slug)?,
        &Actor::of(&principal),
        &domain::member_name(&member)?,
        None,
        params.ban,
    )
    .await?;
    Ok(state.changed(change).await)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddAgent {
    /// The agent's id (as in `agent:<id>`).
    pub agent: String,
}

/// Adds an agent to the microDAO with the `agent` role: by an admin who
/// owns the agent (or a city admin).
#[utoipa::path(post, path = "/daos/{dao}/agents", tag = "microdao", request_body = AddAgent,
    params(("dao" = String, Path, description = "The microDAO's slug")),
    responses((status = 200, body = DaoMembershipView),
        (status = 403, description = "Not an admin here, not the agent's owner, or the agent is banned"),
        (status = 404, description = "No such microDAO or agent"),
        (status = 409, description = "Already a member, or archived"), (status = 422)))]
pub(super) async fn add_agent(
    State(state): State<DaoState>,
    principal: Principal,
    Path(slug): Path<String>,
    Json(input): Json<AddAgent>,
) -> Result<Json<DaoMembershipView>, ApiError> {
    let name = domain::member_name(&format!("agent:{}", input.agent))?;
    may_bring(&state, &principal, &input.agent).await?;
    let by = Actor::of(&principal);
    let change = store::add_agent(&state.db, &state.outbox, &slug_of(&slug)?, &name, &by).await?;
    Ok(state.changed(change).await)
}

/// Whether `principal` may bring the agent into a microDAO: its owner
/// may, and city admins.
pub(super) async fn may_bring(
    state: &DaoState,
    principal: &Principal,
    agent: &str,
) -> Result<(), ApiError> {
    let found = state
        .access
        .directory()
        .principal(daarion_access::PrincipalKind::Agent, agent)
        .await
        .map_err(|e| ApiError::unavailable(&e))?
        .ok_or_else(|| DaoError::NotFound(format!("no agent {agent:?}")))?;
    if !Actor::of(principal).city_admin && found.owner.as_deref() != Some(principal.id.as_str()) {
        return Err(DaoError::Forbidden("only the agent's owner may bring it in".into()).into());
    }
    Ok(())
}
