-- Migration: 002
-- Description: Calls named by an idempotency key keep their result
-- Date: 2026-12-04
-- Author: DAARION Team
-- Rollback: See 002_add_call_idempotency.down.sql
-- A caller's key for the call (the runtime sends `run:<id>:<step>`): a
-- call repeated with it is answered from here, not run again.
ALTER TABLE toolcore_calls ADD COLUMN idempotency_key TEXT;
-- JSON: what the tool answered (kept for keyed calls).
ALTER TABLE toolcore_calls ADD COLUMN result TEXT;
CREATE UNIQUE INDEX toolcore_calls_key ON toolcore_calls (caller, idempotency_key);
