-- Migration: 001
-- Description: Create versioned control-plane documents and their current pointers
-- Date: 2026-11-23
-- Author: DAARION Team
-- Rollback: See 001_create_control_tables.down.sql
CREATE TABLE control_versions (
    kind TEXT NOT NULL,
    doc_key TEXT NOT NULL,
    version BIGINT NOT NULL,
    value TEXT NOT NULL,
    author TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (kind, doc_key, version)
);
CREATE TABLE control_current (
    kind TEXT NOT NULL,
    doc_key TEXT NOT NULL,
    version BIGINT NOT NULL,
    PRIMARY KEY (kind, doc_key)
);
