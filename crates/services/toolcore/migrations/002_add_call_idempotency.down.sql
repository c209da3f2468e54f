-- Migration: 002
-- Description: Drop calls' idempotency keys and results
-- Date: 2026-12-04
-- Author: DAARION Team
-- Rollback: This file is the rollback of 002_add_call_idempotency.sql
DROP INDEX toolcore_calls_key;
ALTER TABLE toolcore_calls DROP COLUMN result;
ALTER TABLE toolcore_calls DROP COLUMN idempotency_key;
