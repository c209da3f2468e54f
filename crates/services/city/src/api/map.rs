//! The city map: anyone reads it (while `city.public_read` is on); city
//! admins draw districts and place public rooms. Every change enters the
//! feed (`map_changed`), which is how open map pages learn of it.

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::Response,
};
use daarion_access::Principal;
use daarion_kernel::{
    ApiError,
    http::{Json, created},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{
    CityState,
    domain::{CityError, Slug},
    feed,
    map::{self, District, Place, PlaceRole, Rect},
    store,
};

pub fn router() -> OpenApiRouter<CityState> {
    OpenApiRouter::new()
        .routes(routes!(get_map))
        .routes(routes!(put_district, delete_district))
        .routes(routes!(put_place, delete_place))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct MapView {
    /// The grid's size, in cells.
    pub width: u32,
    pub height: u32,
    pub districts: Vec<DistrictView>,
    pub places: Vec<PlaceView>,
    /// Public communities whose district is on the map.
    pub communities: Vec<MapCommunityView>,
}

/// A public community, standing in its district.
#[derive(Debug, Serialize, ToSchema)]
pub struct MapCommunityView {
    /// The community's slug (`/communities/{slug}`).
    pub slug: String,
    pub name: String,
    pub district: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DistrictView {
    pub slug: String,
    pub name: String,
    pub description: String,
    /// `#rrggbb`.
    pub color: String,
    pub area: Rect,
}

impl From<District> for DistrictView {
    fn from(d: District) -> Self {
        Self {
            slug: d.slug,
            name: d.name,
            description: d.description,
            color: d.color,
            area: d.area,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PlaceView {
    /// The public room's slug.
    pub room: String,
    /// The room's title.
    pub title: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub district: Option<String>,
    pub area: Rect,
    pub zone: String,
    pub role: PlaceRole,
    pub icon: String,
    /// `#rrggbb`.
    pub color: String,
}

impl PlaceView {
    fn of(place: Place, title: String) -> Self {
        Self {
            room: place.room,
            title,
            district: place.district,
            area: place.area,
            zone: place.zone,
            role: place.role,
            icon: place.icon,
            color: place.color,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutDistrict {
    #[schema(min_length = 1, max_length = 80)]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 500)]
    pub description: Option<String>,
    /// `#rrggbb`.
    pub color: String,
    pub area: Rect,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PutPlace {
    /// The district it stands in; its area must hold the place.
    #[serde(default)]
    pub district: Option<String>,
    pub area: Rect,
    /// A slug naming the zone (free-form: `core`, `harbour`...).
    pub zone: String,
    pub role: PlaceRole,
    /// A slug naming the icon the web UI draws.
    pub icon: String,
    /// `#rrggbb`.
    pub color: String,
}

fn slug(raw: &str, what: &str) -> Result<String, CityError> {
    Slug::parse(raw)
        .map(|s| s.as_str().to_owned())
        .map_err(|_| CityError::NotFound(format!("{what} {raw:?} does not exist")))
}

/// The map: its grid, districts and the places of public rooms.
#[utoipa::path(get, path = "/map", tag = "city",
    responses((status = 200, body = MapView)))]
async fn get_map(State(state): State<CityState>) -> Result<Json<MapView>, ApiError> {
    let (districts, places) = store::map::map(&state.db).await?;
    let slugs: Vec<String> = places.iter().map(|p| p.room.clone()).collect();
    let rooms = daarion_messaging::store::public_rooms_named(&state.db, &slugs)
        .await
        .map_err(CityError::from)?;
    let places = places
        .into_iter()
        .filter_map(|p| {
            // A room archived since it was placed leaves the map.
            let room = rooms
                .iter()
                .find(|r| r.slug.as_deref() == Some(p.room.as_str()) && r.archived_at.is_none())?;
            Some(PlaceView::of(p, room.title.clone()))
        })
        .collect();
    let communities = store::map::communities(&state.db)
        .await?
        .into_iter()
        .filter(|c| districts.iter().any(|d| d.slug == c.district))
        .map(|c| MapCommunityView {
            slug: c.slug,
            name: c.name,
            district: c.district,
        })
        .collect();
    let grid = state.settings.grid();
    Ok(Json(MapView {
        width: grid.width,
        height: grid.height,
        districts: districts.into_iter().map(DistrictView::from).collect(),
        places,
        communities,
    }))
}

/// Draw or redraw a district (city admins).
#[utoipa::path(put, path = "/map/districts/{slug}", tag = "city", request_body = PutDistrict,
    params(("slug" = String, Path, description = "District slug")),
    responses((status = 201, description = "Drawn", body = DistrictView),
        (status = 200, description = "Redrawn", body = DistrictView),
        (status = 409, description = "It would overlap another district, or leave one of its places outside"),
        (status = 422, description = "Invalid fields, or an area outside the grid")))]
async fn put_district(
    State(state): State<CityState>,
    Path(raw): Path<String>,
    actor: Principal,
    Json(input): Json<PutDistrict>,
) -> Result<Response, ApiError> {
    let slug = Slug::parse(&raw)?.as_str().to_owned();
    let district = District {
        slug,
        name: map::name(&input.name)?,
        description: map::description(input.description.as_deref().unwrap_or(""))?,
        color: map::color(&input.color)?,
        area: state.settings.grid().fit(input.area, "area")?,
        updated_by: actor.handle.clone(),
        updated_at: daarion_store::now(),
    };
    let fresh = store::map::put_district(&state.db, &district).await?;
    changed(&state, &actor, &district.slug, &district.name).await;
    Ok(created(fresh, DistrictView::from(district)))
}

/// Remove a district that holds no places (city admins).
#[utoipa::path(delete, path = "/map/districts/{slug}", tag = "city",
    params(("slug" = String, Path, description = "District slug")),
    responses((status = 204, description = "Removed"),
        (status = 404, description = "No such district"),
        (status = 409, description = "Places stand in it")))]
async fn delete_district(
    State(state): State<CityState>,
    Path(raw): Path<String>,
    actor: Principal,
) -> Result<StatusCode, ApiError> {
    let slug = slug(&raw, "district")?;
    if !store::map::delete_district(&state.db, &slug).await? {
        return Err(CityError::NotFound(format!("district {slug:?} does not exist")).into());
    }
    changed(&state, &actor, &slug, &slug).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Put a public room on the map, or move it (city admins).
#[utoipa::path(put, path = "/map/places/{slug}", tag = "city", request_body = PutPlace,
    params(("slug" = String, Path, description = "The public room's slug")),
    responses((status = 201, description = "Placed", body = PlaceView),
        (status = 200, description = "Moved", body = PlaceView),
        (status = 404, description = "No such room"),
        (status = 409, description = "It would overlap another place"),
        (status = 422, description = "Invalid fields, no such district, or an area outside the grid or its district")))]
async fn put_place(
    State(state): State<CityState>,
    Path(raw): Path<String>,
    actor: Principal,
    Json(input): Json<PutPlace>,
) -> Result<Response, ApiError> {
    let room_slug = Slug::parse(&raw).map_err(|_| CityError::RoomNotFound(raw.clone()))?;
    let room = store::chat_room(&state.db, &room_slug).await?;
    let district = input
        .district
        .as_deref()
        .map(|d| map::token(d, "district"))
        .transpose()?;
    let place = Place {
        room: room_slug.as_str().to_owned(),
        district,
        area: state.settings.grid().fit(input.area, "area")?,
        zone: map::token(&input.zone, "zone")?,
        role: input.role,
        icon: map::token(&input.icon, "icon")?,
        color: map::color(&input.color)?,
        updated_by: actor.handle.clone(),
        updated_at: daarion_store::now(),
    };
    let fresh = store::map::put_place(&state.db, &place).await?;
    changed(&state, &actor, &place.room, &room.title).await;
    Ok(created(fresh, PlaceView::of(place, room.title)))
}

/// Take a room off the map (city admins); the room itself stays.
#[utoipa::path(delete, path = "/map/places/{slug}", tag = "city",
    params(("slug" = String, Path, description = "The public room's slug")),
    responses((status = 204, description = "Removed from the map"),
        (status = 404, description = "The room is not on the map")))]
async fn delete_place(
    State(state): State<CityState>,
    Path(raw): Path<String>,
    actor: Principal,
) -> Result<StatusCode, ApiError> {
    let room = slug(&raw, "place")?;
    if !store::map::delete_place(&state.db, &room).await? {
        return Err(CityError::NotFound(format!("room {room:?} is not on the map")).into());
    }
    changed(&state, &actor, &room, &room).await;
    Ok(StatusCode::NO_CONTENT)
}

/// Tells the feed (and through it, open maps) that the map changed.
async fn changed(state: &CityState, actor: &Principal, subject: &str, text: &str) {
    let entry = feed::system("map_changed", subject, &actor.handle, text);
    if let Err(error) = feed::record(state, entry).await {
        tracing::warn!(%error, "map change not recorded in the feed");
    }
}
