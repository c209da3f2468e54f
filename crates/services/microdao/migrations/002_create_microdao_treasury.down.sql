-- Migration: 002
-- Description: Drop the microDAO treasury
-- Date: 2026-12-02
-- Author: DAARION Team
-- Rollback: This file is the rollback of 002_create_microdao_treasury.sql
DROP TABLE microdao_entries;
DROP TABLE microdao_balances;
