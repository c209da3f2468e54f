-- Migration: 002
-- Description: DAO votes are append-only in the database too
-- Date: 2026-12-06
-- Author: DAARION Team
-- Rollback: See 002_make_votes_append_only.down.sql
-- The record's hash chain shows any change to a vote; these triggers
-- refuse the change itself, so rewriting a vote takes dropping them first
-- (DDL rights), not just write access.
-- if sqlite
CREATE TRIGGER dao_votes_no_update BEFORE UPDATE ON dao_votes
BEGIN
    SELECT RAISE(ABORT, 'dao_votes is append-only');
END;
CREATE TRIGGER dao_votes_no_delete BEFORE DELETE ON dao_votes
BEGIN
    SELECT RAISE(ABORT, 'dao_votes is append-only');
END;
-- end if
-- if postgres
CREATE FUNCTION dao_votes_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'dao_votes is append-only';
END
$$;
CREATE TRIGGER dao_votes_append_only BEFORE UPDATE OR DELETE ON dao_votes
    FOR EACH ROW EXECUTE FUNCTION dao_votes_append_only();
-- end if
