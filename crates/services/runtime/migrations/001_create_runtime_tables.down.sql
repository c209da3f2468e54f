-- Migration: 001
-- Description: Drop agent runs and their steps
-- Date: 2026-12-04
-- Author: DAARION Team
-- Rollback: This file is the rollback of 001_create_runtime_tables.sql
DROP TABLE runtime_steps;
DROP TABLE runtime_runs;
