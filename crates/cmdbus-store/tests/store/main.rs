//! The store's contracts, each statement tested directly against PostgreSQL without a broker
//! (River's `riverdrivertest` shape): every guarantee cmdbus gives is decided by one of these
//! statements, so each is pinned here by the rows it leaves. Each test gets a database of its own
//! (`#[sqlx::test]`), migrated by the binary's own `MIGRATOR`.
//!
//! Layout: `common` is the harness (commands to submit, the statements called as the api and the
//! worker call them, the writes that stand in for a clock); one module per contract: `submit`
//! (recording and idempotency), `claim`, `fence`, `ordering`, `finish`, `retry`, `reap`,
//! `cancel`, `replay`, `discard` (parked failures dropped for good), `cursor`, `delayed` (scheduled commands:
//! the sweep's release, re-timing), `dates` (runs
//! dated by the clock, after any wait), `sweeps` (relay and redelivery), `turns` (keyed commands
//! held for their turn and handed on), `retention`, `listing` (pages and the type catalogue),
//! `search` (the console's filters and counts per status), `rollup` (the run statistics the
//! finishes append), `keys` (API keys, the token secret, quotas, the PgBouncer handle),
//! `workers` (heartbeat rows, the release of a silent worker's runs) and `operate` (bulk cancel,
//! paused types, the audit trail), `schedules` (the schedule sweep's take and advance,
//! declared schedules' upsert).

mod common;

mod cancel;
mod claim;
mod cursor;
mod dates;
mod delayed;
mod discard;
mod fence;
mod finish;
mod keys;
mod listing;
mod operate;
mod ordering;
mod plans;
mod reap;
mod replay;
mod retention;
mod retry;
mod rollup;
mod schedules;
mod search;
mod submit;
mod sweeps;
mod turns;
mod workers;
