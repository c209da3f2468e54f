-- Migration: 003
-- Description: Drop remembered facts
-- Date: 2026-12-06
-- Author: DAARION Team
-- Rollback: This file is the rollback of 003_create_memory_facts.sql
DROP TABLE memory_facts;
