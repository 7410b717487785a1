//! The store's contracts, each statement tested directly against PostgreSQL without a broker
//! (River's `riverdrivertest` shape): every guarantee cmdbus gives is decided by one of these
//! statements, so each is pinned here by the rows it leaves. Each test gets a database of its own
//! (`#[sqlx::test]`), migrated by the binary's own `MIGRATOR`.
//!
//! Layout: `common` is the harness (commands to submit, the statements called as the api and the
//! worker call them, the writes that stand in for a clock); one module per contract: `submit`
//! (recording and idempotency), `claim`, `fence`, `ordering`, `finish`, `retry`, `reap`,
//! `cancel`, `replay`, `cursor`, `sweeps` (relay and redelivery), `retention`, `listing`
//! (pages and the type catalogue) and `keys` (API keys, the token secret, quotas, the PgBouncer
//! handle).

mod common;

mod cancel;
mod claim;
mod cursor;
mod fence;
mod finish;
mod keys;
mod listing;
mod ordering;
mod reap;
mod replay;
mod retention;
mod retry;
mod submit;
mod sweeps;
