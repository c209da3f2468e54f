-- Migration: 005
-- Description: The city's kept secrets go (sign-in makes a new one on first use)
-- Date: 2026-12-02
-- Author: DAARION Team
-- Rollback: This file is the rollback of 005_create_auth_secrets.sql
DROP TABLE auth_secrets;
