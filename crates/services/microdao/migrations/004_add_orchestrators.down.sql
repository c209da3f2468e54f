-- Migration: 004
-- Description: Drop microDAOs' orchestrators
-- Date: 2026-12-04
-- Author: DAARION Team
-- Rollback: This file is the rollback of 004_add_orchestrators.sql
ALTER TABLE microdao_daos DROP COLUMN orchestrator;
