//! Districts and places. A change reads the whole map and checks it in
//! the transaction that writes it, with writers of the map serialised
//! (SQLite's `BEGIN IMMEDIATE`; a transaction-scoped advisory lock on
//! PostgreSQL), so two admins cannot draw overlapping shapes at once.

use daarion_store::{
    Backend, Db,
    sql::{self, AnyRow, Row},
};

use crate::{
    domain::CityError,
    map::{self, District, Place, PlaceRole, Rect},
};

type Tx = sql::Transaction<'static, sql::Any>;

/// The advisory lock key of the map's writers ("city map").
const MAP_LOCK: i64 = 0x0063_6974_796d_6170;

async fn begin(db: &Db) -> Result<Tx, CityError> {
    let mut tx = db.begin().await?;
    if db.backend() == Backend::Postgres {
        sql::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MAP_LOCK)
            .execute(&mut *tx)
            .await?;
    }
    Ok(tx)
}

fn rect_from(row: &AnyRow) -> Result<Rect, CityError> {
    let cell = |name: &str| -> Result<u32, CityError> {
        let value: i64 = row.try_get(name)?;
        u32::try_from(value).map_err(|_| CityError::Invalid(format!("stored {name} {value}")))
    };
    Ok(Rect {
        x: cell("x")?,
        y: cell("y")?,
        w: cell("w")?,
        h: cell("h")?,
    })
}

fn district_from(row: &AnyRow) -> Result<District, CityError> {
    Ok(District {
        slug: row.try_get("slug")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        color: row.try_get("color")?,
        area: rect_from(row)?,
        updated_by: row.try_get("updated_by")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn place_from(row: &AnyRow) -> Result<Place, CityError> {
    let role: String = row.try_get("role")?;
    Ok(Place {
        room: row.try_get("room")?,
        district: row.try_get("district")?,
        area: rect_from(row)?,
        zone: row.try_get("zone")?,
        role: PlaceRole::parse(&role)
            .ok_or_else(|| CityError::Invalid(format!("stored place role {role:?}")))?,
        icon: row.try_get("icon")?,
        color: row.try_get("color")?,
        updated_by: row.try_get("updated_by")?,
        updated_at: row.try_get("updated_at")?,
    })
}

async fn all_districts<'c, E>(executor: E) -> Result<Vec<District>, CityError>
where
    E: sql::Executor<'c, Database = sql::Any>,
{
    let rows = sql::query(
        "SELECT slug, name, description, color, x, y, w, h, updated_by, updated_at
         FROM city_districts ORDER BY slug",
    )
    .fetch_all(executor)
    .await?;
    rows.iter().map(district_from).collect()
}

async fn all_places<'c, E>(executor: E) -> Result<Vec<Place>, CityError>
where
    E: sql::Executor<'c, Database = sql::Any>,
{
    let rows = sql::query(
        "SELECT room, district, x, y, w, h, zone, role, icon, color, updated_by, updated_at
         FROM city_places ORDER BY room",
    )
    .fetch_all(executor)
    .await?;
    rows.iter().map(place_from).collect()
}

/// The whole map: districts and places, each by slug.
pub async fn map(db: &Db) -> Result<(Vec<District>, Vec<Place>), CityError> {
    Ok((
        all_districts(db.pool()).await?,
        all_places(db.pool()).await?,
    ))
}

/// Draws (or redraws) a district. Returns whether it is new.
pub async fn put_district(db: &Db, district: &District) -> Result<bool, CityError> {
    let mut tx = begin(db).await?;
    let districts = all_districts(&mut *tx).await?;
    let places = all_places(&mut *tx).await?;
    map::check_district(&district.slug, &district.area, &districts, &places)?;
    let fresh = !districts.iter().any(|d| d.slug == district.slug);
    sql::query(
        "INSERT INTO city_districts (slug, name, description, color, x, y, w, h, updated_by, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (slug) DO UPDATE SET name = excluded.name, description = excluded.description,
             color = excluded.color, x = excluded.x, y = excluded.y, w = excluded.w, h = excluded.h,
             updated_by = excluded.updated_by, updated_at = excluded.updated_at",
    )
    .bind(&district.slug)
    .bind(&district.name)
    .bind(&district.description)
    .bind(&district.color)
    .bind(i64::from(district.area.x))
    .bind(i64::from(district.area.y))
    .bind(i64::from(district.area.w))
    .bind(i64::from(district.area.h))
    .bind(&district.updated_by)
    .bind(&district.updated_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(fresh)
}

/// Removes an empty district; whether there was one.
pub async fn delete_district(db: &Db, slug: &str) -> Result<bool, CityError> {
    let mut tx = begin(db).await?;
    let held: i64 = sql::query_scalar("SELECT COUNT(*) FROM city_places WHERE district = $1")
        .bind(slug)
        .fetch_one(&mut *tx)
        .await?;
    if held > 0 {
        return Err(CityError::Conflict(format!(
            "district {slug:?} still holds {held} places: move or remove them first"
        )));
    }
    let done = sql::query("DELETE FROM city_districts WHERE slug = $1")
        .bind(slug)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(done.rows_affected() > 0)
}

/// Puts (or moves) a room's place. Returns whether it is new.
pub async fn put_place(db: &Db, place: &Place) -> Result<bool, CityError> {
    let mut tx = begin(db).await?;
    let districts = all_districts(&mut *tx).await?;
    let district = match &place.district {
        Some(slug) => Some(
            districts
                .iter()
                .find(|d| d.slug == *slug)
                .ok_or_else(|| CityError::Invalid(format!("no district {slug:?}")))?,
        ),
        None => None,
    };
    let places = all_places(&mut *tx).await?;
    map::check_place(place, district, &places)?;
    let fresh = !places.iter().any(|p| p.room == place.room);
    sql::query(
        "INSERT INTO city_places (room, district, x, y, w, h, zone, role, icon, color, updated_by, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (room) DO UPDATE SET district = excluded.district, x = excluded.x,
             y = excluded.y, w = excluded.w, h = excluded.h, zone = excluded.zone,
             role = excluded.role, icon = excluded.icon, color = excluded.color,
             updated_by = excluded.updated_by, updated_at = excluded.updated_at",
    )
    .bind(&place.room)
    .bind(&place.district)
    .bind(i64::from(place.area.x))
    .bind(i64::from(place.area.y))
    .bind(i64::from(place.area.w))
    .bind(i64::from(place.area.h))
    .bind(&place.zone)
    .bind(place.role.as_str())
    .bind(&place.icon)
    .bind(&place.color)
    .bind(&place.updated_by)
    .bind(&place.updated_at)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(fresh)
}

/// Takes a room off the map; whether it was on it.
pub async fn delete_place(db: &Db, room: &str) -> Result<bool, CityError> {
    let done = sql::query("DELETE FROM city_places WHERE room = $1")
        .bind(room)
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() > 0)
}

/// A public community as the map shows it, in its district.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Community {
    pub slug: String,
    pub name: String,
    pub district: String,
}

/// What a microDAO event says of a community: listed on the map (public,
/// not archived) or not. Events may come again or out of order: the
/// newest one seen wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommunityChange {
    pub slug: String,
    pub name: String,
    pub district: Option<String>,
    pub listed: bool,
    /// The event's time (RFC 3339, so text order is time order).
    pub at: String,
}

/// Records changes in one transaction.
pub async fn record_communities(db: &Db, changes: &[CommunityChange]) -> Result<(), CityError> {
    let mut tx = db.begin().await?;
    for c in changes {
        sql::query(
            "INSERT INTO city_communities (slug, name, district, listed, event_time)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (slug) DO UPDATE SET name = excluded.name, district = excluded.district,
                 listed = excluded.listed, event_time = excluded.event_time
             WHERE city_communities.event_time <= excluded.event_time",
        )
        .bind(&c.slug)
        .bind(&c.name)
        .bind(c.district.as_deref())
        .bind(i64::from(c.listed))
        .bind(&c.at)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Listed communities that name a district, by district and name.
pub async fn communities(db: &Db) -> Result<Vec<Community>, CityError> {
    let rows = sql::query(
        "SELECT slug, name, district FROM city_communities
         WHERE listed = 1 AND district IS NOT NULL ORDER BY district, name, slug",
    )
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Community {
                slug: row.try_get("slug")?,
                name: row.try_get("name")?,
                district: row.try_get("district")?,
            })
        })
        .collect()
}
