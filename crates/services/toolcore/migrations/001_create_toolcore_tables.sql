-- Migration: 001
-- Description: Create registered tools and the log of tool calls
-- Date: 2026-12-04
-- Author: DAARION Team
-- Rollback: See 001_create_toolcore_tables.down.sql
CREATE TABLE toolcore_tools (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    -- The JSON Schema of the arguments (an object schema).
    parameters TEXT NOT NULL,
    -- `webhook`: an HTTPS (or, for the city's own hosts, HTTP) endpoint.
    executor TEXT NOT NULL,
    url TEXT NOT NULL,
    -- Signs every request (HMAC-SHA256); shown once when registered.
    secret TEXT NOT NULL,
    timeout_ms BIGINT NOT NULL,
    enabled BIGINT NOT NULL,
    -- JSON arrays: agent ids that may call it (empty: every agent), and
    -- role groups whose holders may.
    allowed_agents TEXT NOT NULL,
    allowed_roles TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE toolcore_calls (
    id TEXT PRIMARY KEY,
    tool TEXT NOT NULL,
    -- Who called (`agent:<id>`, `user:<id>`, `service:<name>`) and for whom.
    caller TEXT NOT NULL,
    acting_for TEXT,
    outcome TEXT NOT NULL,
    error TEXT,
    latency_ms BIGINT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX toolcore_calls_tool ON toolcore_calls (tool, created_at);
