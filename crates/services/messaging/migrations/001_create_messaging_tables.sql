-- Migration: 001
-- Description: Rooms of every kind, their messages, edits, reactions, change log, read markers and search
-- Date: 2026-12-03
-- Author: DAARION Team
-- Rollback: See 001_create_messaging_tables.down.sql

-- The microDAOs messaging knows of, from the microDAO service's events.
CREATE TABLE messaging_daos (
    slug TEXT PRIMARY KEY,
    public BIGINT NOT NULL,
    archived BIGINT NOT NULL,
    updated_at TEXT NOT NULL
);

-- kind: public (city rooms), dao, direct, group. `room_key` makes the
-- natural names unique: `public:<slug>`, `dao:<dao>:<slug>`,
-- `direct:<a>|<b>` (sorted); groups have none.
CREATE TABLE messaging_rooms (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    room_key TEXT UNIQUE,
    dao TEXT,
    slug TEXT,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    audience TEXT,
    posters TEXT,
    agents_allowed BIGINT NOT NULL,
    slow_mode_secs BIGINT NOT NULL,
    last_seq BIGINT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX messaging_rooms_dao ON messaging_rooms (dao, slug);

-- Who is in a direct or group conversation.
CREATE TABLE messaging_participants (
    room_id TEXT NOT NULL REFERENCES messaging_rooms (id),
    principal TEXT NOT NULL,
    owner BIGINT NOT NULL,
    joined_at TEXT NOT NULL,
    PRIMARY KEY (room_id, principal)
);
CREATE INDEX messaging_participants_principal ON messaging_participants (principal);

-- `seq` is the message's place in its room (1, 2, 3... per room).
CREATE TABLE messaging_messages (
    id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL REFERENCES messaging_rooms (id),
    seq BIGINT NOT NULL,
    topic TEXT NOT NULL,
    reply_to TEXT,
    author TEXT NOT NULL,
    author_handle TEXT NOT NULL,
    body TEXT NOT NULL,
    html TEXT NOT NULL,
    mentions TEXT NOT NULL,
    attachments TEXT NOT NULL,
    created_at TEXT NOT NULL,
    edited_at TEXT,
    deleted_at TEXT,
    UNIQUE (room_id, seq)
);
CREATE INDEX messaging_messages_topic ON messaging_messages (room_id, topic, seq);

-- Earlier bodies of edited messages.
CREATE TABLE messaging_edits (
    message_id TEXT NOT NULL REFERENCES messaging_messages (id),
    version BIGINT NOT NULL,
    body TEXT NOT NULL,
    edited_by TEXT NOT NULL,
    replaced_at TEXT NOT NULL,
    PRIMARY KEY (message_id, version)
);

CREATE TABLE messaging_reactions (
    message_id TEXT NOT NULL REFERENCES messaging_messages (id),
    principal TEXT NOT NULL,
    emoji TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (message_id, principal, emoji)
);

-- Every change to a room in order (posted, edited, deleted, reacted): what
-- a reconnecting client replays after the last sequence number it saw.
CREATE TABLE messaging_log (
    room_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    message_id TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (room_id, seq)
);

-- Read markers: the whole room up to `seq`, or one topic up to `seq`.
CREATE TABLE messaging_reads (
    room_id TEXT NOT NULL,
    principal TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (room_id, principal)
);
CREATE TABLE messaging_topic_reads (
    room_id TEXT NOT NULL,
    principal TEXT NOT NULL,
    topic TEXT NOT NULL,
    seq BIGINT NOT NULL,
    PRIMARY KEY (room_id, principal, topic)
);

-- Full-text search: FTS5 embedded, a GIN index on PostgreSQL.
-- if sqlite
CREATE VIRTUAL TABLE messaging_search USING fts5 (
    body, content = 'messaging_messages', content_rowid = 'rowid', tokenize = 'unicode61 remove_diacritics 2'
);
CREATE TRIGGER messaging_search_insert AFTER INSERT ON messaging_messages BEGIN
    INSERT INTO messaging_search (rowid, body) VALUES (new.rowid, new.body);
END;
CREATE TRIGGER messaging_search_update AFTER UPDATE OF body ON messaging_messages BEGIN
    INSERT INTO messaging_search (messaging_search, rowid, body) VALUES ('delete', old.rowid, old.body);
    INSERT INTO messaging_search (rowid, body) VALUES (new.rowid, new.body);
END;
-- end if
-- if postgres
CREATE INDEX messaging_messages_search ON messaging_messages USING GIN (to_tsvector('simple', body));
-- end if
