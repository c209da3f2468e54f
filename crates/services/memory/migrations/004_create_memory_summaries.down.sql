-- Migration: 004
-- Description: Drop rolling summaries
-- Date: 2026-12-06
-- Author: DAARION Team
-- Rollback: This file is the rollback of 004_create_memory_summaries.sql
DROP TABLE memory_summaries;
