-- Migration: 002
-- Description: On PostgreSQL, store each chunk's search vector (for BM25's per-word statistics)
-- Date: 2026-12-06
-- Author: DAARION Team
-- Rollback: See 002_store_search_vectors.down.sql
-- PostgreSQL ranks by BM25 computed in SQL (`store::by_text`), which
-- matches each of a question's words against every candidate: the search
-- vector is stored once rather than made again per word and row. SQLite's
-- FTS5 has BM25 built in: nothing changes there.
-- if postgres
ALTER TABLE memory_chunks ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('simple', heading || ' ' || text)) STORED;
CREATE INDEX memory_chunks_search_stored ON memory_chunks USING GIN (search);
DROP INDEX memory_chunks_search;
-- end if
