-- Migration: 002
-- Description: Drop the stored search vectors, back to the expression index
-- Date: 2026-12-06
-- Author: DAARION Team
-- Rollback: This file is the rollback of 002_store_search_vectors.sql
-- if postgres
CREATE INDEX memory_chunks_search ON memory_chunks
    USING GIN (to_tsvector('simple', heading || ' ' || text));
DROP INDEX memory_chunks_search_stored;
ALTER TABLE memory_chunks DROP COLUMN search;
-- end if
