//! Memory benchmark: how fast the local models embed chunks, and the
//! vector index at 10 000 and 100 000 vectors — graph build time, search
//! latency p50/p99 and recall@10 against an exact scan of the same vectors
//! — and the hybrid search a person or an agent runs (`Knowledge::search`:
//! full text and vectors fused, the hits read back) over the same chunks.
//!
//! The chunks are texts made of the retrieval set's sentences (three drawn
//! at random each), embedded by the static table: real vectors of real
//! text, which random vectors are not (their neighbourhoods are unlike any
//! corpus's). The index is the memory service's own (`VectorIndex`) over
//! an embedded store; with `--pgvector` (PostgreSQL with the extension),
//! the same vectors are stored there too and searched as the service
//! searches them (`pgvector::Pgvector`): through the HNSW index, and by an
//! exact scan of the community's rows.

#![allow(clippy::print_stdout)]

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use clap::Parser;
use daarion_bench::{ms, percentile};
use daarion_embed::{Kind, Models, dot};
use daarion_memory::{
    chunk::{Chunk, DocumentFormat},
    domain::NewDocument,
    pgvector::Pgvector,
    store,
    vectors::{Tuning, VectorIndex},
};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    /// Where `daarion models install` put the models.
    #[arg(long)]
    models: PathBuf,
    /// Index sizes to measure.
    #[arg(long, value_delimiter = ',', default_value = "10000,100000")]
    vectors: Vec<usize>,
    /// Searches timed at each size.
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    /// Chunks the encoder embeds for its throughput (it is slow).
    #[arg(long, default_value_t = 200)]
    encoder_chunks: usize,
    /// A PostgreSQL server with pgvector, to measure beside the embedded
    /// index (a fresh database is made on it).
    #[arg(long)]
    pgvector: Option<String>,
}

/// A small deterministic generator (xorshift): the same texts every run.
struct Draw(u64);

impl Draw {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// The retrieval set's sentences, both languages.
fn sentences() -> anyhow::Result<Vec<String>> {
    let set: serde_json::Value = serde_json::from_str(include_str!(
        "../../../crates/embed/tests/fixtures/retrieval.json"
    ))?;
    let mut texts: Vec<&str> = Vec::new();
    for passage in set["passages"].as_array().into_iter().flatten() {
        texts.extend(["en", "uk"].iter().filter_map(|l| passage[*l].as_str()));
    }
    for lang in ["en", "uk"] {
        texts.extend(
            set["distractors"][lang]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|d| d.as_str()),
        );
    }
    Ok(texts
        .iter()
        .flat_map(|t| t.split(". "))
        .filter(|s| s.len() > 20)
        .map(str::to_owned)
        .collect())
}

fn chunks(sentences: &[String], n: usize, draw: &mut Draw) -> Vec<String> {
    (0..n)
        .map(|_| {
            (0..3)
                .map(|_| sentences[draw.below(sentences.len())].as_str())
                .collect::<Vec<_>>()
                .join(". ")
        })
        .collect()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let models = Models::new(&args.models);
    let table = models.table()?;
    let pool = sentences()?;
    let mut draw = Draw(0x9e37_79b9_7f4a_7c15);
    let largest = args.vectors.iter().copied().max().unwrap_or(0);
    let texts = chunks(&pool, largest + args.queries, &mut draw);
    let pieces: usize = texts.iter().map(|t| t.split_whitespace().count()).sum();
    println!(
        "chunks: {} texts of ~{} words (3 sentences of the retrieval set each)",
        texts.len(),
        pieces / texts.len().max(1)
    );

    // Embedding throughput: the table on one thread and on every core.
    let started = Instant::now();
    let one: Vec<Vec<f32>> = texts
        .iter()
        .take(largest.min(20_000))
        .filter_map(|t| table.embed(t))
        .collect();
    let per_second = one.len() as f64 / started.elapsed().as_secs_f64();
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let started = Instant::now();
    let vectors: Vec<Option<Vec<f32>>> = std::thread::scope(|scope| {
        let per = texts.len().div_ceil(cores);
        let parts: Vec<_> = texts
            .chunks(per.max(1))
            .map(|part| {
                let table = &table;
                scope.spawn(move || part.iter().map(|t| table.embed(t)).collect::<Vec<_>>())
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().unwrap_or_default())
            .collect()
    });
    let all_cores = vectors.len() as f64 / started.elapsed().as_secs_f64();
    println!(
        "static table: {per_second:.0} chunks/s on one thread, {all_cores:.0} on {cores} cores"
    );
    let encoder = models.encoder()?;
    let sample: Vec<&str> = texts
        .iter()
        .take(args.encoder_chunks)
        .map(String::as_str)
        .collect();
    let started = Instant::now();
    let encoded = encoder.embed(&sample, Kind::Passage);
    println!(
        "e5 encoder: {:.1} chunks/s on {cores} cores ({} chunks)",
        encoded.len() as f64 / started.elapsed().as_secs_f64(),
        encoded.len()
    );

    let embedded: Vec<(&str, Vec<f32>)> = texts
        .iter()
        .zip(vectors)
        .filter_map(|(t, v)| v.map(|v| (t.as_str(), v)))
        .collect();
    let (corpus, queries) = embedded.split_at(embedded.len().saturating_sub(args.queries));
    let queries: Vec<Vec<f32>> = queries.iter().map(|(_, v)| v.clone()).collect();
    let questions = questions(args.queries)?;
    for &size in &args.vectors {
        let size = size.min(corpus.len());
        measure(&corpus[..size], &queries).await?;
        hybrid(&args.models, None, &corpus[..size], &questions).await?;
        if let Some(server) = &args.pgvector {
            let test = measure_pgvector(server, &corpus[..size], &queries).await?;
            hybrid(&args.models, Some(&test), &corpus[..size], &questions).await?;
        }
    }
    Ok(())
}

/// The retrieval set's questions, both languages, `n` of them in turn.
fn questions(n: usize) -> anyhow::Result<Vec<String>> {
    let set: serde_json::Value = serde_json::from_str(include_str!(
        "../../../crates/embed/tests/fixtures/retrieval.json"
    ))?;
    let all: Vec<String> = set["questions"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|q| ["en", "uk"].map(|l| q[l].as_str().unwrap_or_default().to_owned()))
        .filter(|q| !q.is_empty())
        .collect();
    Ok(all.iter().cycle().take(n).cloned().collect())
}

const SETS: [daarion_store::MigrationSet; 3] = [
    daarion_memory::SPEC.migration_set(),
    daarion_bus::MIGRATIONS,
    daarion_store::idempotency::MIGRATIONS,
];

/// The model the chunks are stored as: the static table's, so the
/// memory service's own search (`hybrid`) reads them.
const MODEL: &str = daarion_memory::embedder::STATIC;

/// Stores `corpus` (texts and their vectors) as microDAO `bench`'s chunks,
/// 1 000 to a document (with the `vec` column on pgvector).
async fn store_corpus(
    db: &daarion_store::Db,
    corpus: &[(&str, Vec<f32>)],
    pgvector: bool,
) -> anyhow::Result<()> {
    let streams = daarion_bus::subject::Streams::new(daarion_memory::SPEC.streams.iter().copied())?;
    let bus = std::sync::Arc::new(daarion_bus::EmbeddedBus::new(db.clone(), streams));
    let outbox = daarion_bus::Outbox::new(db.clone(), bus);
    for part in corpus.chunks(1000) {
        let new = NewDocument::parse("bench", Some(DocumentFormat::Text), "bench", 100)?;
        let (document, _, _) =
            store::create(db, &outbox, "bench", &new, ("user:bench", "bench"), None).await?;
        let chunks: Vec<(Chunk, Option<Vec<f32>>)> = part
            .iter()
            .map(|(text, v)| {
                let chunk = Chunk {
                    heading: String::new(),
                    text: (*text).to_owned(),
                };
                (chunk, Some(v.clone()))
            })
            .collect();
        store::index(db, &outbox, &document.id, (MODEL, pgvector), &chunks).await?;
    }
    Ok(())
}

/// The ten nearest of `q` among `stored`, every one compared.
fn exact(stored: &[store::Stored], q: &[f32]) -> Vec<i64> {
    let mut scored: Vec<(i64, f32)> = stored.iter().map(|s| (s.id, dot(&s.vector, q))).collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1));
    scored.into_iter().take(10).map(|(id, _)| id).collect()
}

/// Stores `corpus` as one microDAO's chunks, then times searches before
/// (exact scan) and after the graph is built.
/// Stores `corpus` as one microDAO's chunks, then times searches before
/// (exact scan) and after the graph is built.
async fn measure(corpus: &[(&str, Vec<f32>)], queries: &[Vec<f32>]) -> anyhow::Result<()> {
    let test = daarion_testkit::migrated_db(daarion_testkit::SqlKind::Sqlite, &SETS)
        .await
        .ok_or_else(|| anyhow::anyhow!("no database"))?;
    let db = &test.db;
    let dim = corpus.first().map_or(0, |(_, v)| v.len());
    let started = Instant::now();
    store_corpus(db, corpus, false).await?;
    println!(
        "\n{} vectors of {dim} dimensions stored in {}",
        corpus.len(),
        ms(started.elapsed())
    );

    let index = VectorIndex::new(None, Tuning::default());
    let stored = store::vectors_after(db, ("bench", MODEL, dim), 0).await?;
    let ids: Vec<i64> = stored.iter().map(|s| s.id).collect();
    let exact = |q: &[f32]| exact(&stored, q);
    // The first search reads the vectors and starts the graph's build.
    let started = Instant::now();
    index
        .nearest(db, ("bench", MODEL, dim), &queries[0], 10)
        .await?;
    let loaded = started.elapsed();
    let mut scans = Vec::new();
    let mut during = 0.0;
    // Searches while the graph is built are exact scans of the tail.
    while index.status("bench", MODEL).await.2 {
        let q = &queries[scans.len() % queries.len()];
        let at = Instant::now();
        let got = index.nearest(db, ("bench", MODEL, dim), q, 10).await?;
        scans.push(at.elapsed());
        let got: Vec<i64> = got.into_iter().map(|(id, _)| id).collect();
        during += recall(&exact(q), &got);
        if scans.len() >= 200 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let built = started.elapsed();
    let (graph, tail, _) = index.status("bench", MODEL).await;
    println!(
        "first search (reading the vectors) {}; graph of {graph} built in {} (tail {tail}), searched {} times meanwhile",
        ms(loaded),
        ms(built),
        scans.len()
    );
    if !scans.is_empty() {
        scans.sort();
        println!(
            "  exact scan: p50 {} p99 {}, recall@10 {:.3}",
            ms(percentile(&scans, 50.0)),
            ms(percentile(&scans, 99.0)),
            during / scans.len() as f64
        );
    }
    let mut times = Vec::with_capacity(queries.len());
    let mut total = 0.0;
    for q in queries {
        let at = Instant::now();
        let got = index.nearest(db, ("bench", MODEL, dim), q, 10).await?;
        times.push(at.elapsed());
        let got: Vec<i64> = got.into_iter().map(|(id, _)| id).collect();
        total += recall(&exact(q), &got);
    }
    times.sort();
    println!(
        "  graph (ef {}): p50 {} p99 {}, recall@10 {:.3} against the exact scan ({} queries, {} ids)",
        Tuning::default().ef_search,
        ms(percentile(&times, 50.0)),
        ms(percentile(&times, 99.0)),
        total / queries.len() as f64,
        queries.len(),
        ids.len()
    );
    Ok(())
}

/// The same corpus in PostgreSQL with pgvector: stored with the HNSW
/// index in place (as the indexer writes), then searched through the
/// index at the service's two depths (10, and the 50 a hybrid search
/// asks) and by the exact scan the service uses for small communities.
async fn measure_pgvector(
    server: &str,
    corpus: &[(&str, Vec<f32>)],
    queries: &[Vec<f32>],
) -> anyhow::Result<daarion_testkit::TestDb> {
    let test = daarion_testkit::TestDb::on_server(server).await;
    daarion_store::migrate::apply(&test.db, &SETS).await?;
    let db = &test.db;
    let dim = corpus.first().map_or(0, |(_, v)| v.len());
    let graph = Pgvector::new(0);
    graph.ready(db, MODEL, dim).await?;
    let started = Instant::now();
    store_corpus(db, corpus, true).await?;
    // As autovacuum would soon: the exact scan's plan reads the statistics.
    daarion_store::sql::query("ANALYZE memory_chunks")
        .execute(db.pool())
        .await?;
    println!(
        "pgvector: {} vectors stored with the HNSW index (m 16, ef_construction 64) in {}",
        corpus.len(),
        ms(started.elapsed())
    );
    let stored = store::vectors_after(db, ("bench", MODEL, dim), 0).await?;
    for (label, searcher, k) in [
        ("graph, k 10 (ef_search 40)", &graph, 10),
        ("graph, k 50 (ef_search 75)", &graph, 50),
        ("exact scan", &Pgvector::new(i64::MAX), 10),
    ] {
        let mut times = Vec::with_capacity(queries.len());
        let mut total = 0.0;
        for q in queries {
            let at = Instant::now();
            let got = searcher.nearest(db, ("bench", MODEL, dim), q, k).await?;
            times.push(at.elapsed());
            let got: Vec<i64> = got.into_iter().take(10).map(|(id, _)| id).collect();
            total += recall(&exact(&stored, q), &got);
        }
        times.sort();
        println!(
            "  {label}: p50 {} p99 {}, recall@10 {:.3} ({} queries)",
            ms(percentile(&times, 50.0)),
            ms(percentile(&times, 99.0)),
            total / queries.len() as f64,
            queries.len()
        );
    }
    Ok(test)
}

/// The memory service's own search (`Knowledge::search`, 10 hits at the
/// default alpha) for the retrieval set's questions over the stored
/// chunks: embedded (a fresh SQLite store, the graph built first), or on
/// `pgvector`'s database as `measure_pgvector` left it.
async fn hybrid(
    models: &std::path::Path,
    pgvector: Option<&daarion_testkit::TestDb>,
    corpus: &[(&str, Vec<f32>)],
    questions: &[String],
) -> anyhow::Result<()> {
    let embedded;
    let (db, vectors) = match pgvector {
        Some(test) => (&test.db, "pgvector"),
        None => {
            embedded = daarion_testkit::migrated_db(daarion_testkit::SqlKind::Sqlite, &SETS)
                .await
                .ok_or_else(|| anyhow::anyhow!("no database"))?;
            store_corpus(&embedded.db, corpus, false).await?;
            (&embedded.db, "embedded")
        }
    };
    let streams = daarion_bus::subject::Streams::new(daarion_memory::SPEC.streams.iter().copied())?;
    let bus = std::sync::Arc::new(daarion_bus::EmbeddedBus::new(db.clone(), streams));
    let outbox = daarion_bus::Outbox::new(db.clone(), bus);
    let settings = daarion_memory::Settings {
        vectors: vectors.into(),
        ..Default::default()
    };
    let knowledge = daarion_memory::Knowledge::new(
        (db.clone(), outbox),
        Models::new(models),
        None,
        None,
        settings,
    )
    .map_err(anyhow::Error::msg)?;
    knowledge.search("bench", &questions[0], 10, None).await?;
    while knowledge.index_status("bench").await.2 {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut times = Vec::with_capacity(questions.len());
    let mut semantic = 0;
    for q in questions {
        let at = Instant::now();
        let (hits, by_meaning) = knowledge.search("bench", q, 10, None).await?;
        times.push(at.elapsed());
        semantic += usize::from(by_meaning && !hits.is_empty());
    }
    times.sort();
    println!(
        "  hybrid search ({vectors}, Knowledge::search, 10 hits): p50 {} p99 {} ({} questions, {semantic} answered with vectors)",
        ms(percentile(&times, 50.0)),
        ms(percentile(&times, 99.0)),
        questions.len()
    );
    Ok(())
}

fn recall(exact: &[i64], got: &[i64]) -> f64 {
    exact.iter().filter(|id| got.contains(id)).count() as f64 / exact.len().max(1) as f64
}
