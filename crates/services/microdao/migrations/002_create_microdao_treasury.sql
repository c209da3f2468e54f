-- Migration: 002
-- Description: Create the microDAO treasury: a double-entry ledger of points
-- Date: 2026-12-02
-- Author: DAARION Team
-- Rollback: See 002_create_microdao_treasury.down.sql
CREATE TABLE microdao_balances (
    dao TEXT NOT NULL REFERENCES microdao_daos (slug),
    account TEXT NOT NULL,
    balance BIGINT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (dao, account)
);
CREATE TABLE microdao_entries (
    id TEXT PRIMARY KEY,
    dao TEXT NOT NULL REFERENCES microdao_daos (slug),
    movement TEXT NOT NULL,
    account TEXT NOT NULL,
    amount BIGINT NOT NULL,
    balance_after BIGINT NOT NULL,
    kind TEXT NOT NULL,
    memo TEXT NOT NULL,
    actor TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX microdao_entries_dao ON microdao_entries (dao, id);
CREATE INDEX microdao_entries_account ON microdao_entries (dao, account, id);
