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
    redeliver_at = null";

/// Replays every failed command matching the filters (type, error code, finished in a window);
/// with `dry_run` only counts them. Returns the count and, unless dry, the replayed rows.
pub async fn replay_matching<'c>(
    executor: impl PgExecutor<'c>,
    tenant: &str,
    kind: Option<&str>,
    error_code: Option<&str>,
    window: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    dry_run: bool,
) -> Result<(i64, Vec<CommandRow>), StoreError> {
    const MATCH: &str = "tenant = $1 and status = 'fail'
        and ($2::text is null or type = $2)
        and ($3::text is null or error->>'code' = $3)
        and ($4::timestamptz is null or finished_at >= $4)
        and ($5::timestamptz is null or finished_at < $5)";
    if dry_run {
        let count: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "select count(*) from commands where {MATCH}"
        )))
        .bind(tenant)
        .bind(kind)
        .bind(error_code)
        .bind(window.0)
        .bind(window.1)
        .fetch_one(executor)
        .await?;
        return Ok((count, Vec::new()));
    }
    let rows: Vec<CommandRow> = sqlx::query_as(AssertSqlSafe(format!(
        "update commands set {REPLAY_SET}, {CHANGED} where {MATCH} returning *"
    )))
    .bind(tenant)
    .bind(kind)
    .bind(error_code)
    .bind(window.0)
    .bind(window.1)
    .fetch_all(executor)
    .await?;
    Ok((rows.len() as i64, rows))
}
