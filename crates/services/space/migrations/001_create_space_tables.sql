-- Migration: 001
-- Description: The node registry, and planets: a projection of the microDAO and messaging events
-- Date: 2026-12-03
-- Author: DAARION Team
-- Rollback: See 001_create_space_tables.down.sql
CREATE TABLE space_nodes (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    role TEXT NOT NULL,
    kind TEXT NOT NULL,
    dao TEXT,
    token_hash TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    version TEXT NOT NULL,
    hostname TEXT NOT NULL,
    cpu_percent DOUBLE PRECISION,
    memory_percent DOUBLE PRECISION,
    latency_ms DOUBLE PRECISION,
    agents BIGINT,
    last_heartbeat TEXT,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX space_nodes_dao ON space_nodes (dao);
CREATE INDEX space_nodes_lapse ON space_nodes (status, last_heartbeat);
CREATE TABLE space_heartbeats (
    node TEXT NOT NULL,
    at TEXT NOT NULL,
    status TEXT NOT NULL,
    cpu_percent DOUBLE PRECISION,
    memory_percent DOUBLE PRECISION,
    latency_ms DOUBLE PRECISION,
    agents BIGINT,
    PRIMARY KEY (node, at)
);
CREATE INDEX space_heartbeats_at ON space_heartbeats (at);
CREATE TABLE space_planets (
    slug TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    public BIGINT NOT NULL,
    archived BIGINT NOT NULL,
    parent TEXT,
    members BIGINT NOT NULL,
    supply BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE space_members (
    dao TEXT NOT NULL,
    principal TEXT NOT NULL,
    PRIMARY KEY (dao, principal)
);
CREATE TABLE space_activity (
    dao TEXT NOT NULL,
    day TEXT NOT NULL,
    messages BIGINT NOT NULL,
    PRIMARY KEY (dao, day)
);
CREATE TABLE space_seen (
    event_id TEXT PRIMARY KEY,
    seen_at TEXT NOT NULL
);
CREATE INDEX space_seen_at ON space_seen (seen_at);
