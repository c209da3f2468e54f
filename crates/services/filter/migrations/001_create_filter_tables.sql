-- Migration: 001
-- Description: Create filter rule sets and the log of what they did
-- Date: 2026-12-04
-- Author: DAARION Team
-- Rollback: See 001_create_filter_tables.down.sql
CREATE TABLE filter_rules (
    -- `dao:<slug>` or `agent:<slug>`.
    scope TEXT PRIMARY KEY,
    -- JSON: the rule set (`domain::Rules`).
    rules TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE filter_events (
    id TEXT PRIMARY KEY,
    -- The rule set that acted.
    scope TEXT NOT NULL,
    -- `input`, `output` or `tool`.
    direction TEXT NOT NULL,
    -- `blocked` or `redacted`.
    action TEXT NOT NULL,
    -- Which rule, in words.
    rule TEXT NOT NULL,
    agent TEXT NOT NULL,
    run_id TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX filter_events_scope ON filter_events (scope, id);
