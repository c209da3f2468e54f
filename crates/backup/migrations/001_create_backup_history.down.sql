-- Migration: 001
-- Description: Drop the backup history
-- Date: 2026-12-06
-- Author: DAARION Team
-- Rollback: This file is the rollback of 001_create_backup_history.sql
DROP TABLE backup_history;
