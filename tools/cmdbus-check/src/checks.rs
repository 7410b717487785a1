//! The end-of-run checks that read PostgreSQL (live and purged rows: `archive.rs`), one
//! `Promise` each with its counts: every accepted command ends (lost apart from a keyed backlog
//! still draining), one successful finish and one effect per generation, fencing, order per key,
//! never two running per key, attempt bounds and closed attempt rows, retention deleting only
//! finished commands; and every client's last view against the rows.

use sqlx::PgPool;
use std::collections::{HashMap, HashSet};
use uuid::Uuid;

use crate::clients::{ClientLog, Seen};
use crate::promise::{Promise, SHOWN, count};

/// Commands by final status, for the counts line (purged rows included).
#[derive(Debug, Default)]
pub(crate) struct Census {
    pub(crate) rows: i64,
    pub(crate) success: i64,
    pub(crate) fail: i64,
    pub(crate) cancelled: i64,
    pub(crate) effects: i64,
    pub(crate) max_attempt: i32,
    /// Hostile commands submitted, by kind: block, spin, panic, hold.
    pub(crate) hostile: [i64; 4],
    /// Runs of a command after a failed run of the same generation: exception-lane re-runs.
    pub(crate) lane_runs: i64,
    /// Exception-lane re-runs of keyed commands.
    pub(crate) keyed_lane_runs: i64,
}

pub(crate) async fn census(pool: &PgPool) -> anyhow::Result<Census> {
    let (rows, success, fail, cancelled): (i64, i64, i64, i64) = sqlx::query_as(
        "select count(*),
                count(*) filter (where status = 'success'),
                count(*) filter (where status = 'fail'),
                count(*) filter (where status = 'cancelled')
         from all_commands",
    )
    .fetch_one(pool)
    .await?;
    let effects = count(pool, "select count(*) from effects").await?;
    let max_attempt: Option<i32> = sqlx::query_scalar("select max(attempt) from all_attempts")
        .fetch_one(pool)
        .await?;
    let (block, spin, panic, hold): (i64, i64, i64, i64) = sqlx::query_as(
        "select count(*) filter (where payload ? 'block_ms'),
                count(*) filter (where payload ? 'spin_ms'),
                count(*) filter (where payload ? 'panic'),
                count(*) filter (where payload ? 'hold_ms')
         from all_commands",
    )
    .fetch_one(pool)
    .await?;
    let (lane_runs, keyed_lane_runs): (i64, i64) = sqlx::query_as(
        "select count(*), count(*) filter (where c.ordering_key is not null)
         from all_attempts a join all_commands c on c.id = a.command_id
         where exists (select 1 from all_attempts f
                       where f.command_id = a.command_id and f.generation = a.generation
                         and f.attempt < a.attempt and f.outcome = 'fail')",
    )
    .fetch_one(pool)
    .await?;
    Ok(Census {
        rows,
        success,
        fail,
        cancelled,
        effects,
        max_attempt: max_attempt.unwrap_or(0),
        hostile: [block, spin, panic, hold],
        lane_runs,
        keyed_lane_runs,
    })
}

/// Unfinished commands when the settle phase ended, told apart: `draining` are keyed commands
/// whose key finished a command during the settle phase (a backlog that still moves, only too
/// slowly); `lost` are the rest (nothing moved for them), plus accepted commands without a row.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Unfinished {
    /// Seconds the settle phase lasted: the window in which a key counts as moving.
    pub(crate) window: f64,
    pub(crate) draining: i64,
    pub(crate) draining_keys: i64,
    pub(crate) lost: i64,
    pub(crate) missing: i64,
}

/// Reads `Unfinished` while the processes still run, right after a settle phase of `window`
/// seconds. Moving: a run under way (its lease live: a parked failure that an exception lane
/// took up again after the settle phase saw every command terminal, say), or a command queued
/// behind a key that finished a command in the window.
pub(crate) async fn unfinished(
    pool: &PgPool,
    accepted: &[Uuid],
    window: f64,
) -> anyhow::Result<Unfinished> {
    let missing = sqlx::query_scalar(
        "select count(*) from unnest($1::uuid[]) accepted (id)
         where not exists (select 1 from all_commands c where c.id = accepted.id)",
    )
    .bind(accepted)
    .fetch_one(pool)
    .await?;
    let (draining, draining_keys, lost): (i64, i64, i64) = sqlx::query_as(
        "select count(*) filter (where moving),
                count(distinct ordering_key) filter (where moving),
                count(*) filter (where not moving)
         from (select c.ordering_key,
                      (c.status = 'running' and c.lease_until > now())
                      or (c.ordering_key is not null and exists (
                          select 1 from all_commands f
                          where f.tenant = c.tenant and f.ordering_key = c.ordering_key
                            and f.finished_at > now() - make_interval(secs => $1))) as moving
               from commands c where c.status not in ('success', 'fail', 'cancelled')) open",
    )
    .bind(window)
    .fetch_one(pool)
    .await?;
    Ok(Unfinished {
        window,
        draining,
        draining_keys,
        lost,
        missing,
    })
}

/// Runs `sql` (rows of text) and turns each row into a violation named `what`; the number of
/// rows.
async fn each_row(
    pool: &PgPool,
    what: &str,
    sql: &'static str,
    bind: Option<i32>,
    violations: &mut Vec<String>,
) -> anyhow::Result<usize> {
    let mut query = sqlx::query_scalar::<_, String>(sql);
    if let Some(bind) = bind {
        query = query.bind(bind);
    }
    let rows = query.fetch_all(pool).await?;
    for row in rows.iter().take(SHOWN) {
        violations.push(format!("{what}: {row}"));
    }
    if rows.len() > SHOWN {
        violations.push(format!("{what}: ... {} in all", rows.len()));
    }
    Ok(rows.len())
}

/// Every promise PostgreSQL can show, purged rows included; `unfinished` as read when the settle
/// phase ended.
pub(crate) async fn database(
    pool: &PgPool,
    accepted: &[Uuid],
    unfinished: Unfinished,
    max_lease_losses: i32,
) -> anyhow::Result<Vec<Promise>> {
    let mut promises = Vec::new();

    // Every accepted command ends.
    let (rows, success, fail, cancelled): (i64, i64, i64, i64) = sqlx::query_as(
        "select count(*), count(*) filter (where status = 'success'),
                count(*) filter (where status = 'fail'), count(*) filter (where status = 'cancelled')
         from all_commands",
    )
    .fetch_one(pool)
    .await?;
    let mut violations = Vec::new();
    if unfinished.missing > 0 {
        violations.push(format!(
            "lost: {} accepted commands have no row",
            unfinished.missing
        ));
    }
    if unfinished.lost > 0 {
        violations.push(format!(
            "lost: {} commands unfinished with nothing moving for them when the run settled",
            unfinished.lost
        ));
    }
    // Commands queued behind keys that kept finishing commands through the settle are in line,
    // not lost: they are counted, and fail the promise only if they are still unfinished when
    // the check reads the table below ("not terminal").
    if unfinished.draining > 0 {
        println!(
            "note: still draining when settling ended: {} commands queued behind their keys ({} \
             keys, each finished a command in the {:.0}s of settling)",
            unfinished.draining, unfinished.draining_keys, unfinished.window
        );
    }
    let open = each_row(
        pool,
        "not terminal",
        "select id::text || ' is ' || status || coalesce(' on key ' || ordering_key, '')
         from commands where status not in ('success', 'fail', 'cancelled') order by id",
        None,
        &mut violations,
    )
    .await?;
    promises.push(Promise::new(
        "every accepted command ends",
        format!(
            "accepted={} rows={rows} success={success} fail={fail} cancelled={cancelled} \
             lost={} still_draining={} (on {} keys) not_terminal_at_check={open}",
            accepted.len(),
            unfinished.lost + unfinished.missing,
            unfinished.draining,
            unfinished.draining_keys,
        ),
        violations,
    ));

    // At most one successful finish and one effect per generation.
    let mut violations = Vec::new();
    let generations = count(
        pool,
        "select count(*) from (select distinct command_id, generation from all_attempts) g",
    )
    .await?;
    let effects = count(pool, "select count(*) from effects").await?;
    let twice = each_row(
        pool,
        "two successful finishes in one generation",
        "select command_id::text || ' generation ' || generation || ': ' || count(*)
         from all_attempts where outcome = 'success'
         group by command_id, generation having count(*) > 1",
        None,
        &mut violations,
    )
    .await?;
    let effects_twice = each_row(
        pool,
        "two effects in one generation",
        "select command_id::text || ' generation ' || generation || ': ' || count(*)
         from effects group by command_id, generation having count(*) > 1",
        None,
        &mut violations,
    )
    .await?;
    let no_effect = each_row(
        pool,
        "success without an effect",
        "select c.id::text || ' generation ' || c.generation from all_commands c
         where c.status = 'success' and c.type = 'check.work'
           and not exists (select 1 from effects e
                           where e.command_id = c.id and e.generation = c.generation)",
        None,
        &mut violations,
    )
    .await?;
    promises.push(Promise::new(
        "one successful finish and one effect per generation",
        format!(
            "generations={generations} effects={effects} two_successes={twice} \
             two_effects={effects_twice} success_without_effect={no_effect}"
        ),
        violations,
    ));

    // Fencing: no effect once a later run began.
    let mut violations = Vec::new();
    let after_generation = each_row(
        pool,
        "effect after a later generation began",
        "select e.command_id::text || ' generation ' || e.generation || ' at ' || e.at
                || ' > generation ' || a.generation || ' started ' || a.started_at
         from effects e join all_attempts a
           on a.command_id = e.command_id and a.generation > e.generation
         where a.started_at < e.at",
        None,
        &mut violations,
    )
    .await?;
    // A run fenced out by a lease loss must not write once the next run of the same
    // generation claimed the command (the next claim only starts after the reaper committed).
    let after_run = each_row(
        pool,
        "effect after a later run of its generation began",
        "select e.command_id::text || ' generation ' || e.generation || ' attempt ' || e.attempt
                || ' at ' || e.at || ' > attempt ' || a.attempt || ' started ' || a.started_at
         from effects e join all_attempts a
           on a.command_id = e.command_id and a.generation = e.generation
              and a.attempt > e.attempt
         where a.started_at < e.at",
        None,
        &mut violations,
    )
    .await?;
    promises.push(Promise::new(
        "no effect once a later run began (fencing)",
        format!("after_later_generation={after_generation} after_later_run={after_run}"),
        violations,
    ));

    // Order and exclusion per key.
    let keyed = count(
        pool,
        "select count(*) from all_commands where ordering_key is not null",
    )
    .await?;
    let out_of_order = crate::keys::order_per_key(pool, accepted).await?;
    promises.push(Promise::new(
        "per key, first runs in submission order",
        format!("keyed_commands={keyed} out_of_order={}", out_of_order.len()),
        out_of_order,
    ));
    promises.push(crate::keys::one_running_per_key(pool).await?);

    // Bounds and bookkeeping.
    let mut violations = Vec::new();
    let max_attempt: Option<i32> = sqlx::query_scalar("select max(attempt) from all_attempts")
        .fetch_one(pool)
        .await?;
    let lease_lost = count(
        pool,
        "select count(*) from all_attempts where outcome = 'lease_lost'",
    )
    .await?;
    let past = each_row(
        pool,
        "attempt past its bound",
        "select c.id::text || ' generation ' || a.generation || ' attempt ' || max(a.attempt)
                || ' of ' || c.max_attempts
         from all_attempts a join all_commands c on c.id = a.command_id
         group by c.id, a.generation, c.max_attempts
         having max(a.attempt) > c.max_attempts + $1
         union all
         select id::text || ' attempt ' || attempt || ' of ' || max_attempts from all_commands
         where attempt > max_attempts + $1",
        Some(max_lease_losses),
        &mut violations,
    )
    .await?;
    let left_open = each_row(
        pool,
        "attempt row left open",
        "select a.command_id::text || ' generation ' || a.generation || ' attempt ' || a.attempt
                || ' (command ' || c.status || ')'
         from all_attempts a join all_commands c on c.id = a.command_id
         where c.status in ('success', 'fail', 'cancelled')
           and (a.finished_at is null or a.outcome is null)",
        None,
        &mut violations,
    )
    .await?;
    promises.push(Promise::new(
        "attempts bounded (max_attempts + lease losses) and closed",
        format!(
            "max_attempt={} lease_lost_runs={lease_lost} past_bound={past} left_open={left_open}",
            max_attempt.unwrap_or(0)
        ),
        violations,
    ));

    // Retention deletes finished commands only.
    let mut violations = Vec::new();
    let purged = count(pool, "select count(*) from purged_commands").await?;
    let unfinished_purged = each_row(
        pool,
        "retention deleted an unfinished command",
        "select id::text || ' (' || status || ', generation ' || generation || ')'
         from purged_commands
         where status not in ('success', 'fail', 'cancelled') or finished_at is null",
        None,
        &mut violations,
    )
    .await?;
    promises.push(Promise::new(
        "retention deletes finished commands only",
        format!("purged={purged} unfinished_purged={unfinished_purged}"),
        violations,
    ));
    Ok(promises)
}

/// A command's last row, as clients should finally see it.
#[derive(Debug)]
pub(crate) struct FinalRow {
    pub(crate) seen: Seen,
    /// Retention deleted it: a client that reloaded its list after a reset may no longer hold
    /// it, but one that holds it must hold this.
    pub(crate) purged: bool,
}

/// The rows as clients should finally see them, purged ones included.
pub(crate) async fn final_views(pool: &PgPool) -> anyhow::Result<HashMap<Uuid, FinalRow>> {
    let rows: Vec<(Uuid, i64, String, i32, bool)> = sqlx::query_as(
        "select id, version, status, attempt, false from commands
         union all select id, version, status, attempt, true from purged_commands",
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, version, status, attempt, purged)| {
            let seen = Seen {
                version,
                status,
                attempt: i64::from(attempt),
            };
            (id, FinalRow { seen, purged })
        })
        .collect())
}

/// Where a client's last views differ from the rows, leaving out the commands in `skip`.
pub(crate) fn client_mismatches(
    index: usize,
    log: &ClientLog,
    rows: &HashMap<Uuid, FinalRow>,
    skip: &HashSet<Uuid>,
) -> Vec<String> {
    let views = log.views();
    let mut mismatches: Vec<String> = rows
        .iter()
        .filter(|(id, _)| !skip.contains(id))
        .filter(|(id, row)| match views.get(id) {
            Some(view) => *view != row.seen,
            None => !row.purged,
        })
        .map(|(id, row)| {
            format!(
                "client {index} holds {:?} for {id}, PostgreSQL {:?}{}",
                views.get(id),
                row.seen,
                if row.purged { " (purged)" } else { "" }
            )
        })
        .collect();
    mismatches.extend(
        views
            .keys()
            .filter(|id| !rows.contains_key(id) && !skip.contains(id))
            .map(|id| format!("client {index} holds {id}, which PostgreSQL does not")),
    );
    mismatches.sort();
    mismatches
}
