-- Migration: 002
-- Description: Agent runs per planet and day
-- Date: 2026-12-05
-- Author: DAARION Team
-- Rollback: See 002_add_planet_runs.down.sql
-- Runs completed in the microDAO's rooms (`agent.run.completed.*`).
ALTER TABLE space_activity ADD COLUMN runs BIGINT NOT NULL DEFAULT 0;
