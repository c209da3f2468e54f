-- Migration: 003
-- Description: API keys lose their model limits
-- Date: 2026-11-23
-- Author: DAARION Team
-- Rollback: This file is the rollback of 003_add_api_key_limits.sql
ALTER TABLE auth_api_keys DROP COLUMN limits;
