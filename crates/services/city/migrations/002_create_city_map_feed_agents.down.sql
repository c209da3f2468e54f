-- Migration: 002
-- Description: Drop the city map, feed and agents' presence
-- Date: 2026-12-03
-- Author: DAARION Team
-- Rollback: This file is the rollback of 002_create_city_map_feed_agents.sql
DROP TABLE city_agents;
DROP TABLE city_feed;
DROP TABLE city_places;
DROP TABLE city_districts;
