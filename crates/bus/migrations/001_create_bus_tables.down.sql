-- Migration: 001
-- Description: Drop the bus tables
-- Date: 2026-11-23
-- Author: DAARION Team
-- Rollback: This file is the rollback of 001_create_bus_tables.sql
DROP TABLE bus_dead_letters;
DROP TABLE bus_processed;
DROP TABLE bus_deliveries;
DROP TABLE bus_consumers;
DROP TABLE bus_events;
