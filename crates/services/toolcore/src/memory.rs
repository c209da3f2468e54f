//! `memory.search`, `memory.remember`, `memory.forget`, `memory.fact`,
//! `memory.facts`: agents read and keep a community's knowledge and facts. Everyone the call is for must be allowed
//! what it does (nobody lends an agent a community they cannot read); a
//! removal is the calling agent's right (an author, or an admin of the
//! community), and the people it acts for must be able to read it.

use daarion_access::{Action, Principal, Resource};
use daarion_memory::{
    MemoryError,
    chunk::DocumentFormat,
    domain::{NewDocument, Within},
    facts::{Cardinality, NewFact},
};
use serde_json::{Value, json};

use crate::{builtins::Context, domain::ToolError};

fn failed(error: MemoryError) -> ToolError {
    match error {
        MemoryError::Invalid(m) => ToolError::Invalid(m),
        MemoryError::NotFound(m) => ToolError::NotFound(m),
        MemoryError::Conflict(m) => ToolError::Conflict(m),
        other => ToolError::Failed(other.to_string()),
    }
}

/// Whether every caller may `action` on `resource`.
fn all_may(ctx: &Context<'_>, action: Action, resource: &Resource) -> bool {
    ctx.callers
        .iter()
        .all(|who| ctx.access.allows(who, action, resource))
}

/// `slug`'s knowledge, if the community exists.
async fn knowledge_of(ctx: &Context<'_>, slug: &str) -> Result<Resource, ToolError> {
    let unknown = || ToolError::NotFound(format!("no community {slug:?} that you may read"));
    daarion_microdao::store::dao(ctx.db, slug)
        .await
        .map_err(|e| ToolError::Failed(e.to_string()))?
        .ok_or_else(unknown)?;
    Ok(daarion_memory::access::knowledge_resource(slug))
}

pub async fn run(name: &str, ctx: &Context<'_>, arguments: &Value) -> Result<Value, ToolError> {
    let text = |field: &str| arguments[field].as_str().unwrap_or_default();
    match name {
        "memory.search" => {
            let dao = text("dao");
            let knowledge = knowledge_of(ctx, dao).await?;
            if !all_may(ctx, Action::Read, &knowledge) {
                return Err(ToolError::NotFound(format!(
                    "no community {dao:?} that you may read"
                )));
            }
            let limit = arguments["limit"]
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(5);
            let within = Within {
                author: None,
                room: arguments["room"].as_str(),
            };
            let (hits, semantic) = ctx
                .knowledge
                .search_within(dao, within, text("query"), (limit, None))
                .await
                .map_err(failed)?;
            let hits: Vec<Value> = hits
                .into_iter()
                .map(|h| {
                    json!({
                        "document": h.document, "title": h.title,
                        "heading": h.heading, "text": h.text,
                    })
                })
                .collect();
            Ok(json!({"dao": dao, "hits": hits, "semantic": semantic}))
        }
        "memory.remember" => {
            let dao = text("dao");
            let knowledge = knowledge_of(ctx, dao).await?;
            if !all_may(ctx, Action::Write, &knowledge) {
                return Err(ToolError::Forbidden(format!(
                    "you may not add to {dao:?}'s knowledge"
                )));
            }
            let [author, ..] = ctx.callers else {
                return Err(ToolError::Forbidden("nobody to write as".into()));
            };
            let mut new = NewDocument::parse(
                text("title"),
                Some(DocumentFormat::Markdown),
                text("text"),
                ctx.knowledge.max_document_bytes(),
            )
            .map_err(failed)?;
            new.room = arguments["room"].as_str().map(str::to_owned);
            let (document, _) = ctx
                .knowledge
                .add(dao, &new, (&author.name(), &author.handle), None)
                .await
                .map_err(failed)?;
            Ok(json!({"document": document.id, "dao": document.dao, "title": document.title}))
        }
        "memory.fact" => {
            let dao = text("dao");
            let knowledge = knowledge_of(ctx, dao).await?;
            if !all_may(ctx, Action::Write, &knowledge) {
                return Err(ToolError::Forbidden(format!(
                    "you may not add to {dao:?}'s memory"
                )));
            }
            let [author, ..] = ctx.callers else {
                return Err(ToolError::Forbidden("nobody to write as".into()));
            };
            let new = NewFact {
                subject: text("subject").to_owned(),
                predicate: text("predicate").to_owned(),
                object: text("object").to_owned(),
                cardinality: if arguments["many"] == true {
                    Cardinality::Many
                } else {
                    Cardinality::One
                },
                confidence: 1.0,
                source: text("source").to_owned(),
                about: None,
                valid_from: None,
            };
            let (fact, outcome, superseded) = ctx
                .knowledge
                .remember_fact(
                    &format!("dao:{dao}"),
                    new,
                    (&author.name(), &author.handle),
                    None,
                )
                .await
                .map_err(failed)?;
            Ok(json!({"fact": fact.id, "outcome": outcome, "superseded": superseded}))
        }
        "memory.facts" => {
            let dao = text("dao");
            let knowledge = knowledge_of(ctx, dao).await?;
            if !all_may(ctx, Action::Read, &knowledge) {
                return Err(ToolError::NotFound(format!(
                    "no community {dao:?} that you may read"
                )));
            }
            let depth = arguments["depth"]
                .as_u64()
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(1)
                .clamp(1, 3);
            let found = ctx
                .knowledge
                .neighbourhood(&format!("dao:{dao}"), text("entity"), depth)
                .await
                .map_err(failed)?;
            let facts: Vec<Value> = found
                .edges
                .iter()
                .map(|f| json!({"subject": f.subject, "predicate": f.predicate, "object": f.object, "since": f.valid_from}))
                .collect();
            Ok(json!({"dao": dao, "facts": facts, "truncated": found.truncated}))
        }
        "memory.forget" => forget(ctx, text("document")).await,
        _ => Err(ToolError::NotFound(format!("no built-in tool {name:?}"))),
    }
}

async fn forget(ctx: &Context<'_>, id: &str) -> Result<Value, ToolError> {
    let unknown = || ToolError::NotFound(format!("no document {id:?} that you may read"));
    let (dao, author) = daarion_memory::store::owner(ctx.db, id)
        .await
        .map_err(failed)?
        .ok_or_else(unknown)?;
    let resource = daarion_memory::access::document_resource(id, &dao, &author);
    let [agent, people @ ..] = ctx.callers else {
        return Err(ToolError::Forbidden("nobody to act as".into()));
    };
    let readable = |who: &Principal| ctx.access.allows(who, Action::Read, &resource);
    if !readable(agent) || !people.iter().all(readable) {
        return Err(unknown());
    }
    if !ctx.access.allows(agent, Action::Manage, &resource) {
        return Err(ToolError::Forbidden(format!(
            "only its author or the community's admins remove {id}"
        )));
    }
    if !ctx
        .knowledge
        .remove(id, &agent.name())
        .await
        .map_err(failed)?
    {
        return Err(unknown());
    }
    Ok(json!({"document": id, "removed": true}))
}
