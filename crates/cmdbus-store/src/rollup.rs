//! What the console's overview reads without touching `commands`: the counts per tenant, type
//! and status, and the runs per minute, type and outcome with their durations. Statement
//! triggers (migration 0018) append one row per key a statement changed, so no writer waits for
//! another; `fold` compacts each key's rows into one, and the reads sum whatever is there, so a
//! count is exact whether or not it was folded.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;

use crate::StoreError;

/// A tenant's commands per status, exactly, from the counters (`type` only, or all types).
pub async fn counts_by_status<'c>(
    executor: impl PgExecutor<'c>,
    tenant: &str,
    kind: Option<&str>,
) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "select status, sum(count)::int8 from command_counts
          where tenant = $1 and ($2::text is null or type = $2)
          group by status
         having sum(count) <> 0",
    )
    .bind(tenant)
    .bind(kind)
    .fetch_all(executor)
    .await?)
}

/// Folds the rows of each key of the counters, and of the last `recent` of the run rollup,
/// into one; drops the rollup's rows older than `keep`. One statement each, so a read sees a
/// key's rows before or after, never half folded; two folds at once each fold what they took.
pub async fn fold<'c, E: PgExecutor<'c> + Copy>(
    executor: E,
    recent: std::time::Duration,
    keep: std::time::Duration,
) -> Result<(), StoreError> {
    sqlx::query(
        "with taken as (
             delete from command_counts
              where (tenant, type, status) in (
                    select tenant, type, status from command_counts
                     group by 1, 2, 3 having count(*) > 1)
             returning tenant, type, status, count)
         insert into command_counts (tenant, type, status, count)
         select tenant, type, status, sum(count) from taken group by 1, 2, 3",
    )
    .execute(executor)
    .await?;
    sqlx::query(
        "with taken as (
             delete from command_stats
              where minute >= now() - make_interval(secs => $1)
                and (tenant, minute, type, outcome, bucket) in (
                    select tenant, minute, type, outcome, bucket from command_stats
                     where minute >= now() - make_interval(secs => $1)
                     group by 1, 2, 3, 4, 5 having count(*) > 1)
             returning tenant, minute, type, outcome, bucket, count)
         insert into command_stats (tenant, minute, type, outcome, bucket, count)
         select tenant, minute, type, outcome, bucket, sum(count) from taken
          group by 1, 2, 3, 4, 5",
    )
    .bind(recent.as_secs_f64())
    .execute(executor)
    .await?;
    sqlx::query("delete from command_stats where minute < now() - make_interval(secs => $1)")
        .bind(keep.as_secs_f64())
        .execute(executor)
        .await?;
    Ok(())
}

/// Runs of one bucket of time, one type and one outcome, in one duration bucket.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StatsRow {
    /// The start of the bucket of time (a minute or an hour).
    pub at: DateTime<Utc>,
    /// The command type.
    #[sqlx(rename = "type")]
    pub kind: String,
    /// How the runs ended: `success`, `fail`, `retry`, `cancelled`, `lease_lost`, `released`.
    pub outcome: String,
    /// The index of their duration among `bounds` (0: under the first).
    pub bucket: i16,
    /// How many.
    pub count: i64,
}

/// A tenant's runs since `since` (of one type, or all), summed per `unit` (`minute` or `hour`),
/// oldest first, with the bounds of the duration buckets in milliseconds.
pub async fn stats<'c, E: PgExecutor<'c> + Copy>(
    executor: E,
    tenant: &str,
    hourly: bool,
    since: DateTime<Utc>,
    kind: Option<&str>,
) -> Result<(Vec<StatsRow>, Vec<f64>), StoreError> {
    let rows = sqlx::query_as(
        "select date_trunc(case when $2 then 'hour' else 'minute' end, minute, 'UTC') as at,
                type, outcome, bucket, sum(count)::int8 as count
           from command_stats
          where tenant = $1 and minute >= date_trunc(case when $2 then 'hour' else 'minute' end, $3, 'UTC')
            and ($4::text is null or type = $4)
          group by 1, 2, 3, 4
          order by 1, 2, 3, 4",
    )
    .bind(tenant)
    .bind(hourly)
    .bind(since)
    .bind(kind)
    .fetch_all(executor)
    .await?;
    let bounds: Vec<f64> = sqlx::query_scalar("select command_stats_bounds()")
        .fetch_one(executor)
        .await?;
    Ok((rows, bounds))
}
