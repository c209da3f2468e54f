//! MicroDAOs themselves: list, create, read, change, archive.

use axum::{
    extract::{Path, State},
    response::Response,
};
use daarion_access::{
    Action, Facts, Principal,
    vocab::roles::{DaoPermission, DaoRole},
};
use daarion_kernel::{
    ApiError,
    http::{IdempotencyKey, Json, Page, PageParams, Query, created},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Actor, permissions_in, role_in, slug_of};
use crate::{
    DaoState,
    domain::{self, DaoError, Visibility},
    store::{self, Dao, NewDao, Patch},
};

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
    /// What the caller's custom role here grants.
    pub my_permissions: Vec<DaoPermission>,
    /// The agent that speaks for it: it greets newcomers and answers in
    /// its `general` room.
    pub orchestrator: Option<String>,
}

impl DaoView {
    fn of(dao: Dao, viewer: &Principal) -> Self {
        Self {
            my_role: role_in(viewer, &dao.slug),
            my_permissions: permissions_in(viewer, &dao.slug),
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
            orchestrator: dao.orchestrator,
        }
    }
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
    /// An agent of the creator's to found it with: it joins as the
    /// microDAO's orchestrator, and `governance` and `crew` rooms open
    /// beside `general`, where it answers.
    #[serde(default)]
    pub orchestrator: Option<String>,
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
    /// One of its agents to speak for it, or `""` for none.
    #[serde(default)]
    pub orchestrator: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct ArchivedParam {
    /// Include archived microDAOs.
    #[serde(default)]
    pub archived: bool,
}

/// MicroDAOs the caller may see, by slug: public ones and their own.
#[utoipa::path(get, path = "/daos", tag = "microdao", params(PageParams, ArchivedParam),
    responses((status = 200, body = Page<DaoView>), (status = 400), (status = 422)))]
pub(super) async fn list_daos(
    State(state): State<DaoState>,
    principal: Principal,
    Query(page): Query<PageParams>,
    Query(params): Query<ArchivedParam>,
) -> Result<Json<Page<DaoView>>, ApiError> {
    let limit = page.limit()?;
    let rows = store::list(
        &state.db,
        &Actor::of(&principal),
        params.archived,
        page.after()?.as_deref(),
        limit,
    )
    .await?;
    let page = Page::from_rows(rows, limit, |d| d.slug.clone());
    Ok(Json(page.map(|d| DaoView::of(d, &principal))))
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
pub(super) async fn create_dao(
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
        orchestrator: input
            .orchestrator
            .as_deref()
            .map(domain::slug)
            .transpose()?,
    };
    if let Some(agent) = &new.orchestrator {
        super::members::may_bring(&state, &principal, agent).await?;
    }
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
        &Actor::of(&principal),
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
pub(super) async fn get_dao(
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
pub(super) async fn update_dao(
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
        orchestrator: clearable(input.orchestrator.as_deref(), domain::slug)?,
    };
    let (dao, staged) = store::update(
        &state.db,
        &state.outbox,
        &slug_of(&slug)?,
        &patch,
        &Actor::of(&principal),
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
pub(super) async fn archive_dao(
    State(state): State<DaoState>,
    principal: Principal,
    Path(slug): Path<String>,
) -> Result<Json<DaoView>, ApiError> {
    let (dao, staged) = store::archive(
        &state.db,
        &state.outbox,
        &slug_of(&slug)?,
        &Actor::of(&principal),
    )
    .await?;
    state.outbox.relay(staged).await;
    Ok(Json(DaoView::of(dao, &principal)))
}
