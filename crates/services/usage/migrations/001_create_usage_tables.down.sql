-- Migration: 001
-- Description: Drop usage records and the budget ledger
-- Date: 2026-11-23
-- Author: DAARION Team
-- Rollback: This file is the rollback of 001_create_usage_tables.sql
DROP TABLE usage_budget;
DROP TABLE usage_records;
