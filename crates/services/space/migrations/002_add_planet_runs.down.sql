-- Migration: 002
-- Description: Drop agent runs per planet and day
-- Date: 2026-12-05
-- Author: DAARION Team
-- Rollback: This file is the rollback of 002_add_planet_runs.sql
ALTER TABLE space_activity DROP COLUMN runs;
