-- Migration: 003
-- Description: Each voter's current ballot beside the chain
-- Date: 2026-12-06
-- Author: DAARION Team
-- Rollback: See 003_keep_current_ballots.down.sql
-- What a count reads: each voter's last ballot (one row per voter, kept
-- in the vote's transaction), so a live tally reads as many rows as there
-- are voters, not every vote ever cast. The chain stays the record: a
-- recount from it must give the stored result.
CREATE TABLE dao_ballots (
    proposal TEXT NOT NULL,
    voter TEXT NOT NULL,
    ballot TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (proposal, voter)
);
INSERT INTO dao_ballots (proposal, voter, ballot, seq)
SELECT v.proposal, v.voter, v.ballot, v.seq FROM dao_votes v
WHERE v.seq = (SELECT MAX(w.seq) FROM dao_votes w WHERE w.proposal = v.proposal AND w.voter = v.voter);
