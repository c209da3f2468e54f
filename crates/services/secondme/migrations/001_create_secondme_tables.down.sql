-- Migration: 001
-- Description: Drop Second Me conversations
-- Date: 2026-12-06
-- Author: DAARION Team
-- Rollback: This file is the rollback of 001_create_secondme_tables.sql
DROP TABLE secondme_turns;
DROP TABLE secondme_conversations;
