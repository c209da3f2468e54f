-- Migration: 003
-- Description: Tools of MCP servers
-- Date: 2026-12-04
-- Author: DAARION Team
-- Rollback: See 003_add_mcp_tools.down.sql
-- `executor` is now `webhook` or `mcp` (a tool of the MCP server at `url`,
-- reached over streamable HTTP); for `mcp`, `secret` is the bearer token
-- sent to the server (empty: none) and this is the tool's name there.
ALTER TABLE toolcore_tools ADD COLUMN remote_name TEXT;
