-- Migration: 004
-- Description: Sessions remember when their person last proved a passkey (sign-in or re-authentication), for changes that need a recent one
-- Date: 2026-12-02
-- Author: DAARION Team
-- Rollback: See 004_add_session_authenticated_at.down.sql
ALTER TABLE auth_sessions ADD COLUMN authenticated_at TEXT NOT NULL DEFAULT '';
UPDATE auth_sessions SET authenticated_at = created_at;
