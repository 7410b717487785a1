//! The PostgreSQL store: the single source of truth of every command. Each state change is one
//! conditional `UPDATE ... WHERE status = ... RETURNING`, never read-then-write, and the hot-path
//! functions take many rows at once so callers can batch.
//!
//! Layout. `rules.rs` names the rules the product promises (the version bump `CHANGED`, the
//! ordering predicate `IN_TURN`, the attempt budget `ATTEMPTS_LEFT`, the lock order and the
//! by-id status test `STATUS_BY_ID` that keeps a batch off the backlog's partial indexes) and
//! imports nothing; the statement modules splice them in. `row.rs` is the stored row, typed
//! (`Status`, `Lane`), and what it converts into: the view, the event, the message's routing.
//! The api's statements: `commands.rs` (insert, read, `queue`, cancel), `listing.rs` (lists,
//! searches and bounded counts), `rollup.rs` (the counters and the run rollup the console
//! reads, and their fold), `replay.rs`, `delayed.rs` (the release of due `scheduled` commands,
//! and their re-timing),
//! `sweeps.rs` (relay, redelivery, reaper, retention), `keys.rs` (API keys, token secret),
//! `types.rs` (the type catalogue), `pause.rs` (paused types, which workers read with their
//! heartbeat), `bulk.rs` (bulk cancel), `discard.rs` (parked failures dropped for good, one or
//! in bulk), `audit.rs` (the operators' audit trail), `schedules.rs` (recurring commands: their
//! routes' statements and the schedule sweep's take-and-advance). The worker's: `claim.rs` (the claim and why it refused)
//! and `lifecycle.rs` (heartbeat, progress, hold, finish). `turns.rs` holds keyed commands that
//! are not their key's turn in PostgreSQL and hands each on when it is (worker, api and sweep). The notifier's: `changes.rs`
//! (changes by snapshot, the resume cursor); `pages.rs` reads them a page at a time for the
//! api's change feed, each page with a cursor that covers exactly it. `workers.rs` holds the workers' heartbeat rows,
//! the release of a silent worker's runs, and the attempt history. Beneath them `db.rs` (the
//! pool, PgBouncer-safe) and `group.rs` (group commit, which the api and the worker batch their
//! statements with).
//! Every statement takes an executor, so the caller owns the transaction (but `turns.rs`, whose
//! statements must follow a key lock in a transaction of their own).

mod audit;
mod bulk;
mod changes;
mod claim;
mod commands;
mod db;
mod delayed;
mod discard;
mod group;
mod keys;
mod lifecycle;
mod listing;
mod pages;
mod pause;
mod replay;
mod rollup;
mod row;
mod rules;
mod schedules;
mod sweeps;
mod turns;
mod types;
mod workers;

use sqlx::{
    AssertSqlSafe, Connection, PgConnection, PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use std::{str::FromStr, time::Duration};

pub use audit::{AuditEntry, AuditRow, list_audit, record_audit};
pub use bulk::{CancelFilter, cancel_page, count_cancellable, database_time};
pub use changes::{
    ChangedIds, Changes, Cursor, InvalidCursor, Scope, changed_ids_after, changes_after,
};
pub use claim::{Claim, Claimed, Claims, Refusal, claim};
pub use commands::{
    NewCommand, Submitted, cancel, get, get_many, insert, lookup, lookup_many, mark_queued,
};
pub use db::Db;
pub use delayed::{release_due, reschedule};
pub use discard::{DiscardFilter, count_discardable, discard, discard_page};
pub use group::GroupCommit;
pub use keys::{
    COUNT_UNFINISHED_OF, COUNT_UNFINISHED_OF_SUBJECT, KeyRecord, NewKey, count_configured_keys,
    count_unfinished_of, count_unfinished_of_subject, create_key, find_key, key_by_id, list_keys,
    revoke_development_keys, revoke_key, token_secret,
};
pub use lifecycle::{Finish, Outcome, Run, finish, heartbeat, hold_claim, progress};
pub use listing::{COUNT_WINDOW, Counted, LIST_WINDOW, ListFilter, Listed, count_matching, list};
pub use pages::{ChangedPage, changed_page};
pub use pause::{Paused, pause_type, paused_types, resume_type};
pub use replay::{FailedFilter, count_failed, failed_ids_after, replay, replay_failed};
pub use rollup::{StatsRow, counts_by_status, fold, stats};
pub use row::CommandRow;
pub use schedules::{
    DueSchedule, NewSchedule, ScheduleChange, ScheduleRow, advance_schedule, create_schedule,
    declare_schedule, delete_schedule, get_schedule, list_schedules, pause_schedule,
    resume_schedule, take_due_schedules,
};
pub use sweeps::{
    count_unfinished, purge_finished, reap_expired, redelivered, take_redeliveries,
    take_unpublished,
};
pub use turns::{hand_on, hold, hold_new, take_turns};
pub use types::{list_types, register_types};
pub use workers::{
    AttemptRow, WorkerBeat, WorkerRow, attempts_of, forget_workers, list_workers,
    release_silent_workers, worker_gone, worker_seen,
};

pub(crate) use rules::CHANGED;

/// `text` with every NUL character replaced by U+FFFD: PostgreSQL text and JSON cannot hold NUL,
/// and an error message or progress note must never make its write fail.
pub fn without_nul(text: &str) -> String {
    text.replace('\0', "\u{fffd}")
}

/// Where a JSON value holds a NUL character (in a string or a key), which PostgreSQL cannot
/// store; `None` when it holds none.
pub fn find_nul(value: &serde_json::Value) -> Option<String> {
    fn walk(value: &serde_json::Value, path: &mut String) -> bool {
        match value {
            serde_json::Value::String(text) => text.contains('\0'),
            serde_json::Value::Array(items) => items.iter().enumerate().any(|(index, item)| {
                let len = path.len();
                path.push_str(&format!("[{index}]"));
                let found = walk(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            serde_json::Value::Object(map) => map.iter().any(|(key, item)| {
                let len = path.len();
                path.push('.');
                path.push_str(&key.replace('\0', "\\u0000"));
                let found = key.contains('\0') || walk(item, path);
                if !found {
                    path.truncate(len);
                }
                found
            }),
            _ => false,
        }
    }
    let mut path = String::new();
    walk(value, &mut path).then(|| {
        if path.is_empty() {
            ".".to_owned()
        } else {
            path
        }
    })
}

/// The migrations in `migrations/`, shared by the binary and the tests.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database answered with an error or could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// A migration failed to apply.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value did not decode (a bug or a hand-edited row).
    #[error("corrupt row for command {id}: {reason}")]
    Corrupt {
        /// The command whose row is corrupt.
        id: uuid::Uuid,
        /// What did not decode.
        reason: String,
    },
    /// The schema lacks migrations, and this process may not apply them (it reaches PostgreSQL
    /// through PgBouncer in transaction mode, where their session-level lock does not hold).
    #[error(
        "the database lacks {missing} of {known} migrations: run `cmdbus migrate` against \
         PostgreSQL directly, not through PgBouncer"
    )]
    NotMigrated {
        /// Migrations not applied.
        missing: usize,
        /// Migrations this build knows.
        known: usize,
    },
    /// A value was stored in a form that cannot be read back; nothing was written.
    #[error("command {id} cannot be read back: {reason}")]
    Unreadable {
        /// The command that was not recorded.
        id: uuid::Uuid,
        /// What did not read back.
        reason: String,
    },
}

impl StoreError {
    /// The database refused the values themselves (a data exception, an integrity violation,
    /// a program limit such as a value too large): writing them again cannot succeed, unlike
    /// a lost connection or a restarting server.
    pub fn is_permanent(&self) -> bool {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => db.code().is_some_and(|code| {
                ["22", "23", "54"]
                    .iter()
                    .any(|class| code.starts_with(class))
            }),
            StoreError::Database(sqlx::Error::ColumnDecode { .. } | sqlx::Error::Encode(_)) => true,
            StoreError::Corrupt { .. } | StoreError::Unreadable { .. } => true,
            _ => false,
        }
    }

    /// The name of the constraint a statement violated, if that is what happened.
    pub fn constraint(&self) -> Option<&str> {
        match self {
            StoreError::Database(sqlx::Error::Database(db)) => db.constraint(),
            _ => None,
        }
    }
}

/// Pool settings.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// `postgres://...` URL.
    pub url: String,
    /// Connections at most.
    pub max_connections: u32,
}

/// How a process reaches PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Route {
    /// Directly, or through a pooler that keeps each client on one server connection (or tracks
    /// prepared statements): the database is created if missing and migrated at start.
    #[default]
    Direct,
    /// Through PgBouncer in transaction mode without prepared-statement tracking: the statement
    /// cache is off and every statement runs in a transaction (see [`Db`]); nothing is created or
    /// migrated — migrations hold a session-level advisory lock, which a pooler that changes the
    /// server between transactions breaks — so the schema must be current already.
    PgBouncer,
}

/// Connects along `route`: directly, creating and migrating the database like
/// [`connect_and_migrate`]; through PgBouncer, checking that every migration is applied.
pub async fn connect(config: &PoolConfig, route: Route) -> Result<Db, StoreError> {
    match route {
        Route::Direct => {
            // The budget is shared: half for the group-committed statements (see
            // `Db::for_batches`), half for the rest, one each at least.
            let batches = (config.max_connections / 2).max(1);
            let rest = PoolConfig {
                url: config.url.clone(),
                max_connections: config.max_connections.saturating_sub(batches).max(1),
            };
            let pool = connect_and_migrate(&rest).await?;
            let options = for_batches(PgConnectOptions::from_str(&config.url)?);
            let batches = pool_options(batches).connect_with(options).await?;
            Ok(Db::direct_with_batches(pool, batches))
        }
        Route::PgBouncer => {
            let options = PgConnectOptions::from_str(&config.url)?
                // A cached statement would be looked up again on another server.
                .statement_cache_capacity(0)
                // A startup parameter PgBouncer refuses unless told to ignore it; PostgreSQL 12+
                // prints floats exactly without it.
                .extra_float_digits(None);
            let pool = pool_options(config.max_connections)
                .connect_with(options)
                .await?;
            let db = Db::through_pgbouncer(pool);
            check_migrated(&db).await?;
            Ok(db)
        }
    }
}

/// Every pool's settings: `max_connections`, and a caller waits at most 5 s for one (then the
/// request answers `503`).
fn pool_options(max_connections: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
}

/// The connections of the group-committed statements (see [`Db::for_batches`]): one generic
/// plan per statement. A generic plan is made once, maybe on an empty table or on statistics
/// taken before a backlog grew (autovacuum late or off), and kept. Made there, a plan that
/// scans the table (sequentially, or a whole index for a merge or hash join) looks as cheap as
/// one that looks its rows up, and stays when the table grows; without those, the only plans
/// left for these statements look each row up by key, which is right at any size, since a
/// batch holds at most a few hundred rows.
pub fn for_batches(options: PgConnectOptions) -> PgConnectOptions {
    options.options([
        ("plan_cache_mode", "force_generic_plan"),
        ("enable_seqscan", "off"),
        ("enable_mergejoin", "off"),
        ("enable_hashjoin", "off"),
    ])
}

/// Fails with [`StoreError::NotMigrated`] unless every migration of this build is applied.
async fn check_migrated(db: &Db) -> Result<(), StoreError> {
    let applied: Vec<i64> =
        match sqlx::query_scalar("select version from _sqlx_migrations where success")
            .fetch_all(db)
            .await
        {
            Ok(applied) => applied,
            // No migrations table: nothing applied yet.
            Err(sqlx::Error::Database(error)) if error.code().as_deref() == Some("42P01") => {
                Vec::new()
            }
            Err(error) => return Err(error.into()),
        };
    let known = MIGRATOR.iter().count();
    let missing = MIGRATOR
        .iter()
        .filter(|migration| !applied.contains(&migration.version))
        .count();
    if missing > 0 {
        return Err(StoreError::NotMigrated { missing, known });
    }
    Ok(())
}

/// Connects to the database named in `url`, creating it first if it does not exist, and applies
/// every pending migration.
pub async fn connect_and_migrate(config: &PoolConfig) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(&config.url)?;
    create_database_if_missing(&options).await?;
    let pool = pool_options(config.max_connections)
        .connect_with(options)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// `CREATE DATABASE` through the `postgres` maintenance database when the target is missing.
async fn create_database_if_missing(options: &PgConnectOptions) -> Result<(), StoreError> {
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let mut admin = PgConnection::connect_with(&options.clone().database("postgres")).await?;
    let exists: bool =
        sqlx::query_scalar("select exists (select 1 from pg_database where datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        // The name is quoted as an identifier.
        let statement = format!("create database \"{}\"", name.replace('"', "\"\""));
        match sqlx::query(AssertSqlSafe(statement))
            .execute(&mut admin)
            .await
        {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another process created it between our check and our create: fine. (A create
            // racing another one's may also fail on the catalogue's unique index.)
            Err(sqlx::Error::Database(db))
                if matches!(db.code().as_deref(), Some("42P04" | "23505")) => {}
            Err(error) => return Err(error.into()),
        }
    }
    admin.close().await?;
    Ok(())
}

/// Drops a database (tests use one each); terminates its connections first.
pub async fn drop_database(options: &PgConnectOptions) -> Result<(), StoreError> {
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Ok(());
    };
    let mut admin = PgConnection::connect_with(&options.clone().database("postgres")).await?;
    let statement = format!(
        "drop database if exists \"{}\" with (force)",
        name.replace('"', "\"\"")
    );
    sqlx::query(AssertSqlSafe(statement))
        .execute(&mut admin)
        .await?;
    admin.close().await?;
    Ok(())
}
