//! The city feed, newest first; live on `/ws/city/feed`.

use axum::extract::State;
use daarion_kernel::{
    ApiError,
    http::{Json, Page, PageParams, Query},
};
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    CityState,
    domain::{CityError, Slug},
    feed::{FeedEntryView, FeedKind},
    store::feed::{self as feed_store, Filter},
};

pub fn router() -> OpenApiRouter<CityState> {
    OpenApiRouter::new().routes(routes!(get_feed))
}

/// Longest `actor` filter: `agent:` and an id, or a username.
const MAX_ACTOR_CHARS: usize = 200;

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct FeedFilter {
    /// Only entries of this kind.
    pub kind: Option<FeedKind>,
    /// Only what this person (a username) or agent (`agent:<id>`) did.
    #[param(max_length = 200)]
    pub actor: Option<String>,
    /// Only what happened in this public room (its slug).
    #[param(max_length = 63)]
    pub room: Option<String>,
}

/// What happens in public: messages of public rooms, agents' replies,
/// rooms opening, the map changing and public communities, newest first.
#[utoipa::path(get, path = "/feed", tag = "city", params(PageParams, FeedFilter),
    responses((status = 200, body = Page<FeedEntryView>),
        (status = 400, description = "A cursor this endpoint did not give"),
        (status = 422, description = "A limit out of bounds, or a bad filter")))]
async fn get_feed(
    State(state): State<CityState>,
    Query(page): Query<PageParams>,
    Query(filter): Query<FeedFilter>,
) -> Result<Json<Page<FeedEntryView>>, ApiError> {
    let limit = page.limit()?;
    let before = page
        .after()?
        .map(|c| c.parse::<i64>())
        .transpose()
        .map_err(|_| ApiError::bad_request("cursor is not one this endpoint gave"))?;
    if filter
        .actor
        .as_deref()
        .is_some_and(|a| a.is_empty() || a.chars().count() > MAX_ACTOR_CHARS)
    {
        return Err(
            CityError::Invalid(format!("actor must be 1 to {MAX_ACTOR_CHARS} characters")).into(),
        );
    }
    let room = filter.room.as_deref().map(Slug::parse).transpose()?;
    let filter = Filter {
        kind: filter.kind,
        actor: filter.actor.as_deref(),
        room: room.as_ref().map(Slug::as_str),
    };
    let rows = feed_store::page(&state.db, &filter, before, limit).await?;
    let page = Page::from_rows(rows, limit, |e| e.seq.to_string());
    Ok(Json(page.map(FeedEntryView::from)))
}
