-- Migration: 003
-- Description: Drop tools of MCP servers
-- Date: 2026-12-04
-- Author: DAARION Team
-- Rollback: This file is the rollback of 003_add_mcp_tools.sql
DELETE FROM toolcore_tools WHERE executor = 'mcp';
ALTER TABLE toolcore_tools DROP COLUMN remote_name;
