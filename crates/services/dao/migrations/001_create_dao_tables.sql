-- Migration: 001
-- Description: DAO governance: proposals, electorates, chained votes, delegations
-- Date: 2026-12-06
-- Author: DAARION Team
-- Rollback: See 001_create_dao_tables.down.sql
-- A microDAO's proposals. Rules and the action are JSON written by the
-- service (`domain`); `definition` is the proposal as it opened (with its
-- electorate), whose hash `genesis` starts the chain of votes, and `head`
-- is the chain's last hash.
CREATE TABLE dao_proposals (
    id TEXT PRIMARY KEY,
    dao TEXT NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    author TEXT NOT NULL,
    kind TEXT NOT NULL,
    action TEXT,
    method TEXT NOT NULL,
    options TEXT NOT NULL,
    quorum TEXT NOT NULL,
    threshold TEXT NOT NULL,
    power TEXT NOT NULL,
    vote_change BIGINT NOT NULL,
    hidden BIGINT NOT NULL,
    voting_secs BIGINT NOT NULL,
    status TEXT NOT NULL,
    votes BIGINT NOT NULL DEFAULT 0,
    definition TEXT,
    genesis TEXT,
    head TEXT,
    result TEXT,
    -- A passed action: pending, failed or done; tries so far, the last
    -- failure, and who holds the execution until when (a crashed executor's
    -- hold lapses, and the next one finds what the owning service did).
    execution TEXT,
    execution_attempts BIGINT NOT NULL DEFAULT 0,
    execution_error TEXT,
    execution_lease TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    opened_at TEXT,
    snapshot_at TEXT,
    closes_at TEXT,
    closed_at TEXT,
    executed_at TEXT
);
CREATE INDEX dao_proposals_by_dao ON dao_proposals (dao, created_at, id);
CREATE INDEX dao_proposals_due ON dao_proposals (status, closes_at);

-- Who may vote on a proposal and with what power, fixed when it opened.
CREATE TABLE dao_electorate (
    proposal TEXT NOT NULL,
    principal TEXT NOT NULL,
    power BIGINT NOT NULL,
    delegate TEXT,
    PRIMARY KEY (proposal, principal)
);

-- Votes, append-only: each the next link of its proposal's chain. A
-- changed vote is a new link; the voter's last one counts.
CREATE TABLE dao_votes (
    proposal TEXT NOT NULL,
    seq BIGINT NOT NULL,
    voter TEXT NOT NULL,
    ballot TEXT NOT NULL,
    cast_at TEXT NOT NULL,
    prev TEXT NOT NULL,
    hash TEXT NOT NULL,
    PRIMARY KEY (proposal, seq)
);
CREATE INDEX dao_votes_by_voter ON dao_votes (proposal, voter, seq);

-- Voting power lent to another member, per microDAO (never in a cycle).
CREATE TABLE dao_delegations (
    dao TEXT NOT NULL,
    delegator TEXT NOT NULL,
    delegate TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (dao, delegator)
);
CREATE INDEX dao_delegations_to ON dao_delegations (dao, delegate);

-- A microDAO's governance settings (defaults where there is no row).
CREATE TABLE dao_settings (
    dao TEXT PRIMARY KEY,
    -- 1 when its agents vote on its proposals.
    agents_vote BIGINT NOT NULL DEFAULT 0,
    updated_by TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
