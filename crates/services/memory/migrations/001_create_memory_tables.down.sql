-- Migration: 001
-- Description: Drop memory documents, chunks and the full-text index
-- Date: 2026-12-06
-- Author: DAARION Team
-- Rollback: This file is the rollback of 001_create_memory_tables.sql
-- if sqlite
DROP TRIGGER memory_search_delete;
DROP TRIGGER memory_search_insert;
DROP TABLE memory_search;
-- end if
DROP TABLE memory_generations;
DROP TABLE memory_chunks;
DROP TABLE memory_documents;
