-- Migration: 005
-- Description: Secrets the city makes once and keeps (the key behind the stand-in credentials sign-in offers for unknown usernames)
-- Date: 2026-12-02
-- Author: DAARION Team
-- Rollback: See 005_create_auth_secrets.down.sql
CREATE TABLE auth_secrets (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at TEXT NOT NULL
);
