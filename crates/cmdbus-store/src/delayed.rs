//! Delayed commands: a `scheduled` row waits in PostgreSQL until its `run_at`; the api's sweep
//! takes the due ones a batch at a time and moves them to `new` (then publishes them like any
//! fresh command), and until then an operator may re-time one. A cancel is `commands::cancel`.

// The dynamic SQL below only splices this crate's own constants, never input.
use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, PgExecutor};
use std::time::Duration;
use uuid::Uuid;

use crate::{CHANGED, CommandRow, StoreError};

/// Moves up to `limit` `scheduled` rows whose `run_at` has come (by the database's clock),
/// earliest due first, to `new`, and returns them for the caller to publish. The rows are taken
/// `for update skip locked`, so api processes sweeping side by side never take the same row; the
/// update states the condition again, so a row cancelled or re-timed since the subquery chose it
/// stays as it is. Each row gets a publish lease of `publish_lease` (its `redeliver_at`): should
/// the caller die before the broker confirms, the outbox relay publishes it once that passed
/// (its `created_at` is long past the relay's wait). The chosen rows are a materialized CTE:
/// as an `in (subquery)` the planner may run the subquery again, and take more than `limit`.
pub async fn release_due<'c>(
    executor: impl PgExecutor<'c>,
    publish_lease: Duration,
    limit: i64,
) -> Result<Vec<CommandRow>, StoreError> {
    let mut rows: Vec<CommandRow> = sqlx::query_as(AssertSqlSafe(format!(
        "with due as materialized (
             select id from commands
              where status = 'scheduled' and run_at <= now()
              order by run_at
              limit $2
                for update skip locked
         )
         update commands c
            set status = 'new', redeliver_at = now() + make_interval(secs => $1), {CHANGED}
           from due
          where c.id = due.id and c.status = 'scheduled' and c.run_at <= now()
          returning c.*"
    )))
    .bind(publish_lease.as_secs_f64())
    .bind(limit)
    .fetch_all(executor)
    .await?;
    rows.sort_by_key(|row| row.id);
    Ok(rows)
}

/// Re-times a `scheduled` command of `tenant`: its new `run_at` (one already past makes it due
/// at the sweep's next pass). `None` when it is not `scheduled` any more (released, cancelled,
/// or never delayed) or not the tenant's.
pub async fn reschedule<'c>(
    executor: impl PgExecutor<'c>,
    tenant: &str,
    id: Uuid,
    run_at: DateTime<Utc>,
) -> Result<Option<CommandRow>, StoreError> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "update commands set run_at = $3, {CHANGED}
          where tenant = $1 and id = $2 and status = 'scheduled'
          returning *"
    )))
    .bind(tenant)
    .bind(id)
    .bind(run_at)
    .fetch_optional(executor)
    .await?)
}
