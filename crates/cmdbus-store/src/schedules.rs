//! Schedules (recurring commands): the statements of the api's schedule routes and of the
//! startup file, and the schedule sweep's take-and-advance. The sweep takes due rows `for update
//! skip locked` and moves `next_run_at` on in its own transaction, the one that records the
//! ticks' commands, so that each tick is submitted once however many api processes sweep.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgExecutor, types::Json};
use uuid::Uuid;

use crate::StoreError;

/// A schedule to record.
#[derive(Debug, Clone)]
pub struct NewSchedule<'a> {
    /// UUID v7 chosen by the caller.
    pub id: Uuid,
    /// Whose commands it submits.
    pub tenant: &'a str,
    /// Unique per tenant, if given.
    pub name: Option<&'a str>,
    /// The command type each tick submits.
    pub kind: &'a str,
    /// The payload each tick submits.
    pub payload: &'a Value,
    /// The cron pattern, as given (checked by the caller).
    pub cron: &'a str,
    /// The IANA time zone the pattern is read in (checked by the caller).
    pub timezone: &'a str,
    /// `skip` or `catch_up_once` (the `schedules_missed` constraint).
    pub missed: &'a str,
    /// The first tick.
    pub next_run_at: DateTime<Utc>,
}

/// Every column of `schedules`.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ScheduleRow {
    /// UUID v7.
    pub id: Uuid,
    /// Whose commands it submits.
    pub tenant: String,
    /// Unique per tenant, if given.
    pub name: Option<String>,
    /// The command type each tick submits.
    #[sqlx(rename = "type")]
    pub kind: String,
    /// The payload each tick submits.
    pub payload: Json<Value>,
    /// The cron pattern.
    pub cron: String,
    /// The IANA time zone the pattern is read in.
    pub timezone: String,
    /// What a sweep does with ticks long past: `skip` or `catch_up_once`.
    pub missed: String,
    /// The next tick to submit.
    pub next_run_at: DateTime<Utc>,
    /// Since when it is paused.
    pub paused_at: Option<DateTime<Utc>>,
    /// The last tick a command was submitted for.
    pub last_tick_at: Option<DateTime<Utc>>,
    /// The command submitted for it.
    pub last_command: Option<Uuid>,
    /// Declared by the startup file.
    pub declared: bool,
    /// When it was recorded.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What a pause or resume did: the row afterwards, and whether it changed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ScheduleChange {
    /// The schedule as it is now.
    #[sqlx(flatten)]
    pub row: ScheduleRow,
    /// It was not in that state before.
    pub changed: bool,
}

/// Records a schedule. A name the tenant already uses is refused by the
/// `schedules_name_per_tenant` constraint.
pub async fn create_schedule<'c>(
    executor: impl PgExecutor<'c>,
    schedule: &NewSchedule<'_>,
) -> Result<ScheduleRow, StoreError> {
    Ok(sqlx::query_as(
        "insert into schedules (id, tenant, name, type, payload, cron, timezone, missed,
                                next_run_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         returning *",
    )
    .bind(schedule.id)
    .bind(schedule.tenant)
    .bind(schedule.name)
    .bind(schedule.kind)
    .bind(Json(schedule.payload))
    .bind(schedule.cron)
    .bind(schedule.timezone)
    .bind(schedule.missed)
    .bind(schedule.next_run_at)
    .fetch_one(executor)
    .await?)
}

/// Records or updates a schedule declared by the startup file, by its tenant and name. An
/// update keeps the schedule's id, pause and last tick; its next tick is `next_run_at` only when
/// the pattern or the time zone changed (else the ticks go on where they were).
pub async fn declare_schedule<'c>(
    executor: impl PgExecutor<'c>,
    schedule: &NewSchedule<'_>,
) -> Result<ScheduleRow, StoreError> {
    Ok(sqlx::query_as(
        "insert into schedules (id, tenant, name, type, payload, cron, timezone, missed,
                                next_run_at, declared)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, true)
         on conflict (tenant, name) do update
            set type = excluded.type, payload = excluded.payload, missed = excluded.missed,
                declared = true, updated_at = now(),
                next_run_at = case
                    when (schedules.cron, schedules.timezone)
                         is distinct from (excluded.cron, excluded.timezone)
                    then excluded.next_run_at else schedules.next_run_at end,
                cron = excluded.cron, timezone = excluded.timezone
         returning *",
    )
    .bind(schedule.id)
    .bind(schedule.tenant)
    .bind(schedule.name)
    .bind(schedule.kind)
    .bind(Json(schedule.payload))
    .bind(schedule.cron)
    .bind(schedule.timezone)
    .bind(schedule.missed)
    .bind(schedule.next_run_at)
    .fetch_one(executor)
    .await?)
}

/// A tenant's schedules, oldest first (at most `limit`).
pub async fn list_schedules<'c>(
    executor: impl PgExecutor<'c>,
    tenant: &str,
    limit: i64,
) -> Result<Vec<ScheduleRow>, StoreError> {
    Ok(
        sqlx::query_as(
            "select * from schedules where tenant = $1 order by created_at, id limit $2",
        )
        .bind(tenant)
        .bind(limit)
        .fetch_all(executor)
        .await?,
    )
}

/// One of a tenant's schedules.
pub async fn get_schedule<'c>(
    executor: impl PgExecutor<'c>,
    tenant: &str,
    id: Uuid,
) -> Result<Option<ScheduleRow>, StoreError> {
    Ok(
        sqlx::query_as("select * from schedules where tenant = $1 and id = $2")
            .bind(tenant)
            .bind(id)
            .fetch_optional(executor)
            .await?,
    )
}

/// Pauses one of a tenant's schedules; `None` when it has no such schedule. Pausing a paused
/// schedule keeps its first pause (`changed` false).
pub async fn pause_schedule<'c>(
    executor: impl PgExecutor<'c>,
    tenant: &str,
    id: Uuid,
) -> Result<Option<ScheduleChange>, StoreError> {
    Ok(sqlx::query_as(
        "with before as (select paused_at from schedules
                          where tenant = $1 and id = $2 for update)
         update schedules s
            set paused_at = coalesce(s.paused_at, now()),
                updated_at = case when s.paused_at is null then now() else s.updated_at end
           from before
          where s.tenant = $1 and s.id = $2
         returning s.*, before.paused_at is null as changed",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(executor)
    .await?)
}

/// Resumes one of a tenant's paused schedules from `next_run_at` (the caller's next future
/// tick: the ticks of the pause are not caught up); `None` when it has no such schedule. A
/// schedule that was not paused is left as it is (`changed` false).
pub async fn resume_schedule<'c>(
    executor: impl PgExecutor<'c>,
    tenant: &str,
    id: Uuid,
    next_run_at: DateTime<Utc>,
) -> Result<Option<ScheduleChange>, StoreError> {
    Ok(sqlx::query_as(
        "with before as (select paused_at from schedules
                          where tenant = $1 and id = $2 for update)
         update schedules s
            set paused_at = null,
                next_run_at = case when s.paused_at is null then s.next_run_at else $3 end,
                updated_at = case when s.paused_at is null then s.updated_at else now() end
           from before
          where s.tenant = $1 and s.id = $2
         returning s.*, before.paused_at is not null as changed",
    )
    .bind(tenant)
    .bind(id)
    .bind(next_run_at)
    .fetch_optional(executor)
    .await?)
}

/// Deletes one of a tenant's schedules; false when it has no such schedule. The commands it
/// submitted stay.
pub async fn delete_schedule<'c>(
    executor: impl PgExecutor<'c>,
    tenant: &str,
    id: Uuid,
) -> Result<bool, StoreError> {
    let deleted = sqlx::query("delete from schedules where tenant = $1 and id = $2")
        .bind(tenant)
        .bind(id)
        .execute(executor)
        .await?;
    Ok(deleted.rows_affected() > 0)
}

/// A schedule the sweep took: the row, the database's clock when it was taken, and its type's
/// attempt budget.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueSchedule {
    /// The schedule, locked until the caller's transaction ends.
    #[sqlx(flatten)]
    pub row: ScheduleRow,
    /// The database's `now()`: every process sweeps by the same clock.
    pub swept_at: DateTime<Utc>,
    /// The attempts each tick's command gets: its type's default.
    pub max_attempts: i32,
}

/// Takes (locks, in the caller's transaction) up to `limit` unpaused schedules whose next tick
/// is due, oldest tick first, skipping those another sweep holds. A schedule whose type is not
/// registered is not due: it waits, and its ticks count as missed once the type is registered.
pub async fn take_due_schedules(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<DueSchedule>, StoreError> {
    Ok(sqlx::query_as(
        "select s.*, now() as swept_at, t.max_attempts
           from schedules s join command_types t on t.name = s.type
          where s.paused_at is null and s.next_run_at <= now()
          order by s.next_run_at
          limit $1
          for update of s skip locked",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Moves a taken schedule on to its next tick, recording the last tick submitted and its
/// command (`None` when none was: the due ticks were skipped).
pub async fn advance_schedule(
    conn: &mut PgConnection,
    id: Uuid,
    next_run_at: DateTime<Utc>,
    submitted: Option<(DateTime<Utc>, Uuid)>,
) -> Result<(), StoreError> {
    sqlx::query(
        "update schedules
            set next_run_at = $2,
                last_tick_at = coalesce($3, last_tick_at),
                last_command = coalesce($4, last_command)
          where id = $1",
    )
    .bind(id)
    .bind(next_run_at)
    .bind(submitted.map(|(tick, _)| tick))
    .bind(submitted.map(|(_, command)| command))
    .execute(conn)
    .await?;
    Ok(())
}
