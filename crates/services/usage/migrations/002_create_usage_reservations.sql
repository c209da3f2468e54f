-- Migration: 002
-- Description: One row per budget reservation, which expires if its call never settles
-- Date: 2026-11-23
-- Author: DAARION Team
-- Rollback: See 002_create_usage_reservations.down.sql
-- `usage_budget.reserved_micros` is the sum of these rows' `micros` for the
-- subject and period; rows leave it together with their amount, in one
-- transaction, either settled by their call or swept when expired.
CREATE TABLE usage_reservations (
    id TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    period TEXT NOT NULL,
    micros BIGINT NOT NULL,
    -- Unix time in milliseconds.
    expires_at BIGINT NOT NULL
);
CREATE INDEX usage_reservations_expiry ON usage_reservations (expires_at);
