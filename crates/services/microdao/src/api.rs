//! HTTP routes and wire types. Handlers parse, call the domain and store,
//! relay what the store staged, and map [`DaoError`] to [`ApiError`] once.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use daarion_access::{Action, Facts, Principal, vocab::roles::DaoRole};
use daarion_kernel::{
    ApiError,
    http::{IdempotencyKey, Json, Page, PageParams, Query, created},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    DaoState,
    domain::{self, DaoError, Visibility},
    store::{self, Actor, Dao, Invite, Member, MemberChange, NewDao, Patch},
    treasury::{self, Movement},
};

impl From<DaoError> for ApiError {
    fn from(error: DaoError) -> Self {
        match &error {
            DaoError::Invalid(message) => ApiError::validation(message.clone()),
            DaoError::NotFound(message) => ApiError::not_found(message.clone()),
            DaoError::Forbidden(message) => ApiError::forbidden(message.clone()),
            DaoError::Conflict(message) => ApiError::conflict(message.clone()),
            DaoError::InviteGone => ApiError::not_found(error.to_string()),
            DaoError::Store(e) if e.is_retryable() => ApiError::unavailable(&error),
            DaoError::Bus(daarion_bus::BusError::Unavailable(_)) => ApiError::unavailable(&error),
            _ => ApiError::internal(&error),
        }
    }
}

fn actor(principal: &Principal) -> Actor {
    Actor {
        name: principal.name(),
        handle: principal.handle.clone(),
        city_admin: principal
            .roles
            .iter()
            .any(|r| r == daarion_access::vocab::roles::CITY_ADMIN),
    }
}

/// The caller's role in `slug`, from the role groups on their principal.
fn role_in(principal: &Principal, slug: &str) -> Option<DaoRole> {
    let prefix = format!("dao:{slug}:");
    principal
        .roles
        .iter()
        .find_map(|r| r.strip_prefix(&prefix).and_then(domain::role))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DaoView {
    /// The microDAO's id for good, in URLs and role groups (`dao:<slug>:<role>`).
    pub slug: String,
    pub name: String,
    pub description: String,
    pub avatar_url: Option<String>,
    pub visibility: Visibility,
    pub district: Option<String>,
    /// The microDAO this one belongs to.
    pub parent: Option<String>,
    pub created_by: String,
    pub created_at: String,
    pub updated_at: String,
    pub archived_at: Option<String>,
    /// How many members it has.
    pub members: i64,
    /// The caller's role, if a member.
    #[schema(value_type = Option<String>)]
    pub my_role: Option<DaoRole>,
}

impl DaoView {
    fn of(dao: Dao, viewer: &Principal) -> Self {
        Self {
            my_role: role_in(viewer, &dao.slug),
            slug: dao.slug,
            name: dao.name,
            description: dao.description,
            avatar_url: dao.avatar_url,
            visibility: dao.visibility,
            district: dao.district,
            parent: dao.parent,
            created_by: dao.created_by,
            created_at: dao.created_at,
            updated_at: dao.updated_at,
            archived_at: dao.archived_at,
            members: dao.members,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DaoMemberView {
    /// `user:<id>` or `agent:<id>`.
    pub principal: String,
    pub handle: String,
    /// `owner`, `admin`, `member`, `guest` or `agent`.
    #[schema(value_type = String)]
    pub role: DaoRole,
    pub joined_at: String,
}

impl From<Member> for DaoMemberView {
    fn from(m: Member) -> Self {
        Self {
            principal: m.principal,
            handle: m.handle,
            role: m.role,
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
    /// `joined`, `role_changed`, `left`, `removed` or `banned`.
    pub change: String,
}

impl From<MemberChange> for DaoMembershipView {
    fn from(c: MemberChange) -> Self {
        Self {
            dao: c.dao,
            principal: c.principal,
            role: c.role,
            change: c.change.as_str().to_owned(),
        }
    }
}

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
pub struct CreateDao {
    /// 2-63 of a-z, 0-9 and -: the microDAO's id for good.
    pub slug: String,
    /// 1-80 characters.
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    /// An `https://` image address.
    #[serde(default)]
    pub avatar_url: Option<String>,
    /// `public` (default) or `private`.
    #[serde(default)]
    pub visibility: Option<Visibility>,
    /// The district of the city map.
    #[serde(default)]
    pub district: Option<String>,
    /// A microDAO to nest this one in (its admins may).
    #[serde(default)]
    pub parent: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateDao {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// An `https://` address, or `""` to clear it.
    #[serde(default)]
    pub avatar_url: Option<String>,
    #[serde(default)]
    pub visibility: Option<Visibility>,
    /// A district, or `""` to clear it.
    #[serde(default)]
    pub district: Option<String>,
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

#[derive(Debug, Deserialize, IntoParams)]
pub struct ListParams {
    /// Items per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(max_length = 512)]
    pub cursor: Option<String>,
    /// Include archived microDAOs.
    #[serde(default)]
    pub archived: bool,
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

pub fn router() -> OpenApiRouter<DaoState> {
    OpenApiRouter::new()
        .routes(routes!(list_daos, create_dao))
        .routes(routes!(get_dao, update_dao))
        .routes(routes!(archive_dao))
        .routes(routes!(list_dao_members))
        .routes(routes!(join_dao))
        .routes(routes!(leave_dao))
        .routes(routes!(set_member_role, remove_dao_member))
        .routes(routes!(add_agent))
        .routes(routes!(list_dao_invites, create_dao_invite))
        .routes(routes!(revoke_dao_invite))
        .routes(routes!(accept_dao_invite))
        .routes(routes!(treasury))
        .routes(routes!(treasury_movements))
        .routes(routes!(mint))
        .routes(routes!(transfer))
}

fn parse_role(raw: &str) -> Result<DaoRole, DaoError> {
    domain::role(raw).ok_or_else(|| {
        DaoError::Invalid("role is one of owner, admin, member, guest, agent".into())
    })
}

/// A slug from the path that the enforcement layer already found.
fn slug_of(raw: &str) -> Result<String, ApiError> {
    Ok(domain::slug(raw)?)
}

/// MicroDAOs the caller may see, by slug: public ones and their own.
#[utoipa::path(get, path = "/daos", tag = "microdao", params(ListParams),
    responses((status = 200, body = Page<DaoView>), (status = 400), (status = 422)))]
async fn list_daos(
    State(state): State<DaoState>,
    principal: Principal,
    Query(params): Query<ListParams>,
) -> Result<Json<Page<DaoView>>, ApiError> {
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    };
    let limit = page.limit()?;
    let rows = store::list(
        &state.db,
        &actor(&principal),
        params.archived,
        page.after()?.as_deref(),
        limit,
    )
    .await?;
    let page = Page::from_rows(rows, limit, |d| d.slug.clone());
    Ok(Json(Page {
        items: page
            .items
            .into_iter()
            .map(|d| DaoView::of(d, &principal))
            .collect(),
        next_cursor: page.next_cursor,
    }))
}

/// Creates a microDAO; the caller is its owner. Nested in `parent` when the
/// caller may write there. Send `Idempotency-Key` to make retries safe.
#[utoipa::path(post, path = "/daos", tag = "microdao", request_body = CreateDao,
    params(IdempotencyKey),
    responses((status = 201, body = DaoView),
        (status = 200, description = "Replay of an earlier create with the same key", body = DaoView),
        (status = 403, description = "Not allowed to nest in `parent`"),
        (status = 404, description = "No such parent"),
        (status = 409, description = "The slug is taken, the parent is archived, or the key was used with another request"),
        (status = 422, description = "Invalid fields")))]
async fn create_dao(
    State(state): State<DaoState>,
    principal: Principal,
    key: IdempotencyKey,
    Json(input): Json<CreateDao>,
) -> Result<Response, ApiError> {
    let new = NewDao {
        slug: domain::slug(&input.slug)?,
        name: domain::name(&input.name)?,
        description: domain::description(input.description.as_deref().unwrap_or(""))?,
        avatar_url: input
            .avatar_url
            .as_deref()
            .map(domain::avatar_url)
            .transpose()?,
        visibility: input.visibility.unwrap_or(Visibility::Public),
        district: input
            .district
            .as_deref()
            .map(domain::district)
            .transpose()?,
        parent: input.parent.as_deref().map(domain::slug).transpose()?,
    };
    if let Some(parent) = &new.parent {
        let dao = store::dao(&state.db, parent)
            .await?
            .ok_or_else(|| DaoError::NotFound(format!("no microDAO {parent:?}")))?;
        let resource = crate::access::dao_resource(&dao.slug, dao.visibility);
        state
            .access
            .check(&principal, Action::Write, &resource, Facts::default())
            .await?;
    }
    let (dao, fresh, staged) = store::create(
        &state.db,
        &state.outbox,
        &new,
        &actor(&principal),
        key.as_deref(),
    )
    .await?;
    state.roles.forget(&principal.name()).await;
    state.outbox.relay(staged).await;
    // The creator's principal was resolved before they owned it.
    let mut view = DaoView::of(dao, &principal);
    view.my_role = Some(DaoRole::Owner);
    Ok(created(fresh, view))
}

/// One microDAO.
#[utoipa::path(get, path = "/daos/{dao}", tag = "microdao",
    params(("dao" = String, Path, description = "The microDAO's slug")),
    responses((status = 200, body = DaoView), (status = 403), (status = 404)))]
async fn get_dao(
    State(state): State<DaoState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<Json<DaoView>, ApiError> {
    let dao = store::dao(&state.db, &slug_of(&slug)?)
        .await?
        .ok_or_else(|| DaoError::NotFound(format!("no microDAO {slug:?}")))?;
    Ok(Json(DaoView::of(dao, &principal)))
}

/// Changes a microDAO's name, description, avatar, visibility or district
/// (its admins).
#[utoipa::path(patch, path = "/daos/{dao}", tag = "microdao", request_body = UpdateDao,
    params(("dao" = String, Path, description = "The microDAO's slug")),
    responses((status = 200, body = DaoView), (status = 403), (status = 404),
        (status = 409, description = "Archived"), (status = 422)))]
async fn update_dao(
    State(state): State<DaoState>,
    principal: Principal,
    Path(slug): Path<String>,
    Json(input): Json<UpdateDao>,
) -> Result<Json<DaoView>, ApiError> {
    let clearable = |raw: Option<&str>, check: fn(&str) -> Result<String, DaoError>| {
        raw.map(|raw| {
            if raw.trim().is_empty() {
                Ok(None)
            } else {
                check(raw).map(Some)
            }
        })
        .transpose()
    };
    let patch = Patch {
        name: input.name.as_deref().map(domain::name).transpose()?,
        description: input
            .description
            .as_deref()
            .map(domain::description)
            .transpose()?,
        avatar_url: clearable(input.avatar_url.as_deref(), domain::avatar_url)?,
        visibility: input.visibility,
        district: clearable(input.district.as_deref(), domain::district)?,
    };
    let (dao, staged) = store::update(
        &state.db,
        &state.outbox,
        &slug_of(&slug)?,
        &patch,
        &actor(&principal),
    )
    .await?;
    state.outbox.relay(staged).await;
    Ok(Json(DaoView::of(dao, &principal)))
}

/// Archives a microDAO (its owners): read-only from then on.
#[utoipa::path(post, path = "/daos/{dao}/archive", tag = "microdao",
    params(("dao" = String, Path, description = "The microDAO's slug")),
    responses((status = 200, body = DaoView), (status = 403), (status = 404),
        (status = 409, description = "Already archived")))]
async fn archive_dao(
    State(state): State<DaoState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<Json<DaoView>, ApiError> {
    let (dao, staged) = store::archive(
        &state.db,
        &state.outbox,
        &slug_of(&slug)?,
        &actor(&principal),
    )
    .await?;
    state.outbox.relay(staged).await;
    Ok(Json(DaoView::of(dao, &principal)))
}

/// Members, by principal name.
#[utoipa::path(get, path = "/daos/{dao}/members", tag = "microdao",
    params(("dao" = String, Path, description = "The microDAO's slug"), PageParams),
    responses((status = 200, body = Page<DaoMemberView>), (status = 400), (status = 403), (status = 404), (status = 422)))]
async fn list_dao_members(
    State(state): State<DaoState>,
    Path(slug): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<DaoMemberView>>, ApiError> {
    let limit = page.limit()?;
    let rows = store::members(&state.db, &slug_of(&slug)?, page.after()?.as_deref(), limit).await?;
    let page = Page::from_rows(rows, limit, |m| m.principal.clone());
    Ok(Json(Page {
        items: page.items.into_iter().map(DaoMemberView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

impl DaoState {
    /// After a membership change: this process forgets the member's roles
    /// now (others when the event arrives), then the event goes out.
    async fn changed(
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
async fn join_dao(
    State(state): State<DaoState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<Json<DaoMembershipView>, ApiError> {
    let change = store::join(
        &state.db,
        &state.outbox,
        &slug_of(&slug)?,
        &actor(&principal),
    )
    .await?;
    Ok(state.changed(change).await)
}

/// Leaves a microDAO (not its last owner).
#[utoipa::path(post, path = "/daos/{dao}/leave", tag = "microdao",
    params(("dao" = String, Path, description = "The microDAO's slug")),
    responses((status = 200, body = DaoMembershipView), (status = 403), (status = 404),
        (status = 409, description = "The last owner, or archived")))]
async fn leave_dao(
    State(state): State<DaoState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<Json<DaoMembershipView>, ApiError> {
    let who = actor(&principal);
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

/// Changes a member's role: owners any, admins below admin; never the last owner.
#[utoipa::path(put, path = "/daos/{dao}/members/{member}", tag = "microdao", request_body = SetDaoRole,
    params(("dao" = String, Path, description = "The microDAO's slug"),
        ("member" = String, Path, description = "`user:<id>` or `agent:<id>`")),
    responses((status = 200, body = DaoMembershipView), (status = 403), (status = 404),
        (status = 409, description = "The last owner, or archived"), (status = 422)))]
async fn set_member_role(
    State(state): State<DaoState>,
    principal: Principal,
    Path((slug, member)): Path<(String, String)>,
    Json(input): Json<SetDaoRole>,
) -> Result<Json<DaoMembershipView>, ApiError> {
    let role = parse_role(&input.role)?;
    let change = store::change_member(
        &state.db,
        &state.outbox,
        &slug_of(&slug)?,
        &actor(&principal),
        &domain::member_name(&member)?,
        Some(role),
        false,
    )
    .await?;
    Ok(state.changed(change).await)
}

/// Removes a member (with `ban`, for good): owners any, admins below admin.
#[utoipa::path(delete, path = "/daos/{dao}/members/{member}", tag = "microdao",
    params(("dao" = String, Path, description = "The microDAO's slug"),
        ("member" = String, Path, description = "`user:<id>` or `agent:<id>`"), RemoveParams),
    responses((status = 200, body = DaoMembershipView), (status = 403), (status = 404),
        (status = 409, description = "The last owner, or archived"), (status = 422)))]
async fn remove_dao_member(
    State(state): State<DaoState>,
    principal: Principal,
    Path((slug, member)): Path<(String, String)>,
    Query(params): Query<RemoveParams>,
) -> Result<Json<DaoMembershipView>, ApiError> {
    let change = store::change_member(
        &state.db,
        &state.outbox,
        &slug_of(&slug)?,
        &actor(&principal),
        &domain::member_name(&member)?,
        None,
        params.ban,
    )
    .await?;
    Ok(state.changed(change).await)
}

/// Invitations, newest first (their codes are never shown again).
#[utoipa::path(get, path = "/daos/{dao}/invites", tag = "microdao",
    params(("dao" = String, Path, description = "The microDAO's slug"), PageParams),
    responses((status = 200, body = Page<DaoInviteView>), (status = 400), (status = 403), (status = 404), (status = 422)))]
async fn list_dao_invites(
    State(state): State<DaoState>,
    Path(slug): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<DaoInviteView>>, ApiError> {
    let limit = page.limit()?;
    let rows = store::invites(&state.db, &slug_of(&slug)?, page.after()?.as_deref(), limit).await?;
    let page = Page::from_rows(rows, limit, |i| i.id.clone());
    Ok(Json(Page {
        items: page.items.into_iter().map(DaoInviteView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

/// A new invitation: a code for up to `max_uses` people within
/// `expires_in_days`, joining with `role`.
#[utoipa::path(post, path = "/daos/{dao}/invites", tag = "microdao", request_body = CreateDaoInvite,
    params(("dao" = String, Path, description = "The microDAO's slug")),
    responses((status = 201, body = NewDaoInviteView), (status = 403), (status = 404),
        (status = 409, description = "Archived"), (status = 422)))]
async fn create_dao_invite(
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
        &actor(&principal),
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
async fn revoke_dao_invite(
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
async fn accept_dao_invite(
    State(state): State<DaoState>,
    principal: Principal,
    Json(input): Json<AcceptDaoInvite>,
) -> Result<Json<DaoMembershipView>, ApiError> {
    let code = input.code.trim();
    if !code.starts_with(domain::INVITE_PREFIX) || code.len() > 128 {
        return Err(DaoError::InviteGone.into());
    }
    let change = store::accept(&state.db, &state.outbox, code, &actor(&principal)).await?;
    Ok(state.changed(change).await)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceView {
    /// `dao:<slug>` (the microDAO's own), `user:<id>` or `agent:<id>`.
    pub account: String,
    pub handle: Option<String>,
    pub balance: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TreasuryView {
    pub dao: String,
    /// The time the balances are at (RFC 3339 UTC).
    pub at: String,
    /// Points minted so far.
    pub supply: i64,
    pub accounts: Vec<BalanceView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MovementView {
    pub id: String,
    pub dao: String,
    /// `mint` or `transfer`.
    pub kind: String,
    /// The account debited (`issued:<slug>` for a mint).
    pub from: String,
    pub to: String,
    pub amount: i64,
    pub memo: String,
    pub actor: String,
    pub created_at: String,
}

impl From<Movement> for MovementView {
    fn from(m: Movement) -> Self {
        Self {
            id: m.id,
            dao: m.dao,
            kind: m.kind,
            from: m.from,
            to: m.to,
            amount: m.amount,
            memo: m.memo,
            actor: m.actor,
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TreasuryParams {
    /// Balances as they stood at this time (RFC 3339); default: now.
    pub at: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct MovementParams {
    /// Items per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[param(max_length = 512)]
    pub cursor: Option<String>,
    /// Only movements in or out of this account.
    pub account: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MintPoints {
    /// `dao:<slug>` or a member (`user:<id>`, `agent:<id>`).
    pub to: String,
    /// 1 to 10^12 points.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    pub amount: i64,
    #[serde(default)]
    pub memo: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferPoints {
    /// The account debited: the caller's own (default) or `dao:<slug>`
    /// (its owners and admins).
    #[serde(default)]
    pub from: Option<String>,
    pub to: String,
    /// 1 to 10^12 points.
    #[schema(minimum = 1, maximum = 1_000_000_000_000_i64)]
    pub amount: i64,
    #[serde(default)]
    pub memo: Option<String>,
}

/// Balances of every account, now or at a past time, and the supply.
#[utoipa::path(get, path = "/daos/{dao}/treasury", tag = "microdao",
    params(("dao" = String, Path, description = "The microDAO's slug"), TreasuryParams),
    responses((status = 200, body = TreasuryView), (status = 403), (status = 404), (status = 422)))]
async fn treasury(
    State(state): State<DaoState>,
    Path(slug): Path<String>,
    Query(params): Query<TreasuryParams>,
) -> Result<Json<TreasuryView>, ApiError> {
    let slug = slug_of(&slug)?;
    let at = match params.at.as_deref() {
        None => daarion_store::now(),
        Some(raw) => chrono::DateTime::parse_from_rfc3339(raw)
            .map(|t| daarion_store::format_time(t.with_timezone(&chrono::Utc)))
            .map_err(|_| {
                ApiError::validation("at is an RFC 3339 time like 2026-12-01T00:00:00Z")
            })?,
    };
    let (accounts, supply) = treasury::balances(&state.db, &slug, Some(&at)).await?;
    Ok(Json(TreasuryView {
        dao: slug,
        at,
        supply,
        accounts: accounts
            .into_iter()
            .map(|b| BalanceView {
                account: b.account,
                handle: b.handle,
                balance: b.balance,
            })
            .collect(),
    }))
}

/// Movements, newest first.
#[utoipa::path(get, path = "/daos/{dao}/treasury/movements", tag = "microdao",
    params(("dao" = String, Path, description = "The microDAO's slug"), MovementParams),
    responses((status = 200, body = Page<MovementView>), (status = 400), (status = 403), (status = 404), (status = 422)))]
async fn treasury_movements(
    State(state): State<DaoState>,
    Path(slug): Path<String>,
    Query(params): Query<MovementParams>,
) -> Result<Json<Page<MovementView>>, ApiError> {
    let page = PageParams {
        limit: params.limit,
        cursor: params.cursor,
    };
    let limit = page.limit()?;
    let rows = treasury::movements(
        &state.db,
        &slug_of(&slug)?,
        params.account.as_deref(),
        page.after()?.as_deref(),
        limit,
    )
    .await?;
    let page = Page::from_rows(rows, limit, |m| m.id.clone());
    Ok(Json(Page {
        items: page.items.into_iter().map(MovementView::from).collect(),
        next_cursor: page.next_cursor,
    }))
}

impl DaoState {
    async fn moved(
        &self,
        (movement, fresh, staged): (Movement, bool, daarion_bus::Staged),
    ) -> Response {
        self.outbox.relay(staged).await;
        created(fresh, MovementView::from(movement))
    }
}

/// Mints points into the microDAO's account or a member's (its owners).
/// Send `Idempotency-Key` to make retries safe.
#[utoipa::path(post, path = "/daos/{dao}/treasury/mint", tag = "microdao", request_body = MintPoints,
    params(("dao" = String, Path, description = "The microDAO's slug"), IdempotencyKey),
    responses((status = 201, body = MovementView),
        (status = 200, description = "Replay of an earlier request with the same key", body = MovementView),
        (status = 403), (status = 404),
        (status = 409, description = "Archived, or the key was used with another request"),
        (status = 422, description = "Invalid amount or memo, or not a member")))]
async fn mint(
    State(state): State<DaoState>,
    principal: Principal,
    Path(slug): Path<String>,
    key: IdempotencyKey,
    Json(input): Json<MintPoints>,
) -> Result<Response, ApiError> {
    let slug = slug_of(&slug)?;
    let order = treasury::mint_order(
        &slug,
        input.to,
        treasury::amount(input.amount)?,
        treasury::memo(input.memo.as_deref())?,
    );
    let done = treasury::execute(
        &state.db,
        &state.outbox,
        &slug,
        &order,
        &actor(&principal),
        key.as_deref(),
    )
    .await?;
    Ok(state.moved(done).await)
}

/// Moves points from the caller's account (or, for owners and admins, the
/// microDAO's) to another member or the microDAO. Send `Idempotency-Key` to
/// make retries safe.
#[utoipa::path(post, path = "/daos/{dao}/treasury/transfers", tag = "microdao", request_body = TransferPoints,
    params(("dao" = String, Path, description = "The microDAO's slug"), IdempotencyKey),
    responses((status = 201, body = MovementView),
        (status = 200, description = "Replay of an earlier request with the same key", body = MovementView),
        (status = 403, description = "Not yours to move"), (status = 404),
        (status = 409, description = "Not enough points, archived, or the key was used with another request"),
        (status = 422, description = "Invalid amount or memo, or not a member")))]
async fn transfer(
    State(state): State<DaoState>,
    principal: Principal,
    Path(slug): Path<String>,
    key: IdempotencyKey,
    Json(input): Json<TransferPoints>,
) -> Result<Response, ApiError> {
    let slug = slug_of(&slug)?;
    let order = treasury::Order {
        kind: treasury::Kind::Transfer,
        from: input.from.unwrap_or_else(|| principal.name()),
        to: input.to,
        amount: treasury::amount(input.amount)?,
        memo: treasury::memo(input.memo.as_deref())?,
    };
    let done = treasury::execute(
        &state.db,
        &state.outbox,
        &slug,
        &order,
        &actor(&principal),
        key.as_deref(),
    )
    .await?;
    Ok(state.moved(done).await)
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
async fn add_agent(
    State(state): State<DaoState>,
    principal: Principal,
    Path(slug): Path<String>,
    Json(input): Json<AddAgent>,
) -> Result<Json<DaoMembershipView>, ApiError> {
    let name = domain::member_name(&format!("agent:{}", input.agent))?;
    let agent = state
        .access
        .directory()
        .principal(daarion_access::PrincipalKind::Agent, &input.agent)
        .await
        .map_err(|e| ApiError::unavailable(&e))?
        .ok_or_else(|| DaoError::NotFound(format!("no agent {:?}", input.agent)))?;
    let by = actor(&principal);
    if !by.city_admin && agent.owner.as_deref() != Some(principal.id.as_str()) {
        return Err(DaoError::Forbidden("only the agent's owner may bring it in".into()).into());
    }
    let change = store::add_agent(&state.db, &state.outbox, &slug_of(&slug)?, &name, &by).await?;
    Ok(state.changed(change).await)
}
