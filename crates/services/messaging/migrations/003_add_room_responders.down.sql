-- Migration: 003
-- Description: Drop rooms' responders
-- Date: 2026-12-04
-- Author: DAARION Team
-- Rollback: This file is the rollback of 003_add_room_responders.sql
ALTER TABLE messaging_rooms DROP COLUMN responder;
