//! Rooms: city rooms, microDAO rooms, direct and group conversations;
//! their settings and who is in a conversation.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use daarion_access::{Action, Facts, Principal, PrincipalKind};
use daarion_kernel::{
    ApiError,
    http::{IdempotencyKey, Json, Page, PageParams, Query, created},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{readable, room_id};
use crate::{
    MessagingState,
    domain::{self, MessagingError, Room, RoomKind, RoomSettings},
    store::{self, NewRoom},
};

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatRoomView {
    pub id: String,
    /// `public` (a city room), `dao`, `direct` or `group`.
    pub kind: String,
    /// A microDAO room's microDAO.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dao: Option<String>,
    /// City and microDAO rooms' name in URLs (`general`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slug: Option<String>,
    pub title: String,
    pub description: String,
    /// The least microDAO role that reads it (default: guests).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audience: Option<String>,
    /// The least microDAO role that posts (default: members).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub posters: Option<String>,
    pub agents_allowed: bool,
    /// The agent that answers every message (its id); none: agents answer
    /// when mentioned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub responder: Option<String>,
    /// Seconds each person waits between messages (0: off).
    pub slow_mode_secs: u32,
    /// The sequence number of the room's latest change.
    pub last_seq: i64,
    pub created_by: String,
    pub created_at: String,
    pub archived: bool,
    /// Conversations: who is in (`user:<id>`, `agent:<id>`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub participants: Option<Vec<String>>,
    /// Messages the caller has not read (in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread: Option<i64>,
    /// Unread messages that mention the caller (in lists).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread_mentions: Option<i64>,
    /// Whether the caller may change its settings and archive it (one
    /// room's answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub may_manage: Option<bool>,
}

impl From<Room> for ChatRoomView {
    fn from(r: Room) -> Self {
        Self {
            id: r.id,
            kind: r.kind.as_str().to_owned(),
            dao: r.dao,
            slug: r.slug,
            title: r.title,
            description: r.description,
            audience: r.audience.map(|a| a.as_str().to_owned()),
            posters: r.posters.map(|p| p.as_str().to_owned()),
            agents_allowed: r.agents_allowed,
            responder: r.responder,
            slow_mode_secs: r.slow_mode_secs,
            last_seq: r.last_seq,
            created_by: r.created_by,
            created_at: r.created_at,
            archived: r.archived_at.is_some(),
            participants: None,
            unread: None,
            unread_mentions: None,
            may_manage: None,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePublicRoom {
    pub slug: String,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateDaoRoom {
    pub slug: String,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
    /// `owner`, `admin`, `member` or `guest` (default: guests read).
    #[serde(default)]
    pub audience: Option<String>,
    /// `owner`, `admin`, `member` or `guest` (default: members post).
    #[serde(default)]
    pub posters: Option<String>,
    #[serde(default)]
    pub agents_allowed: Option<bool>,
    /// 0 to 21 600.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 21600)]
    pub slow_mode_secs: Option<u32>,
}

/// Fields to change; `audience` or `posters` set to `""` go back to the
/// default.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoom {
    #[serde(default)]
    pub title: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(default)]
    pub posters: Option<String>,
    #[serde(default)]
    pub agents_allowed: Option<bool>,
    /// An agent's id to answer every message; `""`: agents answer only
    /// when mentioned.
    #[serde(default)]
    #[schema(max_length = 63)]
    pub responder: Option<String>,
    #[serde(default)]
    #[schema(minimum = 0, maximum = 21600)]
    pub slow_mode_secs: Option<u32>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartDirect {
    /// `user:<id>` or `agent:<id>`.
    pub with: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartGroup {
    pub title: String,
    /// Others to bring in (`user:<id>`, `agent:<id>`); the caller is in it
    /// and manages it.
    pub participants: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddParticipant {
    /// `user:<id>` or `agent:<id>`.
    pub principal: String,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct RoomFilter {
    /// Only rooms of this kind: `public`, `dao`, `direct`, `group`.
    pub kind: Option<String>,
}

impl MessagingState {
    /// Adds each room's unread counts for `principal`.
    async fn with_unread(
        &self,
        principal: &Principal,
        page: Page<Room>,
    ) -> Result<Page<ChatRoomView>, ApiError> {
        let ids: Vec<String> = page.items.iter().map(|r| r.id.clone()).collect();
        let counts = store::unread(&self.db, &ids, &principal.name(), &principal.handle).await?;
        let conversations: Vec<String> = page
            .items
            .iter()
            .filter(|r| r.kind.has_participants())
            .map(|r| r.id.clone())
            .collect();
        let people = store::participants_of(&self.db, &conversations).await?;
        Ok(page.map(|room| {
            let (unread, mentions) = counts
                .iter()
                .find(|(id, _, _)| *id == room.id)
                .map_or((0, 0), |(_, n, m)| (*n, *m));
            let participants = room.kind.has_participants().then(|| {
                people
                    .iter()
                    .filter(|(r, _)| *r == room.id)
                    .map(|(_, p)| p.clone())
                    .collect()
            });
            ChatRoomView {
                unread: Some(unread),
                unread_mentions: Some(mentions),
                participants,
                ..ChatRoomView::from(room)
            }
        }))
    }

    /// A room with its participants, as answered.
    async fn view(&self, room: Room) -> Result<ChatRoomView, ApiError> {
        let participants = if room.kind.has_participants() {
            let list = store::participants(&self.db, &room.id).await?;
            Some(list.into_iter().map(|(p, _)| p).collect())
        } else {
            None
        };
        Ok(ChatRoomView {
            participants,
            ..ChatRoomView::from(room)
        })
    }

    /// Checks that `raw` names someone who exists: people and agents can
    /// only be brought into a conversation once they have an account.
    async fn existing(&self, raw: &str) -> Result<String, ApiError> {
        let (kind, id) = domain::participant(raw)?;
        let found = self.authn.principal(kind, &id).await.map_err(|_| {
            ApiError::unavailable(&MessagingError::NotFound(
                "authentication is unavailable".into(),
            ))
        })?;
        match found {
            Some(p) if p.kind == PrincipalKind::User || p.kind == PrincipalKind::Agent => {
                Ok(p.name())
            }
            _ => Err(ApiError::not_found(format!("nobody is {raw}"))),
        }
    }
}

/// Rooms the caller may read: city rooms, their conversations and their
/// microDAOs' rooms, with unread counts.
#[utoipa::path(get, path = "/rooms", tag = "messaging", params(PageParams, RoomFilter),
    responses((status = 200, body = Page<ChatRoomView>), (status = 400), (status = 401), (status = 422)))]
pub(super) async fn list_chat_rooms(
    State(state): State<MessagingState>,
    principal: Principal,
    Query(page): Query<PageParams>,
    Query(filter): Query<RoomFilter>,
) -> Result<Json<Page<ChatRoomView>>, ApiError> {
    let kind = match filter.kind.as_deref() {
        None => None,
        Some(raw) => Some(
            RoomKind::parse(raw)
                .ok_or_else(|| ApiError::validation("kind is one of public, dao, direct, group"))?,
        ),
    };
    let limit = page.limit()?;
    let rows = store::rooms(
        &state.db,
        &readable(&principal),
        (kind, None),
        page.after()?.as_deref(),
        limit,
    )
    .await?;
    let page = Page::from_rows(rows, limit, |r| r.id.clone());
    Ok(Json(state.with_unread(&principal, page).await?))
}

/// Opens a city room, which every citizen reads and talks in. Send
/// `Idempotency-Key` to make retries safe.
#[utoipa::path(post, path = "/rooms", tag = "messaging", request_body = CreatePublicRoom,
    params(IdempotencyKey),
    responses((status = 201, body = ChatRoomView), (status = 200, description = "Replay", body = ChatRoomView),
        (status = 401), (status = 403), (status = 409, description = "The slug is taken"),
        (status = 422)))]
pub(super) async fn create_public_room(
    State(state): State<MessagingState>,
    principal: Principal,
    key: IdempotencyKey,
    Json(input): Json<CreatePublicRoom>,
) -> Result<Response, ApiError> {
    let slug = domain::slug(&input.slug)?;
    let new = NewRoom {
        kind: RoomKind::Public,
        key: Some(format!("public:{slug}")),
        dao: None,
        title: domain::title(&input.title)?,
        description: domain::description(input.description.as_deref().unwrap_or(""))?,
        slug: Some(slug),
        audience: None,
        posters: None,
        agents_allowed: true,
        slow_mode_secs: 0,
        participants: Vec::new(),
    };
    state.create(&principal, new, key.as_deref()).await
}

impl MessagingState {
    async fn create(
        &self,
        principal: &Principal,
        new: NewRoom,
        key: Option<&str>,
    ) -> Result<Response, ApiError> {
        let by = principal.name();
        let outcome = store::create_room(&self.db, &self.outbox, &new, &by, key, |room| {
            vec![crate::events::room_created(room, &by)]
        })
        .await?;
        self.outbox.relay(outcome.staged).await;
        Ok(created(outcome.fresh, self.view(outcome.room).await?))
    }
}

/// Opens (or reopens) the direct conversation with someone.
#[utoipa::path(post, path = "/direct", tag = "messaging", request_body = StartDirect,
    responses((status = 201, body = ChatRoomView),
        (status = 200, description = "The conversation already existed", body = ChatRoomView),
        (status = 401), (status = 404, description = "Nobody by that name"), (status = 422)))]
pub(super) async fn start_direct(
    State(state): State<MessagingState>,
    principal: Principal,
    Json(input): Json<StartDirect>,
) -> Result<Response, ApiError> {
    let me = principal.name();
    let other = state.existing(&input.with).await?;
    if other == me {
        return Err(ApiError::validation(
            "a direct conversation needs someone else",
        ));
    }
    let new = NewRoom {
        kind: RoomKind::Direct,
        key: Some(domain::direct_key(&me, &other)),
        dao: None,
        slug: None,
        title: "Direct".into(),
        description: String::new(),
        audience: None,
        posters: None,
        agents_allowed: true,
        slow_mode_secs: 0,
        participants: vec![(me.clone(), false), (other, false)],
    };
    state.create(&principal, new, None).await
}

/// Starts a group conversation; the caller manages it. Send
/// `Idempotency-Key` to make retries safe.
#[utoipa::path(post, path = "/groups", tag = "messaging", request_body = StartGroup,
    params(IdempotencyKey),
    responses((status = 201, body = ChatRoomView), (status = 200, description = "Replay", body = ChatRoomView),
        (status = 401), (status = 404, description = "Nobody by one of the names"),
        (status = 409), (status = 422, description = "Invalid title, or too many participants")))]
pub(super) async fn start_group(
    State(state): State<MessagingState>,
    principal: Principal,
    key: IdempotencyKey,
    Json(input): Json<StartGroup>,
) -> Result<Response, ApiError> {
    let title = domain::title(&input.title)?;
    let max = state.settings.max_group_participants;
    if input.participants.len() + 1 > max {
        return Err(ApiError::validation(format!(
            "a group holds at most {max} participants"
        )));
    }
    let me = principal.name();
    let mut participants = vec![(me.clone(), true)];
    for raw in &input.participants {
        let name = state.existing(raw).await?;
        if !participants.iter().any(|(p, _)| *p == name) {
            participants.push((name, false));
        }
    }
    let new = NewRoom {
        kind: RoomKind::Group,
        key: None,
        dao: None,
        slug: None,
        title,
        description: String::new(),
        audience: None,
        posters: None,
        agents_allowed: true,
        slow_mode_secs: 0,
        participants,
    };
    state.create(&principal, new, key.as_deref()).await
}

/// A microDAO's rooms that the caller's role reaches.
#[utoipa::path(get, path = "/daos/{dao}/rooms", tag = "messaging",
    params(("dao" = String, Path, description = "The microDAO's slug"), PageParams),
    responses((status = 200, body = Page<ChatRoomView>), (status = 400), (status = 401),
        (status = 403), (status = 404), (status = 422)))]
pub(super) async fn list_dao_rooms(
    State(state): State<MessagingState>,
    principal: Principal,
    Path(dao): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<ChatRoomView>>, ApiError> {
    let limit = page.limit()?;
    let rows = store::rooms(
        &state.db,
        &readable(&principal),
        (Some(RoomKind::Dao), Some(&dao)),
        page.after()?.as_deref(),
        limit,
    )
    .await?;
    let page = Page::from_rows(rows, limit, |r| r.id.clone());
    Ok(Json(state.with_unread(&principal, page).await?))
}

fn bound(raw: Option<&str>) -> Result<Option<daarion_access::vocab::roles::DaoRole>, ApiError> {
    Ok(raw.map(domain::bound).transpose()?)
}

/// A bound to change: `""` clears it.
fn cleared_or_bound(raw: &str) -> Result<Option<daarion_access::vocab::roles::DaoRole>, ApiError> {
    bound(Some(raw).filter(|r| !r.is_empty()))
}

/// Opens a room in a microDAO (its admins), for all its members or from a
/// role up. Send `Idempotency-Key` to make retries safe.
#[utoipa::path(post, path = "/daos/{dao}/rooms", tag = "messaging", request_body = CreateDaoRoom,
    params(("dao" = String, Path, description = "The microDAO's slug"), IdempotencyKey),
    responses((status = 201, body = ChatRoomView), (status = 200, description = "Replay", body = ChatRoomView),
        (status = 401), (status = 403), (status = 404),
        (status = 409, description = "The slug is taken in this microDAO"), (status = 422)))]
pub(super) async fn create_dao_room(
    State(state): State<MessagingState>,
    principal: Principal,
    Path(dao): Path<String>,
    key: IdempotencyKey,
    Json(input): Json<CreateDaoRoom>,
) -> Result<Response, ApiError> {
    let slug = domain::slug(&input.slug)?;
    let new = NewRoom {
        kind: RoomKind::Dao,
        key: Some(domain::dao_room_key(&dao, &slug)),
        title: domain::title(&input.title)?,
        description: domain::description(input.description.as_deref().unwrap_or(""))?,
        audience: bound(input.audience.as_deref())?,
        posters: bound(input.posters.as_deref())?,
        agents_allowed: input.agents_allowed.unwrap_or(true),
        slow_mode_secs: domain::slow_mode(input.slow_mode_secs.unwrap_or(0))?,
        dao: Some(dao),
        slug: Some(slug),
        participants: Vec::new(),
    };
    state.create(&principal, new, key.as_deref()).await
}

/// One room (a conversation with its participants).
#[utoipa::path(get, path = "/rooms/{room}", tag = "messaging",
    params(("room" = String, Path, description = "The room's id")),
    responses((status = 200, body = ChatRoomView), (status = 401), (status = 403), (status = 404)))]
pub(super) async fn get_chat_room(
    State(state): State<MessagingState>,
    Path(room): Path<String>,
    principal: Principal,
) -> Result<Json<ChatRoomView>, ApiError> {
    let room = store::room(&state.db, &room_id(&room)?)
        .await?
        .ok_or_else(|| ApiError::not_found("no such room"))?;
    let resource = crate::access::room_of(&state.db, &room).await?;
    let may_manage = state.access.allows(&principal, Action::Manage, &resource);
    Ok(Json(ChatRoomView {
        may_manage: Some(may_manage),
        ..state.view(room).await?
    }))
}

/// Changes a room's settings (its managers).
#[utoipa::path(patch, path = "/rooms/{room}", tag = "messaging", request_body = UpdateRoom,
    params(("room" = String, Path, description = "The room's id")),
    responses((status = 200, body = ChatRoomView), (status = 401), (status = 403), (status = 404),
        (status = 409, description = "Archived"), (status = 422)))]
pub(super) async fn update_room(
    State(state): State<MessagingState>,
    Path(room): Path<String>,
    Json(input): Json<UpdateRoom>,
) -> Result<Json<ChatRoomView>, ApiError> {
    let id = room_id(&room)?;
    let current = store::room(&state.db, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such room"))?;
    let bounds_given = input.audience.is_some() || input.posters.is_some();
    if bounds_given && current.kind != RoomKind::Dao {
        return Err(ApiError::validation(
            "only a microDAO's rooms have an audience and posters",
        ));
    }
    let settings = RoomSettings {
        title: input.title.as_deref().map(domain::title).transpose()?,
        description: input
            .description
            .as_deref()
            .map(domain::description)
            .transpose()?,
        audience: input
            .audience
            .as_deref()
            .map(cleared_or_bound)
            .transpose()?,
        posters: input.posters.as_deref().map(cleared_or_bound).transpose()?,
        agents_allowed: input.agents_allowed,
        responder: input
            .responder
            .as_deref()
            .map(domain::responder)
            .transpose()?,
        slow_mode_secs: input.slow_mode_secs.map(domain::slow_mode).transpose()?,
    };
    let room = store::update_room(&state.db, &id, &settings).await?;
    Ok(Json(state.view(room).await?))
}

/// Archives a room (its managers): readable still, closed to posts.
#[utoipa::path(post, path = "/rooms/{room}/archive", tag = "messaging",
    params(("room" = String, Path, description = "The room's id")),
    responses((status = 204, description = "Archived"), (status = 401), (status = 403), (status = 404)))]
pub(super) async fn archive_room(
    State(state): State<MessagingState>,
    Path(room): Path<String>,
) -> Result<StatusCode, ApiError> {
    store::archive_room(&state.db, &room_id(&room)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ChatParticipantView {
    pub principal: String,
    /// Manages the group (renames it, brings people in, takes them out).
    pub manager: bool,
}

/// Who is in a conversation.
#[utoipa::path(get, path = "/rooms/{room}/participants", tag = "messaging",
    params(("room" = String, Path, description = "The room's id")),
    responses((status = 200, body = Page<ChatParticipantView>), (status = 401), (status = 403), (status = 404)))]
pub(super) async fn list_participants(
    State(state): State<MessagingState>,
    Path(room): Path<String>,
) -> Result<Json<Page<ChatParticipantView>>, ApiError> {
    let list = store::participants(&state.db, &room_id(&room)?).await?;
    Ok(Json(Page {
        items: list
            .into_iter()
            .map(|(principal, manager)| ChatParticipantView { principal, manager })
            .collect(),
        next_cursor: None,
    }))
}

/// Brings someone into a group conversation (its managers).
#[utoipa::path(post, path = "/rooms/{room}/participants", tag = "messaging", request_body = AddParticipant,
    params(("room" = String, Path, description = "The room's id")),
    responses((status = 204, description = "Added"), (status = 401), (status = 403),
        (status = 404, description = "No such room or person"),
        (status = 409, description = "Already in, not a group, or full"), (status = 422)))]
pub(super) async fn add_participant(
    State(state): State<MessagingState>,
    Path(room): Path<String>,
    Json(input): Json<AddParticipant>,
) -> Result<StatusCode, ApiError> {
    let name = state.existing(&input.principal).await?;
    store::add_participant(
        &state.db,
        &room_id(&room)?,
        &name,
        state.settings.max_group_participants,
    )
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Leaves a group conversation, or takes someone out of it (its managers).
#[utoipa::path(delete, path = "/rooms/{room}/participants/{principal}", tag = "messaging",
    params(("room" = String, Path, description = "The room's id"),
        ("principal" = String, Path, description = "`user:<id>` or `agent:<id>`")),
    responses((status = 204, description = "Out"), (status = 401), (status = 403), (status = 404),
        (status = 409, description = "Not a group")))]
pub(super) async fn remove_participant(
    State(state): State<MessagingState>,
    principal: Principal,
    Path((room, who)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id = room_id(&room)?;
    if who != principal.name() {
        let current = store::room(&state.db, &id)
            .await?
            .ok_or_else(|| ApiError::not_found("no such room"))?;
        let resource = crate::access::room_of(&state.db, &current).await?;
        state
            .access
            .check(&principal, Action::Manage, &resource, Facts::default())
            .await?;
    }
    store::remove_participant(&state.db, &id, &who).await?;
    Ok(StatusCode::NO_CONTENT)
}
