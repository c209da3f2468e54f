-- Migration: 001
-- Description: Create usage records and the monthly budget ledger
-- Date: 2026-11-23
-- Author: DAARION Team
-- Rollback: See 001_create_usage_tables.down.sql
-- One row per metered event (LLM call, embedding, tool call, agent run,
-- message), keyed by the bus event id so redelivery stores it once.
CREATE TABLE usage_records (
    event_id TEXT PRIMARY KEY,
    at TEXT NOT NULL,
    kind TEXT NOT NULL,
    user_id TEXT,
    agent_id TEXT,
    dao_id TEXT,
    api_key_id TEXT,
    model TEXT,
    provider TEXT,
    tokens_in BIGINT NOT NULL DEFAULT 0,
    tokens_out BIGINT NOT NULL DEFAULT 0,
    tokens_cached BIGINT NOT NULL DEFAULT 0,
    estimated INTEGER NOT NULL DEFAULT 0,
    tool TEXT,
    run_id TEXT,
    cost_micros BIGINT NOT NULL DEFAULT 0,
    currency TEXT,
    latency_ms BIGINT NOT NULL DEFAULT 0,
    outcome TEXT NOT NULL,
    error_code TEXT,
    request_id TEXT
);
CREATE INDEX usage_records_at ON usage_records (at);
CREATE INDEX usage_records_user ON usage_records (user_id, at);
CREATE INDEX usage_records_agent ON usage_records (agent_id, at);
CREATE INDEX usage_records_dao ON usage_records (dao_id, at);
-- Money spent and reserved (calls in flight) per subject and calendar month,
-- in millionths of the currency unit. Reservations are taken before a call
-- by one conditional update, so concurrent calls cannot overspend a budget
-- by more than one call's worth.
CREATE TABLE usage_budget (
    subject TEXT NOT NULL,
    period TEXT NOT NULL,
    spent_micros BIGINT NOT NULL DEFAULT 0,
    reserved_micros BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (subject, period)
);
