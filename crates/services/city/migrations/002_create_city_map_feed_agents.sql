-- Migration: 002
-- Description: The city map (districts, places of public rooms), the city feed, agents' presence
-- Date: 2026-12-03
-- Author: DAARION Team
-- Rollback: See 002_create_city_map_feed_agents.down.sql
CREATE TABLE city_districts (
    slug TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    color TEXT NOT NULL,
    x BIGINT NOT NULL,
    y BIGINT NOT NULL,
    w BIGINT NOT NULL,
    h BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE city_places (
    room TEXT PRIMARY KEY,
    district TEXT REFERENCES city_districts (slug),
    x BIGINT NOT NULL,
    y BIGINT NOT NULL,
    w BIGINT NOT NULL,
    h BIGINT NOT NULL,
    zone TEXT NOT NULL,
    role TEXT NOT NULL,
    icon TEXT NOT NULL,
    color TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX city_places_district ON city_places (district);
-- if sqlite
CREATE TABLE city_feed (
    seq INTEGER PRIMARY KEY,
-- end if
-- if postgres
CREATE TABLE city_feed (
    seq BIGSERIAL PRIMARY KEY,
-- end if
    event_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    what TEXT NOT NULL,
    subject TEXT NOT NULL,
    actor TEXT NOT NULL,
    room TEXT,
    dao TEXT,
    text TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX city_feed_actor ON city_feed (actor, seq);
CREATE INDEX city_feed_room ON city_feed (room, seq);
CREATE INDEX city_feed_subject ON city_feed (subject);
CREATE INDEX city_feed_created ON city_feed (created_at);
CREATE TABLE city_agents (
    agent TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    since TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX city_agents_lapse ON city_agents (status, expires_at);
