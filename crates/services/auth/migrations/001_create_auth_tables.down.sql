-- Migration: 001
-- Description: Drop the auth tables
-- Date: 2026-11-23
-- Author: DAARION Team
-- Rollback: This file is the rollback of 001_create_auth_tables.sql
DROP TABLE auth_bootstrap;
DROP TABLE auth_recovery_codes;
DROP TABLE auth_api_keys;
DROP TABLE auth_agents;
DROP TABLE auth_sessions;
DROP TABLE auth_ceremonies;
DROP TABLE auth_passkeys;
DROP TABLE auth_users;
