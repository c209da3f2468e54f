-- Migration: 001
-- Description: Create agent definitions and their versions
-- Date: 2026-12-04
-- Author: DAARION Team
-- Rollback: See 001_create_agents_tables.down.sql
CREATE TABLE agents_agents (
    -- The agent's id for good: its principal is `agent:<slug>`.
    slug TEXT PRIMARY KEY,
    -- The person answerable for it (`user:<id>`), and the microDAO it
    -- serves, if any.
    owner TEXT NOT NULL,
    dao TEXT,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    avatar_url TEXT,
    -- An LLM proxy alias.
    model TEXT NOT NULL,
    visibility TEXT NOT NULL,
    status TEXT NOT NULL,
    blueprint TEXT,
    version BIGINT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX agents_agents_owner ON agents_agents (owner);
CREATE INDEX agents_agents_dao ON agents_agents (dao);
CREATE TABLE agents_versions (
    agent TEXT NOT NULL REFERENCES agents_agents (slug),
    version BIGINT NOT NULL,
    -- The whole definition at this version (JSON), with the control
    -- plane's prompt and policy versions it pointed to.
    definition TEXT NOT NULL,
    changed_by TEXT NOT NULL,
    changed_at TEXT NOT NULL,
    PRIMARY KEY (agent, version)
);
