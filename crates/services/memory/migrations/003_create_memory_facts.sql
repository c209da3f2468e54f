-- Migration: 003
-- Description: Create remembered facts (subject, predicate, object) with their history
-- Date: 2026-12-06
-- Author: DAARION Team
-- Rollback: See 003_create_memory_facts.down.sql
-- A fact is a microDAO's (`scope` = `dao:<slug>`) or one person's own
-- (`user:<id>`). A newer fact of the same subject and predicate whose
-- object differs supersedes the current one, which stays as history
-- (`superseded_by`); `cardinality` `many` lets a predicate hold several
-- objects at once. Entities are matched by their `*_key` (lower case,
-- single spaces), shown as written.
CREATE TABLE memory_facts (
    id TEXT PRIMARY KEY,
    scope TEXT NOT NULL,
    subject TEXT NOT NULL,
    predicate TEXT NOT NULL,
    object TEXT NOT NULL,
    subject_key TEXT NOT NULL,
    predicate_key TEXT NOT NULL,
    object_key TEXT NOT NULL,
    cardinality TEXT NOT NULL,
    confidence DOUBLE PRECISION NOT NULL,
    source TEXT NOT NULL,
    -- `user:<id>` when the fact is about a person (their export and
    -- erasure include it).
    about TEXT,
    author TEXT NOT NULL,
    author_name TEXT NOT NULL,
    valid_from TEXT NOT NULL,
    created_at TEXT NOT NULL,
    superseded_by TEXT,
    superseded_at TEXT
);
-- One current fact per subject and single-valued predicate: racing
-- writers cannot both make theirs current.
CREATE UNIQUE INDEX memory_facts_current_one ON memory_facts (scope, subject_key, predicate_key)
    WHERE superseded_by IS NULL AND cardinality = 'one';
CREATE INDEX memory_facts_subject ON memory_facts (scope, subject_key, predicate_key);
CREATE INDEX memory_facts_object ON memory_facts (scope, object_key);
CREATE INDEX memory_facts_scope ON memory_facts (scope, id);
CREATE INDEX memory_facts_about ON memory_facts (about);
CREATE INDEX memory_facts_author ON memory_facts (author);
