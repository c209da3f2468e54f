-- Migration: 001
-- Description: Create the versioned policy store and the audit log
-- Date: 2026-11-23
-- Author: DAARION Team
-- Rollback: See 001_create_pdp_tables.down.sql
CREATE TABLE pdp_policy_versions (
    version BIGINT PRIMARY KEY,
    files TEXT NOT NULL,
    author TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE pdp_audit (
    event_id TEXT PRIMARY KEY,
    time TEXT NOT NULL,
    subject TEXT NOT NULL,
    service TEXT NOT NULL,
    actor TEXT NOT NULL,
    request_id TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX pdp_audit_time ON pdp_audit (time);
