-- Migration: 003
-- Description: Drop personal agents' mark
-- Date: 2026-12-06
-- Author: DAARION Team
-- Rollback: This file is the rollback of 003_add_personal_agents.sql
ALTER TABLE agents_agents DROP COLUMN personal;
