-- Migration: 001
-- Description: Drop city rooms and messages
-- Date: 2026-11-23
-- Author: DAARION Team
-- Rollback: This file is the rollback of 001_create_city_tables.sql
DROP TABLE city_messages;
DROP TABLE city_rooms;
