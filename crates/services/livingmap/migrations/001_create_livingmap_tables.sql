-- Migration: 001
-- Description: The living map's projection of the city and its deltas
-- Date: 2026-12-06
-- Author: DAARION Team
-- Rollback: See 001_create_livingmap_tables.down.sql
-- What the map shows now, kept from the city's events: nodes and edges,
-- each with who may see it (`public`, or the members of `dao`) and the
-- sequence number of its last change.
CREATE TABLE livingmap_nodes (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    label TEXT NOT NULL,
    dao TEXT,
    public BIGINT NOT NULL,
    district TEXT,
    status TEXT,
    -- Coordinates in thousandths of a map cell.
    x BIGINT NOT NULL,
    y BIGINT NOT NULL,
    seq BIGINT NOT NULL
);

CREATE TABLE livingmap_edges (
    src TEXT NOT NULL,
    dst TEXT NOT NULL,
    kind TEXT NOT NULL,
    dao TEXT,
    public BIGINT NOT NULL,
    weight BIGINT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (src, dst, kind)
);
CREATE INDEX livingmap_edges_dst ON livingmap_edges (dst);

-- Every change, in order: what a reconnecting client missed (the last
-- `living-map.retained_deltas` are kept).
CREATE TABLE livingmap_deltas (
    seq BIGINT PRIMARY KEY,
    dao TEXT,
    public BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- The last sequence number given (one row), taken by each change's
-- transaction.
CREATE TABLE livingmap_seq (
    id BIGINT PRIMARY KEY,
    seq BIGINT NOT NULL
);
INSERT INTO livingmap_seq (id, seq) VALUES (1, 0);

-- Events already applied: every replica hears the live ones (presence),
-- and one of them applies each.
CREATE TABLE livingmap_seen (
    event_id TEXT PRIMARY KEY,
    seen_at TEXT NOT NULL
);

-- Activity per minute (RFC 3339 minute prefix), per microDAO ('' for the
-- public city), for the counters.
CREATE TABLE livingmap_activity (
    minute TEXT NOT NULL,
    dao TEXT NOT NULL,
    public BIGINT NOT NULL,
    kind TEXT NOT NULL,
    count BIGINT NOT NULL,
    PRIMARY KEY (minute, dao, kind)
);

-- Open proposals per microDAO.
CREATE TABLE livingmap_proposals (
    id TEXT PRIMARY KEY,
    dao TEXT NOT NULL
);
