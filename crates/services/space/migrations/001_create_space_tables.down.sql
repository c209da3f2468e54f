-- Migration: 001
-- Description: Drop the node registry and planets
-- Date: 2026-12-03
-- Author: DAARION Team
-- Rollback: This file is the rollback of 001_create_space_tables.sql
DROP TABLE space_seen;
DROP TABLE space_activity;
DROP TABLE space_members;
DROP TABLE space_planets;
DROP TABLE space_heartbeats;
DROP TABLE space_nodes;
