-- Migration: 001
-- Description: Drop agent definitions and their versions
-- Date: 2026-12-04
-- Author: DAARION Team
-- Rollback: This file is the rollback of 001_create_agents_tables.sql
DROP TABLE agents_versions;
DROP TABLE agents_agents;
