-- Migration: 001
-- Description: Drop registered tools and the log of tool calls
-- Date: 2026-12-04
-- Author: DAARION Team
-- Rollback: This file is the rollback of 001_create_toolcore_tables.sql
DROP TABLE toolcore_calls;
DROP TABLE toolcore_tools;
