//! The tools DAARION ships, run in-process: the time, arithmetic, the
//! city's rooms, a microDAO's members, posting, founding a microDAO, a
//! microDAO's knowledge (`memory`). Each reads only what the caller may
//! read.

use daarion_access::{Action, Enforcer, Principal};
use daarion_store::Db;
use serde_json::{Value, json};

use crate::domain::ToolError;

/// A built-in tool: its name, what it does, and its arguments' schema.
pub struct Builtin {
    pub name: &'static str,
    pub description: &'static str,
    pub parameters: fn() -> Value,
}

pub static BUILTINS: &[Builtin] = &[
    Builtin {
        name: "time.now",
        description: "The current date and time, in UTC and at an offset from it.",
        parameters: || {
            json!({
                "type": "object",
                "properties": {
                    "offset_minutes": {"type": "integer", "minimum": -720, "maximum": 840,
                        "description": "Minutes east of UTC for the local time (Kyiv in winter: 120)."}
                },
                "additionalProperties": false
            })
        },
    },
    Builtin {
        name: "math.evaluate",
        description: "Evaluates an arithmetic expression (+ - * / ^, parentheses, sqrt, sin, cos, ln, exp, abs, PI, E).",
        parameters: || {
            json!({
                "type": "object",
                "properties": {"expression": {"type": "string", "minLength": 1, "maxLength": 200}},
                "required": ["expression"],
                "additionalProperties": false
            })
        },
    },
    Builtin {
        name: "city.rooms",
        description: "The city's public rooms: slug, title and description.",
        parameters: || {
            json!({
                "type": "object",
                "properties": {"limit": {"type": "integer", "minimum": 1, "maximum": 50}},
                "additionalProperties": false
            })
        },
    },
    Builtin {
        name: "http.fetch",
        description: "Reads a web page (GET) from a host the city allows: status, type and text.",
        parameters: || {
            json!({
                "type": "object",
                "properties": {
                    "url": {"type": "string", "minLength": 8, "maxLength": 2000,
                        "description": "An http(s) address."}
                },
                "required": ["url"],
                "additionalProperties": false
            })
        },
    },
    Builtin {
        name: "messaging.post",
        description: "Posts a message (markdown; @mentions work) in a room, as the caller.",
        parameters: || {
            json!({
                "type": "object",
                "properties": {
                    "room": {"type": "string", "minLength": 1, "maxLength": 64,
                        "description": "The room's id (rm_…)."},
                    "body": {"type": "string", "minLength": 1, "maxLength": 4000},
                    "topic": {"type": "string", "maxLength": 60}
                },
                "required": ["room", "body"],
                "additionalProperties": false
            })
        },
    },
    Builtin {
        name: "microdao.members",
        description: "How many members a community has, and who they are (the first `limit`, by name).",
        parameters: || {
            json!({
                "type": "object",
                "properties": {
                    "dao": {"type": "string", "minLength": 2, "maxLength": 63,
                        "description": "The community's slug."},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 100}
                },
                "required": ["dao"],
                "additionalProperties": false
            })
        },
    },
    Builtin {
        name: "microdao.found",
        description: "Founds a community that you orchestrate, owned by the person you act for: its general, governance and crew rooms open at once, and you answer in general and greet newcomers.",
        parameters: || {
            json!({
                "type": "object",
                "properties": {
                    "slug": {"type": "string", "minLength": 2, "maxLength": 63,
                        "description": "Its address: lower-case letters, digits and dashes."},
                    "name": {"type": "string", "minLength": 1, "maxLength": 80},
                    "description": {"type": "string", "maxLength": 2000},
                    "public": {"type": "boolean",
                        "description": "Open to every citizen (the default) or by invitation."}
                },
                "required": ["slug", "name"],
                "additionalProperties": false
            })
        },
    },
    Builtin {
        name: "memory.search",
        description: "Searches a community's knowledge (its documents) by meaning and words: the best passages, with their document and heading.",
        parameters: || {
            json!({
                "type": "object",
                "properties": {
                    "dao": {"type": "string", "minLength": 2, "maxLength": 63,
                        "description": "The community's slug."},
                    "query": {"type": "string", "minLength": 1, "maxLength": 1000},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 20},
                    "room": {"type": "string", "minLength": 1, "maxLength": 64,
                        "description": "Only the documents added for this room of the community (its id)."}
                },
                "required": ["dao", "query"],
                "additionalProperties": false
            })
        },
    },
    Builtin {
        name: "memory.remember",
        description: "Adds a note to a community's knowledge, written by you: searchable by everyone there once indexed.",
        parameters: || {
            json!({
                "type": "object",
                "properties": {
                    "dao": {"type": "string", "minLength": 2, "maxLength": 63},
                    "title": {"type": "string", "minLength": 1, "maxLength": 200},
                    "text": {"type": "string", "minLength": 1, "maxLength": 20000,
                        "description": "Markdown."},
                    "room": {"type": "string", "minLength": 1, "maxLength": 64,
                        "description": "The room of the community it is for (its id), if one."}
                },
                "required": ["dao", "title", "text"],
                "additionalProperties": false
            })
        },
    },
    Builtin {
        name: "memory.fact",
        description: "Remembers a fact in a community's memory (subject, predicate, object), written by you. A different object for the same subject and predicate replaces the fact that held, which stays as history; set many for a predicate with several objects.",
        parameters: || {
            json!({
                "type": "object",
                "properties": {
                    "dao": {"type": "string", "minLength": 2, "maxLength": 63},
                    "subject": {"type": "string", "minLength": 1, "maxLength": 300},
                    "predicate": {"type": "string", "minLength": 1, "maxLength": 300},
                    "object": {"type": "string", "minLength": 1, "maxLength": 300},
                    "many": {"type": "boolean", "description": "The predicate holds several objects at once."},
                    "source": {"type": "string", "maxLength": 500, "description": "Where it came from."}
                },
                "required": ["dao", "subject", "predicate", "object"],
                "additionalProperties": false
            })
        },
    },
    Builtin {
        name: "memory.facts",
        description: "The facts that hold in a community's memory about an entity, and around it (depth 1 to 3).",
        parameters: || {
            json!({
                "type": "object",
                "properties": {
                    "dao": {"type": "string", "minLength": 2, "maxLength": 63},
                    "entity": {"type": "string", "minLength": 1, "maxLength": 300},
                    "depth": {"type": "integer", "minimum": 1, "maximum": 3}
                },
                "required": ["dao", "entity"],
                "additionalProperties": false
            })
        },
    },
    Builtin {
        name: "memory.forget",
        description: "Removes a document from a community's knowledge (one you wrote, or any if you may manage them).",
        parameters: || {
            json!({
                "type": "object",
                "properties": {
                    "document": {"type": "string", "minLength": 1, "maxLength": 64,
                        "description": "The document's id (doc_…)."}
                },
                "required": ["document"],
                "additionalProperties": false
            })
        },
    },
];

/// The longest message `messaging.post` writes.
const MAX_POST_CHARS: usize = 4000;

pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// What a built-in may read with, and on whose behalf.
pub struct Context<'a> {
    pub db: &'a Db,
    pub access: &'a Enforcer,
    /// Everyone the call is for (the calling agent, the person it acts
    /// for): each must be allowed what the tool reads.
    pub callers: &'a [Principal],
    /// Messages are posted the one way they enter any room.
    pub poster: &'a daarion_messaging::Poster,
    /// Events of what a built-in writes (a founded community).
    pub outbox: &'a daarion_bus::Outbox,
    /// A community's knowledge, for the `memory.*` tools.
    pub knowledge: &'a daarion_memory::Knowledge,
    /// `http.fetch`'s allow-list and bounds.
    pub settings: &'a crate::Settings,
    pub timeout: std::time::Duration,
}

/// Runs the built-in `name` with arguments already checked against its schema.
pub async fn run(name: &str, ctx: &Context<'_>, arguments: &Value) -> Result<Value, ToolError> {
    let limit = |default: u32| {
        arguments["limit"]
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(default)
    };
    match name {
        "time.now" => {
            let now = chrono::Utc::now();
            let offset = arguments["offset_minutes"].as_i64().unwrap_or(0);
            let local = chrono::FixedOffset::east_opt(i32::try_from(offset * 60).unwrap_or(0))
                .map(|zone| now.with_timezone(&zone).to_rfc3339());
            Ok(json!({"utc": now.to_rfc3339(), "unix": now.timestamp(), "local": local}))
        }
        "math.evaluate" => {
            let expression = arguments["expression"].as_str().unwrap_or_default();
            let value = exmex::eval_str::<f64>(expression)
                .map_err(|e| ToolError::Failed(format!("cannot evaluate {expression:?}: {e}")))?;
            if value.is_finite() {
                Ok(json!({"value": value}))
            } else {
                Err(ToolError::Failed(format!(
                    "{expression:?} has no finite value"
                )))
            }
        }
        "city.rooms" => {
            let mut rooms = daarion_messaging::store::public_rooms(ctx.db, None, limit(20))
                .await
                .map_err(|e| ToolError::Failed(e.to_string()))?;
            rooms.truncate(limit(20) as usize);
            let rooms: Vec<Value> = rooms
                .into_iter()
                .map(|r| json!({"slug": r.slug, "title": r.title, "description": r.description}))
                .collect();
            Ok(json!({"rooms": rooms}))
        }
        "messaging.post" => post(ctx, arguments).await,
        "http.fetch" => {
            crate::fetch::fetch(
                ctx.settings,
                arguments["url"].as_str().unwrap_or_default(),
                ctx.timeout,
            )
            .await
        }
        "microdao.members" => {
            let slug = arguments["dao"].as_str().unwrap_or_default();
            let unknown =
                || ToolError::NotFound(format!("no community {slug:?} that you may read"));
            let dao = daarion_microdao::store::dao(ctx.db, slug)
                .await
                .map_err(|e| ToolError::Failed(e.to_string()))?
                .ok_or_else(unknown)?;
            let resource = daarion_microdao::access::dao_resource(&dao.slug, dao.visibility);
            if !ctx
                .callers
                .iter()
                .all(|who| ctx.access.allows(who, Action::Read, &resource))
            {
                return Err(unknown());
            }
            let mut members = daarion_microdao::store::members(ctx.db, slug, None, limit(20))
                .await
                .map_err(|e| ToolError::Failed(e.to_string()))?;
            members.truncate(limit(20) as usize);
            let members: Vec<Value> = members
                .into_iter()
                .map(
                    |m| json!({"member": m.principal, "handle": m.handle, "role": m.role.as_str()}),
                )
                .collect();
            Ok(json!({"dao": dao.slug, "name": dao.name, "total": dao.members, "members": members}))
        }
        "microdao.found" => found(ctx, arguments).await,
        "memory.search" | "memory.remember" | "memory.forget" | "memory.fact" | "memory.facts" => {
            crate::memory::run(name, ctx, arguments).await
        }
        _ => Err(ToolError::NotFound(format!("no built-in tool {name:?}"))),
    }
}

/// `microdao.found`: the agent founds a community with itself as its
/// orchestrator (the original's agent-centric microDAOs). A community needs
/// a person to own it: the one the agent acts for, who must be allowed to
/// found one. The agent's owner lent it this tool, which is its consent.
async fn found(ctx: &Context<'_>, arguments: &Value) -> Result<Value, ToolError> {
    use daarion_microdao::{domain, domain::DaoError, store};
    let [agent, person, ..] = ctx.callers else {
        return Err(ToolError::Forbidden(
            "a community needs a person to own it: found one while acting for someone".into(),
        ));
    };
    if agent.kind != daarion_access::PrincipalKind::Agent {
        return Err(ToolError::Forbidden("only an agent orchestrates".into()));
    }
    if !ctx
        .access
        .allows(person, Action::Write, &daarion_access::Resource::city())
    {
        return Err(ToolError::Forbidden(format!(
            "{} may not found communities",
            person.handle
        )));
    }
    let invalid = |e: DaoError| ToolError::Invalid(e.to_string());
    let text = |field: &str| arguments[field].as_str().unwrap_or_default();
    let new = store::NewDao {
        slug: domain::slug(text("slug")).map_err(invalid)?,
        name: domain::name(text("name")).map_err(invalid)?,
        description: domain::description(text("description")).map_err(invalid)?,
        avatar_url: None,
        visibility: if arguments["public"].as_bool().unwrap_or(true) {
            domain::Visibility::Public
        } else {
            domain::Visibility::Private
        },
        district: None,
        parent: None,
        orchestrator: Some(agent.id.clone()),
    };
    let owner = store::Actor::of(person);
    let (dao, _, staged) = store::create(ctx.db, ctx.outbox, &new, &owner, None)
        .await
        .map_err(|e| match e {
            DaoError::Invalid(m) => ToolError::Invalid(m),
            DaoError::Conflict(m) => ToolError::Conflict(m),
            other => ToolError::Failed(other.to_string()),
        })?;
    ctx.outbox.relay(staged).await;
    Ok(json!({
        "dao": dao.slug,
        "name": dao.name,
        "owner": person.handle,
        "orchestrator": dao.orchestrator,
        "visibility": dao.visibility.as_str(),
    }))
}

/// `messaging.post`: the caller posts where it may post, in a room every
/// person it acts for may read (so nobody lends an agent a room of theirs).
async fn post(ctx: &Context<'_>, arguments: &Value) -> Result<Value, ToolError> {
    let id = arguments["room"].as_str().unwrap_or_default();
    let unknown = || ToolError::NotFound(format!("no room {id:?} that you may read"));
    let room = daarion_messaging::store::room(ctx.db, id)
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?
        .ok_or_else(unknown)?;
    let resource = daarion_messaging::access::room_of(ctx.db, &room)
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?;
    let [author, ..] = ctx.callers else {
        return Err(ToolError::Forbidden("nobody to post as".into()));
    };
    let everyone_reads = ctx
        .callers
        .iter()
        .all(|c| ctx.access.allows(c, Action::Read, &resource));
    if !everyone_reads {
        return Err(unknown());
    }
    if !ctx.access.allows(author, Action::SendMessage, &resource) {
        return Err(ToolError::Forbidden(format!(
            "{} may not post in this room",
            author.handle
        )));
    }
    let posting = daarion_messaging::Posting {
        body: arguments["body"].as_str().unwrap_or_default(),
        topic: arguments["topic"].as_str(),
        reply_to: None,
        attachments: Vec::new(),
        max_chars: MAX_POST_CHARS,
    };
    let (message, _) = ctx
        .poster
        .post(&room, author, posting, None)
        .await
        .map_err(|e| match e {
            daarion_messaging::domain::MessagingError::Invalid(m) => ToolError::Invalid(m),
            daarion_messaging::domain::MessagingError::Conflict(m) => ToolError::Conflict(m),
            other => ToolError::Failed(other.to_string()),
        })?;
    Ok(json!({"message_id": message.id, "room": message.room, "seq": message.seq}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_has_a_valid_object_schema() {
        for b in BUILTINS {
            assert!(crate::domain::name(b.name).is_ok(), "{}", b.name);
            assert!(
                crate::domain::parameters(&(b.parameters)()).is_ok(),
                "{}",
                b.name
            );
        }
    }
}
