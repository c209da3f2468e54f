//! The living map's vocabulary: nodes and edges with who may see them, the
//! changes events make, and where things stand on the map.

use std::collections::{HashMap, HashSet};

use daarion_access::Principal;
use daarion_store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

daarion_kernel::named_enum!(
    /// What a node is.
    MapNodeKind {
        /// A microDAO.
        Dao => "dao",
        /// A public room or a microDAO's room.
        Room => "room",
        Agent => "agent",
        /// A person present in the city.
        Person => "person",
        /// A city node (a machine of the space registry).
        Node => "node",
    }
);

daarion_kernel::named_enum!(
    /// What an edge says.
    MapEdgeKind {
        /// A person or agent belongs to a microDAO.
        Member => "member",
        /// An agent answers in a room.
        Answers => "answers",
        /// Someone spoke (or an agent ran) in a room; the weight counts it.
        Activity => "activity",
    }
);

/// A thing on the map.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct MapNode {
    /// `dao:<slug>`, `room:<id>`, `agent:<id>`, `person:<username>`, `node:<id>`.
    pub id: String,
    pub kind: MapNodeKind,
    pub label: String,
    /// The microDAO it belongs to, if any.
    pub dao: Option<String>,
    /// Whether every citizen sees it (otherwise the microDAO's members).
    pub public: bool,
    pub district: Option<String>,
    /// Agents: online, busy, offline; nodes: online, offline.
    pub status: Option<String>,
    /// Map coordinates, in cells (districts use the city map's grid).
    pub x: f64,
    pub y: f64,
}

/// A relation between two nodes (drawn when both are on the viewer's map).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct MapEdge {
    pub from: String,
    pub to: String,
    pub kind: MapEdgeKind,
    pub dao: Option<String>,
    pub public: bool,
    pub weight: i64,
}

/// One change of the map, numbered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Delta {
    /// A node as it now is (new or changed).
    Node {
        seq: i64,
        node: MapNode,
    },
    RemoveNode {
        seq: i64,
        id: String,
    },
    /// An edge as it now is.
    Edge {
        seq: i64,
        edge: MapEdge,
    },
    RemoveEdge {
        seq: i64,
        from: String,
        to: String,
        kind: MapEdgeKind,
    },
}

impl Delta {
    pub fn seq(&self) -> i64 {
        match self {
            Delta::Node { seq, .. }
            | Delta::RemoveNode { seq, .. }
            | Delta::Edge { seq, .. }
            | Delta::RemoveEdge { seq, .. } => *seq,
        }
    }
}

/// A delta with who may see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seen {
    pub delta: Delta,
    pub dao: Option<String>,
    pub public: bool,
}

/// Where a new node stands, relative to what is already on the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Anchor {
    /// In its district (or the outskirts without one).
    MapDistrict(Option<String>),
    /// Around its microDAO.
    Around(String),
    /// At a public room's place on the city map (near the square without).
    Place(String),
    /// Around the city's square (people present).
    Square,
    /// Along the top edge (city nodes).
    Top,
}

/// What one event changes on the map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Node {
        id: String,
        kind: MapNodeKind,
        label: String,
        dao: Option<String>,
        public: bool,
        district: Option<String>,
        anchor: Anchor,
    },
    /// A new status of a node already on the map.
    Status {
        id: String,
        status: String,
    },
    RemoveNode(String),
    /// Sets a membership edge, or adds `weight` to an activity edge.
    Edge {
        from: String,
        to: String,
        kind: MapEdgeKind,
        dao: Option<String>,
        public: bool,
        weight: i64,
    },
    RemoveEdge {
        from: String,
        to: String,
        kind: MapEdgeKind,
    },
    /// A message or a run, for the counters; seen by whoever sees its room
    /// (when the room is on the map), else as `dao` and `public` say.
    Activity {
        room: Option<String>,
        dao: Option<String>,
        public: bool,
        kind: &'static str,
    },
    ProposalOpened {
        id: String,
        dao: String,
    },
    ProposalClosed {
        id: String,
    },
}

/// What a viewer may see: public things, their microDAOs', everything for
/// city admins.
#[derive(Debug, Clone, Default)]
pub struct Viewer {
    pub admin: bool,
    pub daos: HashSet<String>,
}

impl Viewer {
    pub fn of(principal: &Principal) -> Self {
        let admin = principal
            .roles
            .iter()
            .any(|r| r == daarion_access::vocab::roles::CITY_ADMIN);
        let daos = principal
            .roles
            .iter()
            .filter_map(|r| r.strip_prefix("dao:"))
            .filter_map(|r| r.split(':').next())
            .map(str::to_owned)
            .collect();
        Self { admin, daos }
    }

    pub fn sees(&self, public: bool, dao: Option<&str>) -> bool {
        self.admin || public || dao.is_some_and(|d| self.daos.contains(d))
    }
}

/// The city map's shape, for placing things: its districts and the places
/// of public rooms.
#[derive(Debug, Clone, Default)]
pub struct Geometry {
    pub width: f64,
    pub height: f64,
    pub districts: HashMap<String, (f64, f64, f64, f64)>,
    pub places: HashMap<String, (f64, f64, f64, f64)>,
}

/// Two fractions in [0, 1) from a name, the same every time (FNV-1a).
fn fractions(id: &str) -> (f64, f64) {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in id.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let a = (hash & 0xffff_ffff) as f64 / 4_294_967_296.0;
    let b = (hash >> 32) as f64 / 4_294_967_296.0;
    (a, b)
}

impl Geometry {
    fn square(&self) -> (f64, f64) {
        (self.width / 2.0, self.height / 2.0)
    }

    /// Where `id` stands given its anchor (`dao_at`: its microDAO's place,
    /// for things around it), to a thousandth of a cell, as stored.
    pub fn place(&self, id: &str, anchor: &Anchor, dao_at: Option<(f64, f64)>) -> (f64, f64) {
        let milli = |v: f64| (v * 1000.0).round() / 1000.0;
        let (x, y) = self.unrounded(id, anchor, dao_at);
        (milli(x), milli(y))
    }

    fn unrounded(&self, id: &str, anchor: &Anchor, dao_at: Option<(f64, f64)>) -> (f64, f64) {
        let (a, b) = fractions(id);
        let around = |(cx, cy): (f64, f64), radius: f64| {
            let angle = a * std::f64::consts::TAU;
            let r = radius * (0.5 + b / 2.0);
            (cx + r * angle.cos(), cy + r * angle.sin())
        };
        let inside = |(x, y, w, h): (f64, f64, f64, f64)| {
            (
                x + 0.5 + a * (w - 1.0).max(0.0),
                y + 0.5 + b * (h - 1.0).max(0.0),
            )
        };
        let outskirts = (0.0, self.height + 2.0, self.width.max(8.0), 8.0);
        match anchor {
            Anchor::MapDistrict(district) => inside(
                district
                    .as_ref()
                    .and_then(|d| self.districts.get(d))
                    .copied()
                    .unwrap_or(outskirts),
            ),
            Anchor::Around(_) => around(dao_at.unwrap_or_else(|| inside(outskirts)), 3.0),
            Anchor::Place(room) => match self.places.get(room) {
                Some(&(x, y, w, h)) => (x + w / 2.0, y + h / 2.0),
                None => around(self.square(), 6.0),
            },
            Anchor::Square => around(self.square(), 4.0),
            Anchor::Top => (a * self.width.max(8.0), -3.0 - b * 2.0),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MapError {
    #[error("{0}")]
    Invalid(String),
    /// The deltas asked for are gone: take a snapshot.
    #[error("{0}")]
    TooFarBehind(String),
    #[error("stored map data does not decode: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<daarion_store::sql::Error> for MapError {
    fn from(error: daarion_store::sql::Error) -> Self {
        Self::Store(StoreError::from(error))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    #[test]
    fn places_are_stable_and_inside_their_district() {
        let geometry = Geometry {
            width: 40.0,
            height: 30.0,
            districts: HashMap::from([("podil".to_owned(), (10.0, 10.0, 8.0, 6.0))]),
            places: HashMap::new(),
        };
        let anchor = Anchor::MapDistrict(Some("podil".into()));
        let (x, y) = geometry.place("dao:makers", &anchor, None);
        assert_eq!((x, y), geometry.place("dao:makers", &anchor, None));
        assert!((10.0..18.0).contains(&x) && (10.0..16.0).contains(&y));
        let (_, outside) = geometry.place("dao:lost", &Anchor::MapDistrict(None), None);
        assert!(outside > 30.0, "the outskirts are below the map");
        let (rx, ry) = geometry.place("room:1", &Anchor::Around("makers".into()), Some((x, y)));
        assert!(((rx - x).powi(2) + (ry - y).powi(2)).sqrt() <= 3.0);
    }

    #[test]
    fn viewers_see_public_things_their_microdaos_and_admins_everything() {
        let mut viewer = Viewer::default();
        viewer.daos.insert("makers".into());
        assert!(viewer.sees(true, None));
        assert!(viewer.sees(false, Some("makers")));
        assert!(!viewer.sees(false, Some("other")));
        assert!(!viewer.sees(false, None));
        let admin = Viewer {
            admin: true,
            ..Viewer::default()
        };
        assert!(admin.sees(false, None));
    }
}
