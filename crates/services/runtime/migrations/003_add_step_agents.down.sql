-- Migration: 003
-- Description: Forget which agent took each step
-- Date: 2026-12-04
-- Author: DAARION Team
-- Rollback: This file is the rollback of 003_add_step_agents.sql
ALTER TABLE runtime_steps DROP COLUMN agent;
