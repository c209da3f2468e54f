//! What each city endpoint needs (`room.cedar`, `city.cedar`) and how a
//! room is described to the policies.

use async_trait::async_trait;
use axum::http::Method;
use daarion_access::{
    Access::{Check, PublicRead},
    Action::{Manage, Read, SendMessage, Write},
    Attr, Kind, Resource, Resources, Rule,
    Target::{City, Path},
};
use daarion_kernel::ApiError;
use daarion_store::Db;

use crate::domain::{CityError, Slug};

const ROOM: daarion_access::Target = Path(Kind::Room, "slug");

pub static RULES: &[Rule] = &[
    // Anyone reads the city's rooms while `city.public_read` is on.
    Rule::new(Method::GET, "/api/city/rooms", PublicRead(City)),
    Rule::new(Method::POST, "/api/city/rooms", Check(Write, City)),
    Rule::new(Method::GET, "/api/city/rooms/{slug}", PublicRead(ROOM)),
    Rule::new(
        Method::GET,
        "/api/city/rooms/{slug}/messages",
        PublicRead(ROOM),
    ),
    Rule::new(
        Method::POST,
        "/api/city/rooms/{slug}/messages",
        Check(SendMessage, ROOM),
    ),
    Rule::new(Method::GET, "/api/city/presence", Check(Read, City)),
    Rule::new(Method::GET, "/ws/city/rooms/{slug}", Check(Read, ROOM)),
    Rule::new(Method::GET, "/ws/city/presence", Check(Read, City)),
    // The map, the feed and agents' presence are public like the rooms;
    // city admins draw the map.
    Rule::new(Method::GET, "/api/city/map", PublicRead(City)),
    Rule::new(
        Method::PUT,
        "/api/city/map/districts/{slug}",
        Check(Manage, City),
    ),
    Rule::new(
        Method::DELETE,
        "/api/city/map/districts/{slug}",
        Check(Manage, City),
    ),
    Rule::new(
        Method::PUT,
        "/api/city/map/places/{slug}",
        Check(Manage, City),
    ),
    Rule::new(
        Method::DELETE,
        "/api/city/map/places/{slug}",
        Check(Manage, City),
    ),
    Rule::new(Method::GET, "/api/city/feed", PublicRead(City)),
    Rule::new(Method::GET, "/ws/city/feed", Check(Read, City)),
    Rule::new(Method::GET, "/api/city/agents", PublicRead(City)),
    Rule::new(Method::GET, "/api/city/agents/{agent}", PublicRead(City)),
    // Whoever may read the city may report; the handler takes agents only
    // (an agent reports itself, so there is nothing else to decide on).
    Rule::new(Method::POST, "/api/city/agents/presence", Check(Read, City)),
];

/// A public city room as the policies see it.
pub fn room_resource(slug: &Slug) -> Resource {
    Resource::new(Kind::Room, slug.as_str())
        .attr("public", Attr::Bool(true))
        .attr("blocked", Attr::Set(Vec::new()))
        .parent(Kind::City, "city")
}

/// Rooms for the enforcement layer. Rooms are never deleted, so a room once
/// found is remembered and later requests skip the store.
pub struct CityResources {
    db: Db,
    known: moka::future::Cache<String, ()>,
}

impl CityResources {
    pub fn new(db: Db) -> Self {
        Self {
            db,
            known: moka::future::Cache::new(10_000),
        }
    }
}

#[async_trait]
impl Resources for CityResources {
    async fn load(&self, kind: Kind, id: &str) -> Result<Option<Resource>, ApiError> {
        let Ok(slug) = Slug::parse(id) else {
            return Ok(None);
        };
        if kind != Kind::Room {
            return Ok(None);
        }
        if self.known.contains_key(slug.as_str()) {
            return Ok(Some(room_resource(&slug)));
        }
        match crate::store::room(&self.db, &slug).await {
            Ok(_) => {
                self.known.insert(slug.as_str().to_owned(), ()).await;
                Ok(Some(room_resource(&slug)))
            }
            Err(CityError::RoomNotFound(_)) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }
}
