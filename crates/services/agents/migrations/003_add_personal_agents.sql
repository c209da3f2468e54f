-- Migration: 003
-- Description: A person's own agent (their Second Me)
-- Date: 2026-12-06
-- Author: DAARION Team
-- Rollback: See 003_add_personal_agents.down.sql
-- 1 for the agent the Second Me service makes for a person: it answers to
-- them alone (the policies' `agent-personal`) and stays private.
ALTER TABLE agents_agents ADD COLUMN personal BIGINT NOT NULL DEFAULT 0;
