-- Migration: 002
-- Description: Create one-time invitations to register (closed cities, admin enrolment)
-- Date: 2026-11-23
-- Author: DAARION Team
-- Rollback: See 002_create_auth_invites.down.sql
CREATE TABLE auth_invites (
    token_hash TEXT PRIMARY KEY,
    city_role TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    used_by TEXT
);
