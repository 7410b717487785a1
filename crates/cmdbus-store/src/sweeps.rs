//! The api's sweeps, which keep every row moving whatever was lost on the way: the outbox relay
//! (rows the broker never confirmed), redelivery (`queue` rows whose message is overdue, `fail`
//! rows whose parking publish is owed), the lease reaper (runs whose worker died or paused), and
//! retention. Rows are taken with `for update skip locked` and a short publish lease, so any
//! number of api processes can sweep without publishing the same row twice. A batch is taken in
//! a materialized CTE, never as `where id in (select … limit n for update skip locked)`: the
//! planner may run such a subquery again (a rescan, a recheck of a row that changed) and take
//! more than `n` rows (seen: 3 with a limit of 2). `turns::take_turns` does the same.

use chrono::{DateTime, Utc};
use cmdbus_domain::Lane;
// The dynamic SQL below only splices this crate's own constants, never input.
use sqlx::{AssertSqlSafe, PgExecutor};
use std::time::Duration;
use uuid::Uuid;

use crate::{
    CommandRow, StoreError,
    rules::{CHANGED, CLOCK, IN_TURN, STATUS_BY_ID},
};

/// Takes up to `limit` rows the broker never confirmed, recorded more than `older_than` ago and
/// not taken by another sweeper within `publish_lease`: the relay publishes them again.
pub async fn take_unpublished<'c>(
    executor: impl PgExecutor<'c>,
    older_than: Duration,
    publish_lease: Duration,
    limit: i64,
) -> Result<Vec<CommandRow>, StoreError> {
    Ok(sqlx::query_as(
        "with taken as materialized (
                select id from commands
                 where status = 'new' and created_at < now() - make_interval(secs => $1)
                   and (redeliver_at is null or redeliver_at <= now())
                 order by created_at
                 limit $3
                 for update skip locked)
         update commands c set redeliver_at = now() + make_interval(secs => $2)
           from taken
          where c.id = taken.id
          returning c.*",
    )
    .bind(older_than.as_secs_f64())
    .bind(publish_lease.as_secs_f64())
    .bind(limit)
    .fetch_all(executor)
    .await?)
}

/// Takes up to `limit` rows whose message is due again: `queue` rows nobody claimed by their
/// `redeliver_at` (published to their queue again; copies are harmless, the claim decides) —
/// unless their key is not their turn (`IN_TURN`: another command of the key runs, or an
/// earlier one is unfinished) or their type is paused — and `fail` rows whose parking
/// publish is owed (published to their lane).
pub async fn take_redeliveries<'c>(
    executor: impl PgExecutor<'c>,
    publish_lease: Duration,
    limit: i64,
) -> Result<Vec<CommandRow>, StoreError> {
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "with taken as materialized (
                select id from commands c
                 where status in ('queue', 'fail') and redeliver_at <= now()
                   -- A command waiting for its key whose message is still out there (a lane's
                   -- delivery asks again after a delay): a copy would only wait beside it. Once
                   -- the key is its turn, the sweep publishes it again if that message was lost.
                   -- (A command held for its key has no `redeliver_at`: `take_turns` is its sweep.)
                   and (status = 'fail' or {IN_TURN})
                   -- A paused type's messages wait in its queue: copies would only pile up
                   -- there for as long as the pause lasts. On resume, due rows go again.
                   and (status = 'fail'
                        or not exists (select 1 from paused_types p where p.name = c.type))
                 order by redeliver_at
                 limit $2
                 for update skip locked)
         update commands c set redeliver_at = now() + make_interval(secs => $1)
           from taken
          where c.id = taken.id
          returning c.*"
    )))
    .bind(publish_lease.as_secs_f64())
    .bind(limit)
    .fetch_all(executor)
    .await?)
}

/// After the broker confirmed the messages of redelivered rows: a `queue` row is looked at again
/// after as long as it has been queued already — at least `redeliver_after`, at most eight times
/// it — and a parked `fail` row owes nothing any more. A command still unclaimed after a while
/// most often waits behind a backlog, with its message in the queue: a copy every
/// `redeliver_after` would grow that backlog by one copy per waiting command per interval (a
/// 17,000-command backlog drained at 100/s left 9,742 copies behind in the fault run), while a
/// wait that grows with the command's age sends a handful.
pub async fn redelivered<'c>(
    executor: impl PgExecutor<'c>,
    ids: &[Uuid],
    redeliver_after: Duration,
) -> Result<(), StoreError> {
    sqlx::query(AssertSqlSafe(format!(
        "update commands c
            set redeliver_at = case when c.status = 'queue'
                                    then now() + least(greatest(make_interval(secs => $2),
                                                                now() - coalesce(c.queued_at, now())),
                                                       make_interval(secs => $2 * 8)) end
          where c.id in (select c.id from commands c
                          where c.id = any($1) and {STATUS_BY_ID} in ('queue', 'fail')
                          order by c.id for update)
            and {STATUS_BY_ID} in ('queue', 'fail')"
    )))
    .bind(ids)
    .bind(redeliver_after.as_secs_f64())
    .execute(executor)
    .await?;
    Ok(())
}

/// Running rows whose lease expired more than `grace` ago lose their run: the attempt is
/// recorded as `lease_lost`, and the command goes back to where the run came from — `queue` (due
/// for redelivery at once), or, for a run of an exception lane, parked in that lane again (its
/// parking publish owed) — or to `cancelled` when a cancel was requested. After more than
/// `max_lease_losses` losses, in every lane alike, the next loss fails the command with the code
/// `lease_lost`, parked in the lane after the run's own (`Lane::parked_in`: the main queue's go to
/// `exceptions1`, a lane's to the other lane), as a failure of the run would be. Lost runs do not
/// use up `max_attempts`; the bound on them is what keeps a command from cycling forever, in a
/// lane as in the main queue.
///
/// Rows are taken `for no key update skip locked`: a row another transaction holds — above all a
/// handler's effect transaction inside `hold_claim` — is skipped, never waited for, so a paused
/// handler cannot stall the sweeps, and every other expired run is reaped on time. Skipping is
/// also what keeps the fence: a held claim cannot be taken away while its transaction is open;
/// the row is reaped by the first sweep after the lock is gone, if its lease has not been
/// renewed by then.
pub async fn reap_expired<'c>(
    executor: impl PgExecutor<'c>,
    grace: Duration,
    max_lease_losses: i32,
    now: Option<DateTime<Utc>>,
) -> Result<Vec<CommandRow>, StoreError> {
    // The lane sequence is the domain's; the statement looks it up rather than spelling it.
    let lanes = [Lane::Main, Lane::Exceptions1, Lane::Exceptions2];
    let from: Vec<Option<&str>> = lanes.iter().map(|lane| lane.suffix()).collect();
    let parked_in: Vec<Option<&str>> = lanes.iter().map(|lane| lane.parked_in().suffix()).collect();
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "with {CLOCK}, reaped as (
             update commands c
                set status = case when cancel_requested then 'cancelled'
                                  when lane is not null or lease_losses >= $2 then 'fail'
                                  else 'queue' end,
                    error = case when cancel_requested then error
                                 when lease_losses >= $2 then jsonb_build_object(
                                     'code', 'lease_lost',
                                     'message', format('the run lost its lease %s times '
                                         '(its worker died, paused, or lost the database)',
                                         lease_losses + 1),
                                     'retryable', false)
                                 else error end,
                    lane = case when cancel_requested then null
                                when lease_losses >= $2 then (
                                    select p.parked_in
                                      from unnest($4::text[], $5::text[]) as p(lane, parked_in)
                                     where p.lane is not distinct from c.lane)
                                else lane end,
                    lease_losses = lease_losses + 1,
                    finished_at = case when cancel_requested or lane is not null
                                            or lease_losses >= $2 then clock.at end,
                    redeliver_at = case when cancel_requested then null else clock.at end,
                    worker = null, claim = null, lease_until = null, next_attempt_at = null,
                    reclaimed_at = clock.at,
                    {CHANGED}
               from clock
              where c.id in (
                    select id from commands
                     where status = 'running'
                       and lease_until < coalesce($3, now()) - make_interval(secs => $1)
                     order by id
                       for no key update skip locked)
                and status = 'running'
                and lease_until < coalesce($3, now()) - make_interval(secs => $1)
             returning c.*
         ), history as (
             update command_attempts a
                set finished_at = clock.at, outcome = 'lease_lost'
               from reaped, clock
              where a.command_id = reaped.id and a.generation = reaped.generation
                and a.attempt = reaped.attempt and a.finished_at is null
         )
         select * from reaped"
    )))
    .bind(grace.as_secs_f64())
    .bind(max_lease_losses)
    .bind(now)
    .bind(&from)
    .bind(&parked_in)
    .fetch_all(executor)
    .await?)
}

/// Deletes up to `limit` commands (with their attempts) that finished before `cutoff` — as they
/// are when the delete holds them: one a concurrent replay made unfinished is kept. Walks the
/// primary key: ids are UUID v7, so every command created after the cutoff is skipped without
/// being read, and no index is kept on `finished_at` just for this.
pub async fn purge_finished<'c>(
    executor: impl PgExecutor<'c>,
    cutoff: DateTime<Utc>,
    limit: i64,
) -> Result<u64, StoreError> {
    let newest = Uuid::new_v7(uuid::Timestamp::from_unix(
        uuid::NoContext,
        u64::try_from(cutoff.timestamp()).unwrap_or(0),
        cutoff.timestamp_subsec_nanos(),
    ));
    // A sweep never waits on a row lock: a row someone holds (a replay under way, a handler's
    // `hold_claim`) is skipped now and considered again by the next pass. The delete states the
    // condition again: the subquery chose its rows from the statement's snapshot, and
    // PostgreSQL re-checks only the delete's own condition on the row as it is once locked, so
    // a row changed in between (a replay made it unfinished) is kept.
    let deleted = sqlx::query(
        "with taken as materialized (
                select id from commands
                 where id < $1 and finished_at < $2
                 order by id limit $3
                   for update skip locked)
         delete from commands c
          using taken
          where c.id = taken.id and c.id < $1 and c.finished_at < $2",
    )
    .bind(newest)
    .bind(cutoff)
    .bind(limit)
    .execute(executor)
    .await?;
    Ok(deleted.rows_affected())
}

/// How many commands are `scheduled`, `new`, `queue` and `running` (all tenants), for metrics:
/// each count reads one small partial index, never the whole table.
pub async fn count_unfinished<'c>(
    executor: impl PgExecutor<'c>,
) -> Result<Vec<(String, i64)>, StoreError> {
    Ok(sqlx::query_as(
        "select 'scheduled', count(*) from commands where status = 'scheduled'
         union all
         select 'new', count(*) from commands where status = 'new'
         union all
         select 'queue',
                (select count(*) from commands
                  where status = 'queue' and redeliver_at is not null)
                + (select count(*) from commands
                    where status = 'queue' and held_since is not null)
         union all
         select 'running', count(*) from commands where status = 'running'",
    )
    .fetch_all(executor)
    .await?)
}
