-- Migration: 001
-- Description: Create the embedded bus (events, consumers, deliveries) and the consumer bookkeeping shared by every bus (processed ids, dead letters)
-- Date: 2026-11-23
-- Author: DAARION Team
-- Rollback: See 001_create_bus_tables.down.sql
CREATE TABLE bus_events (
    id TEXT PRIMARY KEY,
    stream TEXT NOT NULL,
    subject TEXT NOT NULL,
    envelope TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE bus_consumers (
    name TEXT PRIMARY KEY,
    stream TEXT NOT NULL,
    filter TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE bus_deliveries (
    consumer TEXT NOT NULL,
    event_id TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    visible_at TEXT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
CREATE INDEX bus_deliveries_due ON bus_deliveries (consumer, visible_at);
CREATE TABLE bus_processed (
    consumer TEXT NOT NULL,
    event_id TEXT NOT NULL,
    processed_at TEXT NOT NULL,
    PRIMARY KEY (consumer, event_id)
);
CREATE TABLE bus_dead_letters (
    id TEXT PRIMARY KEY,
    consumer TEXT NOT NULL,
    event_id TEXT NOT NULL,
    subject TEXT NOT NULL,
    envelope TEXT NOT NULL,
    error TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    failed_at TEXT NOT NULL
);
