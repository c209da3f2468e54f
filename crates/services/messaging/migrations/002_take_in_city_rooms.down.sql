-- Migration: 002
-- Description: Rolling back leaves the city's rooms in messaging's store
-- Date: 2026-12-03
-- Author: DAARION Team
-- Rollback: Nothing to undo: the rooms stay where they are, with messages posted since
SELECT 1;
