-- Migration: 001
-- Description: Create city public rooms and their messages
-- Date: 2026-11-23
-- Author: DAARION Team
-- Rollback: See 001_create_city_tables.down.sql
CREATE TABLE city_rooms (
    id TEXT PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE city_messages (
    id TEXT PRIMARY KEY,
    room_id TEXT NOT NULL REFERENCES city_rooms (id),
    author TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX city_messages_room ON city_messages (room_id, id);
