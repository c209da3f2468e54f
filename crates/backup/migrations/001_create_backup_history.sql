-- Migration: 001
-- Description: Create the history of the backups made of this database, so that every process can report the newest one's age
-- Date: 2026-12-06
-- Author: DAARION Team
-- Rollback: See 001_create_backup_history.down.sql
CREATE TABLE backup_history (
    file TEXT PRIMARY KEY,
    format TEXT NOT NULL,
    created_at TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE INDEX backup_history_created ON backup_history (created_at);
