-- Migration: 004
-- Description: A run's tokens are the sum of its steps' (no running total to keep)
-- Date: 2026-12-05
-- Author: DAARION Team
-- Rollback: See 004_derive_run_tokens.down.sql
-- A checkpoint was three statements in a transaction (lease check, step,
-- the run's running total); it is one insert now, and the totals are read
-- from the steps.
ALTER TABLE runtime_runs DROP COLUMN tokens_in;
ALTER TABLE runtime_runs DROP COLUMN tokens_out;
