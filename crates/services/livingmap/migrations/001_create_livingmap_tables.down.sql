-- Migration: 001
-- Description: Drop the living map's projection
-- Date: 2026-12-06
-- Author: DAARION Team
-- Rollback: This file is the rollback of 001_create_livingmap_tables.sql
DROP TABLE livingmap_proposals;
DROP TABLE livingmap_activity;
DROP TABLE livingmap_seen;
DROP TABLE livingmap_seq;
DROP TABLE livingmap_deltas;
DROP TABLE livingmap_edges;
DROP TABLE livingmap_nodes;
