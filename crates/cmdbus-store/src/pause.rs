//! Paused types: an operator's pause, shared by every worker process through PostgreSQL (each
//! reads `paused_types` with its heartbeat), so that it survives restarts of api and workers.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::StoreError;

/// Pauses a registered type; `None` when no such type is registered. Pausing a paused type
/// keeps its first pause (`changed` false).
pub async fn pause_type<'c>(
    executor: impl PgExecutor<'c>,
    name: &str,
    by: &str,
) -> Result<Option<Paused>, StoreError> {
    // One statement: the insert happens only for a registered type, and says whether it did.
    Ok(sqlx::query_as(
        "with kind as (select name from command_types where name = $1),
              added as (insert into paused_types (name, paused_by)
                        select name, $2 from kind
                        on conflict (name) do nothing
                        returning paused_at)
         select (select count(*) from added) > 0 as changed,
                coalesce((select paused_at from added),
                         (select paused_at from paused_types where name = $1)) as paused_at
           from kind",
    )
    .bind(name)
    .bind(by)
    .fetch_optional(executor)
    .await?)
}

/// What a pause did.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Paused {
    /// The type was not paused before.
    pub changed: bool,
    /// Since when it is paused.
    pub paused_at: Option<DateTime<Utc>>,
}

/// Resumes a type; `None` when no such type is registered, otherwise whether it was paused.
pub async fn resume_type<'c>(
    executor: impl PgExecutor<'c>,
    name: &str,
) -> Result<Option<bool>, StoreError> {
    Ok(sqlx::query_scalar(
        "with removed as (delete from paused_types where name = $1 returning name)
         select (select count(*) from removed) > 0 from command_types where name = $1",
    )
    .bind(name)
    .fetch_optional(executor)
    .await?)
}

/// The paused types, by name: what every worker reads with its heartbeat.
pub async fn paused_types<'c>(executor: impl PgExecutor<'c>) -> Result<Vec<String>, StoreError> {
    Ok(
        sqlx::query_scalar("select name from paused_types order by name")
            .fetch_all(executor)
            .await?,
    )
}
