-- Migration: 003
-- Description: Drop the communities of the map
-- Date: 2026-12-03
-- Author: DAARION Team
-- Rollback: This file is the rollback of 003_create_city_communities.sql
DROP TABLE city_communities;
