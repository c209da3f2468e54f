-- Migration: 001
-- Description: Drop the messaging tables
-- Date: 2026-12-03
-- Author: DAARION Team
-- Rollback: Re-run 001_create_messaging_tables.sql
-- if sqlite
DROP TRIGGER messaging_search_update;
DROP TRIGGER messaging_search_insert;
DROP TABLE messaging_search;
-- end if
DROP TABLE messaging_topic_reads;
DROP TABLE messaging_reads;
DROP TABLE messaging_log;
DROP TABLE messaging_reactions;
DROP TABLE messaging_edits;
DROP TABLE messaging_messages;
DROP TABLE messaging_participants;
DROP TABLE messaging_rooms;
DROP TABLE messaging_daos;
