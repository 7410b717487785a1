//! The end-of-run checks that read PostgreSQL: terminal states, successful finishes and effects
//! per generation, effects after a later generation began, order per key, attempt bounds and
//! closed attempt rows; and every client's last view against the rows.

use sqlx::PgPool;
use std::collections::HashMap;
use uuid::Uuid;

use crate::clients::{ClientLog, Seen};

/// Violations listed per kind before the rest are only counted.
const SHOWN: usize = 10;

/// Commands by final status, for the counts line.
#[derive(Debug, Default)]
pub(crate) struct Census {
    pub(crate) rows: i64,
    pub(crate) success: i64,
    pub(crate) fail: i64,
    pub(crate) cancelled: i64,
    pub(crate) effects: i64,
    pub(crate) max_attempt: i32,
}

pub(crate) async fn census(pool: &PgPool) -> anyhow::Result<Census> {
    let (rows, success, fail, cancelled): (i64, i64, i64, i64) = sqlx::query_as(
        "select count(*),
                count(*) filter (where status = 'success'),
                count(*) filter (where status = 'fail'),
                count(*) filter (where status = 'cancelled')
         from commands",
    )
    .fetch_one(pool)
    .await?;
    let effects = sqlx::query_scalar("select count(*) from effects")
        .fetch_one(pool)
        .await?;
    let max_attempt: Option<i32> = sqlx::query_scalar("select max(attempt) from command_attempts")
        .fetch_one(pool)
        .await?;
    Ok(Census {
        rows,
        success,
        fail,
        cancelled,
        effects,
        max_attempt: max_attempt.unwrap_or(0),
    })
}

/// The headline counts: accepted commands lost (no row, or not terminal), commands whose effect
/// ran twice in one generation, and key order violations.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) lost: i64,
    pub(crate) run_twice: i64,
    pub(crate) out_of_order: usize,
}

pub(crate) async fn tally(pool: &PgPool, accepted: &[Uuid]) -> anyhow::Result<Tally> {
    let lost = sqlx::query_scalar(
        "select count(*) from unnest($1::uuid[]) accepted (id)
         left join commands c on c.id = accepted.id
         where c.id is null or c.status not in ('success', 'fail', 'cancelled')",
    )
    .bind(accepted)
    .fetch_one(pool)
    .await?;
    let run_twice = sqlx::query_scalar(
        "select count(distinct command_id) from (
             select command_id from effects group by command_id, generation having count(*) > 1
             union all
             select command_id from command_attempts where outcome = 'success'
             group by command_id, generation having count(*) > 1
         ) twice",
    )
    .fetch_one(pool)
    .await?;
    let out_of_order = order_per_key(pool).await?.len();
    Ok(Tally {
        lost,
        run_twice,
        out_of_order,
    })
}

/// Runs `sql` (rows of text) and turns each row into a violation named `what`.
async fn each_row(
    pool: &PgPool,
    what: &str,
    sql: &'static str,
    bind: Option<i32>,
    violations: &mut Vec<String>,
) -> anyhow::Result<()> {
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
    Ok(())
}

/// Every database property of the issue; returns the violations.
pub(crate) async fn database(
    pool: &PgPool,
    accepted: &[Uuid],
    max_lease_losses: i32,
) -> anyhow::Result<Vec<String>> {
    let mut violations = Vec::new();
    let known: i64 = sqlx::query_scalar("select count(*) from commands where id = any($1)")
        .bind(accepted)
        .fetch_one(pool)
        .await?;
    if known != accepted.len() as i64 {
        violations.push(format!(
            "accepted but missing: {} of {} accepted commands have no row",
            accepted.len() as i64 - known,
            accepted.len()
        ));
    }
    each_row(
        pool,
        "not terminal",
        "select id::text || ' is ' || status from commands
         where status not in ('success', 'fail', 'cancelled') order by id",
        None,
        &mut violations,
    )
    .await?;
    each_row(
        pool,
        "two successful finishes in one generation",
        "select command_id::text || ' generation ' || generation || ': ' || count(*)
         from command_attempts where outcome = 'success'
         group by command_id, generation having count(*) > 1",
        None,
        &mut violations,
    )
    .await?;
    each_row(
        pool,
        "two effects in one generation",
        "select command_id::text || ' generation ' || generation || ': ' || count(*)
         from effects group by command_id, generation having count(*) > 1",
        None,
        &mut violations,
    )
    .await?;
    each_row(
        pool,
        "success without an effect",
        "select c.id::text || ' generation ' || c.generation from commands c
         where c.status = 'success' and c.type = 'check.work'
           and not exists (select 1 from effects e
                           where e.command_id = c.id and e.generation = c.generation)",
        None,
        &mut violations,
    )
    .await?;
    each_row(
        pool,
        "effect after a later generation began",
        "select e.command_id::text || ' generation ' || e.generation || ' at ' || e.at
                || ' > generation ' || a.generation || ' started ' || a.started_at
         from effects e join command_attempts a
           on a.command_id = e.command_id and a.generation > e.generation
         where a.started_at < e.at",
        None,
        &mut violations,
    )
    .await?;
    // A run fenced out by a lease loss must not write once the next run of the same
    // generation claimed the command (the next claim only starts after the reaper committed).
    each_row(
        pool,
        "effect after a later run of its generation began",
        "select e.command_id::text || ' generation ' || e.generation || ' attempt ' || e.attempt
                || ' at ' || e.at || ' > attempt ' || a.attempt || ' started ' || a.started_at
         from effects e join command_attempts a
           on a.command_id = e.command_id and a.generation = e.generation
              and a.attempt > e.attempt
         where a.started_at < e.at",
        None,
        &mut violations,
    )
    .await?;
    each_row(
        pool,
        "attempt past its bound",
        "select c.id::text || ' generation ' || a.generation || ' attempt ' || max(a.attempt)
                || ' of ' || c.max_attempts
         from command_attempts a join commands c on c.id = a.command_id
         group by c.id, a.generation, c.max_attempts
         having max(a.attempt) > c.max_attempts + $1
         union all
         select id::text || ' attempt ' || attempt || ' of ' || max_attempts from commands
         where attempt > max_attempts + $1",
        Some(max_lease_losses),
        &mut violations,
    )
    .await?;
    each_row(
        pool,
        "attempt row left open",
        "select a.command_id::text || ' generation ' || a.generation || ' attempt ' || a.attempt
                || ' (command ' || c.status || ')'
         from command_attempts a join commands c on c.id = a.command_id
         where c.status in ('success', 'fail', 'cancelled')
           and (a.finished_at is null or a.outcome is null)",
        None,
        &mut violations,
    )
    .await?;
    violations.extend(order_per_key(pool).await?);
    Ok(violations)
}

/// For each ordering key, the first effect of each command (first generation only: a replay
/// of an old command legitimately runs after later ones) in time order has increasing `seq`.
async fn order_per_key(pool: &PgPool) -> anyhow::Result<Vec<String>> {
    let rows: Vec<(String, i64, Uuid)> = sqlx::query_as(
        "select ordering_key, seq, command_id from (
             select distinct on (command_id) ordering_key, seq, command_id, at
             from effects where ordering_key is not null and generation = 0
             order by command_id, at
         ) first order by ordering_key, at",
    )
    .fetch_all(pool)
    .await?;
    let mut last: HashMap<&str, (i64, Uuid)> = HashMap::new();
    let mut violations = Vec::new();
    for (key, seq, id) in &rows {
        if let Some((before, before_id)) = last.get(key.as_str())
            && *before >= *seq
        {
            violations.push(format!(
                "out of order on key {key}: seq {seq} ({id}) ran after seq {before} ({before_id})"
            ));
        }
        last.insert(key, (*seq, *id));
    }
    Ok(violations)
}

/// The rows as clients should finally see them.
pub(crate) async fn final_views(pool: &PgPool) -> anyhow::Result<HashMap<Uuid, Seen>> {
    let rows: Vec<(Uuid, i64, String, i32)> =
        sqlx::query_as("select id, version, status, attempt from commands")
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(id, version, status, attempt)| {
            (
                id,
                Seen {
                    version,
                    status,
                    attempt: i64::from(attempt),
                },
            )
        })
        .collect())
}

/// Where a client's last views differ from the rows.
pub(crate) fn client_mismatches(
    index: usize,
    log: &ClientLog,
    rows: &HashMap<Uuid, Seen>,
) -> Vec<String> {
    let views = log.views();
    let mut mismatches: Vec<String> = rows
        .iter()
        .filter(|(id, row)| views.get(id) != Some(row))
        .map(|(id, row)| {
            format!(
                "client {index} holds {:?} for {id}, PostgreSQL {row:?}",
                views.get(id)
            )
        })
        .collect();
    mismatches.extend(
        views
            .keys()
            .filter(|id| !rows.contains_key(id))
            .map(|id| format!("client {index} holds {id}, which PostgreSQL does not")),
    );
    mismatches.sort();
    mismatches
}
