-- Migration: 002
-- Description: Drop the per-call budget reservations
-- Date: 2026-11-23
-- Author: DAARION Team
-- Rollback: This file is the rollback of 002_create_usage_reservations.sql
DROP TABLE usage_reservations;
