//! The worker's side of the table: claim with a lease, renew it, report progress, finish fenced
//! by (worker, attempt); and the api's sweeps that keep nothing stuck (relay, reaper).

use chrono::{DateTime, Utc};
use cmdbus_domain::{ErrorInfo, Status};
use serde_json::Value;
use sqlx::{PgExecutor, types::Json};
use std::time::Duration;
use uuid::Uuid;

use crate::{CommandRow, StoreError};

/// A delivery that asks to run a command.
#[derive(Debug, Clone, Copy)]
pub struct Claim {
    /// The command.
    pub id: Uuid,
    /// The generation named in the message; an older one claims nothing.
    pub generation: i32,
}

/// Claims commands for `worker`: `new`/`queue` (or `running` with an expired lease) becomes
/// `running` with `attempt + 1` and a lease, in one conditional statement that also opens the
/// attempt's history row. A worker of an exception lane (`lane`) may also claim the failures
/// parked in that lane: that is how an operator re-runs them. Returns the claimed rows with their
/// payloads; a duplicate, stale or cancelled delivery is simply absent.
pub async fn claim<'c>(
    executor: impl PgExecutor<'c>,
    claims: &[Claim],
    worker: &str,
    lease: Duration,
    lane: Option<&str>,
) -> Result<Vec<CommandRow>, StoreError> {
    let ids: Vec<Uuid> = claims.iter().map(|c| c.id).collect();
    let generations: Vec<i32> = claims.iter().map(|c| c.generation).collect();
    Ok(sqlx::query_as(
        "with claimed as (
             update commands c
                set status = 'running', attempt = c.attempt + 1, worker = $3,
                    lease_until = now() + make_interval(secs => $4),
                    started_at = now(), progress = null, progress_note = null,
                    queued_at = coalesce(c.queued_at, now()),
                    next_attempt_at = null, finished_at = null,
                    version = nextval('command_version')
               from unnest($1::uuid[], $2::int4[]) as d(id, generation)
              where c.id = d.id and c.generation = d.generation and not c.cancel_requested
                and (c.status in ('new', 'queue')
                     or (c.status = 'running' and c.lease_until < now())
                     or (c.status = 'fail' and c.lane = $5))
             returning c.*
         ), history as (
             insert into command_attempts (command_id, generation, attempt, worker)
             select id, generation, attempt, worker from claimed
         )
         select * from claimed",
    )
    .bind(&ids)
    .bind(&generations)
    .bind(worker)
    .bind(lease.as_secs_f64())
    .bind(lane)
    .fetch_all(executor)
    .await?)
}

/// How an attempt ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The handler returned a result.
    Success(Value),
    /// The handler failed for good (or attempts ran out).
    Fail(ErrorInfo),
    /// The handler failed and will be tried again after the delay: back to `queue`.
    Retry(ErrorInfo, Duration),
    /// The handler stopped because a cancel was requested.
    Cancelled,
    /// The worker gave the command back unfinished (shutdown): back to `queue`.
    Released,
}

impl Outcome {
    fn status(&self) -> Status {
        match self {
            Outcome::Success(_) => Status::Success,
            Outcome::Fail(_) => Status::Fail,
            Outcome::Retry(..) | Outcome::Released => Status::Queue,
            Outcome::Cancelled => Status::Cancelled,
        }
    }

    /// The word stored in `command_attempts.outcome` (and used as a metric label).
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Success(_) => "success",
            Outcome::Fail(_) => "fail",
            Outcome::Retry(..) => "retry",
            Outcome::Cancelled => "cancelled",
            Outcome::Released => "released",
        }
    }
}

/// The end of one attempt, as the worker that holds the lease reports it.
#[derive(Debug, Clone)]
pub struct Finish {
    /// The command.
    pub id: Uuid,
    /// The worker that claimed it.
    pub worker: String,
    /// The attempt it claimed.
    pub attempt: i32,
    /// How it ended.
    pub outcome: Outcome,
    /// For `Fail`: the exception lane the message is parked in.
    pub lane: Option<String>,
}

/// Ends attempts, each fenced by (worker, attempt): a worker that lost its lease changes
/// nothing. Returns the rows that changed.
pub async fn finish<'c>(
    executor: impl PgExecutor<'c>,
    finishes: &[Finish],
) -> Result<Vec<CommandRow>, StoreError> {
    let ids: Vec<Uuid> = finishes.iter().map(|f| f.id).collect();
    let workers: Vec<&str> = finishes.iter().map(|f| f.worker.as_str()).collect();
    let attempts: Vec<i32> = finishes.iter().map(|f| f.attempt).collect();
    let statuses: Vec<&str> = finishes
        .iter()
        .map(|f| f.outcome.status().as_str())
        .collect();
    let histories: Vec<&str> = finishes.iter().map(|f| f.outcome.name()).collect();
    let lanes: Vec<Option<&str>> = finishes.iter().map(|f| f.lane.as_deref()).collect();
    let retry_in: Vec<Option<f64>> = finishes
        .iter()
        .map(|f| match &f.outcome {
            Outcome::Retry(_, delay) => Some(delay.as_secs_f64()),
            _ => None,
        })
        .collect();
    let results: Vec<Option<Json<&Value>>> = finishes
        .iter()
        .map(|f| match &f.outcome {
            Outcome::Success(value) => Some(Json(value)),
            _ => None,
        })
        .collect();
    let errors: Vec<Option<Json<&ErrorInfo>>> = finishes
        .iter()
        .map(|f| match &f.outcome {
            Outcome::Fail(error) | Outcome::Retry(error, _) => Some(Json(error)),
            _ => None,
        })
        .collect();
    Ok(sqlx::query_as(
        "with finished as (
             update commands c
                set status = f.status, result = f.result, error = coalesce(f.error, c.error),
                    lane = f.lane,
                    next_attempt_at = now() + make_interval(secs => f.retry_in),
                    progress = case when f.status = 'success' then 1 else c.progress end,
                    finished_at = case when f.status in ('success', 'fail', 'cancelled')
                                       then now() end,
                    worker = case when f.status = 'queue' then null else c.worker end,
                    lease_until = null,
                    version = nextval('command_version')
               from unnest($1::uuid[], $2::text[], $3::int4[], $4::text[], $5::jsonb[],
                           $6::jsonb[], $7::text[], $8::text[], $9::float8[])
                    as f(id, worker, attempt, status, result, error, lane, history, retry_in)
              where c.id = f.id and c.status = 'running'
                and c.worker = f.worker and c.attempt = f.attempt
             returning c.*, f.history
         ), history as (
             update command_attempts a
                set finished_at = now(), outcome = finished.history, error = finished.error
               from finished
              where a.command_id = finished.id and a.generation = finished.generation
                and a.attempt = finished.attempt
         )
         select * from finished",
    )
    .bind(&ids)
    .bind(&workers)
    .bind(&attempts)
    .bind(&statuses)
    .bind(&results)
    .bind(&errors)
    .bind(&lanes)
    .bind(&histories)
    .bind(&retry_in)
    .fetch_all(executor)
    .await?)
}

/// Renews the leases `worker` holds on `ids`. Returns, for each lease still held, whether a
/// cancel was requested; an id that is missing has lost its lease.
pub async fn heartbeat<'c>(
    executor: impl PgExecutor<'c>,
    worker: &str,
    ids: &[Uuid],
    lease: Duration,
) -> Result<Vec<(Uuid, bool)>, StoreError> {
    Ok(sqlx::query_as(
        "update commands
            set lease_until = now() + make_interval(secs => $3)
          where id = any($2) and worker = $1 and status = 'running'
          returning id, cancel_requested",
    )
    .bind(worker)
    .bind(ids)
    .bind(lease.as_secs_f64())
    .fetch_all(executor)
    .await?)
}

/// Records progress of a running attempt (fenced like `finish`).
pub async fn progress<'c>(
    executor: impl PgExecutor<'c>,
    id: Uuid,
    worker: &str,
    attempt: i32,
    fraction: f32,
    note: Option<&str>,
) -> Result<Option<CommandRow>, StoreError> {
    Ok(sqlx::query_as(
        "update commands
            set progress = $4, progress_note = $5, version = nextval('command_version')
          where id = $1 and worker = $2 and attempt = $3 and status = 'running'
          returning *",
    )
    .bind(id)
    .bind(worker)
    .bind(attempt)
    .bind(fraction.clamp(0.0, 1.0))
    .bind(note)
    .fetch_optional(executor)
    .await?)
}

/// Rows the broker never confirmed, recorded more than `older_than` ago: the outbox relay
/// publishes them again.
pub async fn relay_candidates<'c>(
    executor: impl PgExecutor<'c>,
    older_than: Duration,
    limit: i64,
) -> Result<Vec<CommandRow>, StoreError> {
    Ok(sqlx::query_as(
        "select * from commands
          where status = 'new' and created_at < now() - make_interval(secs => $1)
          order by created_at
          limit $2",
    )
    .bind(older_than.as_secs_f64())
    .bind(limit)
    .fetch_all(executor)
    .await?)
}

/// Running rows whose lease expired more than `grace` ago (their worker died and no copy of the
/// message claimed them since) go back to `new`, so that they are published again, or become
/// `cancelled` when a cancel was requested. The lost attempt is recorded as such.
pub async fn reap_expired<'c>(
    executor: impl PgExecutor<'c>,
    grace: Duration,
    now: Option<DateTime<Utc>>,
) -> Result<Vec<CommandRow>, StoreError> {
    Ok(sqlx::query_as(
        "with reaped as (
             update commands
                set status = case when cancel_requested then 'cancelled' else 'new' end,
                    finished_at = case when cancel_requested then now() end,
                    worker = null, lease_until = null,
                    version = nextval('command_version')
              where status = 'running'
                and lease_until < coalesce($2, now()) - make_interval(secs => $1)
             returning *
         ), history as (
             update command_attempts a
                set finished_at = now(), outcome = 'lease_lost'
               from reaped
              where a.command_id = reaped.id and a.generation = reaped.generation
                and a.attempt = reaped.attempt and a.finished_at is null
         )
         select * from reaped",
    )
    .bind(grace.as_secs_f64())
    .bind(now)
    .fetch_all(executor)
    .await?)
}
