//! City rules, independent of HTTP and SQL: what a valid room and message
//! are, and the errors the service's callers can act on.

use daarion_bus::BusError;
use daarion_cache::CacheError;
use daarion_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum CityError {
    #[error("{0}")]
    Invalid(String),
    #[error("room {0:?} does not exist")]
    RoomNotFound(String),
    /// Something else the path names (a district, an agent) is not there.
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Store(StoreError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// What messaging, which holds the city's rooms, refused.
    #[error(transparent)]
    Messaging(#[from] daarion_messaging::domain::MessagingError),
}

impl From<StoreError> for CityError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(message) => Self::Conflict(message),
            other => Self::Store(other),
        }
    }
}

impl From<daarion_store::sql::Error> for CityError {
    fn from(error: daarion_store::sql::Error) -> Self {
        StoreError::from(error).into()
    }
}

/// A room's URL name: 2 to 63 characters of `a-z`, `0-9` and `-`, starting
/// with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Slug(String);

impl Slug {
    pub fn parse(raw: &str) -> Result<Self, CityError> {
        if daarion_kernel::names::is_slug(raw) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(CityError::Invalid(daarion_kernel::names::SLUG_RULE.into()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A room to create, checked.
#[derive(Debug, Clone)]
pub struct NewRoom {
    pub slug: Slug,
    pub title: String,
    pub description: String,
}

pub const MAX_TITLE_CHARS: usize = 120;
pub const MAX_DESCRIPTION_CHARS: usize = 2000;

impl NewRoom {
    pub fn parse(slug: &str, title: &str, description: Option<&str>) -> Result<Self, CityError> {
        let slug = Slug::parse(slug)?;
        let title = title.trim();
        if title.is_empty() || title.chars().count() > MAX_TITLE_CHARS {
            return Err(CityError::Invalid(format!(
                "title must be 1 to {MAX_TITLE_CHARS} characters"
            )));
        }
        let description = description.unwrap_or("").trim();
        if description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(CityError::Invalid(format!(
                "description must be at most {MAX_DESCRIPTION_CHARS} characters"
            )));
        }
        Ok(Self {
            slug,
            title: title.to_owned(),
            description: description.to_owned(),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    pub id: String,
    pub slug: String,
    pub title: String,
    pub description: String,
    pub created_by: String,
    pub created_at: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    /// Its place in the room (history pages go by it).
    pub seq: i64,
    pub room: String,
    pub author: String,
    pub body: String,
    pub created_at: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn slug(raw: &str, ok: bool) {
        assert_eq!(Slug::parse(raw).is_ok(), ok, "{raw:?}");
    }

    #[test]
    fn slugs() {
        slug("general", true);
        slug("dao-42", true);
        slug("9lives", true);
        slug("g", false);
        slug("-lead", false);
        slug("Upper", false);
        slug("under_score", false);
        slug("sp ace", false);
        slug(&"a".repeat(64), false);
        slug("ünï", false);
    }

    #[test]
    fn rooms() {
        assert!(NewRoom::parse("ok", "Title", None).is_ok());
        assert!(NewRoom::parse("ok", "  ", None).is_err());
        assert!(NewRoom::parse("ok", &"t".repeat(121), None).is_err());
        assert!(NewRoom::parse("ok", "t", Some(&"d".repeat(2001))).is_err());
    }
}
