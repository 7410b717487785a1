//! The PostgreSQL store: the single source of truth of every command. Each state change is one
//! conditional `UPDATE ... WHERE status = ... RETURNING`, never read-then-write, and the hot-path
//! functions take many rows at once so callers can batch.

mod commands;
mod lifecycle;
mod row;
mod types;

use sqlx::{
    AssertSqlSafe, Connection, PgConnection, PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
};
use std::{str::FromStr, time::Duration};

pub use commands::{
    ListFilter, NewCommand, Submitted, cancel, changed_since, count_by_status, current_version,
    get, insert, list, lookup, mark_queued, replay, replay_matching,
};
pub use lifecycle::{
    Claim, Finish, Outcome, claim, finish, heartbeat, progress, reap_expired, relay_candidates,
};
pub use row::CommandRow;
pub use types::{list_types, register_types};

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
}

impl StoreError {
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

/// Connects to the database named in `url`, creating it first if it does not exist, and applies
/// every pending migration.
pub async fn connect_and_migrate(config: &PoolConfig) -> Result<PgPool, StoreError> {
    let options = PgConnectOptions::from_str(&config.url)?;
    create_database_if_missing(&options).await?;
    let pool = PgPoolOptions::new()
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_secs(5))
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
            // Another process created it between our check and our create: fine.
            Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P04") => {}
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
