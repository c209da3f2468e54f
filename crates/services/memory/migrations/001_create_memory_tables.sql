-- Migration: 001
-- Description: Create memory documents, their chunks with vectors, their generations, and the full-text index
-- Date: 2026-12-06
-- Author: DAARION Team
-- Rollback: See 001_create_memory_tables.down.sql
-- A microDAO's knowledge: documents as written, and the chunks the indexer
-- made of them (text, heading, vector). A document is written first and
-- indexed later (`memory.store` → indexer → `memory.indexed`): until then
-- `indexed_at` is NULL and it has no chunks.
CREATE TABLE memory_documents (
    id TEXT PRIMARY KEY,
    dao TEXT NOT NULL,
    title TEXT NOT NULL,
    format TEXT NOT NULL,
    body TEXT NOT NULL,
    -- `user:<id>` or `agent:<id>`, and how they were shown when writing.
    author TEXT NOT NULL,
    author_name TEXT NOT NULL,
    created_at TEXT NOT NULL,
    indexed_at TEXT,
    model TEXT,
    chunk_count INTEGER NOT NULL DEFAULT 0,
    -- Why the last indexing attempt failed (the model unavailable, a
    -- vector refused), cleared when one succeeds.
    index_error TEXT
);
CREATE INDEX memory_documents_dao ON memory_documents (dao, id);
CREATE INDEX memory_documents_author ON memory_documents (author, id);
CREATE INDEX memory_documents_waiting ON memory_documents (created_at) WHERE indexed_at IS NULL;

-- The vector is NULL where the model had nothing for the text (the static
-- table knows Latin and Cyrillic only): that chunk is found by its words.
-- `generation` is the microDAO's (memory_generations) when the chunk was
-- written: each indexing takes the next one under that row's lock, so
-- generations commit in order and a reader that has seen up to G finds
-- every later chunk with `generation > G` (ids may commit out of order).
-- if sqlite
CREATE TABLE memory_chunks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
-- end if
-- if postgres
CREATE TABLE memory_chunks (
    id BIGSERIAL PRIMARY KEY,
-- end if
    document_id TEXT NOT NULL REFERENCES memory_documents (id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    dao TEXT NOT NULL,
    generation BIGINT NOT NULL,
    heading TEXT NOT NULL,
    text TEXT NOT NULL,
    model TEXT NOT NULL,
-- if sqlite
    embedding BLOB,
-- end if
-- if postgres
    embedding BYTEA,
-- end if
    UNIQUE (document_id, seq)
);
CREATE INDEX memory_chunks_generation ON memory_chunks (dao, model, generation);

CREATE TABLE memory_generations (
    dao TEXT PRIMARY KEY,
    generation BIGINT NOT NULL
);

-- Full-text search: FTS5 embedded (BM25), a GIN index on PostgreSQL.
-- if sqlite
CREATE VIRTUAL TABLE memory_search USING fts5 (
    heading, text, content = 'memory_chunks', content_rowid = 'id',
    tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER memory_search_insert AFTER INSERT ON memory_chunks BEGIN
    INSERT INTO memory_search (rowid, heading, text) VALUES (new.id, new.heading, new.text);
END;
CREATE TRIGGER memory_search_delete AFTER DELETE ON memory_chunks BEGIN
    INSERT INTO memory_search (memory_search, rowid, heading, text)
        VALUES ('delete', old.id, old.heading, old.text);
END;
-- end if
-- if postgres
CREATE INDEX memory_chunks_search ON memory_chunks
    USING GIN (to_tsvector('simple', heading || ' ' || text));
-- end if
