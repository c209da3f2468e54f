-- Migration: 002
-- Description: Drop runs' conversations and answers
-- Date: 2026-12-04
-- Author: DAARION Team
-- Rollback: This file is the rollback of 002_add_run_conversations.sql
ALTER TABLE runtime_runs DROP COLUMN answer;
ALTER TABLE runtime_runs DROP COLUMN input;
