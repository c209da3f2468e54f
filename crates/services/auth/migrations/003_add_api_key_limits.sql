-- Migration: 003
-- Description: API keys carry model limits (allowed model aliases, requests and tokens per minute)
-- Date: 2026-11-23
-- Author: DAARION Team
-- Rollback: See 003_add_api_key_limits.down.sql
ALTER TABLE auth_api_keys ADD COLUMN limits TEXT NOT NULL DEFAULT '{}';
