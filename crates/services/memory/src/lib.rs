//! Memory (port 7008, `/api/memory/`): what a city's communities know,
//! searchable by meaning and by words.
//!
//! - `POST/GET /api/memory/daos/{dao}/documents`, `GET/DELETE
//!   /api/memory/documents/{document}`: a microDAO's documents (text or
//!   markdown), added by its members, removed by their authors or its
//!   admins.
//! - `GET /api/memory/daos/{dao}/search?q=`: hybrid retrieval — full-text
//!   (BM25) and vector similarity fused by reciprocal rank.
//! - `GET /api/memory/me/export`, `DELETE /api/memory/me`: everything
//!   remembered about oneself, as JSON, and erasing it.
//!
//! Writes go through the bus: a document is stored with `memory.store`,
//! the indexer (`index`) splits it into chunks (`chunk`), embeds them with
//! the local model (`embedder`, `daarion-embed`) and stores them with
//! `memory.indexed`, once per document. A model that fails stores nothing:
//! the document waits and is tried again. Layout: `domain` (types, errors,
//! fusion), `store`, `search`, `api`, `access`, `events`.

pub mod access;
pub mod api;
pub mod chunk;
pub mod domain;
pub mod embedder;
pub mod events;
mod expiring;
pub mod facts;
pub mod fulltext;
pub mod graph;
pub mod index;
pub mod nearest;
pub mod pgvector;
pub mod search;
pub mod store;
pub mod summaries;
#[cfg(test)]
mod testing;
pub mod vectors;

use std::{sync::Arc, time::Duration};

use daarion_bus::{ConsumerSpec, Outbox, subject::StreamDef};
use daarion_embed::Models;
use daarion_service::{BuildError, Context, Event, Mount, Section, Service, ServiceSettings};
use daarion_store::{Db, migration};
use serde::{Deserialize, Serialize};

pub use domain::MemoryError;
pub use embedder::Embed;

pub const SERVICE: &str = "memory";

pub static SPEC: Service = Service {
    name: SERVICE,
    port: 7008,
    version: env!("CARGO_PKG_VERSION"),
    migrations: &[
        migration!(1, "001_create_memory_tables"),
        migration!(2, "002_store_search_vectors"),
        migration!(3, "003_create_memory_facts"),
        migration!(4, "004_create_memory_summaries"),
        migration!(5, "005_add_document_rooms"),
    ],
    rules: access::RULES,
    websocket: false,
    streams: &[StreamDef {
        name: "MEMORY",
        subjects: &["memory.>"],
    }],
    events: &[
        Event::durable(events::STORE),
        Event::durable(events::INDEXED),
        Event::durable(events::DELETED),
        Event::durable(facts::EVENTS),
    ],
    settings: Some(Section::of::<Settings>()),
    example: |_| None,
    build: |ctx| Box::pin(build(ctx)),
};

/// `[memory]` settings.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The model that embeds chunks and questions: `static` (the table
    /// distilled from multilingual-e5-small: thousands of chunks a second,
    /// within one language) or `e5` (the encoder itself: tens a second,
    /// across languages too), both from `daarion models install`; or
    /// `llm:<alias>`, an embeddings model the LLM proxy serves (then
    /// `embedding_dims` says its dimensions).
    pub embedder: String,
    /// The dimensions of an `llm:<alias>` embedder's vectors.
    pub embedding_dims: usize,
    /// Where an `llm:<alias>` embedder reaches the LLM proxy (the
    /// gateway's address). Empty: `up` uses its own listener, a `serve
    /// memory` process the gateway's standard address on this host.
    pub city_url: String,
    /// Longest chunk, in bytes of text.
    pub chunk_chars: usize,
    /// Most of a chunk's end repeated at the start of the next when a
    /// paragraph is cut.
    pub overlap_chars: usize,
    /// Largest document body accepted.
    pub max_document_bytes: usize,
    /// How often documents still waiting for the indexer are looked for.
    pub sweep_secs: u64,
    /// Search's weight of meaning against words, 0 to 1 (a search may
    /// name its own `alpha`).
    pub hybrid_alpha: f64,
    /// Where the nearest vectors are looked for: `embedded` (an HNSW index
    /// in the process, saved beside the data), `pgvector` (PostgreSQL's
    /// extension, shared by replicas) or `auto` (pgvector when the city's
    /// PostgreSQL has it).
    pub vectors: String,
}

impl Default for Settings {
    fn default() -> Self {
        let limits = chunk::Limits::default();
        Self {
            embedder: "static".into(),
            embedding_dims: 0,
            city_url: String::new(),
            chunk_chars: limits.max_chars,
            overlap_chars: limits.overlap_chars,
            max_document_bytes: 1 << 20,
            sweep_secs: 60,
            hybrid_alpha: 0.75,
            vectors: "auto".into(),
        }
    }
}

impl Settings {
    /// Fills an empty `city_url` as the runtime does
    /// (`daarion_service::city_url`).
    pub fn resolve_for_listener(&mut self, own: Option<(u16, bool)>) {
        if self.city_url.is_empty() {
            self.city_url = daarion_service::city_url(own);
        }
    }

    fn limits(&self) -> chunk::Limits {
        chunk::Limits {
            max_chars: self.chunk_chars,
            overlap_chars: self.overlap_chars,
        }
    }
}

impl ServiceSettings for Settings {
    fn validate(&self) -> Result<(), String> {
        match self.embedder.strip_prefix("llm:") {
            Some(alias) => {
                if alias.is_empty() || alias.len() > 100 || alias.chars().any(char::is_whitespace) {
                    return Err(
                        "memory.embedder \"llm:<alias>\" needs the alias of an LLM proxy model"
                            .into(),
                    );
                }
                if !(1..=16_000).contains(&self.embedding_dims) {
                    return Err(
                        "memory.embedding_dims must be between 1 and 16000 with an llm: embedder"
                            .into(),
                    );
                }
            }
            None if ["static", "e5"].contains(&self.embedder.as_str()) => {}
            None => {
                return Err(format!(
                    "memory.embedder must be \"static\", \"e5\" or \"llm:<alias>\", not {:?}",
                    self.embedder
                ));
            }
        }
        let url = &self.city_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return Err("memory.city_url must be an http:// or https:// address".into());
        }
        if !(200..=8000).contains(&self.chunk_chars) {
            return Err("memory.chunk_chars must be between 200 and 8000".into());
        }
        if self.overlap_chars >= self.chunk_chars / 2 {
            return Err("memory.overlap_chars must be under half of memory.chunk_chars".into());
        }
        if !(1024..=64 << 20).contains(&self.max_document_bytes) {
            return Err("memory.max_document_bytes must be between 1024 and 67108864".into());
        }
        if !["auto", "embedded", "pgvector"].contains(&self.vectors.as_str()) {
            return Err(format!(
                "memory.vectors must be \"auto\", \"embedded\" or \"pgvector\", not {:?}",
                self.vectors
            ));
        }
        if !(0.0..=1.0).contains(&self.hybrid_alpha) {
            return Err("memory.hybrid_alpha must be between 0 and 1".into());
        }
        if !(1..=86_400).contains(&self.sweep_secs) {
            return Err("memory.sweep_secs must be between 1 and 86400".into());
        }
        Ok(())
    }
}

/// Most facts a recall tells.
const RECALLED_FACTS: usize = 10;

/// A city's knowledge, for whoever reads or adds to it in this process:
/// the memory service's routes and indexer, toolcore's `memory.*` tools,
/// the runtime's retrieval. One per process (the binary makes it), so they
/// share its vector index.
#[derive(Clone)]
pub struct Knowledge {
    db: Db,
    outbox: Outbox,
    embedder: Arc<dyn Embed>,
    vectors: nearest::Nearest,
    fulltext: fulltext::FullText,
    settings: Arc<Settings>,
}

impl Knowledge {
    /// `index_dir`: where the embedded index saves its graphs (none: in
    /// memory only, rebuilt from the store after a restart); `tokens`: the
    /// process's service tokens, which an `llm:` embedder calls with.
    pub fn new(
        (db, outbox): (Db, Outbox),
        models: Models,
        index_dir: Option<std::path::PathBuf>,
        tokens: Option<daarion_access::token::ServiceTokens>,
        settings: Settings,
    ) -> Result<Self, String> {
        settings.validate()?;
        let embedder: Arc<dyn Embed> = match settings.embedder.strip_prefix("llm:") {
            Some(alias) => {
                let tokens = tokens.ok_or(
                    "memory.embedder = \"llm:…\" calls the LLM proxy as the memory service: set service_token_secret (the same on every process)",
                )?;
                let url = if settings.city_url.is_empty() {
                    daarion_service::city_url(None)
                } else {
                    settings.city_url.clone()
                };
                Arc::new(embedder::Proxy::new(
                    &url,
                    tokens,
                    alias,
                    settings.embedding_dims,
                )?)
            }
            None => Arc::new(
                embedder::Local::new(models, &settings.embedder)
                    .ok_or_else(|| format!("unknown embedder {:?}", settings.embedder))?,
            ),
        };
        Ok(Self {
            db,
            outbox,
            embedder,
            vectors: nearest::Nearest::new(
                &settings.vectors,
                index_dir,
                vectors::Tuning::default(),
            ),
            fulltext: fulltext::FullText::default(),
            settings: Arc::new(settings),
        })
    }

    /// The `limit` best chunks of `dao`'s knowledge for `query` (the
    /// caller has checked who may read it), and whether vectors took part.
    pub async fn search(
        &self,
        dao: &str,
        query: &str,
        limit: usize,
        alpha: Option<f64>,
    ) -> Result<(Vec<domain::Hit>, bool), MemoryError> {
        self.search_within(dao, domain::Within::default(), query, (limit, alpha))
            .await
    }

    /// [`Knowledge::search`] over the documents `within` keeps to (an
    /// author's, a room's).
    pub async fn search_within(
        &self,
        dao: &str,
        within: domain::Within<'_>,
        query: &str,
        (limit, alpha): (usize, Option<f64>),
    ) -> Result<(Vec<domain::Hit>, bool), MemoryError> {
        let alpha = alpha.unwrap_or(self.settings.hybrid_alpha);
        search::hybrid(self, (dao, within), query, (limit, alpha)).await
    }

    /// Adds a document to `dao`'s knowledge as `author` (`user:<id>` or
    /// `agent:<id>`, and the name shown), for one of its rooms if `new`
    /// names one; it is indexed soon after.
    pub async fn add(
        &self,
        dao: &str,
        new: &domain::NewDocument,
        author: (&str, &str),
        idempotency_key: Option<&str>,
    ) -> Result<(domain::KnowledgeDocument, bool), MemoryError> {
        if let Some(room) = &new.room {
            let of = daarion_messaging::store::room(&self.db, room)
                .await
                .map_err(|e| match e {
                    daarion_messaging::domain::MessagingError::Store(e) => MemoryError::Store(e),
                    other => MemoryError::Invalid(other.to_string()),
                })?
                .and_then(|r| r.dao);
            if of.as_deref() != Some(dao) {
                return Err(MemoryError::Invalid(format!(
                    "room {room:?} is not a room of {dao:?}"
                )));
            }
        }
        let (document, fresh, staged) =
            store::create(&self.db, &self.outbox, dao, new, author, idempotency_key).await?;
        self.outbox.relay(staged).await;
        Ok((document, fresh))
    }

    /// Removes a document; `false` if there was none.
    pub async fn remove(&self, id: &str, actor: &str) -> Result<bool, MemoryError> {
        let Some(staged) = store::delete(&self.db, &self.outbox, id, actor).await? else {
            return Ok(false);
        };
        self.outbox.relay(staged).await;
        Ok(true)
    }

    /// Everything remembered about `subject` (`user:<id>`): the documents
    /// they wrote, each with its body and chunks.
    pub async fn export(&self, subject: &str) -> Result<Vec<domain::Exported>, MemoryError> {
        let mut out = Vec::new();
        for id in store::written_by(&self.db, subject).await? {
            let Some((document, body)) = store::with_body(&self.db, &id).await? else {
                continue;
            };
            let chunks = store::chunks_of(&self.db, &id)
                .await?
                .into_iter()
                .map(|(seq, heading, text)| domain::ExportedChunk { seq, heading, text })
                .collect();
            out.push(domain::Exported {
                document,
                body,
                chunks,
            });
        }
        Ok(out)
    }

    /// Removes every document `subject` wrote, from the store and both
    /// indexes, and every fact they wrote, that is about them or is their
    /// own; how many documents and facts went.
    pub async fn erase(&self, subject: &str) -> Result<(usize, u64), MemoryError> {
        let mut removed = 0;
        for id in store::written_by(&self.db, subject).await? {
            if self.remove(&id, subject).await? {
                removed += 1;
            }
        }
        let facts = facts::erase_person(&self.db, subject).await?;
        Ok((removed, facts))
    }

    /// Remembers a fact in `scope` (`dao:<slug>`, or a person's own
    /// `user:<id>`) as `author` (`user:<id>` or `agent:<id>`, and the name
    /// shown): the fact as it stands, what the write did, and the fact it
    /// superseded (`facts::record`). With an `Idempotency-Key`, a retry
    /// answers the first write's fact.
    pub async fn remember_fact(
        &self,
        scope: &str,
        new: facts::NewFact,
        author: (&str, &str),
        idempotency_key: Option<&str>,
    ) -> Result<(facts::Fact, facts::Outcome, Option<String>), MemoryError> {
        let new = new.checked()?;
        facts::record(&self.db, &self.outbox, scope, &new, author, idempotency_key).await
    }

    /// The facts that hold within `depth` steps of `entity` in `scope`.
    pub async fn neighbourhood(
        &self,
        scope: &str,
        entity: &str,
        depth: usize,
    ) -> Result<graph::Neighbourhood, MemoryError> {
        graph::neighbourhood(&self.db, scope, entity, depth).await
    }

    /// Facts that hold in `scope` about what `text` names.
    pub async fn facts_named_in(
        &self,
        scope: &str,
        text: &str,
        limit: usize,
    ) -> Result<Vec<facts::Fact>, MemoryError> {
        facts::named_in(&self.db, scope, text, limit).await
    }

    /// What `dao`'s knowledge (a microDAO's slug, or a person's own
    /// `user:<id>`) holds about `question`, told as one text for a model
    /// after `header`: the facts that hold about what it names, then the
    /// `passages` nearest it, each under its document's title and heading.
    /// `None` when nothing bears on it. The caller has checked who may
    /// read that knowledge.
    pub async fn recall(
        &self,
        dao: &str,
        question: &str,
        (header, passages): (&str, usize),
    ) -> Result<Option<String>, MemoryError> {
        let scope = if dao.starts_with("user:") {
            dao.to_owned()
        } else {
            format!("dao:{dao}")
        };
        let (hits, facts) = tokio::join!(
            self.search(dao, question, passages, None),
            self.facts_named_in(&scope, question, RECALLED_FACTS)
        );
        let ((hits, _), facts) = (hits?, facts?);
        if hits.is_empty() && facts.is_empty() {
            return Ok(None);
        }
        let mut note = format!("{header}\n");
        for fact in &facts {
            let source = if fact.source.is_empty() {
                String::new()
            } else {
                format!("; {}", fact.source)
            };
            note.push_str(&format!(
                "\n- {} {} {} (since {}{source})",
                fact.subject, fact.predicate, fact.object, fact.valid_from
            ));
        }
        if !facts.is_empty() {
            note.push('\n');
        }
        for (i, hit) in hits.iter().enumerate() {
            let place = if hit.heading.is_empty() {
                hit.title.clone()
            } else {
                format!("{} › {}", hit.title, hit.heading)
            };
            note.push_str(&format!("\n[{}] {place}\n{}\n", i + 1, hit.text));
        }
        Ok(Some(note))
    }

    /// How `dao`'s shard of the embedded index stands: vectors in its
    /// graph, in its tail, and whether a graph is being built (for
    /// benchmarks and metrics).
    pub async fn index_status(&self, dao: &str) -> (usize, usize, bool) {
        self.vectors
            .embedded()
            .status(dao, self.embedder.name())
            .await
    }

    /// Largest document body accepted.
    pub fn max_document_bytes(&self) -> usize {
        self.settings.max_document_bytes
    }

    fn embedder_available(&self) -> Result<(), MemoryError> {
        self.embedder.available()
    }
}

async fn build(ctx: Context) -> Result<Mount, BuildError> {
    let knowledge: Knowledge = ctx.component()?;
    // Said at start, not first at the first document: where the model
    // should be and how to get it there. It is read at its first use.
    if let Err(error) = knowledge.embedder_available() {
        tracing::warn!(%error, "memory cannot embed yet: documents wait unindexed and search uses words alone until the model is there");
    }
    knowledge
        .vectors
        .ready(
            &knowledge.db,
            knowledge.embedder.name(),
            knowledge.embedder.dim(),
        )
        .await
        .map_err(BuildError::new)?;
    let mut spec = ConsumerSpec::new("memory-indexer", events::STORE);
    // Documents written before any indexer ran are indexed when one
    // starts; the four a worker takes at once wait their turn behind a
    // long document on the encoder (the one in hand is kept by the runner).
    spec.from_start = true;
    spec.ack_wait = Duration::from_secs(300);
    spec.prefetch = 4;
    let indexer = knowledge.clone();
    ctx.consume_with(spec, move |event| index::handle(indexer.clone(), event));
    ctx.tasks.spawn(index::sweep(
        knowledge.clone(),
        Duration::from_secs(knowledge.settings.sweep_secs),
        ctx.shutdown.clone(),
    ));
    let access = ctx.enforcer(access::MemoryResources { db: ctx.db.clone() });
    Ok(Mount::new(access, api::router().with_state(knowledge)))
}

/// The metrics this crate records, with their `# HELP` text.
pub const METRICS: &[daarion_kernel::metrics::Help] = &[
    (
        "memory_chunks_indexed_total",
        "Document chunks embedded and indexed.",
    ),
    (
        "memory_index_failures_total",
        "Documents that could not be indexed.",
    ),
    (
        "memory_index_build_seconds",
        "Time to build or load a vector index.",
    ),
    ("memory_index_seconds", "Time to index one document."),
];
