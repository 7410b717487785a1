//! Replay: an operator runs a failed or cancelled command again, as a new generation that
//! fences out every older copy of its message.

use chrono::{DateTime, Utc};
// The dynamic SQL below only splices this crate's own constants, never input.
use sqlx::{AssertSqlSafe, PgExecutor};
use uuid::Uuid;

use crate::{CommandRow, StoreError, rules::CHANGED};

/// Replays a failed or cancelled command: a new generation, back to `new` (the caller publishes
/// it). Older copies of its message are fenced out by the generation. `None` when not allowed.
pub async fn replay<'c>(
    executor: impl PgExecutor<'c>,
    tenant: &str,
    id: Uuid,
) -> Result<Option<CommandRow>, StoreError> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "update commands set {REPLAY_SET}, {CHANGED}
          where tenant = $1 and id = $2 and status in ('fail', 'cancelled')
          returning *"
    )))
    .bind(tenant)
    .bind(id)
    .fetch_optional(executor)
    .await?)
}

/// What `replay` resets: a fresh generation and attempt budget (the statements add `CHANGED`).
const REPLAY_SET: &str = "status = 'new', generation = generation + 1, attempt = 0,
    lease_losses = 0, releases = 0, result = null, error = null, progress = null,
    progress_note = null, lane = null, worker = null, claim = null, lease_until = null,
    cancel_requested = false, started_at = null, finished_at = null, next_attempt_at = null,
    redeliver_at = null, held_since = null";

/// Which failed commands a bulk replay takes: a tenant's, filtered by type, error code and a
/// window of finish times (`[since, until)`).
#[derive(Debug, Clone, Copy)]
pub struct FailedFilter<'a> {
    /// Owner.
    pub tenant: &'a str,
    /// Only this type.
    pub kind: Option<&'a str>,
    /// Only failures with this error code.
    pub error_code: Option<&'a str>,
    /// Only failures finished at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only failures finished before this time.
    pub until: Option<DateTime<Utc>>,
}

/// The filter of `FailedFilter`, on `$1` to `$5`.
const FAILED_MATCH: &str = "tenant = $1 and status = 'fail'
    and ($2::text is null or type = $2)
    and ($3::text is null or error->>'code' = $3)
    and ($4::timestamptz is null or finished_at >= $4)
    and ($5::timestamptz is null or finished_at < $5)";

/// How many failed commands `filter` matches.
pub async fn count_failed<'c>(
    executor: impl PgExecutor<'c>,
    filter: &FailedFilter<'_>,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(AssertSqlSafe(format!(
        "select count(*) from commands where {FAILED_MATCH}"
    )))
    .bind(filter.tenant)
    .bind(filter.kind)
    .bind(filter.error_code)
    .bind(filter.since)
    .bind(filter.until)
    .fetch_one(executor)
    .await?)
}

/// The next page of a bulk replay: the ids (only the ids) of at most `limit` failed commands
/// `filter` matches, after `after` in id order. A bulk replay walks its matches a page at a
/// time, so it never holds more than one page, whatever a tenant has failed.
pub async fn failed_ids_after<'c>(
    executor: impl PgExecutor<'c>,
    filter: &FailedFilter<'_>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Uuid>, StoreError> {
    Ok(sqlx::query_scalar(AssertSqlSafe(format!(
        "select id from commands
          where {FAILED_MATCH} and ($6::uuid is null or id > $6)
          order by id
          limit $7"
    )))
    .bind(filter.tenant)
    .bind(filter.kind)
    .bind(filter.error_code)
    .bind(filter.since)
    .bind(filter.until)
    .bind(after)
    .bind(limit)
    .fetch_all(executor)
    .await?)
}

/// Replays the commands of `ids` that `filter` still matches (the filter is checked again on
/// each row once its lock is held, so a command replayed or changed meanwhile is left alone);
/// returns the replayed rows, `new`, for the caller to publish.
pub async fn replay_failed<'c>(
    executor: impl PgExecutor<'c>,
    filter: &FailedFilter<'_>,
    ids: &[Uuid],
) -> Result<Vec<CommandRow>, StoreError> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "update commands set {REPLAY_SET}, {CHANGED}
          where id = any($6) and {FAILED_MATCH}
          returning *"
    )))
    .bind(filter.tenant)
    .bind(filter.kind)
    .bind(filter.error_code)
    .bind(filter.since)
    .bind(filter.until)
    .bind(ids)
    .fetch_all(executor)
    .await?)
}
