-- Migration: 001
-- Description: Create agent runs and their checkpointed steps
-- Date: 2026-12-04
-- Author: DAARION Team
-- Rollback: See 001_create_runtime_tables.down.sql
CREATE TABLE runtime_runs (
    -- `run_…`, chosen by whoever asked (the router derives it from the
    -- mention), so a repeated request is the same run.
    id TEXT PRIMARY KEY,
    agent TEXT NOT NULL,
    room TEXT NOT NULL,
    topic TEXT NOT NULL,
    -- The message that asked, answered by the reply.
    message_id TEXT,
    -- `user:<id>` of the person who asked.
    asker TEXT NOT NULL,
    -- queued, running, completed, failed, cancelled.
    status TEXT NOT NULL,
    -- Leases taken: each delivery that ran it.
    attempts BIGINT NOT NULL,
    lease_owner TEXT,
    lease_until TEXT,
    reply_message_id TEXT,
    error TEXT,
    tokens_in BIGINT NOT NULL,
    tokens_out BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX runtime_runs_agent ON runtime_runs (agent, id);
CREATE TABLE runtime_steps (
    run_id TEXT NOT NULL REFERENCES runtime_runs (id),
    -- 0, 1, 2... in the order they ran: model calls and tool calls.
    n BIGINT NOT NULL,
    -- `model` or `tool`.
    kind TEXT NOT NULL,
    -- The model alias or the tool's name.
    name TEXT NOT NULL,
    -- JSON: what the step was given (a tool's arguments; nothing for a
    -- model call, whose input is the transcript so far).
    input TEXT NOT NULL,
    -- JSON: the model's message, or the tool's answer (or its error).
    output TEXT NOT NULL,
    ok BIGINT NOT NULL,
    tokens_in BIGINT NOT NULL,
    tokens_out BIGINT NOT NULL,
    latency_ms BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_id, n)
);
