//! What each messaging endpoint needs (`room.cedar`, `city.cedar`) and how
//! a room looks to the policies: a city room is public; a microDAO's room
//! carries its microDAO's role groups and its own bounds (`audience`,
//! `posters`); a conversation lists its participants. Rules that depend on
//! a message (only its author edits it) are the store's.

use async_trait::async_trait;
use axum::http::Method;
use daarion_access::{
    Access::{Check, SignedIn},
    Action::{Invite, Manage, Read, SendMessage, Write},
    Attr, Kind, Resource, Resources, Rule,
    Target::{City, Path},
};
use daarion_kernel::ApiError;
use daarion_store::Db;

use crate::domain::{Room, RoomKind};

const ROOM: daarion_access::Target = Path(Kind::Room, "room");
const DAO: daarion_access::Target = Path(Kind::MicroDao, "dao");

const fn rule(method: Method, path: &'static str, access: daarion_access::Access) -> Rule {
    Rule::new(method, path, access)
}

pub static RULES: &[Rule] = &[
    // Lists only what the caller may read.
    rule(Method::GET, "/api/messaging/rooms", SignedIn),
    rule(Method::POST, "/api/messaging/rooms", Check(Write, City)),
    rule(Method::POST, "/api/messaging/direct", SignedIn),
    rule(Method::POST, "/api/messaging/groups", SignedIn),
    rule(Method::GET, "/api/messaging/search", SignedIn),
    rule(
        Method::GET,
        "/api/messaging/daos/{dao}/rooms",
        Check(Read, DAO),
    ),
    rule(
        Method::POST,
        "/api/messaging/daos/{dao}/rooms",
        Check(Write, DAO),
    ),
    rule(
        Method::GET,
        "/api/messaging/rooms/{room}",
        Check(Read, ROOM),
    ),
    rule(
        Method::PATCH,
        "/api/messaging/rooms/{room}",
        Check(Manage, ROOM),
    ),
    rule(
        Method::POST,
        "/api/messaging/rooms/{room}/archive",
        Check(Manage, ROOM),
    ),
    rule(
        Method::GET,
        "/api/messaging/rooms/{room}/participants",
        Check(Read, ROOM),
    ),
    rule(
        Method::POST,
        "/api/messaging/rooms/{room}/participants",
        Check(Invite, ROOM),
    ),
    // Anyone in it leaves; its managers take others out (`api::rooms`).
    rule(
        Method::DELETE,
        "/api/messaging/rooms/{room}/participants/{principal}",
        Check(Read, ROOM),
    ),
    rule(
        Method::GET,
        "/api/messaging/rooms/{room}/messages",
        Check(Read, ROOM),
    ),
    rule(
        Method::POST,
        "/api/messaging/rooms/{room}/messages",
        Check(SendMessage, ROOM),
    ),
    rule(
        Method::PATCH,
        "/api/messaging/rooms/{room}/messages/{message}",
        Check(SendMessage, ROOM),
    ),
    // Authors delete their own; the room's managers any (`api::messages`).
    rule(
        Method::DELETE,
        "/api/messaging/rooms/{room}/messages/{message}",
        Check(Read, ROOM),
    ),
    rule(
        Method::GET,
        "/api/messaging/rooms/{room}/messages/{message}/edits",
        Check(Read, ROOM),
    ),
    rule(
        Method::PUT,
        "/api/messaging/rooms/{room}/messages/{message}/reactions/{emoji}",
        Check(SendMessage, ROOM),
    ),
    rule(
        Method::DELETE,
        "/api/messaging/rooms/{room}/messages/{message}/reactions/{emoji}",
        Check(SendMessage, ROOM),
    ),
    rule(
        Method::GET,
        "/api/messaging/rooms/{room}/topics",
        Check(Read, ROOM),
    ),
    rule(
        Method::POST,
        "/api/messaging/rooms/{room}/read",
        Check(Read, ROOM),
    ),
    rule(
        Method::GET,
        "/api/messaging/rooms/{room}/search",
        Check(Read, ROOM),
    ),
    // Each room a socket follows is checked when it subscribes (`ws`).
    rule(Method::GET, "/ws/messaging/live", SignedIn),
];

/// A room as the policies see it; `participants` matters for
/// conversations only (principal name, manages it).
pub fn room_resource(room: &Room, participants: &[(String, bool)]) -> Resource {
    let resource = Resource::new(Kind::Room, room.id.as_str())
        .attr("public", Attr::Bool(room.kind == RoomKind::Public))
        .attr("blocked", Attr::Set(Vec::new()))
        .attr("agents_allowed", Attr::Bool(room.agents_allowed));
    match (room.kind, room.dao.as_deref()) {
        (RoomKind::Dao, Some(dao)) => {
            let bound = |role: daarion_access::vocab::roles::DaoRole| {
                Attr::Entity(Kind::Role, role.group(dao))
            };
            let mut resource = resource.in_dao(dao);
            if let Some(audience) = room.audience {
                resource = resource.attr("audience", bound(audience));
            }
            if let Some(posters) = room.posters {
                resource = resource.attr("posters", bound(posters));
            }
            resource
        }
        (RoomKind::Direct | RoomKind::Group, _) => {
            let of = |prefix: &str, kind: Kind, managers_only: bool| {
                Attr::Set(
                    participants
                        .iter()
                        .filter(|(_, manages)| *manages || !managers_only)
                        .filter_map(|(name, _)| name.strip_prefix(prefix))
                        .map(|id| Attr::Entity(kind, id.to_owned()))
                        .collect(),
                )
            };
            resource
                .attr("participants", of("user:", Kind::User, false))
                .attr("agent_participants", of("agent:", Kind::Agent, false))
                .attr("managers", of("user:", Kind::User, true))
        }
        _ => resource.parent(Kind::City, "city"),
    }
}

/// A stored room as the policies see it: a conversation's participants
/// are read with it.
pub async fn room_of(db: &Db, room: &Room) -> Result<Resource, crate::domain::MessagingError> {
    let participants = if room.kind.has_participants() {
        crate::store::participants(db, &room.id).await?
    } else {
        Vec::new()
    };
    Ok(room_resource(room, &participants))
}

pub struct MessagingResources {
    pub db: Db,
}

#[async_trait]
impl Resources for MessagingResources {
    async fn load(&self, kind: Kind, id: &str) -> Result<Option<Resource>, ApiError> {
        self.load_for_request(kind, id, &mut axum::http::Extensions::new())
            .await
    }

    /// A room is left in the request for its handler
    /// (`MessagingState::room`).
    async fn load_for_request(
        &self,
        kind: Kind,
        id: &str,
        extensions: &mut axum::http::Extensions,
    ) -> Result<Option<Resource>, ApiError> {
        match kind {
            Kind::Room => {
                if !id.starts_with("rm_") || id.len() > 64 {
                    return Ok(None);
                }
                let Some(room) = crate::store::room(&self.db, id).await? else {
                    return Ok(None);
                };
                let resource = room_of(&self.db, &room).await?;
                extensions.insert(room);
                Ok(Some(resource))
            }
            Kind::MicroDao if daarion_kernel::names::is_slug(id) => {
                let public = crate::store::dao(&self.db, id).await?;
                Ok(public.map(|public| Resource::micro_dao(id).attr("public", Attr::Bool(public))))
            }
            _ => Ok(None),
        }
    }
}
