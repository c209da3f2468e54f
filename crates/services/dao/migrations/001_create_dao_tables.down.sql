-- Migration: 001
-- Description: Drop DAO governance tables
-- Date: 2026-12-06
-- Author: DAARION Team
-- Rollback: This file is the rollback of 001_create_dao_tables.sql
DROP TABLE dao_settings;
DROP TABLE dao_delegations;
DROP TABLE dao_votes;
DROP TABLE dao_electorate;
DROP TABLE dao_proposals;
