-- Migration: 001
-- Description: Second Me conversations
-- Date: 2026-12-06
-- Author: DAARION Team
-- Rollback: See 001_create_secondme_tables.down.sql
-- A person's conversations with their own agent. What they tell it is
-- also kept in their own memory (the memory service's documents, `dao` =
-- `user:<id>`), which is what a new conversation recalls.
CREATE TABLE secondme_conversations (
    id TEXT PRIMARY KEY,
    -- `user:<id>`: the only one who reads it.
    person TEXT NOT NULL,
    title TEXT NOT NULL,
    turns BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX secondme_conversations_by_person
    ON secondme_conversations (person, updated_at, id);

-- Turns in order; a person's turn and the answer share the run that
-- answered it (a retry with the same Idempotency-Key is the same run).
CREATE TABLE secondme_turns (
    conversation TEXT NOT NULL,
    seq BIGINT NOT NULL,
    role TEXT NOT NULL,
    content TEXT NOT NULL,
    run_id TEXT NOT NULL,
    -- 1 for an answer whose run was given what the person told before.
    recalled BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    PRIMARY KEY (conversation, seq)
);
CREATE UNIQUE INDEX secondme_turns_by_run ON secondme_turns (run_id, role);
