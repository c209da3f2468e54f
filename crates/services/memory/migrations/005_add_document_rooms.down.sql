-- Migration: 005
-- Description: Drop documents' rooms
-- Date: 2026-12-06
-- Author: DAARION Team
-- Rollback: This file is the rollback of 005_add_document_rooms.sql
DROP INDEX memory_documents_by_room;
ALTER TABLE memory_documents DROP COLUMN room;
