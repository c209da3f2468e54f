//! What each of the city's events changes on the map: a pure function
//! from an event to [`Change`]s, so the projection is readable and tested
//! without a database.

use daarion_bus::Envelope;
use serde_json::Value;

use crate::domain::{Anchor, Change, MapEdgeKind, MapNodeKind};

/// Every subject the map follows durably (one replica applies each event).
pub const DURABLE: &[&str] = &[
    "microdao.dao.*.*",
    "microdao.member.*.*",
    "message.received.*",
    "agents.agent.*.*",
    "agent.run.completed.*",
    "dao.proposal.*.*",
    "space.node.*.*",
];

/// Live-only subjects (every replica hears them; the first to apply one
/// wins).
pub const LIVE: &[&str] = &["presence.city.*", "presence.agent.*"];

fn text<'a>(payload: &'a Value, key: &str) -> Option<&'a str> {
    payload.get(key).and_then(Value::as_str)
}

/// The node of whoever a handle names: an agent (`agent:<id>`) or a
/// person (their username); services (`service:<name>`) are not on the map.
fn actor_node(handle: &str) -> Option<String> {
    if handle.starts_with("agent:") {
        Some(handle.to_owned())
    } else if handle.starts_with("service:") {
        None
    } else {
        Some(format!("person:{handle}"))
    }
}

/// The changes `event` makes; none for what the map does not show.
pub fn changes(event: &Envelope) -> Vec<Change> {
    let p = &event.payload;
    let mut parts = event.subject.split('.');
    let (domain, kind, what) = (parts.next(), parts.next(), parts.next());
    match (domain, kind, what) {
        (Some("microdao"), Some("dao"), Some(what)) => microdao(what, p),
        (Some("microdao"), Some("member"), Some(what)) => member(what, p),
        (Some("message"), Some("received"), _) => message(p, event.actor.as_deref()),
        (Some("agents"), Some("agent"), Some(what)) => agent(what, p),
        (Some("agent"), Some("run"), Some("completed")) => run(p),
        (Some("dao"), Some("proposal"), Some(what)) => proposal(what, p),
        (Some("space"), Some("node"), Some(what)) => node(what, p),
        (Some("presence"), Some("city"), Some(what)) => presence(what, p),
        (Some("presence"), Some("agent"), Some(status)) => text(p, "agent")
            .map(|agent| Change::Status {
                id: format!("agent:{agent}"),
                status: status.to_owned(),
            })
            .into_iter()
            .collect(),
        _ => Vec::new(),
    }
}

fn microdao(what: &str, p: &Value) -> Vec<Change> {
    let Some(slug) = text(p, "slug") else {
        return Vec::new();
    };
    let id = format!("dao:{slug}");
    if what == "archived" || p.get("archived").and_then(Value::as_bool) == Some(true) {
        return vec![Change::RemoveNode(id)];
    }
    let district = text(p, "district").map(str::to_owned);
    vec![Change::Node {
        id,
        kind: MapNodeKind::Dao,
        label: text(p, "name").unwrap_or(slug).to_owned(),
        dao: Some(slug.to_owned()),
        public: text(p, "visibility") == Some("public"),
        anchor: Anchor::MapDistrict(district.clone()),
        district,
    }]
}

fn member(what: &str, p: &Value) -> Vec<Change> {
    let (Some(dao), Some(principal), Some(handle)) =
        (text(p, "dao"), text(p, "principal"), text(p, "handle"))
    else {
        return Vec::new();
    };
    let from = if principal.starts_with("agent:") {
        principal.to_owned()
    } else {
        format!("person:{handle}")
    };
    let (to, kind) = (format!("dao:{dao}"), MapEdgeKind::Member);
    match what {
        "left" | "removed" | "banned" => vec![Change::RemoveEdge { from, to, kind }],
        _ => vec![Change::Edge {
            from,
            to,
            kind,
            dao: Some(dao.to_owned()),
            public: false,
            weight: 0,
        }],
    }
}

fn message(p: &Value, author: Option<&str>) -> Vec<Change> {
    let room = &p["room"];
    let (Some(id), Some(kind)) = (text(room, "id"), text(room, "kind")) else {
        return Vec::new();
    };
    let slug = text(room, "slug").unwrap_or(id);
    let (dao, public, anchor) = match (kind, text(room, "dao")) {
        ("public", _) => (None, true, Anchor::Place(slug.to_owned())),
        ("dao", Some(dao)) => (Some(dao.to_owned()), false, Anchor::Around(dao.to_owned())),
        // Conversations are their participants' alone.
        _ => return Vec::new(),
    };
    let node = format!("room:{id}");
    let mut out = vec![Change::Node {
        id: node.clone(),
        kind: MapNodeKind::Room,
        label: slug.to_owned(),
        dao: dao.clone(),
        public,
        district: None,
        anchor,
    }];
    if let Some(responder) = text(room, "responder") {
        out.push(Change::Edge {
            from: format!("agent:{responder}"),
            to: node.clone(),
            kind: MapEdgeKind::Answers,
            dao: dao.clone(),
            public,
            weight: 0,
        });
    }
    if let Some(from) = author.and_then(actor_node) {
        out.push(Change::Edge {
            from,
            to: node.clone(),
            kind: MapEdgeKind::Activity,
            dao: dao.clone(),
            public,
            weight: 1,
        });
    }
    out.push(Change::Activity {
        room: Some(node),
        dao,
        public,
        kind: "messages",
    });
    out
}

fn agent(what: &str, p: &Value) -> Vec<Change> {
    let Some(slug) = text(p, "slug") else {
        return Vec::new();
    };
    let id = format!("agent:{slug}");
    if what == "archived" || text(p, "status") == Some("archived") {
        return vec![Change::RemoveNode(id)];
    }
    let dao = text(p, "dao").map(str::to_owned);
    vec![Change::Node {
        id,
        kind: MapNodeKind::Agent,
        label: text(p, "name").unwrap_or(slug).to_owned(),
        public: text(p, "visibility") == Some("public"),
        anchor: dao
            .clone()
            .map_or(Anchor::MapDistrict(None), Anchor::Around),
        district: None,
        dao,
    }]
}

fn run(p: &Value) -> Vec<Change> {
    let Some(agent) = text(p, "agent") else {
        return Vec::new();
    };
    let room = text(p, "room")
        .filter(|r| !r.is_empty())
        .map(|r| format!("room:{r}"));
    let mut out = Vec::new();
    if let Some(room) = &room {
        out.push(Change::Edge {
            from: format!("agent:{agent}"),
            to: room.clone(),
            kind: MapEdgeKind::Activity,
            dao: None,
            public: false,
            weight: 1,
        });
    }
    out.push(Change::Activity {
        room,
        dao: None,
        public: false,
        kind: "runs",
    });
    out
}

fn proposal(what: &str, p: &Value) -> Vec<Change> {
    let (Some(id), Some(dao)) = (text(p, "id"), text(p, "dao")) else {
        return Vec::new();
    };
    match what {
        "opened" => vec![Change::ProposalOpened {
            id: id.to_owned(),
            dao: dao.to_owned(),
        }],
        "closed" | "cancelled" => vec![Change::ProposalClosed { id: id.to_owned() }],
        _ => Vec::new(),
    }
}

fn node(what: &str, p: &Value) -> Vec<Change> {
    let Some(node) = text(p, "node") else {
        return Vec::new();
    };
    let id = format!("node:{node}");
    match what {
        "registered" => vec![
            Change::Node {
                id: id.clone(),
                kind: MapNodeKind::Node,
                label: node.to_owned(),
                dao: None,
                public: false,
                district: None,
                anchor: Anchor::Top,
            },
            Change::Status {
                id,
                status: "offline".into(),
            },
        ],
        "removed" => vec![Change::RemoveNode(id)],
        status => vec![Change::Status {
            id,
            status: status.to_owned(),
        }],
    }
}

fn presence(what: &str, p: &Value) -> Vec<Change> {
    let Some(user) = text(p, "user") else {
        return Vec::new();
    };
    let id = format!("person:{user}");
    match what {
        "leave" => vec![Change::RemoveNode(id)],
        _ => vec![Change::Node {
            id,
            kind: MapNodeKind::Person,
            label: user.to_owned(),
            dao: None,
            public: true,
            district: None,
            anchor: Anchor::Square,
        }],
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use serde_json::json;

    use super::*;

    fn event(subject: &str, payload: Value, actor: Option<&str>) -> Envelope {
        let e = Envelope::new("test", subject, payload);
        match actor {
            Some(actor) => e.with_actor(actor),
            None => e,
        }
    }

    #[test]
    fn a_message_in_a_public_room_is_a_room_an_edge_and_activity() {
        let changes = changes(&event(
            "message.received.r1",
            json!({"room": {"id": "r1", "kind": "public", "slug": "general", "dao": null, "responder": "guide"}}),
            Some("olena"),
        ));
        assert_eq!(changes.len(), 4, "{changes:?}");
        assert!(matches!(&changes[0], Change::Node { id, public: true, .. } if id == "room:r1"));
        assert!(
            matches!(&changes[1], Change::Edge { from, kind: MapEdgeKind::Answers, .. } if from == "agent:guide")
        );
        assert!(
            matches!(&changes[2], Change::Edge { from, weight: 1, .. } if from == "person:olena")
        );
    }

    #[test]
    fn conversations_and_unknown_events_are_not_on_the_map() {
        let direct = event(
            "message.received.r2",
            json!({"room": {"id": "r2", "kind": "direct"}}),
            Some("olena"),
        );
        assert!(changes(&direct).is_empty());
        assert!(changes(&event("usage.message", json!({}), None)).is_empty());
    }

    #[test]
    fn memberships_come_and_go() {
        let joined = event(
            "microdao.member.joined.makers",
            json!({"dao": "makers", "principal": "user:u1", "handle": "olena"}),
            None,
        );
        assert!(
            matches!(&changes(&joined)[0], Change::Edge { from, to, .. } if from == "person:olena" && to == "dao:makers")
        );
        let left = event(
            "microdao.member.left.makers",
            json!({"dao": "makers", "principal": "agent:bot", "handle": "agent:bot"}),
            None,
        );
        assert!(
            matches!(&changes(&left)[0], Change::RemoveEdge { from, .. } if from == "agent:bot")
        );
    }
}
