//! Full-text ranking: a microDAO's chunks matching any word of a
//! question, best first by BM25. SQLite's FTS5 has it built in. PostgreSQL
//! ranks without the words' rarity (`ts_rank_cd`: "the" weighs as much as
//! "budget": nDCG@10 0.063 on the retrieval set), so it is computed here
//! with k1 = 0 — each word a chunk holds counts its inverse document
//! frequency among the microDAO's chunks — which suits chunks of a
//! paragraph, where a word rarely comes twice. The counts behind the IDF
//! are kept a while per process (one indexed count per new word), and
//! words in over a third of the chunks choose no candidates when a rarer
//! word is there (they would make every chunk one), though they still
//! score. (A tenth halves the latency on `bench/memory` and costs 0.03
//! nDCG@10 in English on the retrieval set: not taken.)

use std::time::Duration;

use daarion_store::{
    Backend, Db,
    sql::{self, Row},
};

use crate::{
    domain::{MemoryError, Within},
    expiring::Expiring,
    store::ChunkId,
};

/// How long a count of chunks (a microDAO's, or those holding a word) is
/// trusted: IDF moves slowly.
const COUNTS_FOR: Duration = Duration::from_secs(600);

/// The words of a question, as both full-text engines take them: letters
/// and digits only (so nothing a person types is query syntax), lower
/// case, each once, at most 32.
fn words(query: &str) -> Vec<String> {
    let mut words: Vec<String> = Vec::new();
    for word in query.split(|c: char| !c.is_alphanumeric()) {
        let word = word.to_lowercase();
        if !word.is_empty() && !words.contains(&word) && words.len() < 32 {
            words.push(word);
        }
    }
    words
}

/// A process's full-text search, with PostgreSQL's counts kept a while:
/// per microDAO and word (the empty word: all its chunks).
#[derive(Clone)]
pub struct FullText {
    counts: Expiring<(String, String), i64>,
}

impl Default for FullText {
    fn default() -> Self {
        Self {
            counts: Expiring::new(COUNTS_FOR),
        }
    }
}

impl FullText {
    /// `dao`'s chunks (of the documents `within` keeps to) matching any
    /// word of `query`, best first, `limit` at most.
    pub async fn search(
        &self,
        db: &Db,
        (dao, within): (&str, Within<'_>),
        query: &str,
        limit: usize,
    ) -> Result<Vec<ChunkId>, MemoryError> {
        let words = words(query);
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let rows = match db.backend() {
            Backend::Sqlite => {
                let pattern = words
                    .iter()
                    .map(|w| format!("\"{w}\""))
                    .collect::<Vec<_>>()
                    .join(" OR ");
                // CROSS JOIN keeps SQLite from walking the microDAO's chunks
                // and matching each against the index (1 s at 10 000 chunks).
                sql::query(
                    "SELECT c.id FROM memory_search s
                     CROSS JOIN memory_chunks c ON c.id = s.rowid
                     WHERE memory_search MATCH $1 AND c.dao = $2
                       AND (($4 = '' AND $5 = '') OR c.document_id IN
                           (SELECT id FROM memory_documents
                            WHERE ($4 = '' OR author = $4) AND ($5 = '' OR room = $5)))
                     ORDER BY bm25(memory_search), c.id LIMIT $3",
                )
                .bind(pattern)
                .bind(dao)
                .bind(limit as i64)
                .bind(within.author.unwrap_or(""))
                .bind(within.room.unwrap_or(""))
                .fetch_all(db.reader())
                .await?
            }
            Backend::Postgres => {
                let weighted = self.weigh(db, dao, &words).await?;
                if weighted.is_empty() {
                    return Ok(Vec::new());
                }
                let choosing: Vec<&str> = weighted
                    .iter()
                    .filter(|(_, _, chooses)| *chooses)
                    .map(|(w, _, _)| w.as_str())
                    .collect();
                let scores: Vec<serde_json::Value> = weighted
                    .iter()
                    .map(|(w, idf, _)| serde_json::json!([w, idf]))
                    .collect();
                sql::query(
                    "WITH words AS (
                         SELECT plainto_tsquery('simple', value->>0) AS q, (value->>1)::float8 AS idf
                         FROM jsonb_array_elements($4::jsonb)
                     )
                     SELECT c.id FROM memory_chunks c JOIN words ON c.search @@ words.q
                     WHERE c.search @@ to_tsquery('simple', $1) AND c.dao = $2
                       AND (($5 = '' AND $6 = '') OR c.document_id IN
                           (SELECT id FROM memory_documents
                            WHERE ($5 = '' OR author = $5) AND ($6 = '' OR room = $6)))
                     GROUP BY c.id ORDER BY sum(words.idf) DESC, c.id LIMIT $3",
                )
                .bind(choosing.join(" | "))
                .bind(dao)
                .bind(limit as i64)
                .bind(serde_json::Value::from(scores).to_string())
                .bind(within.author.unwrap_or(""))
                .bind(within.room.unwrap_or(""))
                .fetch_all(db.reader())
                .await?
            }
        };
        rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
    }

    /// Each of `words` held by some chunk of `dao`: its IDF, and whether
    /// it chooses candidates (not when it is in over a third of the
    /// chunks and a rarer word is there).
    async fn weigh(
        &self,
        db: &Db,
        dao: &str,
        words: &[String],
    ) -> Result<Vec<(String, f64, bool)>, MemoryError> {
        let all = self.count(db, dao, "").await? as f64;
        let mut weighted = Vec::new();
        for word in words {
            let held = self.count(db, dao, word).await? as f64;
            if held > 0.0 {
                let idf = (1.0 + (all - held + 0.5) / (held + 0.5)).ln();
                weighted.push((word.clone(), idf, held * 3.0 <= all));
            }
        }
        if !weighted.iter().any(|(_, _, chooses)| *chooses) {
            weighted.iter_mut().for_each(|w| w.2 = true);
        }
        Ok(weighted)
    }

    /// `dao`'s chunks holding `word` (all of them for an empty word).
    async fn count(&self, db: &Db, dao: &str, word: &str) -> Result<i64, MemoryError> {
        let key = (dao.to_owned(), word.to_owned());
        if let Some(n) = self.counts.get(&key) {
            return Ok(n);
        }
        // Two statements: an `OR` would keep the word's count off the
        // GIN index.
        let row = if word.is_empty() {
            sql::query("SELECT count(*) AS n FROM memory_chunks WHERE dao = $1").bind(dao)
        } else {
            sql::query(
                "SELECT count(*) AS n FROM memory_chunks
                 WHERE search @@ plainto_tsquery('simple', $2) AND dao = $1",
            )
            .bind(dao)
            .bind(word)
        }
        .fetch_one(db.reader())
        .await?;
        let n: i64 = row.try_get("n")?;
        self.counts.put(key, n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_question_becomes_plain_words() {
        assert_eq!(
            words("What did we decide about the BUDGET? budget* OR \"x\" -y"),
            [
                "what", "did", "we", "decide", "about", "the", "budget", "or", "x", "y"
            ]
        );
        assert_eq!(
            words("Що ми вирішили щодо бюджету?"),
            ["що", "ми", "вирішили", "щодо", "бюджету"]
        );
        assert!(words("?! ...").is_empty());
    }
}
