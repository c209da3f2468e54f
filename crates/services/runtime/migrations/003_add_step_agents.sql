-- Migration: 003
-- Description: Which agent took each step (a crew's members)
-- Date: 2026-12-04
-- Author: DAARION Team
-- Rollback: See 003_add_step_agents.down.sql
-- The agent whose model call or tool call this was: the run's agent, or
-- a member of its crew. NULL (steps written before): the run's agent.
ALTER TABLE runtime_steps ADD COLUMN agent TEXT;
