-- Migration: 001
-- Description: Create microDAOs, their members, bans and invitations
-- Date: 2026-12-02
-- Author: DAARION Team
-- Rollback: See 001_create_microdao_tables.down.sql
CREATE TABLE microdao_daos (
    slug TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    avatar_url TEXT,
    visibility TEXT NOT NULL,
    district TEXT,
    parent TEXT REFERENCES microdao_daos (slug),
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    archived_at TEXT
);
CREATE INDEX microdao_daos_parent ON microdao_daos (parent);
CREATE TABLE microdao_members (
    dao TEXT NOT NULL REFERENCES microdao_daos (slug),
    principal TEXT NOT NULL,
    handle TEXT NOT NULL,
    role TEXT NOT NULL,
    joined_at TEXT NOT NULL,
    PRIMARY KEY (dao, principal)
);
CREATE INDEX microdao_members_principal ON microdao_members (principal);
CREATE TABLE microdao_bans (
    dao TEXT NOT NULL REFERENCES microdao_daos (slug),
    principal TEXT NOT NULL,
    banned_by TEXT NOT NULL,
    banned_at TEXT NOT NULL,
    PRIMARY KEY (dao, principal)
);
CREATE TABLE microdao_invites (
    id TEXT PRIMARY KEY,
    dao TEXT NOT NULL REFERENCES microdao_daos (slug),
    code_hash TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL,
    max_uses BIGINT NOT NULL,
    uses BIGINT NOT NULL,
    expires_at TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX microdao_invites_dao ON microdao_invites (dao, id);
