//! Worker processes: each keeps a heartbeat row (`worker_seen`, about every second, from its
//! machinery), and the api's sweep releases the runs of a worker silent for longer than the
//! row's own `dead_after_ms` (`release_silent_workers`), so that the reaper takes them back
//! within seconds of the last heartbeat instead of at the end of their lease. The attempt
//! history and the console read what is here (`attempts_of`, `list_workers`).

use chrono::{DateTime, Utc};
use cmdbus_domain::{AttemptView, ErrorInfo, WorkerView};
use serde_json::value::RawValue;
use sqlx::PgExecutor;
use std::time::Duration;
use uuid::Uuid;

use crate::StoreError;

/// What a worker says about itself in its heartbeat row.
#[derive(Debug, Clone)]
pub struct WorkerBeat {
    /// The lease holder's name (`commands.worker`).
    pub id: String,
    /// The machine it runs on.
    pub host: String,
    /// Its process id.
    pub pid: i32,
    /// The cmdbus version it runs.
    pub version: String,
    /// The exception lane it serves; `None` for the main queues.
    pub lane: Option<String>,
    /// Handlers it runs at once.
    pub concurrency: i32,
    /// Silence after which its runs are released.
    pub dead_after: Duration,
    /// It is draining.
    pub stopping: bool,
}

/// A worker's heartbeat row, as the console lists it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WorkerRow {
    /// The lease holder's name.
    pub id: String,
    /// The machine it runs on.
    pub host: String,
    /// Its process id.
    pub pid: i32,
    /// The cmdbus version it runs.
    pub version: String,
    /// The exception lane it serves; `None` for the main queues.
    pub lane: Option<String>,
    /// Handlers it runs at once.
    pub concurrency: i32,
    /// Silence after which its runs are released, in milliseconds.
    pub dead_after_ms: i32,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub last_seen_at: DateTime<Utc>,
    /// It is draining.
    pub stopping: bool,
    /// Commands it is running now.
    pub running: i64,
}

/// One row of a command's attempt history.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AttemptRow {
    /// The generation the run belonged to (bumped by each replay).
    pub generation: i32,
    /// The attempt number.
    pub attempt: i32,
    /// The worker that ran it.
    pub worker: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended (or was taken back).
    pub finished_at: Option<DateTime<Utc>>,
    /// How it ended (`success`, `fail`, `retry`, `cancelled`, `released`, `lease_lost`).
    pub outcome: Option<String>,
    /// Its error, as stored (an `ErrorInfo`).
    pub error: Option<Box<RawValue>>,
}

impl AttemptRow {
    /// As `GET /v1/commands/{id}/attempts` shows it.
    pub fn view(&self) -> AttemptView {
        AttemptView {
            generation: self.generation,
            attempt: self.attempt,
            worker: self.worker.clone(),
            started_at: self.started_at,
            finished_at: self.finished_at,
            outcome: self.outcome.clone(),
            error: self.error.as_ref().map(|raw| {
                serde_json::from_str(raw.get()).unwrap_or_else(|error| ErrorInfo {
                    code: "unreadable_error".to_owned(),
                    message: format!("the stored error does not decode: {error}"),
                    retryable: false,
                })
            }),
        }
    }
}

impl WorkerRow {
    /// As `GET /v1/workers` shows it.
    pub fn view(&self) -> WorkerView {
        WorkerView {
            id: self.id.clone(),
            host: self.host.clone(),
            pid: self.pid,
            version: self.version.clone(),
            lane: self.lane.clone(),
            concurrency: self.concurrency,
            running: self.running,
            started_at: self.started_at,
            last_seen_at: self.last_seen_at,
            dead_after_ms: self.dead_after_ms,
            stopping: self.stopping,
        }
    }
}

fn millis(duration: Duration) -> i32 {
    i32::try_from(duration.as_millis())
        .unwrap_or(i32::MAX)
        .max(1)
}

/// Writes the worker's heartbeat row (created at its first beat).
pub async fn worker_seen<'c>(
    executor: impl PgExecutor<'c>,
    beat: &WorkerBeat,
) -> Result<(), StoreError> {
    sqlx::query(
        "insert into workers (id, host, pid, version, lane, concurrency, dead_after_ms, stopping)
         values ($1, $2, $3, $4, $5, $6, $7, $8)
         on conflict (id) do update
            set last_seen_at = now(), stopping = excluded.stopping,
                dead_after_ms = excluded.dead_after_ms",
    )
    .bind(&beat.id)
    .bind(&beat.host)
    .bind(beat.pid)
    .bind(&beat.version)
    .bind(&beat.lane)
    .bind(beat.concurrency)
    .bind(millis(beat.dead_after))
    .bind(beat.stopping)
    .execute(executor)
    .await?;
    Ok(())
}

/// Removes the worker's row: it stopped gracefully, with nothing left running.
pub async fn worker_gone<'c>(executor: impl PgExecutor<'c>, id: &str) -> Result<(), StoreError> {
    sqlx::query("delete from workers where id = $1")
        .bind(id)
        .execute(executor)
        .await?;
    Ok(())
}

/// The workers seen within their own `dead_after`, oldest first, each with its running count.
pub async fn list_workers<'c>(executor: impl PgExecutor<'c>) -> Result<Vec<WorkerRow>, StoreError> {
    Ok(sqlx::query_as(
        "select w.*, (select count(*) from commands c
                       where c.status = 'running' and c.worker = w.id) as running
           from workers w
          where w.last_seen_at >= now() - make_interval(secs => w.dead_after_ms / 1000.0)
          order by w.started_at, w.id",
    )
    .fetch_all(executor)
    .await?)
}

/// Ends the leases of the runs of every worker silent for longer than its `dead_after`: each
/// such run's lease is cut to the worker's last heartbeat plus `dead_after` (never lengthened),
/// and its attempt notes which worker went silent and when it was last seen. The reaper then
/// takes the run back as it takes back any expired lease — same grace, same bounds, same
/// history (`lease_lost`), same fence — so nothing else about a reclaim changes. The worker
/// itself stops those handlers at the same moment by its own clock (measured from when its
/// last heartbeat was sent), before the reaper can act.
///
/// Rows are taken `skip locked`: one a handler holds in `hold_claim` is skipped (it cannot be
/// reclaimed while held anyway) and released by a later pass. Rows of a worker that never
/// wrote a heartbeat row (an older version) keep their lease. Returns how many runs it cut.
pub async fn release_silent_workers<'c>(executor: impl PgExecutor<'c>) -> Result<u64, StoreError> {
    let released: i64 = sqlx::query_scalar(
        "with silent as (
             select id, last_seen_at,
                    last_seen_at + make_interval(secs => dead_after_ms / 1000.0) as gone_at
               from workers
              where last_seen_at < now() - make_interval(secs => dead_after_ms / 1000.0)
         ), released as (
             update commands c
                set lease_until = s.gone_at
               from silent s
              where c.worker = s.id and c.status = 'running' and c.lease_until > s.gone_at
                and c.id in (select id from commands
                              where status = 'running' and worker in (select id from silent)
                              order by id
                                for no key update skip locked)
             returning c.id, c.generation, c.attempt, c.worker, s.last_seen_at
         ), noted as (
             update command_attempts a
                set error = jsonb_build_object(
                        'code', 'worker_lost',
                        'message', format('worker %s stopped heartbeating (last seen %s); '
                                          'the run was reclaimed', r.worker, r.last_seen_at),
                        'retryable', true)
               from released r
              where a.command_id = r.id and a.generation = r.generation
                and a.attempt = r.attempt and a.finished_at is null
         )
         select count(*) from released",
    )
    .fetch_one(executor)
    .await?;
    Ok(u64::try_from(released).unwrap_or(0))
}

/// Forgets the rows of workers not seen for `after` (long dead; their runs were released).
pub async fn forget_workers<'c>(
    executor: impl PgExecutor<'c>,
    after: Duration,
) -> Result<u64, StoreError> {
    let deleted =
        sqlx::query("delete from workers where last_seen_at < now() - make_interval(secs => $1)")
            .bind(after.as_secs_f64())
            .execute(executor)
            .await?;
    Ok(deleted.rows_affected())
}

/// The attempt history of a command, oldest first (the caller checked that the command is the
/// caller's to read).
pub async fn attempts_of<'c>(
    executor: impl PgExecutor<'c>,
    id: Uuid,
) -> Result<Vec<AttemptRow>, StoreError> {
    Ok(sqlx::query_as(
        "select generation, attempt, worker, started_at, finished_at, outcome, error
           from command_attempts
          where command_id = $1
          order by generation, attempt",
    )
    .bind(id)
    .fetch_all(executor)
    .await?)
}
