//! The worker's side of the table once it holds a claim (`claim.rs`): renew the lease, report
//! progress, hold the claim while the handler writes its own effects, and finish the run. Every write after
//! the claim is fenced by the run's token, so a run that lost its lease, or a run of an older
//! generation, can never change the command again.

use cmdbus_domain::{ErrorInfo, Status};
use serde_json::Value;
// The dynamic SQL below only splices this crate's own constants, never input.
use sqlx::{AssertSqlSafe, PgConnection, PgExecutor, types::Json};
use std::time::Duration;
use uuid::Uuid;

use crate::{
    CommandRow, StoreError,
    rules::{CHANGED, CLOCK, STATUS_BY_ID, in_lock_order},
    without_nul,
};

/// How a run ended.
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
    /// The worker gave the command back unfinished (shutdown): back to `queue`, without using
    /// up an attempt.
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

    fn error(&self) -> Option<ErrorInfo> {
        match self {
            Outcome::Fail(error) | Outcome::Retry(error, _) => Some(ErrorInfo {
                code: without_nul(&error.code),
                message: without_nul(&error.message),
                retryable: error.retryable,
            }),
            _ => None,
        }
    }
}

/// Seconds within which a worker that recorded a failure normally confirms its parking publish
/// (and says so, clearing `redeliver_at`); past it the api's sweep parks the message instead.
const PARK_OWED_AFTER: u32 = 10;

/// A released run of an exception lane (`c.lane` is the lane the run was claimed from) goes back
/// to where it was: parked in that lane, its parking publish owed, for the lane to run it again.
/// The plain queue is no place for it: its attempts are used up (`ATTEMPTS_LEFT`), so no worker
/// there would ever claim it.
const BACK_TO_LANE: &str =
    "(f.history = 'released' and c.lane is not null and not c.cancel_requested)";

/// The end of one run, as the worker that holds its claim reports it.
#[derive(Debug, Clone)]
pub struct Finish {
    /// The command.
    pub id: Uuid,
    /// The run's claim token.
    pub claim: Uuid,
    /// How it ended.
    pub outcome: Outcome,
    /// For `Fail`: the exception lane the message is parked in.
    pub lane: Option<String>,
}

/// Ends runs, each fenced by its claim token: a run that lost its claim changes nothing. A run
/// that ends in `queue` (a retry or a release) while a cancel was requested ends `cancelled`
/// instead, in the same statement, so a missed cancel signal cannot leave a command waiting for a
/// message nobody will send; a released run of an exception lane goes back to its lane
/// (`BACK_TO_LANE`). `redeliver_after` is how long past its due time a `queue` row waits
/// before the sweep publishes it again; a parked failure owes its parking publish until the
/// worker confirms it (`redelivered`). Returns the rows that changed.
pub async fn finish<'c>(
    executor: impl PgExecutor<'c>,
    finishes: &[Finish],
    redeliver_after: Duration,
) -> Result<Vec<CommandRow>, StoreError> {
    let finishes = in_lock_order(finishes, |f| f.id);
    let ids: Vec<Uuid> = finishes.iter().map(|f| f.id).collect();
    let claims: Vec<Uuid> = finishes.iter().map(|f| f.claim).collect();
    let statuses: Vec<&str> = finishes
        .iter()
        .map(|f| f.outcome.status().as_str())
        .collect();
    let histories: Vec<&str> = finishes.iter().map(|f| f.outcome.name()).collect();
    let lanes: Vec<Option<&str>> = finishes.iter().map(|f| f.lane.as_deref()).collect();
    let retry_in: Vec<f64> = finishes
        .iter()
        .map(|f| match &f.outcome {
            Outcome::Retry(_, delay) => delay.as_secs_f64(),
            _ => 0.0,
        })
        .collect();
    let results: Vec<Option<Json<&Value>>> = finishes
        .iter()
        .map(|f| match &f.outcome {
            Outcome::Success(value) => Some(Json(value)),
            _ => None,
        })
        .collect();
    let errors: Vec<Option<ErrorInfo>> = finishes.iter().map(|f| f.outcome.error()).collect();
    let errors: Vec<Option<Json<&ErrorInfo>>> =
        errors.iter().map(|e| e.as_ref().map(Json)).collect();
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "with {CLOCK}, locked as materialized (
             -- In id order first, as `claim` does: the update's join may visit rows in any order.
             select c.id from commands c where c.id = any($1) and {STATUS_BY_ID} = 'running'
              order by id for update
         ), finished as (
             update commands c
                set status = case when f.status = 'queue' and c.cancel_requested then 'cancelled'
                                  when {BACK_TO_LANE} then 'fail'
                                  else f.status end,
                    result = f.result, error = coalesce(f.error, c.error),
                    lane = case when f.status = 'fail' then f.lane
                                when {BACK_TO_LANE} then c.lane end,
                    next_attempt_at = case when f.status = 'queue' and not c.cancel_requested
                                                and not {BACK_TO_LANE}
                                           then clock.at + make_interval(secs => f.retry_in) end,
                    redeliver_at = case when {BACK_TO_LANE}
                                        then clock.at + make_interval(secs => {PARK_OWED_AFTER})
                                        when f.status = 'queue' and not c.cancel_requested
                                        then clock.at + make_interval(secs => f.retry_in + $9)
                                        when f.status = 'fail' and f.lane is not null
                                        then clock.at + make_interval(secs => {PARK_OWED_AFTER})
                                        end,
                    releases = c.releases + (f.history = 'released')::int,
                    progress = case when f.status = 'success' then 1 else c.progress end,
                    finished_at = case when f.status <> 'queue' or c.cancel_requested
                                            or {BACK_TO_LANE}
                                       then clock.at end,
                    worker = case when f.status = 'queue' and not c.cancel_requested then null
                                  else c.worker end,
                    claim = null, lease_until = null, {CHANGED}
               from unnest($1::uuid[], $2::uuid[], $3::text[], $4::jsonb[], $5::jsonb[],
                           $6::text[], $7::text[], $8::float8[])
                    as f(id, claim, status, result, error, lane, history, retry_in)
               join locked on locked.id = f.id
               cross join clock
              where c.id = f.id and c.claim = f.claim and {STATUS_BY_ID} = 'running'
             returning c.*, f.history, f.error as attempt_error
         ), history as (
             update command_attempts a
                set finished_at = clock.at, error = finished.attempt_error,
                    outcome = case when finished.status = 'cancelled' then 'cancelled'
                                   else finished.history end
               from finished, clock
              where a.command_id = finished.id and a.generation = finished.generation
                and a.attempt = finished.attempt
         )
         select * from finished"
    )))
    .bind(&ids)
    .bind(&claims)
    .bind(&statuses)
    .bind(&results)
    .bind(&errors)
    .bind(&lanes)
    .bind(&histories)
    .bind(&retry_in)
    .bind(redeliver_after.as_secs_f64())
    .fetch_all(executor)
    .await?)
}

/// A run this worker holds: the command and its claim token.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// The command.
    pub id: Uuid,
    /// The run's claim token.
    pub claim: Uuid,
}

/// Renews the leases of `runs`. Returns, for each run whose claim still holds, its token, whether
/// a cancel was requested, and whether its lease was renewed; a run that is missing has lost its
/// claim.
///
/// A row its own handler holds (`hold_claim`, a share lock for the length of the handler's effect
/// transaction) is not waited for: the rows are locked `for no key update skip locked` in id
/// order, so one held row never delays the other runs' leases. A held row is reported as still
/// held but not renewed (read from the statement's snapshot); its lease stands as its last
/// renewal left it, and the next renewal retries it. The reaper skips a held row too
/// (`reap_expired`), so while the handler's transaction is open nobody can take the claim away;
/// once it ends, either the next renewal finds the lease still standing and renews it, or the
/// lease ran out — then the worker has already lost the run by its own deadline (which counts
/// from before the last renewal was sent, so never past the row's), and the reaper may take it.
pub async fn heartbeat<'c>(
    executor: impl PgExecutor<'c>,
    runs: &[Run],
    lease: Duration,
) -> Result<Vec<(Uuid, bool, bool)>, StoreError> {
    let runs = in_lock_order(runs, |r| r.id);
    let ids: Vec<Uuid> = runs.iter().map(|r| r.id).collect();
    let claims: Vec<Uuid> = runs.iter().map(|r| r.claim).collect();
    Ok(sqlx::query_as(
        "with ours as (
             select c.id, c.claim, c.cancel_requested
               from commands c
               join unnest($1::uuid[], $2::uuid[]) as r(id, claim)
                 on c.id = r.id and c.claim = r.claim
              where c.status = 'running'
         ), free as (
             select c.id
               from commands c join ours on c.id = ours.id
              where c.status = 'running' and c.claim = ours.claim
              order by c.id
                for no key update of c skip locked
         ), renewed as (
             update commands c
                set lease_until = now() + make_interval(secs => $3)
               from free
              where c.id = free.id
             returning c.claim, c.cancel_requested
         )
         select claim, cancel_requested, true from renewed
         union all
         select claim, cancel_requested, false from ours
          where id not in (select id from free)",
    )
    .bind(&ids)
    .bind(&claims)
    .bind(lease.as_secs_f64())
    .fetch_all(executor)
    .await?)
}

/// Records progress of a running attempt (fenced like `finish`). NUL characters in the note are
/// replaced: PostgreSQL text cannot hold them.
pub async fn progress<'c>(
    executor: impl PgExecutor<'c>,
    run: Run,
    fraction: f32,
    note: Option<&str>,
) -> Result<Option<CommandRow>, StoreError> {
    let fraction = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        0.0
    };
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "update commands
            set progress = $3, progress_note = $4, {CHANGED}
          where id = $1 and claim = $2 and status = 'running'
          returning *"
    )))
    .bind(run.id)
    .bind(run.claim)
    .bind(fraction)
    .bind(note.map(without_nul))
    .fetch_optional(executor)
    .await?)
}

/// Inside the caller's own transaction: locks the command row (`for share`) if `run` still holds
/// its claim with a live lease, and says whether it does. A handler that writes its effects in
/// the same transaction after a `true` can never have them land after another run or a later
/// generation took over: a replay and a cancel wait for the lock, and the reaper skips the row
/// while it is held. The lock never delays a renewal: `heartbeat` skips the held row (renewing
/// every other) and retries it at its next tick.
pub async fn hold_claim(conn: &mut PgConnection, run: Run) -> Result<bool, StoreError> {
    let held: Option<bool> = sqlx::query_scalar(
        "select true from commands
          where id = $1 and claim = $2 and status = 'running' and lease_until > now()
          for share",
    )
    .bind(run.id)
    .bind(run.claim)
    .fetch_optional(conn)
    .await?;
    Ok(held.unwrap_or(false))
}
