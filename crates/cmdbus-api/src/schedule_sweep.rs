//! The schedule sweep: submits the due ticks of every schedule, exactly once however many api
//! processes sweep. One transaction takes the due schedules `for update skip locked`, records
//! each tick's command through the store's submit (idempotency key `schedule:<id>:<tick>`, so
//! even a tick submitted again could not make a second command) and moves each schedule's
//! `next_run_at` on; only then are the commands published, like any submit's (the relay
//! publishes what a crash or a broker outage left `new`).

use chrono::SecondsFormat;
use cmdbus_bus::Broker;
use cmdbus_store::{CommandRow, Db, DueSchedule, NewCommand, StoreError};
use serde_json::Value;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    dispatch::dispatch,
    recurrence::{Missed, Plan, Recurrence},
};

/// Schedules taken per sweep; more wait for the next one, a moment later.
const BATCH: i64 = 200;
/// A tick a sweep finds this long past (or three sweep intervals, if longer) is missed (the
/// schedule's `missed` policy decides); a tick found sooner is on time and submits its own
/// command.
pub const MISSED_AFTER: Duration = Duration::from_secs(10);
/// How long a schedule whose pattern no longer reads (a time zone gone from a newer tz
/// database) or has no tick left waits before it is looked at again.
const BROKEN_RETRY: chrono::TimeDelta = chrono::TimeDelta::hours(1);

/// Schedule sweep settings.
#[derive(Debug, Clone)]
pub struct ScheduleConfig {
    /// How often due schedules are looked for: a tick is submitted within this of its time.
    pub interval: Duration,
    /// How long a `queue` row may wait unclaimed before its message is published again.
    pub redeliver_after: Duration,
}

/// Submits due ticks every `interval` until `shutdown`.
pub async fn run_schedules(
    config: ScheduleConfig,
    pool: Db,
    broker: Broker,
    shutdown: CancellationToken,
) {
    // A sweep that runs every 30 s must not call every tick of a frequent schedule missed.
    let missed_after = MISSED_AFTER.max(config.interval.saturating_mul(3));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(config.interval) => {}
        }
        // A full batch means more are due: take them at once.
        loop {
            match submit_due(&pool, missed_after).await {
                Ok((taken, rows)) => {
                    if !rows.is_empty() {
                        metrics::counter!("cmdbus_schedule_ticks_total")
                            .increment(rows.len() as u64);
                        broker.announce(rows.iter().map(CommandRow::event)).await;
                        if let Err(error) =
                            dispatch(&pool, &broker, config.redeliver_after, rows).await
                        {
                            tracing::warn!(%error, "cannot mark scheduled commands queued; the relay will");
                        }
                    }
                    if taken < BATCH as usize || shutdown.is_cancelled() {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "schedule sweep failed");
                    break;
                }
            }
        }
    }
}

/// One transaction: takes the due schedules, records their ticks' commands and moves them on.
/// Answers how many schedules it took and the commands it created.
pub(crate) async fn submit_due(
    pool: &Db,
    missed_after: Duration,
) -> Result<(usize, Vec<CommandRow>), StoreError> {
    let mut tx = pool.begin().await?;
    let due = cmdbus_store::take_due_schedules(&mut tx, BATCH).await?;
    if due.is_empty() {
        return Ok((0, Vec::new()));
    }
    let mut commands = Vec::new();
    // Per schedule: its next tick, and the index in `commands` of its last tick's command.
    let mut advances = Vec::with_capacity(due.len());
    for schedule in &due {
        let (next, ticks) = match plan(schedule, missed_after) {
            Some(Plan {
                ticks,
                next: Some(next),
            }) => (next, ticks),
            Some(Plan { ticks, next: None }) => {
                // The pattern's last tick has passed (a year field): submit what is due, then
                // look again now and then.
                tracing::warn!(schedule = %schedule.row.id, "schedule has no tick after now");
                (schedule.swept_at + BROKEN_RETRY, ticks)
            }
            None => (schedule.swept_at + BROKEN_RETRY, Vec::new()),
        };
        let last = ticks
            .last()
            .map(|tick| (*tick, commands.len() + ticks.len() - 1));
        for tick in ticks {
            commands.push(tick_command(schedule, tick));
        }
        advances.push((schedule.row.id, next, last));
    }
    let submitted = if commands.is_empty() {
        Vec::new()
    } else {
        cmdbus_store::insert(&mut tx, &commands).await?
    };
    for (id, next, last) in advances {
        let last = last.and_then(|(tick, index)| submitted.get(index).map(|s| (tick, s.row.id)));
        cmdbus_store::advance_schedule(&mut tx, id, next, last).await?;
    }
    tx.commit().await?;
    let created = submitted
        .into_iter()
        .filter(|submitted| submitted.created)
        .map(|submitted| submitted.row)
        .collect();
    Ok((due.len(), created))
}

/// The ticks of a taken schedule; `None` when its pattern or zone no longer reads.
fn plan(schedule: &DueSchedule, missed_after: Duration) -> Option<Plan> {
    let row = &schedule.row;
    let recurrence = match Recurrence::parse(&row.cron, &row.timezone) {
        Ok(recurrence) => recurrence,
        Err(error) => {
            tracing::error!(schedule = %row.id, %error, "schedule cannot be read; retried in an hour");
            return None;
        }
    };
    let missed = Missed::parse(&row.missed).unwrap_or(Missed::Skip);
    Some(recurrence.plan(row.next_run_at, schedule.swept_at, missed, missed_after))
}

/// The command of one tick: the schedule's type and payload, the type's attempt budget, and the
/// key that makes the tick's command one.
fn tick_command(schedule: &DueSchedule, tick: chrono::DateTime<chrono::Utc>) -> NewCommand {
    let row = &schedule.row;
    NewCommand {
        id: Uuid::now_v7(),
        tenant: row.tenant.clone(),
        kind: row.kind.clone(),
        payload: Value::clone(&row.payload.0),
        priority: 0,
        ordering_key: None,
        idempotency_key: Some(tick_key(row.id, tick)),
        idempotency_scope: None,
        max_attempts: schedule.max_attempts,
        subject: None,
        run_at: None,
        traceparent: None,
    }
}

/// `schedule:<id>:<tick, RFC 3339 in UTC>`: the idempotency key of a tick's command.
pub fn tick_key(schedule: Uuid, tick: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "schedule:{schedule}:{}",
        tick.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    )
}
