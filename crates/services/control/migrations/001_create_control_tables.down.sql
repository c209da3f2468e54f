-- Migration: 001
-- Description: Drop the control-plane documents
-- Date: 2026-11-23
-- Author: DAARION Team
-- Rollback: This file is the rollback of 001_create_control_tables.sql
DROP TABLE control_current;
DROP TABLE control_versions;
