-- Migration: 001
-- Description: Drop the idempotency key table
-- Date: 2026-11-23
-- Author: DAARION Team
-- Rollback: This file is the rollback of 001_create_idempotency_keys.sql
DROP TABLE idempotency_keys;
