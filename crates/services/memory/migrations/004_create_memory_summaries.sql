-- Migration: 004
-- Description: Rolling summaries of agents' conversation windows
-- Date: 2026-12-06
-- Author: DAARION Team
-- Rollback: See 004_create_memory_summaries.down.sql
-- An agent reads the last messages of a conversation (its window); what
-- has left the window is folded into a summary, a new version each time
-- the window moves far enough. `conversation` is `room:<id>` or
-- `room:<id>#<topic>`; `through` is the position (the room's message
-- sequence) of the last message a version covers; `messages` how many
-- messages all versions up to it cover.
CREATE TABLE memory_summaries (
    agent TEXT NOT NULL,
    conversation TEXT NOT NULL,
    version BIGINT NOT NULL,
    summary TEXT NOT NULL,
    through BIGINT NOT NULL,
    messages BIGINT NOT NULL,
    model TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (agent, conversation, version)
);
