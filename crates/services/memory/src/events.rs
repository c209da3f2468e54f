//! What memory publishes, durable on the `MEMORY` stream:
//! `memory.store.<dao>` (a document waits to be indexed: the indexer's
//! work), `memory.indexed.<dao>` (its chunks are searchable),
//! `memory.deleted.<dao>` (it is gone, from both indexes); a person's own
//! documents as `._own`.

use daarion_bus::Envelope;
use serde_json::json;

use crate::{SERVICE, domain::KnowledgeDocument};

pub const STORE: &str = "memory.store.*";
pub const INDEXED: &str = "memory.indexed.*";
pub const DELETED: &str = "memory.deleted.*";

/// A person's own documents are told as `memory.<what>._own`, without
/// their title: the bus carries nothing of them but that they changed.
fn about(what: &str, document: &KnowledgeDocument) -> Envelope {
    let own = document.dao.starts_with("user:");
    Envelope::new(
        SERVICE,
        format!(
            "memory.{what}.{}",
            if own { "_own" } else { document.dao.as_str() }
        ),
        json!({
            "document": document.id,
            "dao": document.dao,
            "title": (!own).then_some(document.title.as_str()),
            "chunks": document.chunk_count,
            "model": document.model,
        }),
    )
}

pub fn store(document: &KnowledgeDocument) -> Envelope {
    about("store", document).with_actor(document.author.as_str())
}

pub fn indexed(document: &KnowledgeDocument) -> Envelope {
    about("indexed", document).with_actor(format!("service:{SERVICE}"))
}

pub fn deleted(document: &KnowledgeDocument, actor: &str) -> Envelope {
    about("deleted", document).with_actor(actor)
}
