-- Migration: 002
-- Description: Drop the transactional outbox
-- Date: 2026-12-01
-- Author: DAARION Team
-- Rollback: This file is the rollback of 002_create_bus_outbox.sql
DROP TABLE bus_outbox;
