-- Migration: 002
-- Description: Runs that answer a caller's conversation, and every run's answer
-- Date: 2026-12-04
-- Author: DAARION Team
-- Rollback: See 002_add_run_conversations.down.sql
-- JSON array of `{"role","content"}`: the conversation a caller handed the
-- run (`[]` for a run answering a room).
ALTER TABLE runtime_runs ADD COLUMN input TEXT NOT NULL DEFAULT '[]';
-- The final words, once completed.
ALTER TABLE runtime_runs ADD COLUMN answer TEXT;
