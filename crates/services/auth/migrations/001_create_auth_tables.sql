-- Migration: 001
-- Description: Create users, passkeys, ceremonies, sessions, API keys, agent identities and recovery codes
-- Date: 2026-11-23
-- Author: DAARION Team
-- Rollback: See 001_create_auth_tables.down.sql
CREATE TABLE auth_users (
    id TEXT PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    city_role TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE auth_passkeys (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES auth_users (id),
    name TEXT NOT NULL,
    passkey TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_used_at TEXT
);
CREATE INDEX auth_passkeys_user ON auth_passkeys (user_id);
CREATE TABLE auth_ceremonies (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    user_id TEXT,
    state TEXT NOT NULL,
    extra TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE auth_sessions (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES auth_users (id),
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    user_agent TEXT NOT NULL,
    revoked_at TEXT
);
CREATE INDEX auth_sessions_user ON auth_sessions (user_id);
CREATE TABLE auth_agents (
    id TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL REFERENCES auth_users (id),
    created_at TEXT NOT NULL
);
CREATE TABLE auth_api_keys (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL REFERENCES auth_users (id),
    agent_id TEXT REFERENCES auth_agents (id),
    name TEXT NOT NULL,
    scopes TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT,
    last_used_at TEXT,
    revoked_at TEXT
);
CREATE INDEX auth_api_keys_user ON auth_api_keys (user_id);
CREATE TABLE auth_recovery_codes (
    user_id TEXT NOT NULL REFERENCES auth_users (id),
    code_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    used_at TEXT,
    PRIMARY KEY (user_id, code_hash)
);
-- One row, inserted by the first registration: whoever inserts it is the city admin.
CREATE TABLE auth_bootstrap (
    id INTEGER PRIMARY KEY,
    user_id TEXT NOT NULL
);
