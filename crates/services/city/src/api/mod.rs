//! HTTP routes and wire types. Handlers parse, call the domain and store,
//! and map [`CityError`] to [`ApiError`] in one place. Rooms, messages and
//! people's presence here; the map, the feed and agents in their files.

mod agents;
mod feed;
mod map;

use axum::{
    extract::{Path, State},
    response::Response,
};
use daarion_access::Principal;
use daarion_kernel::{
    ApiError,
    http::{IdempotencyKey, Json, Page, PageParams, Query, created},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    CityState,
    domain::{CityError, Message, NewRoom, Room, Slug},
    store,
};

impl From<CityError> for ApiError {
    fn from(error: CityError) -> Self {
        match &error {
            CityError::Invalid(message) => ApiError::validation(message.clone()),
            CityError::RoomNotFound(_) | CityError::NotFound(_) => {
                ApiError::not_found(error.to_string())
            }
            CityError::Forbidden(message) => ApiError::forbidden(message.clone()),
            CityError::Conflict(message) => ApiError::conflict(message.clone()),
            CityError::Store(e) if e.is_retryable() => ApiError::unavailable(&error),
            CityError::Bus(daarion_bus::BusError::Unavailable(_)) => ApiError::unavailable(&error),
            CityError::Bus(daarion_bus::BusError::Store(e)) if e.is_retryable() => {
                ApiError::unavailable(&error)
            }
            CityError::Cache(daarion_cache::CacheError::Unavailable(_)) => {
                ApiError::unavailable(&error)
            }
            CityError::Messaging(_) => match error {
                CityError::Messaging(inner) => ApiError::from(inner),
                _ => ApiError::internal(&error),
            },
            _ => ApiError::internal(&error),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoomView {
    pub id: String,
    pub slug: String,
    pub title: String,
    pub description: String,
    pub created_by: String,
    /// RFC 3339 UTC.
    pub created_at: String,
}

impl From<Room> for RoomView {
    fn from(r: Room) -> Self {
        Self {
            id: r.id,
            slug: r.slug,
            title: r.title,
            description: r.description,
            created_by: r.created_by,
            created_at: r.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct MessageView {
    pub id: String,
    /// The room's slug.
    pub room: String,
    pub author: String,
    pub body: String,
    /// RFC 3339 UTC.
    pub created_at: String,
}

impl From<Message> for MessageView {
    fn from(m: Message) -> Self {
        Self {
            id: m.id,
            room: m.room,
            author: m.author,
            body: m.body,
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoom {
    pub slug: String,
    pub title: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostMessage {
    pub body: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PresentUser {
    pub user: String,
}

pub fn router() -> OpenApiRouter<CityState> {
    OpenApiRouter::new()
        .routes(routes!(list_rooms, create_room))
        .routes(routes!(get_room))
        .routes(routes!(list_messages, post_message))
        .routes(routes!(presence))
        .merge(map::router())
        .merge(feed::router())
        .merge(agents::router())
}

/// List public rooms, by slug.
#[utoipa::path(get, path = "/rooms", tag = "city", params(PageParams),
    responses((status = 200, description = "A page of rooms", body = Page<RoomView>)))]
async fn list_rooms(
    State(state): State<CityState>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<RoomView>>, ApiError> {
    let limit = page.limit()?;
    let rows = store::rooms(&state.db, page.after()?.as_deref(), limit).await?;
    let page = Page::from_rows(rows, limit, |r| r.slug.clone());
    Ok(Json(page.map(RoomView::from)))
}

/// Create a public room. Send `Idempotency-Key` to make retries safe.
#[utoipa::path(post, path = "/rooms", tag = "city", request_body = CreateRoom,
    params(IdempotencyKey),
    responses((status = 201, description = "Created", body = RoomView),
        (status = 200, description = "Replay of an earlier create with the same key", body = RoomView),
        (status = 409, description = "The slug is taken, or this Idempotency-Key was used with a different request"),
        (status = 422, description = "Invalid fields")))]
async fn create_room(
    State(state): State<CityState>,
    actor: Principal,
    key: IdempotencyKey,
    Json(input): Json<CreateRoom>,
) -> Result<Response, ApiError> {
    let new_room = NewRoom::parse(&input.slug, &input.title, input.description.as_deref())?;
    let (room, fresh, staged) = store::create_room(
        &state.db,
        &state.outbox,
        &new_room,
        &actor.handle,
        key.as_deref(),
    )
    .await?;
    state.outbox.relay(staged).await;
    Ok(created(fresh, RoomView::from(room)))
}

/// One room.
#[utoipa::path(get, path = "/rooms/{slug}", tag = "city",
    params(("slug" = String, Path, description = "Room slug")),
    responses((status = 200, body = RoomView), (status = 404, description = "No such room")))]
async fn get_room(
    State(state): State<CityState>,
    Path(slug): Path<String>,
) -> Result<Json<RoomView>, ApiError> {
    let slug = Slug::parse(&slug).map_err(|_| CityError::RoomNotFound(slug))?;
    Ok(Json(store::room(&state.db, &slug).await?.into()))
}

/// A room's messages, newest first.
#[utoipa::path(get, path = "/rooms/{slug}/messages", tag = "city",
    params(("slug" = String, Path, description = "Room slug"), PageParams),
    responses((status = 200, body = Page<MessageView>), (status = 404, description = "No such room")))]
async fn list_messages(
    State(state): State<CityState>,
    Path(slug): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<MessageView>>, ApiError> {
    let slug = Slug::parse(&slug).map_err(|_| CityError::RoomNotFound(slug))?;
    let limit = page.limit()?;
    let before = page
        .after()?
        .map(|c| c.parse::<i64>())
        .transpose()
        .map_err(|_| ApiError::bad_request("cursor is not one this endpoint gave"))?;
    let rows = store::messages(&state.db, &slug, before, limit).await?;
    let page = Page::from_rows(rows, limit, |m| m.seq.to_string());
    Ok(Json(page.map(MessageView::from)))
}

/// Post a message to a room; every client connected to the room receives it.
#[utoipa::path(post, path = "/rooms/{slug}/messages", tag = "city", request_body = PostMessage,
    params(("slug" = String, Path, description = "Room slug"), IdempotencyKey),
    responses((status = 201, body = MessageView),
        (status = 200, description = "Replay of an earlier post with the same key", body = MessageView),
        (status = 404, description = "No such room"),
        (status = 409, description = "This Idempotency-Key was used with a different request"),
        (status = 422, description = "Empty or over-long body")))]
async fn post_message(
    State(state): State<CityState>,
    Path(slug): Path<String>,
    actor: Principal,
    key: IdempotencyKey,
    Json(input): Json<PostMessage>,
) -> Result<Response, ApiError> {
    let slug = Slug::parse(&slug).map_err(|_| CityError::RoomNotFound(slug))?;
    let (message, fresh) =
        crate::post_message(&state, &slug, &actor, &input.body, key.as_deref()).await?;
    Ok(created(fresh, message))
}

/// Who is in the city now.
#[utoipa::path(get, path = "/presence", tag = "city",
    responses((status = 200, body = Page<PresentUser>)))]
async fn presence(State(state): State<CityState>) -> Result<Json<Page<PresentUser>>, ApiError> {
    let users = crate::presence::present(&state).await?;
    Ok(Json(Page {
        items: users.into_iter().map(|user| PresentUser { user }).collect(),
        next_cursor: None,
    }))
}
