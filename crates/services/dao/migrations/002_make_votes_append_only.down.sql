-- Migration: 002
-- Description: Drop the append-only triggers of DAO votes
-- Date: 2026-12-06
-- Author: DAARION Team
-- Rollback: This file is the rollback of 002_make_votes_append_only.sql
-- if sqlite
DROP TRIGGER dao_votes_no_update;
DROP TRIGGER dao_votes_no_delete;
-- end if
-- if postgres
DROP TRIGGER dao_votes_append_only ON dao_votes;
DROP FUNCTION dao_votes_append_only();
-- end if
