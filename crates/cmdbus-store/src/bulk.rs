//! Bulk cancel: the unfinished commands a selection (ids) or a filter matches, counted, then
//! cancelled a page at a time, each page in one conditional statement that checks the filter
//! again on every row once its lock is held.

use chrono::{DateTime, Utc};
// The dynamic SQL below only splices this crate's own constants, never input.
use sqlx::{AssertSqlSafe, PgExecutor};
use uuid::Uuid;

use crate::{CommandRow, StoreError, rules::CHANGED};

/// Which unfinished commands a bulk cancel takes: a tenant's, by ids or filtered by type, error
/// code (of a command waiting to retry), states and a window of creation times
/// (`[since, until)`).
#[derive(Debug, Clone, Copy)]
pub struct CancelFilter<'a> {
    /// Owner.
    pub tenant: &'a str,
    /// Only these commands.
    pub ids: Option<&'a [Uuid]>,
    /// Only this type.
    pub kind: Option<&'a str>,
    /// Only commands whose last error has this code.
    pub error_code: Option<&'a str>,
    /// Only commands created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only commands created before this time: the bound a dry run answers, so that the action
    /// it previews takes nothing submitted after it.
    pub until: Option<DateTime<Utc>>,
    /// Only commands in these states, among `scheduled`, `new`, `queue` and `running`.
    pub statuses: &'a [&'a str],
}

/// The filter of `CancelFilter`, on `$1` to `$7`: what `cancel` allows (a command that has not
/// started, or a running one not yet asked to stop), narrowed by the filter.
const CANCEL_MATCH: &str = "tenant = $1
    and ($2::uuid[] is null or id = any($2))
    and ($3::text is null or type = $3)
    and ($4::text is null or error->>'code' = $4)
    and ($5::timestamptz is null or created_at >= $5)
    and ($6::timestamptz is null or created_at < $6)
    and status = any($7::text[])
    and (status in ('scheduled', 'new', 'queue')
         or (status = 'running' and not cancel_requested))";

/// The database's clock: the `until` a bulk action's dry run answers when its request gave none
/// (finish and creation times are the database's, so the bound must be too).
pub async fn database_time<'c>(executor: impl PgExecutor<'c>) -> Result<DateTime<Utc>, StoreError> {
    Ok(sqlx::query_scalar("select clock_timestamp()")
        .fetch_one(executor)
        .await?)
}

/// How many commands `filter` matches.
pub async fn count_cancellable<'c>(
    executor: impl PgExecutor<'c>,
    filter: &CancelFilter<'_>,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(AssertSqlSafe(format!(
        "select count(*) from commands where {CANCEL_MATCH}"
    )))
    .bind(filter.tenant)
    .bind(filter.ids)
    .bind(filter.kind)
    .bind(filter.error_code)
    .bind(filter.since)
    .bind(filter.until)
    .bind(filter.statuses)
    .fetch_one(executor)
    .await?)
}

/// Cancels the next page: at most `limit` of the commands `filter` matches, after `after` in
/// id order. Rows are locked in id order (`rules::in_lock_order`) and checked again under the
/// lock; those that have not started become `cancelled`, running ones get `cancel_requested`.
/// Returns the changed rows (their ids ascending) for the caller to announce.
pub async fn cancel_page<'c>(
    executor: impl PgExecutor<'c>,
    filter: &CancelFilter<'_>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<CommandRow>, StoreError> {
    let mut rows: Vec<CommandRow> = sqlx::query_as(AssertSqlSafe(format!(
        "with page as (
            select id from commands
             where {CANCEL_MATCH} and ($8::uuid is null or id > $8)
             order by id
             limit $9
               for update)
         update commands
            set status = case when status = 'running' then status else 'cancelled' end,
                finished_at = case when status = 'running' then null else now() end,
                cancel_requested = true, redeliver_at = null, {CHANGED}
          where id in (select id from page)
          returning *"
    )))
    .bind(filter.tenant)
    .bind(filter.ids)
    .bind(filter.kind)
    .bind(filter.error_code)
    .bind(filter.since)
    .bind(filter.until)
    .bind(filter.statuses)
    .bind(after)
    .bind(limit)
    .fetch_all(executor)
    .await?;
    rows.sort_by_key(|row| row.id);
    Ok(rows)
}
