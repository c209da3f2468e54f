-- Migration: 001
-- Description: Create the idempotency key table shared by every create endpoint
-- Date: 2026-11-23
-- Author: DAARION Team
-- Rollback: See 001_create_idempotency_keys.down.sql
CREATE TABLE idempotency_keys (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    request_hash TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (scope, key)
);
