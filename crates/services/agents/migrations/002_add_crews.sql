-- Migration: 002
-- Description: An agent may be a crew of agents
-- Date: 2026-12-04
-- Author: DAARION Team
-- Rollback: See 002_add_crews.down.sql
-- JSON (`domain::Crew`): the process and the member agents in their
-- roles; NULL for an agent that works alone.
ALTER TABLE agents_agents ADD COLUMN crew TEXT;
