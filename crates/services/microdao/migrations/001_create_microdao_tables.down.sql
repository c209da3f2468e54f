-- Migration: 001
-- Description: Drop microDAOs, their members, bans and invitations
-- Date: 2026-12-02
-- Author: DAARION Team
-- Rollback: This file is the rollback of 001_create_microdao_tables.sql
DROP TABLE microdao_invites;
DROP TABLE microdao_bans;
DROP TABLE microdao_members;
DROP TABLE microdao_daos;
