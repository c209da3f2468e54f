-- Migration: 004
-- Description: A microDAO's orchestrator agent
-- Date: 2026-12-04
-- Author: DAARION Team
-- Rollback: See 004_add_orchestrators.down.sql
-- The agent (slug) that speaks for the community: it greets newcomers and
-- answers in its `general` room; always one of its members (role agent).
ALTER TABLE microdao_daos ADD COLUMN orchestrator TEXT;
