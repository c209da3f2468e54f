-- Migration: 002
-- Description: Drop invitations
-- Date: 2026-11-23
-- Author: DAARION Team
-- Rollback: This file is the rollback of 002_create_auth_invites.sql
DROP TABLE auth_invites;
