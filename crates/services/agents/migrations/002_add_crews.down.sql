-- Migration: 002
-- Description: Drop crews
-- Date: 2026-12-04
-- Author: DAARION Team
-- Rollback: This file is the rollback of 002_add_crews.sql
ALTER TABLE agents_agents DROP COLUMN crew;
