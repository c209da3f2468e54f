-- Migration: 001
-- Description: Drop the policy store and the audit log
-- Date: 2026-11-23
-- Author: DAARION Team
-- Rollback: This file is the rollback of 001_create_pdp_tables.sql
DROP TABLE pdp_audit;
DROP TABLE pdp_policy_versions;
