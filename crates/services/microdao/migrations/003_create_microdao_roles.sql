-- Migration: 003
-- Description: A microDAO's own roles, each granting permissions the policies know; a member holds at most one
-- Date: 2026-12-04
-- Author: DAARION Team
-- Rollback: See 003_create_microdao_roles.down.sql
CREATE TABLE microdao_roles (
    dao TEXT NOT NULL REFERENCES microdao_daos (slug),
    name TEXT NOT NULL,
    description TEXT NOT NULL,
    -- Space-separated, sorted permission names (`access::vocab::roles::DaoPermission`).
    permissions TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (dao, name)
);
ALTER TABLE microdao_members ADD COLUMN custom_role TEXT;
