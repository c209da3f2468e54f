-- Migration: 003
-- Description: Drop a microDAO's own roles
-- Date: 2026-12-04
-- Author: DAARION Team
-- Rollback: This file is the rollback of 003_create_microdao_roles.sql
ALTER TABLE microdao_members DROP COLUMN custom_role;
DROP TABLE microdao_roles;
