//! The city map: a grid of cells holding districts, and within them the
//! places of public rooms. The rules here are plain functions: a shape
//! lies inside the grid (and a place inside its district), districts do
//! not overlap each other, nor places other places.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::{CityError, Slug};

/// A rectangle of grid cells: its top-left cell and its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rect {
    #[schema(minimum = 0, maximum = 255)]
    pub x: u32,
    #[schema(minimum = 0, maximum = 255)]
    pub y: u32,
    #[schema(minimum = 1, maximum = 256)]
    pub w: u32,
    #[schema(minimum = 1, maximum = 256)]
    pub h: u32,
}

impl Rect {
    fn right(&self) -> u32 {
        self.x.saturating_add(self.w)
    }

    fn bottom(&self) -> u32 {
        self.y.saturating_add(self.h)
    }

    pub fn overlaps(&self, other: &Rect) -> bool {
        self.x < other.right()
            && other.x < self.right()
            && self.y < other.bottom()
            && other.y < self.bottom()
    }

    pub fn contains(&self, inner: &Rect) -> bool {
        inner.x >= self.x
            && inner.y >= self.y
            && inner.right() <= self.right()
            && inner.bottom() <= self.bottom()
    }
}

/// The map's size, in cells (`city.map_width` × `city.map_height`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grid {
    pub width: u32,
    pub height: u32,
}

impl Grid {
    fn rect(&self) -> Rect {
        Rect {
            x: 0,
            y: 0,
            w: self.width,
            h: self.height,
        }
    }

    /// `rect` when it is a non-empty rectangle within the grid.
    pub fn fit(&self, rect: Rect, what: &str) -> Result<Rect, CityError> {
        if rect.w == 0 || rect.h == 0 {
            return Err(CityError::Invalid(format!(
                "{what}: w and h must be at least 1"
            )));
        }
        let inside = rect.x.checked_add(rect.w).is_some()
            && rect.y.checked_add(rect.h).is_some()
            && self.rect().contains(&rect);
        if !inside {
            return Err(CityError::Invalid(format!(
                "{what} must lie within the {}×{} grid",
                self.width, self.height
            )));
        }
        Ok(rect)
    }
}

daarion_kernel::named_enum!(
    /// What a place is for, as the original city map drew it.
    PlaceRole {
        Primary => "primary",
        Lobby => "lobby",
        Team => "team",
        Research => "research",
        Security => "security",
        Governance => "governance",
    }
);

/// A district: a named area of the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct District {
    pub slug: String,
    pub name: String,
    pub description: String,
    pub color: String,
    pub area: Rect,
    pub updated_by: String,
    pub updated_at: String,
}

/// A public room's place on the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The room's slug.
    pub room: String,
    pub district: Option<String>,
    pub area: Rect,
    pub zone: String,
    pub role: PlaceRole,
    pub icon: String,
    pub color: String,
    pub updated_by: String,
    pub updated_at: String,
}

/// The largest side of the grid, in cells.
pub const MAX_CELLS: u32 = 256;
pub const MAX_NAME_CHARS: usize = 80;
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// `#rrggbb`, lower-cased.
pub fn color(raw: &str) -> Result<String, CityError> {
    let hex = raw.strip_prefix('#').unwrap_or("");
    if hex.len() == 6 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(raw.to_ascii_lowercase())
    } else {
        Err(CityError::Invalid(format!(
            "color must be #rrggbb, not {raw:?}"
        )))
    }
}

/// An icon's or a zone's name: a slug (the web UI maps icons to pictures).
pub fn token(raw: &str, what: &str) -> Result<String, CityError> {
    Slug::parse(raw)
        .map(|s| s.as_str().to_owned())
        .map_err(|_| CityError::Invalid(format!("{what}: {}", daarion_kernel::names::SLUG_RULE)))
}

pub fn name(raw: &str) -> Result<String, CityError> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(CityError::Invalid(format!(
            "name must be 1 to {MAX_NAME_CHARS} characters"
        )));
    }
    Ok(name.to_owned())
}

pub fn description(raw: &str) -> Result<String, CityError> {
    let text = raw.trim();
    if text.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(CityError::Invalid(format!(
            "description must be at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    Ok(text.to_owned())
}

/// Whether `district` may take `area`, given the other districts and the
/// places already in it (which must stay inside).
pub fn check_district(
    slug: &str,
    area: &Rect,
    districts: &[District],
    places: &[Place],
) -> Result<(), CityError> {
    if let Some(other) = districts
        .iter()
        .find(|d| d.slug != slug && d.area.overlaps(area))
    {
        return Err(CityError::Conflict(format!(
            "the area overlaps district {:?}",
            other.slug
        )));
    }
    if let Some(outside) = places
        .iter()
        .find(|p| p.district.as_deref() == Some(slug) && !area.contains(&p.area))
    {
        return Err(CityError::Conflict(format!(
            "room {:?} is placed in this district and would fall outside it",
            outside.room
        )));
    }
    Ok(())
}

/// Whether `place` fits: inside its district, if it names one, and clear
/// of every other place.
pub fn check_place(
    place: &Place,
    district: Option<&District>,
    places: &[Place],
) -> Result<(), CityError> {
    if let Some(district) = district
        && !district.area.contains(&place.area)
    {
        return Err(CityError::Invalid(format!(
            "the place must lie within district {:?}",
            district.slug
        )));
    }
    if let Some(other) = places
        .iter()
        .find(|p| p.room != place.room && p.area.overlaps(&place.area))
    {
        return Err(CityError::Conflict(format!(
            "the place overlaps room {:?}",
            other.room
        )));
    }
    Ok(())
}

/// What a microDAO event (`microdao.dao.*.*`) says of a community on the
/// map: listed while public and not archived, in the district it names.
/// `None` for any other event.
pub fn community_change(
    event: &daarion_bus::Envelope,
) -> Option<crate::store::map::CommunityChange> {
    if !daarion_bus::subject::matches(crate::feed::DAOS, &event.subject) {
        return None;
    }
    let payload = &event.payload;
    let slug = Slug::parse(payload["slug"].as_str()?)
        .ok()?
        .as_str()
        .to_owned();
    let district = payload["district"]
        .as_str()
        .and_then(|d| Slug::parse(d).ok())
        .map(|d| d.as_str().to_owned());
    Some(crate::store::map::CommunityChange {
        name: payload["name"].as_str().unwrap_or(&slug).to_owned(),
        slug,
        district,
        listed: payload["visibility"] == "public" && payload["archived"] != true,
        at: event.time.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rect(x: u32, y: u32, w: u32, h: u32) -> Rect {
        Rect { x, y, w, h }
    }

    fn district(slug: &str, area: Rect) -> District {
        District {
            slug: slug.into(),
            name: slug.into(),
            description: String::new(),
            color: "#000000".into(),
            area,
            updated_by: "a".into(),
            updated_at: "t".into(),
        }
    }

    fn place(room: &str, district: Option<&str>, area: Rect) -> Place {
        Place {
            room: room.into(),
            district: district.map(str::to_owned),
            area,
            zone: "core".into(),
            role: PlaceRole::Lobby,
            icon: "door".into(),
            color: "#ffffff".into(),
            updated_by: "a".into(),
            updated_at: "t".into(),
        }
    }

    #[test]
    fn rectangles_touching_at_an_edge_do_not_overlap() {
        assert!(!rect(0, 0, 2, 2).overlaps(&rect(2, 0, 2, 2)));
        assert!(!rect(0, 0, 2, 2).overlaps(&rect(0, 2, 2, 2)));
        assert!(rect(0, 0, 2, 2).overlaps(&rect(1, 1, 2, 2)));
        assert!(rect(0, 0, 5, 5).overlaps(&rect(2, 2, 1, 1)));
        assert!(rect(0, 0, 5, 5).contains(&rect(4, 4, 1, 1)));
        assert!(!rect(0, 0, 5, 5).contains(&rect(4, 4, 2, 1)));
    }

    #[test]
    fn shapes_stay_within_the_grid() {
        let grid = Grid {
            width: 12,
            height: 8,
        };
        assert!(grid.fit(rect(0, 0, 12, 8), "x").is_ok());
        assert!(grid.fit(rect(11, 7, 1, 1), "x").is_ok());
        assert!(grid.fit(rect(11, 7, 2, 1), "x").is_err());
        assert!(grid.fit(rect(0, 0, 0, 1), "x").is_err());
        assert!(grid.fit(rect(u32::MAX, 0, 2, 1), "x").is_err());
    }

    #[test]
    fn districts_keep_apart_and_keep_their_places() {
        let districts = [district("north", rect(0, 0, 4, 4))];
        let places = [place("hall", Some("south"), rect(5, 5, 2, 2))];
        assert!(check_district("north", &rect(0, 0, 6, 4), &districts, &places).is_ok());
        assert!(matches!(
            check_district("east", &rect(3, 0, 2, 2), &districts, &places),
            Err(CityError::Conflict(_))
        ));
        assert!(check_district("south", &rect(4, 4, 4, 4), &districts, &places).is_ok());
        assert!(matches!(
            check_district("south", &rect(4, 4, 2, 2), &districts, &places),
            Err(CityError::Conflict(_))
        ));
    }

    #[test]
    fn places_sit_inside_their_district_and_apart() {
        let north = district("north", rect(0, 0, 4, 4));
        let placed = [place("hall", Some("north"), rect(0, 0, 2, 2))];
        let ok = place("lab", Some("north"), rect(2, 0, 2, 2));
        assert!(check_place(&ok, Some(&north), &placed).is_ok());
        let outside = place("lab", Some("north"), rect(3, 0, 2, 2));
        assert!(matches!(
            check_place(&outside, Some(&north), &placed),
            Err(CityError::Invalid(_))
        ));
        let overlapping = place("lab", None, rect(1, 1, 2, 2));
        assert!(matches!(
            check_place(&overlapping, None, &placed),
            Err(CityError::Conflict(_))
        ));
        let moved = place("hall", Some("north"), rect(1, 1, 2, 2));
        assert!(check_place(&moved, Some(&north), &placed).is_ok());
    }

    #[test]
    fn colors_and_roles() {
        assert_eq!(color("#A0b1C2").unwrap(), "#a0b1c2");
        assert!(color("a0b1c2").is_err());
        assert!(color("#a0b1c").is_err());
        assert!(color("#a0b1cg").is_err());
        assert_eq!(PlaceRole::parse("governance"), Some(PlaceRole::Governance));
        assert_eq!(PlaceRole::parse("mall"), None);
    }
}
