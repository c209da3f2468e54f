-- Migration: 002
-- Description: Create the transactional outbox: events written in the transaction of the data they describe, relayed to the bus after commit
-- Date: 2026-12-01
-- Author: DAARION Team
-- Rollback: See 002_create_bus_outbox.down.sql
CREATE TABLE bus_outbox (
    id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    created_at TEXT NOT NULL,
    claimed_until TEXT NOT NULL
);
CREATE INDEX bus_outbox_created ON bus_outbox (created_at);
