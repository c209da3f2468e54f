-- Migration: 003
-- Description: A room's responder: the agent that answers every message
-- Date: 2026-12-04
-- Author: DAARION Team
-- Rollback: See 003_add_room_responders.down.sql
-- An agent's slug, or NULL: agents answer only when mentioned.
ALTER TABLE messaging_rooms ADD COLUMN responder TEXT;
