-- Migration: 001
-- Description: Drop filter rule sets and their log
-- Date: 2026-12-04
-- Author: DAARION Team
-- Rollback: This file is the rollback of 001_create_filter_tables.sql
DROP TABLE filter_events;
DROP TABLE filter_rules;
