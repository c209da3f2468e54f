-- Migration: 004
-- Description: Sessions forget when their person last proved a passkey
-- Date: 2026-12-02
-- Author: DAARION Team
-- Rollback: This file is the rollback of 004_add_session_authenticated_at.sql
ALTER TABLE auth_sessions DROP COLUMN authenticated_at;
