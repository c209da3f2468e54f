-- Migration: 004
-- Description: Keep a run's tokens as a running total again
-- Date: 2026-12-05
-- Author: DAARION Team
-- Rollback: This file is the rollback of 004_derive_run_tokens.sql
ALTER TABLE runtime_runs ADD COLUMN tokens_in BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runtime_runs ADD COLUMN tokens_out BIGINT NOT NULL DEFAULT 0;
UPDATE runtime_runs SET
    tokens_in = COALESCE((SELECT SUM(s.tokens_in) FROM runtime_steps s WHERE s.run_id = runtime_runs.id), 0),
    tokens_out = COALESCE((SELECT SUM(s.tokens_out) FROM runtime_steps s WHERE s.run_id = runtime_runs.id), 0);
