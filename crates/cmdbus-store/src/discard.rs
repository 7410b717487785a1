//! Discard: an operator drops a parked failure (`fail` in an exception lane) for good. The row
//! becomes `discarded`, owes no parking publish, and its parked message claims nothing when a
//! lane consumes it (the claim takes `new`, `queue` and its own lane's `fail` only); a replay
//! takes `fail` and `cancelled` only, so it never runs again. One, or in bulk a page at a time
//! like bulk cancel.

use chrono::{DateTime, Utc};
// The dynamic SQL below only splices this crate's own constants, never input.
use sqlx::{AssertSqlSafe, PgExecutor};
use uuid::Uuid;

use crate::{CommandRow, StoreError, rules::CHANGED};

/// What a discard sets (the statements add `CHANGED`): `finished_at` stays the failure's.
const DISCARD_SET: &str = "status = 'discarded', redeliver_at = null";

/// A parked failure: what a discard takes.
const PARKED: &str = "status = 'fail' and lane is not null";

/// Discards one parked failure of a tenant; `None` when it is not one (or not the tenant's).
pub async fn discard<'c>(
    executor: impl PgExecutor<'c>,
    tenant: &str,
    id: Uuid,
) -> Result<Option<CommandRow>, StoreError> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "update commands set {DISCARD_SET}, {CHANGED}
          where tenant = $1 and id = $2 and {PARKED}
          returning *"
    )))
    .bind(tenant)
    .bind(id)
    .fetch_optional(executor)
    .await?)
}

/// Which parked failures a bulk discard takes: a tenant's, by ids or filtered by type, error
/// code, lane and a window of finish times (`[since, until)`).
#[derive(Debug, Clone, Copy)]
pub struct DiscardFilter<'a> {
    /// Owner.
    pub tenant: &'a str,
    /// Only these commands.
    pub ids: Option<&'a [Uuid]>,
    /// Only this type.
    pub kind: Option<&'a str>,
    /// Only failures with this error code.
    pub error_code: Option<&'a str>,
    /// Only failures parked in this lane (`exceptions1`, `exceptions2`).
    pub lane: Option<&'a str>,
    /// Only failures finished at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only failures finished before this time: the bound a dry run answers.
    pub until: Option<DateTime<Utc>>,
}

/// The filter of `DiscardFilter`, on `$1` to `$7` (the failures' index, `commands_failed`,
/// holds every row it can match).
const DISCARD_MATCH: &str = "tenant = $1 and status = 'fail' and lane is not null
    and ($2::uuid[] is null or id = any($2))
    and ($3::text is null or type = $3)
    and ($4::text is null or error->>'code' = $4)
    and ($5::text is null or lane = $5)
    and ($6::timestamptz is null or finished_at >= $6)
    and ($7::timestamptz is null or finished_at < $7)";

/// How many parked failures `filter` matches.
pub async fn count_discardable<'c>(
    executor: impl PgExecutor<'c>,
    filter: &DiscardFilter<'_>,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(AssertSqlSafe(format!(
        "select count(*) from commands where {DISCARD_MATCH}"
    )))
    .bind(filter.tenant)
    .bind(filter.ids)
    .bind(filter.kind)
    .bind(filter.error_code)
    .bind(filter.lane)
    .bind(filter.since)
    .bind(filter.until)
    .fetch_one(executor)
    .await?)
}

/// Discards the next page: at most `limit` of the parked failures `filter` matches, after
/// `after` in id order, locked in id order and checked again under the lock (one replayed or
/// re-run meanwhile is left alone). Returns the discarded rows, ids ascending.
pub async fn discard_page<'c>(
    executor: impl PgExecutor<'c>,
    filter: &DiscardFilter<'_>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<CommandRow>, StoreError> {
    let mut rows: Vec<CommandRow> = sqlx::query_as(AssertSqlSafe(format!(
        "with page as (
            select id from commands
             where {DISCARD_MATCH} and ($8::uuid is null or id > $8)
             order by id
             limit $9
               for update)
         update commands set {DISCARD_SET}, {CHANGED}
          where id in (select id from page) and {PARKED}
          returning *"
    )))
    .bind(filter.tenant)
    .bind(filter.ids)
    .bind(filter.kind)
    .bind(filter.error_code)
    .bind(filter.lane)
    .bind(filter.since)
    .bind(filter.until)
    .bind(after)
    .bind(limit)
    .fetch_all(executor)
    .await?;
    rows.sort_by_key(|row| row.id);
    Ok(rows)
}
