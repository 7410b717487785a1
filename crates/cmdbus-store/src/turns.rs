//! Keyed commands that wait for their turn wait here, in PostgreSQL, at no cost: a command that
//! is not its key's turn (`IN_TURN`) is *held* (`held_since`) instead of having its message cycle
//! through the broker, and the finish that makes it the key's turn publishes it (`hand_on`). So
//! a backlog of one key drains in time linear in its length, and no key waits behind another's
//! bounces.
//!
//! Who holds: the api, for a fresh command whose key is busy (`hold_new`: it is never published
//! until its turn), and the worker, for a delivery whose claim found the key busy (`hold`: its
//! message is acked). Who hands on: the worker, right after a batch of finishes commits, for the
//! keys it finished; and the api's sweep (`take_turns`) for whatever else made a key free — a
//! cancel, a reaped run parked in a lane, a hand-on lost with a crashed worker.
//!
//! No wake-up is lost between a hold and a hand-on of the same key: both take the key's
//! transaction-level advisory lock before they read it, each in a statement of its own (so its
//! snapshot is taken under the lock). A hold that comes second sees the finish that came first
//! and holds nothing; a hand-on that comes second sees the hold.

use sqlx::{AssertSqlSafe, PgConnection, PgExecutor, PgPool};
use std::time::Duration;
use uuid::Uuid;

use crate::{
    Claim, CommandRow, StoreError,
    rules::{CHANGED, IN_TURN, STATUS_BY_ID, in_lock_order},
};

/// Takes the advisory lock of each key (tenant, ordering key) of `keys`, in one order, so that
/// two transactions locking several keys wait for each other instead of deadlocking.
async fn lock_keys(conn: &mut PgConnection, keys: &[(&str, &str)]) -> Result<(), StoreError> {
    let tenants: Vec<&str> = keys.iter().map(|(tenant, _)| *tenant).collect();
    let names: Vec<&str> = keys.iter().map(|(_, key)| *key).collect();
    // `order by` sorts before the locks are taken: PostgreSQL evaluates volatile functions of
    // the select list after the sort.
    sqlx::query(
        "select pg_advisory_xact_lock(h)
           from (select distinct hashtextextended(tenant || chr(31) || key, 0) as h
                   from unnest($1::text[], $2::text[]) as k(tenant, key)) keys
          order by h",
    )
    .bind(&tenants)
    .bind(&names)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The keys of the rows `ids` (those that have one).
async fn keys_of(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<(String, String)>, StoreError> {
    Ok(sqlx::query_as(
        "select distinct tenant, ordering_key from commands
          where id = any($1) and ordering_key is not null",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?)
}

fn borrowed(keys: &[(String, String)]) -> Vec<(&str, &str)> {
    keys.iter()
        .map(|(tenant, key)| (tenant.as_str(), key.as_str()))
        .collect()
}

/// Holds the commands of `claims` — deliveries whose claim found their key busy — that are
/// still waiting, at the generation asked for, and still not their key's turn: their message can
/// be acked, and the key's next hand-on publishes them again. Returns the ids held; a claim not
/// among them is its key's turn by now (or moved on): claim it again.
pub async fn hold(pool: &PgPool, claims: &[Claim]) -> Result<Vec<Uuid>, StoreError> {
    let claims = in_lock_order(claims, |c| c.id);
    let ids: Vec<Uuid> = claims.iter().map(|c| c.id).collect();
    let generations: Vec<i32> = claims.iter().map(|c| c.generation).collect();
    let mut tx = pool.begin().await?;
    let keys = keys_of(&mut tx, &ids).await?;
    lock_keys(&mut tx, &borrowed(&keys)).await?;
    let held: Vec<(Uuid,)> = sqlx::query_as(AssertSqlSafe(format!(
        "with locked as materialized (
             select c.id from commands c where c.id = any($1) and {STATUS_BY_ID} in ('new', 'queue')
              order by id for update
         )
         update commands c set held_since = coalesce(c.held_since, now()), redeliver_at = null
           from unnest($1::uuid[], $2::int4[]) as d(id, generation)
           join locked on locked.id = d.id
          where c.id = d.id and c.generation = d.generation and c.ordering_key is not null
            and {STATUS_BY_ID} in ('new', 'queue') and not c.cancel_requested
            and not {IN_TURN}
          returning c.id"
    )))
    .bind(&ids)
    .bind(&generations)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(held.into_iter().map(|(id,)| id).collect())
}

/// The api's side of a hold, before it publishes fresh commands: of the `new` rows `ids`, those
/// with a key that is not their turn become `queue` held — recorded and in line, their message
/// not published until their turn. Returns them as they are now (announce them); publish the
/// others.
pub async fn hold_new(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<CommandRow>, StoreError> {
    let mut ids = ids.to_vec();
    ids.sort();
    let mut tx = pool.begin().await?;
    let keys = keys_of(&mut tx, &ids).await?;
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    lock_keys(&mut tx, &borrowed(&keys)).await?;
    let held: Vec<CommandRow> = sqlx::query_as(AssertSqlSafe(format!(
        "update commands c
            set status = 'queue', queued_at = coalesce(c.queued_at, now()),
                held_since = now(), redeliver_at = null, {CHANGED}
          where c.id in (select c.id from commands c
                          where c.id = any($1) and {STATUS_BY_ID} = 'new'
                          order by c.id for update)
            and {STATUS_BY_ID} = 'new' and c.ordering_key is not null and not c.cancel_requested
            and not {IN_TURN}
          returning c.*"
    )))
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(held)
}

/// The first unfinished command of each key of `keys`, if it is held and its key's turn: the one
/// row per key that a hand-on publishes. Reads a few index entries per key whatever the length
/// of its backlog.
const NEXT_HELD: &str = "select n.id
      from keys k
      cross join lateral (
            select c.id, c.held_since, c.status from commands c
             where c.tenant = k.tenant and c.ordering_key = k.key
               and c.status in ('new', 'queue', 'running')
             order by c.created_at, c.id
             limit 1) n
      join commands c on c.id = n.id
     where n.held_since is not null and n.status in ('new', 'queue') and {IN_TURN}";

/// Takes the next held command of each of `keys` (tenant, ordering key) — a key whose command
/// just finished — if it is now the key's turn: it is no longer held, and its publish lease runs
/// for `publish_lease` (publish it, then `redelivered`). Waits for a concurrent hold of the same
/// key rather than missing it.
pub async fn hand_on(
    pool: &PgPool,
    keys: &[(&str, &str)],
    publish_lease: Duration,
) -> Result<Vec<CommandRow>, StoreError> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let tenants: Vec<&str> = keys.iter().map(|(tenant, _)| *tenant).collect();
    let names: Vec<&str> = keys.iter().map(|(_, key)| *key).collect();
    let mut tx = pool.begin().await?;
    lock_keys(&mut tx, keys).await?;
    let next = NEXT_HELD.replace("{IN_TURN}", IN_TURN);
    let rows: Vec<CommandRow> = sqlx::query_as(AssertSqlSafe(format!(
        "with keys as (select distinct * from unnest($1::text[], $2::text[]) as k(tenant, key))
         update commands c
            set held_since = null, redeliver_at = now() + make_interval(secs => $3)
          where c.id in ({next} order by n.id)
            and c.held_since is not null and c.status in ('new', 'queue')
          returning c.*"
    )))
    .bind(&tenants)
    .bind(&names)
    .bind(publish_lease.as_secs_f64())
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows)
}

/// The api's sweep for held commands whose turn came without a hand-on (a cancel, a run reaped
/// into a lane, a worker that died between its finish and its hand-on): takes up to `limit`
/// of them like `hand_on` does, skipping rows another transaction holds.
pub async fn take_turns<'c>(
    executor: impl PgExecutor<'c>,
    publish_lease: Duration,
    limit: i64,
) -> Result<Vec<CommandRow>, StoreError> {
    let next = NEXT_HELD.replace("{IN_TURN}", IN_TURN);
    Ok(sqlx::query_as(AssertSqlSafe(format!(
        "with keys as (select distinct tenant, ordering_key as key from commands
                        where held_since is not null and status in ('new', 'queue')),
              taken as materialized (select id from commands
                                      where id in ({next})
                                      order by id limit $2
                                        for update skip locked)
         update commands c
            set held_since = null, redeliver_at = now() + make_interval(secs => $1)
           from taken
          where c.id = taken.id
            and c.held_since is not null and c.status in ('new', 'queue')
          returning c.*"
    )))
    .bind(publish_lease.as_secs_f64())
    .bind(limit)
    .fetch_all(executor)
    .await?)
}
