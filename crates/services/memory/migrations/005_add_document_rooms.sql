-- Migration: 005
-- Description: A document may belong to a room of its microDAO
-- Date: 2026-12-06
-- Author: DAARION Team
-- Rollback: See 005_add_document_rooms.down.sql
-- The room (messaging's id) a document was added for, when it was: a
-- search can keep to one room's documents. NULL: the microDAO's at large.
ALTER TABLE memory_documents ADD COLUMN room TEXT;
CREATE INDEX memory_documents_by_room ON memory_documents (dao, room);
