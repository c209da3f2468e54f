-- Migration: 003
-- Description: Public communities as the map shows them in their districts (a projection of the microDAO service's events)
-- Date: 2026-12-03
-- Author: DAARION Team
-- Rollback: See 003_create_city_communities.down.sql
CREATE TABLE city_communities (
    slug TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    district TEXT,
    listed INTEGER NOT NULL,
    event_time TEXT NOT NULL
);
CREATE INDEX city_communities_district ON city_communities (district);
