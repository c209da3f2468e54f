-- Migration: 003
-- Description: Drop the current ballots
-- Date: 2026-12-06
-- Author: DAARION Team
-- Rollback: This file is the rollback of 003_keep_current_ballots.sql
DROP TABLE dao_ballots;
